//! Topic fan-out for live updates, shared by every websocket session.
//!
//! Publishers never wait and never encode per subscriber: they drop an event or a new state into
//! the topic's pending slot, and a ticker every [`WS_COALESCE_INTERVAL`] turns each dirty topic
//! into one frame `{"topic","seq","data"}`, encoded once and sent as shared [`Bytes`] through a
//! broadcast channel. So a topic sends at most one frame per interval however hot it is, and
//! `seq` grows by one per frame: a client that sees a gap knows it missed a frame and refetches.
//! A subscriber that falls more than [`WS_SUBSCRIBER_BUFFER_FRAMES`] frames behind is told so by
//! the channel and disconnected by its session; the topic never waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Least time between two frames of one topic (at most 5 frames per second per topic).
pub const WS_COALESCE_INTERVAL: Duration = Duration::from_millis(200);
/// Frames a subscriber may lag behind before it is disconnected.
pub const WS_SUBSCRIBER_BUFFER_FRAMES: usize = 64;
/// Most events one frame carries; older ones of the interval are dropped and counted.
pub const WS_FRAME_EVENTS_MAX: usize = 500;

enum Pending {
    Nothing,
    /// Events of the interval, in publish order, and how many were dropped.
    Events(Vec<Value>, u64),
    /// The newest state; older states of the interval are superseded.
    State(Value),
}

struct Topic {
    tx: broadcast::Sender<Bytes>,
    pending: Mutex<Pending>,
    seq: AtomicU64,
}

/// The fan-out hub. See the module documentation.
pub struct Hub {
    // std Mutex: every critical section is a map lookup or a swap, never an await.
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
        }
    }
}

impl Hub {
    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.lock().ok()?;
        Some(Arc::clone(topics.entry(name.to_string()).or_insert_with(
            || {
                Arc::new(Topic {
                    tx: broadcast::channel(WS_SUBSCRIBER_BUFFER_FRAMES).0,
                    pending: Mutex::new(Pending::Nothing),
                    seq: AtomicU64::new(0),
                })
            },
        )))
    }

    /// Queues one event (a grab, a winner) for the topic's next frame, which carries
    /// `{"events":[...]}`.
    pub fn event(&self, topic: &str, data: Value) {
        let Some(t) = self.topic(topic) else { return };
        if let Ok(mut pending) = t.pending.lock() {
            match &mut *pending {
                Pending::Events(events, dropped) => {
                    if events.len() >= WS_FRAME_EVENTS_MAX {
                        events.remove(0);
                        *dropped += 1;
                    }
                    events.push(data);
                }
                other => *other = Pending::Events(vec![data], 0),
            }
        };
    }

    /// Sets the topic's new state (a leaderboard's top N); the next frame carries the newest.
    pub fn state(&self, topic: &str, data: Value) {
        let Some(t) = self.topic(topic) else { return };
        if let Ok(mut pending) = t.pending.lock() {
            *pending = Pending::State(data);
        };
    }

    /// A receiver of the topic's frames from now on.
    pub fn subscribe(&self, topic: &str) -> Option<broadcast::Receiver<Bytes>> {
        self.topic(topic).map(|t| t.tx.subscribe())
    }

    /// Sends one frame for every topic that changed since the last flush.
    pub fn flush(&self) {
        let topics: Vec<(String, Arc<Topic>)> = match self.topics.lock() {
            Ok(t) => t.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect(),
            Err(_) => return,
        };
        for (name, topic) in topics {
            let pending = match topic.pending.lock() {
                Ok(mut p) => std::mem::replace(&mut *p, Pending::Nothing),
                Err(_) => continue,
            };
            let data = match pending {
                Pending::Nothing => continue,
                Pending::Events(events, 0) => json!({ "events": events }),
                Pending::Events(events, dropped) => json!({ "events": events, "dropped": dropped }),
                Pending::State(state) => state,
            };
            let seq = topic.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let frame = json!({ "topic": name, "seq": seq, "data": data });
            // No subscribers is not an error: the frame is simply not wanted.
            let _ = topic.tx.send(Bytes::from(frame.to_string()));
        }
    }

    /// Runs [`Hub::flush`] every [`WS_COALESCE_INTERVAL`] for as long as the hub lives.
    pub fn start_ticker(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(WS_COALESCE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match hub.upgrade() {
                    Some(hub) => hub.flush(),
                    None => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_coalesce_and_number_per_topic() {
        let hub = Hub::default();
        let mut rx = hub.subscribe("t").expect("topic");
        hub.event("t", json!(1));
        hub.event("t", json!(2));
        hub.state("s", json!({"a": 1}));
        hub.state("s", json!({"a": 2}));
        hub.flush();
        let frame: Value = serde_json::from_slice(&rx.try_recv().expect("frame")).expect("json");
        assert_eq!(
            frame,
            json!({"topic": "t", "seq": 1, "data": {"events": [1, 2]}})
        );
        assert!(rx.try_recv().is_err(), "one frame per flush");
        hub.flush();
        assert!(rx.try_recv().is_err(), "nothing new, no frame");
        hub.event("t", json!(3));
        hub.flush();
        let frame: Value = serde_json::from_slice(&rx.try_recv().expect("frame")).expect("json");
        assert_eq!(frame["seq"], 2);
    }
}
