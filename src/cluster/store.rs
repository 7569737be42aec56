//! The cluster's SQL: node heartbeats and activity leases (Postgres, native driver).
//!
//! Every time here is the database's clock in milliseconds ([`DB_NOW_MS`]); a node's own clock
//! never decides whether a lease has run out.

use sqlx::{FromRow, PgPool};

/// The database's clock, in milliseconds since the epoch (a macro, so statements stay `concat!`
/// literals).
macro_rules! db_now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// A node's heartbeat: creates or refreshes its row.
pub(super) async fn heartbeat(pool: &PgPool, node_id: &str, addr: &str) -> sqlx::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO cluster_nodes (node_id, addr, started_ms, last_seen_ms) \
         VALUES ($1, $2, ",
        db_now_ms!(),
        ", ",
        db_now_ms!(),
        ") \
         ON CONFLICT (node_id) DO UPDATE SET addr = EXCLUDED.addr, \
         last_seen_ms = EXCLUDED.last_seen_ms"
    ))
    .bind(node_id)
    .bind(addr)
    .execute(pool)
    .await?;
    Ok(())
}

/// The nodes whose heartbeat the database saw within the last `ttl_ms`.
pub(super) async fn live_nodes(pool: &PgPool, ttl_ms: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(concat!(
        "SELECT node_id FROM cluster_nodes WHERE last_seen_ms >= ",
        db_now_ms!(),
        " - $1"
    ))
    .bind(ttl_ms)
    .fetch_all(pool)
    .await
}

/// Removes a node's row (on a graceful stop).
pub(super) async fn forget_node(pool: &PgPool, node_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1")
        .bind(node_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// An activity's lease row.
#[derive(Debug, Clone, FromRow)]
pub struct LeaseRow {
    pub activity: String,
    pub owner_node: String,
    pub owner_addr: String,
    pub epoch: i64,
    /// Milliseconds until the lease runs out, by the database's clock (negative: it has).
    pub expires_in_ms: i64,
}

/// Takes `activity` for `node_id` when nobody holds it, its lease has run out, or it is held by
/// an earlier run of this same node (whose actors died with it), raising the epoch; in one
/// statement. Answers the row as it is afterwards: this node's with the new epoch, or the
/// holder's.
pub(super) async fn acquire(
    pool: &PgPool,
    activity: &str,
    node_id: &str,
    addr: &str,
    ttl_ms: i64,
) -> sqlx::Result<LeaseRow> {
    let taken: Option<LeaseRow> =
        sqlx::query_as(concat!(
"INSERT INTO activity_leases AS l (activity, owner_node, owner_addr, epoch, lease_until) \
         VALUES ($1, $2, $3, 1, ", db_now_ms!(), " + $4) \
         ON CONFLICT (activity) DO UPDATE SET owner_node = EXCLUDED.owner_node, \
           owner_addr = EXCLUDED.owner_addr, epoch = l.epoch + 1, \
           lease_until = EXCLUDED.lease_until \
         WHERE l.lease_until < ", db_now_ms!(), " OR l.owner_node = EXCLUDED.owner_node \
         RETURNING activity, owner_node, owner_addr, epoch, $4 AS expires_in_ms"
    ))
        .bind(activity)
        .bind(node_id)
        .bind(addr)
        .bind(ttl_ms)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = taken {
        return Ok(row);
    }
    // Held by another node: whoever it is now (it may have changed since the statement above).
    let held: Option<LeaseRow> = sqlx::query_as(concat!(
        "SELECT activity, owner_node, owner_addr, epoch, lease_until - ",
        db_now_ms!(),
        " AS expires_in_ms \
         FROM activity_leases WHERE activity = $1"
    ))
    .bind(activity)
    .fetch_optional(pool)
    .await?;
    held.ok_or(sqlx::Error::RowNotFound)
}

/// Extends the leases this node holds at the given epochs, in one statement; answers the
/// activities renewed. A lease missing from the answer was taken over (its epoch moved on).
pub(super) async fn renew(
    pool: &PgPool,
    node_id: &str,
    held: &[(String, i64)],
    ttl_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let (activities, epochs): (Vec<&str>, Vec<i64>) =
        held.iter().map(|(a, e)| (a.as_str(), *e)).unzip();
    sqlx::query_scalar(concat!(
        "UPDATE activity_leases AS l SET lease_until = ",
        db_now_ms!(),
        " + $4 \
         FROM unnest($2::text[], $3::bigint[]) AS r(activity, epoch) \
         WHERE l.activity = r.activity AND l.epoch = r.epoch AND l.owner_node = $1 \
         RETURNING l.activity"
    ))
    .bind(node_id)
    .bind(&activities)
    .bind(&epochs)
    .bind(ttl_ms)
    .fetch_all(pool)
    .await
}

/// Ends this node's leases at once (a graceful stop), so another node need not wait for them to
/// run out. The epoch stays: the next owner raises it.
pub(super) async fn release(pool: &PgPool, node_id: &str) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE activity_leases SET lease_until = 0 WHERE owner_node = $1")
            .bind(node_id)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Ends `activity`'s lease and raises its epoch, whoever holds it: the holder's next commit or
/// renewal finds the epoch moved on and steps down, and the next request starts the activity
/// afresh from the database (after an admin change to it).
pub(super) async fn revoke(pool: &PgPool, activity: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE activity_leases SET epoch = epoch + 1, lease_until = 0 WHERE activity = $1",
    )
    .bind(activity)
    .execute(pool)
    .await?;
    Ok(())
}

/// A node's row.
#[derive(Debug, Clone, FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub addr: String,
    pub last_seen_ms: i64,
}

/// Every node's row, by id.
pub(super) async fn nodes(pool: &PgPool) -> sqlx::Result<Vec<NodeRow>> {
    sqlx::query_as("SELECT node_id, addr, last_seen_ms FROM cluster_nodes ORDER BY node_id")
        .fetch_all(pool)
        .await
}

/// Every lease row, by activity.
pub(super) async fn leases(pool: &PgPool) -> sqlx::Result<Vec<LeaseRow>> {
    sqlx::query_as(concat!(
        "SELECT activity, owner_node, owner_addr, epoch, lease_until - ",
        db_now_ms!(),
        " AS expires_in_ms \
         FROM activity_leases ORDER BY activity"
    ))
    .fetch_all(pool)
    .await
}
