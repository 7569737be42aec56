//! The leaderboard slice's SQL: user profiles, steps scores, the app list and the daily archive
//! (the ledger's scores are in `crate::store::ledger::leaderboard`).

use std::collections::HashMap;

use points_actors::leaderboard::Score;
use sqlx::Row;

use super::Profile;
use crate::clock::now_ms;
use crate::db::Db;

/// The profiles of `ids` (absent users are left out).
pub async fn profiles(db: &Db, ids: &[i64]) -> Result<HashMap<i64, Profile>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    if let Some(pool) = &db.hot_pg {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, platform_uid, nick, avatar FROM users WHERE id = ANY($1::bigint[])",
        )
        .bind(ids)
        .fetch_all(pool)
        .await?;
        return Ok(rows
            .into_iter()
            .map(|(id, uid, nick, avatar)| (id, Profile { uid, nick, avatar }))
            .collect());
    }
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT id, platform_uid, nick, avatar FROM users WHERE {}",
        db.in_ints("id", "$1")
    );
    let rows = sqlx::query(&sql).bind(list).fetch_all(&db.read).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("id")?,
                Profile {
                    uid: r.try_get("platform_uid")?,
                    nick: r.try_get("nick")?,
                    avatar: r.try_get("avatar")?,
                },
            ))
        })
        .collect()
}

/// Every user's steps of `day` in `app_id` (or every app).
pub(super) async fn steps_scores(
    db: &Db,
    app_id: Option<&str>,
    day: &str,
) -> Result<Vec<(String, i64, Score)>, sqlx::Error> {
    let filter = if app_id.is_some() {
        "AND app_id = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT app_id, user_id, steps, reached_at FROM walk_steps WHERE day = $1 {filter}"
    );
    let mut q = sqlx::query(&sql).bind(day);
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
                    value: r.try_get("steps")?,
                    reached_at: r.try_get("reached_at")?,
                    version: 0,
                },
            ))
        })
        .collect()
}

pub(super) async fn app_ids(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM apps ORDER BY id")
        .fetch_all(&db.read)
        .await
}

/// Archives `rows` (already ranked) as `board`'s results of `period`, unless that period is
/// archived already. Returns whether it archived now.
pub(super) async fn archive(
    db: &Db,
    app_id: &str,
    board: &str,
    period: &str,
    rows: &[(i64, Score)],
) -> Result<bool, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO leaderboard_periods (app_id, board, period, entries, archived_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, board, period) DO NOTHING",
    )
    .bind(app_id)
    .bind(board)
    .bind(period)
    .bind(rows.len() as i64)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        tx.rollback().await?;
        return Ok(false);
    }
    for (i, (user_id, score)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO leaderboard_archive (app_id, board, period, place, user_id, score, reached_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app_id)
        .bind(board)
        .bind(period)
        .bind(i as i64 + 1)
        .bind(*user_id)
        .bind(score.value)
        .bind(score.reached_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn archived(
    db: &Db,
    app_id: &str,
    board: &str,
    period: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT entries FROM leaderboard_periods WHERE app_id = $1 AND board = $2 AND period = $3",
    )
    .bind(app_id)
    .bind(board)
    .bind(period)
    .fetch_optional(&db.read)
    .await?;
    Ok(found.is_some())
}

/// The newest archived period of `board` (or `period` itself when given), with when it was
/// archived.
pub(super) async fn archive_head(
    db: &Db,
    app_id: &str,
    board: &str,
    period: Option<String>,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let head = sqlx::query(
        "SELECT period, archived_at FROM leaderboard_periods WHERE app_id = $1 AND board = $2 \
         AND ($3 = '' OR period = $3) ORDER BY period DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(board)
    .bind(period.unwrap_or_default())
    .fetch_optional(&db.read)
    .await?;
    head.map(|h| Ok((h.try_get("period")?, h.try_get("archived_at")?)))
        .transpose()
}

/// One archived place of a board.
pub(super) struct ArchivedRow {
    pub place: i64,
    pub user_id: i64,
    pub score: i64,
    pub reached_at: i64,
}

/// The archived places of `board` in `period`, best first.
pub(super) async fn archived_rows(
    db: &Db,
    app_id: &str,
    board: &str,
    period: &str,
) -> Result<Vec<ArchivedRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT place, user_id, score, reached_at FROM leaderboard_archive \
         WHERE app_id = $1 AND board = $2 AND period = $3 ORDER BY place",
    )
    .bind(app_id)
    .bind(board)
    .bind(period)
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ArchivedRow {
                place: r.try_get("place")?,
                user_id: r.try_get("user_id")?,
                score: r.try_get("score")?,
                reached_at: r.try_get("reached_at")?,
            })
        })
        .collect()
}
