//! The ledger-table queries of the blindbox slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// A committed box opening, as the ledger stored it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BoxOpeningRow {
    pub user_id: i64,
    /// The box's per-day reference.
    pub reference: String,
}

/// How many entries of kind `kind` the user has with `created_at` in `[start, end)`.
pub async fn entries_between(
    db: &Db,
    user_id: i64,
    kind: &str,
    start: i64,
    end: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM ledger_entries \
         WHERE user_id = $1 AND kind = $2 AND created_at >= $3 AND created_at < $4",
    )
    .bind(user_id)
    .bind(kind)
    .bind(start)
    .bind(end)
    .fetch_one(&db.read)
    .await
}

/// The entries of kind `kind` stored in `app_id` under any of `references` (at least one).
pub async fn openings(
    db: &Db,
    app_id: &str,
    kind: &str,
    references: &[&String],
) -> Result<Vec<BoxOpeningRow>, sqlx::Error> {
    let placeholders: Vec<String> = (3..3 + references.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT user_id, reference FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND reference IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as(&sql).bind(app_id).bind(kind);
    for reference in references {
        query = query.bind(*reference);
    }
    query.fetch_all(&db.read).await
}
