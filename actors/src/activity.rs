//! What every activity actor shares: the errors it answers with, its bounds, and the registry
//! that starts one actor per activity instance on first use.
//!
//! An activity actor decides in memory (takes the stock, assigns the packet), hands the durable
//! write to the ledger actor as one [`crate::Change`], and keeps serving its mailbox while that
//! commit runs; it answers its caller when the commit is done, and undoes its in-memory decision
//! if the commit refused the change. Its state is rebuilt from the database when it starts, so
//! a restart (or an idle stop) continues exactly where the last commit left off.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::ledger::LedgerError;

/// Most grabs or draws of one actor waiting for their commit; past it the actor answers busy.
pub const ACTIVITY_PENDING_MAX: usize = 4_096;
/// Most messages queued in one activity actor's mailbox; senders wait for room.
pub const ACTIVITY_MAILBOX_MAX: usize = 8_192;
/// How long an actor with nothing to do stays in memory.
pub const ACTIVITY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often an actor checks whether it has been idle long enough to stop.
pub const ACTIVITY_IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Why an activity refused a user's action. Each reason has a sentence for the Chinese
/// front-ends and one for the English dialects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The activity's window has not opened yet.
    NotStarted,
    /// The activity's window has closed.
    Ended,
    /// The activity is off shelf or deleted.
    Closed,
    /// The user already did this (today, in this round, in this pool).
    AlreadyDone,
    /// Nothing is left to win.
    SoldOut,
    /// The user's allowance is used up (draws per day).
    NoChancesLeft,
    /// The user did not sign up for this round.
    NotSignedUp,
    /// The user has not unlocked this yet (finished tasks).
    Locked { needed: i64 },
    /// A condition specific to the activity, with both sentences.
    Other { en: String, zh: String },
}

impl Refusal {
    /// The sentence shown to Chinese front-ends.
    pub fn zh(&self) -> String {
        match self {
            Refusal::NotStarted => "活动尚未开始".into(),
            Refusal::Ended => "活动已结束".into(),
            Refusal::Closed => "活动已下架".into(),
            Refusal::AlreadyDone => "您已参与过了".into(),
            Refusal::SoldOut => "已被抢光了".into(),
            Refusal::NoChancesLeft => "今日次数已用完".into(),
            Refusal::NotSignedUp => "您未报名本期活动".into(),
            Refusal::Locked { needed } => format!("还需完成{needed}个任务才能领取"),
            Refusal::Other { zh, .. } => zh.clone(),
        }
    }

    /// The sentence for the English dialects and logs.
    pub fn en(&self) -> String {
        match self {
            Refusal::NotStarted => "the activity has not started yet".into(),
            Refusal::Ended => "the activity has ended".into(),
            Refusal::Closed => "the activity is closed".into(),
            Refusal::AlreadyDone => "already done".into(),
            Refusal::SoldOut => "sold out".into(),
            Refusal::NoChancesLeft => "no chances left today".into(),
            Refusal::NotSignedUp => "not signed up for this round".into(),
            Refusal::Locked { needed } => format!("{needed} more finished tasks needed"),
            Refusal::Other { en, .. } => en.clone(),
        }
    }
}

/// What an activity actor answers instead of a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// The action is not allowed now; nothing changed.
    #[error("{}", .0.en())]
    Refused(Refusal),
    /// The ledger refused or failed the change; nothing changed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Too many actions are waiting; try again shortly.
    #[error("activity busy, try again")]
    Busy,
}

impl From<Refusal> for ActivityError {
    fn from(r: Refusal) -> Self {
        ActivityError::Refused(r)
    }
}

impl From<MailboxError> for ActivityError {
    fn from(_: MailboxError) -> Self {
        ActivityError::Ledger(LedgerError::Storage("ledger stopped".into()))
    }
}

/// Starts one actor per key on first use and finds it afterwards.
///
/// A key's actor is built by an async loader (which reads the activity's state from the
/// database) and started on the current arbiter. An actor that stopped (idle, or after an admin
/// change asked it to) is started again, from the database, on its next use. Loads of one key
/// never run twice at once: a second caller waits for the first load.
pub struct Registry<K, A: Actor<Context = Context<A>>> {
    // std Mutex: the lookup never awaits. Loads are serialized by `loading`.
    actors: Mutex<HashMap<K, Addr<A>>>,
    loading: tokio::sync::Mutex<()>,
}

impl<K: Eq + Hash + Clone, A: Actor<Context = Context<A>>> Default for Registry<K, A> {
    fn default() -> Self {
        Self {
            actors: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }
}

impl<K: Eq + Hash + Clone, A: Actor<Context = Context<A>>> Registry<K, A> {
    fn running(&self, key: &K) -> Option<Addr<A>> {
        let actors = self.actors.lock().ok()?;
        actors.get(key).filter(|a| a.connected()).cloned()
    }

    /// The running actor of `key`, or one started from what `load` builds.
    pub async fn get_or_start<F, Fut, E>(&self, key: &K, load: F) -> Result<Addr<A>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<A, E>>,
    {
        if let Some(addr) = self.running(key) {
            return Ok(addr);
        }
        let _loading = self.loading.lock().await;
        if let Some(addr) = self.running(key) {
            return Ok(addr);
        }
        let addr = load().await?.start();
        if let Ok(mut actors) = self.actors.lock() {
            actors.retain(|_, a| a.connected());
            actors.insert(key.clone(), addr.clone());
        }
        Ok(addr)
    }

    /// The running actor of `key`, if any.
    pub fn get(&self, key: &K) -> Option<Addr<A>> {
        self.running(key)
    }

    /// Forgets `key`'s actor so the next use starts a fresh one from the database (after an
    /// admin change). Returns the old actor so the caller can ask it to stop.
    pub fn forget(&self, key: &K) -> Option<Addr<A>> {
        self.actors.lock().ok()?.remove(key)
    }

    /// Forgets every actor whose key satisfies `which` (see [`Registry::forget`]).
    pub fn forget_where(&self, which: impl Fn(&K) -> bool) -> Vec<Addr<A>> {
        let Ok(mut actors) = self.actors.lock() else {
            return Vec::new();
        };
        let keys: Vec<K> = actors.keys().filter(|k| which(k)).cloned().collect();
        keys.iter().filter_map(|k| actors.remove(k)).collect()
    }

    /// Every running actor.
    pub fn all(&self) -> Vec<Addr<A>> {
        self.actors
            .lock()
            .map(|a| a.values().filter(|a| a.connected()).cloned().collect())
            .unwrap_or_default()
    }
}

/// Shared handle type of a registry.
pub type SharedRegistry<K, A> = Arc<Registry<K, A>>;

/// Asks an activity actor to stop once its pending commits are answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// The bookkeeping every activity actor shares: commits in flight, last use, and whether it was
/// asked to retire. Held by each actor as its `life` field (see [`ActivityActor`]).
#[derive(Debug)]
pub struct Lifecycle {
    /// Actions handed to the ledger and not yet answered.
    pub pending: usize,
    /// The last message that asked the actor for something.
    pub last_used: Instant,
    /// Set by [`Retire`]: new actions are refused while the pending ones finish.
    pub retiring: bool,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            pending: 0,
            last_used: Instant::now(),
            retiring: false,
        }
    }

    /// Records a use, postponing the idle stop.
    pub fn touch(&mut self) {
        self.last_used = Instant::now();
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// An activity actor: one per activity instance, stopped when idle or retired.
pub trait ActivityActor: Actor<Context = Context<Self>> {
    fn life(&self) -> &Lifecycle;
    fn life_mut(&mut self) -> &mut Lifecycle;
    /// What the actor does when asked to retire, before it waits for its pending commits.
    fn on_retire(&mut self) {}
}

/// Bounds the mailbox and stops the actor once it has been idle for [`ACTIVITY_IDLE_TIMEOUT`]
/// with nothing pending. Every activity actor calls it from `Actor::started`.
pub fn start_lifecycle<A: ActivityActor>(ctx: &mut Context<A>) {
    ctx.set_mailbox_capacity(ACTIVITY_MAILBOX_MAX);
    ctx.run_interval(ACTIVITY_IDLE_CHECK_INTERVAL, |actor, ctx| {
        let life = actor.life();
        if life.pending == 0 && life.last_used.elapsed() >= ACTIVITY_IDLE_TIMEOUT {
            ctx.stop();
        }
    });
}

/// How often a retiring actor looks whether its pending commits are all answered.
const RETIRE_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The [`Retire`] handler of every activity actor: marks it retiring, stops it once its pending
/// commits are answered, and completes then, so the caller can wait for the actor to drain
/// before the next one reads the database.
pub fn retire<A: ActivityActor>(actor: &mut A, ctx: &mut Context<A>) -> ResponseActFuture<A, ()> {
    actor.on_retire();
    actor.life_mut().retiring = true;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    if actor.life().pending == 0 {
        ctx.stop();
        let _ = done_tx.send(());
    } else {
        let mut done_tx = Some(done_tx);
        ctx.run_interval(RETIRE_POLL_INTERVAL, move |actor, ctx| {
            if actor.life().pending == 0 {
                ctx.stop();
                if let Some(tx) = done_tx.take() {
                    let _ = tx.send(());
                }
            }
        });
    }
    Box::pin(
        async move {
            let _ = done_rx.await;
        }
        .into_actor(actor),
    )
}

/// Implements [`ActivityActor`] over the actor's `life` field and its [`Retire`] handler through
/// [`retire`]. Write `activity_actor!(Type)`, or `activity_actor!(Type, on_retire = method)` for
/// an actor that does something of its own first.
#[macro_export]
macro_rules! activity_actor {
    ($actor:ty $(, on_retire = $hook:ident)?) => {
        impl $crate::activity::ActivityActor for $actor {
            fn life(&self) -> &$crate::activity::Lifecycle {
                &self.life
            }
            fn life_mut(&mut self) -> &mut $crate::activity::Lifecycle {
                &mut self.life
            }
            $(fn on_retire(&mut self) {
                self.$hook();
            })?
        }

        impl ::actix::Handler<$crate::activity::Retire> for $actor {
            type Result = ::actix::ResponseActFuture<Self, ()>;

            /// Refuses new actions and completes once the pending ones are answered.
            fn handle(
                &mut self,
                _msg: $crate::activity::Retire,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                $crate::activity::retire(self, ctx)
            }
        }
    };
}
