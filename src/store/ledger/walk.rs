//! The ledger-table queries of the walk slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// Whether the ledger holds an entry of `app_id` under `idem_key` (a day's exchange is done).
pub async fn entry_exists(db: &Db, app_id: &str, idem_key: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM ledger_entries WHERE app_id = $1 AND idem_key = $2")
            .bind(app_id)
            .bind(idem_key)
            .fetch_optional(&db.read)
            .await?;
    Ok(found.is_some())
}
