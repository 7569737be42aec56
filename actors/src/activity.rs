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
use std::time::Duration;

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
