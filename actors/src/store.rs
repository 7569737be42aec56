//! The storage seam of the actors: what an actor needs from the database, and nothing more.
//!
//! The server crate implements these traits for SQLite and Postgres. Keeping the trait here lets
//! the actors be tested and reasoned about without knowing which database is behind them.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::ledger::{Change, LedgerError, Outcome};

/// A storage failure that is not about any single change (lost connection, constraint the planner
/// did not foresee). The whole batch failed and nothing of it was committed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

/// Commits batches of ledger changes.
pub trait LedgerStore: Send + Sync + 'static {
    /// Decides and commits `batch` in one transaction and returns one result per change, in
    /// order. Either every applied change of the batch is committed, or an `Err` says none is.
    /// The batch is shared, so a retry costs no copy of it.
    fn commit_batch(
        &self,
        batch: Arc<[Change]>,
    ) -> BoxFuture<'static, Result<Vec<Result<Outcome, LedgerError>>, StoreError>>;
}
