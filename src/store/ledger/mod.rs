//! The points ledger in SQL: the batch commit behind the ledger actor, the lots due to expire
//! (which the expiry job hands to the actor), and the read side (balance, history, expiring
//! points).
//!
//! A batch is one transaction: lock the users' balance rows in user order and read the entries
//! already stored under the batch's idempotency keys, create the balance rows of first-time
//! users, read the open credit lots of spenders and the counters the batch's limits name, let
//! [`plan_batch`] decide every change in memory, then write entries, lots, balances and counters,
//! and commit. Each backend has its own statements ([`pg`] with typed arrays on the native
//! driver, [`sqlite`] with JSON row sources on the `Any` pools); what they read and how the
//! answers are built is shared here. Every hot statement is an index lookup or an index-ordered
//! write, whatever the size of the tables.
//!
//! The `CHECK (balance >= 0)` and the unique `(idem_key, app_id)` index guard the invariants even
//! if two processes get here at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use points_actors::{
    BatchPlan, Change, LedgerError, LedgerStore, Outcome, StoreError, StoredEntry,
};
use sqlx::Row;

use crate::db::Db;

pub mod blindbox;
pub mod counters;
pub mod export;
pub mod invites;
pub mod leaderboard;
pub mod lottery;
pub mod morning;
mod pg;
pub mod redpack;
pub mod shop;
pub mod signin;
mod sqlite;
pub mod tasks;
pub mod walk;

pub use counters::counter_values;

/// The ledger's storage, shared by the ledger actor and the read routes.
#[derive(Clone, Debug)]
pub struct LedgerDb {
    pub db: Db,
}

/// A failed commit, told apart: the database refusing a value or a constraint is the batch's
/// fault (one of its changes; the actor isolates it), anything else is an outage.
fn store_err(e: sqlx::Error) -> StoreError {
    let rejected = match &e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| refuses_data(&code)),
        sqlx::Error::Encode(_) => true,
        _ => false,
    };
    if rejected {
        StoreError::rejected(e.to_string())
    } else {
        StoreError::outage(e.to_string())
    }
}

/// Whether a database error code says the statement's data was refused. Postgres codes have
/// five characters: classes 22 (data exception: a NUL in text, a value out of range) and 23
/// (integrity constraint). SQLite's are its extended result codes, whose low byte is the primary
/// code: 18 (too big), 19 (constraint), 20 (type mismatch). Serialization failures, deadlocks,
/// busy and locked databases are transient and not among them.
fn refuses_data(code: &str) -> bool {
    if code.len() == 5 {
        return code.starts_with("22") || code.starts_with("23");
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 18..=20))
}

impl LedgerStore for LedgerDb {
    fn commit_batch(
        &self,
        batch: Arc<[Change]>,
    ) -> BoxFuture<'static, Result<Vec<Result<Outcome, LedgerError>>, StoreError>> {
        let db = self.db.clone();
        Box::pin(async move {
            let committed = match &db.hot_pg {
                Some(pool) => pg::commit_batch(pool, &batch).await,
                None => sqlite::commit_batch(&db, &batch).await,
            };
            committed.map_err(store_err)
        })
    }
}

/// What a batch reads before it plans, the same on both backends.
struct BatchReads<'a> {
    /// Every user of the batch, in the order their balance rows are locked.
    users: BTreeSet<i64>,
    /// The batch's idempotency keys.
    keys: BTreeSet<&'a str>,
    /// The users whose open lots the plan needs: who spends, or whose lot expires.
    spenders: BTreeSet<i64>,
    /// The counters the batch's limits name, in the order they are locked.
    counter_keys: BTreeSet<&'a str>,
    /// The activities whose lease epochs the batch's changes are fenced with.
    fences: BTreeSet<&'a str>,
}

impl<'a> BatchReads<'a> {
    fn of(batch: &'a [Change]) -> Self {
        BatchReads {
            users: batch.iter().map(|c| c.user_id).collect(),
            keys: batch.iter().map(|c| c.idem_key.as_str()).collect(),
            spenders: batch
                .iter()
                .filter(|c| {
                    c.amount < 0 || c.legs.iter().any(|l| l.amount < 0) || c.expire_lot.is_some()
                })
                .map(|c| c.user_id)
                .collect(),
            counter_keys: batch
                .iter()
                .flat_map(|c| c.limits.iter().map(|l| l.key.as_str()))
                .collect(),
            fences: batch
                .iter()
                .filter_map(|c| c.fence.as_ref().map(|f| f.activity.as_ref()))
                .collect(),
        }
    }
}

/// Entries already stored, by `(app, key)`.
type StoredKeys = HashMap<(String, String), StoredEntry>;

/// An entry already stored under a batch's key, as both backends read it.
#[derive(sqlx::FromRow)]
struct StoredRow {
    app_id: String,
    idem_key: String,
    user_id: i64,
    amount: i64,
    kind: String,
    reference: String,
    id: i64,
    balance_after: i64,
    created_at: i64,
}

impl StoredRow {
    fn into_entry(self) -> ((String, String), StoredEntry) {
        (
            (self.app_id, self.idem_key),
            StoredEntry {
                user_id: self.user_id,
                amount: self.amount,
                kind: self.kind,
                reference: self.reference,
                outcome: Outcome {
                    entry_id: self.id,
                    balance_after: self.balance_after,
                    amount: self.amount,
                    created_at: self.created_at,
                },
            },
        )
    }
}

/// The id of every new entry of `plan`, in plan order, from the ids the insert returned by
/// `(app, key)`.
fn entry_ids(
    batch: &[Change],
    plan: &BatchPlan,
    ids: &HashMap<(String, String), i64>,
) -> Result<Vec<i64>, sqlx::Error> {
    plan.entries
        .iter()
        .map(|entry| {
            let c = &batch[entry.change_index];
            ids.get(&(c.app_id.clone(), entry.idem_key(c)))
                .copied()
                .ok_or_else(|| sqlx::Error::Protocol("inserted entry id missing".into()))
        })
        .collect()
}

/// Each change's answer once its batch committed at `now`.
fn outcomes(plan: &BatchPlan, entry_ids: &[i64], now: i64) -> Vec<Result<Outcome, LedgerError>> {
    plan.decisions
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
