//! One websocket connection: authentication, the subscribe/unsubscribe protocol, forwarding of
//! hub frames, heartbeat and the bounds that keep one client from costing the server more than
//! its share.
//!
//! Protocol (text frames, JSON):
//! - client → server: `{"op":"subscribe","topic":T}`, `{"op":"unsubscribe","topic":T}`;
//! - server → client: data frames `{"topic":T,"seq":N,"epoch":E,"data":{...}}` exactly as the
//!   hub encoded them (the same bytes for every subscriber, and with several nodes the same
//!   `seq` and `epoch` on every node), acknowledgements
//!   `{"op":"subscribed"|"unsubscribed","topic":T}`, and error frames `{"error":"..."}` for a
//!   malformed or refused message (the connection stays open).
//!
//! A subscription to a leaderboard topic asks the leaderboard to publish its current state again,
//! so the first data frame arrives within a publish interval instead of at the next change (all
//! subscribers of the topic get that frame, with the next `seq`).
//!
//! The connection closes when the client is silent for [`WS_CLIENT_TIMEOUT`] (the server pings
//! every [`WS_HEARTBEAT_INTERVAL`]; any message or pong counts), when it falls more than the
//! hub's buffer behind on a topic (close code 1013 "try again later": it reconnects and
//! refetches), when a frame cannot be handed to the connection within [`WS_SEND_TIMEOUT`], and
//! when a message exceeds [`WS_MESSAGE_BYTES_MAX`]. None of this ever waits on other clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::stream::{AbortHandle, BoxStream, SelectAll};
use futures_util::StreamExt;
use points_actors::leaderboard::{BoardKey, Touch};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::ToSchema;

use std::num::NonZeroU32;

use crate::clock::Moment;
use crate::http::{bearer, live_session, query_token};
use crate::runtime::sockets::{Held, Refused};
use crate::state::AppState;
use crate::store::SessionUser;

/// How often the server pings a client.
pub const WS_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// How long a client may stay silent (no message, no pong) before it is disconnected.
pub const WS_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long handing one frame to a connection may take before the client counts as stalled.
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most topics one connection may subscribe to.
pub const WS_TOPICS_MAX: usize = 32;
/// Largest message a client may send (a subscribe message is well under 200 bytes).
pub const WS_MESSAGE_BYTES_MAX: usize = 4 * 1024;
/// Longest topic name.
pub const WS_TOPIC_CHARS_MAX: usize = 128;

/// Query of `GET /ws`.
#[derive(Deserialize, ToSchema)]
pub struct WsQuery {
    /// Session token from login (or send `Authorization: Bearer <token>`).
    pub token: Option<String>,
}

/// A data frame the server sends.
#[derive(Serialize, ToSchema)]
pub struct WsFrame {
    pub topic: String,
    /// Grows by one per frame of the topic within one epoch; a gap means frames were missed.
    pub seq: u64,
    /// The numbering `seq` belongs to: a new epoch means the numbering started again (the
    /// server restarted or lost its fan-out state), so the client refetches.
    pub epoch: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

// ----- subscriptions -----

/// What a connection's subscriptions yield next.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A frame to forward as it is.
    Frame(Bytes),
    /// The connection fell behind on `topic` and `missed` frames are gone: disconnect it.
    Lagged { topic: String, missed: u64 },
}

type TopicItem = (Arc<str>, Result<Bytes, RecvError>);

/// The topic subscriptions of one connection, polled as one stream.
#[derive(Default)]
pub struct Subscriptions {
    streams: SelectAll<BoxStream<'static, TopicItem>>,
    handles: HashMap<String, AbortHandle>,
}

/// Turns a broadcast receiver into a stream of its frames; it ends when the topic closes.
fn topic_stream(topic: Arc<str>, rx: broadcast::Receiver<Bytes>) -> BoxStream<'static, TopicItem> {
    futures_util::stream::unfold(rx, move |mut rx| {
        let topic = Arc::clone(&topic);
        async move {
            match rx.recv().await {
                Err(RecvError::Closed) => None,
                item => Some(((topic, item), rx)),
            }
        }
    })
    .boxed()
}

impl Subscriptions {
    /// How many topics are subscribed.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.handles.contains_key(topic)
    }

    /// Adds `topic`, read from `rx`; `false` when already subscribed or at [`WS_TOPICS_MAX`].
    pub fn add(&mut self, topic: &str, rx: broadcast::Receiver<Bytes>) -> bool {
        if self.contains(topic) || self.len() >= WS_TOPICS_MAX {
            return false;
        }
        let (stream, handle) = futures_util::stream::abortable(topic_stream(topic.into(), rx));
        self.streams.push(stream.boxed());
        self.handles.insert(topic.to_string(), handle);
        true
    }

    /// Drops `topic`: no frame of it is delivered afterwards. Returns whether it was subscribed.
    pub fn remove(&mut self, topic: &str) -> bool {
        match self.handles.remove(topic) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// The next frame of any subscribed topic; waits forever while there is none.
    pub async fn next(&mut self) -> Delivery {
        loop {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            match self.streams.next().await {
                Some((_, Ok(frame))) => return Delivery::Frame(frame),
                Some((topic, Err(RecvError::Lagged(missed)))) => {
                    return Delivery::Lagged {
                        topic: topic.to_string(),
                        missed,
                    }
                }
                Some((_, Err(RecvError::Closed))) => continue,
                // Every stream ended (all unsubscribed): the set is empty now.
                None => continue,
            }
        }
    }
}

// ----- protocol -----

/// A client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    Subscribe(String),
    Unsubscribe(String),
}

/// Parses a client message, or says what is wrong with it.
pub fn parse_client_msg(text: &str) -> Result<ClientMsg, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("malformed message: {e}"))?;
    let Some(obj) = value.as_object() else {
        return Err("a message must be a JSON object {\"op\",\"topic\"}".into());
    };
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("missing op (subscribe or unsubscribe)")?;
    let topic = match obj.get("topic") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => return Err("missing topic".into()),
    };
    if topic.chars().count() > WS_TOPIC_CHARS_MAX || topic.chars().any(char::is_control) {
        return Err(format!(
            "a topic has at most {WS_TOPIC_CHARS_MAX} printable characters"
        ));
    }
    match op {
        "subscribe" => Ok(ClientMsg::Subscribe(topic)),
        "unsubscribe" => Ok(ClientMsg::Unsubscribe(topic)),
        other => Err(format!(
            "unknown op {other:?}: use subscribe or unsubscribe"
        )),
    }
}

/// What a topic is, once the caller may subscribe to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind {
    /// An app's leaderboard: publish its state on subscribe.
    Board {
        app_id: String,
        board: String,
    },
    Other,
}

/// Checks that `topic` exists and that the caller (of `app_id`) may read it. Topics:
/// `leaderboard:<points|steps|invites>` (the default app's boards) and
/// `leaderboard:<board>:<app_id>` (the caller's own app), `redpack:radio`,
/// `redpack:pool:<id>` (a pool of the caller's app), `morning:<app_id>` (the caller's app).
/// Unknown topics are refused, so clients cannot make the hub hold arbitrary topics.
pub async fn authorize(state: &AppState, app_id: &str, topic: &str) -> Result<TopicKind, String> {
    let parts: Vec<&str> = topic.split(':').collect();
    match parts.as_slice() {
        ["leaderboard", board] | ["leaderboard", board, _]
            if crate::activities::leaderboard::BOARD_NAMES.contains(board) =>
        {
            let target = parts.get(2).copied().unwrap_or("default");
            if target != app_id {
                return Err(format!(
                    "topic {topic:?} belongs to another app; subscribe to {:?}",
                    crate::activities::leaderboard::topic(app_id, board)
                ));
            }
            Ok(TopicKind::Board {
                app_id: app_id.to_string(),
                board: (*board).to_string(),
            })
        }
        ["redpack", "radio"] => Ok(TopicKind::Other),
        ["redpack", "pool", id] => {
            let id: i64 = id
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .ok_or("a pool id is a positive number")?;
            let owner = crate::activities::redpack::store::pool_app(&state.stores.db, id)
                .await
                .map_err(|_| "could not check the pool, try again".to_string())?;
            match owner {
                Some(owner) if owner == app_id => Ok(TopicKind::Other),
                _ => Err(format!("no pool {id} in this app")),
            }
        }
        ["morning", target] if *target == app_id => Ok(TopicKind::Other),
        ["morning", _] => Err("topic belongs to another app".into()),
        _ => Err(format!(
            "unknown topic {topic:?}: use leaderboard:points, leaderboard:steps, \
             leaderboard:invites, redpack:radio, redpack:pool:<id> or morning:<app_id>"
        )),
    }
}

/// A topic as the hub names it: a board of the caller's own app named with its app id
/// (`leaderboard:points:default`) is the same topic as the default app's short name, and frames
/// and acknowledgements carry the hub's name.
fn canonical(app_id: &str, topic: &str) -> String {
    let parts: Vec<&str> = topic.split(':').collect();
    match parts.as_slice() {
        ["leaderboard", board, target]
            if *target == app_id && crate::activities::leaderboard::BOARD_NAMES.contains(board) =>
        {
            crate::activities::leaderboard::topic(app_id, board)
        }
        _ => topic.to_string(),
    }
}

/// Handles one text message; returns the acknowledgement or error frame to send.
async fn handle_text(
    state: &AppState,
    user: &SessionUser,
    subs: &mut Subscriptions,
    text: &str,
) -> Value {
    let msg = match parse_client_msg(text) {
        Ok(msg) => msg,
        Err(e) => return json!({ "error": e }),
    };
    match msg {
        ClientMsg::Subscribe(topic) => {
            let topic = canonical(&user.app_id, &topic);
            if !subs.contains(&topic) && subs.len() >= WS_TOPICS_MAX {
                return json!({
                    "error": format!("at most {WS_TOPICS_MAX} topics per connection")
                });
            }
            let kind = match authorize(state, &user.app_id, &topic).await {
                Ok(kind) => kind,
                Err(e) => return json!({ "error": e }),
            };
            if !subs.contains(&topic) {
                let Some(rx) = state.hub.subscribe(&topic) else {
                    return json!({ "error": "subscription unavailable, try again" });
                };
                subs.add(&topic, rx);
            }
            if let TopicKind::Board { app_id, board } = kind {
                let day = Moment::now(&state.clock).day;
                let key = match board.as_str() {
                    "steps" => BoardKey::Steps(day),
                    "invites" => BoardKey::Invites(day),
                    _ => BoardKey::Points,
                };
                // Subscribing in a loop republishes a board at most once a second.
                if state.sockets.may_touch(&topic) {
                    let touch = Touch { app_id, key };
                    // With several nodes another node may publish the board.
                    if let Some(bus) = &state.bus {
                        bus.share_touch(&touch);
                    }
                    state.leaderboard.do_send(touch);
                }
            }
            json!({ "op": "subscribed", "topic": topic })
        }
        ClientMsg::Unsubscribe(topic) => {
            let topic = canonical(&user.app_id, &topic);
            subs.remove(&topic);
            json!({ "op": "unsubscribed", "topic": topic })
        }
    }
}

// ----- the connection -----

/// Why sending to the client failed.
enum SendError {
    /// The connection is gone.
    Closed,
    /// The connection did not take the frame within [`WS_SEND_TIMEOUT`].
    Stalled,
}

async fn send_text(
    session: &mut actix_ws::Session,
    text: impl Into<ByteString>,
) -> Result<(), SendError> {
    match tokio::time::timeout(WS_SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendError::Closed),
        Err(_) => Err(SendError::Stalled),
    }
}

fn close_reason(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.to_string()),
    })
}

fn stalled() -> Option<CloseReason> {
    close_reason(CloseCode::Again, "too slow to receive; reconnect")
}

/// Serves one upgraded connection until it closes; `_held` counts it until then.
async fn run(
    state: web::Data<AppState>,
    user: SessionUser,
    mut session: actix_ws::Session,
    mut inbound: actix_ws::AggregatedMessageStream,
    _held: Held,
) {
    let per_second = state.settings.bounds.ws_messages_per_second.max(1);
    let messages = governor::RateLimiter::direct(
        governor::Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(NonZeroU32::MIN)),
    );
    let mut subs = Subscriptions::default();
    let mut last_heard = Instant::now();
    let start = tokio::time::Instant::now() + WS_HEARTBEAT_INTERVAL;
    let mut heartbeat = tokio::time::interval_at(start, WS_HEARTBEAT_INTERVAL);
    let reason = loop {
        tokio::select! {
            msg = inbound.recv() => {
                // The client went away without a close frame.
                let Some(msg) = msg else { break None };
                last_heard = Instant::now();
                let counted = matches!(
                    msg,
                    Ok(AggregatedMessage::Text(_)) | Ok(AggregatedMessage::Binary(_))
                );
                if counted && messages.check().is_err() {
                    state.metrics.ws_refused.with_label_values(&["flood"]).inc();
                    break close_reason(CloseCode::Policy, "too many messages");
                }
                let reply = match msg {
                    Ok(AggregatedMessage::Text(text)) => {
                        handle_text(&state, &user, &mut subs, &text).await
                    }
                    Ok(AggregatedMessage::Binary(_)) => {
                        json!({ "error": "binary messages are not supported; send JSON text" })
                    }
                    Ok(AggregatedMessage::Ping(bytes)) => {
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                        continue;
                    }
                    Ok(AggregatedMessage::Pong(_)) => continue,
                    Ok(AggregatedMessage::Close(reason)) => break reason,
                    Err(ProtocolError::Overflow) | Err(ProtocolError::Io(_)) => {
                        break close_reason(CloseCode::Size, "message too large");
                    }
                    Err(_) => break close_reason(CloseCode::Protocol, "protocol error"),
                };
                match send_text(&mut session, reply.to_string()).await {
                    Ok(()) => {}
                    Err(SendError::Closed) => break None,
                    Err(SendError::Stalled) => break stalled(),
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= WS_CLIENT_TIMEOUT {
                    break close_reason(CloseCode::Policy, "idle timeout");
                }
                match tokio::time::timeout(WS_SEND_TIMEOUT, session.ping(b"")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break stalled(),
                }
            }
            delivery = subs.next() => match delivery {
                Delivery::Frame(frame) => {
                    // The hub encodes frames from JSON, so they are always UTF-8; the check
                    // costs no copy.
                    let Ok(text) = ByteString::try_from(frame) else { continue };
                    match send_text(&mut session, text).await {
                        Ok(()) => {}
                        Err(SendError::Closed) => break None,
                        Err(SendError::Stalled) => break stalled(),
                    }
                }
                Delivery::Lagged { topic, missed } => {
                    tracing::info!(user = user.user_id, %topic, missed, "websocket client lagged; disconnected");
                    break close_reason(CloseCode::Again, "lagged behind; reconnect and refetch");
                }
            },
        }
    };
    drop(subs);
    // Closing waits for room in the connection's queue; a stalled client does not get it.
    let _ = tokio::time::timeout(WS_SEND_TIMEOUT, session.close(reason)).await;
}

fn unauthorized(message: &str) -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({"error": "UNAUTHORIZED", "message": message}))
}

/// `GET /ws?token=<session token>`: authenticates, then upgrades. An invalid token answers
/// HTTP 401 before any upgrade.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(HttpResponse::ServiceUnavailable().finish());
    };
    let token = query_token(&req).or_else(|| bearer(&req));
    let Some(token) = token else {
        return Ok(unauthorized(
            "missing token: connect to /ws?token=<session token>",
        ));
    };
    let Some(user) = live_session(&state, &token).await else {
        return Ok(unauthorized("unknown or expired session token"));
    };
    let ip = state.settings.trusted_proxies.client_of(&req);
    let who = format!("{}:{}", user.app_id, user.user_id);
    let held = match state.sockets.open(&state.settings.bounds, who, ip) {
        Ok(held) => held,
        Err(refused) => {
            let (reason, message) = match refused {
                Refused::User => (
                    "user",
                    format!(
                        "at most {} websockets per user at once; close one first",
                        state.settings.bounds.ws_per_user
                    ),
                ),
                Refused::Ip => (
                    "ip",
                    format!(
                        "at most {} websockets per client address at once",
                        state.settings.bounds.ws_per_ip
                    ),
                ),
            };
            state.metrics.ws_refused.with_label_values(&[reason]).inc();
            return Ok(HttpResponse::TooManyRequests()
                .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
                .json(json!({"error": "RATE_LIMITED", "message": message})));
        }
    };
    let (response, session, inbound) = actix_ws::handle(&req, body)?;
    let inbound = inbound
        .max_frame_size(WS_MESSAGE_BYTES_MAX)
        .aggregate_continuations()
        .max_continuation_size(WS_MESSAGE_BYTES_MAX);
    actix_web::rt::spawn(run(state, user, session, inbound, held));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u32) -> Bytes {
        Bytes::from(format!("{{\"topic\":\"t\",\"seq\":{n}}}"))
    }

    #[actix_web::test]
    async fn a_lagging_subscriber_is_told_while_a_reading_one_keeps_every_frame() {
        // A tiny buffer stands in for the hub's WS_SUBSCRIBER_BUFFER_FRAMES.
        let (tx, _) = broadcast::channel::<Bytes>(4);
        let mut slow = Subscriptions::default();
        let mut fast = Subscriptions::default();
        assert!(slow.add("t", tx.subscribe()));
        assert!(fast.add("t", tx.subscribe()));
        let mut seen = Vec::new();
        for n in 1..=10 {
            tx.send(frame(n)).expect("subscribers exist");
            // The fast client reads every frame as it comes; the slow one reads nothing.
            seen.push(fast.next().await);
        }
        let expected: Vec<Delivery> = (1..=10).map(|n| Delivery::Frame(frame(n))).collect();
        assert_eq!(seen, expected);
        assert_eq!(
            slow.next().await,
            Delivery::Lagged {
                topic: "t".into(),
                missed: 6
            }
        );
    }

    #[actix_web::test]
    async fn unsubscribing_stops_frames_and_topics_are_bounded() {
        let (tx, _) = broadcast::channel::<Bytes>(8);
        let (other, _) = broadcast::channel::<Bytes>(8);
        let mut subs = Subscriptions::default();
        assert!(subs.add("t", tx.subscribe()));
        assert!(!subs.add("t", tx.subscribe()), "already subscribed");
        assert!(subs.add("o", other.subscribe()));
        assert!(subs.remove("t"));
        assert!(!subs.remove("t"));
        tx.send(frame(1)).expect("send");
        other.send(frame(2)).expect("send");
        assert_eq!(subs.next().await, Delivery::Frame(frame(2)));
        let nothing = tokio::time::timeout(Duration::from_millis(50), subs.next()).await;
        assert!(nothing.is_err(), "no frame of an unsubscribed topic");

        let mut many = Subscriptions::default();
        let channels: Vec<broadcast::Sender<Bytes>> = (0..=WS_TOPICS_MAX)
            .map(|_| broadcast::channel(1).0)
            .collect();
        for (i, ch) in channels.iter().enumerate() {
            assert_eq!(
                many.add(&format!("t{i}"), ch.subscribe()),
                i < WS_TOPICS_MAX
            );
        }
        assert_eq!(many.len(), WS_TOPICS_MAX);
    }

    #[test]
    fn client_messages_parse_or_say_why_not() {
        assert_eq!(
            parse_client_msg(r#"{"op":"subscribe","topic":"leaderboard:points"}"#),
            Ok(ClientMsg::Subscribe("leaderboard:points".into()))
        );
        assert_eq!(
            parse_client_msg(r#"{"op":"unsubscribe","topic":"redpack:radio"}"#),
            Ok(ClientMsg::Unsubscribe("redpack:radio".into()))
        );
        for (bad, why) in [
            ("not json", "malformed"),
            ("[1]", "JSON object"),
            (r#"{"topic":"x"}"#, "missing op"),
            (r#"{"op":"subscribe"}"#, "missing topic"),
            (r#"{"op":"subscribe","topic":7}"#, "missing topic"),
            (r#"{"op":"shout","topic":"x"}"#, "unknown op"),
        ] {
            let err = parse_client_msg(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!(r#"{{"op":"subscribe","topic":"{}"}}"#, "x".repeat(200));
        assert!(parse_client_msg(&long).is_err());
    }
}
