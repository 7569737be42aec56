//! The shop's own tables in SQL: the catalog (`shop_prizes`) and the rule text (`shop_rules`).

use sqlx::Row;

use super::{PrizeInput, SHOP_PRIZES_MAX};
use crate::db::Db;

/// A catalog row.
#[derive(Debug, Clone)]
pub(super) struct Prize {
    pub(super) id: i64,
    pub(super) app_id: String,
    pub(super) key: String,
    pub(super) title: String,
    pub(super) desc: String,
    pub(super) icon: String,
    pub(super) face_value: i64,
    pub(super) total: i64,
    pub(super) kind: String,
    pub(super) limit: String,
    pub(super) limit_count: i64,
    pub(super) points: i64,
    pub(super) sort: i64,
    pub(super) status: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

const PRIZE_COLUMNS: &str = "id, app_id, prize_key, title, description, icon, face_value, total, \
     prize_type, exchange_limit, limit_count, points, sort, status, created_at, updated_at";

fn prize_from_row(r: &sqlx::any::AnyRow) -> Result<Prize, sqlx::Error> {
    Ok(Prize {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        key: r.try_get("prize_key")?,
        title: r.try_get("title")?,
        desc: r.try_get("description")?,
        icon: r.try_get("icon")?,
        face_value: r.try_get("face_value")?,
        total: r.try_get("total")?,
        kind: r.try_get("prize_type")?,
        limit: r.try_get("exchange_limit")?,
        limit_count: r.try_get("limit_count")?,
        points: r.try_get("points")?,
        sort: r.try_get("sort")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Whether `e` is a unique-index violation (a `prizeId` another prize of the app uses).
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// The app's prizes in catalog order; deleted ones (status 30) never, off-shelf ones only when
/// `with_off_shelf`.
pub(super) async fn prizes_of(
    db: &Db,
    app_id: &str,
    with_off_shelf: bool,
) -> Result<Vec<Prize>, sqlx::Error> {
    let statuses = if with_off_shelf {
        "('10', '20')"
    } else {
        "('10')"
    };
    let sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND status IN {statuses} \
         ORDER BY sort, id LIMIT {SHOP_PRIZES_MAX}"
    );
    let rows = sqlx::query(&sql).bind(app_id).fetch_all(&db.read).await?;
    rows.iter().map(prize_from_row).collect()
}

/// The app's prize with `_id` `id`, deleted ones excluded (read side).
pub(super) async fn prize_by_id(
    db: &Db,
    app_id: &str,
    id: i64,
) -> Result<Option<Prize>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND id = $2 AND status <> '30'"
    );
    sqlx::query(&sql)
        .bind(app_id)
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .as_ref()
        .map(prize_from_row)
        .transpose()
}

/// The app's prize with `prizeId` `key`, deleted ones excluded (read side).
pub(super) async fn prize_by_key(
    db: &Db,
    app_id: &str,
    key: &str,
) -> Result<Option<Prize>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND prize_key = $2 \
         AND status <> '30'"
    );
    sqlx::query(&sql)
        .bind(app_id)
        .bind(key)
        .fetch_optional(&db.read)
        .await?
        .as_ref()
        .map(prize_from_row)
        .transpose()
}

/// A prize as stored, read back from the writer (a prize just saved as deleted included).
pub(super) async fn prize_written(db: &Db, id: i64) -> Result<Prize, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&db.write)
    .await?;
    prize_from_row(&row)
}

/// Prizes the app holds, deleted ones excluded (on the writer, before a create).
pub(super) async fn prize_count(db: &Db, app_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM shop_prizes WHERE app_id = $1 AND status <> '30'")
        .bind(app_id)
        .fetch_one(&db.write)
        .await
}

/// Overwrites prize `id` with `input`, its business id set to `key`.
pub(super) async fn update_prize(
    db: &Db,
    id: i64,
    key: String,
    input: &PrizeInput,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shop_prizes SET prize_key = $1, title = $2, description = $3, icon = $4, \
             face_value = $5, total = $6, prize_type = $7, exchange_limit = $8, \
             limit_count = $9, points = $10, sort = $11, status = $12, updated_at = $13 \
             WHERE id = $14",
    )
    .bind(key)
    .bind(&input.title)
    .bind(&input.desc)
    .bind(&input.icon)
    .bind(input.face_value)
    .bind(input.total)
    .bind(&input.kind)
    .bind(&input.limit)
    .bind(input.limit_count)
    .bind(input.points)
    .bind(input.sort)
    .bind(&input.status)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await
    .map(|_| ())
}

/// Stores a new prize of the app with business id `key`; answers its `_id`.
pub(super) async fn insert_prize(
    db: &Db,
    app_id: &str,
    key: String,
    input: &PrizeInput,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO shop_prizes (app_id, prize_key, title, description, icon, \
         face_value, total, prize_type, exchange_limit, limit_count, points, sort, \
         status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
         RETURNING id",
    )
    .bind(app_id)
    .bind(key)
    .bind(&input.title)
    .bind(&input.desc)
    .bind(&input.icon)
    .bind(input.face_value)
    .bind(input.total)
    .bind(&input.kind)
    .bind(&input.limit)
    .bind(input.limit_count)
    .bind(input.points)
    .bind(input.sort)
    .bind(&input.status)
    .bind(now)
    .fetch_one(&db.write)
    .await
}

/// Sets prize `id`'s shelf status.
pub(super) async fn set_status(
    db: &Db,
    id: i64,
    status: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE shop_prizes SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// The app's saved points rule text, if any.
pub(super) async fn saved_rule(db: &Db, app_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT rule_detail FROM shop_rules WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await
}

/// Saves (or replaces) the app's points rule text.
pub(super) async fn save_rule(
    db: &Db,
    app_id: &str,
    rule: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shop_rules (app_id, rule_detail, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id) DO UPDATE SET rule_detail = excluded.rule_detail, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(rule)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}
