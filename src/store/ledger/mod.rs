//! The points ledger in SQL: the batch commit behind the ledger actor, the lots due to expire
//! (which the expiry job hands to the actor), and the read side (balance, history, expiring
//! points).
//!
//! A batch is one transaction: lock the users' balance rows in user order (`FOR UPDATE` on
//! Postgres; SQLite's single writer needs no lock) and read the entries already stored under the
//! batch's idempotency keys, create the balance rows of first-time users, read the open credit
//! lots of spenders and the counters the batch's limits name, let [`plan_batch`] decide every
//! change in memory, then write entries, lots, balances and counters, and commit. On Postgres the
//! locks and the key read are one statement and all writes another, so a batch of known users
//! costs five round trips whatever its size.
//!
//! Every statement takes its rows as JSON parameters, so its text is the same whatever the batch
//! size: the database parses and plans it once per connection instead of once per batch.
//! The `CHECK (balance >= 0)` and the unique `(idem_key, app_id)` index guard the invariants even
//! if two processes get here at once.

use std::collections::{BTreeSet, HashMap};

use futures_util::future::BoxFuture;
use points_actors::{
    plan_batch, Change, LedgerError, LedgerStore, Lot, Outcome, StoreError, StoredEntry,
};
use serde_json::{json, Value};
use sqlx::Row;

use crate::clock::now_ms;
use crate::db::{Col, Db, Dialect};

pub mod blindbox;
pub mod counters;
pub mod invites;
pub mod leaderboard;
pub mod lottery;
pub mod morning;
pub mod redpack;
pub mod shop;
pub mod signin;
pub mod tasks;
pub mod walk;

pub use counters::counter_values;

/// The ledger's storage, shared by the ledger actor and the read routes.
#[derive(Clone, Debug)]
pub struct LedgerDb {
    pub db: Db,
}

fn store_err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

impl LedgerStore for LedgerDb {
    fn commit_batch(
        &self,
        batch: Vec<Change>,
    ) -> BoxFuture<'static, Result<Vec<Result<Outcome, LedgerError>>, StoreError>> {
        let db = self.db.clone();
        Box::pin(async move { commit_batch(&db, &batch).await.map_err(store_err) })
    }
}

async fn commit_batch(
    db: &Db,
    batch: &[Change],
) -> Result<Vec<Result<Outcome, LedgerError>>, sqlx::Error> {
    let now = now_ms();
    let mut tx = db.write.begin().await?;
    let users: BTreeSet<i64> = batch.iter().map(|c| c.user_id).collect();

    // Balance rows: lock the existing ones in user order and read the stored idempotency keys;
    // then create and lock the missing balance rows (a user's first change).
    let keys: BTreeSet<&str> = batch.iter().map(|c| c.idem_key.as_str()).collect();
    let (mut balances, stored) = lock_and_read_keys(db, &mut tx, &users, &keys).await?;
    let missing: BTreeSet<i64> = users
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
        balances.extend(lock_balances(db, &mut tx, &missing).await?);
    }

    // Open credit lots of the users who spend in this batch, or whose lot it expires.
    let spenders: BTreeSet<i64> = batch
        .iter()
        .filter(|c| c.amount < 0 || c.legs.iter().any(|l| l.amount < 0) || c.expire_lot.is_some())
        .map(|c| c.user_id)
        .collect();
    let mut lots: HashMap<i64, Vec<Lot>> = HashMap::new();
    if !spenders.is_empty() {
        let rows = sqlx::query(&format!(
            "SELECT id, user_id, remaining, expires_at FROM credit_lots \
             WHERE remaining > 0 AND user_id IN (SELECT r.value FROM {} r)",
            db.json_ints("$1")
        ))
        .bind(json!(spenders).to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            lots.entry(row.try_get(1)?).or_default().push(Lot {
                id: Some(row.try_get(0)?),
                entry_index: None,
                remaining: row.try_get(2)?,
                expires_at: row.try_get(3)?,
            });
        }
    }

    // Counters named by the batch's limits, created at zero and locked in key order.
    let counter_keys: BTreeSet<&str> = batch
        .iter()
        .flat_map(|c| c.limits.iter().map(|l| l.key.as_str()))
        .collect();
    let mut counters: HashMap<String, i64> = HashMap::new();
    if !counter_keys.is_empty() {
        // One statement creates the missing counters at zero and locks and reads them all, in
        // key order: `DO UPDATE` takes the row lock that `SELECT ... FOR UPDATE` would.
        let rows = sqlx::query(&format!(
            "INSERT INTO ledger_counters (counter_key, count, updated_at) \
             SELECT r.value, 0, $2 FROM {} r WHERE true ORDER BY r.value \
             ON CONFLICT (counter_key) DO UPDATE SET count = ledger_counters.count \
             RETURNING counter_key, count",
            db.json_texts("$1")
        ))
        .bind(json!(counter_keys).to_string())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            counters.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }

    let plan = plan_batch(batch, balances, lots, &stored, counters);

    // The writes, each as one JSON array. Postgres applies them in one statement (data-modifying
    // CTEs), saving round trips on the commit path; SQLite, in process, runs one per table.
    let entries: Vec<Value> = plan
        .entries
        .iter()
        .map(|entry| {
            let c = &batch[entry.change_index];
            let (kind, description) = entry.texts(c);
            json!({
                "app_id": c.app_id, "user_id": c.user_id, "amount": entry.amount, "kind": kind,
                "idem_key": entry.idem_key(c), "reference": c.reference, "description": description,
                "expires_at": entry.expires_at,
                "balance_after": entry.balance_after,
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
    let sql = WriteSql::new(db);
    let inserted = match db.dialect {
        Dialect::Postgres => {
            let statement = format!(
                "WITH e AS ({}), l AS ({}), u AS ({}), b AS ({}), c AS ({}), o AS ({}) \
                 SELECT app_id, idem_key, id FROM e",
                sql.entries,
                sql.lots_after_cte,
                sql.lot_updates,
                sql.balances,
                sql.counters,
                sql.orders
            );
            let mut q = sqlx::query(&statement);
            for p in &params {
                q = q.bind(p.as_str());
            }
            q.bind(now).fetch_all(&mut *tx).await?
        }
        Dialect::Sqlite => {
            // Every statement gets all seven values: SQLite finds `$n` by its number.
            macro_rules! bind_all {
                ($statement:expr) => {{
                    let mut q = sqlx::query($statement);
                    for p in &params {
                        q = q.bind(p.as_str());
                    }
                    q.bind(now)
                }};
            }
            let rows = bind_all!(&sql.entries).fetch_all(&mut *tx).await?;
            for statement in [
                &sql.lots_after_table,
                &sql.lot_updates,
                &sql.balances,
                &sql.counters,
                &sql.orders,
            ] {
                bind_all!(statement.as_str()).execute(&mut *tx).await?;
            }
            rows
        }
    };
    let mut ids: HashMap<(String, String), i64> = HashMap::with_capacity(inserted.len());
    for row in inserted {
        ids.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    let mut entry_ids: Vec<i64> = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        let c = &batch[entry.change_index];
        let id = ids
            .get(&(c.app_id.clone(), entry.idem_key(c)))
            .copied()
            .ok_or_else(|| sqlx::Error::Protocol("inserted entry id missing".into()))?;
        entry_ids.push(id);
    }

    tx.commit().await?;

    Ok(plan
        .decisions
        .iter()
        .enumerate()
        .map(|(i, decision)| match decision {
            Ok(Some(e)) => Ok(Outcome {
                entry_id: entry_ids[*e],
                balance_after: plan.entries[*e].balance_after,
                amount: plan.entries[*e].amount,
                created_at: now,
            }),
            Ok(None) => plan
                .replays
                .get(&i)
                .cloned()
                .ok_or_else(|| LedgerError::Storage("replay outcome missing".into())),
            Err(e) => Err(e.clone()),
        })
        .collect())
}

/// The write statements of a batch. Parameters: `$1` entries, `$2` new lots, `$3` lot updates,
/// `$4` balances, `$5` counters, `$6` fulfilment orders (JSON arrays), `$7` the commit time.
struct WriteSql {
    entries: String,
    /// New lots joined to the entries of the same statement's `e` CTE (Postgres).
    lots_after_cte: String,
    /// New lots joined to the entries table, once the entries are inserted (SQLite).
    lots_after_table: String,
    lot_updates: String,
    balances: String,
    counters: String,
    orders: String,
}

impl WriteSql {
    fn new(db: &Db) -> Self {
        let entries = db.json_records(
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
        let lots = db.json_records(
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
        let lots_from = |entries: &str| {
            format!(
                "INSERT INTO credit_lots (user_id, entry_id, amount, remaining, expires_at, created_at) \
                 SELECT r.user_id, x.id, r.amount, r.remaining, r.expires_at, $7 FROM {lots} r \
                 JOIN {entries} x ON x.idem_key = r.idem_key AND x.app_id = r.app_id"
            )
        };
        WriteSql {
            entries: format!(
                "INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, \
                 description, expires_at, balance_after, created_at) \
                 SELECT r.app_id, r.user_id, r.amount, r.kind, r.idem_key, r.reference, \
                 r.description, r.expires_at, r.balance_after, $7 FROM {entries} r \
                 RETURNING app_id, idem_key, id"
            ),
            lots_after_cte: lots_from("e"),
            lots_after_table: lots_from("ledger_entries"),
            lot_updates: format!(
                "UPDATE credit_lots SET remaining = r.remaining FROM {} r WHERE credit_lots.id = r.id",
                db.json_records("$3", &[("id", Col::Int), ("remaining", Col::Int)])
            ),
            balances: format!(
                "UPDATE balances SET balance = r.balance, updated_at = $7 FROM {} r \
                 WHERE balances.user_id = r.user_id",
                db.json_records("$4", &[("user_id", Col::Int), ("balance", Col::Int)])
            ),
            counters: format!(
                "UPDATE ledger_counters SET count = r.count, updated_at = $7 FROM {} r \
                 WHERE ledger_counters.counter_key = r.counter_key",
                db.json_records("$5", &[("counter_key", Col::Text), ("count", Col::Int)])
            ),
            orders: format!(
                "INSERT INTO fulfilment_orders (app_id, user_id, idem_key, source_kind, reference, \
                 reward_type, amount, detail, status, attempts, next_attempt_at, created_at) \
                 SELECT r.app_id, r.user_id, r.idem_key, r.source_kind, r.reference, r.reward_type, \
                 r.amount, r.detail, 'pending', 0, $7, $7 FROM {} r",
                db.json_records(
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
    }
}

/// The columns of a stored entry that replays and conflicts are judged on.
const STORED_ENTRY_COLUMNS: &str =
    "app_id, idem_key, user_id, amount, kind, reference, id, balance_after, created_at";

fn stored_entry(
    row: &sqlx::any::AnyRow,
    at: usize,
) -> Result<((String, String), StoredEntry), sqlx::Error> {
    let amount: i64 = row.try_get(at + 3)?;
    Ok((
        (row.try_get(at)?, row.try_get(at + 1)?),
        StoredEntry {
            user_id: row.try_get(at + 2)?,
            amount,
            kind: row.try_get(at + 4)?,
            reference: row.try_get(at + 5)?,
            outcome: Outcome {
                entry_id: row.try_get(at + 6)?,
                balance_after: row.try_get(at + 7)?,
                amount,
                created_at: row.try_get(at + 8)?,
            },
        },
    ))
}

type StoredKeys = HashMap<(String, String), StoredEntry>;

/// Locks the existing balance rows of `users` in user order and reads the entries already
/// stored under `keys`.
///
/// On Postgres both happen in one statement, saving a round trip on the commit path. Its key read
/// uses the statement's snapshot, taken before any lock wait: if another process commits one of
/// these keys while this batch waits for its lock, the key is missed here, the insert then hits
/// the unique index, and the batch fails and is tried again, when the key is visible. On SQLite
/// (one writer, in process) the key read simply follows the locks.
async fn lock_and_read_keys(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    users: &BTreeSet<i64>,
    keys: &BTreeSet<&str>,
) -> Result<(HashMap<i64, i64>, StoredKeys), sqlx::Error> {
    let keys_json = json!(keys).to_string();
    match db.dialect {
        Dialect::Postgres => {
            let statement = format!(
                "WITH locked AS (SELECT user_id, balance FROM balances \
                 WHERE user_id IN (SELECT r.value FROM {} r) ORDER BY user_id FOR UPDATE) \
                 SELECT user_id, balance, CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT), \
                 CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT), \
                 CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM locked \
                 UNION ALL SELECT CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), {STORED_ENTRY_COLUMNS} \
                 FROM ledger_entries WHERE idem_key IN (SELECT r.value FROM {} r)",
                db.json_ints("$1"),
                db.json_texts("$2")
            );
            let rows = sqlx::query(&statement)
                .bind(json!(users).to_string())
                .bind(keys_json)
                .fetch_all(&mut **tx)
                .await?;
            let mut balances = HashMap::new();
            let mut stored = HashMap::new();
            for row in rows {
                match row.try_get::<Option<i64>, _>(0)? {
                    Some(user) => {
                        balances.insert(user, row.try_get(1)?);
                    }
                    None => {
                        let (key, entry) = stored_entry(&row, 2)?;
                        stored.insert(key, entry);
                    }
                }
            }
            Ok((balances, stored))
        }
        Dialect::Sqlite => {
            let balances = lock_balances(db, tx, users).await?;
            let key_query = format!(
                "SELECT {STORED_ENTRY_COLUMNS} FROM ledger_entries WHERE idem_key IN (SELECT r.value FROM {} r)",
                db.json_texts("$2")
            );
            let rows = sqlx::query(&key_query)
                .bind(Option::<String>::None)
                .bind(keys_json)
                .fetch_all(&mut **tx)
                .await?;
            let stored = rows
                .iter()
                .map(|row| stored_entry(row, 0))
                .collect::<Result<_, _>>()?;
            Ok((balances, stored))
        }
    }
}

/// Locks the balance rows of `users` (in user order) and reads them.
async fn lock_balances(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    users: &BTreeSet<i64>,
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT user_id, balance FROM balances WHERE user_id IN (SELECT r.value FROM {} r) \
         ORDER BY user_id{}",
        db.json_ints("$1"),
        db.for_update()
    ))
    .bind(json!(users).to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// One ledger entry as the read routes show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub app_id: String,
    pub user_id: i64,
    pub amount: i64,
    pub kind: String,
    pub idem_key: String,
    pub reference: String,
    pub description: String,
    pub expires_at: Option<i64>,
    pub balance_after: i64,
    pub created_at: i64,
}

/// Which entries a history page holds.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// `Some(true)` income only, `Some(false)` spending only.
    pub income: Option<bool>,
    /// Created at or after (epoch ms).
    pub from: Option<i64>,
    /// Created at or before (epoch ms).
    pub to: Option<i64>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// A credit lot that is due to expire.
#[derive(Debug, Clone)]
pub struct DueLot {
    pub lot_id: i64,
    pub user_id: i64,
    pub app_id: String,
}

#[derive(sqlx::FromRow)]
struct DueLotRow {
    id: i64,
    user_id: i64,
    expires_at: i64,
    app_id: String,
}

/// Points that expire (or expired) on one business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPoints {
    pub date: String,
    pub points: i64,
}

impl LedgerDb {
    /// Current balance (0 for a user who never had points).
    pub async fn balance(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT balance FROM balances WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.db.read)
            .await?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map(|b| b.unwrap_or(0))
    }

    /// A page of the user's entries, newest first, and the number of entries that match.
    pub async fn history(
        &self,
        user_id: i64,
        filter: &HistoryFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<EntryRow>, i64), sqlx::Error> {
        // Zero entries record claims of rewards paid outside the ledger and check-ins: not point
        // changes, so no history shows them.
        let mut clause = String::from("user_id = $1 AND amount <> 0");
        let mut n = 1;
        match filter.income {
            Some(true) => clause.push_str(" AND amount > 0"),
            Some(false) => clause.push_str(" AND amount < 0"),
            None => {}
        }
        if filter.from.is_some() {
            n += 1;
            clause.push_str(&format!(" AND created_at >= ${n}"));
        }
        if filter.to.is_some() {
            n += 1;
            clause.push_str(&format!(" AND created_at <= ${n}"));
        }
        if filter.kind.is_some() {
            n += 1;
            clause.push_str(&format!(" AND kind = ${n}"));
        }
        let count_sql = format!("SELECT COUNT(*) FROM ledger_entries WHERE {clause}");
        let page_sql = format!(
            "SELECT id, app_id, user_id, amount, kind, idem_key, reference, description, expires_at, \
             balance_after, created_at FROM ledger_entries WHERE {clause} \
             ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        macro_rules! bind_filter {
            ($q:expr) => {{
                let mut q = $q.bind(user_id);
                if let Some(v) = filter.from {
                    q = q.bind(v);
                }
                if let Some(v) = filter.to {
                    q = q.bind(v);
                }
                if let Some(v) = &filter.kind {
                    q = q.bind(v.as_str());
                }
                q
            }};
        }
        let total: i64 = bind_filter!(sqlx::query_scalar::<_, i64>(&count_sql))
            .fetch_one(&self.db.read)
            .await?;
        let rows = bind_filter!(sqlx::query_as::<_, EntryRow>(&page_sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.db.read)
            .await?;
        Ok((rows, total))
    }

    /// Unspent points by expiry instant, earliest first, for lots expiring after `after`.
    pub async fn upcoming_expiries(
        &self,
        user_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT expires_at, CAST(SUM(remaining) AS BIGINT) FROM credit_lots \
             WHERE user_id = $1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at > $2 \
             GROUP BY expires_at ORDER BY expires_at LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Unspent points whose expiry falls in `[from, to)`.
    pub async fn expiring_between(
        &self,
        user_id: i64,
        from: i64,
        to: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM credit_lots \
             WHERE user_id = $1 AND remaining > 0 AND expires_at >= $2 AND expires_at < $3",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_one(&self.db.read)
        .await
    }

    /// Points that expired, per expiry instant, newest first: `(expired at, points)`, and how
    /// many distinct instants there are.
    pub async fn expired_history(
        &self,
        user_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<(i64, i64)>, i64), sqlx::Error> {
        let total = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(DISTINCT expires_at) FROM ledger_entries WHERE user_id = $1 AND kind = 'expire'",
        )
        .bind(user_id)
        .fetch_one(&self.db.read)
        .await?;
        let rows = sqlx::query(
            "SELECT expires_at, CAST(-SUM(amount) AS BIGINT) FROM ledger_entries \
             WHERE user_id = $1 AND kind = 'expire' GROUP BY expires_at \
             ORDER BY expires_at DESC LIMIT $2 OFFSET $3",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db.read)
        .await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.try_get::<Option<i64>, _>(0)?.unwrap_or(0), r.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((rows, total))
    }

    /// Lots whose expiry is at or before `now` and that still hold points, in expiry order after
    /// the cursor `(expires_at, id)` of the previous page, with the cursor of this page (`None`
    /// when there are no more).
    pub async fn due_lots(
        &self,
        now: i64,
        after: (i64, i64),
        limit: i64,
    ) -> Result<(Vec<DueLot>, Option<(i64, i64)>), sqlx::Error> {
        let rows: Vec<DueLotRow> = sqlx::query_as(
            "SELECT l.id, l.user_id, l.expires_at, u.app_id FROM credit_lots l \
             JOIN users u ON u.id = l.user_id \
             WHERE l.remaining > 0 AND l.expires_at IS NOT NULL AND l.expires_at <= $1 \
             AND (l.expires_at > $2 OR (l.expires_at = $2 AND l.id > $3)) \
             ORDER BY l.expires_at, l.id LIMIT $4",
        )
        .bind(now)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        let cursor = rows.last().map(|r| (r.expires_at, r.id));
        let lots = rows
            .into_iter()
            .map(|r| DueLot {
                lot_id: r.id,
                user_id: r.user_id,
                app_id: r.app_id,
            })
            .collect();
        Ok((lots, cursor))
    }

    /// Number of users who ever had a point change and their average balance (rounded down).
    /// A balance row alone does not count: a refused change may leave one at zero.
    pub async fn participation(&self, app_id: &str) -> Result<(i64, i64), sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(b.balance), 0) AS BIGINT) FROM balances b \
             JOIN users u ON u.id = b.user_id WHERE u.app_id = $1 \
             AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.user_id = b.user_id)",
        )
        .bind(app_id)
        .fetch_one(&self.db.read)
        .await?;
        let users: i64 = row.try_get(0)?;
        let sum: i64 = row.try_get(1)?;
        Ok((users, if users > 0 { sum / users } else { 0 }))
    }
}
