//! The 001 task routes (`/center/*`): thin handlers, their request shapes and route docs.

use actix_web::web;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::center::{
    self as logic, CenterClaimResult, CenterTaskGroups, CenterTaskList, CenterTaskSaveReq,
    CenterTaskView,
};
use super::to_json;
use crate::dialect::center::{self, Center};
use crate::dialect::{GET_POST, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

/// `receiveTaskAward`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterClaimReq {
    #[serde(default, alias = "id", deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
}

/// `setUserTaskStatus`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskStatusReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
    /// The user's total count so far, 0..=`total`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub complete_num: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub open_id: Option<String>,
    /// 1 to claim, 2 unfinished, 3 done; 1 and 3 only when `completeNum` equals `total`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    /// Default `default`.
    #[serde(default, rename = "app_id", deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `getTaskById`.
#[derive(Deserialize, ToSchema)]
pub struct CenterTaskByIdReq {
    #[serde(default, alias = "taskId", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// Default `default`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

type CenterReply = Result<actix_web::HttpResponse, Failure<Center>>;

async fn center_list(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let list = logic::list(&state, &caller.session.app_id, caller.session.user_id).await?;
    Ok(center::ok(to_json(list)))
}

/// `getTaskList`, the client's op: the same tasks as groups.
async fn center_groups(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let list = logic::list(&state, &caller.session.app_id, caller.session.user_id).await?;
    Ok(center::ok(to_json(list.into_groups())))
}

async fn center_claim(
    state: web::Data<AppState>,
    caller: Caller<Center>,
    p: Params<CenterClaimReq, Center>,
) -> CenterReply {
    let task_id = p
        .into_inner()
        .task_id
        .map(|t| t.trim().to_string())
        .ok_or_else(|| AppError::missing("taskId"))?;
    let result = logic::claim(
        &state,
        &caller.session.app_id,
        caller.session.user_id,
        &task_id,
    )
    .await?;
    Ok(center::ok(to_json(result)))
}

async fn center_set_status(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskStatusReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let task_id = p
        .task_id
        .map(|t| t.trim().to_string())
        .ok_or_else(|| AppError::missing("taskId"))?;
    let open_id = p.open_id.ok_or_else(|| AppError::missing("openId"))?;
    let complete_num = p
        .complete_num
        .ok_or_else(|| AppError::missing("completeNum"))?;
    let status = p.status.ok_or_else(|| AppError::missing("status"))?;
    logic::set_status(&state, p.app_id, &task_id, &open_id, complete_num, status).await?;
    Ok(center::ok(json!(true)))
}

async fn center_save(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskSaveReq, Center>,
) -> CenterReply {
    let view = logic::save_center_task(&state, p.into_inner()).await?;
    Ok(center::ok(to_json(view)))
}

async fn center_by_id(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskByIdReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let id =
        p.id.map(|t| t.trim().to_string())
            .ok_or_else(|| AppError::missing("id"))?;
    let view = logic::task_by_id(&state, p.app_id, &id).await?;
    Ok(center::ok(to_json(view)))
}

/// What both task lists say of a task.
macro_rules! task_fields {
    () => {
        "each `{taskId, type, title, desc, btnTitle, btnType, path, imgUrl, icon, faceValue, total, currentTotal, completeNum, taskModel, status, cycle?, cycleStart, cycleEnd, taskInfo:{btnTitle, btnType, path, imgUrl}}`. `currentTotal` (also `completeNum`) and `status` (1 reward to claim, 2 unfinished, 3 done) are the caller's in the current cycle; `taskModel` is `progress` for a target above one (the page shows 已完成completeNum/total) and `standard` otherwise (the page shows `desc`). A cyclic task's cycle refreshes at 00:00 business time on its `cycle.day`: every day for `day`, on weekday `cycle.day` (1 Monday - 7 Sunday) for `week`, on day `cycle.day` of the month (clamped to the month's last day) for `month`; progress starts over then. `cycleStart`/`cycleEnd` are the current cycle's first and last day (empty for permanent tasks)."
    };
}

/// Registers the 001 task routes: the client's `/center/api/*` and the server ops.
pub(super) fn register(r: &mut Routes<'_>) {
    let tag = "001 points center";
    r.add::<crate::http::Empty, CenterTaskList, _, _>(
        RouteDoc {
            path: "/center/api/getTasksList",
            methods: GET_POST,
            tag,
            summary: "获取当前任务列表: tasks with the caller's progress (the seed's shape)",
            description: concat!(
                "Bearer token. `result`: `{permanentTask:[...], cyclicTask:[...]}` of on-shelf tasks, ",
                task_fields!()
            ),
        },
        center_list,
    );
    r.add::<crate::http::Empty, CenterTaskGroups, _, _>(
        RouteDoc {
            path: "/center/api/getTaskList",
            methods: GET_POST,
            tag,
            summary: "获取当前任务列表: the tasks as the client's page groups them",
            description: concat!(
                "Bearer token. `result`: a list of groups `[{title, item:[task]}]`, `循环任务` (cyclic) first and `成长任务` (permanent), only groups that have tasks (none: `[]`); ",
                task_fields!()
            ),
        },
        center_groups,
    );
    r.add::<CenterClaimReq, CenterClaimResult, _, _>(
        RouteDoc {
            path: "/center/api/receiveTaskAward",
            methods: POST,
            tag,
            summary: "领取任务奖励: claim a finished task's points",
            description: "Bearer token; `taskId`. Pays `faceValue` points once per cycle (permanent tasks: once ever) when the caller's status in the current cycle is 1 (set by `setUserTaskStatus`); the status becomes 3. The payment is the ledger entry keyed `ctask:<app>:<taskId>:<cycle-start>:<user>` (kind `task`), so claims sent twice or at once pay once: one answers `result.points` (the new balance), the others 40910. Refusals (nothing changed): 40910 already claimed this cycle or not finished, 40400 unknown or off-shelf task, 40000 missing `taskId`, 42900 busy.",
        },
        center_claim,
    );
    for (path, summary) in [
        (
            "/center/admin/setUserTaskStatus",
            "设置用户任务状态: set a user's progress on a task (server op)",
        ),
        (
            "/center/admin/setTaskStatus",
            "设置用户任务状态: the integration guide's name of setUserTaskStatus",
        ),
    ] {
        r.add::<CenterTaskStatusReq, bool, _, _>(
            RouteDoc {
                path,
                methods: POST,
                tag,
                summary,
                description: "`X-Admin-Key`. `taskId`, `openId` (platform id), `completeNum` (the user's total so far, 0..=the task's `total`), `status` 1 to claim / 2 unfinished / 3 done; 1 and 3 only when `completeNum` equals `total`. Sets the progress of the task's current cycle; a reward already claimed this cycle stays claimed. `app_id` defaults to `default`. 40000 bad or missing field, 40400 unknown task or user. `setTaskStatus` and `setUserTaskStatus` are the same op.",
            },
            center_set_status,
        );
    }
    r.add::<CenterTaskSaveReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/center/admin/saveTask",
            methods: POST,
            tag,
            summary: "添加任务: create or replace a task (server op)",
            description: "`X-Admin-Key`. Same fields and rules as `POST /admin/center-tasks` (`type` also as the integration guide writes it: `cyclicTask`, `permanentTask`); `result` is the stored task.",
        },
        center_save,
    );
    r.add::<CenterTaskByIdReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/center/admin/getTaskById",
            methods: GET_POST,
            tag,
            summary: "获取任务详情: one task (server op)",
            description: "`X-Admin-Key`; `id` the `taskId`; `app_id` defaults to `default`. 40400 when there is no such task.",
        },
        center_by_id,
    );
}
