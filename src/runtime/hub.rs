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
//!
//! Every frame also carries the topic's `epoch`: `seq` counts within one epoch, and a new epoch
//! (a restarted single node, a Redis that lost its data) tells a client to refetch rather than
//! look for a gap. With several nodes, [`Hub::relay_through`] hands each frame's data to the
//! cluster bus instead, which numbers it once for every node and gives it back through
//! [`Hub::deliver`] on each of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

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
    /// The last `seq` numbered here (a single node).
    seq: AtomicU64,
    /// Frames the cluster bus could not take since the last one it took: the next one it takes
    /// skips that many numbers, so clients see the gap.
    skipped: AtomicU64,
    /// The `(epoch, seq)` of the last frame delivered, so a frame that arrives twice or late
    /// is not delivered again.
    last: Mutex<(String, u64)>,
}

/// One frame's data on its way to the cluster bus, which numbers and delivers it.
#[derive(Debug)]
pub struct Outgoing {
    pub topic: String,
    /// The frame's `data`, encoded.
    pub data: String,
    /// Numbers to skip before this frame (frames that were lost on the way).
    pub skipped: u64,
}

impl Topic {
    /// The pending change, taken, if there is one and the topic's interval has passed (or
    /// `force`).
    fn take_due(&self, now: Instant, force: bool) -> Option<Value> {
        let pending = match self.slot.lock() {
            Ok(mut slot) => {
                let due = force
                    || slot
                        .last_sent
                        .is_none_or(|at| now.duration_since(at) >= self.interval);
                if !due || matches!(slot.pending, Pending::Nothing) {
                    return None;
                }
                slot.last_sent = Some(now);
                std::mem::replace(&mut slot.pending, Pending::Nothing)
            }
            Err(_) => return None,
        };
        match pending {
            Pending::Nothing => None,
            Pending::Events(events, 0) => Some(json!({ "events": events })),
            Pending::Events(events, dropped) => {
                Some(json!({ "events": events, "dropped": dropped }))
            }
            Pending::State(state) => Some(state),
        }
    }

    /// Sends `frame` to this node's subscribers unless a frame of the same epoch with this
    /// `seq` or a later one was sent already.
    fn deliver(&self, epoch: &str, seq: u64, frame: Bytes) -> bool {
        {
            let Ok(mut last) = self.last.lock() else {
                return false;
            };
            if last.0 == epoch && seq <= last.1 {
                return false;
            }
            *last = (epoch.to_string(), seq);
        }
        // No subscribers is not an error: the frame is simply not wanted.
        let _ = self.tx.send(frame);
        true
    }
}

/// The fan-out hub. See the module documentation.
pub struct Hub {
    // std Mutex: every critical section is a map lookup or a swap, never an await.
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    /// This process's epoch for the frames it numbers itself.
    epoch: String,
    /// The cluster bus, when several nodes share the topics.
    relay: OnceLock<mpsc::Sender<Outgoing>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            epoch: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            relay: OnceLock::new(),
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
                    skipped: AtomicU64::new(0),
                    last: Mutex::new((String::new(), 0)),
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
        self.send_due(&t, Instant::now(), false);
    }

    /// Sets the topic's new state (a leaderboard's top N); the next frame carries the newest.
    pub fn state(&self, topic: &str, data: Value) {
        let Some(t) = self.topic(topic) else { return };
        if let Ok(mut slot) = t.slot.lock() {
            slot.pending = Pending::State(data);
        };
        self.send_due(&t, Instant::now(), false);
    }

    /// Sends the topic's pending change as one frame if it is due: numbered here on a single
    /// node, handed to the cluster bus with several.
    fn send_due(&self, topic: &Topic, now: Instant, force: bool) {
        let Some(data) = topic.take_due(now, force) else {
            return;
        };
        if let Some(relay) = self.relay.get() {
            let skipped = topic.skipped.swap(0, Ordering::Relaxed);
            let out = Outgoing {
                topic: topic.name.clone(),
                data: data.to_string(),
                skipped,
            };
            if relay.try_send(out).is_err() {
                topic.skipped.fetch_add(skipped + 1, Ordering::Relaxed);
            }
            return;
        }
        let seq = topic.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = json!({ "topic": topic.name, "seq": seq, "epoch": self.epoch, "data": data });
        topic.deliver(&self.epoch, seq, Bytes::from(frame.to_string()));
    }

    /// From now on, hands every frame's data to `relay` (the cluster bus) instead of numbering
    /// and sending it here. Set once, at start.
    pub fn relay_through(&self, relay: mpsc::Sender<Outgoing>) {
        let _ = self.relay.set(relay);
    }

    /// Counts `n` frames of `topic` that were lost on their way to being numbered, so the next
    /// one skips their numbers.
    pub fn lost(&self, topic: &str, n: u64) {
        if let Some(t) = self.topic(topic) {
            t.skipped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sends a frame numbered elsewhere (by the cluster bus) to this node's subscribers of
    /// `topic`, unless it was delivered already. Whether it was sent.
    pub fn deliver(&self, topic: &str, epoch: &str, seq: u64, frame: Bytes) -> bool {
        self.topic(topic)
            .is_some_and(|t| t.deliver(epoch, seq, frame))
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
            self.send_due(&topic, now, force);
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
        let epoch = hub.epoch.clone();
        let frame = |rx: &mut broadcast::Receiver<Bytes>| -> Value {
            let mut f: Value =
                serde_json::from_slice(&rx.try_recv().expect("frame")).expect("json");
            assert_eq!(f["epoch"], json!(epoch), "every frame names the epoch");
            f.as_object_mut().expect("object").remove("epoch");
            f
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

    #[test]
    fn relayed_frames_count_what_was_lost_and_are_delivered_once() {
        let hub = Hub::default();
        let (tx, mut out) = mpsc::channel(1);
        hub.relay_through(tx);
        let mut rx = hub.subscribe("t").expect("topic");
        // The bus numbers frames: the hub hands their data over and sends nothing itself.
        hub.event("t", json!(1));
        let first = out.try_recv().expect("handed over");
        assert_eq!(
            (first.topic.as_str(), first.data.as_str(), first.skipped),
            ("t", r#"{"events":[1]}"#, 0)
        );
        assert!(rx.try_recv().is_err(), "not sent before it is numbered");
        // A frame the bus cannot take is lost, and the next one skips its number ...
        hub.event("t", json!(2));
        hub.flush();
        hub.event("t", json!(3));
        hub.flush();
        assert_eq!(out.try_recv().expect("handed over").skipped, 0);
        hub.event("t", json!(4));
        hub.flush();
        assert_eq!(out.try_recv().expect("handed over").skipped, 1);
        // ... as do frames the bus lost itself.
        hub.lost("t", 2);
        hub.event("t", json!(5));
        hub.flush();
        assert_eq!(out.try_recv().expect("handed over").skipped, 2);
        // A numbered frame is delivered once; an older one of the same epoch not at all; a new
        // epoch starts again.
        assert!(hub.deliver("t", "e1", 5, Bytes::from_static(b"five")));
        assert!(!hub.deliver("t", "e1", 5, Bytes::from_static(b"five")));
        assert!(!hub.deliver("t", "e1", 4, Bytes::from_static(b"four")));
        assert!(hub.deliver("t", "e2", 1, Bytes::from_static(b"one")));
        assert_eq!(rx.try_recv().expect("frame"), Bytes::from_static(b"five"));
        assert_eq!(rx.try_recv().expect("frame"), Bytes::from_static(b"one"));
        assert!(rx.try_recv().is_err());
    }
}
