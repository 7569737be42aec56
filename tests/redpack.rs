//! Red packets end to end: card and pool storms, refusals, fulfilment orders delivered to a
//! webhook, and a server killed in the middle of a grab storm.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{backends, spawn_app, spawn_app_with, spawn_process, ADMIN_KEY};
use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};

/// Requests in flight at once in the storms.
const STORM_CONCURRENCY: usize = 200;

/// A server under test: a process or an in-process app.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    address: String,
}

impl Target {
    async fn post(&self, path: &str, auth: Option<&str>, body: &Value) -> Option<Value> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body);
        if let Some(auth) = auth {
            if auth == ADMIN_KEY {
                req = req.header("X-Admin-Key", ADMIN_KEY);
            } else {
                req = req.header("Authorization", auth);
            }
        }
        req.send().await.ok()?.json().await.ok()
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let res = self
            .post(path, Some(ADMIN_KEY), &body)
            .await
            .expect("admin");
        assert_eq!(res["status"], true, "{path} {body}: {res}");
        res
    }

    /// Logs `n` dev users in (`<prefix>-<i>`) and gives each `points` points.
    async fn users(&self, prefix: &str, n: usize, points: i64) -> Vec<(String, String)> {
        stream::iter(0..n)
            .map(|i| async move {
                let res = self
                    .post(
                        "/v2/user/login.json",
                        None,
                        &json!({"app_id": "default", "auth_code": format!("{prefix}-{i}")}),
                    )
                    .await
                    .expect("login");
                let uid = res["data"]["user_id"].as_str().expect("user_id").to_string();
                let token = format!("Bearer {}", res["data"]["token"].as_str().expect("token"));
                if points > 0 {
                    let res = self
                        .post(
                            "/core/point/update.json",
                            Some(ADMIN_KEY),
                            &json!({"uuid": uid, "amount": points, "expired_time": "2099-01-01 00:00:00"}),
                        )
                        .await
                        .expect("grant");
                    assert_eq!(res["status"], true, "{res}");
                }
                (uid, token)
            })
            .buffer_unordered(32)
            .collect()
            .await
    }

    /// A session open all day with one card; returns (batch id, card id).
    async fn card(
        &self,
        reward_type: &str,
        sum: i64,
        unit: i64,
        ticket: i64,
        window: (&str, &str),
    ) -> (i64, i64) {
        let batch = self
            .admin(
                "/admin/redpack/sessions",
                json!({"app_id": "default", "name": format!("s-{reward_type}-{sum}-{unit}-{}-{}", window.0, window.1),
                       "start_time": "00:00:00", "end_time": "24:00:00"}),
            )
            .await["data"]["batch_id"]
            .as_i64()
            .expect("batch_id");
        let card = self
            .admin(
                "/admin/redpack/cards",
                json!({"app_id": "default", "batch_id": batch, "reward_type": reward_type, "sum": sum,
                       "unit": unit, "ticket": ticket, "start_time": window.0, "end_time": window.1}),
            )
            .await["data"]["card_id"]
            .as_i64()
            .expect("card_id");
        (batch, card)
    }

    async fn rob(&self, user: &(String, String), batch: i64, card: i64) -> Option<Value> {
        self.post(
            "/v2/redpack/rob.json",
            Some(&user.1),
            &json!({"app_id": "default", "user_id": user.0, "card_id": card, "batch_id": batch}),
        )
        .await
    }

    async fn balance(&self, uid: &str) -> i64 {
        self.post(
            "/core/user/balance.json",
            Some(ADMIN_KEY),
            &json!({"uuid": uid}),
        )
        .await
        .expect("balance")["data"]["active_balance"]
            .as_i64()
            .expect("active_balance")
    }
}

fn target_of(app: &common::TestApp) -> Target {
    Target {
        client: app.client.clone(),
        address: app.address.clone(),
    }
}

async fn db(url: &str) -> points_engine::db::Db {
    points_engine::db::Db::connect(url, 2).await.expect("db")
}

/// Every user's balance equals the sum of their entries, and none is negative.
async fn assert_books_balance(url: &str) {
    let db = db(url).await;
    let off: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM balances b WHERE b.balance < 0 OR b.balance <> \
         (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.user_id = b.user_id)",
    )
    .fetch_one(&db.read)
    .await
    .expect("books");
    assert_eq!(
        off, 0,
        "users whose balance is not the sum of their entries"
    );
}

async fn count(url: &str, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db(url).await.read)
        .await
        .expect("count")
}

#[actix_web::test]
async fn a_card_storm_grants_exactly_its_stock_once_per_user() {
    for backend in backends() {
        // Arrange: stock 500, ticket 2, unit 5; 1,000 users with 10 points each.
        let app = spawn_app(backend).await;
        let t = target_of(&app);
        let (batch, card) = t.card("积分", 500, 5, 2, ("00:00:00", "24:00:00")).await;
        let users = Arc::new(t.users("storm", 1000, 10).await);

        // Act: every user grabs twice, all at once: 2,000 grabs.
        let results: Vec<(usize, Value)> = stream::iter((0..2000).map(|i| i % 1000))
            .map(|u| {
                let t = t.clone();
                let users = Arc::clone(&users);
                async move { (u, t.rob(&users[u], batch, card).await.expect("answer")) }
            })
            .buffer_unordered(STORM_CONCURRENCY)
            .collect()
            .await;

        // Assert: exactly 500 wins, at most one per user, refusals clear.
        let mut winners = HashSet::new();
        for (u, body) in &results {
            if body["status"] == true {
                assert!(winners.insert(*u), "{backend:?}: user {u} won twice");
            } else {
                assert_eq!(body["code"], 410, "{backend:?}: {body}");
                let msg = body["msg"].as_str().unwrap_or_default();
                assert!(msg == "已被抢光了" || msg == "您已参与过了", "{body}");
            }
        }
        assert_eq!(winners.len(), 500, "{backend:?}");
        let url = &app.database_url;
        assert_eq!(
            count(
                url,
                "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack'"
            )
            .await,
            500
        );
        assert_eq!(
            count(
                url,
                "SELECT COUNT(DISTINCT user_id) FROM ledger_entries WHERE kind = 'redpack'"
            )
            .await,
            500
        );
        assert_eq!(
            count(
                url,
                "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack_ticket'"
            )
            .await,
            500
        );
        for (u, user) in users.iter().enumerate().take(50) {
            let expected = if winners.contains(&u) { 10 - 2 + 5 } else { 10 };
            assert_eq!(t.balance(&user.0).await, expected, "{backend:?}: user {u}");
        }
        assert_books_balance(url).await;
        // `show` says the card is empty today.
        let show = t
            .post("/v2/redpack/show.json", None, &json!({"app_id": "default"}))
            .await
            .expect("show");
        let cards = show["data"]
            .as_object()
            .expect("sessions")
            .values()
            .next()
            .expect("session")["cards"]
            .clone();
        assert_eq!(cards[0]["sum"], 0, "{show}");
    }
}

#[actix_web::test]
async fn a_pool_storm_hands_out_every_packet_once_and_the_sum_is_exact() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let t = target_of(&app);
        let pool = t
            .admin(
                "/admin/redpack/pools",
                json!({"app_id": "default", "title": "new year", "total_points": 5000, "count": 500, "split": "random"}),
            )
            .await["data"]["id"]
            .as_i64()
            .expect("pool id");
        let users = Arc::new(t.users("pool", 1000, 0).await);

        let results: Vec<(usize, Value)> = stream::iter(0..1000)
            .map(|u| {
                let t = t.clone();
                let users = Arc::clone(&users);
                async move {
                    let body = t
                        .post(
                            "/v2/redpack/pool/rob.json",
                            Some(&users[u].1),
                            &json!({"app_id": "default", "user_id": users[u].0, "id": pool}),
                        )
                        .await
                        .expect("answer");
                    (u, body)
                }
            })
            .buffer_unordered(STORM_CONCURRENCY)
            .collect()
            .await;

        let mut total = 0;
        let mut winners = 0;
        for (u, body) in &results {
            if body["status"] == true {
                let amount = body["data"]["amount"].as_i64().expect("amount");
                assert!(amount >= 1, "{body}");
                assert_eq!(t.balance(&users[*u].0).await, amount);
                total += amount;
                winners += 1;
            } else {
                assert_eq!(body["code"], 410, "{backend:?}: {body}");
            }
        }
        assert_eq!(winners, 500, "{backend:?}");
        assert_eq!(total, 5000, "{backend:?}");
        let show = t
            .post(
                "/v2/redpack/pool/show.json",
                Some(&users[0].1),
                &json!({"app_id": "default", "user_id": users[0].0, "id": pool}),
            )
            .await
            .expect("show");
        assert_eq!(show["data"]["remaining_count"], 0, "{show}");
        assert_eq!(show["data"]["remaining_points"], 0, "{show}");
        assert_eq!(show["data"]["grabs"].as_array().map(Vec::len), Some(500));
        // A second grab by a winner is refused.
        let again = results
            .iter()
            .find(|(_, b)| b["status"] == true)
            .expect("a winner")
            .0;
        let body = t
            .post(
                "/v2/redpack/pool/rob.json",
                Some(&users[again].1),
                &json!({"app_id": "default", "user_id": users[again].0, "id": pool}),
            )
            .await
            .expect("again");
        assert_eq!(body["msg"], "您已参与过了", "{body}");
        assert_books_balance(&app.database_url).await;
    }
}

/// What the database holds for one user: (balance, entries).
async fn snapshot(t: &Target, url: &str, uid: &str) -> (i64, i64) {
    let entries = count(
        url,
        &format!(
            "SELECT COUNT(*) FROM ledger_entries e JOIN users u ON u.id = e.user_id WHERE u.platform_uid = '{uid}'"
        ),
    )
    .await;
    (t.balance(uid).await, entries)
}

#[actix_web::test]
async fn wrong_timing_and_bad_input_are_refused_and_change_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let t = target_of(&app);
        let url = app.database_url.clone();
        let users = t.users("timing", 2, 20).await;
        let (alice, bob) = (&users[0], &users[1]);
        let (batch, card) = t.card("积分", 10, 5, 3, ("00:00:00", "24:00:00")).await;
        // A window that already closed today and one that opens at the last second of the day.
        let (closed_batch, closed) = t.card("积分", 10, 5, 3, ("00:00:00", "00:00:01")).await;
        let (later_batch, later) = t.card("积分", 10, 5, 3, ("23:59:59", "24:00:00")).await;

        let before = snapshot(&t, &url, &alice.0).await;
        for (b, c, msg) in [
            (closed_batch, closed, "活动已结束"),
            (later_batch, later, "活动尚未开始"),
        ] {
            let body = t.rob(alice, b, c).await.expect("answer");
            assert_eq!(
                (body["status"].clone(), body["code"].clone()),
                (json!(false), json!(410)),
                "{body}"
            );
            assert_eq!(body["msg"], msg, "{body}");
        }
        assert_eq!(snapshot(&t, &url, &alice.0).await, before, "{backend:?}");

        // Bad input: each refused in the 000 dialect, never 500, nothing changed.
        let cases: Vec<(Option<&str>, Value, i64)> = vec![
            (
                Some(&alice.1),
                json!({"app_id": "default", "user_id": alice.0, "batch_id": batch}),
                400,
            ),
            (
                Some(&alice.1),
                json!({"app_id": "default", "user_id": alice.0, "card_id": "x", "batch_id": batch}),
                400,
            ),
            (
                Some(&alice.1),
                json!({"app_id": "default", "user_id": alice.0, "card_id": card, "batch_id": batch + 100}),
                404,
            ),
            (
                Some(&alice.1),
                json!({"app_id": "default", "user_id": alice.0, "card_id": 999_999, "batch_id": batch}),
                404,
            ),
            (
                Some(&alice.1),
                json!({"app_id": "default", "user_id": bob.0, "card_id": card, "batch_id": batch}),
                403,
            ),
            (
                None,
                json!({"app_id": "default", "user_id": alice.0, "card_id": card, "batch_id": batch}),
                401,
            ),
            (
                Some("Bearer forged"),
                json!({"app_id": "default", "user_id": alice.0, "card_id": card, "batch_id": batch}),
                401,
            ),
        ];
        for (auth, body, code) in cases {
            let res = t
                .post("/v2/redpack/rob.json", auth, &body)
                .await
                .expect("answer");
            assert_eq!(res["code"], code, "{backend:?} {body}: {res}");
            assert_eq!(res["status"], false, "{res}");
        }
        assert_eq!(snapshot(&t, &url, &alice.0).await, before, "{backend:?}");

        // A grab, then the same grab again: refused as already done, charged once.
        assert_eq!(
            t.rob(alice, batch, card).await.expect("grab")["status"],
            true
        );
        let body = t.rob(alice, batch, card).await.expect("again");
        assert_eq!(body["msg"], "您已参与过了", "{body}");
        assert_eq!(t.balance(&alice.0).await, 20 - 3 + 5);

        // A user who cannot pay the ticket: 402, nothing taken, the packet stays.
        let poor = t.users("poor", 1, 2).await.remove(0);
        let body = t.rob(&poor, batch, card).await.expect("poor");
        assert_eq!(body["code"], 402, "{body}");
        assert_eq!(t.balance(&poor.0).await, 2);
        let show = t
            .post("/v2/redpack/show.json", None, &json!({"app_id": "default"}))
            .await
            .expect("show");
        let left: Vec<i64> = show["data"]
            .as_object()
            .expect("sessions")
            .values()
            .flat_map(|s| s["cards"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["card_id"] == card)
            .map(|c| c["sum"].as_i64().expect("sum"))
            .collect();
        assert_eq!(left, vec![9], "{show}");

        // Off shelf: closed.
        t.admin(
            "/admin/redpack/cards/status",
            json!({"id": card, "status": "20"}),
        )
        .await;
        let body = t.rob(bob, batch, card).await.expect("closed");
        assert_eq!(body["msg"], "活动已下架", "{body}");

        // Admin validation.
        for (path, body) in [
            (
                "/admin/redpack/pools",
                json!({"title": "p", "total_points": 5, "count": 6}),
            ),
            (
                "/admin/redpack/pools",
                json!({"title": "p", "total_points": 5, "count": 2, "split": "odd"}),
            ),
            (
                "/admin/redpack/pools",
                json!({"title": "p", "total_points": -5, "count": 2}),
            ),
            (
                "/admin/redpack/sessions",
                json!({"name": "s", "start_time": "09:00:00", "end_time": "08:00:00"}),
            ),
            (
                "/admin/redpack/sessions",
                json!({"name": "s", "start_time": "9:00", "end_time": "10:00:00"}),
            ),
            (
                "/admin/redpack/cards",
                json!({"batch_id": batch, "reward_type": "gold", "sum": 1, "unit": 1, "start_time": "00:00:00", "end_time": "01:00:00"}),
            ),
            (
                "/admin/redpack/cards",
                json!({"batch_id": batch, "reward_type": "积分", "sum": 1, "unit": 0, "start_time": "00:00:00", "end_time": "01:00:00"}),
            ),
        ] {
            let res = t.post(path, Some(ADMIN_KEY), &body).await.expect("answer");
            assert_eq!(res["code"], 400, "{path} {body}: {res}");
        }
        let pools = count(&url, "SELECT COUNT(*) FROM redpack_pools").await;
        assert_eq!(pools, 0);
        assert_books_balance(&url).await;
    }
}

/// A webhook receiver on loopback: answers 503 while `down`, records every order id it
/// acknowledged (how many times) and checks the signature.
#[derive(Clone, Default)]
struct Receiver {
    down: Arc<Mutex<bool>>,
    acked: Arc<Mutex<HashMap<i64, u32>>>,
    bad_signatures: Arc<Mutex<u32>>,
}

/// A Standard Webhooks secret: `whsec_` and the base64 of the key.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn receive(req: HttpRequest, body: web::Bytes, rx: web::Data<Receiver>) -> HttpResponse {
    if *rx.down.lock().expect("lock") {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
    let body = String::from_utf8_lossy(&body).to_string();
    let key = points_engine::fulfilment::signing_key(WEBHOOK_SECRET).expect("key");
    let webhook_id = header("webhook-id");
    let signed = points_engine::fulfilment::signature(&key, &webhook_id, timestamp, &body);
    if !header("webhook-signature")
        .split(' ')
        .any(|s| s == signed.as_str())
        || (timestamp - chrono::Utc::now().timestamp()).abs() > 300
    {
        *rx.bad_signatures.lock().expect("lock") += 1;
        return HttpResponse::Unauthorized().finish();
    }
    let id: i64 = header("X-Points-Order-Id").parse().unwrap_or_default();
    assert_eq!(webhook_id, format!("order_{id}"));
    let parsed: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(parsed["order_id"], id);
    *rx.acked.lock().expect("lock").entry(id).or_default() += 1;
    HttpResponse::Ok().finish()
}

fn start_receiver(rx: Receiver) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data = web::Data::new(rx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(receive))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}/hook")
}

async fn wait_until_delivered(url: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered = count(
            url,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE status = 'delivered'",
        )
        .await;
        if delivered == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {expected} orders delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn external_rewards_become_orders_delivered_once_after_the_webhook_recovers() {
    for backend in backends() {
        let rx = Receiver::default();
        *rx.down.lock().expect("lock") = true;
        let hook = start_receiver(rx.clone());
        let app = spawn_app_with(backend, |s| {
            s.fulfilment_webhook = Some(hook.clone());
            s.fulfilment_secret = Some(WEBHOOK_SECRET.into());
        })
        .await;
        let t = target_of(&app);
        let url = app.database_url.clone();
        let (batch, card) = t.card("集分宝", 15, 8, 1, ("00:00:00", "24:00:00")).await;
        let users = t.users("ext", 20, 5).await;
        let wins = stream::iter(users.iter())
            .map(|u| t.rob(u, batch, card))
            .buffer_unordered(20)
            .filter(|b| {
                futures_util::future::ready(b.as_ref().is_some_and(|b| b["status"] == true))
            })
            .count()
            .await;
        assert_eq!(wins, 15, "{backend:?}");
        // No points were credited for the packets; only the tickets were paid.
        assert_eq!(count(&url, "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE kind = 'redpack'").await, 0);
        assert_eq!(count(&url, "SELECT COUNT(*) FROM fulfilment_orders WHERE reward_type = '集分宝' AND amount = 8").await, 15);
        // The receiver is down: orders wait and are retried.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            count(
                &url,
                "SELECT COUNT(*) FROM fulfilment_orders WHERE attempts > 0"
            )
            .await
                > 0
        );
        assert_eq!(
            count(
                &url,
                "SELECT COUNT(*) FROM fulfilment_orders WHERE status = 'delivered'"
            )
            .await,
            0
        );
        let (_, listed) = app
            .get(
                "/admin/fulfilment/orders?app_id=default&status=pending",
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(listed["count"], 15, "{listed}");
        // Back up, and an operator asks for an immediate retry of every order (one the
        // backoff's own retry delivered first answers 409).
        *rx.down.lock().expect("lock") = false;
        for order in listed["data"].as_array().expect("orders") {
            let res = t
                .post(
                    "/admin/fulfilment/orders/retry",
                    Some(ADMIN_KEY),
                    &json!({"id": order["id"]}),
                )
                .await
                .expect("retry");
            assert!(res["status"] == true || res["code"] == 409, "{res}");
        }
        wait_until_delivered(&url, 15).await;
        let acked = rx.acked.lock().expect("lock").clone();
        assert_eq!(acked.len(), 15, "{backend:?}");
        assert!(
            acked.values().all(|&n| n == 1),
            "an order was delivered twice: {acked:?}"
        );
        assert_eq!(*rx.bad_signatures.lock().expect("lock"), 0);
        // Retrying a delivered order is refused.
        let id = *acked.keys().next().expect("an order");
        let res = t
            .post(
                "/admin/fulfilment/orders/retry",
                Some(ADMIN_KEY),
                &json!({"id": id}),
            )
            .await
            .expect("retry");
        assert_eq!(res["code"], 409, "{res}");
    }
}

#[actix_web::test]
async fn an_order_failing_its_last_attempt_is_dead_lettered_listed_counted_and_revived_by_a_retry()
{
    for backend in backends() {
        let rx = Receiver::default();
        *rx.down.lock().expect("lock") = true;
        let hook = start_receiver(rx.clone());
        let app = spawn_app_with(backend, |s| {
            s.fulfilment_webhook = Some(hook.clone());
            s.fulfilment_secret = Some(WEBHOOK_SECRET.into());
            s.fulfilment_max_attempts = 3;
        })
        .await;
        let t = target_of(&app);
        let url = app.database_url.clone();
        let (batch, card) = t.card("集分宝", 2, 8, 1, ("00:00:00", "24:00:00")).await;
        let users = t.users("dead", 2, 5).await;
        for u in &users {
            let won = t.rob(u, batch, card).await.expect("answer");
            assert_eq!(won["status"], true, "{won}");
        }
        // Three failed attempts (backoff about 0.5 s, then 1 s), then no more.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(
            &url,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE status = 'dead'",
        )
        .await
            < 2
        {
            assert!(Instant::now() < deadline, "{backend:?}: not dead-lettered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            count(
                &url,
                "SELECT COUNT(*) FROM fulfilment_orders WHERE attempts = 3 AND last_error LIKE '%503%'"
            )
            .await,
            2
        );
        // No further attempt once dead, even with the receiver back.
        *rx.down.lock().expect("lock") = false;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(rx.acked.lock().expect("lock").is_empty());
        let (_, listed) = app
            .get(
                "/admin/fulfilment/orders?app_id=default&status=dead",
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(listed["count"], 2, "{listed}");
        assert_eq!(listed["data"][0]["status"], "dead", "{listed}");
        // Counted by the metrics (every 5 s).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = app
                .client
                .get(app.url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            if text.lines().any(|l| l == "points_fulfilment_dead_orders 2") {
                break;
            }
            assert!(Instant::now() < deadline, "dead orders not counted: {text}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // An operator's retry revives each: delivered once, signed.
        for order in listed["data"].as_array().expect("orders") {
            t.admin("/admin/fulfilment/orders/retry", json!({"id": order["id"]}))
                .await;
        }
        wait_until_delivered(&url, 2).await;
        let acked = rx.acked.lock().expect("lock").clone();
        assert_eq!(acked.len(), 2, "{backend:?}");
        assert!(acked.values().all(|&n| n == 1), "{acked:?}");
        assert_eq!(*rx.bad_signatures.lock().expect("lock"), 0);
        let (_, bad) = app
            .get(
                "/admin/fulfilment/orders?app_id=default&status=lost",
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(bad["code"], 400, "{bad}");
    }
}

#[actix_web::test]
async fn a_server_killed_during_a_grab_storm_loses_no_grab_and_grants_no_packet_twice() {
    for backend in backends() {
        let (url, _dir) = common::fresh_database(backend).await;
        let rx = Receiver::default();
        *rx.down.lock().expect("lock") = true;
        let hook = start_receiver(rx.clone());
        let env = [
            ("POINTS_FULFILMENT_WEBHOOK", hook.as_str()),
            ("POINTS_FULFILMENT_SECRET", WEBHOOK_SECRET),
        ];
        let mut server = spawn_process(&url, &env).await;
        let t = Target {
            client: common::client(),
            address: server.address.clone(),
        };
        let (batch, card) = t.card("积分", 300, 4, 1, ("00:00:00", "24:00:00")).await;
        let (ext_batch, ext_card) = t
            .card("现金红包", 100, 2, 1, ("00:00:00", "24:00:00"))
            .await;
        let pool = t
            .admin(
                "/admin/redpack/pools",
                json!({"title": "crash", "total_points": 1000, "count": 200}),
            )
            .await["data"]["id"]
            .as_i64()
            .expect("pool");
        let users = Arc::new(t.users("crash", 600, 5).await);

        // Storm: every user grabs the points card, the cash card and the pool; the server is
        // killed once 150 grabs are acknowledged.
        let acked: Arc<Mutex<Vec<(usize, &'static str)>>> = Arc::default();
        let storm = {
            let (t, users, acked) = (t.clone(), Arc::clone(&users), Arc::clone(&acked));
            actix_web::rt::spawn(async move {
                stream::iter(0..users.len() * 3)
                    .map(|i| {
                        let (t, users, acked) = (t.clone(), Arc::clone(&users), Arc::clone(&acked));
                        async move {
                            let (u, what) = (i / 3, ["card", "cash", "pool"][i % 3]);
                            let user = &users[u];
                            let body = match what {
                                "card" => t.rob(user, batch, card).await,
                                "cash" => t.rob(user, ext_batch, ext_card).await,
                                _ => {
                                    t.post(
                                        "/v2/redpack/pool/rob.json",
                                        Some(&user.1),
                                        &json!({"app_id": "default", "user_id": user.0, "id": pool}),
                                    )
                                    .await
                                }
                            };
                            if body.is_some_and(|b| b["status"] == true) {
                                acked.lock().expect("lock").push((u, what));
                            }
                        }
                    })
                    .buffer_unordered(64)
                    .collect::<Vec<()>>()
                    .await;
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().expect("lock").len() < 150 {
            assert!(Instant::now() < deadline, "storm too slow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        let _ = storm.await;
        let acked_before: Vec<(usize, &str)> = acked.lock().expect("lock").clone();

        // Restart, with the webhook receiver back up.
        *rx.down.lock().expect("lock") = false;
        let server = spawn_process(&url, &env).await;
        let t = Target {
            client: common::client(),
            address: server.address.clone(),
        };
        let store = db(&url).await;
        let key_of = |u: usize, what: &str| -> (String, String) {
            let kind = if what == "pool" {
                "redpack_pool"
            } else {
                "redpack"
            };
            let reference_like = match what {
                "card" => format!("card:{card}:%"),
                "cash" => format!("card:{ext_card}:%"),
                _ => format!("pool:{pool}:%"),
            };
            (kind.to_string(), format!("{}|{reference_like}", users[u].0))
        };
        for (u, what) in &acked_before {
            let (kind, key) = key_of(*u, what);
            let (uid, reference_like) = key.split_once('|').expect("key");
            let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM ledger_entries e JOIN users u ON u.id = e.user_id \
                 WHERE u.platform_uid = $1 AND e.kind = $2 AND e.reference LIKE $3",
            )
            .bind(uid)
            .bind(&kind)
            .bind(reference_like)
            .fetch_one(&store.read)
            .await
            .expect("grab");
            assert_eq!(
                found, 1,
                "{backend:?}: acknowledged {what} grab of user {u} not stored once"
            );
        }

        // Continue: everyone tries everything again; the stock continues where it was.
        stream::iter(0..users.len() * 3)
            .map(|i| {
                let (t, users) = (t.clone(), Arc::clone(&users));
                async move {
                    let user = &users[i / 3];
                    match i % 3 {
                        0 => t.rob(user, batch, card).await,
                        1 => t.rob(user, ext_batch, ext_card).await,
                        _ => {
                            t.post(
                                "/v2/redpack/pool/rob.json",
                                Some(&user.1),
                                &json!({"app_id": "default", "user_id": user.0, "id": pool}),
                            )
                            .await
                        }
                    }
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;

        // Every packet of every card and of the pool granted exactly once, never more.
        let q = |sql: &'static str| count(&url, sql);
        assert_eq!(
            q("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack' AND amount = 4").await,
            300
        );
        assert_eq!(
            q("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack' AND amount = 0").await,
            100
        );
        assert_eq!(
            q("SELECT COUNT(*) FROM (SELECT user_id, reference FROM ledger_entries WHERE kind = 'redpack' \
               GROUP BY user_id, reference HAVING COUNT(*) > 1) d").await,
            0
        );
        assert_eq!(
            q("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack_pool'").await,
            200
        );
        assert_eq!(
            q("SELECT COUNT(DISTINCT reference) FROM ledger_entries WHERE kind = 'redpack_pool'")
                .await,
            200
        );
        assert_eq!(q("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE kind = 'redpack_pool'").await, 1000);
        assert_eq!(
            q("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'redpack_ticket'").await,
            400
        );
        assert_books_balance(&url).await;

        // Every cash order delivered, each acknowledged once by the receiver.
        assert_eq!(q("SELECT COUNT(*) FROM fulfilment_orders").await, 100);
        wait_until_delivered(&url, 100).await;
        let acked = rx.acked.lock().expect("lock").clone();
        assert_eq!(acked.len(), 100, "{backend:?}");
        assert!(
            acked.values().all(|&n| n == 1),
            "an order was delivered twice: {acked:?}"
        );
        drop(server);
    }
}

#[actix_web::test]
async fn a_websocket_client_sees_its_grabs_and_its_rank_change_in_order() {
    use tokio_tungstenite::tungstenite::Message;
    for backend in backends() {
        let app = spawn_app(backend).await;
        let t = target_of(&app);
        let (batch, card) = t.card("积分", 10, 50, 1, ("00:00:00", "24:00:00")).await;
        let pool = t
            .admin(
                "/admin/redpack/pools",
                json!({"title": "live", "total_points": 90, "count": 3, "split": "even"}),
            )
            .await["data"]["id"]
            .as_i64()
            .expect("pool");
        let users = t.users("live", 1, 5).await;
        let user = &users[0];
        let token = user.1.trim_start_matches("Bearer ");
        let url = format!(
            "{}/ws?token={token}",
            app.address.replacen("http://", "ws://", 1)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("upgrade");
        let topics = [
            "redpack:radio".to_string(),
            format!("redpack:pool:{pool}"),
            "leaderboard:points".into(),
        ];
        for topic in &topics {
            ws.send(Message::text(
                json!({"op": "subscribe", "topic": topic}).to_string(),
            ))
            .await
            .expect("subscribe");
        }

        // Act: a card grab, then a pool grab.
        assert_eq!(
            t.rob(user, batch, card).await.expect("grab")["status"],
            true
        );
        let pool_grab = t
            .post(
                "/v2/redpack/pool/rob.json",
                Some(&user.1),
                &json!({"app_id": "default", "user_id": user.0, "id": pool}),
            )
            .await
            .expect("pool grab");
        assert_eq!(pool_grab["data"]["amount"], 30, "{pool_grab}");

        // Assert: the radio shows the card win, the pool topic the pool grab, and the points
        // board climbs to the final balance without going back; seq grows by one per topic.
        let final_balance = 5 - 1 + 50 + 30;
        let (mut radio, mut pooled, mut best) = (false, false, 0);
        let mut seqs: HashMap<String, i64> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(radio && pooled && best == final_balance) {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("{backend:?}: frames missing: radio {radio} pool {pooled} best {best}")
                })
                .expect("open")
                .expect("frame");
            let Message::Text(text) = msg else { continue };
            let frame: Value = serde_json::from_str(text.as_str()).expect("json");
            // Acknowledgements (`{"op":"subscribed",..}`) carry no `seq`.
            let (Some(topic), Some(seq)) = (frame["topic"].as_str(), frame["seq"].as_i64()) else {
                continue;
            };
            if let Some(prev) = seqs.insert(topic.to_string(), seq) {
                assert_eq!(seq, prev + 1, "{topic}: {frame}");
            }
            let events = frame["data"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if topic == "redpack:radio" {
                radio |= events
                    .iter()
                    .any(|e| e["user_id"] == user.0.as_str() && e["amount"] == 50);
            } else if topic.starts_with("redpack:pool:") {
                pooled |= events
                    .iter()
                    .any(|e| e["user_id"] == user.0.as_str() && e["amount"] == 30);
            } else if topic == "leaderboard:points" {
                let mine = frame["data"]["top"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["user_id"] == user.0.as_str())
                    .and_then(|r| r["score"].as_i64())
                    .unwrap_or(0);
                assert!(mine >= best, "{backend:?}: the board went back: {frame}");
                best = mine;
            }
        }
    }
}
