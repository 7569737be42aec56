//! Storage, one struct per concern.
//!
//! Both backends run the same SQL through sqlx's `Any` driver (see [`crate::db`]), so each
//! concern has one implementation instead of a trait with a Postgres and a SQLite twin: the
//! dialect differences are two (row locks and the identity column), and the same integration
//! tests run against both databases.

pub mod accounts;
pub mod ledger;
pub mod rules;

pub use accounts::{AccountsDb, App, AppSettings, SessionUser, User};
pub use ledger::{EntryRow, HistoryFilter, LedgerDb};
pub use rules::{EarningRule, RulesDb};

use crate::db::Db;

/// Every store, sharing one database.
#[derive(Clone, Debug)]
pub struct Stores {
    pub db: Db,
    pub accounts: AccountsDb,
    pub ledger: LedgerDb,
    pub rules: RulesDb,
}

impl Stores {
    pub fn new(db: Db) -> Self {
        Self {
            accounts: AccountsDb { db: db.clone() },
            ledger: LedgerDb { db: db.clone() },
            rules: RulesDb { db: db.clone() },
            db,
        }
    }
}
