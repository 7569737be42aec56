//! The ledger-table queries of the lottery slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// A committed lottery draw, as the ledger stored it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LotteryDrawRow {
    pub user_id: i64,
    /// `lottery:<app>:<day>:<user>:<n>`.
    pub idem_key: String,
}

/// The draws stored in `app_id` with entry kind `kind` under `reference` (a day's reference).
pub async fn draws_of_day(
    db: &Db,
    app_id: &str,
    kind: &str,
    reference: &str,
) -> Result<Vec<LotteryDrawRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, idem_key FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND reference = $3",
    )
    .bind(app_id)
    .bind(kind)
    .bind(reference)
    .fetch_all(&db.read)
    .await
}
