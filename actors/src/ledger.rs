//! The ledger actor: group commit of point changes.
//!
//! Callers send a [`Submit`] with one [`Change`]. The actor queues it and, whenever no commit is
//! in flight, drains up to [`LedgerLimits::batch_max`] queued changes into one batch that the
//! [`LedgerStore`] commits in a single transaction. Every caller of the batch is answered after
//! that commit, so an acknowledgement always means "durable". While a batch commits, new changes
//! pile up and form the next batch: under load the batches grow by themselves, and when idle a
//! lone change is committed at once (unless a linger is configured).
//!
//! The decision for each change is made by [`plan_batch`], a pure function over the state the
//! store read inside the transaction (balances locked, credit lots, stored idempotency keys). One
//! change failing (insufficient points, conflicting key) never fails its neighbours.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::store::LedgerStore;

/// Changes above this magnitude are refused before they reach the database: it keeps every sum
/// of a user's entries far inside `i64` and catches unit mistakes (cents vs points).
pub const CHANGE_AMOUNT_ABS_MAX: i64 = 1_000_000_000;

/// Sizing of the ledger actor.
#[derive(Debug, Clone, Copy)]
pub struct LedgerLimits {
    /// Most changes committed in one transaction.
    pub batch_max: usize,
    /// How long a batch that is not full waits for more changes before it commits. Zero commits
    /// at once; batches still form while a commit is in flight.
    pub linger: Duration,
    /// Most changes waiting for a commit; past it the actor answers [`LedgerError::Busy`].
    pub queue_max: usize,
    /// Most batches committing at once. Two let one batch run its statements while the other
    /// waits for its commit to reach the disk; row locks taken in user order keep them correct.
    pub commits_in_flight_max: usize,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        Self {
            batch_max: LEDGER_BATCH_ENTRIES_MAX,
            linger: LEDGER_LINGER,
            queue_max: LEDGER_QUEUE_ENTRIES_MAX,
            commits_in_flight_max: 1,
        }
    }
}

/// Default most changes per transaction. Postgres on a small machine writes ~50k rows/s in
/// transactions of a few hundred rows, against a few thousand one-row transactions per second.
pub const LEDGER_BATCH_ENTRIES_MAX: usize = 512;
/// Default linger: none. Batches form naturally while the previous commit is in flight.
pub const LEDGER_LINGER: Duration = Duration::ZERO;
/// Default most queued changes: about a second of full-speed commits.
pub const LEDGER_QUEUE_ENTRIES_MAX: usize = 20_000;
/// How often a failed batch is tried again before its callers get a storage error.
const LEDGER_COMMIT_ATTEMPTS_MAX: u32 = 3;

/// The reward type credited by the ledger itself; every other type becomes a fulfilment order.
pub const REWARD_POINTS: &str = "积分";
/// Every reward type an activity or task may pay: points, or a fulfilment order of Alipay
/// points (集分宝), cash (现金红包), a voucher (电子权益) or goods (实物).
pub const REWARD_TYPES: &[&str] = &[REWARD_POINTS, "集分宝", "现金红包", "电子权益", "实物"];

/// One point change: a grant (positive) or a deduction (negative) for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The app (tenant) the user belongs to; idempotency keys are unique per app.
    pub app_id: String,
    /// Internal user id.
    pub user_id: i64,
    /// Signed amount in points; never zero.
    pub amount: i64,
    /// What kind of change this is (`grant`, `deduct`, `sign`, `task`, an event type, ...).
    pub kind: String,
    /// Idempotency key, unique per app. A replay returns the original outcome.
    pub idem_key: String,
    /// What the change refers to (a task id, a prize id, an order id).
    pub reference: String,
    /// Human-readable description shown in the user's history.
    pub description: String,
    /// When the credited points expire (epoch ms); `None` never. Ignored for deductions.
    pub expires_at: Option<i64>,
    /// Counters this change counts against (a daily cap, a card's stock, one packet of a pool):
    /// the change applies only while every one is below its ceiling, and moves each by one, in
    /// the same transaction as the entries.
    pub limits: Vec<Limit>,
    /// Entries applied before the main one, all or nothing with it (the ticket paid for a grab).
    /// Each is stored under the key `<idem_key>#<index>`.
    pub legs: Vec<Leg>,
    /// A reward delivered outside the ledger (Alipay points, cash, a voucher, goods), stored as a
    /// fulfilment order in the same commit as the entries.
    pub order: Option<OrderSpec>,
}

impl Change {
    /// A plain change: one entry, no counters, no legs, no order.
    pub fn simple(
        app_id: impl Into<String>,
        user_id: i64,
        amount: i64,
        kind: impl Into<String>,
        idem_key: impl Into<String>,
    ) -> Self {
        Change {
            app_id: app_id.into(),
            user_id,
            amount,
            kind: kind.into(),
            idem_key: idem_key.into(),
            reference: String::new(),
            description: String::new(),
            expires_at: None,
            limits: Vec::new(),
            legs: Vec::new(),
            order: None,
        }
    }

    /// Whether the change records something besides points, which makes a zero amount
    /// meaningful (a claim of an outside reward, a check-in).
    fn records_more(&self) -> bool {
        !self.limits.is_empty() || !self.legs.is_empty() || self.order.is_some()
    }

    /// Every amount of the change in the order it applies: the legs, then the main entry.
    fn amounts(&self) -> impl Iterator<Item = i64> + '_ {
        self.legs
            .iter()
            .map(|l| l.amount)
            .chain(std::iter::once(self.amount))
    }
}

/// An extra entry of a [`Change`], applied before its main entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// Signed amount in points; never zero.
    pub amount: i64,
    pub kind: String,
    pub description: String,
}

/// A reward that the fulfilment outbox delivers to the configured webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    /// What is delivered, e.g. `集分宝`, `现金红包`, `电子权益`, `实物`.
    pub reward_type: String,
    /// How much of it (Alipay points, cents, pieces).
    pub amount: i64,
    /// Free-form JSON the receiver needs (card, prize, address).
    pub detail: String,
}

/// A named counter with a ceiling: the change applies only while the counter is below `max`,
/// and applying it adds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Counter name, e.g. `event:<app>:<user>:<type>:<day>`.
    pub key: String,
    /// Most changes the counter admits.
    pub max: i64,
}

/// The committed result of a change, identical for the original call and every replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Ledger entry id.
    pub entry_id: i64,
    /// The user's balance right after this change.
    pub balance_after: i64,
    /// The signed amount that was applied.
    pub amount: i64,
    /// Commit time of the entry (epoch ms).
    pub created_at: i64,
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The deduction would make the balance negative.
    #[error("insufficient points: balance {balance}, needed {needed}")]
    Insufficient { balance: i64, needed: i64 },
    /// The idempotency key was used before with other parameters.
    #[error("idempotency key already used with other parameters")]
    Conflict,
    /// A counter of the change reached its ceiling (a daily cap, a stock); `key` names the
    /// first of the change's limits that refused.
    #[error("limit reached")]
    LimitReached { key: String },
    /// The amount is zero or out of range.
    #[error("invalid amount {0}")]
    InvalidAmount(i64),
    /// The queue is full; try again later.
    #[error("ledger busy, try again")]
    Busy,
    /// The commit failed; nothing of the change was written.
    #[error("ledger storage unavailable: {0}")]
    Storage(String),
}

/// An entry already stored under an idempotency key, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub user_id: i64,
    pub amount: i64,
    pub kind: String,
    pub reference: String,
    pub outcome: Outcome,
}

impl StoredEntry {
    /// Whether `change` asks for exactly what this entry recorded.
    fn matches(&self, change: &Change) -> bool {
        self.user_id == change.user_id
            && self.amount == change.amount
            && self.kind == change.kind
            && self.reference == change.reference
    }
}

/// A credit lot: the part of one credit that has not been spent or expired yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    /// Stored lot id; `None` for a lot created by this batch.
    pub id: Option<i64>,
    /// Index into [`BatchPlan::entries`] of the credit that created it (new lots only).
    pub entry_index: Option<usize>,
    pub remaining: i64,
    pub expires_at: Option<i64>,
}

impl Lot {
    /// Consumption order: earliest expiry first, never-expiring last, then oldest first.
    fn order_key(&self) -> (i64, i64, usize) {
        (
            self.expires_at.unwrap_or(i64::MAX),
            self.id.unwrap_or(i64::MAX),
            self.entry_index.unwrap_or(0),
        )
    }
}

/// A ledger entry the batch will insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Index of the change in the batch.
    pub change_index: usize,
    /// Which leg of the change this entry is; `None` for the main entry.
    pub leg: Option<usize>,
    pub amount: i64,
    pub balance_after: i64,
}

impl NewEntry {
    /// The entry's idempotency key: the change's own for the main entry, `<key>#<leg>` for a leg.
    pub fn idem_key(&self, change: &Change) -> String {
        match self.leg {
            None => change.idem_key.clone(),
            Some(leg) => format!("{}#{leg}", change.idem_key),
        }
    }

    /// The entry's kind and description.
    pub fn texts<'c>(&self, change: &'c Change) -> (&'c str, &'c str) {
        match self.leg.and_then(|leg| change.legs.get(leg)) {
            None => (&change.kind, &change.description),
            Some(leg) => (&leg.kind, &leg.description),
        }
    }
}

/// What one batch will write, decided in memory from the state read inside the transaction.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// Entries to insert, in batch order.
    pub entries: Vec<NewEntry>,
    /// Final balance of every user the batch touched.
    pub balances: HashMap<i64, i64>,
    /// New lots per user (remaining already reduced by later debits of the same batch).
    pub new_lots: Vec<(i64, Lot)>,
    /// Stored lots whose remaining changed: (lot id, new remaining).
    pub lot_updates: Vec<(i64, i64)>,
    /// Per change: `Ok(Some(i))` applied, its main entry being `entries[i]`, `Ok(None)` replay of a stored entry
    /// (answered with [`BatchPlan::replays`]), `Err` refused.
    pub decisions: Vec<Result<Option<usize>, LedgerError>>,
    /// Outcomes for replays, by change index.
    pub replays: HashMap<usize, Outcome>,
    /// Counters the batch moved: (key, new count).
    pub counter_updates: Vec<(String, i64)>,
}

/// Decides every change of a batch.
///
/// `balances` holds the current (locked) balance of every user in the batch (absent = 0);
/// `lots` the user's unspent lots; `stored` the entries already committed under the batch's
/// (app, key) pairs;
/// `counters` the current value of every counter the batch's limits name (absent = 0).
/// Changes are decided in batch order, so a credit earlier in the batch can fund a debit later in
/// it, and a key repeated inside the batch behaves like a replay of its first use.
pub fn plan_batch(
    changes: &[Change],
    mut balances: HashMap<i64, i64>,
    mut lots: HashMap<i64, Vec<Lot>>,
    stored: &HashMap<(String, String), StoredEntry>,
    mut counters: HashMap<String, i64>,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    // Keys first used in this batch: key -> change index of that first use.
    let mut batch_keys: HashMap<(&str, &str), usize> = HashMap::new();
    let mut lot_changed: HashMap<i64, i64> = HashMap::new();
    let mut moved_counters: std::collections::BTreeSet<String> = Default::default();
    for list in lots.values_mut() {
        list.sort_by_key(Lot::order_key);
    }

    for (index, change) in changes.iter().enumerate() {
        let amount_ok = |a: i64| a.unsigned_abs() <= CHANGE_AMOUNT_ABS_MAX.unsigned_abs();
        if let Some(bad) = change
            .amounts()
            .find(|&a| !amount_ok(a))
            .or_else(|| change.legs.iter().map(|l| l.amount).find(|&a| a == 0))
            .or_else(|| (change.amount == 0 && !change.records_more()).then_some(0))
        {
            plan.decisions.push(Err(LedgerError::InvalidAmount(bad)));
            continue;
        }
        let key = (change.app_id.clone(), change.idem_key.clone());
        if let Some(entry) = stored.get(&key) {
            plan.decisions.push(if entry.matches(change) {
                plan.replays.insert(index, entry.outcome.clone());
                Ok(None)
            } else {
                Err(LedgerError::Conflict)
            });
            continue;
        }
        if let Some(&first) = batch_keys.get(&(change.app_id.as_str(), change.idem_key.as_str())) {
            let same = changes[first].user_id == change.user_id
                && changes[first].amount == change.amount
                && changes[first].kind == change.kind
                && changes[first].reference == change.reference;
            // The first use decides: a replay mirrors its decision, whatever it was.
            plan.decisions.push(if same {
                plan.decisions[first].clone()
            } else {
                Err(LedgerError::Conflict)
            });
            continue;
        }
        batch_keys.insert((change.app_id.as_str(), change.idem_key.as_str()), index);

        if let Some(full) = change
            .limits
            .iter()
            .find(|limit| counters.get(&limit.key).copied().unwrap_or(0) >= limit.max)
        {
            plan.decisions.push(Err(LedgerError::LimitReached {
                key: full.key.clone(),
            }));
            continue;
        }
        let balance = balances.entry(change.user_id).or_insert(0);
        // All or nothing: the balance must stay non-negative after every entry of the change.
        let mut running = *balance;
        let mut debits = 0;
        let mut short = false;
        for amount in change.amounts() {
            running += amount;
            debits += (-amount).max(0);
            short |= running < 0;
        }
        if short {
            plan.decisions.push(Err(LedgerError::Insufficient {
                balance: *balance,
                needed: debits,
            }));
            continue;
        }
        let user_lots = lots.entry(change.user_id).or_default();
        let legs = change
            .legs
            .iter()
            .enumerate()
            .map(|(i, l)| (Some(i), l.amount));
        for (leg, amount) in legs.chain(std::iter::once((None, change.amount))) {
            if amount == 0 {
                // A zero main entry records a claim; it moves no points and creates no lot.
            } else if amount < 0 {
                let mut left = -amount;
                for lot in user_lots.iter_mut() {
                    if left == 0 {
                        break;
                    }
                    let take = lot.remaining.min(left);
                    if take == 0 {
                        continue;
                    }
                    lot.remaining -= take;
                    left -= take;
                    if let Some(id) = lot.id {
                        lot_changed.insert(id, lot.remaining);
                    }
                }
            } else {
                let lot = Lot {
                    id: None,
                    entry_index: Some(plan.entries.len()),
                    remaining: amount,
                    expires_at: change.expires_at,
                };
                let at = user_lots.partition_point(|l| l.order_key() <= lot.order_key());
                user_lots.insert(at, lot);
            }
            *balance += amount;
            if leg.is_none() {
                plan.decisions.push(Ok(Some(plan.entries.len())));
            }
            plan.entries.push(NewEntry {
                change_index: index,
                leg,
                amount,
                balance_after: *balance,
            });
        }
        for limit in &change.limits {
            *counters.entry(limit.key.clone()).or_insert(0) += 1;
            moved_counters.insert(limit.key.clone());
        }
    }

    for (user, list) in lots {
        for lot in list {
            if lot.id.is_none() {
                plan.new_lots.push((user, lot));
            }
        }
    }
    plan.new_lots
        .sort_by_key(|(_, lot)| lot.entry_index.unwrap_or(usize::MAX));
    let mut updates: Vec<(i64, i64)> = lot_changed.into_iter().collect();
    updates.sort_unstable();
    plan.lot_updates = updates;
    plan.counter_updates = moved_counters
        .into_iter()
        .map(|key| {
            let count = counters.get(&key).copied().unwrap_or(0);
            (key, count)
        })
        .collect();
    let touched: std::collections::HashSet<i64> = plan
        .entries
        .iter()
        .map(|e| changes[e.change_index].user_id)
        .collect();
    plan.balances = balances
        .into_iter()
        .filter(|(user, _)| touched.contains(user))
        .collect();
    plan
}

/// Prometheus handles the ledger actor reports to.
#[derive(Clone)]
pub struct LedgerMetrics {
    /// Changes waiting for a commit.
    pub queue_depth: prometheus::IntGauge,
    /// Changes per committed batch.
    pub batch_size: prometheus::Histogram,
    /// Seconds from the start of a batch commit to its end.
    pub commit_seconds: prometheus::Histogram,
    /// Batches that failed and were retried or failed for good.
    pub commit_failures: prometheus::IntCounter,
}

/// Asks the ledger to apply one change; answered after the commit that holds it.
#[derive(Message)]
#[rtype(result = "Result<Outcome, LedgerError>")]
pub struct Submit(pub Change);

/// One change as committed, told to the ledger's listeners (leaderboards, the fulfilment outbox).
#[derive(Debug, Clone)]
pub struct CommittedChange {
    pub app_id: String,
    pub user_id: i64,
    pub kind: String,
    pub reference: String,
    pub outcome: Outcome,
    /// Whether the commit stored a fulfilment order with the change.
    pub has_order: bool,
}

/// The changes of one committed batch (replays included: a listener orders by `entry_id`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Committed(pub Arc<Vec<CommittedChange>>);

/// Adds a listener that is told of every committed batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Listen(pub Recipient<Committed>);

/// Answers once every change queued before it has been committed (or failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

struct Pending {
    change: Change,
    reply: oneshot::Sender<Result<Outcome, LedgerError>>,
}

/// The batching ledger actor. See the module documentation.
pub struct LedgerActor {
    store: Arc<dyn LedgerStore>,
    limits: LedgerLimits,
    metrics: Option<LedgerMetrics>,
    queue: VecDeque<Pending>,
    in_flight: usize,
    linger_armed: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    listeners: Vec<Recipient<Committed>>,
}

impl LedgerActor {
    pub fn new(
        store: Arc<dyn LedgerStore>,
        limits: LedgerLimits,
        metrics: Option<LedgerMetrics>,
    ) -> Self {
        Self {
            store,
            limits: LedgerLimits {
                batch_max: limits.batch_max.max(1),
                queue_max: limits.queue_max.max(1),
                linger: limits.linger,
                commits_in_flight_max: limits.commits_in_flight_max.max(1),
            },
            metrics,
            queue: VecDeque::new(),
            in_flight: 0,
            linger_armed: false,
            drain_waiters: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// Tells the listeners what a batch committed.
    fn notify(&self, batch: &[Pending], outcomes: &[Result<Outcome, LedgerError>]) {
        if self.listeners.is_empty() {
            return;
        }
        let committed: Vec<CommittedChange> = batch
            .iter()
            .zip(outcomes)
            .filter_map(|(pending, outcome)| {
                let outcome = outcome.as_ref().ok()?;
                let c = &pending.change;
                Some(CommittedChange {
                    app_id: c.app_id.clone(),
                    user_id: c.user_id,
                    kind: c.kind.clone(),
                    reference: c.reference.clone(),
                    outcome: outcome.clone(),
                    has_order: c.order.is_some(),
                })
            })
            .collect();
        if committed.is_empty() {
            return;
        }
        let message = Committed(Arc::new(committed));
        for listener in &self.listeners {
            // `do_send` never waits: a slow listener must not hold up the ledger.
            listener.do_send(message.clone());
        }
    }

    fn report_depth(&self) {
        if let Some(m) = &self.metrics {
            m.queue_depth.set(self.queue.len() as i64);
        }
    }

    /// Starts a commit if there is room for one and something to commit.
    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight >= self.limits.commits_in_flight_max {
            return;
        }
        if self.queue.is_empty() {
            if self.in_flight > 0 {
                return;
            }
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
            return;
        }
        let lingering = !self.limits.linger.is_zero()
            && self.queue.len() < self.limits.batch_max
            && self.drain_waiters.is_empty();
        if lingering {
            if !self.linger_armed {
                self.linger_armed = true;
                ctx.run_later(self.limits.linger, |actor, ctx| {
                    actor.linger_armed = false;
                    actor.flush(ctx);
                });
            }
            return;
        }
        self.flush(ctx);
    }

    /// Commits the head of the queue as one batch and answers its callers afterwards.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight >= self.limits.commits_in_flight_max || self.queue.is_empty() {
            return;
        }
        let take = self.queue.len().min(self.limits.batch_max);
        let batch: Vec<Pending> = self.queue.drain(..take).collect();
        self.report_depth();
        self.in_flight += 1;
        let store = Arc::clone(&self.store);
        let changes: Vec<Change> = batch.iter().map(|p| p.change.clone()).collect();
        let metrics = self.metrics.clone();
        let commit = async move {
            let started = Instant::now();
            let mut attempt = 1;
            let result = loop {
                match store.commit_batch(changes.clone()).await {
                    Ok(outcomes) => break Ok(outcomes),
                    Err(err) => {
                        if let Some(m) = &metrics {
                            m.commit_failures.inc();
                        }
                        tracing::warn!(attempt, error = %err, size = changes.len(), "ledger batch failed");
                        if attempt >= LEDGER_COMMIT_ATTEMPTS_MAX {
                            break Err(err);
                        }
                        attempt += 1;
                        // A short pause lets a transient fault (a lock timeout, a reconnect) pass.
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    }
                }
            };
            if let Some(m) = &metrics {
                m.commit_seconds.observe(started.elapsed().as_secs_f64());
                m.batch_size.observe(changes.len() as f64);
            }
            result
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(commit).map(move |result, actor, ctx| {
                match result {
                    Ok(outcomes) if outcomes.len() == batch.len() => {
                        actor.notify(&batch, &outcomes);
                        for (pending, outcome) in batch.into_iter().zip(outcomes) {
                            let _ = pending.reply.send(outcome);
                        }
                    }
                    Ok(outcomes) => {
                        let err = LedgerError::Storage(format!(
                            "store answered {} outcomes for {} changes",
                            outcomes.len(),
                            batch.len()
                        ));
                        for pending in batch {
                            let _ = pending.reply.send(Err(err.clone()));
                        }
                    }
                    Err(err) => {
                        for pending in batch {
                            let _ = pending.reply.send(Err(LedgerError::Storage(err.0.clone())));
                        }
                    }
                }
                actor.in_flight -= 1;
                actor.maybe_flush(ctx);
            }),
        );
    }
}

impl Actor for LedgerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The queue bound is enforced on `self.queue`; the mailbox only needs to hold what
        // arrives between two polls of the actor.
        ctx.set_mailbox_capacity(self.limits.queue_max);
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        // Keep running while anything is queued or committing: shutdown drains the ledger.
        if self.in_flight > 0 || !self.queue.is_empty() {
            Running::Continue
        } else {
            Running::Stop
        }
    }
}

impl Handler<Submit> for LedgerActor {
    type Result = ResponseFuture<Result<Outcome, LedgerError>>;

    /// Queues the change and answers when its batch has committed.
    fn handle(&mut self, msg: Submit, ctx: &mut Self::Context) -> Self::Result {
        if self.queue.len() >= self.limits.queue_max {
            return Box::pin(async { Err(LedgerError::Busy) });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.push_back(Pending {
            change: msg.0,
            reply,
        });
        self.report_depth();
        self.maybe_flush(ctx);
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(LedgerError::Storage("ledger stopped".into())))
        })
    }
}

impl Handler<Listen> for LedgerActor {
    type Result = ();

    /// Registers a listener of committed batches.
    fn handle(&mut self, msg: Listen, _ctx: &mut Self::Context) {
        self.listeners.retain(|l| l.connected());
        self.listeners.push(msg.0);
    }
}

impl Handler<Drain> for LedgerActor {
    type Result = ResponseFuture<()>;

    /// Commits everything queued, without lingering, and answers when the queue is empty.
    fn handle(&mut self, _msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.maybe_flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: i64, amount: i64, key: &str) -> Change {
        Change {
            app_id: "default".into(),
            user_id: user,
            amount,
            kind: if amount > 0 { "grant" } else { "deduct" }.into(),
            idem_key: key.into(),
            reference: String::new(),
            description: String::new(),
            expires_at: None,
            limits: Vec::new(),
            legs: Vec::new(),
            order: None,
        }
    }

    fn stored_lot(id: i64, remaining: i64, expires_at: Option<i64>) -> Lot {
        Lot {
            id: Some(id),
            entry_index: None,
            remaining,
            expires_at,
        }
    }

    #[test]
    fn deduction_beyond_balance_fails_alone() {
        let changes = vec![change(1, 10, "a"), change(1, -15, "b"), change(1, -10, "c")];
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        assert_eq!(
            plan.decisions[1],
            Err(LedgerError::Insufficient {
                balance: 10,
                needed: 15
            })
        );
        assert_eq!(plan.decisions[2], Ok(Some(1)));
        assert_eq!(plan.balances[&1], 0);
        assert_eq!(plan.entries[1].balance_after, 0);
        // The credit's lot was fully spent inside the batch.
        assert_eq!(plan.new_lots.len(), 1);
        assert_eq!(plan.new_lots[0].1.remaining, 0);
    }

    #[test]
    fn debits_consume_earliest_expiry_first() {
        let lots = HashMap::from([(
            7,
            vec![
                stored_lot(3, 5, None),
                stored_lot(2, 5, Some(2_000)),
                stored_lot(1, 5, Some(1_000)),
            ],
        )]);
        let plan = plan_batch(
            &[change(7, -7, "x")],
            HashMap::from([(7, 15)]),
            lots,
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.lot_updates, vec![(1, 0), (2, 3)]);
        assert_eq!(plan.balances[&7], 8);
    }

    #[test]
    fn replay_and_conflict_by_key() {
        let outcome = Outcome {
            entry_id: 9,
            balance_after: 50,
            amount: 5,
            created_at: 1,
        };
        let stored = HashMap::from([(
            ("default".to_string(), "k".to_string()),
            StoredEntry {
                user_id: 1,
                amount: 5,
                kind: "grant".into(),
                reference: String::new(),
                outcome: outcome.clone(),
            },
        )]);
        let changes = vec![
            change(1, 5, "k"),
            change(1, 6, "k"),
            change(2, 3, "n"),
            change(2, 3, "n"),
            change(2, 4, "n"),
        ];
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &stored,
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(None));
        assert_eq!(plan.replays[&0], outcome);
        assert_eq!(plan.decisions[1], Err(LedgerError::Conflict));
        assert_eq!(plan.decisions[2], Ok(Some(0)));
        assert_eq!(
            plan.decisions[3],
            Ok(Some(0)),
            "in-batch replay mirrors the first use"
        );
        assert_eq!(plan.decisions[4], Err(LedgerError::Conflict));
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.balances[&2], 3);
    }

    #[test]
    fn zero_and_huge_amounts_are_refused() {
        let plan = plan_batch(
            &[
                change(1, 0, "a"),
                change(1, CHANGE_AMOUNT_ABS_MAX + 1, "b"),
                change(1, i64::MIN, "c"),
            ],
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert!(matches!(
            plan.decisions[0],
            Err(LedgerError::InvalidAmount(0))
        ));
        assert!(matches!(
            plan.decisions[1],
            Err(LedgerError::InvalidAmount(_))
        ));
        assert!(plan.entries.is_empty());
        assert!(plan.balances.is_empty());
        // A zero amount that records a claim (a counter moves) is a change of its own.
        let claim = Change {
            limits: vec![Limit {
                key: "stock".into(),
                max: 1,
            }],
            ..change(1, 0, "claim")
        };
        let plan = plan_batch(
            &[claim],
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        assert!(plan.new_lots.is_empty());
    }

    #[test]
    fn legs_apply_all_or_nothing() {
        let grab = |user: i64, key: &str| Change {
            legs: vec![Leg {
                amount: -10,
                kind: "ticket".into(),
                description: String::new(),
            }],
            limits: vec![Limit {
                key: "stock".into(),
                max: 5,
            }],
            ..change(user, 30, key)
        };
        // User 1 can pay the ticket; user 2 cannot, and its prize must not fund the ticket.
        let plan = plan_batch(
            &[grab(1, "a"), grab(2, "b")],
            HashMap::from([(1, 10), (2, 5)]),
            HashMap::from([
                (1, vec![stored_lot(1, 10, None)]),
                (2, vec![stored_lot(2, 5, None)]),
            ]),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(1)));
        assert_eq!(
            plan.decisions[1],
            Err(LedgerError::Insufficient {
                balance: 5,
                needed: 10
            })
        );
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.entries[0].leg, Some(0));
        assert_eq!(plan.entries[0].balance_after, 0);
        assert_eq!(plan.entries[1].balance_after, 30);
        assert_eq!(plan.balances.get(&2), None);
        assert_eq!(plan.counter_updates, vec![("stock".to_string(), 1)]);
    }

    #[test]
    fn limits_cap_changes_and_report_counts() {
        let limited = |key: &str| Change {
            limits: vec![Limit {
                key: "cap".into(),
                max: 2,
            }],
            ..change(1, 5, key)
        };
        let changes = vec![limited("a"), limited("b"), limited("c")];
        let counters = HashMap::from([("cap".to_string(), 1)]);
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            counters,
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        let refused = Err(LedgerError::LimitReached { key: "cap".into() });
        assert_eq!(plan.decisions[1], refused);
        assert_eq!(plan.decisions[2], refused);
        assert_eq!(plan.counter_updates, vec![("cap".to_string(), 2)]);
    }
}
