//! The redpack slice's own SQL (sessions, cards, pools and their packets) and its row types.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::db::{Col, Db};

#[derive(sqlx::FromRow)]
pub(crate) struct CardRow {
    pub id: i64,
    pub app_id: String,
    pub batch_id: i64,
    pub reward_type: String,
    pub sum: i64,
    pub unit: i64,
    pub ticket: i64,
    pub start_time: String,
    pub end_time: String,
    pub status: String,
}

const CARD_COLUMNS: &str =
    "id, app_id, batch_id, reward_type, sum, unit, ticket, start_time, end_time, status";

/// A card with the status of its session.
#[derive(sqlx::FromRow)]
pub(crate) struct CardWithSession {
    #[sqlx(flatten)]
    pub card: CardRow,
    pub session_status: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id: i64,
    pub name: String,
    pub start_time: String,
    pub end_time: String,
    pub status: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRow {
    pub app_id: String,
    pub title: String,
    pub total_points: i64,
    pub count: i64,
    pub split: String,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub status: String,
}

/// A pool as the admin list shows it.
#[derive(sqlx::FromRow)]
pub(crate) struct PoolListRow {
    pub id: i64,
    pub title: String,
    pub total_points: i64,
    pub count: i64,
    pub split: String,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub status: String,
}

#[derive(sqlx::FromRow)]
struct ClickRow {
    id: i64,
    clicks: i64,
}

/// A new card, as the admin route checked it.
pub(crate) struct NewCard<'a> {
    pub app_id: &'a str,
    pub batch_id: i64,
    pub reward_type: &'a str,
    pub sum: i64,
    pub unit: i64,
    pub ticket: i64,
    pub start_time: &'a str,
    pub end_time: &'a str,
    pub now: i64,
}

/// A new pool and its packets, as the admin route checked and split it.
pub(crate) struct NewPool<'a> {
    pub app_id: &'a str,
    pub title: &'a str,
    pub total_points: i64,
    pub count: i64,
    pub split: &'a str,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub now: i64,
    pub packets: &'a [i64],
}

pub(crate) async fn sessions_of(db: &Db, app_id: &str) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, start_time, end_time, status FROM redpack_sessions \
         WHERE app_id = $1 ORDER BY start_time, id",
    )
    .bind(app_id)
    .fetch_all(&db.read)
    .await
}

pub(crate) async fn cards_of(db: &Db, app_id: &str) -> Result<Vec<CardRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CARD_COLUMNS} FROM redpack_cards WHERE app_id = $1 ORDER BY start_time, id"
    ))
    .bind(app_id)
    .fetch_all(&db.read)
    .await
}

pub(crate) async fn card(db: &Db, card_id: i64) -> Result<Option<CardWithSession>, sqlx::Error> {
    // `AS session_status`: the card's own `status` already holds that name.
    sqlx::query_as(&format!(
        "SELECT {}, s.status AS session_status FROM redpack_cards c JOIN redpack_sessions s ON s.id = c.batch_id \
         WHERE c.id = $1",
        CARD_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(card_id)
    .fetch_optional(&db.read)
    .await
}

pub(crate) async fn pool(db: &Db, pool_id: i64) -> Result<Option<PoolRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT app_id, title, total_points, count, split, starts_at, ends_at, status \
         FROM redpack_pools WHERE id = $1",
    )
    .bind(pool_id)
    .fetch_optional(&db.read)
    .await
}

/// The amounts of a pool's packets, in order.
pub(crate) async fn pool_packets(db: &Db, pool_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT amount FROM redpack_pool_packets WHERE pool_id = $1 ORDER BY seq")
        .bind(pool_id)
        .fetch_all(&db.write)
        .await
}

/// Counts one click on a card of `app_id` in `batch_id`; the rows changed (0 if none matched).
pub(crate) async fn add_click(
    db: &Db,
    card_id: i64,
    batch_id: i64,
    app_id: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE redpack_cards SET clicks = clicks + 1 WHERE id = $1 AND batch_id = $2 AND app_id = $3",
    )
    .bind(card_id)
    .bind(batch_id)
    .bind(app_id)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn insert_session(
    db: &Db,
    app_id: &str,
    name: &str,
    start: &str,
    end: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO redpack_sessions (app_id, name, start_time, end_time, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, '10', $5, $5) RETURNING id",
    )
    .bind(app_id)
    .bind(name)
    .bind(start)
    .bind(end)
    .bind(now)
    .fetch_one(&db.write)
    .await
}

/// The app a pool belongs to, if it exists.
pub(crate) async fn pool_app(db: &Db, pool_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT app_id FROM redpack_pools WHERE id = $1")
        .bind(pool_id)
        .fetch_optional(&db.read)
        .await
}

/// The app a session belongs to, if it exists.
pub(crate) async fn session_app(db: &Db, batch_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT app_id FROM redpack_sessions WHERE id = $1")
        .bind(batch_id)
        .fetch_optional(&db.read)
        .await
}

pub(crate) async fn insert_card(db: &Db, card: &NewCard<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO redpack_cards (app_id, batch_id, reward_type, sum, unit, ticket, start_time, \
         end_time, status, clicks, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '10', 0, $9, $9) RETURNING id",
    )
    .bind(card.app_id)
    .bind(card.batch_id)
    .bind(card.reward_type)
    .bind(card.sum)
    .bind(card.unit)
    .bind(card.ticket)
    .bind(card.start_time)
    .bind(card.end_time)
    .bind(card.now)
    .fetch_one(&db.write)
    .await
}

/// Inserts the pool and its packets in one transaction; the pool's id.
pub(crate) async fn insert_pool(db: &Db, pool: &NewPool<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO redpack_pools (app_id, title, total_points, count, split, starts_at, ends_at, \
         status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '10', $8) RETURNING id",
    )
    .bind(pool.app_id)
    .bind(pool.title)
    .bind(pool.total_points)
    .bind(pool.count)
    .bind(pool.split)
    .bind(pool.starts_at)
    .bind(pool.ends_at)
    .bind(pool.now)
    .fetch_one(&mut *tx)
    .await?;
    let rows: Vec<Value> = pool
        .packets
        .iter()
        .enumerate()
        .map(|(seq, amount)| json!({"seq": seq, "amount": amount}))
        .collect();
    sqlx::query(&format!(
        "INSERT INTO redpack_pool_packets (pool_id, seq, amount) SELECT $2, r.seq, r.amount FROM {} r",
        db.json_records("$1", &[("seq", Col::Int), ("amount", Col::Int)])
    ))
    .bind(Value::Array(rows).to_string())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Sets the status of row `id` of `table` (`redpack_cards`, `redpack_sessions` or
/// `redpack_pools`); the rows changed.
pub(crate) async fn set_status(
    db: &Db,
    table: &str,
    status: &str,
    id: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let statement = match table {
        "redpack_pools" => "UPDATE redpack_pools SET status = $1 WHERE id = $2".to_string(),
        _ => format!("UPDATE {table} SET status = $1, updated_at = $3 WHERE id = $2"),
    };
    let done = sqlx::query(&statement)
        .bind(status)
        .bind(id)
        .bind(now)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected())
}

/// The ids of a session's cards.
pub(crate) async fn card_ids_of_session(db: &Db, batch_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM redpack_cards WHERE batch_id = $1")
        .bind(batch_id)
        .fetch_all(&db.read)
        .await
}

/// Clicks per card of an app.
pub(crate) async fn card_clicks(db: &Db, app_id: &str) -> Result<BTreeMap<i64, i64>, sqlx::Error> {
    let rows: Vec<ClickRow> =
        sqlx::query_as("SELECT id, clicks FROM redpack_cards WHERE app_id = $1")
            .bind(app_id)
            .fetch_all(&db.read)
            .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.clicks)).collect())
}

/// An app's pools, oldest first.
pub(crate) async fn pools_of(db: &Db, app_id: &str) -> Result<Vec<PoolListRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, title, total_points, count, split, starts_at, ends_at, status \
         FROM redpack_pools WHERE app_id = $1 ORDER BY id",
    )
    .bind(app_id)
    .fetch_all(&db.read)
    .await
}
