//! Topic fan-out for live updates, shared by every websocket session.
//!
//! Publishers never wait and never encode per subscriber: they drop an event or a new state into
//! the topic's pending slot, which becomes one frame `{"topic","seq","data"}`, encoded once and
//! sent as shared [`Bytes`] through a broadcast channel. A topic sends at most one frame per
//! [`WS_COALESCE_INTERVAL`] ([`WS_RADIO_INTERVAL`] for the red-packet radio): a change to a topic that was quiet for an interval goes out at once
//! (so a lone change is not delayed), and changes inside the interval are coalesced and sent by a
//! ticker every [`WS_TICK_INTERVAL`] once the interval has passed. `seq` grows by one per frame:
//! a client that sees a gap knows it missed a frame and refetches.
//! A subscriber that falls more than [`WS_SUBSCRIBER_BUFFER_FRAMES`] frames behind is told so by
//! the channel and disconnected by its session; the topic never waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Least time between two frames of one topic (at most 5 frames per second per topic).
pub const WS_COALESCE_INTERVAL: Duration = Duration::from_millis(200);
/// Least time between two frames of the red-packet radio. A grab storm produces winners faster
/// than anyone reads them, and the radio is a ticker: one frame a second with the latest winners
/// keeps its fan-out (a frame to every subscriber) from taking the CPU the grabs need.
pub const WS_RADIO_INTERVAL: Duration = Duration::from_secs(1);
/// The radio's topic.
pub const RADIO_TOPIC: &str = "redpack:radio";
/// How often the ticker looks for coalesced changes that are due.
pub const WS_TICK_INTERVAL: Duration = Duration::from_millis(25);
/// Frames a subscriber may lag behind before it is disconnected.
pub const WS_SUBSCRIBER_BUFFER_FRAMES: usize = 64;
/// Most events one frame carries; older ones of the interval are dropped and counted in the
/// frame's `dropped`, so a client that needs every event refetches.
pub const WS_FRAME_EVENTS_MAX: usize = 50;

enum Pending {
    Nothing,
    /// Events of the interval, in publish order, and how many were dropped.
    Events(Vec<Value>, u64),
    /// The newest state; older states of the interval are superseded.
    State(Value),
}

struct Slot {
    pending: Pending,
    /// When the topic last sent a frame.
    last_sent: Option<Instant>,
}

struct Topic {
    name: String,
    /// Least time between two frames.
    interval: Duration,
    tx: broadcast::Sender<Bytes>,
    slot: Mutex<Slot>,
    seq: AtomicU64,
}

impl Topic {
    /// Sends the pending change as one frame if there is one and the topic's interval has
    /// passed (or `force`).
    fn flush(&self, now: Instant, force: bool) {
        let pending = match self.slot.lock() {
            Ok(mut slot) => {
                let due = force
                    || slot
                        .last_sent
                        .is_none_or(|at| now.duration_since(at) >= self.interval);
                if !due || matches!(slot.pending, Pending::Nothing) {
                    return;
                }
                slot.last_sent = Some(now);
                std::mem::replace(&mut slot.pending, Pending::Nothing)
            }
            Err(_) => return,
        };
        let data = match pending {
            Pending::Nothing => return,
            Pending::Events(events, 0) => json!({ "events": events }),
            Pending::Events(events, dropped) => json!({ "events": events, "dropped": dropped }),
            Pending::State(state) => state,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = json!({ "topic": self.name, "seq": seq, "data": data });
        // No subscribers is not an error: the frame is simply not wanted.
        let _ = self.tx.send(Bytes::from(frame.to_string()));
    }
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
                    name: name.to_string(),
                    interval: if name == RADIO_TOPIC {
                        WS_RADIO_INTERVAL
                    } else {
                        WS_COALESCE_INTERVAL
                    },
                    tx: broadcast::channel(WS_SUBSCRIBER_BUFFER_FRAMES).0,
                    slot: Mutex::new(Slot {
                        pending: Pending::Nothing,
                        last_sent: None,
                    }),
                    seq: AtomicU64::new(0),
                })
            },
        )))
    }

    /// Queues one event (a grab, a winner) for the topic's next frame, which carries
    /// `{"events":[...]}`.
    pub fn event(&self, topic: &str, data: Value) {
        let Some(t) = self.topic(topic) else { return };
        if let Ok(mut slot) = t.slot.lock() {
            match &mut slot.pending {
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
        t.flush(Instant::now(), false);
    }

    /// Sets the topic's new state (a leaderboard's top N); the next frame carries the newest.
    pub fn state(&self, topic: &str, data: Value) {
        let Some(t) = self.topic(topic) else { return };
        if let Ok(mut slot) = t.slot.lock() {
            slot.pending = Pending::State(data);
        };
        t.flush(Instant::now(), false);
    }

    /// A receiver of the topic's frames from now on.
    pub fn subscribe(&self, topic: &str) -> Option<broadcast::Receiver<Bytes>> {
        self.topic(topic).map(|t| t.tx.subscribe())
    }

    /// Sends one frame for every topic with a pending change, whatever its interval.
    pub fn flush(&self) {
        self.flush_topics(true);
    }

    /// Sends the pending changes whose topic's interval has passed.
    fn flush_due(&self) {
        self.flush_topics(false);
    }

    fn flush_topics(&self, force: bool) {
        let topics: Vec<Arc<Topic>> = match self.topics.lock() {
            Ok(t) => t.values().cloned().collect(),
            Err(_) => return,
        };
        let now = Instant::now();
        for topic in topics {
            topic.flush(now, force);
        }
    }

    /// Sends due coalesced changes every [`WS_TICK_INTERVAL`] for as long as the hub lives.
    pub fn start_ticker(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(WS_TICK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match hub.upgrade() {
                    Some(hub) => hub.flush_due(),
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
        let mut srx = hub.subscribe("s").expect("topic");
        let frame = |rx: &mut broadcast::Receiver<Bytes>| -> Value {
            serde_json::from_slice(&rx.try_recv().expect("frame")).expect("json")
        };
        // A quiet topic's first change goes out at once ...
        hub.event("t", json!(1));
        assert_eq!(
            frame(&mut rx),
            json!({"topic": "t", "seq": 1, "data": {"events": [1]}})
        );
        // ... later ones inside the interval wait and are coalesced into one frame.
        hub.event("t", json!(2));
        hub.event("t", json!(3));
        hub.state("s", json!({"a": 1}));
        hub.state("s", json!({"a": 2}));
        hub.state("s", json!({"a": 3}));
        assert!(rx.try_recv().is_err(), "coalesced inside the interval");
        hub.flush_due();
        assert!(rx.try_recv().is_err(), "not due yet");
        hub.flush();
        assert_eq!(
            frame(&mut rx),
            json!({"topic": "t", "seq": 2, "data": {"events": [2, 3]}})
        );
        assert!(rx.try_recv().is_err(), "one frame per flush");
        assert_eq!(frame(&mut srx)["data"], json!({"a": 1}));
        let last = frame(&mut srx);
        assert_eq!(
            (last["seq"].clone(), last["data"].clone()),
            (json!(2), json!({"a": 3}))
        );
        hub.flush();
        assert!(rx.try_recv().is_err(), "nothing new, no frame");
        hub.event("t", json!(4));
        hub.flush();
        assert_eq!(frame(&mut rx)["seq"], 3);
    }
}
