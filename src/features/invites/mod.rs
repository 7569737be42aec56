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
//!
//! Files: `store.rs` the slice's own SQL (the invite records are read through
//! `crate::store::ledger::invites`), `routes_mini.rs` the 003 routes, `routes_admin.rs` the admin
//! routes.

use actix_web::web;
use points_actors::leaderboard::INVITE_KIND;
use points_actors::{Change, LedgerError, Limit, Submit};
use rand::RngExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::Db;
use crate::error::AppError;
use crate::http::{ApiDoc, Page};
use crate::points;
use crate::state::AppState;
use crate::store::User;

mod routes_admin;
mod routes_mini;
mod store;

pub use routes_admin::{AppReq, ConfigReq};
pub use routes_mini::{OpenidReq, RecordReq, ShareCode, ShareRecord};

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
/// Share code characters: upper-case letters and digits without 0/O and 1/I.
const SHARE_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

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
    let row = store::settings(db, app_id).await?;
    Ok(match row {
        Some(r) => InviteConfig::new(app_id, r.points, r.times),
        None => InviteConfig::new(app_id, INVITE_POINTS_DEFAULT, INVITE_TIMES_DEFAULT),
    })
}

/// Applies the (already checked) `points` and `times` to the invite settings of `app_id` and
/// stores the result; `None` keeps the value.
async fn save_config(
    db: &Db,
    app_id: &str,
    points: Option<i64>,
    times: Option<i64>,
) -> Result<InviteConfig, AppError> {
    let old = config(db, app_id).await?;
    let new = InviteConfig::new(
        app_id,
        points.unwrap_or(old.points),
        times.unwrap_or(old.times),
    );
    store::save_settings(db, app_id, new.points, new.times, now_ms()).await?;
    Ok(new)
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
    Ok(store::code_of(db, app_id, user_id).await?)
}

/// The user's share code, created on first ask. Concurrent first asks agree on one code.
pub async fn share_code(db: &Db, app_id: &str, user_id: i64) -> Result<String, AppError> {
    if let Some(code) = stored_code(db, app_id, user_id).await? {
        return Ok(code);
    }
    for _ in 0..SHARE_CODE_ATTEMPTS_MAX {
        // Nothing is inserted when the user already has a code (another request won) or the
        // code is taken in the app; either way the read below tells which.
        store::insert_code(db, app_id, user_id, fresh_code(), now_ms()).await?;
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
    Ok(store::code_owner(db, app_id, code).await?)
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
        expire_lot: None,
        fence: None,
    };
    if reward == 0 {
        // A reward of nothing still records the invite.
        change.limits.push(Limit { key, max: 1 });
    }
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => Ok(Some(inviter)),
        // Another login of the same invitee linked it first (with other parameters).
        Err(LedgerError::Conflict | LedgerError::LimitReached { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The users `user_id` invited in `app_id`, newest first, one page: (invitee id, rewarded at).
async fn invited(
    db: &Db,
    app_id: &str,
    user_id: i64,
    page: &Page,
) -> Result<Vec<(i64, i64)>, AppError> {
    let rows = crate::store::ledger::invites::invite_entries(
        db,
        app_id,
        user_id,
        INVITE_KIND,
        page.limit,
        page.offset,
    )
    .await?;
    let mut invited = Vec::with_capacity(rows.len());
    for r in &rows {
        let reference: &String = &r.reference;
        let at: i64 = r.created_at;
        // Written only by `link` as the invitee's id; anything else is not an invite record.
        if let Ok(id) = reference.parse::<i64>() {
            invited.push((id, at));
        }
    }
    Ok(invited)
}

/// Registers the invite routes (003, admin), recording each in `doc`.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
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
