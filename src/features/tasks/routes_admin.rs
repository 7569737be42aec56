//! The task admin routes (`/admin/tasks`, `/admin/center-tasks`): thin handlers and route docs.

use actix_web::web;
use serde::Deserialize;
use utoipa::ToSchema;

use super::center::{self, CenterTaskSaveReq, CenterTaskView};
use super::gift::{self, GiftTaskAdminView, GiftTaskSaveReq};
use super::to_json;
use crate::dialect::gift::{ok, Gift, Reply};
use crate::dialect::{GET, POST};
use crate::http::{lenient, AdminKey, Params, RouteDoc, Routes};
use crate::state::AppState;

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct TaskAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

async fn gift_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<GiftTaskSaveReq, Gift>,
) -> Reply {
    let view = gift::save(&state, p.into_inner()).await?;
    Ok(ok(to_json(view)))
}

async fn gift_admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<TaskAppQuery, Gift>,
) -> Reply {
    let items = gift::admin_list(&state, p.into_inner().app_id).await?;
    Ok(ok(to_json(items)))
}

async fn center_admin_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<CenterTaskSaveReq, Gift>,
) -> Reply {
    let view = center::save_center_task(&state, p.into_inner()).await?;
    Ok(ok(to_json(view)))
}

async fn center_admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<TaskAppQuery, Gift>,
) -> Reply {
    let items = center::admin_list(&state, p.into_inner().app_id).await?;
    Ok(ok(to_json(items)))
}

/// Registers the task admin routes.
pub(super) fn register(r: &mut Routes<'_>) {
    let tag = "admin tasks";
    r.add::<GiftTaskSaveReq, GiftTaskAdminView, _, _>(
        RouteDoc {
            path: "/admin/tasks",
            methods: POST,
            tag,
            summary: "Create or change a 000 task",
            description: "`X-Admin-Key`. Without `id` creates a task (`name`, `reward_type`, `amount` required); with `id` changes that task of the app, absent fields keeping their value. `name` 1-64 characters; `reward_type` one of 积分/集分宝/现金红包/电子权益/实物; `amount` 0-1000000000 points for 积分, 1-1000000000 units otherwise; `btn_desc` up to 8 texts of at most 32 characters; `repeat` 1-100 finishes per user per day (default 1); `sort` within ±1000000; `status` \"10\" on shelf (default), \"20\" off shelf, \"30\" deleted; texts at most 200 characters, links at most 1000. An app keeps at most 200 tasks not deleted. Any violation answers 400 and changes nothing; 404 unknown app or task.",
        },
        gift_save,
    );
    r.add::<TaskAppQuery, Vec<GiftTaskAdminView>, _, _>(
        RouteDoc {
            path: "/admin/tasks",
            methods: GET,
            tag,
            summary: "An app's 000 tasks, every status, with click counts",
            description:
                "`X-Admin-Key`; `app_id` defaults to `default`. Ordered by `sort`, then `id`.",
        },
        gift_admin_list,
    );
    r.add::<CenterTaskSaveReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/admin/center-tasks",
            methods: POST,
            tag,
            summary: "Create or replace a 001 task",
            description: "`X-Admin-Key`. `taskId` (1-64 of A-Z a-z 0-9 _ -; absent: a new id), `type` `permanent` or `cyclic` (also `permanentTask`, `cyclicTask`), `cycle` `{type: day|week|month, day}` required for cyclic, `day` the day the cycle refreshes (default 1): ignored for `day` (every day), weekday 1-7 (Monday-Sunday) for `week`, day 1-31 of the month (clamped to its last day) for `month`, `title` 1-64 characters, `desc`, `btnTitle` (at most 200), `btnType` qrCode/route/customize (default customize), `path`, `imgUrl`, `icon` (at most 1000), `faceValue` points 1-1000000000, `total` target 1-1000000000 (default 1), `sort`, `status` \"10\"/\"20\"/\"30\". Saving an existing `taskId` replaces it; progress and claims stay with their cycles. Any violation answers 400 and changes nothing.",
        },
        center_admin_save,
    );
    r.add::<TaskAppQuery, Vec<CenterTaskView>, _, _>(
        RouteDoc {
            path: "/admin/center-tasks",
            methods: GET,
            tag,
            summary: "An app's 001 tasks, every status",
            description: "`X-Admin-Key`; `app_id` defaults to `default`.",
        },
        center_admin_list,
    );
}
