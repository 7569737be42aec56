//! The 000 sign-in routes (`v2/sign/*`): thin handlers, their request and reply shapes, and
//! their docs.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{committed, pop, pop_key, sign, PopAction, SignDetail};
use crate::dialect::gift::{ok, own_user, Gift};
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Empty, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// Registers the 000 sign-in routes, recording each in `doc`.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<UserReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/sign/do.json",
            methods: GET_POST,
            tag,
            summary: "签到: sign in for today",
            description: "Bearer token; `user_id` must be the token's user. Once per calendar day in business time (`POINTS_TIMEZONE`, default Asia/Shanghai): pays the app's daily points (fresh app: 5) plus, on reaching a milestone streak day, its bonus (fresh app: `{\"7\":2,\"14\":4,\"21\":7,\"30\":11}`; the milestones come round again after the largest one, so day 37 of a streak pays like day 7). Consecutive days make the streak; a missed day starts it again at 1. `data`: `[]`. Already signed today: `status:false`, code 410.",
        },
        sign_do,
    );
    r.add::<UserReq, SignDetail, _, _>(
        RouteDoc {
            path: "/v2/sign/detail.json",
            methods: GET_POST,
            tag,
            summary: "签到详情: this month's sign-in view",
            description: "Bearer token. `combo_sum`: consecutive days signed up to today (when signed today) or yesterday, 0 after a gap. `reward`: points of today's sign-in with its bonus (what it paid when `is_sign`, what it would pay now otherwise). `sign_days`: the signed dates of the current month, `YYYY-MM-DD`, ascending. `special_days`: `{date: bonus}` for the remaining dates of this month (today included while not signed) on which a milestone bonus would pay if the user signs every day from now on. `is_sign`: signed today. `more_day`: daily sign-ins still needed (today's included while not signed) to reach the next milestone, `more_point`: its bonus (both 0 when no milestone lies ahead). Days are business-time calendar days.",
        },
        sign_detail,
    );
    r.add::<UserReq, PopInfo, _, _>(
        RouteDoc {
            path: "/v2/sign/pop/info.json",
            methods: GET_POST,
            tag,
            summary: "关注、收藏情况: whether the follow and favourite rewards were taken",
            description: "Bearer token. `is_focus`: the follow (`FOCUS`) reward was paid; `is_collect`: the favourite (`COLLECT`) reward was paid.",
        },
        pop_info,
    );
    r.add::<PopReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/sign/pop.json",
            methods: GET_POST,
            tag,
            summary: "关注或者收藏: take the follow or favourite reward",
            description: "Bearer token. `action`: `FOCUS` (followed the mini-program) or `COLLECT` (added it to favourites). Pays the app's one-time reward for that action (fresh app: 5 points each), once per user and action. `data`: `[]`. The second time: code 410; any other action: code 400.",
        },
        pop_do,
    );
}

/// A 000 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct UserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

/// 000 `v2/sign/pop.json`.
#[derive(Deserialize, ToSchema)]
pub struct PopReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `FOCUS` or `COLLECT`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub action: Option<String>,
}

/// 000 `v2/sign/pop/info.json`: which one-time pop rewards were taken.
#[derive(Serialize, ToSchema)]
pub struct PopInfo {
    pub is_focus: bool,
    pub is_collect: bool,
}

async fn sign_do(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    sign(&state, &caller.session).await?;
    Ok(ok(json!([])))
}

async fn sign_detail(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    Ok(ok(json!(
        super::month_detail(&state, &caller.session).await?
    )))
}

async fn pop_info(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let focus = pop_key(&s.app_id, PopAction::Focus, s.user_id);
    let collect = pop_key(&s.app_id, PopAction::Collect, s.user_id);
    let found = committed(&state.stores.db, &s.app_id, &[&focus, &collect]).await?;
    Ok(ok(json!(PopInfo {
        is_focus: found.contains_key(&focus),
        is_collect: found.contains_key(&collect),
    })))
}

async fn pop_do(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PopReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let action = PopAction::parse(
        p.action
            .as_deref()
            .ok_or_else(|| AppError::missing("action"))?,
    )?;
    pop(&state, &caller.session, action).await?;
    Ok(ok(json!([])))
}
