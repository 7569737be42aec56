//! The blind boxes' 000 routes: `v2/box/show.json` and `v2/box/get.json`.

use actix_web::web;
use points_actors::activity::{ActivityError, Refusal};
use points_actors::blindbox::{BoxPayout, OpenBox, ShowBoxes};
use points_actors::LedgerError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{box_actor, finished_tasks_today, retire_set, set_activity};
use crate::clock::Moment;
use crate::dialect::gift::{ok, ok_with, own_user, Gift, Reply, UserReq};
use crate::dialect::GET_POST;
use crate::error::AppError;
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// One box as `show` presents it.
#[derive(Serialize, ToSchema)]
pub struct BoxItem {
    pub box_name: String,
    /// Tasks to finish today before the box opens.
    pub task_sum: i64,
    /// 集分宝 paid while the external stock lasts.
    pub alipay_point_unit: i64,
    /// Points paid after.
    pub point_unit: i64,
    /// Opened by the caller today.
    pub is_get: bool,
}

/// A box's request.
#[derive(Deserialize, ToSchema)]
pub struct BoxGetReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub box_name: Option<String>,
}

/// What an opening paid.
#[derive(Serialize, ToSchema)]
pub struct BoxGetData {
    /// `alipay_point` (集分宝, delivered outside) or `point`.
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
}

/// Beside the boxes.
#[derive(Serialize, ToSchema)]
pub struct ShowBeside {
    /// Tasks the caller finished today.
    pub done_tasks_sum: i64,
    /// The fewest tasks still missing for a locked box (0: none).
    pub diff: i64,
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let (actor, _) = box_actor(&state, &caller.session.app_id).await?;
    let done = finished_tasks_today(&state, caller.session.user_id).await?;
    let boxes = actor
        .send(ShowBoxes {
            user_id: Some(caller.session.user_id),
            day: Moment::now(&state.clock).day,
        })
        .await?;
    // The next box not yet reachable: the fewest tasks still missing for any locked box.
    let diff = boxes
        .iter()
        .map(|b| b.spec.task_sum - done)
        .filter(|&d| d > 0)
        .min()
        .unwrap_or(0);
    let items: Vec<BoxItem> = boxes
        .into_iter()
        .map(|b| BoxItem {
            box_name: b.spec.name,
            task_sum: b.spec.task_sum,
            alipay_point_unit: b.spec.alipay_point_unit,
            point_unit: b.spec.points_unit,
            is_get: b.opened,
        })
        .collect();
    Ok(ok_with(
        json!(items),
        ShowBeside {
            done_tasks_sum: done,
            diff,
        },
    ))
}

async fn get(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<BoxGetReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let box_name = p
        .box_name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::missing("box_name"))?;
    let app_id = caller.session.app_id.clone();
    let done = finished_tasks_today(&state, caller.session.user_id).await?;
    let expires_at = points::default_expiry(&state, &app_id).await?;
    let open = || async {
        let (actor, epoch) = box_actor(&state, &app_id).await?;
        let answer = actor
            .send(OpenBox {
                user_id: caller.session.user_id,
                box_name: box_name.clone(),
                day: Moment::now(&state.clock).day,
                done_tasks: done,
                expires_at,
            })
            .await?;
        Ok::<_, AppError>((answer, epoch))
    };
    let (mut answer, epoch) = open().await?;
    if matches!(
        answer,
        Err(ActivityError::Ledger(LedgerError::Fenced { .. }))
    ) {
        // The boxes moved to another node while this opening was decided: nothing was
        // written; step down and open where the boxes are now.
        state.cluster.count_fenced();
        state.cluster.step_down_from(&set_activity(&app_id), epoch);
        retire_set(&state, &app_id);
        answer = open().await?.0;
    }
    let opened = answer.map_err(|e| match e {
        ActivityError::Refused(Refusal::Other { .. }) => {
            AppError::NotFound(format!("blind box {box_name:?}"))
        }
        other => other.into(),
    })?;
    let (kind, amount) = match opened.payout {
        BoxPayout::External(units) => ("alipay_point", units),
        BoxPayout::Points(points) => ("point", points),
    };
    Ok(ok(json!(BoxGetData {
        kind: kind.into(),
        amount,
    })))
}

/// Registers the blind boxes' 000 routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 blind boxes";
    r.add_beside::<UserReq, Vec<BoxItem>, ShowBeside, _, _>(
        RouteDoc {
            path: "/v2/box/show.json",
            methods: GET_POST,
            tag,
            summary: "盲盒列表: the app's blind boxes",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `data`: `[{box_name, task_sum, alipay_point_unit, point_unit, is_get}]` (`is_get`: opened by the caller today). Beside `data`: `done_tasks_sum` (tasks the caller finished today, business day) and `diff` (tasks still needed for the next box not yet reachable; 0 when every box is reachable).",
        },
        show,
    );
    r.add::<BoxGetReq, BoxGetData, _, _>(
        RouteDoc {
            path: "/v2/box/get.json",
            methods: GET_POST,
            tag,
            summary: "开盲盒: open a box",
            description: "Opens `box_name` once today's finished tasks reach its `task_sum`, once per box per user per business day. Pays `alipay_point_unit` 集分宝 (`type: \"alipay_point\"`, recorded as a fulfilment order) while the box's external stock (`alipay_point_valve`) lasts, then `point_unit` points (`type: \"point\"`). Refusals (nothing changed): 410 not enough tasks finished today (the message says how many more) or already opened today, 404 no such box, 429 busy, 400 missing `box_name`, 401/403 token or user mismatch.",
        },
        get,
    );
}
