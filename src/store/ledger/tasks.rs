//! The ledger-table queries of the tasks slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use std::collections::HashSet;

use crate::db::Db;

/// The idempotency keys among `keys` that the ledger holds for the app: claims already paid.
pub async fn claimed_keys(
    db: &Db,
    app_id: &str,
    keys: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders: Vec<String> = (2..2 + keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT idem_key FROM ledger_entries WHERE app_id = $1 AND idem_key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql).bind(app_id);
    for k in keys {
        query = query.bind(k);
    }
    Ok(query.fetch_all(&db.read).await?.into_iter().collect())
}
