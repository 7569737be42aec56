//! The runtime: the handles every slice shares while the server runs — the registries of running
//! actors, the websocket topic hub, the in-flight key sets and locks — below the slices, which
//! import it and never the other way round.
//!
//! - [`Activities`]: the registries of running activity actors, the red-packet handles and the
//!   in-process key sets and locks, plus [`Slots`] for handles a slice defines itself.
//! - [`hub`]: websocket topics, coalescing and the shared encoded frames.
//! - [`InFlightKeys`] and [`KeyLocks`]: keys being committed in this process.

pub mod hub;
pub mod redpack;
pub mod sockets;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use points_actors::activity::Registry;
use points_actors::blindbox::BoxActor;
use points_actors::lottery::LotteryActor;
use points_actors::redpack::{CardActor, PoolActor};

/// The running activity actors and the handles the slices share, one per server.
#[derive(Default)]
pub struct Activities {
    pub cards: Registry<i64, CardActor>,
    pub pools: Registry<i64, PoolActor>,
    pub radio: redpack::Radio,
    pub owners: redpack::Owners,
    /// Lottery boards, one per app id.
    pub lotteries: Registry<String, LotteryActor>,
    /// Blind boxes, one actor per app id.
    pub boxes: Registry<String, BoxActor>,
    /// Walk exchanges being committed in this process.
    pub walk: InFlightKeys,
    /// Sign-ins and sign-in pop rewards being committed in this process.
    pub signin: InFlightKeys,
    /// 000 task finishes in progress, one lock per (app, task, user).
    pub task_finishes: KeyLocks,
    /// Handles whose type a slice defines (the morning rounds and their rules).
    pub slots: Slots,
    /// The lease epoch each running activity actor of this node was started under, by activity
    /// name (`lottery:<app>`, ...), so a request under a newer epoch replaces a stale actor.
    pub epochs: Epochs,
}

/// Lease epochs of running actors, by activity name.
#[derive(Default)]
pub struct Epochs {
    // std Mutex: lookups and inserts only, never held across an await.
    epochs: Mutex<HashMap<String, i64>>,
}

impl Epochs {
    /// Records that `activity`'s actor runs under `epoch`.
    pub fn record(&self, activity: &str, epoch: i64) {
        if let Ok(mut epochs) = self.epochs.lock() {
            epochs.insert(activity.to_string(), epoch);
        }
    }

    /// Whether `activity`'s running actor was started under another epoch than `epoch`.
    pub fn is_stale(&self, activity: &str, epoch: i64) -> bool {
        self.epochs
            .lock()
            .ok()
            .and_then(|epochs| epochs.get(activity).copied())
            .is_some_and(|started| started != epoch)
    }
}

/// One value per type, made on first use: a slice keeps its own handle type here without the
/// runtime knowing it.
#[derive(Default)]
pub struct Slots {
    // std RwLock: lookups and one insert per type, never held across an await.
    slots: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Slots {
    /// The value of type `T`, made with `T::default()` on first use.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let id = TypeId::of::<T>();
        // A poisoned lock only means a panic elsewhere; the map itself is always whole.
        let found = self
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        let value = match found {
            Some(value) => value,
            None => Arc::clone(
                self.slots
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(id)
                    .or_insert_with(|| Arc::new(T::default())),
            ),
        };
        // The map holds a `T` under `TypeId::of::<T>()`, so the downcast cannot fail.
        value
            .downcast::<T>()
            .unwrap_or_else(|_| Arc::new(T::default()))
    }
}

/// Ledger keys being committed in this process: a second request for a key already on its way
/// to the ledger is refused at once instead of racing the first (where it would be answered as a
/// replay). The ledger's key stays the guard across processes.
#[derive(Default)]
pub struct InFlightKeys {
    // std Mutex: insert and remove only, never held across an await.
    keys: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Holds a key in [`InFlightKeys`] until dropped.
pub struct InFlight<'a> {
    owner: &'a InFlightKeys,
    key: String,
}

impl InFlightKeys {
    /// Takes `key`, or `None` while another request holds it.
    pub fn begin(&self, key: &str) -> Option<InFlight<'_>> {
        let mut keys = self.keys.lock().ok()?;
        keys.insert(key.to_string()).then(|| InFlight {
            owner: self,
            key: key.to_string(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.owner.keys.lock() {
            keys.remove(&self.key);
        }
    }
}

/// One async lock per key, for actions that must run one at a time per key in this process
/// (a 000 task finish holds `(app, task, user)` while it picks its number `n` and commits, so
/// concurrent finishes of one user take consecutive numbers). The ledger's keys and counters
/// remain the guard across processes.
#[derive(Default)]
pub struct KeyLocks {
    // A std Mutex: the critical section is a map lookup and never awaits.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held [`KeyLocks`] lock; dropping it frees the lock and forgets it when unused.
pub struct KeyGuard<'a> {
    owner: &'a KeyLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: String) -> KeyGuard<'_> {
        let lock = match self.locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(key.clone()).or_default()),
            // A poisoned map only means a panic elsewhere; the ledger still guards.
            Err(_) => Arc::default(),
        };
        KeyGuard {
            owner: self,
            key,
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut locks) = self.owner.locks.lock() {
            // Only the map holds it: nobody waits, so the entry can go and the map stays small.
            if locks
                .get(&self.key)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                locks.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicU32);

    #[test]
    fn a_slot_is_made_once_per_type() {
        let slots = Slots::default();
        let a = slots.get::<Counter>();
        a.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let b = slots.get::<Counter>();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        let other = slots.get::<InFlightKeys>();
        assert!(other.begin("k").is_some());
    }

    #[test]
    fn in_flight_keys_are_held_until_dropped() {
        let keys = InFlightKeys::default();
        let held = keys.begin("k");
        assert!(held.is_some());
        assert!(keys.begin("k").is_none());
        drop(held);
        assert!(keys.begin("k").is_some());
    }
}
