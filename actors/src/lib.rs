//! # points-actors
//!
//! The actors of points-engine. Each actor owns a piece of hot state and serializes the
//! contention on it; durable writes are handed to storage and the caller is answered only after
//! the commit that holds its change.
//!
//! ## Layout
//! - [`ledger`]: the batching ledger actor (group commit of point changes), its message types and
//!   the pure batch planner that decides each change (ok, insufficient, replay, conflict).
//! - [`activity`]: what activity actors share: refusals, bounds, and the registry that starts
//!   one actor per activity instance on first use.
//! - [`redpack`]: red-packet card and pool actors, and the pool split.
//! - [`leaderboard`]: the live points, steps and invites boards of every app.
//! - [`lottery`]: the lottery board actor (one per app) and the rate-weighted prize pick.
//! - [`blindbox`]: the blind-box actor (one per app): task-unlocked boxes paying an outside
//!   reward while its stock lasts, then points.
//! - [`morning`]: the morning check-in round actor (one per app and period) and the settlement
//!   planners (exact split of the stakes, random payouts inflated on a 7-day streak).
//! - [`store`]: the storage seam the actors write through, implemented by the server crate for
//!   SQLite and Postgres.

pub mod activity;
pub mod blindbox;
pub mod leaderboard;
pub mod ledger;
pub mod lottery;
pub mod morning;
pub mod redpack;
pub mod store;

pub use ledger::{
    plan_batch, plan_fenced_batch, BatchPlan, Change, Committed, CommittedChange, Fence,
    LedgerActor, LedgerError, LedgerLimits, LedgerMetrics, Leg, Limit, Listen, Lot, OrderSpec,
    Outcome, StoredEntry, Submit, EXPIRE_KIND,
};
pub use store::{LedgerStore, StoreError};
