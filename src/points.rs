//! Point changes as the facades ask for them: find the user, pick the expiry, build the
//! [`Change`] and wait for the ledger's committed answer. Expiry goes the same way: every due
//! lot becomes an expiry change of the ledger actor, so its listeners (leaderboards) see it like
//! any other change.

use actix::Addr;
use futures_util::future::join_all;
use points_actors::{Change, LedgerActor, LedgerError, Limit, Outcome, Submit};

use crate::clock::now_ms;
use crate::dialect::{IdempotencyKey, Points};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{LedgerDb, User};

pub use crate::dialect::input::IDEMPOTENCY_KEY_BYTES_MAX;
/// Longest free text (description, reference, kind) stored with an entry.
pub const ENTRY_TEXT_CHARS_MAX: usize = 200;

/// A change a facade wants applied.
pub struct ChangeRequest<'a> {
    pub user: &'a User,
    pub amount: Points,
    pub kind: &'a str,
    /// The caller's idempotency key, already namespaced by facade (`core:`, `open:` ...);
    /// `None` makes the change non-repeatable.
    pub idem_key: Option<String>,
    pub reference: &'a str,
    pub description: &'a str,
    /// Explicit expiry (epoch ms); `None` uses the app's default life of points.
    pub expires_at: Option<i64>,
    pub limits: Vec<Limit>,
}

/// Checks a client idempotency key and namespaces it (see [`IdempotencyKey`]).
pub fn idem_key(namespace: &str, raw: &str) -> Result<IdempotencyKey, AppError> {
    IdempotencyKey::parse(namespace, raw)
}

/// The values of ledger counters, in the order of `keys` (an absent counter is 0).
pub async fn counter_values(state: &AppState, keys: &[String]) -> Result<Vec<i64>, AppError> {
    Ok(crate::store::ledger::counter_values(&state.stores.db, keys).await?)
}

/// Checks a free-text field's length.
pub fn text<'a>(field: &str, value: &'a str) -> Result<&'a str, AppError> {
    if value.chars().count() > ENTRY_TEXT_CHARS_MAX {
        return Err(AppError::invalid(format!(
            "{field} is longer than {ENTRY_TEXT_CHARS_MAX} characters"
        )));
    }
    Ok(value)
}

/// The user `(app, platform uid)`, or a not-found error.
pub async fn user(state: &AppState, app_id: &str, uid: &str) -> Result<User, AppError> {
    let key = format!("{app_id}\u{0}{uid}");
    state
        .caches
        .users
        .get_or_load(&key, || state.stores.accounts.user_by_uid(app_id, uid))
        .await?
        .ok_or_else(AppError::unknown_user)
}

/// When points credited now in `app_id` expire by default.
pub async fn default_expiry(state: &AppState, app_id: &str) -> Result<Option<i64>, AppError> {
    let months = crate::auth::app(state, app_id)
        .await?
        .settings
        .expiry_months();
    Ok((months > 0).then(|| state.clock.expiry_after_months(now_ms(), months)))
}

/// Checks a change's texts without applying it, so a facade can refuse bad input before it
/// stores anything (its amount is checked by [`Points::parse`]).
pub fn check(kind: &str, reference: &str, description: &str) -> Result<(), AppError> {
    text("type", kind)?;
    text("reference", reference)?;
    text("description", description)?;
    Ok(())
}

/// Applies a change through the ledger actor; answers after its commit.
pub async fn apply(state: &AppState, req: ChangeRequest<'_>) -> Result<Outcome, AppError> {
    check(req.kind, req.reference, req.description)?;
    let expires_at = if req.amount.is_credit() {
        match req.expires_at {
            Some(at) => Some(at),
            None => default_expiry(state, &req.user.app_id).await?,
        }
    } else {
        None
    };
    let change = Change {
        app_id: req.user.app_id.clone(),
        user_id: req.user.id,
        amount: req.amount.get(),
        kind: req.kind.to_string(),
        idem_key: req
            .idem_key
            .unwrap_or_else(|| format!("auto:{}", uuid::Uuid::new_v4())),
        reference: req.reference.to_string(),
        description: req.description.to_string(),
        expires_at,
        limits: req.limits,
        legs: Vec::new(),
        order: None,
        expire_lot: None,
        fence: None,
    };
    Ok(state.ledger.send(Submit(change)).await??)
}

/// Most due lots read and handed to the ledger at once.
const EXPIRE_PAGE_LOTS: i64 = 500;

/// Expires every lot due at `now` through the ledger actor and returns how many points expired.
/// Safe to run twice, late, or on two nodes at once: an expiry debits what its lot still holds
/// when its batch commits, and its key (`expire:<lot>`) is unique, so a second run replays.
pub async fn expire_due(
    ledger: &Addr<LedgerActor>,
    store: &LedgerDb,
    now: i64,
) -> Result<i64, AppError> {
    let mut expired = 0;
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let (lots, cursor) = store.due_lots(now, after, EXPIRE_PAGE_LOTS).await?;
        let Some(cursor) = cursor else {
            return Ok(expired);
        };
        after = cursor;
        let answers =
            join_all(lots.into_iter().map(|lot| {
                ledger.send(Submit(Change::expiry(lot.app_id, lot.user_id, lot.lot_id)))
            }))
            .await;
        for answer in answers {
            match answer? {
                Ok(outcome) => expired -= outcome.amount,
                // Spent between the read and the commit: nothing was left to expire.
                Err(LedgerError::InvalidAmount(0)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The next expiry of a user's points: `(instant, points)`, or `None`.
pub async fn next_expiry(state: &AppState, user_id: i64) -> Result<Option<(i64, i64)>, AppError> {
    Ok(state
        .stores
        .ledger
        .upcoming_expiries(user_id, now_ms(), 1)
        .await?
        .into_iter()
        .next())
}
