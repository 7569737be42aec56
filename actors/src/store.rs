//! The storage seam of the actors: what an actor needs from the database, and nothing more.
//!
//! The server crate implements these traits for SQLite and Postgres. Keeping the trait here lets
//! the actors be tested and reasoned about without knowing which database is behind them.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::ledger::{Change, LedgerError, Outcome};

/// A failed batch commit: nothing of the batch was committed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage error: {message}")]
pub struct StoreError {
    pub message: String,
    /// The database refused what the batch holds (a value it cannot store, a constraint the
    /// planner did not foresee) rather than failing to run it: some change of the batch is at
    /// fault, and the batch without it would commit.
    pub rejected: bool,
}

impl StoreError {
    /// The database could not run the batch (lost connection, timeout, shutdown).
    pub fn outage(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            rejected: false,
        }
    }

    /// The database refused what the batch holds.
    pub fn rejected(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            rejected: true,
        }
    }
}

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
