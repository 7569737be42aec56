//! Reads of the ledger's counters (`ledger_counters`): stock taken, allowances used, claims made.
//! Counters are written only by the ledger batch; slices read them through these functions.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::Db;

/// The values of ledger counters, in the order of `keys` (an absent counter is 0).
pub async fn counter_values(db: &Db, keys: &[String]) -> Result<Vec<i64>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT counter_key, count FROM ledger_counters WHERE counter_key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for k in keys {
        query = query.bind(k);
    }
    let rows = query.fetch_all(&db.read).await?;
    let mut counts = HashMap::new();
    for r in &rows {
        let key: String = r.try_get("counter_key")?;
        let count: i64 = r.try_get("count")?;
        counts.insert(key, count);
    }
    Ok(keys
        .iter()
        .map(|k| counts.get(k).copied().unwrap_or(0))
        .collect())
}
