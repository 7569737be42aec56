//! Operational behaviour: health and readiness, Redis as an optional helper, Prometheus metrics,
//! unknown routes, secrets kept out of the settings dump, and graceful shutdown that keeps every
//! acknowledged change.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{backends, ledger_facts, spawn_app, spawn_app_with, Backend, ADMIN_KEY};
use points_engine::config::Settings;
use serde_json::{json, Value};

/// Marks `paths` immutable (`chattr +i`, which holds even for root) until dropped.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(paths: Vec<std::path::PathBuf>) -> Option<Self> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Immutable(paths))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
    }
}

async fn wait_for_readyz(app: &common::TestApp, status: u16, cause: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, body) = app.get("/readyz", &[]).await;
        if got == status && body.to_string().contains(cause) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status} naming {cause:?}: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_database_that_takes_no_writes_makes_readyz_answer_503_with_the_cause() {
    for backend in backends() {
        match backend {
            Backend::Sqlite => {
                // A data folder made read-only after a clean stop: the node starts, reads work,
                // and readiness names the cause instead of every write answering "busy".
                let (url, dir) = common::fresh_database(backend).await;
                let dir = dir.expect("temp dir");
                let app = common::spawn_on(common::test_settings(&url)).await;
                app.handle.stop(true).await;
                let mut paths = vec![dir.path().to_path_buf()];
                for entry in std::fs::read_dir(dir.path()).expect("data folder") {
                    let path = entry.expect("entry").path();
                    // The node's lock file stays writable: this is about the database.
                    if path.extension().is_none_or(|e| e != "lock") {
                        paths.push(path);
                    }
                }
                let Some(_guard) = Immutable::set(paths) else {
                    common::skipped(
                        "chattr +i is not permitted here: the read-only SQLite case is skipped",
                    );
                    continue;
                };
                let settings = common::test_settings(&url);
                let app = common::build_when_released(settings).await;
                let address = format!("http://127.0.0.1:{}", app.port());
                let handle = app.handle();
                actix_web::rt::spawn(app.run_until_stopped());
                let app = common::TestApp::at(address, url.clone(), handle);
                let body = wait_for_readyz(&app, 503, "readonly").await;
                assert_eq!(body["status"], "unavailable", "{body}");
                let (status, _) = app.get("/healthz", &[]).await;
                assert_eq!(status, 200, "alive, only not ready");
                app.handle.stop(true).await;
            }
            Backend::Postgres => {
                // The database turned read-only under a running node (a failover to a
                // standby, an operator's switch): readiness drops, then comes back.
                let app = spawn_app(backend).await;
                let (status, body) = app.get("/readyz", &[]).await;
                assert_eq!(status, 200, "{body}");
                let name = url::Url::parse(&app.database_url)
                    .expect("url")
                    .path()
                    .trim_start_matches('/')
                    .to_string();
                let admin = sqlx::AnyPool::connect(
                    &std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL"),
                )
                .await
                .expect("admin connection");
                let switch = |on: bool| {
                    let admin = admin.clone();
                    let name = name.clone();
                    async move {
                        sqlx::query(&format!(
                            "ALTER DATABASE {name} SET default_transaction_read_only = {on}"
                        ))
                        .execute(&admin)
                        .await
                        .expect("alter database");
                        // Connections made before keep their setting: end them.
                        sqlx::query(&format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                        ))
                        .execute(&admin)
                        .await
                        .expect("terminate connections");
                    }
                };
                switch(true).await;
                let body = wait_for_readyz(&app, 503, "read-only transaction").await;
                assert_eq!(body["status"], "unavailable", "{body}");
                switch(false).await;
                wait_for_readyz(&app, 200, "ready").await;
                app.handle.stop(true).await;
                admin.close().await;
            }
        }
    }
}

#[actix_web::test]
async fn healthz_and_readyz_answer_200() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, body) = app.get("/healthz", &[]).await;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_eq!(body["status"], "ok", "{body}");
        let (status, body) = app.get("/readyz", &[]).await;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_eq!(body["status"], "ready", "{body}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn readyz_pings_a_configured_redis() {
    let Some(redis_url) = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        common::skipped("TEST_REDIS_URL is not set: the Redis readiness test is skipped");
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, move |s| s.redis_url = Some(redis_url)).await;
    let (status, body) = app.get("/readyz", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["redis"], "ok", "{body}");
    app.handle.stop(true).await;
}

/// A Redis that is down: nothing listening, or a listener that accepts and never answers.
#[derive(Debug, Clone, Copy)]
enum DeadRedis {
    Closed,
    Silent,
}

/// Starts a loopback listener that accepts connections, holds them open and never answers.
async fn silent_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind silent listener");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[actix_web::test]
async fn without_redis_the_server_starts_and_points_still_work() {
    let mut cases: Vec<(Backend, DeadRedis)> = backends()
        .into_iter()
        .map(|b| (b, DeadRedis::Closed))
        .collect();
    cases.push((Backend::Sqlite, DeadRedis::Silent));
    for (backend, dead) in cases {
        let port = match dead {
            DeadRedis::Closed => common::free_port(),
            DeadRedis::Silent => silent_listener().await,
        };
        let started = Instant::now();
        let app = spawn_app_with(backend, move |s| {
            s.redis_url = Some(format!("redis://127.0.0.1:{port}"));
        })
        .await;
        let start_up = started.elapsed();
        assert!(
            start_up < Duration::from_secs(10),
            "{backend:?} {dead:?}: start-up took {start_up:?} with Redis down"
        );

        let (status, body) = app.get("/healthz", &[]).await;
        assert_eq!(status, 200, "{body}");
        // Readiness answers promptly. Redis is optional: the database decides, and a Redis
        // problem may only ever be reported as such.
        let asked = Instant::now();
        let (status, ready) = app.get("/readyz", &[]).await;
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{backend:?} {dead:?}: readyz took {:?}",
            asked.elapsed()
        );
        // Redis is optional: the node stays ready and says Redis is down.
        assert_eq!(status, 200, "{backend:?} {dead:?}: {ready}");
        assert_eq!(ready["status"], "ready", "{ready}");
        assert!(
            ready["redis"]
                .as_str()
                .is_some_and(|r| r.starts_with("down")),
            "{backend:?} {dead:?}: {ready}"
        );

        // Grants, deductions and reads work; the ledger in the database is the truth.
        let (user, bearer) = app.login("no-redis").await;
        for (i, amount) in [40, 25, -15].into_iter().enumerate() {
            let body = app.change(&user, amount, Some(&format!("nr-{i}"))).await;
            assert_eq!(body["status"], true, "{backend:?} {dead:?}: {body}");
        }
        assert_eq!(app.balance(&user).await, 50, "{backend:?} {dead:?}");
        let (_, mine) = app
            .post(
                "/v2/user/points.json",
                &[("Authorization", bearer.as_str())],
                &json!({"app_id": "default", "user_id": user}),
            )
            .await;
        assert_eq!(mine["data"]["points"], 50, "{backend:?} {dead:?}: {mine}");
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!(
            (facts.balance, facts.entries),
            (50, 3),
            "{backend:?} {dead:?}"
        );
        eprintln!(
            "{backend:?} {dead:?}: started in {start_up:?}, readyz {status} in {:?}",
            asked.elapsed()
        );
        app.handle.stop(true).await;
    }
}

/// The value of an unlabelled sample line `name value`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (n, v) = line.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_and_show_the_ledger() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, _) = app.login("metrics").await;
        let _ = app.login("metrics-2").await;
        assert_eq!(app.change(&user, 5, Some("m-1")).await["status"], true);
        let (status, _) = app.get("/no/such/route-xyz123", &[]).await;
        assert_eq!(status, 404);

        let res = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(res.status().as_u16(), 200);
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = res.text().await.expect("metrics body");

        let login_line = text
            .lines()
            .find(|l| {
                l.starts_with("points_http_requests_total{")
                    && l.contains(r#"route="/v2/user/login.json""#)
            })
            .unwrap_or_else(|| panic!("{backend:?}: no login requests counted:\n{text}"));
        assert!(login_line.contains(r#"method="POST""#), "{login_line}");
        assert!(login_line.contains(r#"status="200""#), "{login_line}");
        assert!(
            login_line.ends_with(" 2"),
            "two logins counted: {login_line}"
        );
        assert!(
            text.contains(r#"route="/core/point/update.json""#),
            "{backend:?}:\n{text}"
        );
        assert!(text.contains("points_http_request_duration_seconds_bucket{"));
        // Raw paths never become labels: unknown routes share one label.
        assert!(
            !text.contains("xyz123"),
            "raw path used as a label:\n{text}"
        );

        for name in [
            "points_ledger_batch_size",
            "points_ledger_commit_seconds",
            "points_ledger_queue_depth",
        ] {
            assert!(text.contains(name), "{backend:?}: {name} missing:\n{text}");
        }
        let batches = sample(&text, "points_ledger_batch_size_count").unwrap_or_default();
        assert!(
            batches >= 1.0,
            "{backend:?}: no ledger batch observed:\n{text}"
        );
        let commits = sample(&text, "points_ledger_commit_seconds_count").unwrap_or_default();
        assert!(commits >= 1.0, "{backend:?}: no commit timed:\n{text}");
        assert_eq!(
            sample(&text, "points_ledger_queue_depth"),
            Some(0.0),
            "idle queue"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn unknown_routes_answer_404_json() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/nope", "/v2/user/nope.json", "/api/nope/", "/admin/nope"] {
        let res = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(res.status().as_u16(), 404, "{path}");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(content_type.contains("json"), "{path}: {content_type}");
        let body: Value = res.json().await.expect("JSON body");
        assert_eq!(body["error"], "NOT_FOUND", "{path}: {body}");
    }
    let (status, body) = app.post("/no/such/thing", &[], &json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "NOT_FOUND", "{body}");
    app.handle.stop(true).await;
}

#[test]
fn the_settings_dump_never_shows_a_secret() {
    let cases = [
        // Password in the user part of the URL.
        "postgres://points:db-SECRET-pw@db.example:5432/points",
        // Password as a connection parameter.
        "postgres://points@db.example:5432/points?password=db-SECRET-pw&sslmode=require",
        // A password with a character that should have been escaped: the URL does not parse.
        "postgres://points:db-SECRET#pw@db.example:5432/points",
    ];
    for database_url in cases {
        let settings = Settings {
            database_url: database_url.into(),
            redis_url: Some("redis://:redis-SECRET-pw@127.0.0.1:6379/0".into()),
            admin_key: Some("admin-SECRET-key".into()),
            gateway_secret: Some("gateway-SECRET-value".into()),
            wechat_appid: Some("wx-public-appid".into()),
            wechat_secret: Some("wx-SECRET-value".into()),
            ..Settings::default()
        };
        for shown in [format!("{settings:?}"), format!("{settings:#?}")] {
            assert!(!shown.contains("SECRET"), "{database_url}: {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(
                shown.contains("db.example"),
                "the host stays visible: {shown}"
            );
            assert!(shown.contains("wx-public-appid"), "{shown}");
        }
    }

    // The same through the environment variables.
    let vars = std::collections::HashMap::from(
        [
            (
                "DATABASE_URL",
                "postgres://points:env-SECRET@localhost/points",
            ),
            ("REDIS_URL", "redis://default:env-SECRET@localhost:6379"),
            ("POINTS_ADMIN_KEY", "env-SECRET-admin"),
            ("POINTS_GATEWAY_SECRET", "env-SECRET-gateway"),
            ("POINTS_WECHAT_SECRET", "env-SECRET-wx"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let settings = Settings::from_vars(&vars).expect("settings");
    let shown = format!("{settings:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

/// Sends one admin grant of 1 point with idempotency key `key`; `Some(true)` when answered
/// 200 with `status:true`, `Some(false)` for any other answer, `None` when no answer came.
async fn grant(client: &reqwest::Client, address: &str, user: &str, key: &str) -> Option<bool> {
    let res = client
        .post(format!("{address}/core/point/update.json"))
        .header("X-Admin-Key", ADMIN_KEY)
        .header("Idempotency-Key", key)
        .json(
            &json!({"uuid": user, "amount": 1, "flag": "grant", "task_id": "shutdown",
                      "expired_time": "2099-01-01 00:00:00"}),
        )
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.ok()?;
    Some(status == 200 && body["status"] == true)
}

#[actix_web::test]
async fn graceful_shutdown_keeps_every_acknowledged_grant() {
    for backend in backends() {
        // Arrange: a little linger, so changes wait in the ledger queue when the stop comes.
        let app = spawn_app_with(backend, |s| {
            s.ledger.linger = Duration::from_millis(10);
        })
        .await;
        let (user, _) = app.login("shutdown").await;
        let client = common::client();
        let acked = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));

        // Act: 200 concurrent grants; stop the server while they are in flight.
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (client, address, user) = (client.clone(), app.address.clone(), user.clone());
                let (acked, finished) = (Arc::clone(&acked), Arc::clone(&finished));
                tokio::spawn(async move {
                    let key = format!("s-{i}");
                    let answer = grant(&client, &address, &user, &key).await;
                    if answer == Some(true) {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    (key, answer)
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let finished_at_stop = finished.load(Ordering::SeqCst);
        app.handle.stop(true).await;
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("grant task"));
        }

        // Assert: every acknowledged grant is in the database, no refused one is, and the books
        // add up.
        let acked: HashSet<String> = answers
            .iter()
            .filter(|(_, a)| *a == Some(true))
            .map(|(k, _)| k.clone())
            .collect();
        let refused: HashSet<String> = answers
            .iter()
            .filter(|(_, a)| *a == Some(false))
            .map(|(k, _)| k.clone())
            .collect();
        let no_answer = answers.iter().filter(|(_, a)| a.is_none()).count();
        eprintln!(
            "{backend:?}: {} acknowledged, {} refused, {no_answer} without answer; {finished_at_stop} finished before the stop",
            acked.len(),
            refused.len()
        );
        assert!(!acked.is_empty(), "{backend:?}: nothing acknowledged");
        assert!(
            finished_at_stop < 200,
            "{backend:?}: every grant finished before the stop; nothing was in flight"
        );

        let db = points_engine::db::Db::connect(&app.database_url, 2)
            .await
            .expect("db");
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT idem_key FROM ledger_entries WHERE idem_key LIKE 'core:s-%'",
        )
        .fetch_all(&db.read)
        .await
        .expect("keys");
        db.write.close().await;
        db.read.close().await;
        let stored: HashSet<String> = stored
            .into_iter()
            .map(|k| k.trim_start_matches("core:").to_string())
            .collect();
        let lost: Vec<&String> = acked.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "{backend:?}: {} acknowledged grants lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        let refused_but_stored: Vec<&String> = refused.intersection(&stored).collect();
        assert!(
            refused_but_stored.is_empty(),
            "{backend:?}: grants answered as failed were stored: {refused_but_stored:?}"
        );
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!(facts.balance, stored.len() as i64, "{backend:?}");

        // The stopped server takes no new requests.
        let after = client.get(app.url("/healthz")).send().await;
        assert!(
            after.is_err(),
            "{backend:?}: server still answers after stop"
        );
    }
}

#[actix_web::test]
async fn every_answer_carries_a_request_id_and_a_callers_own_is_kept() {
    let app = spawn_app(Backend::Sqlite).await;
    let id_of = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "edge-7f3a-0001")
        .send()
        .await
        .expect("healthz");
    assert_eq!(id_of(&given).as_deref(), Some("edge-7f3a-0001"));
    // Without one, or with one that is not a sensible id, the server makes its own.
    let mut made = HashSet::new();
    for header in [None, Some("x".repeat(65)), Some("two words".to_string())] {
        let mut req = app.client.get(app.url("/no/such/route"));
        if let Some(h) = &header {
            req = req.header("X-Request-Id", h.as_str());
        }
        let res = req.send().await.expect("request");
        let id = id_of(&res).expect("an id on every answer, errors too");
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        made.insert(id);
    }
    assert_eq!(made.len(), 3, "each request its own id");
    app.handle.stop(true).await;
}

#[actix_web::test]
async fn metrics_show_the_process_open_websockets_and_the_outbox_backlog() {
    let app = spawn_app(Backend::Sqlite).await;
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let text = scrape().await;
    assert!(
        gauge(&text, "points_process_resident_memory_bytes").is_some_and(|b| b > 0.0),
        "{text}"
    );
    assert!(
        gauge(&text, "points_fulfilment_pending_orders").is_some(),
        "{text}"
    );
    assert_eq!(gauge(&text, "points_ws_connections"), Some(0.0));

    // An order the outbox has not delivered (no webhook here): the backlog counts it.
    let (_, saved) = app
        .post(
            "/center/admin/savePrize",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"title": "券", "faceValue": 0, "total": 5, "type": "virtualGoods", "prizeId": "coupon"}),
        )
        .await;
    assert_eq!(saved["code"], 0, "{saved}");
    let (user, _) = app.login("backlog").await;
    let (_, sent) = app
        .post(
            "/center/custom/send_prize",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"prizeId": "coupon", "openId": user, "faceValue": 0}),
        )
        .await;
    assert_eq!(sent["code"], 0, "{sent}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while gauge(&scrape().await, "points_fulfilment_pending_orders") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the pending order is not counted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (_, mut ws) = common::ws::connect(&app, "gauge").await;
    assert_eq!(gauge(&scrape().await, "points_ws_connections"), Some(1.0));
    ws.close(None).await.expect("close");
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(&scrape().await, "points_ws_connections") != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the closed socket is still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.handle.stop(true).await;
}

#[actix_web::test]
async fn cors_is_answered_for_a_configured_origin_only() {
    const H5: &str = "https://h5.example.com";
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.cors_origins = vec![H5.into(), "http://localhost:5173".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/user/info"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    let allow = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let res = preflight(H5).await.expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        allow(&res, "access-control-allow-origin").as_deref(),
        Some(H5)
    );
    let headers = allow(&res, "access-control-allow-headers").unwrap_or_default();
    assert!(
        headers.contains("authorization") && headers.contains("idempotency-key"),
        "{headers}"
    );
    assert!(allow(&res, "access-control-allow-methods")
        .unwrap_or_default()
        .contains("post"));
    // Another origin: no CORS headers, so its browser withholds the answer.
    let res = preflight("https://evil.example.com")
        .await
        .expect("preflight");
    assert_eq!(allow(&res, "access-control-allow-origin"), None);
    // An actual request from the page: allowed, with the request id readable.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", H5)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        allow(&res, "access-control-allow-origin").as_deref(),
        Some(H5)
    );
    assert!(allow(&res, "access-control-expose-headers")
        .unwrap_or_default()
        .contains("x-request-id"));
    // A request from another origin is still served (clients that are not browsers), bare.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(allow(&res, "access-control-allow-origin"), None);
    app.handle.stop(true).await;

    // Not configured: no origin gets CORS.
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", H5)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(allow(&res, "access-control-allow-origin"), None);
    app.handle.stop(true).await;
}
