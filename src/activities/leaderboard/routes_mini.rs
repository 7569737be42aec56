//! The leaderboard route of seed 003: the points rank (`/api/rank_by_balance/`).

use actix_web::{web, HttpResponse};
use points_actors::leaderboard::BoardKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{profiles, standings, RANK_BY_BALANCE_TOP};
use crate::dialect::mini::{own_openid, Mini};
use crate::dialect::GET_POST;
use crate::error::Failure;
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    r.add::<OpenidReq, Vec<BalanceRankRow>, _, _>(
        RouteDoc {
            path: "/api/rank_by_balance/",
            methods: GET_POST,
            tag: "003 mini-program",
            summary: "积分排行榜",
            description: "Bearer token; `openid` must be the token's user. `data`: the 10 users with the most points as `[[rank, nick, avatar, points], ...]`; beside `data`: `rank`, the caller's rank (0 while the caller has no points). Ties go to whoever reached the score first. Codes: 0, -1 empty parameter, -2 wrong openid.",
        },
        rank_by_balance,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// One row of 003 `/api/rank_by_balance/`: `[rank, nick, avatar, points]`.
#[derive(Serialize, ToSchema)]
pub struct BalanceRankRow(pub i64, pub String, pub String, pub i64);

async fn rank_by_balance(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> Result<HttpResponse, Failure<Mini>> {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let s = &caller.session;
    let board = standings(
        &state,
        &s.app_id,
        BoardKey::Points,
        RANK_BY_BALANCE_TOP,
        Some(s.user_id),
    )
    .await?;
    let ids: Vec<i64> = board.top.iter().map(|r| r.user_id).collect();
    let profiles = profiles(&state.stores.db, &ids).await?;
    let data: Vec<Value> = board
        .top
        .iter()
        .map(|r| {
            let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
            json!([r.rank, p.nick, p.avatar, r.score.value])
        })
        .collect();
    let rank = board.mine.map_or(0, |m| m.rank);
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "data": data, "rank": rank})))
}
