//! Shared application state handed to every handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{web, HttpRequest};
use points_actors::LedgerActor;

use crate::clock::BizClock;
use crate::config::Settings;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::store::{AccountsDb, SessionUser, Stores};

/// Everything a handler may need.
pub struct AppState {
    pub settings: Settings,
    pub stores: Stores,
    pub ledger: Addr<LedgerActor>,
    pub clock: BizClock,
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub sessions: SessionCache,
    pub redis: Option<redis::aio::ConnectionManager>,
}

impl AppState {
    /// The state registered on the app; its absence is a wiring bug, reported as unavailable.
    pub fn of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
        req.app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| AppError::Unavailable("application state missing".into()))
    }
}

/// How long a looked-up session is trusted without asking the database again.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most sessions kept in memory; past it the cache starts over.
const SESSION_CACHE_ENTRIES_MAX: usize = 100_000;

/// A short-lived cache of session lookups, so hot routes do not read the sessions table on
/// every request. Entries carry the session's own expiry, which callers still check.
#[derive(Default)]
pub struct SessionCache {
    // A std Mutex: the critical section is a hash map lookup and never awaits.
    entries: Mutex<HashMap<String, (Instant, SessionUser)>>,
}

impl SessionCache {
    pub async fn lookup(
        &self,
        accounts: &AccountsDb,
        token_hash: &str,
    ) -> Result<Option<SessionUser>, AppError> {
        if let Ok(entries) = self.entries.lock() {
            if let Some((at, user)) = entries.get(token_hash) {
                if at.elapsed() < SESSION_CACHE_TTL {
                    return Ok(Some(user.clone()));
                }
            }
        }
        let found = accounts.session(token_hash).await?;
        if let (Some(user), Ok(mut entries)) = (&found, self.entries.lock()) {
            if entries.len() >= SESSION_CACHE_ENTRIES_MAX {
                entries.clear();
            }
            entries.insert(token_hash.to_string(), (Instant::now(), user.clone()));
        }
        Ok(found)
    }
}
