//! Several nodes over one Postgres: who this node is, and which activities it owns.
//!
//! Each activity (`redpack:card:<id>`, `lottery:<app>`, ...) has at most one owner at a time,
//! recorded as a lease row with an epoch that grows at every takeover ([`store`]). A node serves
//! an activity itself only while it holds the lease by its own monotonic clock: the lease is
//! counted from the moment the acquiring or renewing statement was *sent*, minus a margin, so the
//! node always gives up before the database's deadline. The keeper renews every held lease in one
//! statement every third of the TTL and steps down from the ones it lost or could not renew.
//! Whatever the clocks do, the ledger checks the epoch inside each commit, so an owner that lost
//! its lease cannot commit again.
//!
//! A single node (SQLite, or Postgres without Redis) owns everything and keeps no lease rows.

pub mod bus;
pub mod forward;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast;
use utoipa::ToSchema;

pub use store::{LeaseRow, NodeRow};

/// Share of the TTL a node gives up before the lease's end by the database's clock: covers the
/// statement's own latency and a clock that runs a little slow.
const LEASE_MARGIN_DIVISOR: u32 = 5;
/// Lost leases buffered for listeners that are slow to hear of them.
const LOST_BUFFER: usize = 1024;

/// Who serves an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node, with the lease's epoch (0 on a single node: nothing to fence).
    Local { epoch: i64 },
    /// Another node, reached at `addr`.
    Remote { node_id: String, addr: String },
}

#[derive(Debug, Clone)]
struct Remote {
    node_id: String,
    addr: String,
    /// Past this instant the holder is read again.
    until: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    /// Past this instant the node no longer serves the activity.
    valid_until: Instant,
}

/// This node and its leases.
pub struct Cluster {
    pub node_id: String,
    pub addr: String,
    ttl: Duration,
    /// `None` on a single node.
    pool: Option<PgPool>,
    held: Mutex<HashMap<String, Held>>,
    /// Activities other nodes hold, as last read, until a short while later.
    remote: Mutex<HashMap<String, Remote>>,
    /// One lease statement at a time in this process, so two requests for a free activity do
    /// not both take it (the second would raise the epoch over the first).
    acquiring: tokio::sync::Mutex<()>,
    lost: broadcast::Sender<String>,
    /// The keep-alive pool requests are relayed to other nodes through.
    pub relay_client: reqwest::Client,
    /// Bounds the requests relayed at once.
    pub relay_slots: tokio::sync::Semaphore,
    metrics: Option<crate::metrics::ClusterMetrics>,
    /// The nodes whose heartbeat was recent at the keeper's last round.
    live: Mutex<std::collections::HashSet<String>>,
    /// Woken when a node stopped beating (it died, or is paused or cut off).
    departed: Arc<tokio::sync::Notify>,
}

/// What `GET /admin/cluster` shows of a node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub node_id: String,
    pub addr: String,
    pub last_seen_ms: i64,
}

/// What `GET /admin/cluster` shows of a lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    pub activity: String,
    pub node_id: String,
    pub epoch: i64,
    pub expires_in_ms: i64,
}

impl Cluster {
    /// A node that owns every activity itself.
    pub fn single(node_id: String, addr: String) -> Self {
        Self::build(node_id, addr, Duration::ZERO, None)
    }

    /// A node of a cluster whose leases live in `pool`'s database.
    pub fn clustered(node_id: String, addr: String, ttl: Duration, pool: PgPool) -> Self {
        Self::build(node_id, addr, ttl, Some(pool))
    }

    fn build(node_id: String, addr: String, ttl: Duration, pool: Option<PgPool>) -> Self {
        Self {
            node_id,
            addr,
            ttl,
            pool,
            held: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            acquiring: tokio::sync::Mutex::new(()),
            lost: broadcast::channel(LOST_BUFFER).0,
            relay_client: forward::client().unwrap_or_default(),
            relay_slots: tokio::sync::Semaphore::new(forward::RELAYS_IN_FLIGHT_MAX),
            metrics: None,
            live: Mutex::new(std::collections::HashSet::new()),
            departed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Woken when another node stopped beating: what it committed last may not have reached
    /// this node's leaderboards, which rebuild from the database.
    pub fn departures(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.departed)
    }

    /// Notes which nodes beat within the last TTL and wakes [`Cluster::departures`] when one
    /// that did before no longer does.
    async fn watch_nodes(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let now: std::collections::HashSet<String> = store::live_nodes(pool, self.ttl_ms())
            .await?
            .into_iter()
            .collect();
        let gone: Vec<String> = match self.live.lock() {
            Ok(mut live) => {
                let gone = live.difference(&now).cloned().collect();
                *live = now;
                gone
            }
            Err(_) => Vec::new(),
        };
        if !gone.is_empty() {
            tracing::info!(nodes = ?gone, "nodes stopped beating");
            self.departed.notify_one();
        }
        Ok(())
    }

    /// Counts leases, takeovers and fenced changes in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::ClusterMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts a change a commit refused because its activity moved on.
    pub fn count_fenced(&self) {
        if let Some(m) = &self.metrics {
            m.fenced.inc();
        }
    }

    fn report_held(&self, held: usize) {
        if let Some(m) = &self.metrics {
            m.leases_held.set(i64::try_from(held).unwrap_or(i64::MAX));
        }
    }

    /// The default node id for a base URL: its host and port.
    pub fn id_of_addr(addr: &str) -> String {
        url::Url::parse(addr)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port_or_known_default() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| addr.to_string())
    }

    /// Whether other nodes may own activities.
    pub fn is_clustered(&self) -> bool {
        self.pool.is_some()
    }

    /// Activities this node stops serving, as it loses them.
    pub fn lost(&self) -> broadcast::Receiver<String> {
        self.lost.subscribe()
    }

    /// The lease's epoch if this node holds `activity` now (0 on a single node).
    pub fn held_epoch(&self, activity: &str) -> Option<i64> {
        if self.pool.is_none() {
            return Some(0);
        }
        let held = self.held.lock().ok()?.get(activity).copied()?;
        (Instant::now() < held.valid_until).then_some(held.epoch)
    }

    /// Who serves `activity`: this node if it holds the lease or can take it, else the holder.
    /// A holder read from the database is remembered for a third of the TTL (at most until its
    /// lease runs out), so relayed requests do not read the lease row each time.
    pub async fn owner(&self, activity: &str) -> Result<Owner, sqlx::Error> {
        if let Some(owner) = self.known_owner(activity) {
            return Ok(owner);
        }
        let Some(pool) = &self.pool else {
            return Ok(Owner::Local { epoch: 0 });
        };
        let _one_at_a_time = self.acquiring.lock().await;
        if let Some(owner) = self.known_owner(activity) {
            return Ok(owner);
        }
        let sent = Instant::now();
        let row = store::acquire(pool, activity, &self.node_id, &self.addr, self.ttl_ms()).await?;
        if row.owner_node == self.node_id {
            if let Some(m) = &self.metrics {
                m.takeovers.inc();
            }
            self.hold(activity, row.epoch, sent);
            Ok(Owner::Local { epoch: row.epoch })
        } else {
            self.step_down(activity);
            let remaining = Duration::from_millis(u64::try_from(row.expires_in_ms).unwrap_or(0));
            let remote = Remote {
                node_id: row.owner_node,
                addr: row.owner_addr,
                until: sent + remaining.min(self.ttl / 3),
            };
            let owner = Owner::Remote {
                node_id: remote.node_id.clone(),
                addr: remote.addr.clone(),
            };
            if let Ok(mut known) = self.remote.lock() {
                known.insert(activity.to_string(), remote);
            }
            Ok(owner)
        }
    }

    /// The epoch under which this node serves `activity`, or [`AppError::Elsewhere`] naming the
    /// node that does (the request is relayed there).
    pub async fn serve(&self, activity: &str) -> Result<i64, crate::error::AppError> {
        match self.owner(activity).await? {
            Owner::Local { epoch } => Ok(epoch),
            Owner::Remote { addr, .. } => Err(crate::error::AppError::Elsewhere(addr)),
        }
    }

    /// Makes whichever node serves `activity` give it up (an admin change to it): its lease ends
    /// and its epoch grows, so the next request, on any node, starts it afresh from the database.
    /// This node's own actor is the caller's to retire. Nothing to do on a single node.
    pub async fn revoke(&self, activity: &str) -> Result<(), sqlx::Error> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        self.step_down(activity);
        if let Ok(mut known) = self.remote.lock() {
            known.remove(activity);
        }
        store::revoke(pool, activity).await
    }

    /// The fence for changes decided under `epoch`: none on a single node.
    pub fn fence(&self, activity: &str, epoch: i64) -> Option<points_actors::Fence> {
        self.is_clustered().then(|| points_actors::Fence {
            activity: activity.into(),
            epoch,
        })
    }

    /// The owner this node knows of without asking the database.
    fn known_owner(&self, activity: &str) -> Option<Owner> {
        if let Some(epoch) = self.held_epoch(activity) {
            return Some(Owner::Local { epoch });
        }
        let known = self.remote.lock().ok()?;
        let remote = known.get(activity).filter(|r| Instant::now() < r.until)?;
        Some(Owner::Remote {
            node_id: remote.node_id.clone(),
            addr: remote.addr.clone(),
        })
    }

    /// Forgets what this node knew of the activities held at `addr` (a relay there failed), so
    /// the next request reads their lease rows again and may take the ones that ran out.
    pub fn forget_holder(&self, addr: &str) {
        if let Ok(mut known) = self.remote.lock() {
            known.retain(|_, r| r.addr != addr);
        }
    }

    /// Stops serving `activity` (its lease was lost, or a commit found a newer epoch).
    pub fn step_down(&self, activity: &str) {
        let removed = self.held.lock().ok().and_then(|mut held| {
            let removed = held.remove(activity);
            self.report_held(held.len());
            removed
        });
        if removed.is_some() {
            let _ = self.lost.send(activity.to_string());
        }
    }

    /// Stops serving `activity` if this node still holds it at `epoch`.
    pub fn step_down_from(&self, activity: &str, epoch: i64) {
        let current = self
            .held
            .lock()
            .ok()
            .and_then(|held| held.get(activity).map(|h| h.epoch));
        if current == Some(epoch) {
            self.step_down(activity);
        }
    }

    fn hold(&self, activity: &str, epoch: i64, sent: Instant) {
        let valid_until = sent + self.ttl - self.ttl / LEASE_MARGIN_DIVISOR;
        if let Ok(mut known) = self.remote.lock() {
            known.remove(activity);
        }
        if let Ok(mut held) = self.held.lock() {
            held.insert(activity.to_string(), Held { epoch, valid_until });
            self.report_held(held.len());
        }
    }

    /// Extends a lease still held at `epoch` (one given up meanwhile stays given up).
    fn extend(&self, activity: &str, epoch: i64, sent: Instant) {
        let valid_until = sent + self.ttl - self.ttl / LEASE_MARGIN_DIVISOR;
        if let Ok(mut held) = self.held.lock() {
            if let Some(h) = held.get_mut(activity).filter(|h| h.epoch == epoch) {
                h.valid_until = valid_until;
            }
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// One round of the keeper: a heartbeat, then every held lease renewed in one statement.
    /// Leases the statement did not renew, and leases whose local time ran out because renewals
    /// failed, are given up.
    pub async fn renew(&self) -> Result<(), sqlx::Error> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let sent = Instant::now();
        let beat = store::heartbeat(pool, &self.node_id, &self.addr).await;
        let held: Vec<(String, i64)> = self
            .held
            .lock()
            .map(|held| held.iter().map(|(a, h)| (a.clone(), h.epoch)).collect())
            .unwrap_or_default();
        let renewed = if held.is_empty() {
            Ok(Vec::new())
        } else {
            store::renew(pool, &self.node_id, &held, self.ttl_ms()).await
        };
        match renewed {
            Ok(renewed) => {
                let renewed: std::collections::HashSet<String> = renewed.into_iter().collect();
                for (activity, epoch) in held {
                    if renewed.contains(&activity) {
                        self.extend(&activity, epoch, sent);
                    } else {
                        self.step_down_from(&activity, epoch);
                    }
                }
            }
            Err(e) => {
                self.drop_expired();
                return Err(e);
            }
        }
        beat?;
        self.watch_nodes(pool).await
    }

    /// Gives up the leases whose local time has run out.
    fn drop_expired(&self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .held
            .lock()
            .map(|held| {
                held.iter()
                    .filter(|(_, h)| h.valid_until <= now)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default();
        for activity in expired {
            self.step_down(&activity);
        }
    }

    /// Renews every third of the TTL until the process stops.
    pub fn spawn_keeper(self: &Arc<Self>) {
        if self.pool.is_none() {
            return;
        }
        let cluster = Arc::clone(self);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(cluster.ttl / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = cluster.renew().await {
                    tracing::warn!(error = %e, "renewing activity leases failed");
                }
            }
        });
    }

    /// Ends this node's leases and removes its row (a graceful stop).
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let held: Vec<String> = self
            .held
            .lock()
            .map(|mut held| held.drain().map(|(a, _)| a).collect())
            .unwrap_or_default();
        for activity in held {
            let _ = self.lost.send(activity);
        }
        store::release(pool, &self.node_id).await?;
        store::forget_node(pool, &self.node_id).await
    }

    /// Every node and lease, for `GET /admin/cluster`. A single node shows itself and no lease.
    pub async fn view(&self) -> Result<(Vec<NodeView>, Vec<LeaseView>), sqlx::Error> {
        let Some(pool) = &self.pool else {
            let now = crate::clock::now_ms();
            let me = NodeView {
                node_id: self.node_id.clone(),
                addr: self.addr.clone(),
                last_seen_ms: now,
            };
            return Ok((vec![me], Vec::new()));
        };
        let nodes = store::nodes(pool)
            .await?
            .into_iter()
            .map(|n| NodeView {
                node_id: n.node_id,
                addr: n.addr,
                last_seen_ms: n.last_seen_ms,
            })
            .collect();
        let leases = store::leases(pool)
            .await?
            .into_iter()
            .map(|l| LeaseView {
                activity: l.activity,
                node_id: l.owner_node,
                epoch: l.epoch,
                expires_in_ms: l.expires_in_ms.max(0),
            })
            .collect();
        Ok((nodes, leases))
    }
}
