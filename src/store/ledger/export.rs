//! Reading entries for an export in chunks, in `(created_at, id)` order: each chunk starts
//! after the last row of the one before, so an export of any size holds one chunk at a time
//! and no connection between chunks.

use super::{EntryRow, LedgerDb};

/// Which entries an export holds: created in `[from, to)` (epoch ms), of one user or of a
/// whole app.
#[derive(Debug, Clone)]
pub struct ExportScope {
    pub app_id: String,
    /// Only this user's entries (internal id); all users of the app when `None`.
    pub user_id: Option<i64>,
    pub from: i64,
    pub to: i64,
}

/// One exported entry, with its user's platform id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    #[sqlx(flatten)]
    pub entry: EntryRow,
    pub platform_uid: String,
}

impl LedgerDb {
    /// Up to `limit` entries of `scope` after `after` (the `(created_at, id)` of the previous
    /// chunk's last row), oldest first.
    pub async fn export_chunk(
        &self,
        scope: &ExportScope,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<ExportRow>, sqlx::Error> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        // Parameters appear in the text in their numeric order (SQLite numbers them so).
        let who = if scope.user_id.is_some() {
            "e.user_id = $5"
        } else {
            "e.app_id = $5"
        };
        let sql = format!(
            "SELECT e.id, e.app_id, e.user_id, u.platform_uid, e.amount, e.kind, e.idem_key, e.reference, e.description, \
             e.expires_at, e.balance_after, e.created_at \
             FROM ledger_entries e JOIN users u ON u.id = e.user_id \
             WHERE e.created_at >= $1 AND e.created_at < $2 \
             AND (e.created_at > $3 OR (e.created_at = $3 AND e.id > $4)) AND {who} \
             ORDER BY e.created_at, e.id LIMIT $6"
        );
        let q = sqlx::query_as::<_, ExportRow>(&sql)
            .bind(scope.from)
            .bind(scope.to)
            .bind(after_at)
            .bind(after_id);
        let q = match scope.user_id {
            Some(user) => q.bind(user),
            None => q.bind(scope.app_id.as_str()),
        };
        q.bind(limit).fetch_all(&self.db.read).await
    }
}
