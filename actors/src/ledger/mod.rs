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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use crate::store::{LedgerStore, StoreError};

mod plan;

pub use plan::*;

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
/// A failed batch is tried again only while its first attempt started less than this long ago:
/// quick faults (a deadlock, a dropped connection) pass, an outage answers at once.
const RETRY_WITHIN: Duration = Duration::from_millis(500);

/// The reward type credited by the ledger itself; every other type becomes a fulfilment order.
pub const REWARD_POINTS: &str = "积分";
/// Every reward type an activity or task may pay: points, or a fulfilment order of Alipay
/// points (集分宝), cash (现金红包), a voucher (电子权益) or goods (实物).
pub const REWARD_TYPES: &[&str] = &[REWARD_POINTS, "集分宝", "现金红包", "电子权益", "实物"];

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
    fn notify(&self, batch: &[Change], outcomes: &[Result<Outcome, LedgerError>]) {
        if self.listeners.is_empty() {
            return;
        }
        let committed: Vec<CommittedChange> = batch
            .iter()
            .zip(outcomes)
            .filter_map(|(c, outcome)| {
                let outcome = outcome.as_ref().ok()?;
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
        // The changes move into one shared batch (a retry shares it too); the replies stay here.
        let (changes, replies): (Vec<Change>, Vec<_>) = self
            .queue
            .drain(..take)
            .map(|pending| (pending.change, pending.reply))
            .unzip();
        let changes: Arc<[Change]> = changes.into();
        let batch = Arc::clone(&changes);
        self.report_depth();
        self.in_flight += 1;
        let store = Arc::clone(&self.store);
        let metrics = self.metrics.clone();
        let commit = async move {
            let started = Instant::now();
            let result = commit_isolating(store, Arc::clone(&changes), metrics.clone()).await;
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
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(outcome);
                        }
                    }
                    Ok(outcomes) => {
                        let err = LedgerError::Storage(format!(
                            "store answered {} outcomes for {} changes",
                            outcomes.len(),
                            batch.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                    Err(err) => {
                        for reply in replies {
                            let _ = reply.send(Err(LedgerError::Storage(err.message.clone())));
                        }
                    }
                }
                actor.in_flight -= 1;
                actor.maybe_flush(ctx);
            }),
        );
    }
}

/// Commits `changes` as one batch, trying it again after a short pause when it failed. When the
/// database refused what the batch holds twice, the batch is split in halves until the change at
/// fault is alone: every other change commits, and that one is answered
/// [`LedgerError::Rejected`]. Only an outage fails a whole batch.
fn commit_isolating(
    store: Arc<dyn LedgerStore>,
    changes: Arc<[Change]>,
    metrics: Option<LedgerMetrics>,
) -> BoxFuture<'static, Result<Vec<Result<Outcome, LedgerError>>, StoreError>> {
    Box::pin(async move {
        let mut attempt = 1;
        let tried = Instant::now();
        loop {
            let err = match store.commit_batch(Arc::clone(&changes)).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(err) => err,
            };
            if let Some(m) = &metrics {
                m.commit_failures.inc();
            }
            tracing::warn!(attempt, error = %err, rejected = err.rejected, size = changes.len(), "ledger batch failed");
            // A refusal is tried again once, as a race with another node's batch on the same key
            // is refused too and then replays; refused twice, the batch holds the fault.
            if err.rejected && attempt >= 2 {
                if changes.len() == 1 {
                    return Ok(vec![Err(LedgerError::Rejected(err.message))]);
                }
                let mid = changes.len() / 2;
                let mut outcomes = Vec::with_capacity(changes.len());
                for half in [&changes[..mid], &changes[mid..]] {
                    let part: Arc<[Change]> = half.to_vec().into();
                    let len = part.len();
                    match commit_isolating(Arc::clone(&store), part, metrics.clone()).await {
                        Ok(decided) => outcomes.extend(decided),
                        // The other half may have committed: each change gets its own answer.
                        Err(e) => outcomes
                            .extend((0..len).map(|_| Err(LedgerError::Storage(e.message.clone())))),
                    }
                }
                return Ok(outcomes);
            }
            // A fault that took long to show (a pool that could not connect) is an outage: trying
            // again would only keep the callers waiting.
            if attempt >= LEDGER_COMMIT_ATTEMPTS_MAX || tried.elapsed() >= RETRY_WITHIN {
                return Err(err);
            }
            attempt += 1;
            // A short pause lets a transient fault (a lock timeout, a reconnect) pass.
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
    })
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
