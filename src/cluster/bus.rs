//! Fan-out across nodes through Redis: websocket frames and the committed changes the
//! leaderboards need.
//!
//! **Frames.** On every node the hub hands each frame's data to the bus ([`Hub::relay_through`]).
//! One Lua script numbers it and publishes it, atomically: it bumps the topic's `seq` in a Redis
//! hash that also keeps the topic's `epoch` (made by the first publisher, made again if Redis
//! lost the hash), and publishes the finished frame `{"topic","seq","epoch","data"}` on one
//! channel. Every node, the publishing one too, delivers the frames the channel brings. So a
//! frame is numbered once and carries the same `seq` on every node, and frames of one topic
//! arrive in `seq` order even when several nodes publish on it (the red-packet radio). A frame
//! that could not be published (Redis down,
//! the queue full) is lost and its number skipped by the next one, so clients see the gap (or,
//! if Redis lost its data, a new epoch) and refetch.
//!
//! **Committed changes.** Each node appends its committed ledger changes (and stored steps) to a
//! Redis stream; every node reads the stream and applies the other nodes' entries to its own
//! leaderboards, which ignore what they already have (entries carry their ledger id). The
//! leaderboards' periodic rebuild from the database stays the truth: after the stream could not
//! be read, the reader asks for a rebuild at once ([`Bus::resynced`]).
//!
//! Redis never holds a point: losing it pauses fan-out and changes nothing in the ledger.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use points_actors::leaderboard::{BoardKey, LeaderboardActor, ReportSteps, Touch};
use points_actors::{Committed, CommittedChange, Outcome};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use crate::metrics::ClusterMetrics;
use crate::runtime::hub::{Hub, Outgoing};
use crate::state::{Redis, REDIS_TIMEOUT};

/// Keys of one cluster in Redis, all under `points:<database>:` so that clusters over different
/// databases may share one Redis: the frames channel, the stream of committed changes and each
/// topic's `{epoch, seq}` hash.
struct Keys {
    frames: String,
    changes: String,
    topic_prefix: String,
    limit_prefix: String,
}

impl Keys {
    fn new(database: &str) -> Self {
        let base = format!("points:{database}:");
        Self {
            frames: format!("{base}frames"),
            changes: format!("{base}committed"),
            topic_prefix: format!("{base}topic:"),
            limit_prefix: format!("{base}limit:"),
        }
    }
}
/// A topic's hash lives this long after its last frame (then the topic starts a new epoch).
const TOPIC_TTL_MS: u64 = 7 * 24 * 3_600_000;
/// Frames waiting to be published; beyond it a frame is lost (and its number skipped).
const FRAMES_QUEUED_MAX: usize = 4096;
/// Batches of changes waiting to be appended; beyond it they are left to the rebuild.
const CHANGES_QUEUED_MAX: usize = 4096;
/// About how many entries the stream keeps.
const CHANGES_STREAM_LEN: usize = 100_000;
/// Entries read at once, and how long one read waits for new ones.
const CHANGES_READ_COUNT: usize = 500;
const CHANGES_READ_BLOCK_MS: usize = 1_000;
/// Pause before connecting again after Redis failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Numbers one frame and publishes it. KEYS: the topic's hash, the channel. ARGV: an epoch for
/// a topic that has none, how far to move `seq`, the topic as a JSON string, the data as JSON,
/// the header line (`<sent ms> <node id>`), the hash's lifetime.
const PUBLISH_SCRIPT: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local frame = '{"topic":' .. ARGV[3] .. ',"seq":' .. seq .. ',"epoch":"' .. epoch .. '","data":' .. ARGV[4] .. '}'
redis.call('PUBLISH', KEYS[2], ARGV[5] .. '\n' .. frame)
return seq
"#;

/// What a stream entry carries.
#[derive(Debug, Serialize, Deserialize)]
enum Shared {
    /// Committed ledger changes: `(app, user, kind, entry id, balance after, amount, at)`.
    #[serde(rename = "c")]
    Changes(Vec<(String, i64, String, i64, i64, i64, i64)>),
    /// A user's stored steps of a day: `(app, day, user, steps, reached at)`.
    #[serde(rename = "s")]
    Steps(String, String, i64, i64, i64),
    /// A new subscriber wants a board's current state: `(app, board name, day)`.
    #[serde(rename = "t")]
    Touch(String, String, Option<String>),
}

/// The part of a frame a receiving node reads.
#[derive(Deserialize)]
struct FrameHead {
    topic: String,
    seq: u64,
    epoch: String,
}

/// The cluster bus of one node. See the module documentation.
pub struct Bus {
    node: String,
    keys: Keys,
    client: redis::Client,
    hub: Arc<Hub>,
    metrics: ClusterMetrics,
    shared: mpsc::Sender<Shared>,
    resynced: Arc<Notify>,
}

impl Bus {
    /// Prefix of the shared rate-limit counters' keys (`points:<database>:limit:`).
    pub fn limit_prefix(&self) -> &str {
        &self.keys.limit_prefix
    }

    /// Starts the bus of node `node` of the cluster over database `database`: the hub's
    /// frames go through Redis from now on, and the other nodes' committed changes reach
    /// `leaderboard`. Listen to the ledger with [`Bus::listener`].
    pub async fn start(
        node: String,
        database: &str,
        client: redis::Client,
        hub: Arc<Hub>,
        leaderboard: Addr<LeaderboardActor>,
        metrics: ClusterMetrics,
    ) -> Arc<Bus> {
        let (frames_tx, frames_rx) = mpsc::channel(FRAMES_QUEUED_MAX);
        let (shared_tx, shared_rx) = mpsc::channel(CHANGES_QUEUED_MAX);
        let bus = Arc::new(Bus {
            node,
            keys: Keys::new(database),
            client,
            hub: Arc::clone(&hub),
            metrics,
            shared: shared_tx,
            resynced: Arc::new(Notify::new()),
        });
        // Where the stream ends now: what came before is in the database the leaderboards are
        // built from.
        let reader = Redis::new(bus.client.clone());
        let from = match stream_end(&reader, &bus.keys.changes).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "Redis unreachable; fan-out across nodes waits for it");
                None
            }
        };
        hub.relay_through(frames_tx);
        actix_web::rt::spawn(Arc::clone(&bus).publish_frames(frames_rx));
        actix_web::rt::spawn(Arc::clone(&bus).receive_frames());
        actix_web::rt::spawn(Arc::clone(&bus).append_changes(shared_rx));
        actix_web::rt::spawn(Arc::clone(&bus).read_changes(reader, from, leaderboard));
        bus
    }

    /// A ledger listener that shares this node's committed changes.
    pub fn listener(self: &Arc<Self>) -> Recipient<Committed> {
        ChangeSharer(Arc::clone(self)).start().recipient()
    }

    /// Shares a user's stored steps with the other nodes' leaderboards.
    pub fn share_steps(&self, steps: &ReportSteps) {
        self.share(Shared::Steps(
            steps.app_id.clone(),
            steps.day.clone(),
            steps.user_id,
            steps.steps,
            steps.reached_at,
        ));
    }

    /// Asks the node that publishes the board to publish it again (a subscriber on this node
    /// wants its current state).
    pub fn share_touch(&self, touch: &Touch) {
        self.share(Shared::Touch(
            touch.app_id.clone(),
            touch.key.name().to_string(),
            touch.key.day().map(str::to_string),
        ));
    }

    /// Woken when the stream of changes is read again after a failure: the leaderboards may
    /// have missed changes and should be rebuilt from the database.
    pub fn resynced(&self) -> Arc<Notify> {
        Arc::clone(&self.resynced)
    }

    fn share(&self, shared: Shared) {
        if self.shared.try_send(shared).is_err() {
            self.metrics
                .fanout_changes
                .with_label_values(&["failed"])
                .inc();
        }
    }

    // ----- frames -----

    /// Numbers and publishes the hub's frames one at a time, in order.
    async fn publish_frames(self: Arc<Self>, mut frames: mpsc::Receiver<Outgoing>) {
        let redis = Redis::new(self.client.clone());
        let script = redis::Script::new(PUBLISH_SCRIPT);
        let mut failing = false;
        while let Some(out) = frames.recv().await {
            match self.publish(&redis, &script, &out).await {
                Ok(()) => {
                    if failing {
                        failing = false;
                        tracing::info!("publishing websocket frames through Redis again");
                    }
                    self.metrics
                        .fanout_frames
                        .with_label_values(&["published"])
                        .inc();
                }
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "websocket frames cannot reach Redis; fan-out paused");
                    }
                    // This frame and the ones queued behind it are lost: stale by the time Redis
                    // answers again, and their numbers are skipped.
                    let mut lost = vec![out];
                    while let Ok(next) = frames.try_recv() {
                        lost.push(next);
                    }
                    for out in lost {
                        self.hub.lost(&out.topic, out.skipped + 1);
                        self.metrics
                            .fanout_frames
                            .with_label_values(&["failed"])
                            .inc();
                    }
                }
            }
        }
    }

    async fn publish(
        &self,
        redis: &Redis,
        script: &redis::Script,
        out: &Outgoing,
    ) -> redis::RedisResult<()> {
        let mut conn = redis.connection().await?;
        let topic = serde_json::Value::String(out.topic.clone()).to_string();
        let header = format!("{} {}", crate::clock::now_ms(), self.node);
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        script
            .key(format!("{}{}", self.keys.topic_prefix, out.topic))
            .key(&self.keys.frames)
            .arg(epoch)
            .arg(out.skipped + 1)
            .arg(topic)
            .arg(&out.data)
            .arg(header)
            .arg(TOPIC_TTL_MS)
            .invoke_async::<u64>(&mut conn)
            .await
            .map(drop)
    }

    /// Delivers the published frames to this node's subscribers, connecting again whenever the
    /// subscription breaks.
    async fn receive_frames(self: Arc<Self>) {
        let mut failing = false;
        loop {
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.keys.frames).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(REDIS_TIMEOUT, subscribed).await {
                Ok(Ok(mut pubsub)) => {
                    if failing {
                        failing = false;
                        tracing::info!("receiving websocket frames through Redis again");
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        self.receive(message.get_payload_bytes());
                    }
                }
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot subscribe to frames in Redis; fan-out paused");
                }
                Err(_) if !failing => {
                    failing = true;
                    tracing::warn!("subscribing to frames in Redis timed out; fan-out paused");
                }
                _ => {}
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One published frame: `<sent ms> <node id>\n<frame>`.
    fn receive(&self, payload: &[u8]) {
        let Some(split) = payload.iter().position(|b| *b == b'\n') else {
            return;
        };
        let (header, frame) = (&payload[..split], &payload[split + 1..]);
        let Some((sent, _node)) = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.split_once(' '))
        else {
            return;
        };
        let Ok(head) = serde_json::from_slice::<FrameHead>(frame) else {
            return;
        };
        self.metrics
            .fanout_frames
            .with_label_values(&["received"])
            .inc();
        if let Ok(sent) = sent.parse::<i64>() {
            let lag = (crate::clock::now_ms() - sent).max(0) as f64 / 1000.0;
            self.metrics.fanout_lag.observe(lag);
        }
        self.hub.deliver(
            &head.topic,
            &head.epoch,
            head.seq,
            Bytes::copy_from_slice(frame),
        );
    }

    // ----- committed changes -----

    /// Appends this node's shared changes to the stream, in order; what cannot be appended is
    /// left to the other nodes' rebuilds.
    async fn append_changes(self: Arc<Self>, mut shared: mpsc::Receiver<Shared>) {
        let redis = Redis::new(self.client.clone());
        let mut failing = false;
        while let Some(entry) = shared.recv().await {
            let Ok(data) = serde_json::to_string(&entry) else {
                continue;
            };
            let appended = async {
                let mut conn = redis.connection().await?;
                conn.xadd_maxlen::<_, _, _, _, String>(
                    &self.keys.changes,
                    redis::streams::StreamMaxlen::Approx(CHANGES_STREAM_LEN),
                    "*",
                    &[("n", self.node.as_str()), ("d", data.as_str())],
                )
                .await
            };
            match appended.await {
                Ok(_) => {
                    failing = false;
                    self.metrics
                        .fanout_changes
                        .with_label_values(&["published"])
                        .inc();
                }
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "committed changes cannot reach Redis; the other nodes' leaderboards wait for their rebuild");
                    }
                    self.metrics
                        .fanout_changes
                        .with_label_values(&["failed"])
                        .inc();
                }
            }
        }
    }

    /// Reads the other nodes' changes from the stream and applies them to this node's
    /// leaderboards. After a failure it starts again from the stream's end and wakes
    /// [`Bus::resynced`].
    async fn read_changes(
        self: Arc<Self>,
        redis: Redis,
        mut from: Option<String>,
        leaderboard: Addr<LeaderboardActor>,
    ) {
        let options = StreamReadOptions::default()
            .count(CHANGES_READ_COUNT)
            .block(CHANGES_READ_BLOCK_MS);
        loop {
            let Some(last) = from.clone() else {
                match stream_end(&redis, &self.keys.changes).await {
                    Ok(id) => {
                        tracing::info!("reading committed changes from Redis again");
                        from = Some(id);
                        self.resynced.notify_one();
                    }
                    Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
                }
                continue;
            };
            let read = async {
                let mut conn = redis.connection().await?;
                conn.xread_options::<_, _, StreamReadReply>(
                    &[&self.keys.changes],
                    &[&last],
                    &options,
                )
                .await
            };
            match read.await {
                Ok(reply) => {
                    for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                        from = Some(entry.id.clone());
                        self.apply(&entry, &leaderboard);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read committed changes from Redis; the leaderboards are rebuilt when it is back");
                    from = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    fn apply(&self, entry: &StreamId, leaderboard: &Addr<LeaderboardActor>) {
        let node: Option<String> = entry.get("n");
        if node.as_deref() == Some(self.node.as_str()) {
            return;
        }
        let Some(data) = entry.get::<String>("d") else {
            return;
        };
        let Ok(shared) = serde_json::from_str::<Shared>(&data) else {
            return;
        };
        self.metrics
            .fanout_changes
            .with_label_values(&["received"])
            .inc();
        match shared {
            Shared::Changes(changes) => {
                let changes = changes
                    .into_iter()
                    .map(
                        |(app_id, user_id, kind, entry_id, balance_after, amount, created_at)| {
                            CommittedChange {
                                app_id,
                                user_id,
                                kind,
                                reference: String::new(),
                                outcome: Outcome {
                                    entry_id,
                                    balance_after,
                                    amount,
                                    created_at,
                                },
                                has_order: false,
                            }
                        },
                    )
                    .collect();
                leaderboard.do_send(Committed(Arc::new(changes)));
            }
            Shared::Steps(app_id, day, user_id, steps, reached_at) => {
                leaderboard.do_send(ReportSteps {
                    app_id,
                    day,
                    user_id,
                    steps,
                    reached_at,
                });
            }
            Shared::Touch(app_id, board, day) => {
                let key = match (board.as_str(), day) {
                    ("steps", Some(day)) => BoardKey::Steps(day),
                    ("invites", Some(day)) => BoardKey::Invites(day),
                    ("points", None) => BoardKey::Points,
                    _ => return,
                };
                leaderboard.do_send(Touch { app_id, key });
            }
        }
    }
}

/// The id of the stream's newest entry (`0-0` when it is empty).
async fn stream_end(redis: &Redis, stream: &str) -> redis::RedisResult<String> {
    let mut conn = redis.connection().await?;
    let newest: redis::streams::StreamRangeReply =
        conn.xrevrange_count(stream, "+", "-", 1).await?;
    Ok(newest
        .ids
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_string(), |e| e.id))
}

/// The ledger listener that hands committed batches to the bus.
struct ChangeSharer(Arc<Bus>);

impl Actor for ChangeSharer {
    type Context = Context<Self>;
}

impl Handler<Committed> for ChangeSharer {
    type Result = ();

    fn handle(&mut self, msg: Committed, _ctx: &mut Self::Context) {
        let changes: Vec<_> = msg
            .0
            .iter()
            .map(|c| {
                (
                    c.app_id.clone(),
                    c.user_id,
                    c.kind.clone(),
                    c.outcome.entry_id,
                    c.outcome.balance_after,
                    c.outcome.amount,
                    c.outcome.created_at,
                )
            })
            .collect();
        if !changes.is_empty() {
            self.0.share(Shared::Changes(changes));
        }
    }
}
