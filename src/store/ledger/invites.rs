//! The ledger-table queries of the invites slice, as named functions: only the ledger store touches
//! `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use crate::db::Db;

/// An invite reward entry of an inviter, as the ledger stored it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteEntryRow {
    /// The invitee's user id, as text.
    pub reference: String,
    pub created_at: i64,
}

/// The entries of `kind` (the invite kind) of `user_id` in `app_id`, newest first, one page.
pub async fn invite_entries(
    db: &Db,
    app_id: &str,
    user_id: i64,
    kind: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<InviteEntryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reference, created_at FROM ledger_entries \
         WHERE app_id = $1 AND user_id = $2 AND kind = $3 ORDER BY id DESC LIMIT $4 OFFSET $5",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(kind)
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.read)
    .await
}
