//! Limits and abuse over HTTP and websockets against the real server, on SQLite and Postgres:
//! rate limits answered 429 with `Retry-After` in each dialect while another user is unaffected
//! and the flooder's points stay exact; client addresses from the socket or a trusted proxy;
//! limits shared by two nodes through Redis and kept per node when Redis is gone; websockets,
//! sessions and uploads bounded per user; a trickled body cut with 408; made-up methods that do
//! not grow `/metrics`; 405 on a known path; writes and `/readyz` that fail fast while the
//! database is unreachable and recover by themselves.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    backends, ledger_facts, spawn_app_with, spawn_on, test_settings, Backend, OwnRedis, TestApp,
    GATEWAY_SECRET,
};
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use points_engine::limits::RateLimits;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const OPEN_POINTS: &str = "/api/v1/open/swan/integral/points";

fn limits(spec: &str) -> RateLimits {
    RateLimits::parse(spec).expect("limits")
}

/// One request's status, `Retry-After` and JSON body.
async fn call(req: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

/// Sends `n` copies of a request at once; answers every (status, Retry-After, body).
async fn burst(
    n: usize,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<(u16, Option<u64>, Value)> {
    join_all((0..n).map(|i| call(make(i)))).await
}

fn gateway(req: reqwest::RequestBuilder, uid: &str) -> reqwest::RequestBuilder {
    req.header("X-Consumer-Custom-ID", uid)
        .header("X-Gateway-Secret", GATEWAY_SECRET)
}

/// Splits answers into the 200s and the 429s, checking each 429's `Retry-After` and that it is
/// the dialect's own refusal (`refused` says so of a body).
fn tally(
    answers: &[(u16, Option<u64>, Value)],
    refused: impl Fn(&Value) -> bool,
    what: &str,
) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    for (status, retry, body) in answers {
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(
                    retry.is_some_and(|s| s >= 1),
                    "{what}: Retry-After {retry:?}"
                );
                assert!(refused(body), "{what}: not the dialect's refusal: {body}");
            }
            other => panic!("{what}: unexpected {other}: {body}"),
        }
    }
    (ok, limited)
}

#[actix_web::test]
async fn a_flooding_caller_is_refused_with_429_in_its_dialect_and_others_are_unaffected() {
    for backend in backends() {
        let app = spawn_app_with(backend, |s| {
            s.rate_limits = limits("read:user=5/s,write:user=5/s,grab:user=5/s");
        })
        .await;
        let url = |p: &str| app.url(p);
        let c = &app.client;

        // Reads, one flooding user per dialect (they would share one read allowance).
        let (u000, a000) = app.login("flood000").await;
        let answers = burst(20, |_| {
            c.post(url("/v2/user/points.json"))
                .header("Authorization", &a000)
                .json(&json!({"app_id": "default", "user_id": u000}))
        })
        .await;
        let (ok, limited) = tally(
            &answers,
            |b| b["status"] == false && b["code"] == 429 && b["data"] == json!([]),
            "000",
        );
        assert!(
            (5..=7).contains(&ok) && limited >= 13,
            "{backend:?}: 000 {ok}/{limited}"
        );

        let (_, a001) = app.login("flood001").await;
        let answers = burst(20, |_| {
            c.post(url("/center/api/getUserPoints"))
                .header("Authorization", &a001)
                .json(&json!({}))
        })
        .await;
        let (ok, _) = tally(
            &answers,
            |b| b["code"] == 42900 && b["result"].is_null(),
            "001",
        );
        assert!((5..=7).contains(&ok), "{backend:?}: 001 {ok}");

        let (u003, a003) = app.login("flood003").await;
        let answers = burst(20, |_| {
            c.post(url("/api/query_balance/"))
                .header("Authorization", &a003)
                .json(&json!({"openid": u003}))
        })
        .await;
        let (ok, _) = tally(&answers, |b| b["code"] == -429, "003");
        assert!((5..=7).contains(&ok), "{backend:?}: 003 {ok}");

        let answers = burst(20, |_| {
            gateway(c.get(url(OPEN_POINTS)), "@flood:example.com")
        })
        .await;
        let (ok, _) = tally(&answers, |b| b["error"] == "RATE_LIMITED", "002");
        assert!((5..=7).contains(&ok), "{backend:?}: 002 {ok}");

        // Another user at a normal pace, meanwhile: never refused.
        let (bob, bob_auth) = app.login("calm").await;
        for _ in 0..8 {
            let (status, _, body) = call(
                c.post(url("/v2/user/points.json"))
                    .header("Authorization", &bob_auth)
                    .json(&json!({"app_id": "default", "user_id": bob})),
            )
            .await;
            assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        // Writes: the flooder's balance is exactly what was acknowledged.
        let consumer = "@grants:example.com";
        let answers = burst(30, |i| {
            gateway(c.post(url(OPEN_POINTS)), consumer)
                .json(&json!({"transactionId": format!("g-{i}"), "userId": consumer, "point": 1}))
        })
        .await;
        let (granted, limited) = tally(&answers, |b| b["error"] == "RATE_LIMITED", "002 write");
        assert!(
            granted >= 5 && limited >= 20,
            "{backend:?}: {granted}/{limited}"
        );
        let (_, _, balance) = call(gateway(c.get(url(OPEN_POINTS)), consumer)).await;
        assert_eq!(balance["balance"], granted as i64, "{backend:?}: {balance}");

        // Grabs: a sign-in flood signs in once, and the books balance.
        let (signer, signer_auth) = app.login("signer").await;
        let answers = burst(30, |_| {
            c.post(url("/v2/sign/do.json"))
                .header("Authorization", &signer_auth)
                .json(&json!({"app_id": "default", "user_id": signer}))
        })
        .await;
        let signed = answers
            .iter()
            .filter(|(s, _, b)| *s == 200 && b["status"] == true)
            .count();
        let limited = answers.iter().filter(|(s, _, _)| *s == 429).count();
        assert_eq!(signed, 1, "{backend:?}: {answers:?}");
        assert!(limited >= 20, "{backend:?}: {limited}");
        let facts = ledger_facts(&app.database_url, &signer).await;
        facts.assert_conserved();
        assert_eq!(facts.entries, 1, "{backend:?}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn client_addresses_come_from_the_socket_unless_a_trusted_proxy_forwards_them() {
    for backend in backends() {
        let login = |app: &TestApp, code: String, forwarded: &str| {
            call(
                app.client
                    .post(app.url("/v2/user/login.json"))
                    .header("X-Forwarded-For", forwarded)
                    .json(&json!({"app_id": "default", "auth_code": code})),
            )
        };
        // Not behind a trusted proxy: the header is the client's own words, every login counts
        // against 127.0.0.1.
        let app = spawn_app_with(backend, |s| s.rate_limits = limits("login:ip=3/m")).await;
        for i in 0..3 {
            let (status, _, body) =
                login(&app, format!("direct{i}"), &format!("198.51.100.{i}")).await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, retry, body) = login(&app, "direct9".into(), "198.51.100.9").await;
        assert_eq!(
            (status, body["code"].clone()),
            (429, json!(429)),
            "{backend:?}: {body}"
        );
        assert!(retry.is_some_and(|s| s >= 1));
        app.handle.stop(true).await;

        // Behind one: the forwarded client counts.
        let app = spawn_app_with(backend, |s| {
            s.rate_limits = limits("login:ip=3/m");
            s.trusted_proxies =
                points_engine::limits::TrustedProxies::parse("127.0.0.1").expect("proxies");
        })
        .await;
        for i in 0..3 {
            let (status, _, _) = login(&app, format!("a{i}"), "198.51.100.1").await;
            assert_eq!(status, 200);
        }
        let (status, _, _) = login(&app, "a9".into(), "6.6.6.6, 198.51.100.1").await;
        assert_eq!(status, 429, "{backend:?}: the nearest untrusted hop counts");
        let (status, _, body) = login(&app, "b0".into(), "198.51.100.2").await;
        assert_eq!(
            status, 200,
            "{backend:?}: another client is not limited: {body}"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn two_nodes_share_limits_through_redis_and_keep_their_own_when_it_is_gone() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let Some(mut redis) = OwnRedis::start().await else {
        return;
    };
    let (url, _) = common::fresh_database(Backend::Postgres).await;
    let node = |id: &str| {
        let mut s = test_settings(&url);
        s.redis_url = Some(redis.url());
        s.node_id = Some(id.into());
        s.rate_limits = limits("read:user=6/m");
        s
    };
    let a = spawn_on(node("a")).await;
    let b = spawn_on(node("b")).await;
    let (user, auth) = a.login("shared").await;
    let read = |app: &TestApp| {
        call(
            app.client
                .post(app.url("/v2/user/points.json"))
                .header("Authorization", &auth)
                .json(&json!({"app_id": "default", "user_id": user})),
        )
    };
    let mut ok = 0;
    for i in 0..12 {
        let (status, _, _) = read(if i % 2 == 0 { &a } else { &b }).await;
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 6, "one allowance across both nodes");

    // Redis gone: each node keeps its own counters, so neither no limit nor nobody served.
    redis.kill();
    let (other, other_auth) = a.login("fallback").await;
    let mut ok = [0, 0];
    for i in 0..24 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (status, _, _) = call(
            app.client
                .post(app.url("/v2/user/points.json"))
                .header("Authorization", &other_auth)
                .json(&json!({"app_id": "default", "user_id": other})),
        )
        .await;
        ok[i % 2] += usize::from(status == 200);
    }
    assert_eq!(ok, [6, 6], "each node's own allowance");
    a.handle.stop(true).await;
    b.handle.stop(true).await;
}

#[actix_web::test]
async fn a_user_holds_at_most_twenty_websockets_and_a_subscribe_flood_closes_only_its_socket() {
    for backend in backends() {
        let app = spawn_app_with(backend, |_| {}).await;
        let (_, bearer) = app.login("sockets").await;
        let token = bearer.trim_start_matches("Bearer ").to_string();
        let ws_url = format!(
            "{}/ws?token={token}",
            app.address.replacen("http://", "ws://", 1)
        );
        let attempts =
            join_all((0..40).map(|_| tokio_tungstenite::connect_async(ws_url.clone()))).await;
        let mut live = Vec::new();
        let mut refused = 0;
        for attempt in attempts {
            match attempt {
                Ok((ws, _)) => live.push(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                    assert_eq!(res.status().as_u16(), 429);
                    refused += 1;
                }
                Err(e) => panic!("{backend:?}: {e}"),
            }
        }
        assert_eq!((live.len(), refused), (20, 20), "{backend:?}");
        // Closing one gives its place back.
        let mut first = live.pop().expect("a socket");
        first.close(None).await.expect("close");
        drop(first);
        let mut reopened = None;
        for _ in 0..50 {
            if let Ok((ws, _)) = tokio_tungstenite::connect_async(ws_url.clone()).await {
                reopened = Some(ws);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reopened.is_some(), "{backend:?}: a place was given back");
        drop(live);
        drop(reopened);

        // An idle subscriber of the points board, and a flooder on the same topic.
        let (_, mut idle) = common::ws::connect(&app, "idle").await;
        common::ws::subscribe(&mut idle, "leaderboard:points").await;
        let (_, mut flooder) = common::ws::connect(&app, "flooder").await;
        let started = Instant::now();
        let mut closed_with = None;
        while started.elapsed() < Duration::from_secs(3) && closed_with.is_none() {
            for op in ["subscribe", "unsubscribe"] {
                let msg = json!({"op": op, "topic": "leaderboard:points"}).to_string();
                if flooder.send(Message::text(msg)).await.is_err() {
                    break;
                }
            }
            while let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(1), flooder.next()).await
            {
                if let Ok(Message::Close(frame)) = msg {
                    closed_with = Some(frame.map(|f| u16::from(f.code)));
                }
            }
        }
        assert_eq!(
            closed_with,
            Some(Some(1008)),
            "{backend:?}: the flooder is closed"
        );
        // The idle subscriber got at most a board or two, not one per subscribe.
        let mut frames = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until.into(), idle.next()).await {
            if let Message::Text(text) = msg {
                frames += usize::from(text.contains("\"seq\""));
            }
        }
        assert!(
            frames <= 5,
            "{backend:?}: {frames} frames pushed to an idle subscriber"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn board_topics_named_with_the_default_app_deliver_and_unknown_methods_answer_405() {
    for backend in backends() {
        let app = spawn_app_with(backend, |_| {}).await;
        let (user, mut ws) = common::ws::connect(&app, "alias").await;
        common::ws::send(
            &mut ws,
            json!({"op": "subscribe", "topic": "leaderboard:points:default"}),
        )
        .await;
        let ack = common::ws::next_reply(&mut ws).await;
        assert_eq!(
            ack,
            json!({"op": "subscribed", "topic": "leaderboard:points"}),
            "{backend:?}"
        );
        app.change(&user, 7, Some("alias-1")).await;
        // Panics if no frame of the board with the user arrives.
        common::ws::read_until(&mut ws, |v| {
            v["topic"] == "leaderboard:points" && v["data"].to_string().contains(&user)
        })
        .await;

        let res = app
            .client
            .delete(app.url("/v2/user/points.json"))
            .send()
            .await
            .expect("delete");
        assert_eq!(res.status().as_u16(), 405, "{backend:?}");
        let allow = res.headers().get("allow").and_then(|v| v.to_str().ok());
        assert_eq!(allow, Some("GET, POST"));
        let res = app
            .client
            .delete(app.url("/no/such/route"))
            .send()
            .await
            .expect("404");
        assert_eq!(res.status().as_u16(), 404);
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_login_beyond_the_session_bound_revokes_the_oldest_sessions() {
    for backend in backends() {
        let app = spawn_app_with(backend, |_| {}).await;
        let mut tokens = Vec::new();
        for _ in 0..25 {
            tokens.push(app.login("many-sessions").await.1);
        }
        let mut valid = Vec::new();
        for token in &tokens {
            let (status, _, body) = call(
                app.client
                    .post(app.url("/center/api/getUserPoints"))
                    .header("Authorization", token)
                    .json(&json!({})),
            )
            .await;
            assert_eq!(status, 200);
            valid.push(body["code"] == 0);
        }
        let expected: Vec<bool> = (0..25).map(|i| i >= 5).collect();
        assert_eq!(valid, expected, "{backend:?}: the newest 20 stay");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_body_that_trickles_in_is_cut_with_408_and_others_are_served() {
    for backend in backends() {
        let app = spawn_app_with(backend, |s| {
            s.bounds.body_read_deadline = Duration::from_secs(2);
        })
        .await;
        assert_eq!(
            points_engine::limits::Bounds::default().body_read_deadline,
            Duration::from_secs(30)
        );
        let address = app.address.trim_start_matches("http://").to_string();
        let mut slow = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        slow.write_all(
            b"POST /v2/user/login.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{",
        )
        .await
        .expect("headers");
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                tokio::select! {
                    read = slow.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            answer.extend_from_slice(&buf[..n]);
                            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                                break;
                            }
                        }
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if slow.write_all(b" ").await.is_err() {
                            break;
                        }
                    }
                }
            }
            String::from_utf8_lossy(&answer).to_string()
        });
        // Others are served meanwhile.
        let (status, _) = app.get("/healthz", &[]).await;
        assert_eq!(status, 200);
        let answer = tokio::time::timeout(Duration::from_secs(45), trickle)
            .await
            .expect("cut within 45 s")
            .expect("reader");
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{backend:?}: {answer}");
        assert!(
            answer.contains("\"code\":408"),
            "{backend:?}: 000 envelope: {answer}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn made_up_methods_fold_into_one_metrics_label() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let size = || async {
        let res = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        res.text().await.expect("text").len()
    };
    let send = |i: usize| {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).expect("method");
        app.client
            .request(method, app.url("/v2/user/points.json"))
            .send()
    };
    for i in 0..10 {
        send(i).await.expect("made-up method");
    }
    // The first scrape adds the series of `/metrics` itself.
    size().await;
    let before = size().await;
    for i in 10..400 {
        let res = send(i).await.expect("made-up method");
        assert!(res.status().is_client_error());
    }
    let after = size().await;
    assert!(
        after < before + 200,
        "/metrics grew from {before} to {after} bytes"
    );
    app.handle.stop(true).await;
}

/// A TCP relay to Postgres that can be cut (every connection dropped, new ones refused) and
/// mended: the database as the server sees it goes away and comes back.
struct Relay {
    port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (Arc::clone(&open), Arc::clone(&conns));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().expect("conns").push(task.abort_handle());
            }
        });
        Relay { port, open, conns }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.conns.lock().expect("conns").drain(..) {
            task.abort();
        }
    }

    fn mend(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[actix_web::test]
async fn writes_and_readiness_fail_fast_while_the_database_is_gone_and_recover() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let (direct, _) = common::fresh_database(Backend::Postgres).await;
    let mut via = url::Url::parse(&direct).expect("url");
    let target = format!(
        "{}:{}",
        via.host_str().expect("host"),
        via.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    via.set_host(Some("127.0.0.1")).expect("host");
    via.set_port(Some(relay.port)).expect("port");
    let app = spawn_on(test_settings(via.as_str())).await;
    let (user, _) = app.login("outage").await;
    assert_eq!(app.change(&user, 5, Some("before")).await["status"], true);

    relay.cut();
    let started = Instant::now();
    let (status, _) = app.get("/readyz", &[]).await;
    let ready_took = started.elapsed();
    assert_eq!(status, 503);
    assert!(
        ready_took < Duration::from_millis(1_200),
        "/readyz took {ready_took:?}"
    );
    let started = Instant::now();
    let body = app.change(&user, 5, Some("during")).await;
    let write_took = started.elapsed();
    assert_eq!(body["status"], false, "{body}");
    assert_eq!(body["code"], 503, "{body}");
    assert!(
        write_took < Duration::from_millis(2_500),
        "a write took {write_took:?}"
    );

    relay.mend();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = app.change(&user, 5, Some("after")).await;
        if body["status"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let facts = ledger_facts(&direct, &user).await;
    facts.assert_conserved();
    assert_eq!(facts.balance, 10, "the refused write left nothing");
    app.handle.stop(true).await;
}
