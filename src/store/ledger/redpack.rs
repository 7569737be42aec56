//! The ledger-table queries of the redpack slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// A committed pool grab, as the ledger stored it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PoolGrabRow {
    pub user_id: i64,
    pub platform_uid: String,
    /// `pool:<id>:<seq>`.
    pub reference: String,
    pub amount: i64,
    pub created_at: i64,
}

/// A card win, as the radio names it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RadioRow {
    pub nick: String,
    pub platform_uid: String,
    /// `card:<id>:<day>`.
    pub reference: String,
}

/// The value of one stock counter of a card, if the counter exists.
pub async fn card_stock_taken(db: &Db, counter: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT count FROM ledger_counters WHERE counter_key = $1")
        .bind(counter)
        .fetch_optional(&db.write)
        .await
}

/// The users whose red-packet grab is stored under `reference` in `app_id`.
pub async fn card_grabbers(
    db: &Db,
    app_id: &str,
    reference: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM ledger_entries WHERE app_id = $1 AND kind = 'redpack' AND reference = $2",
    )
    .bind(app_id)
    .bind(reference)
    .fetch_all(&db.write)
    .await
}

/// The committed pool grabs of `app_id` whose reference is in `[from, to)`, in commit order.
pub async fn pool_grabs(
    db: &Db,
    app_id: &str,
    from: &str,
    to: &str,
) -> Result<Vec<PoolGrabRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.user_id, u.platform_uid, e.reference, e.amount, e.created_at \
         FROM ledger_entries e JOIN users u ON u.id = e.user_id \
         WHERE e.app_id = $1 AND e.kind = 'redpack_pool' \
         AND e.reference >= $2 AND e.reference < $3 ORDER BY e.id",
    )
    .bind(app_id)
    .bind(from)
    .bind(to)
    .fetch_all(&db.write)
    .await
}

/// The latest `limit` card wins of `app_id`, newest first.
pub async fn radio_wins(db: &Db, app_id: &str, limit: usize) -> Result<Vec<RadioRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT u.nick, u.platform_uid, e.reference FROM ledger_entries e \
         JOIN users u ON u.id = e.user_id WHERE e.app_id = $1 AND e.kind = 'redpack' \
         ORDER BY e.id DESC LIMIT {limit}"
    ))
    .bind(app_id)
    .fetch_all(&db.read)
    .await
}
