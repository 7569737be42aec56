//! The hot path on Postgres: grabs, grants and deductions read rows only through indexes. The
//! test seeds 20,000 users (each with a session, a balance and a counter) and 100,000 ledger
//! entries and lots by SQL, runs a burst of changes, and counts the rows Postgres read by
//! sequential scans meanwhile (`pg_stat_user_tables`).
//!
//! The size is the benchmark's (20,000 users): one scan of a seeded table reads thousands of
//! rows, yet the tables are small enough that a planner misled by a row-count guess (it guesses
//! 100 rows for a JSON row source) prefers a scan and a hash join to a hundred index probes.
//! That is the regression this test catches: with JSON row sources in the ledger batch the burst
//! read 380,628 rows by sequential scans (balances, counters, users); with typed arrays, 3 (one
//! row each of the card, its session and the app). Much larger tables make the planner pick
//! the indexes by itself and would hide it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{spawn_app, Backend, TestApp, ADMIN_KEY};
use futures_util::stream::{self, StreamExt};
use points_engine::db::Db;
use serde_json::{json, Value};

const SEED_USERS: i64 = 20_000;
const SEED_ENTRIES: i64 = 100_000;
const CALLERS: usize = 40;
/// Rows a sequential scan may read per change: room for a one-row table (a card, an app), never
/// for a scan of a seeded table.
const SEQ_ROWS_PER_CHANGE_MAX: i64 = 5;
/// A Postgres backend reports its table counters when idle, at most this long after its work.
const STATS_FLUSH: Duration = Duration::from_secs(11);

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql).execute(&db.write).await.expect(sql);
}

/// Users, sessions, balances, entries and lots of a year of a busy app, written by SQL.
async fn seed(db: &Db) {
    exec(
        db,
        &format!(
            "INSERT INTO users (app_id, platform_uid, provider, created_at, updated_at) \
             SELECT 'default', 'seed-' || g, 'dev', 0, 0 FROM generate_series(1, {SEED_USERS}) g"
        ),
    )
    .await;
    exec(
        db,
        "INSERT INTO sessions (token_hash, user_id, app_id, expires_at, created_at) \
         SELECT 'seed-' || id, id, 'default', 4102444800000, 0 FROM users",
    )
    .await;
    exec(
        db,
        "INSERT INTO balances (user_id, balance, updated_at) SELECT id, 50, 0 FROM users",
    )
    .await;
    exec(
        db,
        &format!(
            "INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, \
             description, expires_at, balance_after, created_at) \
             SELECT 'default', u.id, 10, 'grant', 'seed:' || g, 'seed', '', 4102444800000, 10, g \
             FROM generate_series(1, {SEED_ENTRIES}) g \
             JOIN users u ON u.app_id = 'default' AND u.platform_uid = 'seed-' || (1 + g % {SEED_USERS})"
        ),
    )
    .await;
    exec(
        db,
        "INSERT INTO credit_lots (user_id, entry_id, amount, remaining, expires_at, created_at) \
         SELECT user_id, id, amount, CASE WHEN id % 5 = 0 THEN 10 ELSE 0 END, expires_at, 0 \
         FROM ledger_entries",
    )
    .await;
    exec(
        db,
        &format!(
            "INSERT INTO ledger_counters (counter_key, count, updated_at) \
             SELECT 'seed:' || g, 1, 0 FROM generate_series(1, {SEED_USERS}) g"
        ),
    )
    .await;
    exec(db, "ANALYZE").await;
}

/// Rows read by sequential scans so far, per table.
async fn seq_rows(db: &Db) -> BTreeMap<String, i64> {
    // Each statement is a transaction of its own, so it reads the counters as they are now.
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT CAST(relname AS TEXT), seq_tup_read FROM pg_stat_user_tables")
            .fetch_all(&db.read)
            .await
            .expect("table statistics");
    rows.into_iter().collect()
}

async fn admin(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, res) = app.post(path, &[("X-Admin-Key", ADMIN_KEY)], &body).await;
    assert_eq!(
        (status, &res["status"]),
        (200, &json!(true)),
        "{path}: {res}"
    );
    res
}

async fn grant(app: &TestApp, uid: &str, amount: i64, key: &str) {
    let res = app.change(uid, amount, Some(key)).await;
    assert_eq!(res["status"], true, "{res}");
}

#[actix_web::test]
async fn changes_on_large_tables_read_nothing_by_sequential_scan() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        common::skipped("TEST_DATABASE_URL is not set: the Postgres hot-path test is skipped");
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let db = Db::connect(&app.database_url, 2).await.expect("db");
    seed(&db).await;

    // Callers who log in and hold points, and a card whose grab costs a one-point ticket.
    let callers: Vec<(String, String)> = stream::iter(0..CALLERS)
        .map(|i| {
            let app = &app;
            async move {
                let (uid, bearer) = app.login(&format!("hot-{i}")).await;
                grant(app, &uid, 100, &format!("hot-{i}-funds")).await;
                (uid, bearer)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let batch = admin(
        &app,
        "/admin/redpack/sessions",
        json!({"app_id": "default", "name": "hot", "start_time": "00:00:00", "end_time": "24:00:00"}),
    )
    .await["data"]["batch_id"]
        .as_i64()
        .expect("batch_id");
    let card = admin(
        &app,
        "/admin/redpack/cards",
        json!({"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": 1000,
               "unit": 5, "ticket": 1, "start_time": "00:00:00", "end_time": "24:00:00"}),
    )
    .await["data"]["card_id"]
        .as_i64()
        .expect("card_id");

    tokio::time::sleep(STATS_FLUSH).await;
    let before = seq_rows(&db).await;

    // The burst: every caller grabs the card (its actor starts and recovers the day from the
    // ledger), is granted points and spends some, all at once.
    let changes: Vec<(u8, Value)> = stream::iter(callers.iter().enumerate())
        .flat_map(|(i, (uid, bearer))| {
            let app = &app;
            stream::iter([0u8, 1, 2]).map(move |step| async move {
                match step {
                    0 => {
                        let (_, res) = app
                            .post(
                                "/v2/redpack/rob.json",
                                &[("Authorization", bearer.as_str())],
                                &json!({"app_id": "default", "user_id": uid,
                                        "card_id": card, "batch_id": batch}),
                            )
                            .await;
                        (step, res)
                    }
                    1 => (
                        step,
                        app.change(uid, 7, Some(&format!("hot-{i}-grant"))).await,
                    ),
                    _ => (
                        step,
                        app.change(uid, -3, Some(&format!("hot-{i}-spend"))).await,
                    ),
                }
            })
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let refused: Vec<&(u8, Value)> = changes
        .iter()
        .filter(|(_, res)| res["status"] != true)
        .collect();
    assert!(refused.is_empty(), "every change applies: {refused:?}");

    tokio::time::sleep(STATS_FLUSH).await;
    let after = seq_rows(&db).await;
    let grown: BTreeMap<&str, i64> = after
        .iter()
        .map(|(table, rows)| {
            (
                table.as_str(),
                rows - before.get(table).copied().unwrap_or(0),
            )
        })
        .filter(|(_, rows)| *rows > 0)
        .collect();
    let total: i64 = grown.values().sum();
    let allowed = SEQ_ROWS_PER_CHANGE_MAX * changes.len() as i64;
    eprintln!(
        "{} changes, {total} rows read by sequential scans: {grown:?}",
        changes.len()
    );
    assert!(
        total <= allowed,
        "{} changes read {total} rows by sequential scans (at most {allowed}): {grown:?}",
        changes.len()
    );
    app.handle.stop(true).await;
}
