//! The 003 invite routes (`/api/query_share_code/`, `/api/query_share_record/`): thin handlers,
//! their request and reply shapes, and their docs.

use actix_web::{web, HttpResponse};
use points_actors::leaderboard::BoardKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{config, share_code};
use crate::activities::leaderboard::{profiles, standings};
use crate::clock::now_ms;
use crate::dialect::mini::{self, own_openid, Mini};
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::state::AppState;

type MiniReply = Result<HttpResponse, Failure<Mini>>;

/// Registers the 003 invite routes, recording each in `doc`.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<OpenidReq, ShareCode, _, _>(
        RouteDoc {
            path: "/api/query_share_code/",
            methods: GET_POST,
            tag,
            summary: "获取邀请码",
            description: "Bearer token; `openid` must be the token's user. `data`: `share_code` (the caller's code: 8 characters, created on first ask and stable after; a new user logging in through `/api/login/` with `invite=<code>` on their first login earns its owner `points * times`), `times` (the current multiplier), `y_rank` and `n_rank`: the caller's own place on yesterday's and today's invite boards (business days), a number, 0 when unranked. Codes: 0, -1 empty parameter, -2 wrong openid.",
        },
        query_share_code,
    );
    r.add::<RecordReq, Vec<ShareRecord>, _, _>(
        RouteDoc {
            path: "/api/query_share_record/",
            methods: GET_POST,
            tag,
            summary: "获取邀请记录",
            description: "Bearer token; `openid` must be the token's user; `index` page from 0, `num` 1-100 (default 10). `data`: the users the caller invited, newest first, as `{avatar, nickname, c_time}` (`c_time` when the invite was rewarded, business time `YYYY-MM-DD HH:MM:SS`). Codes: 0, -1 empty parameter, -2 wrong openid, -400 bad `index`/`num`.",
        },
        query_share_record,
    );
}

/// A 003 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// 003 `/api/query_share_record/`.
#[derive(Deserialize, ToSchema)]
pub struct RecordReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub index: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub num: Option<i64>,
}

/// 003 `/api/query_share_code/` data.
#[derive(Serialize, ToSchema)]
pub struct ShareCode {
    pub share_code: String,
    pub times: i64,
    /// The caller's own invite rank yesterday (business day); 0 when unranked.
    pub y_rank: i64,
    /// The caller's own invite rank today; 0 when unranked.
    pub n_rank: i64,
}

/// One invitee of 003 `/api/query_share_record/`.
#[derive(Serialize, ToSchema)]
pub struct ShareRecord {
    pub avatar: String,
    pub nickname: String,
    pub c_time: String,
}

/// The caller's own place on the invites board of `day`; 0 when unranked.
async fn own_invite_rank(
    state: &AppState,
    app_id: &str,
    user_id: i64,
    day: String,
) -> Result<i64, AppError> {
    let board = standings(state, app_id, BoardKey::Invites(day), 1, Some(user_id)).await?;
    Ok(board
        .mine
        .map_or(0, |m| i64::try_from(m.rank).unwrap_or(i64::MAX)))
}

async fn query_share_code(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let s = &caller.session;
    let code = share_code(&state.stores.db, &s.app_id, s.user_id).await?;
    let times = config(&state.stores.db, &s.app_id).await?.times;
    let today = state.clock.date(now_ms());
    let yesterday = today.pred_opt().unwrap_or(today);
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    Ok(mini::ok(json!(ShareCode {
        share_code: code,
        times,
        y_rank: own_invite_rank(&state, &s.app_id, s.user_id, day(yesterday)).await?,
        n_rank: own_invite_rank(&state, &s.app_id, s.user_id, day(today)).await?,
    })))
}

async fn query_share_record(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<RecordReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -2)?;
    let page = Page::parse(p.index, p.num, 0, 10)?;
    let s = &caller.session;
    let db = &state.stores.db;
    let invited = super::invited(db, &s.app_id, s.user_id, &page).await?;
    let ids: Vec<i64> = invited.iter().map(|(id, _)| *id).collect();
    let profiles = profiles(db, &ids).await?;
    let data: Vec<ShareRecord> = invited
        .iter()
        .map(|(id, at)| {
            let p = profiles.get(id).cloned().unwrap_or_default();
            ShareRecord {
                avatar: p.avatar,
                nickname: p.nick,
                c_time: state.clock.format_datetime(*at),
            }
        })
        .collect();
    Ok(mini::ok(json!(data)))
}
