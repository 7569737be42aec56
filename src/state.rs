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
use crate::store::{App, SessionUser, Stores, User};

/// Everything a handler may need.
pub struct AppState {
    pub settings: Settings,
    pub stores: Stores,
    pub ledger: Addr<LedgerActor>,
    pub clock: BizClock,
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    pub caches: Caches,
    pub redis: Option<Redis>,
    /// Running activity actors.
    pub activities: Arc<crate::runtime::Activities>,
    /// Wakes the fulfilment outbox worker.
    pub fulfilment_wake: Arc<tokio::sync::Notify>,
    /// Websocket topic fan-out.
    pub hub: Arc<crate::runtime::hub::Hub>,
    /// Live leaderboards of every app (points, daily steps, daily invites).
    pub leaderboard: Addr<points_actors::leaderboard::LeaderboardActor>,
    /// This node and the activities it owns.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Fan-out across nodes through Redis (several nodes only).
    pub bus: Option<Arc<crate::cluster::bus::Bus>>,
    /// Rate limits, shared through Redis with several nodes.
    pub limiter: crate::limits::Limiter,
    /// This node's websockets, counted per user and per address.
    pub sockets: Arc<crate::runtime::sockets::Connections>,
}

impl AppState {
    /// The state registered on the app; its absence is a wiring bug, reported as unavailable.
    pub fn of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
        req.app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| AppError::Unavailable("application state missing".into()))
    }
}

/// A small map of recent lookups with a time to live and a size bound, so hot routes do not
/// read rarely-changing rows (sessions, apps, users) on every request.
pub struct TtlCache<V> {
    ttl: Duration,
    entries_max: usize,
    // A std Mutex: the critical section is a hash map lookup and never awaits.
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, entries_max: usize) -> Self {
        Self {
            ttl,
            entries_max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value of `key`, or what `load` finds (remembered when found).
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Option<V>, AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, sqlx::Error>>,
    {
        if let Ok(entries) = self.entries.lock() {
            if let Some((at, value)) = entries.get(key) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(value.clone()));
                }
            }
        }
        let found = load().await?;
        if let (Some(value), Ok(mut entries)) = (&found, self.entries.lock()) {
            if entries.len() >= self.entries_max {
                entries.clear();
            }
            entries.insert(key.to_string(), (Instant::now(), value.clone()));
        }
        Ok(found)
    }

    /// Forgets `key` after it changed.
    pub fn invalidate(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

/// Sessions are trusted this long without reading them again; entries carry the session's own
/// expiry, which callers still check.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(30);
/// Apps change rarely; a change made through this process applies at once (the admin route
/// invalidates it), one made through another process within this time.
pub const APP_CACHE_TTL: Duration = Duration::from_secs(10);
/// Users looked up by platform id; only their id and identity fields are read from the cache.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most entries one cache holds; past it the cache starts over.
pub const CACHE_ENTRIES_MAX: usize = 100_000;

/// The caches of [`AppState`].
pub struct Caches {
    pub sessions: TtlCache<SessionUser>,
    pub apps: TtlCache<App>,
    pub users: TtlCache<User>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            sessions: TtlCache::new(SESSION_CACHE_TTL, CACHE_ENTRIES_MAX),
            apps: TtlCache::new(APP_CACHE_TTL, CACHE_ENTRIES_MAX),
            users: TtlCache::new(USER_CACHE_TTL, CACHE_ENTRIES_MAX),
        }
    }
}

/// How long a Redis connect or command may take before it counts as down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The optional Redis connection. It is made on first use and made again after a failure, so a
/// Redis that was down at start-up is picked up once it is back; it never blocks start-up for
/// longer than [`REDIS_TIMEOUT`].
pub struct Redis {
    client: redis::Client,
    // A tokio Mutex: connecting awaits, and only one caller should connect at a time.
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl Redis {
    pub fn new(client: redis::Client) -> Self {
        Self {
            client,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// A connection, connecting first if there is none.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        // One attempt (the library's default backoff keeps retrying for minutes) with short
        // timeouts: the next use tries again.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn =
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Round trip to Redis.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
