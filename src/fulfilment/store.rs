//! All SQL on `fulfilment_orders`: claiming and settling deliveries, and the admin listing/retry.

use sqlx::Row;

use crate::db::Db;

/// A claimed order as the claim returns it.
pub(super) struct ClaimedRow {
    pub id: i64,
    pub app_id: String,
    pub platform_uid: Option<String>,
    pub source_kind: String,
    pub reference: String,
    pub reward_type: String,
    pub amount: i64,
    pub detail: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Orders of every app not delivered yet: pending, and dead-lettered.
pub(super) async fn backlog(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    let pending =
        sqlx::query_scalar("SELECT COUNT(*) FROM fulfilment_orders WHERE status = 'pending'")
            .fetch_one(&db.read)
            .await?;
    let dead = sqlx::query_scalar("SELECT COUNT(*) FROM fulfilment_orders WHERE status = 'dead'")
        .fetch_one(&db.read)
        .await?;
    Ok((pending, dead))
}

/// Claims up to `limit` due orders (`next_attempt_at <= now`): moves their next attempt to
/// `lease_until` and returns them.
pub(super) async fn claim_due(
    db: &Db,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "UPDATE fulfilment_orders SET next_attempt_at = $1 \
         WHERE id IN (SELECT id FROM fulfilment_orders WHERE status = 'pending' \
         AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT {limit}{}) \
         AND status = 'pending' AND next_attempt_at <= $2 \
         RETURNING id, app_id, user_id, source_kind, reference, reward_type, amount, detail, attempts, \
         created_at, (SELECT platform_uid FROM users u WHERE u.id = fulfilment_orders.user_id) AS platform_uid",
        db.skip_locked()
    ))
    .bind(lease_until)
    .bind(now)
    .fetch_all(&db.write)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        claimed.push(ClaimedRow {
            id: r.try_get("id")?,
            app_id: r.try_get("app_id")?,
            platform_uid: r.try_get("platform_uid")?,
            source_kind: r.try_get("source_kind")?,
            reference: r.try_get("reference")?,
            reward_type: r.try_get("reward_type")?,
            amount: r.try_get("amount")?,
            detail: r.try_get("detail")?,
            attempts: r.try_get("attempts")?,
            created_at: r.try_get("created_at")?,
        });
    }
    Ok(claimed)
}

/// Marks order `id` delivered at `now`.
pub(super) async fn mark_delivered(db: &Db, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE fulfilment_orders SET status = 'delivered', delivered_at = $1, \
         attempts = attempts + 1, last_error = '' WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Counts a failed attempt of pending order `id` and schedules the next at `next_attempt_at`.
pub(super) async fn schedule_retry(
    db: &Db,
    id: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE fulfilment_orders SET attempts = attempts + 1, next_attempt_at = $1, \
         last_error = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(next_attempt_at)
    .bind(error)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Counts the last failed attempt of pending order `id` and dead-letters it.
pub(super) async fn mark_dead(db: &Db, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE fulfilment_orders SET status = 'dead', attempts = attempts + 1, last_error = $1 \
         WHERE id = $2 AND status = 'pending'",
    )
    .bind(error)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// One order as the admin listing reads it.
pub(super) struct OrderRow {
    pub id: i64,
    pub app_id: String,
    pub user_id: i64,
    pub source_kind: String,
    pub reference: String,
    pub reward_type: String,
    pub amount: i64,
    pub detail: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// Orders of `app_id`, all when `status` is empty.
const ORDERS_FILTER: &str = "app_id = $1 AND ($2 = '' OR status = $2)";

/// How many orders of `app_id` have `status` (all when empty).
pub(super) async fn count_orders(db: &Db, app_id: &str, status: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM fulfilment_orders WHERE {ORDERS_FILTER}"
    ))
    .bind(app_id)
    .bind(status)
    .fetch_one(&db.read)
    .await
}

/// A page of the orders of `app_id` with `status` (all when empty), newest first.
pub(super) async fn list_orders(
    db: &Db,
    app_id: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, app_id, user_id, source_kind, reference, reward_type, amount, detail, status, \
         attempts, next_attempt_at, last_error, created_at, delivered_at FROM fulfilment_orders \
         WHERE {ORDERS_FILTER} ORDER BY id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(app_id)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.read)
    .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        orders.push(OrderRow {
            id: r.try_get("id")?,
            app_id: r.try_get("app_id")?,
            user_id: r.try_get("user_id")?,
            source_kind: r.try_get("source_kind")?,
            reference: r.try_get("reference")?,
            reward_type: r.try_get("reward_type")?,
            amount: r.try_get("amount")?,
            detail: r.try_get("detail")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            delivered_at: r.try_get("delivered_at")?,
        });
    }
    Ok(orders)
}

/// Makes pending or dead-lettered order `id` due at `now` (a dead one pending again with a
/// fresh count of attempts); returns how many rows changed (0 or 1).
pub(super) async fn make_due(db: &Db, id: i64, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE fulfilment_orders SET next_attempt_at = $1, \
         attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END, status = 'pending' \
         WHERE id = $2 AND status IN ('pending', 'dead')",
    )
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected())
}

/// The status of order `id`, if it exists.
pub(super) async fn order_status(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM fulfilment_orders WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.read)
        .await
}
