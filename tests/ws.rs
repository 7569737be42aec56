//! The websocket facade `/ws`: live leaderboard frames in order, the subscribe/unsubscribe
//! protocol and its error frames, authentication before the upgrade, and clients that do not
//! read never holding up the others; on SQLite and Postgres.
//!
//! Disconnecting a client that lags past its buffer is covered by the unit tests of
//! `ws::session` (filling a real socket's buffers at 5 frames per second would take minutes).

mod common;

use std::time::Duration;

use common::ws::{connect, next_json, next_reply, read_until, send, subscribe, ws_url};
use common::{backends, spawn_app, Backend};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::{self, Message};

/// The score of `user` in a points frame, if listed.
fn score_of(frame: &Value, user: &str) -> Option<i64> {
    frame["data"]["top"]
        .as_array()?
        .iter()
        .find(|e| e["user_id"] == user)
        .and_then(|e| e["score"].as_i64())
}

#[actix_web::test]
async fn a_subscriber_sees_its_points_change_in_order() {
    for backend in backends() {
        // Arrange
        let app = spawn_app(backend).await;
        let (bob, _) = app.login("bob").await;
        app.change(&bob, 20, None).await;
        let (alice, mut ws) = connect(&app, "alice").await;

        // Act: subscribe; the current board comes without any further change (a frame of an
        // older state may precede it while the server has just started).
        subscribe(&mut ws, "leaderboard:points").await;
        let first = read_until(&mut ws, |f| score_of(f, &bob) == Some(20)).await;
        let first = first.last().expect("current board");
        assert_eq!(first["topic"], "leaderboard:points", "{first}");
        assert_eq!(first["data"]["board"], "points");

        app.change(&alice, 10, None).await;
        let mut frames = read_until(&mut ws, |f| score_of(f, &alice) == Some(10)).await;
        app.change(&alice, 15, None).await;
        frames.extend(read_until(&mut ws, |f| score_of(f, &alice) == Some(25)).await);

        // Assert: seq grows by one per frame; scores only move forward; the last frame ranks
        // alice above bob.
        let mut seq = first["seq"].as_u64().expect("seq");
        let mut score = 0;
        for f in &frames {
            let next = f["seq"].as_u64().expect("seq");
            assert_eq!(next, seq + 1, "{frames:?}");
            seq = next;
            let s = score_of(f, &alice).unwrap_or(0);
            assert!(s >= score, "{frames:?}");
            score = s;
        }
        let last = frames.last().expect("frames");
        assert_eq!(last["data"]["top"][0]["user_id"], alice, "{last}");
        assert_eq!(last["data"]["top"][0]["rank"], 1);
        assert_eq!(last["data"]["top"][1]["user_id"], bob);
        assert_eq!(last["data"]["ranked"], 2);
    }
}

#[actix_web::test]
async fn malformed_and_refused_messages_get_error_frames_and_unsubscribe_stops_frames() {
    for backend in backends() {
        // Arrange
        let app = spawn_app(backend).await;
        let (alice, mut ws) = connect(&app, "alice").await;

        // Act + Assert: every bad message answers an error frame; the connection stays.
        for bad in [
            "not json".to_string(),
            "[1,2]".to_string(),
            json!({"topic": "leaderboard:points"}).to_string(),
            json!({"op": "subscribe"}).to_string(),
            json!({"op": "shout", "topic": "leaderboard:points"}).to_string(),
            json!({"op": "subscribe", "topic": "no:such:topic"}).to_string(),
            json!({"op": "subscribe", "topic": "leaderboard:points:other-app"}).to_string(),
            json!({"op": "subscribe", "topic": "morning:other-app"}).to_string(),
            json!({"op": "subscribe", "topic": "redpack:pool:999"}).to_string(),
            json!({"op": "subscribe", "topic": "x".repeat(300)}).to_string(),
        ] {
            ws.send(Message::text(bad.clone())).await.expect("send");
            let reply = next_reply(&mut ws).await;
            assert!(reply["error"].is_string(), "{bad}: {reply}");
        }
        ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
        let reply = next_reply(&mut ws).await;
        assert!(reply["error"].is_string(), "{reply}");

        // The steps board of today comes on subscribe, tagged with its day.
        subscribe(&mut ws, "leaderboard:steps").await;
        let steps = read_until(&mut ws, |f| f["topic"] == "leaderboard:steps").await;
        let steps = steps.last().expect("steps board");
        assert!(steps["data"]["day"].is_string(), "{steps}");
        subscribe(&mut ws, "redpack:radio").await;

        // Points: subscribed, then unsubscribed: no frame after the ack.
        subscribe(&mut ws, "leaderboard:points").await;
        read_until(&mut ws, |f| f["topic"] == "leaderboard:points").await;
        send(
            &mut ws,
            json!({"op": "unsubscribe", "topic": "leaderboard:points"}),
        )
        .await;
        let ack = next_reply(&mut ws).await;
        assert_eq!(
            ack,
            json!({"op": "unsubscribed", "topic": "leaderboard:points"})
        );
        app.change(&alice, 10, None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Some(frame) = next_json(&mut ws, deadline - tokio::time::Instant::now()).await {
            assert_ne!(
                frame["topic"], "leaderboard:points",
                "no frame after unsubscribing"
            );
        }

        // Subscribing again brings the current board, with the new score.
        subscribe(&mut ws, "leaderboard:points").await;
        read_until(&mut ws, |f| score_of(f, &alice) == Some(10)).await;
    }
}

#[actix_web::test]
async fn a_bad_or_missing_token_is_refused_before_the_upgrade() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        for query in ["", "?token=", "?token=not-a-session"] {
            match connect_async(ws_url(&app, query)).await {
                Err(tungstenite::Error::Http(res)) => {
                    assert_eq!(res.status().as_u16(), 401, "{query}")
                }
                Err(e) => panic!("{query}: expected HTTP 401, got {e}"),
                Ok(_) => panic!("{query}: upgraded without a valid token"),
            }
        }
        // A valid token on a request that is not an upgrade: a client error, never a 500.
        let (_, bearer) = app.login("alice").await;
        let token = bearer.trim_start_matches("Bearer ");
        let res = app
            .client
            .get(app.url(&format!("/ws?token={token}")))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 400);
    }
}

#[actix_web::test]
async fn a_client_that_never_reads_does_not_hold_up_another() {
    for backend in backends() {
        // Arrange: one client subscribes and never reads again; another keeps reading.
        let app = spawn_app(backend).await;
        let (_, mut idle) = connect(&app, "idle").await;
        subscribe(&mut idle, "leaderboard:points").await;
        let (alice, mut ws) = connect(&app, "alice").await;
        subscribe(&mut ws, "leaderboard:points").await;

        // Act: a stream of changes, spread over several publish intervals.
        for i in 1..=10 {
            app.change(&alice, i, None).await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }

        // Assert: the reading client gets to the final score.
        let frames = read_until(&mut ws, |f| score_of(f, &alice) == Some(55)).await;
        assert!(!frames.is_empty());
        drop(idle);
    }
}

#[actix_web::test]
async fn the_websocket_and_walk_routes_are_in_the_openapi_document() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, doc) = app.get("/openapi.json", &[]).await;
    assert_eq!(status, 200);
    for path in [
        "/ws",
        "/v2/walk/get.json",
        "/v2/walk/rank.json",
        "/v2/walk/exchange.json",
        "/v2/kingkong/cover_img.json",
        "/api/wx_run/",
        "/api/rank_by_balance/",
        "/admin/walk/config",
        "/admin/covers",
        "/admin/leaderboards/archive",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["paths"]["/ws"]["get"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("subscribe")));
}

#[actix_web::test]
async fn invite_entries_feed_todays_invites_board_once_each() {
    for backend in backends() {
        // Arrange
        let app = spawn_app(backend).await;
        let (bob, _) = app.login("bob").await;
        let (alice, mut ws) = connect(&app, "alice").await;
        subscribe(&mut ws, "leaderboard:invites").await;
        let invite = |uid: String, key: &'static str| {
            let app = &app;
            async move {
                let (status, body) = app
                    .post(
                        "/core/point/update.json",
                        &[("X-Admin-Key", common::ADMIN_KEY), ("Idempotency-Key", key)],
                        &json!({"uuid": uid, "amount": 20, "flag": "invite",
                                "expired_time": "2099-01-01 00:00:00"}),
                    )
                    .await;
                assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
            }
        };

        // Act: two invites for alice (one replayed), one for bob.
        invite(alice.clone(), "inv-1").await;
        invite(alice.clone(), "inv-2").await;
        invite(alice.clone(), "inv-2").await;
        invite(bob.clone(), "inv-3").await;

        // Assert
        let frames = read_until(&mut ws, |f| score_of(f, &bob) == Some(1)).await;
        let last = frames.last().expect("frame");
        assert_eq!(last["data"]["board"], "invites", "{last}");
        assert_eq!(
            score_of(last, &alice),
            Some(2),
            "the replay counts once: {last}"
        );
        assert_eq!(last["data"]["top"][0]["user_id"], alice);
    }
}
