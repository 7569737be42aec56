//! The 000 task routes (`/v2/task/*`): thin handlers, their request shapes and route docs.

use actix_web::web;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::gift::{self, GiftTaskItem};
use super::to_json;
use crate::dialect::gift::{ok, own_user, Gift, Reply};
use crate::dialect::GET_POST;
use crate::error::AppError;
use crate::http::{lenient, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

/// `v2/task/list.json`.
#[derive(Deserialize, ToSchema)]
pub struct GiftTaskListReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `index` (default) every task, `finished` those done today, `unfinished` the others.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub flag: Option<String>,
}

/// `v2/task/click.json` and `v2/task/finish.json`.
#[derive(Deserialize, ToSchema)]
pub struct GiftTaskIdReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// The task's `id`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
}

async fn gift_list(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskListReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let want_done = match p.flag.as_deref().map(str::trim) {
        None | Some("index") => None,
        Some("finished") => Some(true),
        Some("unfinished") => Some(false),
        Some(other) => {
            return Err(AppError::invalid(format!(
                "flag must be \"index\", \"finished\" or \"unfinished\", got {other:?}"
            ))
            .into())
        }
    };
    let items = gift::list(
        &state,
        &caller.session.app_id,
        caller.session.user_id,
        want_done,
    )
    .await?;
    Ok(ok(to_json(items)))
}

async fn gift_click(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskIdReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    gift::click(&state, &caller.session.app_id, caller.session.user_id, id).await?;
    Ok(ok(json!([])))
}

async fn gift_finish(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskIdReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    gift::finish(&state, &caller.session.app_id, caller.session.user_id, id).await?;
    Ok(ok(json!([])))
}

/// Registers the 000 `v2/task/*` routes.
pub(super) fn register(r: &mut Routes<'_>) {
    let tag = "000 tasks";
    r.add::<GiftTaskListReq, Vec<GiftTaskItem>, _, _>(
        RouteDoc {
            path: "/v2/task/list.json",
            methods: GET_POST,
            tag,
            summary: "任务列表: the app's tasks with the caller's state",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `flag`: `index` (default) every on-shelf task, `finished` those the caller finished `repeat` times today (business day), `unfinished` the others; any other value answers 400. Ordered by `sort` ascending, then `id`. `is_done`: finished `repeat` times today.",
        },
        gift_list,
    );
    r.add::<GiftTaskIdReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/task/click.json",
            methods: GET_POST,
            tag,
            summary: "任务点击: count a click on a task's button",
            description: "Counted per task, user and business day for statistics (`clicks` in `GET /admin/tasks`); grants nothing. 404 unknown or off-shelf task, 400 missing `id`, 401/403 token or user mismatch.",
        },
        gift_click,
    );
    r.add::<GiftTaskIdReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/task/finish.json",
            methods: GET_POST,
            tag,
            summary: "完成任务: finish a task and receive its reward",
            description: "Grants the task's reward at most `repeat` times per user per business day (the day rolls at 00:00 business time). Each finish is one ledger entry of kind `task` (what the blind boxes count), keyed `task:<app>:<id>:<day>:<user>:<n>` and counted by the ledger counter `task:<app>:<id>:<user>:<day>` (ceiling `repeat`), so concurrent finishes never pay more than `repeat`. `积分` credits `amount` points (expiring by the app's rule); other reward types record a zero-point finish with a fulfilment order of `amount` units, delivered outside. Refusals (nothing changed): 410 already finished `repeat` times today, 404 unknown or off-shelf task, 400 missing `id`, 429 busy, 401/403 token or user mismatch.",
        },
        gift_finish,
    );
}
