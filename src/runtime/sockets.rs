//! What this node's websockets hold: how many per user and per client address (each bounded),
//! and when each board was last republished for a new subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limits::Bounds;

/// How often one board may be republished because someone subscribed to it: subscribing in a
/// loop must not make the server resend boards to every other subscriber.
pub const TOUCH_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Boards remembered as touched; beyond it the memory starts afresh.
const TOUCHED_MAX: usize = 10_000;

/// Why a websocket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    User,
    Ip,
}

#[derive(Default)]
struct Counts {
    by_user: HashMap<String, usize>,
    by_ip: HashMap<String, usize>,
}

/// The live websockets of this node, counted.
#[derive(Default)]
pub struct Connections {
    counts: Mutex<Counts>,
    touched: Mutex<HashMap<String, Instant>>,
    /// Mirrors how many are open, for `/metrics`.
    gauge: Option<prometheus::IntGauge>,
}

/// One counted websocket; dropping it gives its places back.
pub struct Held {
    connections: Arc<Connections>,
    user: String,
    ip: Option<String>,
}

impl Connections {
    /// Connections that report how many are open on `gauge`.
    pub fn with_gauge(gauge: prometheus::IntGauge) -> Self {
        Connections {
            gauge: Some(gauge),
            ..Connections::default()
        }
    }

    /// Counts a new websocket of `user` from `ip`, unless either already holds its bound.
    pub fn open(
        self: &Arc<Self>,
        bounds: &Bounds,
        user: String,
        ip: Option<String>,
    ) -> Result<Held, Refused> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.by_user.get(&user).copied().unwrap_or(0) >= bounds.ws_per_user {
            return Err(Refused::User);
        }
        if let Some(ip) = &ip {
            if counts.by_ip.get(ip).copied().unwrap_or(0) >= bounds.ws_per_ip {
                return Err(Refused::Ip);
            }
            *counts.by_ip.entry(ip.clone()).or_default() += 1;
        }
        *counts.by_user.entry(user.clone()).or_default() += 1;
        if let Some(g) = &self.gauge {
            g.inc();
        }
        Ok(Held {
            connections: Arc::clone(self),
            user,
            ip,
        })
    }

    /// Whether board `topic` may be republished for a new subscriber now (and notes it).
    pub fn may_touch(&self, topic: &str) -> bool {
        let now = Instant::now();
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        if touched
            .get(topic)
            .is_some_and(|at| now.duration_since(*at) < TOUCH_INTERVAL_MIN)
        {
            return false;
        }
        if touched.len() >= TOUCHED_MAX {
            touched.clear();
        }
        touched.insert(topic.to_string(), now);
        true
    }

    /// Websockets `user` holds on this node.
    pub fn of_user(&self, user: &str) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.by_user.get(user).copied().unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self
            .connections
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        release(&mut counts.by_user, &self.user);
        if let Some(ip) = &self.ip {
            release(&mut counts.by_ip, ip);
        }
        if let Some(g) = &self.connections.gauge {
            g.dec();
        }
    }
}

fn release(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_and_an_addresses_sockets_are_bounded_and_given_back() {
        let bounds = Bounds {
            ws_per_user: 2,
            ws_per_ip: 3,
            ..Bounds::default()
        };
        let c = Arc::new(Connections::default());
        let ip = || Some("10.0.0.1".to_string());
        let a1 = c.open(&bounds, "a".into(), ip()).expect("first");
        let _a2 = c.open(&bounds, "a".into(), ip()).expect("second");
        assert_eq!(c.open(&bounds, "a".into(), ip()).err(), Some(Refused::User));
        let _b1 = c.open(&bounds, "b".into(), ip()).expect("b");
        assert_eq!(c.open(&bounds, "c".into(), ip()).err(), Some(Refused::Ip));
        drop(a1);
        assert_eq!(c.of_user("a"), 1);
        c.open(&bounds, "c".into(), ip())
            .expect("a place was given back");
    }

    #[test]
    fn a_board_is_touched_at_most_once_a_second() {
        let c = Connections::default();
        assert!(c.may_touch("leaderboard:points"));
        assert!(!c.may_touch("leaderboard:points"));
        assert!(c.may_touch("leaderboard:steps"));
    }
}
