//! The ledger-table queries of the signin slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// The amount of the committed entry stored under `idem_key` in `app_id`, if there is one.
pub async fn entry_amount(
    db: &Db,
    app_id: &str,
    idem_key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT amount FROM ledger_entries WHERE app_id = $1 AND idem_key = $2")
        .bind(app_id)
        .bind(idem_key)
        .fetch_optional(&db.read)
        .await
}
