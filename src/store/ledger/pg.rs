//! The ledger batch on Postgres, with typed arrays.
//!
//! Every statement reads through `= ANY($n)` over a bound array and writes from `unnest(...)`
//! over bound column arrays, so each is an index lookup or an index-ordered write whatever the
//! size of the tables, and its text is the same whatever the size of the batch (prepared once per
//! connection). A batch of known users costs, besides `BEGIN` and `COMMIT`, three round trips:
//! lock and read keys; counters and the spenders' lots; writes (the second is skipped when the
//! batch names no counter and spends nothing). First-time users add one.

use std::collections::HashMap;

use points_actors::{plan_fenced_batch, BatchPlan, Change, LedgerError, Lot, Outcome};
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};

use super::{entry_ids, outcomes, BatchReads, StoredKeys, StoredRow};
use crate::clock::now_ms;

/// Locks the batch's existing balance rows in user order and reads the entries already stored
/// under its keys, in one statement. The key read uses the statement's snapshot, taken before
/// any lock wait: if another process commits one of these keys while this batch waits for its
/// lock, the key is missed here, the insert then hits the unique index, and the batch fails and
/// is tried again, when the key is visible.
const LOCK_AND_READ_KEYS: &str = concat!(lock_and_read_keys!(), "");

/// [`LOCK_AND_READ_KEYS`] for a batch with fenced changes: it also reads the lease rows its
/// changes are fenced with (`$3`) `FOR SHARE`. The share lock makes a takeover (which updates
/// the row) wait for this batch's commit, so no change decided under an old epoch commits after
/// a newer owner took over; a row updated while this statement waited for it is read as it is
/// now. A batch without fences (a single node, or only unleased changes) skips the lease table.
const LOCK_READ_KEYS_AND_FENCES: &str = concat!(
    lock_and_read_keys!(
        ", fences AS (SELECT activity, epoch FROM activity_leases \
         WHERE activity = ANY($3::text[]) ORDER BY activity FOR SHARE)"
    ),
    " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
     activity, epoch FROM fences"
);

/// The balance locks and the stored-key read, with more CTEs after `locked` if given.
macro_rules! lock_and_read_keys {
    () => {
        lock_and_read_keys!("")
    };
    ($more_ctes:expr) => {
        concat!(
            "WITH locked AS (SELECT user_id, balance FROM balances \
             WHERE user_id = ANY($1::bigint[]) ORDER BY user_id FOR UPDATE)",
            $more_ctes,
            " SELECT user_id AS locked_user, balance, NULL::text AS app_id, \
             NULL::text AS idem_key, NULL::bigint AS user_id, NULL::bigint AS amount, \
             NULL::text AS kind, NULL::text AS reference, NULL::bigint AS id, \
             NULL::bigint AS balance_after, NULL::bigint AS created_at, NULL::text AS activity, \
             NULL::bigint AS epoch FROM locked \
             UNION ALL \
             SELECT NULL, NULL, app_id, idem_key, user_id, amount, kind, reference, id, \
             balance_after, created_at, NULL, NULL FROM ledger_entries \
             WHERE idem_key = ANY($2::text[])"
        )
    };
}
use lock_and_read_keys;

/// Creates the balance rows of first-time users at zero and locks them, in user order:
/// `DO UPDATE` takes the row lock that `SELECT ... FOR UPDATE` would (a row another process just
/// created is locked and read as it is).
const CREATE_BALANCES: &str = "\
INSERT INTO balances (user_id, balance, updated_at) \
SELECT u, 0, $2 FROM unnest($1::bigint[]) AS u ORDER BY u \
ON CONFLICT (user_id) DO UPDATE SET balance = balances.balance RETURNING user_id, balance";

/// Creates the counters the batch's limits name at zero and locks and reads them all, in key
/// order (`$1`), and reads the open credit lots of the users who spend or expire a lot in this
/// batch (`$3`), in one statement. It runs after the balance locks are held, so its snapshot
/// already holds every committed change to those users' lots.
const COUNTERS_AND_LOTS: &str = "\
WITH c AS ( \
  INSERT INTO ledger_counters (counter_key, count, updated_at) \
  SELECT k, 0, $2 FROM unnest($1::text[]) AS k ORDER BY k \
  ON CONFLICT (counter_key) DO UPDATE SET count = ledger_counters.count \
  RETURNING counter_key, count) \
SELECT counter_key, count, NULL::bigint AS id, NULL::bigint AS user_id, \
       NULL::bigint AS remaining, NULL::bigint AS expires_at FROM c \
UNION ALL \
SELECT NULL, NULL, id, user_id, remaining, expires_at FROM credit_lots \
WHERE user_id = ANY($3::bigint[]) AND remaining > 0";

/// Every write of a batch in one statement (data-modifying CTEs). Parameters, each an array of
/// one column: `$1-$9` entries, `$10-$15` new lots, `$16-$17` lot updates, `$18-$19` balances,
/// `$20-$21` counters, `$22-$29` fulfilment orders; `$30` the commit time.
const WRITE: &str = "\
WITH e AS ( \
  INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, description, \
                              expires_at, balance_after, created_at) \
  SELECT r.app_id, r.user_id, r.amount, r.kind, r.idem_key, r.reference, r.description, \
         r.expires_at, r.balance_after, $30 \
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
              $7::text[], $8::bigint[], $9::bigint[]) \
       AS r(app_id, user_id, amount, kind, idem_key, reference, description, expires_at, \
            balance_after) \
  RETURNING app_id, idem_key, id), \
l AS ( \
  INSERT INTO credit_lots (user_id, entry_id, amount, remaining, expires_at, created_at) \
  SELECT r.user_id, e.id, r.amount, r.remaining, r.expires_at, $30 \
  FROM unnest($10::bigint[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], \
              $15::bigint[]) AS r(user_id, app_id, idem_key, amount, remaining, expires_at) \
  JOIN e ON e.idem_key = r.idem_key AND e.app_id = r.app_id), \
u AS ( \
  UPDATE credit_lots SET remaining = r.remaining \
  FROM unnest($16::bigint[], $17::bigint[]) AS r(id, remaining) WHERE credit_lots.id = r.id), \
b AS ( \
  UPDATE balances SET balance = r.balance, updated_at = $30 \
  FROM unnest($18::bigint[], $19::bigint[]) AS r(user_id, balance) \
  WHERE balances.user_id = r.user_id), \
c AS ( \
  UPDATE ledger_counters SET count = r.count, updated_at = $30 \
  FROM unnest($20::text[], $21::bigint[]) AS r(counter_key, count) \
  WHERE ledger_counters.counter_key = r.counter_key), \
o AS ( \
  INSERT INTO fulfilment_orders (app_id, user_id, idem_key, source_kind, reference, reward_type, \
                                 amount, detail, status, attempts, next_attempt_at, created_at) \
  SELECT r.app_id, r.user_id, r.idem_key, r.source_kind, r.reference, r.reward_type, r.amount, \
         r.detail, 'pending', 0, $30, $30 \
  FROM unnest($22::text[], $23::bigint[], $24::text[], $25::text[], $26::text[], $27::text[], \
              $28::bigint[], $29::text[]) \
       AS r(app_id, user_id, idem_key, source_kind, reference, reward_type, amount, detail)) \
SELECT app_id, idem_key, id FROM e";

/// Decides and commits one batch on Postgres.
pub(super) async fn commit_batch(
    pool: &PgPool,
    batch: &[Change],
) -> Result<Vec<Result<Outcome, LedgerError>>, sqlx::Error> {
    let now = now_ms();
    let reads = BatchReads::of(batch);
    let mut tx = pool.begin().await?;

    let users: Vec<i64> = reads.users.iter().copied().collect();
    let keys: Vec<&str> = reads.keys.iter().copied().collect();
    let rows = if reads.fences.is_empty() {
        sqlx::query(LOCK_AND_READ_KEYS)
            .bind(&users)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?
    } else {
        let fences: Vec<&str> = reads.fences.iter().copied().collect();
        sqlx::query(LOCK_READ_KEYS_AND_FENCES)
            .bind(&users)
            .bind(&keys)
            .bind(&fences)
            .fetch_all(&mut *tx)
            .await?
    };
    let mut balances: HashMap<i64, i64> = HashMap::with_capacity(users.len());
    let mut stored: StoredKeys = HashMap::new();
    let mut leases: HashMap<String, i64> = HashMap::new();
    for row in rows {
        if let Some(user) = row.try_get::<Option<i64>, _>("locked_user")? {
            balances.insert(user, row.try_get("balance")?);
        } else if let Some(activity) = row.try_get::<Option<String>, _>("activity")? {
            leases.insert(activity, row.try_get("epoch")?);
        } else {
            let (key, entry) = StoredRow::from_row(&row)?.into_entry();
            stored.insert(key, entry);
        }
    }

    let missing: Vec<i64> = users
        .iter()
        .filter(|u| !balances.contains_key(u))
        .copied()
        .collect();
    if !missing.is_empty() {
        for row in sqlx::query(CREATE_BALANCES)
            .bind(&missing)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
        {
            balances.insert(row.try_get("user_id")?, row.try_get("balance")?);
        }
    }

    let (counters, lots) = counters_and_lots(&mut tx, &reads, now).await?;
    let plan = plan_fenced_batch(batch, balances, lots, &stored, counters, &leases);
    let ids = write(&mut tx, batch, &plan, now).await?;
    let entry_ids = entry_ids(batch, &plan, &ids)?;
    tx.commit().await?;
    Ok(outcomes(&plan, &entry_ids, now))
}

/// The batch's counters (created at zero, locked) and its spenders' open lots.
async fn counters_and_lots(
    tx: &mut Transaction<'static, Postgres>,
    reads: &BatchReads<'_>,
    now: i64,
) -> Result<(HashMap<String, i64>, HashMap<i64, Vec<Lot>>), sqlx::Error> {
    let mut counters: HashMap<String, i64> = HashMap::new();
    let mut lots: HashMap<i64, Vec<Lot>> = HashMap::new();
    if reads.counter_keys.is_empty() && reads.spenders.is_empty() {
        return Ok((counters, lots));
    }
    let keys: Vec<&str> = reads.counter_keys.iter().copied().collect();
    let spenders: Vec<i64> = reads.spenders.iter().copied().collect();
    for row in sqlx::query(COUNTERS_AND_LOTS)
        .bind(&keys)
        .bind(now)
        .bind(&spenders)
        .fetch_all(&mut **tx)
        .await?
    {
        match row.try_get::<Option<String>, _>("counter_key")? {
            Some(key) => {
                counters.insert(key, row.try_get("count")?);
            }
            None => lots.entry(row.try_get("user_id")?).or_default().push(Lot {
                id: Some(row.try_get("id")?),
                entry_index: None,
                remaining: row.try_get("remaining")?,
                expires_at: row.try_get("expires_at")?,
            }),
        }
    }
    Ok((counters, lots))
}

/// Writes what `plan` decided and returns the new entries' ids by `(app, key)`.
async fn write(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[Change],
    plan: &BatchPlan,
    now: i64,
) -> Result<HashMap<(String, String), i64>, sqlx::Error> {
    let n = plan.entries.len();
    let (mut e_app, mut e_user, mut e_amount) = (vec_of(n), vec_of(n), vec_of(n));
    let (mut e_kind, mut e_key, mut e_ref) = (vec_of(n), vec_of(n), vec_of(n));
    let (mut e_desc, mut e_expires, mut e_after) = (vec_of(n), vec_of(n), vec_of(n));
    for entry in &plan.entries {
        let c = &batch[entry.change_index];
        let (kind, description) = entry.texts(c);
        e_app.push(c.app_id.as_str());
        e_user.push(c.user_id);
        e_amount.push(entry.amount);
        e_kind.push(kind);
        e_key.push(entry.idem_key(c));
        e_ref.push(c.reference.as_str());
        e_desc.push(description);
        e_expires.push(entry.expires_at);
        e_after.push(entry.balance_after);
    }

    let m = plan.new_lots.len();
    let (mut l_user, mut l_app, mut l_key) = (vec_of(m), vec_of(m), vec_of(m));
    let (mut l_amount, mut l_remaining, mut l_expires) = (vec_of(m), vec_of(m), vec_of(m));
    for (user, lot) in &plan.new_lots {
        let entry = &plan.entries[lot.entry_index.unwrap_or_default()];
        let change = &batch[entry.change_index];
        l_user.push(*user);
        l_app.push(change.app_id.as_str());
        l_key.push(entry.idem_key(change));
        l_amount.push(entry.amount);
        l_remaining.push(lot.remaining);
        l_expires.push(lot.expires_at);
    }

    let (u_id, u_remaining): (Vec<i64>, Vec<i64>) = plan.lot_updates.iter().copied().unzip();
    let (b_user, b_balance): (Vec<i64>, Vec<i64>) = plan.balances.iter().unzip();
    let (c_key, c_count): (Vec<&str>, Vec<i64>) = plan
        .counter_updates
        .iter()
        .map(|(key, count)| (key.as_str(), *count))
        .unzip();

    let (mut o_app, mut o_user, mut o_key, mut o_kind) = (vec![], vec![], vec![], vec![]);
    let (mut o_ref, mut o_type, mut o_amount, mut o_detail) = (vec![], vec![], vec![], vec![]);
    for entry in plan.entries.iter().filter(|entry| entry.leg.is_none()) {
        let c = &batch[entry.change_index];
        let Some(order) = c.order.as_ref() else {
            continue;
        };
        o_app.push(c.app_id.as_str());
        o_user.push(c.user_id);
        o_key.push(c.idem_key.as_str());
        o_kind.push(c.kind.as_str());
        o_ref.push(c.reference.as_str());
        o_type.push(order.reward_type.as_str());
        o_amount.push(order.amount);
        o_detail.push(order.detail.as_str());
    }

    let rows = sqlx::query(WRITE)
        .bind(e_app)
        .bind(e_user)
        .bind(e_amount)
        .bind(e_kind)
        .bind(e_key)
        .bind(e_ref)
        .bind(e_desc)
        .bind(e_expires)
        .bind(e_after)
        .bind(l_user)
        .bind(l_app)
        .bind(l_key)
        .bind(l_amount)
        .bind(l_remaining)
        .bind(l_expires)
        .bind(u_id)
        .bind(u_remaining)
        .bind(b_user)
        .bind(b_balance)
        .bind(c_key)
        .bind(c_count)
        .bind(o_app)
        .bind(o_user)
        .bind(o_key)
        .bind(o_kind)
        .bind(o_ref)
        .bind(o_type)
        .bind(o_amount)
        .bind(o_detail)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
    let mut ids = HashMap::with_capacity(rows.len());
    for row in rows {
        ids.insert(
            (row.try_get("app_id")?, row.try_get("idem_key")?),
            row.try_get("id")?,
        );
    }
    Ok(ids)
}

fn vec_of<T>(capacity: usize) -> Vec<T> {
    Vec::with_capacity(capacity)
}
