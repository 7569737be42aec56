//! The ledger-table queries of the leaderboard slice, as named functions: only the ledger store
//! touches `balances`, `ledger_entries`, `credit_lots` and `ledger_counters`.

use points_actors::leaderboard::{Score, INVITE_KIND};
use sqlx::Row;

use crate::db::Db;

/// Every user's balance in `app_id` (or every app), as the points board scores it: the newest
/// non-zero entry gives the balance, the time it was reached and the version.
pub async fn points_scores(
    db: &Db,
    app_id: Option<&str>,
) -> Result<Vec<(String, i64, Score)>, sqlx::Error> {
    let (filter, outer) = match app_id {
        Some(_) => ("AND app_id = $1", "WHERE e.app_id = $1"),
        None => ("", ""),
    };
    let sql = format!(
        "SELECT e.app_id, e.user_id, e.balance_after, e.created_at, e.id FROM ledger_entries e \
         JOIN (SELECT user_id, MAX(id) AS last_id FROM ledger_entries WHERE amount <> 0 {filter} \
               GROUP BY user_id) m ON e.id = m.last_id {outer}"
    );
    let mut q = sqlx::query(&sql);
    if let Some(app) = app_id {
        q = q.bind(app);
    }
    let rows = q.fetch_all(&db.read).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("app_id")?,
                r.try_get("user_id")?,
                Score {
                    value: r.try_get("balance_after")?,
                    reached_at: r.try_get("created_at")?,
                    version: r.try_get("id")?,
                },
            ))
        })
        .collect()
}

/// Invites each user of `app_id` earned in `[from, to)` (epoch ms): one per `invite` entry; the
/// time of the newest breaks ties.
pub async fn invite_scores(
    db: &Db,
    app_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Score)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT user_id, COUNT(*) AS invites, MAX(created_at) AS reached_at, MAX(id) AS version FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND created_at >= $3 AND created_at < $4 GROUP BY user_id",
    )
    .bind(app_id)
    .bind(INVITE_KIND)
    .bind(from)
    .bind(to)
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("user_id")?,
                Score {
                    value: r.try_get("invites")?,
                    reached_at: r.try_get("reached_at")?,
                    version: r.try_get("version")?,
                },
            ))
        })
        .collect()
}
