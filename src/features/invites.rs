//! Invites: a share code per user, the link from a new user to whoever invited them, the
//! inviter's reward, and the invite records.
//!
//! **Share codes.** Every user gets one code per app the first time it is asked for
//! ([`share_code`]): [`SHARE_CODE_LEN`] characters drawn at random from an alphabet without
//! look-alikes, stable from then on, unique within the app (a unique index; a collision draws
//! again). Codes are matched case-insensitively.
//!
//! **Who can be invited.** Only a user created by the login that carries the `invite` code: the
//! user's first login. A later login with a code links nothing, so a user cannot be re-pointed to
//! another inviter, nor rewarded twice. A code that is unknown, malformed or the user's own is
//! ignored: the login itself always goes through.
//!
//! **Reward.** The link and the reward are ONE ledger change on the inviter, kind `invite`,
//! under the key `invite:<app>:<invitee user id>`, its `reference` the invitee's user id. The
//! unique key is what guards it: however many logins of the same new user race (across
//! processes too), one entry is written. The amount is the app's `points * times` (fresh app: 20
//! points, times 1); with a reward of 0 the entry is still written (guarded by a ledger limit on
//! the same key) so the invite counts on the invites board and in the records. The invites
//! leaderboard counts these entries per business day.
//!
//! Routes: 003 `/api/query_share_code/`, `/api/query_share_record/`; admin
//! `/admin/invites/config`. The login hook is [`on_login`], called by 003 `/api/login/`.

use actix_web::{web, HttpResponse};
use points_actors::leaderboard::{BoardKey, INVITE_KIND};
use points_actors::{Change, LedgerError, Limit, Submit};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::leaderboard::{profiles, standings};
use crate::auth;
use crate::clock::now_ms;
use crate::db::Db;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{ok, Gift};
use crate::facades::miniapp::{self, own_openid, Mini};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;
use crate::store::User;

/// Points an inviter earns per new invitee in a fresh app (before the multiplier).
pub const INVITE_POINTS_DEFAULT: i64 = 20;
/// The multiplier of a fresh app.
pub const INVITE_TIMES_DEFAULT: i64 = 1;
/// Largest configurable points per invitee.
pub const INVITE_POINTS_MAX: i64 = 1_000_000;
/// Largest configurable multiplier.
pub const INVITE_TIMES_MAX: i64 = 100;
/// Characters of a share code.
pub const SHARE_CODE_LEN: usize = 8;
/// Longest invite code looked up at login, in bytes; anything longer is ignored unread.
pub const INVITE_CODE_BYTES_MAX: usize = 32;
/// Fresh codes drawn before giving up on a (practically impossible) run of collisions.
const SHARE_CODE_ATTEMPTS_MAX: usize = 8;
/// Entries of each invite rank in `/api/query_share_code/`.
pub const INVITE_RANK_TOP: usize = 10;
/// Share code characters: upper-case letters and digits without 0/O and 1/I.
const SHARE_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

type GiftReply = Result<HttpResponse, Failure<Gift>>;
type MiniReply = Result<HttpResponse, Failure<Mini>>;

// ----- settings -----

/// The invite settings of an app.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InviteConfig {
    pub app_id: String,
    /// Points per new invitee, before the multiplier.
    pub points: i64,
    /// The multiplier (003 `times`).
    pub times: i64,
    /// What an inviter earns per new invitee: `points * times`.
    pub reward: i64,
}

impl InviteConfig {
    fn new(app_id: &str, points: i64, times: i64) -> Self {
        InviteConfig {
            app_id: app_id.to_string(),
            points,
            times,
            reward: points.saturating_mul(times),
        }
    }
}

async fn config(db: &Db, app_id: &str) -> Result<InviteConfig, AppError> {
    let row = sqlx::query("SELECT points, times FROM invite_settings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await?;
    Ok(match row {
        Some(r) => InviteConfig::new(app_id, r.try_get(0)?, r.try_get(1)?),
        None => InviteConfig::new(app_id, INVITE_POINTS_DEFAULT, INVITE_TIMES_DEFAULT),
    })
}

// ----- share codes -----

fn fresh_code() -> String {
    let mut rng = rand::rng();
    (0..SHARE_CODE_LEN)
        .map(|_| char::from(SHARE_CODE_ALPHABET[rng.random_range(0..SHARE_CODE_ALPHABET.len())]))
        .collect()
}

async fn stored_code(db: &Db, app_id: &str, user_id: i64) -> Result<Option<String>, AppError> {
    // The primary database: a code just created must be seen at once.
    Ok(
        sqlx::query_scalar("SELECT code FROM share_codes WHERE app_id = $1 AND user_id = $2")
            .bind(app_id)
            .bind(user_id)
            .fetch_optional(&db.write)
            .await?,
    )
}

/// The user's share code, created on first ask. Concurrent first asks agree on one code.
pub async fn share_code(db: &Db, app_id: &str, user_id: i64) -> Result<String, AppError> {
    if let Some(code) = stored_code(db, app_id, user_id).await? {
        return Ok(code);
    }
    for _ in 0..SHARE_CODE_ATTEMPTS_MAX {
        // Nothing is inserted when the user already has a code (another request won) or the
        // code is taken in the app; either way the read below tells which.
        sqlx::query(
            "INSERT INTO share_codes (app_id, user_id, code, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(app_id)
        .bind(user_id)
        .bind(fresh_code())
        .bind(now_ms())
        .execute(&db.write)
        .await?;
        if let Some(code) = stored_code(db, app_id, user_id).await? {
            return Ok(code);
        }
    }
    Err(AppError::Unavailable(
        "could not draw a free share code".into(),
    ))
}

/// The owner of `code` in `app_id`, if any. Malformed codes own nothing.
async fn code_owner(db: &Db, app_id: &str, code: &str) -> Result<Option<i64>, AppError> {
    let code = code.trim().to_ascii_uppercase();
    if code.is_empty()
        || code.len() > INVITE_CODE_BYTES_MAX
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar("SELECT user_id FROM share_codes WHERE app_id = $1 AND code = $2")
            .bind(app_id)
            .bind(code)
            .fetch_optional(&db.read)
            .await?,
    )
}

// ----- the login hook -----

/// The idempotency key of the reward for `invitee`.
pub fn invite_key(app_id: &str, invitee: i64) -> String {
    format!("{INVITE_KIND}:{app_id}:{invitee}")
}

/// Links a user created by this login (`is_new`) to the owner of `invite` and rewards the
/// inviter. Never fails the login: whatever goes wrong is logged and the invite is dropped.
pub async fn on_login(state: &AppState, user: &User, is_new: bool, invite: Option<&str>) {
    let Some(code) = invite.filter(|c| !c.trim().is_empty()) else {
        return;
    };
    if !is_new {
        return;
    }
    match link(state, user, code).await {
        Ok(Some(inviter)) => {
            tracing::info!(app = %user.app_id, inviter, invitee = user.id, "invite linked");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(app = %user.app_id, invitee = user.id, error = %e.message(), "invite dropped");
        }
    }
}

/// Rewards the owner of `code` for `invitee`; `None` when the code is unknown or the invitee's
/// own, or the invitee was already linked.
async fn link(state: &AppState, invitee: &User, code: &str) -> Result<Option<i64>, AppError> {
    let db = &state.stores.db;
    let app_id = invitee.app_id.as_str();
    let Some(inviter) = code_owner(db, app_id, code).await? else {
        return Ok(None);
    };
    if inviter == invitee.id {
        return Ok(None);
    }
    let reward = config(db, app_id).await?.reward;
    let expires_at = if reward > 0 {
        points::default_expiry(state, app_id).await?
    } else {
        None
    };
    let key = invite_key(app_id, invitee.id);
    let mut change = Change {
        app_id: app_id.to_string(),
        user_id: inviter,
        amount: reward,
        kind: INVITE_KIND.into(),
        idem_key: key.clone(),
        reference: invitee.id.to_string(),
        description: "邀请奖励".into(),
        expires_at,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
    };
    if reward == 0 {
        // A reward of nothing still records the invite.
        change.limits.push(Limit { key, max: 1 });
    }
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => Ok(Some(inviter)),
        // Another login of the same invitee linked it first (with other parameters).
        Err(LedgerError::Conflict | LedgerError::LimitReached) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

// ----- routes -----

/// Registers the invite routes (003, admin), recording each in `doc`.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<OpenidReq, ShareCode, _, _>(
        RouteDoc {
            path: "/api/query_share_code/",
            methods: GET_POST,
            tag,
            summary: "获取邀请码",
            description: "Bearer token; `openid` must be the token's user. `data`: `share_code` (the caller's code: 8 characters, created on first ask and stable after; a new user logging in through `/api/login/` with `invite=<code>` on their first login earns its owner `points * times`), `times` (the current multiplier), `y_rank` and `n_rank`: yesterday's and today's invite ranks (business days), the top 10 as `[[rank, nick, avatar, invites], ...]` (the same rows as `/api/rank_by_balance/`). Codes: 0, -1 empty parameter, -2 wrong openid.",
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
    let tag = "admin";
    r.add::<AppReq, InviteConfig, _, _>(
        RouteDoc {
            path: "/admin/invites/config",
            methods: GET,
            tag,
            summary: "Invite settings of an app",
            description: "`app_id` (default `default`). `points` per new invitee (fresh app: 20), `times` the multiplier (fresh app: 1), `reward` = `points * times`, what an inviter earns per new invitee.",
        },
        get_config,
    );
    r.add::<ConfigReq, InviteConfig, _, _>(
        RouteDoc {
            path: "/admin/invites/config",
            methods: POST,
            tag,
            summary: "Set the invite settings of an app",
            description: "`app_id` (default `default`); an omitted field keeps its value. `points` 0-1000000, `times` 1-100. Applies to invites from now on; a bad value answers 400 and changes nothing.",
        },
        save_config,
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
    /// Yesterday's invite rank: `[[rank, nick, avatar, invites], ...]`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub y_rank: Vec<Value>,
    /// Today's invite rank, same rows.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub n_rank: Vec<Value>,
}

/// One invitee of 003 `/api/query_share_record/`.
#[derive(Serialize, ToSchema)]
pub struct ShareRecord {
    pub avatar: String,
    pub nickname: String,
    pub c_time: String,
}

/// An admin read of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `POST /admin/invites/config`; an omitted field keeps its value.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub points: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub times: Option<i64>,
}

fn app_or_default(app: &Option<String>) -> String {
    app.clone().unwrap_or_else(|| "default".into())
}

/// The top of the invites board of `day` as 003 rank rows.
async fn invite_rank(state: &AppState, app_id: &str, day: String) -> Result<Vec<Value>, AppError> {
    let board = standings(state, app_id, BoardKey::Invites(day), INVITE_RANK_TOP, None).await?;
    let ids: Vec<i64> = board.top.iter().map(|r| r.user_id).collect();
    let profiles = profiles(&state.stores.db, &ids).await?;
    Ok(board
        .top
        .iter()
        .map(|r| {
            let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
            json!([r.rank, p.nick, p.avatar, r.score.value])
        })
        .collect())
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
    Ok(miniapp::ok(json!(ShareCode {
        share_code: code,
        times,
        y_rank: invite_rank(&state, &s.app_id, day(yesterday)).await?,
        n_rank: invite_rank(&state, &s.app_id, day(today)).await?,
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
    let rows = sqlx::query(
        "SELECT reference, created_at FROM ledger_entries \
         WHERE app_id = $1 AND user_id = $2 AND kind = $3 ORDER BY id DESC LIMIT $4 OFFSET $5",
    )
    .bind(s.app_id.as_str())
    .bind(s.user_id)
    .bind(INVITE_KIND)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&db.read)
    .await?;
    let mut invited = Vec::with_capacity(rows.len());
    for r in &rows {
        let reference: String = r.try_get(0)?;
        let at: i64 = r.try_get(1)?;
        // Written only by `link` as the invitee's id; anything else is not an invite record.
        if let Ok(id) = reference.parse::<i64>() {
            invited.push((id, at));
        }
    }
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
    Ok(miniapp::ok(json!(data)))
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state.stores.db, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    // Every field is checked before anything is written.
    if let Some(v) = p.points.filter(|v| !(0..=INVITE_POINTS_MAX).contains(v)) {
        return Err(
            AppError::invalid(format!("points must be 0-{INVITE_POINTS_MAX}, not {v}")).into(),
        );
    }
    if let Some(v) = p.times.filter(|v| !(1..=INVITE_TIMES_MAX).contains(v)) {
        return Err(
            AppError::invalid(format!("times must be 1-{INVITE_TIMES_MAX}, not {v}")).into(),
        );
    }
    let old = config(&state.stores.db, &app.id).await?;
    let new = InviteConfig::new(
        &app.id,
        p.points.unwrap_or(old.points),
        p.times.unwrap_or(old.times),
    );
    sqlx::query(
        "INSERT INTO invite_settings (app_id, points, times, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id) DO UPDATE SET points = excluded.points, times = excluded.times, \
         updated_at = excluded.updated_at",
    )
    .bind(app.id.as_str())
    .bind(new.points)
    .bind(new.times)
    .bind(now_ms())
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!(new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_codes_use_the_alphabet_and_length() {
        for _ in 0..100 {
            let code = fresh_code();
            assert_eq!(code.len(), SHARE_CODE_LEN);
            assert!(
                code.bytes().all(|b| SHARE_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
        }
    }

    #[test]
    fn the_reward_is_points_times_the_multiplier() {
        assert_eq!(InviteConfig::new("a", 20, 3).reward, 60);
        assert_eq!(InviteConfig::new("a", 0, 5).reward, 0);
    }
}
