//! The ledger batch on SQLite, through the `Any` pools.
//!
//! SQLite has one writer (the single-connection write pool), so the batch takes no row locks: it
//! reads balances, stored keys, the lots of spenders and the counters its limits name, plans, and
//! writes one statement per table. SQLite runs in process, so a statement costs no round trip;
//! every statement takes its rows as one JSON parameter, so its text is the same whatever the
//! batch size and is prepared once per connection.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use points_actors::{plan_fenced_batch, Change, LedgerError, Lot, Outcome};
use serde_json::{json, Value};
use sqlx::{Any, Row, Transaction};

use super::{entry_ids, outcomes, BatchReads, StoredKeys, StoredRow};
use crate::clock::now_ms;
use crate::db::{Col, Db};

/// Decides and commits one batch on SQLite.
pub(super) async fn commit_batch(
    db: &Db,
    batch: &[Change],
) -> Result<Vec<Result<Outcome, LedgerError>>, sqlx::Error> {
    let now = now_ms();
    let reads = BatchReads::of(batch);
    let mut tx = db.write.begin().await?;

    let mut balances = read_balances(db, &mut tx, &reads.users).await?;
    let stored = read_keys(db, &mut tx, &reads.keys).await?;
    let missing: BTreeSet<i64> = reads
        .users
        .iter()
        .filter(|u| !balances.contains_key(u))
        .copied()
        .collect();
    if !missing.is_empty() {
        sqlx::query(&format!(
            "INSERT INTO balances (user_id, balance, updated_at) SELECT r.value, 0, $2 FROM {} r \
             WHERE true ON CONFLICT (user_id) DO NOTHING",
            db.json_ints("$1")
        ))
        .bind(json!(missing).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        balances.extend(read_balances(db, &mut tx, &missing).await?);
    }

    let mut lots: HashMap<i64, Vec<Lot>> = HashMap::new();
    if !reads.spenders.is_empty() {
        let rows = sqlx::query(&format!(
            "SELECT id, user_id, remaining, expires_at FROM credit_lots \
             WHERE remaining > 0 AND user_id IN (SELECT r.value FROM {} r)",
            db.json_ints("$1")
        ))
        .bind(json!(reads.spenders).to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            lots.entry(row.try_get("user_id")?).or_default().push(Lot {
                id: Some(row.try_get("id")?),
                entry_index: None,
                remaining: row.try_get("remaining")?,
                expires_at: row.try_get("expires_at")?,
            });
        }
    }

    let mut counters: HashMap<String, i64> = HashMap::new();
    if !reads.counter_keys.is_empty() {
        let rows = sqlx::query(&format!(
            "INSERT INTO ledger_counters (counter_key, count, updated_at) \
             SELECT r.value, 0, $2 FROM {} r WHERE true ORDER BY r.value \
             ON CONFLICT (counter_key) DO UPDATE SET count = ledger_counters.count \
             RETURNING counter_key, count",
            db.json_texts("$1")
        ))
        .bind(json!(reads.counter_keys).to_string())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            counters.insert(row.try_get("counter_key")?, row.try_get("count")?);
        }
    }

    // One process writes a SQLite file, so nothing takes an activity over mid-batch; fenced
    // changes are still checked against the lease rows as they are.
    let mut leases: HashMap<String, i64> = HashMap::new();
    if !reads.fences.is_empty() {
        let rows = sqlx::query(&format!(
            "SELECT activity, epoch FROM activity_leases \
             WHERE activity IN (SELECT r.value FROM {} r)",
            db.json_texts("$1")
        ))
        .bind(json!(reads.fences).to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            leases.insert(row.try_get("activity")?, row.try_get("epoch")?);
        }
    }

    let plan = plan_fenced_batch(batch, balances, lots, &stored, counters, &leases);

    // The writes, each table's rows as one JSON array.
    let entries: Vec<Value> = plan
        .entries
        .iter()
        .map(|entry| {
            let c = &batch[entry.change_index];
            let (kind, description) = entry.texts(c);
            json!({
                "app_id": c.app_id, "user_id": c.user_id, "amount": entry.amount, "kind": kind,
                "idem_key": entry.idem_key(c), "reference": c.reference, "description": description,
                "expires_at": entry.expires_at, "balance_after": entry.balance_after,
            })
        })
        .collect();
    let new_lots: Vec<Value> = plan
        .new_lots
        .iter()
        .map(|(user, lot)| {
            let entry = &plan.entries[lot.entry_index.unwrap_or_default()];
            let change = &batch[entry.change_index];
            json!({
                "user_id": user, "app_id": change.app_id, "idem_key": entry.idem_key(change),
                "amount": entry.amount, "remaining": lot.remaining, "expires_at": lot.expires_at,
            })
        })
        .collect();
    let lot_updates: Vec<Value> = plan
        .lot_updates
        .iter()
        .map(|(id, remaining)| json!({"id": id, "remaining": remaining}))
        .collect();
    let balance_rows: Vec<Value> = plan
        .balances
        .iter()
        .map(|(user, balance)| json!({"user_id": user, "balance": balance}))
        .collect();
    let counter_rows: Vec<Value> = plan
        .counter_updates
        .iter()
        .map(|(key, count)| json!({"counter_key": key, "count": count}))
        .collect();
    let orders: Vec<Value> = plan
        .entries
        .iter()
        .filter(|entry| entry.leg.is_none())
        .filter_map(|entry| {
            let c = &batch[entry.change_index];
            let order = c.order.as_ref()?;
            Some(json!({
                "app_id": c.app_id, "user_id": c.user_id, "idem_key": c.idem_key,
                "source_kind": c.kind, "reference": c.reference, "reward_type": order.reward_type,
                "amount": order.amount, "detail": order.detail,
            }))
        })
        .collect();
    let params = [
        entries,
        new_lots,
        lot_updates,
        balance_rows,
        counter_rows,
        orders,
    ]
    .map(|rows| Value::Array(rows).to_string());
    // Every statement gets all seven values: SQLite finds `$n` by its number.
    let bind_all = |statement: &'static str| {
        let mut q = sqlx::query(statement);
        for p in &params {
            q = q.bind(p.as_str());
        }
        q.bind(now)
    };
    let sql = write_sql(db);
    let inserted = bind_all(&sql.entries).fetch_all(&mut *tx).await?;
    for statement in [
        &sql.lots,
        &sql.lot_updates,
        &sql.balances,
        &sql.counters,
        &sql.orders,
    ] {
        bind_all(statement).execute(&mut *tx).await?;
    }
    let mut ids: HashMap<(String, String), i64> = HashMap::with_capacity(inserted.len());
    for row in inserted {
        ids.insert(
            (row.try_get("app_id")?, row.try_get("idem_key")?),
            row.try_get("id")?,
        );
    }
    let entry_ids = entry_ids(batch, &plan, &ids)?;
    tx.commit().await?;
    Ok(outcomes(&plan, &entry_ids, now))
}

/// The write statements of a batch. Parameters: `$1` entries, `$2` new lots, `$3` lot updates,
/// `$4` balances, `$5` counters, `$6` fulfilment orders (JSON arrays), `$7` the commit time.
struct WriteSql {
    entries: String,
    lots: String,
    lot_updates: String,
    balances: String,
    counters: String,
    orders: String,
}

/// The statements, built once: their texts never change.
fn write_sql(db: &Db) -> &'static WriteSql {
    static SQL: OnceLock<WriteSql> = OnceLock::new();
    SQL.get_or_init(|| {
        let records = |param: &str, columns: &[(&str, Col)]| db.json_records(param, columns);
        let entries = records(
            "$1",
            &[
                ("app_id", Col::Text),
                ("user_id", Col::Int),
                ("amount", Col::Int),
                ("kind", Col::Text),
                ("idem_key", Col::Text),
                ("reference", Col::Text),
                ("description", Col::Text),
                ("expires_at", Col::Int),
                ("balance_after", Col::Int),
            ],
        );
        let lots = records(
            "$2",
            &[
                ("user_id", Col::Int),
                ("app_id", Col::Text),
                ("idem_key", Col::Text),
                ("amount", Col::Int),
                ("remaining", Col::Int),
                ("expires_at", Col::Int),
            ],
        );
        WriteSql {
            entries: format!(
                "INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, \
                 description, expires_at, balance_after, created_at) \
                 SELECT r.app_id, r.user_id, r.amount, r.kind, r.idem_key, r.reference, \
                 r.description, r.expires_at, r.balance_after, $7 FROM {entries} r \
                 RETURNING app_id, idem_key, id"
            ),
            lots: format!(
                "INSERT INTO credit_lots (user_id, entry_id, amount, remaining, expires_at, created_at) \
                 SELECT r.user_id, x.id, r.amount, r.remaining, r.expires_at, $7 FROM {lots} r \
                 JOIN ledger_entries x ON x.idem_key = r.idem_key AND x.app_id = r.app_id"
            ),
            lot_updates: format!(
                "UPDATE credit_lots SET remaining = r.remaining FROM {} r WHERE credit_lots.id = r.id",
                records("$3", &[("id", Col::Int), ("remaining", Col::Int)])
            ),
            balances: format!(
                "UPDATE balances SET balance = r.balance, updated_at = $7 FROM {} r \
                 WHERE balances.user_id = r.user_id",
                records("$4", &[("user_id", Col::Int), ("balance", Col::Int)])
            ),
            counters: format!(
                "UPDATE ledger_counters SET count = r.count, updated_at = $7 FROM {} r \
                 WHERE ledger_counters.counter_key = r.counter_key",
                records("$5", &[("counter_key", Col::Text), ("count", Col::Int)])
            ),
            orders: format!(
                "INSERT INTO fulfilment_orders (app_id, user_id, idem_key, source_kind, reference, \
                 reward_type, amount, detail, status, attempts, next_attempt_at, created_at) \
                 SELECT r.app_id, r.user_id, r.idem_key, r.source_kind, r.reference, r.reward_type, \
                 r.amount, r.detail, 'pending', 0, $7, $7 FROM {} r",
                records(
                    "$6",
                    &[
                        ("app_id", Col::Text),
                        ("user_id", Col::Int),
                        ("idem_key", Col::Text),
                        ("source_kind", Col::Text),
                        ("reference", Col::Text),
                        ("reward_type", Col::Text),
                        ("amount", Col::Int),
                        ("detail", Col::Text),
                    ]
                )
            ),
        }
    })
}

/// The balances of `users` that exist.
async fn read_balances(
    db: &Db,
    tx: &mut Transaction<'static, Any>,
    users: &BTreeSet<i64>,
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT user_id, balance FROM balances WHERE user_id IN (SELECT r.value FROM {} r)",
        db.json_ints("$1")
    ))
    .bind(json!(users).to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("user_id")?, row.try_get("balance")?)))
        .collect()
}

/// The entries already stored under `keys`.
async fn read_keys(
    db: &Db,
    tx: &mut Transaction<'static, Any>,
    keys: &BTreeSet<&str>,
) -> Result<StoredKeys, sqlx::Error> {
    let rows: Vec<StoredRow> = sqlx::query_as(&format!(
        "SELECT app_id, idem_key, user_id, amount, kind, reference, id, balance_after, created_at \
         FROM ledger_entries WHERE idem_key IN (SELECT r.value FROM {} r)",
        db.json_texts("$1")
    ))
    .bind(json!(keys).to_string())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(StoredRow::into_entry).collect())
}
