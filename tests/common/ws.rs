//! Websocket clients of `/ws` for the tests: connect as a user, subscribe, read frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::TestApp;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Far longer than a change needs to reach a subscriber (the leaderboard publishes and the hub
/// sends at most every 200 ms), so a missing frame fails the test instead of a slow machine.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);

pub fn ws_url(app: &TestApp, query: &str) -> String {
    format!("{}/ws{query}", app.address.replacen("http://", "ws://", 1))
}

/// Logs `code` in and connects; returns the user id and the socket.
pub async fn connect(app: &TestApp, code: &str) -> (String, Ws) {
    let (user, bearer) = app.login(code).await;
    (user, open(&app.address, &bearer).await)
}

/// Opens a websocket to the server at `address` (a process too) with a bearer header value.
pub async fn open(address: &str, bearer: &str) -> Ws {
    let token = bearer.trim_start_matches("Bearer ");
    let url = format!(
        "{}/ws?token={token}",
        address.replacen("http://", "ws://", 1)
    );
    let (ws, _) = connect_async(url).await.expect("websocket upgrade");
    ws
}

pub async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.expect("send");
}

/// The next JSON text frame within `within`, or `None` (nothing came, or the socket closed).
pub async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg.ok()? {
            Message::Text(text) => {
                return Some(serde_json::from_str(text.as_str()).expect("server sends JSON"))
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Reads frames until one satisfies `done`; returns every frame read, the last one included.
pub async fn read_until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = next_json(ws, FRAME_WAIT)
            .await
            .unwrap_or_else(|| panic!("no matching frame; saw {seen:?}"));
        let stop = done(&frame);
        seen.push(frame);
        if stop {
            return seen;
        }
    }
}

/// The next frame that is not a data frame (an acknowledgement or an error), skipping data
/// frames of topics subscribed before.
pub async fn next_reply(ws: &mut Ws) -> Value {
    let frames = read_until(ws, |f| f.get("seq").is_none()).await;
    frames.last().cloned().expect("a reply")
}

pub async fn subscribe(ws: &mut Ws, topic: &str) {
    send(ws, json!({"op": "subscribe", "topic": topic})).await;
    let ack = next_reply(ws).await;
    assert_eq!(ack, json!({"op": "subscribed", "topic": topic}));
}
