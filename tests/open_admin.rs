//! The open integral API (002) behind its gateway rule, event reporting with earning rules, the
//! admin API, the 001 center ops, the 003 mini-program routes and the OpenAPI document, over
//! HTTP against the real server on SQLite and Postgres.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{
    backends, ledger_facts, spawn_app, spawn_app_with, TestApp, ADMIN_KEY, GATEWAY_SECRET,
};
use futures_util::future::join_all;
use points_engine::db::Db;
use serde_json::{json, Value};

const POINTS: &str = "/api/v1/open/swan/integral/points";
const MINE: &str = "/api/v1/open/swan/integral/points/transaction/mine";
const TRANSACTIONS: &str = "/api/v1/open/swan/integral/points/transaction";
const REPORT: &str = "/api/v1/open/swan/integral/points/report";
const ADMIN: (&str, &str) = ("X-Admin-Key", ADMIN_KEY);

/// Gateway headers naming `uid`.
fn gw(uid: &str) -> [(&str, &str); 2] {
    [
        ("X-Consumer-Custom-ID", uid),
        ("X-Gateway-Secret", GATEWAY_SECRET),
    ]
}

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// `YYYY-MM-DD HH:MM:SS`.
fn is_datetime(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 19
            && s.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            })
    })
}

/// The 002 balance of `uid` (of `app`, default when `None`).
async fn open_balance(app: &TestApp, uid: &str, app_id: Option<&str>) -> i64 {
    let mut headers = gw(uid).to_vec();
    if let Some(a) = app_id {
        headers.push(("X-App-Id", a));
    }
    let (status, body) = app.get(POINTS, &headers).await;
    assert_eq!(status, 200, "{body}");
    body["balance"].as_i64().expect("balance")
}

/// Reports an event as `caller`; returns the HTTP status and body.
async fn report(app: &TestApp, caller: &str, body: Value) -> (u16, Value) {
    app.post(REPORT, &gw(caller), &body).await
}

/// Creates or replaces an earning rule of the default app.
async fn rule(app: &TestApp, event_type: &str, points: i64, daily_cap: i64) -> Value {
    let (status, body) = app
        .post(
            "/admin/earning-rules",
            &[ADMIN],
            &json!({"app_id": "default", "event_type": event_type, "points": points, "daily_cap": daily_cap}),
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body
}

/// Grants through the core with an explicit expiry and key.
async fn grant(app: &TestApp, uuid: &str, amount: i64, expired_time: &str, key: &str) {
    let (status, body) = app
        .post(
            "/core/point/update.json",
            &[ADMIN, ("Idempotency-Key", key)],
            &json!({"uuid": uuid, "amount": amount, "task_id": "t", "flag": "grant",
                    "transfer_info": key, "expired_time": expired_time}),
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

// ----- (a) 002 gateway rule and shapes -----

#[actix_web::test]
async fn open_api_refuses_every_call_while_no_gateway_secret_is_configured() {
    for backend in backends() {
        let app = spawn_app_with(backend, |s| s.gateway_secret = None).await;
        let uid = "@staff_a:example.com";
        let tries: [&[(&str, &str)]; 3] = [
            &gw(uid),
            &[("X-Consumer-Custom-ID", uid)],
            &[("X-Consumer-Custom-ID", uid), ("X-Gateway-Secret", "")],
        ];
        for headers in tries {
            for path in [POINTS, MINE, TRANSACTIONS] {
                let (status, body) = app.get(path, headers).await;
                assert_eq!(status, 401, "{backend:?} GET {path}: {body}");
                assert_eq!(body["error"], "BAD_CREDENTIALS", "{body}");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
            let (status, body) = app
                .post(
                    POINTS,
                    headers,
                    &json!({"transactionId": "t1", "userId": uid, "point": 5}),
                )
                .await;
            assert_eq!(status, 401, "{backend:?}: {body}");
            let (status, body) = app
                .post(
                    REPORT,
                    headers,
                    &json!({"type": "VIEW", "userId": uid, "operationId": "o1"}),
                )
                .await;
            assert_eq!(status, 401, "{backend:?}: {body}");
        }
        // Nobody was created or credited.
        let (_, ledger) = app
            .get(&format!("/admin/users/ledger?user_id={uid}"), &[ADMIN])
            .await;
        assert_eq!(ledger["code"], 404, "{backend:?}: {ledger}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn open_api_serves_the_gateway_caller_in_the_seed_shapes() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let uid = "@staff_a:example.com";
        let h = gw(uid);

        // A first look creates the caller with nothing.
        let (status, total) = app.get(POINTS, &h).await;
        assert_eq!(status, 200, "{total}");
        assert_eq!(
            keys(&total),
            set(&["userId", "balance", "createdAt", "updatedAt"])
        );
        assert_eq!(total["userId"], uid);
        assert_eq!(total["balance"], 0);

        let (status, body) = app
            .post(
                POINTS,
                &h,
                &json!({"transactionId": "tx-1", "userId": uid, "point": 12, "type": "RETAIL_LIKE", "info": "客户点赞观点 获得积分"}),
            )
            .await;
        assert_eq!((status, &body), (200, &json!({})), "{backend:?}");
        // Points expiring within a month, granted through the core to the same user.
        let soon = (now_secs() + 10 * 86_400).to_string();
        grant(&app, uid, 5, &soon, "soon").await;
        let (status, body) = app
            .post(
                POINTS,
                &h,
                &json!({"transactionId": "tx-2", "userId": uid, "point": -2, "type": "EXCHANGE", "info": "兑换"}),
            )
            .await;
        assert_eq!((status, &body), (200, &json!({})), "{backend:?}");

        // 1.2.1: totals in milliseconds.
        let (_, total) = app.get(POINTS, &h).await;
        assert_eq!(
            keys(&total),
            set(&["userId", "balance", "createdAt", "updatedAt"])
        );
        assert_eq!(total["balance"], 15, "{backend:?}: {total}");
        let created = total["createdAt"].as_i64().expect("createdAt");
        let updated = total["updatedAt"].as_i64().expect("updatedAt");
        assert!(created > 1_600_000_000_000, "createdAt in ms: {total}");
        assert!(updated >= created, "{total}");
        // The seed quotes the id in its example: the quoted form names the same caller.
        let quoted = format!("\"{uid}\"");
        let (_, same) = app
            .get(
                POINTS,
                &[
                    ("X-Consumer-Custom-ID", quoted.as_str()),
                    ("X-Gateway-Secret", GATEWAY_SECRET),
                ],
            )
            .await;
        assert_eq!(same["balance"], 15, "{same}");
        assert_eq!(same["userId"], uid);

        // 1.2.2: balance, listing and what expires within a month.
        let (status, mine) = app.get(MINE, &h).await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(
            keys(&mine),
            set(&["staffId", "transaction", "balance", "oneMonthExpired"])
        );
        assert_eq!(mine["staffId"], uid);
        assert_eq!(mine["balance"], 15);
        // The deduction spent the earliest-expiring points first: 3 of the 5 are left to expire.
        assert_eq!(mine["oneMonthExpired"], 3, "{backend:?}: {mine}");
        let page = &mine["transaction"];
        assert_eq!(keys(page), set(&["content", "page", "size", "total"]));
        assert_eq!(
            (&page["page"], &page["size"], &page["total"]),
            (&json!(0), &json!(20), &json!(3))
        );
        let content = page["content"].as_array().expect("content");
        assert_eq!(content.len(), 3);
        for item in content {
            assert_eq!(
                keys(item),
                set(&[
                    "id", "tid", "mid", "createAt", "updateAt", "userId", "type", "detailId",
                    "points", "info"
                ]),
                "{item}"
            );
            assert_eq!(item["userId"], uid);
            assert!(
                item["points"].is_i64(),
                "points is a number in 1.2.2: {item}"
            );
            assert!(item["createAt"]
                .as_i64()
                .is_some_and(|t| t > 1_600_000_000_000));
        }
        assert_eq!(content[0]["detailId"], "tx-2", "newest first: {mine}");
        assert_eq!(content[0]["points"], -2);
        assert_eq!(content[2]["detailId"], "tx-1");
        assert_eq!(content[2]["type"], "RETAIL_LIKE");
        assert_eq!(content[2]["info"], "客户点赞观点 获得积分");
        let (_, income) = app.get(&format!("{MINE}?type=1"), &h).await;
        assert_eq!(income["transaction"]["total"], 2, "{income}");
        let (_, spending) = app.get(&format!("{MINE}?type=2"), &h).await;
        assert_eq!(spending["transaction"]["total"], 1, "{spending}");
        assert_eq!(spending["transaction"]["content"][0]["detailId"], "tx-2");
        let (_, second) = app.get(&format!("{MINE}?page=1&size=2"), &h).await;
        assert_eq!(second["transaction"]["page"], 1, "{second}");
        assert_eq!(second["transaction"]["size"], 2);
        assert_eq!(
            second["transaction"]["content"].as_array().map(Vec::len),
            Some(1)
        );

        // 1.2.3: `points` as a string.
        let (status, list) = app.get(TRANSACTIONS, &h).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(keys(&list), set(&["transaction", "size", "total"]));
        assert_eq!((&list["size"], &list["total"]), (&json!(20), &json!(3)));
        let items = list["transaction"].as_array().expect("transaction");
        for item in items {
            assert_eq!(
                keys(item),
                set(&["points", "userId", "detailId", "createdAt", "type", "info"]),
                "{item}"
            );
            assert!(
                item["points"].is_string(),
                "points is a string in 1.2.3: {item}"
            );
        }
        assert_eq!(items[0]["points"], "-2");
        assert_eq!(items[0]["detailId"], "tx-2");
        assert_eq!(items[2]["points"], "12");
        let future = (now_secs() + 86_400) * 1000;
        let (_, none) = app
            .get(&format!("{TRANSACTIONS}?startTime={future}"), &h)
            .await;
        assert_eq!(none["total"], 0, "{none}");
        assert_eq!(none["transaction"], json!([]));
        let (_, paged) = app.get(&format!("{TRANSACTIONS}?page=1&size=2"), &h).await;
        assert_eq!(
            paged["transaction"].as_array().map(Vec::len),
            Some(1),
            "{paged}"
        );
        assert_eq!(paged["size"], 2);

        ledger_facts(&app.database_url, uid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

// ----- (b) event reporting 1.2.5 -----

#[actix_web::test]
async fn event_reports_earn_by_rule_once_per_operation_within_the_daily_cap() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let uid = "@retail_r:example.com";
        let created = rule(&app, "VIEW_STUDIO", 4, 3).await;
        assert_eq!(created["data"]["event_type"], "VIEW_STUDIO", "{created}");
        assert_eq!(created["data"]["points"], 4);
        assert_eq!(created["data"]["daily_cap"], 3);
        assert_eq!(created["data"]["enabled"], true);

        let body = |op: &str| json!({"type": "VIEW_STUDIO", "userId": uid, "operationId": op});
        let (status, answer) = report(&app, uid, body("op-1")).await;
        assert_eq!((status, &answer), (200, &json!({})), "{backend:?}");
        assert_eq!(open_balance(&app, uid, None).await, 4);

        // A replay answers 200 {} and earns nothing more.
        let (status, answer) = report(&app, uid, body("op-1")).await;
        assert_eq!((status, &answer), (200, &json!({})), "{backend:?}");
        assert_eq!(open_balance(&app, uid, None).await, 4);
        let (_, mine) = app.get(MINE, &gw(uid)).await;
        assert_eq!(mine["transaction"]["total"], 1, "{mine}");
        assert_eq!(mine["transaction"]["content"][0]["detailId"], "op-1");
        assert_eq!(mine["transaction"]["content"][0]["type"], "VIEW_STUDIO");

        // The cap of 3 a day holds; reports past it still answer 200 {}.
        for op in ["op-2", "op-3", "op-4", "op-5"] {
            let (status, answer) = report(&app, uid, body(op)).await;
            assert_eq!((status, &answer), (200, &json!({})), "{backend:?} {op}");
        }
        assert_eq!(open_balance(&app, uid, None).await, 12, "{backend:?}");
        let facts = ledger_facts(&app.database_url, uid).await;
        facts.assert_conserved();
        assert_eq!(facts.entries, 3);

        // Unknown and disabled event types.
        let (status, answer) = report(
            &app,
            uid,
            json!({"type": "NO_SUCH_EVENT", "userId": uid, "operationId": "op-x"}),
        )
        .await;
        assert_eq!(status, 404, "{backend:?}: {answer}");
        assert_eq!(answer["error"], "NOT_FOUND");
        let (_, off) = app
            .post(
                "/admin/earning-rules",
                &[ADMIN],
                &json!({"event_type": "SWITCHED_OFF", "points": 1, "enabled": false}),
            )
            .await;
        assert_eq!(off["data"]["enabled"], false, "{off}");
        let (status, _) = report(
            &app,
            uid,
            json!({"type": "SWITCHED_OFF", "userId": uid, "operationId": "op-off"}),
        )
        .await;
        assert_eq!(status, 404, "{backend:?}");
        assert_eq!(open_balance(&app, uid, None).await, 12);
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn thirty_concurrent_reports_under_a_cap_of_five_reward_exactly_five() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let uid = "@retail_busy:example.com";
        rule(&app, "LIKE", 2, 5).await;
        let tasks = (0..30).map(|i| {
            let app = Arc::clone(&app);
            async move {
                report(
                    &app,
                    uid,
                    json!({"type": "LIKE", "userId": uid, "operationId": format!("busy-{i}")}),
                )
                .await
            }
        });
        for (status, answer) in join_all(tasks).await {
            assert_eq!((status, &answer), (200, &json!({})), "{backend:?}");
        }
        assert_eq!(open_balance(&app, uid, None).await, 10, "{backend:?}");
        let facts = ledger_facts(&app.database_url, uid).await;
        facts.assert_conserved();
        assert_eq!(facts.entries, 5, "{backend:?}: exactly five rewarded");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_staff_member_reporting_for_a_customer_earns_the_points() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let staff = "@staff_s:example.com";
        let customer = "@retail_c:example.com";
        rule(&app, "RETAIL_VIEW", 6, 0).await;

        let (status, answer) = report(
            &app,
            staff,
            json!({"type": "RETAIL_VIEW", "userId": customer, "staffId": staff, "operationId": "s-1"}),
        )
        .await;
        assert_eq!((status, &answer), (200, &json!({})), "{backend:?}");
        assert_eq!(open_balance(&app, staff, None).await, 6, "{backend:?}");
        assert_eq!(open_balance(&app, customer, None).await, 0, "{backend:?}");

        // A userId that is neither the caller nor the caller as staffId is refused.
        for body in [
            json!({"type": "RETAIL_VIEW", "userId": customer, "operationId": "s-2"}),
            json!({"type": "RETAIL_VIEW", "userId": customer, "staffId": "@staff_other:example.com", "operationId": "s-3"}),
        ] {
            let (status, answer) = report(&app, staff, body).await;
            assert_eq!(status, 403, "{backend:?}: {answer}");
            assert_eq!(answer["error"], "WRONG_USER");
        }
        // The customer reporting their own event earns for themselves.
        let (status, _) = report(
            &app,
            customer,
            json!({"type": "RETAIL_VIEW", "userId": customer, "staffId": staff, "operationId": "c-1"}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(open_balance(&app, customer, None).await, 6, "{backend:?}");
        assert_eq!(open_balance(&app, staff, None).await, 6, "{backend:?}");
        app.handle.stop(true).await;
    }
}

// ----- (c) admin API -----

#[actix_web::test]
async fn admin_saves_apps_and_never_shows_their_secrets() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let secrets = json!({
            "wechat_appid": "wx-public-id",
            "wechat_secret": "s3cret-wx",
            "alipay_app_id": "2021000",
            "alipay_private_key": "s3cret-rsa",
            "alipay_public_key": "public-key",
            "aes_key": "s3cret-aes",
            "expiry_months": 6,
        });
        let (status, created) = app
            .post(
                "/admin/apps",
                &[ADMIN],
                &json!({"id": "shop2", "name": "Shop 2", "settings": secrets}),
            )
            .await;
        assert_eq!(
            (status, &created["status"]),
            (200, &json!(true)),
            "{created}"
        );
        assert!(!created.to_string().contains("s3cret"), "{created}");
        let settings = &created["data"]["settings"];
        assert_eq!(created["data"]["id"], "shop2");
        assert_eq!(created["data"]["name"], "Shop 2");
        assert_eq!(settings["wechat_secret"], "<set>");
        assert_eq!(settings["alipay_private_key"], "<set>");
        assert_eq!(settings["aes_key"], "<set>");
        assert_eq!(settings["wechat_appid"], "wx-public-id");
        assert_eq!(settings["expiry_months"], 6);

        // An update keeps what it leaves out.
        let (_, renamed) = app
            .post(
                "/admin/apps",
                &[ADMIN],
                &json!({"id": "shop2", "name": "Shop Two"}),
            )
            .await;
        assert_eq!(renamed["data"]["name"], "Shop Two", "{renamed}");
        assert_eq!(renamed["data"]["settings"]["wechat_secret"], "<set>");
        assert_eq!(renamed["data"]["settings"]["expiry_months"], 6);
        let (_, updated) = app
            .post(
                "/admin/apps",
                &[ADMIN],
                &json!({"id": "shop2", "settings": {"expiry_months": 3}}),
            )
            .await;
        assert_eq!(updated["data"]["name"], "Shop Two", "{updated}");
        assert_eq!(updated["data"]["settings"]["expiry_months"], 3);
        assert_eq!(updated["data"]["settings"]["aes_key"], "<set>");
        assert_eq!(updated["data"]["settings"]["alipay_app_id"], "2021000");

        let res = app
            .client
            .get(app.url("/admin/apps"))
            .header(ADMIN.0, ADMIN.1)
            .send()
            .await
            .expect("list apps");
        let text = res.text().await.expect("body");
        assert!(!text.contains("s3cret"), "{backend:?}: {text}");
        let list: Value = serde_json::from_str(&text).expect("json");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .expect("apps")
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        assert_eq!(ids, ["default", "shop2"], "{list}");
        assert_eq!(list["data"][1]["settings"]["wechat_secret"], "<set>");
        assert!(list["data"][0]["settings"]["wechat_secret"].is_null());
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_second_app_keeps_its_own_users_and_balances() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (_, second) = app
            .post("/admin/apps", &[ADMIN], &json!({"id": "second"}))
            .await;
        assert_eq!(second["status"], true, "{second}");

        // The same platform user logs in to both apps.
        let (user, token_default) = app.login("same").await;
        let (_, login) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "second", "auth_code": "same"}),
            )
            .await;
        assert_eq!(login["data"]["user_id"], user, "{login}");
        let token_second = format!("Bearer {}", login["data"]["token"].as_str().expect("token"));

        grant(&app, &user, 3, "2099-01-01 00:00:00", "default-grant").await;
        let (_, granted) = app
            .post(
                "/core/point/update.json",
                &[ADMIN],
                &json!({"app_id": "second", "uuid": user, "amount": 10, "expired_time": "2099-01-01 00:00:00"}),
            )
            .await;
        assert_eq!(granted["status"], true, "{granted}");

        let points = |token: &str, app_id: &str| {
            let token = token.to_string();
            let body = json!({"app_id": app_id, "user_id": user});
            let app = &app;
            async move {
                app.post(
                    "/v2/user/points.json",
                    &[("Authorization", token.as_str())],
                    &body,
                )
                .await
                .1
            }
        };
        assert_eq!(points(&token_default, "default").await["data"]["points"], 3);
        assert_eq!(points(&token_second, "second").await["data"]["points"], 10);
        // A token of one app cannot read the other app's user.
        assert_eq!(points(&token_default, "second").await["code"], 403);
        for (app_id, want) in [("default", 3), ("second", 10)] {
            let (_, b) = app
                .post(
                    "/core/user/balance.json",
                    &[ADMIN],
                    &json!({"app_id": app_id, "uuid": user}),
                )
                .await;
            assert_eq!(
                b["data"]["active_balance"], want,
                "{backend:?} {app_id}: {b}"
            );
        }
        let db = Db::connect(&app.database_url, 2).await.expect("db");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE platform_uid = $1")
            .bind(user.as_str())
            .fetch_one(&db.read)
            .await
            .expect("users");
        assert_eq!(rows, 2, "{backend:?}: one user per app");
        db.read.close().await;
        db.write.close().await;

        // 002 callers and earning rules are per app too.
        let consumer = "@retail_two:example.com";
        let mut in_second = gw(consumer).to_vec();
        in_second.push(("X-App-Id", "second"));
        let (status, _) = app
            .post(
                POINTS,
                &in_second,
                &json!({"transactionId": "t-1", "userId": consumer, "point": 7}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(open_balance(&app, consumer, Some("second")).await, 7);
        assert_eq!(open_balance(&app, consumer, None).await, 0);
        rule(&app, "ONLY_DEFAULT", 1, 0).await;
        let (status, _) = app
            .post(
                REPORT,
                &in_second,
                &json!({"type": "ONLY_DEFAULT", "userId": consumer, "operationId": "o-1"}),
            )
            .await;
        assert_eq!(
            status, 404,
            "{backend:?}: rules of another app do not apply"
        );
        let (_, rules) = app
            .get("/admin/earning-rules?app_id=second", &[ADMIN])
            .await;
        assert_eq!(rules["data"], json!([]), "{rules}");
        // 003 participation counts the app's own users only.
        let (_, balance) = app
            .post(
                "/api/query_balance/",
                &[("Authorization", token_second.as_str())],
                &json!({"openid": user}),
            )
            .await;
        assert_eq!(
            balance["data"],
            json!({"balance": 10, "p_num": 2, "avg_balance": 8}),
            "{backend:?}: {balance}"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn admin_creates_users_and_pages_through_their_ledger() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let body = json!({"app_id": "default", "user_id": "imported-1"});
        let (_, first) = app.post("/admin/users", &[ADMIN], &body).await;
        assert_eq!(
            first["data"],
            json!({"app_id": "default", "user_id": "imported-1", "created": true}),
            "{backend:?}: {first}"
        );
        let (_, again) = app.post("/admin/users", &[ADMIN], &body).await;
        assert_eq!(again["data"]["created"], false, "{again}");

        for (i, amount) in [5, 6, 7].into_iter().enumerate() {
            grant(
                &app,
                "imported-1",
                amount,
                "2099-01-01 00:00:00",
                &format!("k{i}"),
            )
            .await;
        }
        let spent = app.change("imported-1", -4, Some("k3")).await;
        assert_eq!(spent["status"], true, "{spent}");

        let ledger = "/admin/users/ledger?user_id=imported-1";
        let (_, page1) = app.get(&format!("{ledger}&page=1&step=2"), &[ADMIN]).await;
        let data = &page1["data"];
        assert_eq!(
            (&data["balance"], &data["total"]),
            (&json!(14), &json!(4)),
            "{page1}"
        );
        let entries = data["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            keys(&entries[0]),
            set(&[
                "id",
                "amount",
                "kind",
                "idempotency_key",
                "reference",
                "description",
                "expires_at",
                "balance_after",
                "created_at"
            ])
        );
        assert_eq!(entries[0]["amount"], -4, "newest first: {page1}");
        assert_eq!(entries[0]["idempotency_key"], "core:k3");
        assert_eq!(entries[0]["balance_after"], 14);
        assert!(entries[0]["expires_at"].is_null());
        assert!(is_datetime(&entries[0]["created_at"]), "{page1}");
        assert_eq!(entries[1]["amount"], 7);
        assert_eq!(entries[1]["expires_at"], "2099-01-01 00:00:00");
        assert_eq!(entries[1]["description"], "k2");
        let (_, page2) = app.get(&format!("{ledger}&page=2&step=2"), &[ADMIN]).await;
        let amounts: Vec<i64> = page2["data"]["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["amount"].as_i64())
            .collect();
        assert_eq!(amounts, [6, 5], "{backend:?}: {page2}");
        let (_, page3) = app.get(&format!("{ledger}&page=3&step=2"), &[ADMIN]).await;
        assert_eq!(page3["data"]["entries"], json!([]));
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn earning_rules_are_listed_replaced_and_deleted() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        rule(&app, "B_EVENT", 2, 0).await;
        rule(&app, "A_EVENT", 1, 4).await;
        let list = || async {
            let (_, body) = app.get("/admin/earning-rules", &[ADMIN]).await;
            body["data"]
                .as_array()
                .expect("rules")
                .iter()
                .map(|r| {
                    (
                        r["event_type"].as_str().unwrap_or_default().to_string(),
                        r["points"].as_i64().unwrap_or_default(),
                        r["daily_cap"].as_i64().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            list().await,
            [("A_EVENT".to_string(), 1, 4), ("B_EVENT".to_string(), 2, 0)],
            "{backend:?}"
        );
        rule(&app, "A_EVENT", 9, 1).await;
        assert_eq!(
            list().await[0],
            ("A_EVENT".to_string(), 9, 1),
            "{backend:?}"
        );

        let (_, deleted) = app
            .post(
                "/admin/earning-rules/delete",
                &[ADMIN],
                &json!({"event_type": "A_EVENT"}),
            )
            .await;
        assert_eq!(deleted["status"], true, "{deleted}");
        assert_eq!(list().await, [("B_EVENT".to_string(), 2, 0)]);
        let (_, again) = app
            .post(
                "/admin/earning-rules/delete",
                &[ADMIN],
                &json!({"event_type": "A_EVENT"}),
            )
            .await;
        assert_eq!(again["code"], 404, "{again}");
        let uid = "@retail_d:example.com";
        let (status, _) = report(
            &app,
            uid,
            json!({"type": "A_EVENT", "userId": uid, "operationId": "d-1"}),
        )
        .await;
        assert_eq!(status, 404, "{backend:?}: a deleted rule earns nothing");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn running_the_jobs_expires_due_points_once() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, bearer) = app.login("expiring").await;
        let soon = now_secs() + 2;
        grant(&app, &user, 5, &soon.to_string(), "short-lived").await;
        grant(&app, &user, 10, "2099-01-01 00:00:00", "long-lived").await;
        // Wait until the short-lived points are due.
        while now_secs() <= soon {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let (status, ran) = app.post("/admin/jobs/run", &[ADMIN], &json!({})).await;
        assert_eq!((status, &ran["status"]), (200, &json!(true)), "{ran}");
        assert_eq!(ran["data"]["expired_points"], 5, "{backend:?}: {ran}");
        assert!(ran["data"]["purged_sessions"].is_u64(), "{ran}");
        let (_, again) = app.post("/admin/jobs/run", &[ADMIN], &json!({})).await;
        assert_eq!(again["data"]["expired_points"], 0, "{backend:?}: {again}");

        assert_eq!(app.balance(&user).await, 10);
        ledger_facts(&app.database_url, &user)
            .await
            .assert_conserved();
        let (_, expired) = app
            .post(
                "/v2/user/expired.json",
                &[("Authorization", bearer.as_str())],
                &json!({"app_id": "default", "user_id": user}),
            )
            .await;
        assert_eq!(expired["count"], 1, "{expired}");
        assert_eq!(expired["data"][0]["total"], 5, "{expired}");
        let (_, wrong) = app
            .post("/admin/jobs/run", &[("X-Admin-Key", "nope")], &json!({}))
            .await;
        assert_eq!(wrong["code"], 401, "{wrong}");
        app.handle.stop(true).await;
    }
}

// ----- (d) 001 center ops -----

#[actix_web::test]
async fn center_ops_answer_balances_records_and_admin_changes() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, bearer) = app.login("center").await;
        let auth = [("Authorization", bearer.as_str())];

        let (status, empty) = app
            .post("/center/api/getUserPoints", &auth, &json!({}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            empty,
            json!({"code": 0, "msg": "ok", "result": {"points": 0, "expiredPointsInfo": null}}),
            "{backend:?}"
        );
        grant(&app, &user, 10, "2090-06-01 00:00:00", "g-early").await;
        grant(&app, &user, 5, "2095-01-01 00:00:00", "g-late").await;
        for (status, body) in [
            app.post("/center/api/getUserPoints", &auth, &json!({}))
                .await,
            app.get("/center/api/getUserPoints", &auth).await,
        ] {
            assert_eq!(status, 200);
            assert_eq!(
                body["result"],
                json!({"points": 15, "expiredPointsInfo": {"faceValue": 10, "expiredTime": "2090-05-31"}}),
                "{backend:?}: {body}"
            );
        }

        // Admin changes: transactionId makes them repeatable.
        let change = |body: Value, key: Option<&'static str>| {
            let app = &app;
            async move {
                let mut headers = vec![ADMIN];
                if let Some(k) = key {
                    headers.push(("Idempotency-Key", k));
                }
                app.post("/center/admin/changePoints", &headers, &body)
                    .await
                    .1
            }
        };
        let bonus = json!({"faceValue": 20, "openId": user, "changeType": "task", "desc": "bonus", "transactionId": "c-1"});
        let first = change(bonus.clone(), None).await;
        assert_eq!(
            first,
            json!({"code": 0, "msg": "ok", "result": 35}),
            "{backend:?}"
        );
        let replay = change(bonus, None).await;
        assert_eq!(replay, first, "{backend:?}: a replay answers the same");
        let conflict = change(
            json!({"faceValue": 21, "openId": user, "changeType": "task", "transactionId": "c-1"}),
            None,
        )
        .await;
        assert_eq!(conflict["code"], 40900, "{conflict}");
        let by_header = json!({"faceValue": 1, "openId": user, "changeType": "sign"});
        assert_eq!(change(by_header.clone(), Some("h-1")).await["result"], 36);
        assert_eq!(change(by_header, Some("h-1")).await["result"], 36);
        let exchange = change(
            json!({"faceValue": -3, "openId": user, "changeType": "exchange", "desc": "prize", "transactionId": "c-2"}),
            None,
        )
        .await;
        assert_eq!(exchange["result"], 33, "{exchange}");

        // Deducting beyond the balance: 300013 and nothing changes.
        let before = ledger_facts(&app.database_url, &user).await;
        let refused = change(
            json!({"faceValue": -1000, "openId": user, "changeType": "exchange", "transactionId": "c-3"}),
            None,
        )
        .await;
        assert_eq!(refused["code"], 300_013, "{backend:?}: {refused}");
        assert!(refused["result"].is_null());
        assert_eq!(ledger_facts(&app.database_url, &user).await, before);
        before.assert_conserved();
        assert_eq!(before.balance, 33);
        assert_eq!(before.entries, 5, "replays added nothing");
        let (_, no_key) = app
            .post(
                "/center/admin/changePoints",
                &[],
                &json!({"faceValue": 1, "openId": user}),
            )
            .await;
        assert_eq!(no_key["code"], 40100, "{no_key}");

        // Records: every change, or exchanges only, as `{data, total}`.
        let (_, all) = app
            .post("/center/api/changeRecord", &auth, &json!({"type": "task"}))
            .await;
        assert_eq!(all["result"]["total"], 5, "{backend:?}: {all}");
        let items = all["result"]["data"].as_array().expect("records");
        assert_eq!(items.len(), 5, "{backend:?}: {all}");
        assert_eq!(
            keys(&items[0]),
            set(&[
                "desc",
                "type",
                "createdAt",
                "created_At",
                "faceValue",
                "changeStatus",
                "userRemainingPoints"
            ])
        );
        assert_eq!(items[0]["created_At"], items[0]["createdAt"]);
        assert_eq!(items[0]["desc"], "prize");
        assert_eq!(items[0]["type"], "exchange");
        assert_eq!(items[0]["faceValue"], 3);
        assert_eq!(items[0]["changeStatus"], 2);
        assert_eq!(items[0]["userRemainingPoints"], 33);
        assert!(is_datetime(&items[0]["createdAt"]), "{all}");
        assert_eq!(items[1]["changeStatus"], 1);
        let (_, default_type) = app
            .post("/center/api/changeRecord", &auth, &json!({}))
            .await;
        assert_eq!(default_type["result"], all["result"]);
        for (status, only) in [
            app.post(
                "/center/api/changeRecord",
                &auth,
                &json!({"type": "exchange"}),
            )
            .await,
            app.get("/center/api/changeRecord?type=exchange", &auth)
                .await,
        ] {
            assert_eq!(status, 200);
            assert_eq!(only["result"]["total"], 1, "{backend:?}");
            let only = only["result"]["data"].as_array().expect("records");
            assert_eq!(only.len(), 1, "{backend:?}");
            assert_eq!(only[0]["type"], "exchange");
        }
        let (_, paged) = app
            .post(
                "/center/api/changeRecord",
                &auth,
                &json!({"page": 3, "size": 2}),
            )
            .await;
        assert_eq!(
            paged["result"]["data"].as_array().map(Vec::len),
            Some(1),
            "{paged}"
        );

        // The client's paging: `pageIndex` from 1, 20 a page, asking again while
        // `total > pageIndex * 20`; every record once, newest first.
        for i in 0..40 {
            grant(&app, &user, 1, "2099-01-01 00:00:00", &format!("p-{i}")).await;
        }
        let mut seen = Vec::new();
        let mut page_index = 1;
        loop {
            let (_, page) = app
                .post(
                    "/center/api/changeRecord",
                    &auth,
                    &json!({"type": "task", "pageIndex": page_index}),
                )
                .await;
            let data = page["result"]["data"].as_array().expect("records").clone();
            assert!(data.len() <= 20, "{page}");
            seen.extend(data);
            let total = page["result"]["total"].as_i64().expect("total");
            if total <= page_index * 20 {
                assert_eq!(total, 45, "{backend:?}");
                break;
            }
            page_index += 1;
        }
        assert_eq!(page_index, 3);
        assert_eq!(seen.len(), 45, "{backend:?}");
        let times: Vec<&str> = seen
            .iter()
            .map(|r| r["createdAt"].as_str().unwrap_or_default())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
        assert_eq!(seen[44]["desc"], "g-early", "the oldest last");
        let grants: BTreeSet<String> = seen
            .iter()
            .filter_map(|r| r["desc"].as_str().filter(|d| d.starts_with("p-")))
            .map(str::to_string)
            .collect();
        assert_eq!(grants.len(), 40, "each record once");
        let (_, bad) = app
            .post(
                "/center/api/changeRecord",
                &auth,
                &json!({"type": "lottery"}),
            )
            .await;
        assert_eq!(bad["code"], 40000, "{bad}");
        assert!(bad["result"].is_null());
        app.handle.stop(true).await;
    }
}

// ----- (e) 003 mini-program -----

#[actix_web::test]
async fn miniapp_login_balance_and_paged_records() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let form = |path: &str, bearer: Option<&str>, body: String| {
            let mut req = app
                .client
                .post(app.url(path))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(b) = bearer {
                req = req.header("Authorization", b);
            }
            async move {
                let res = req.send().await.expect("request");
                let status = res.status().as_u16();
                let body: Value = res.json().await.expect("json");
                (status, body)
            }
        };

        let (status, first) = app.post("/api/login/", &[], &json!({"code": "m1"})).await;
        assert_eq!(status, 200);
        assert_eq!(first["code"], 0, "{backend:?}: {first}");
        assert_eq!(keys(&first["data"]), set(&["openid", "is_new", "token"]));
        assert_eq!(first["data"]["openid"], "dev_m1");
        assert_eq!(first["data"]["is_new"], true);
        let (_, again) = form("/api/login/", None, "code=m1".into()).await;
        assert_eq!(again["code"], 0, "form-encoded login: {again}");
        assert_eq!(again["data"]["openid"], "dev_m1");
        assert_eq!(again["data"]["is_new"], false);
        assert_ne!(again["data"]["token"], first["data"]["token"]);
        let bearer = format!("Bearer {}", again["data"]["token"].as_str().expect("token"));
        for code in ["m2", "m3"] {
            let (_, login) = form("/api/login/", None, format!("code={code}")).await;
            assert_eq!(login["data"]["is_new"], true, "{login}");
        }

        for (i, amount) in [10, 1, 2, 3, 4].into_iter().enumerate() {
            grant(
                &app,
                "dev_m1",
                amount,
                "2099-01-01 00:00:00",
                &format!("m1-{i}"),
            )
            .await;
        }
        grant(&app, "dev_m2", 20, "2099-01-01 00:00:00", "m2-0").await;
        grant(&app, "dev_m3", 31, "2099-01-01 00:00:00", "m3-0").await;

        // Balance with participation: (20 + 20 + 31) / 3 rounded down.
        let want = json!({"code": 0, "msg": "success", "data": {"balance": 20, "p_num": 3, "avg_balance": 23}});
        let auth = [("Authorization", bearer.as_str())];
        let (_, by_json) = app
            .post("/api/query_balance/", &auth, &json!({"openid": "dev_m1"}))
            .await;
        assert_eq!(by_json, want, "{backend:?}");
        let (_, by_form) = form("/api/query_balance/", Some(&bearer), "openid=dev_m1".into()).await;
        assert_eq!(by_form, want, "{backend:?}");
        let (_, by_get) = app.get("/api/query_balance/?openid=dev_m1", &auth).await;
        assert_eq!(by_get, want, "{backend:?}");

        // Records, newest first, paged by index/num.
        let points = |body: &Value| -> Vec<i64> {
            body["data"]
                .as_array()
                .expect("records")
                .iter()
                .filter_map(|r| r["point"].as_i64())
                .collect()
        };
        let (_, all) = app
            .post(
                "/api/query_point_record/",
                &auth,
                &json!({"openid": "dev_m1"}),
            )
            .await;
        assert_eq!(all["code"], 0, "{all}");
        assert_eq!(points(&all), [4, 3, 2, 1, 10], "{backend:?}");
        assert_eq!(keys(&all["data"][0]), set(&["name", "c_time", "point"]));
        assert_eq!(all["data"][0]["name"], "m1-4");
        assert!(is_datetime(&all["data"][0]["c_time"]), "{all}");
        for (index, want) in [(0, vec![4, 3]), (1, vec![2, 1]), (2, vec![10]), (3, vec![])] {
            let (_, page) = app
                .post(
                    "/api/query_point_record/",
                    &auth,
                    &json!({"openid": "dev_m1", "index": index, "num": 2}),
                )
                .await;
            assert_eq!(points(&page), want, "{backend:?} index {index}: {page}");
        }
        let (_, by_form) = form(
            "/api/query_point_record/",
            Some(&bearer),
            "openid=dev_m1&index=1&num=2".into(),
        )
        .await;
        assert_eq!(points(&by_form), [2, 1], "{backend:?}: {by_form}");
        let (_, wrong) = form(
            "/api/query_point_record/",
            Some(&bearer),
            "openid=dev_m2".into(),
        )
        .await;
        assert_eq!(wrong["code"], -2, "{wrong}");
        app.handle.stop(true).await;
    }
}

// ----- (f) the OpenAPI document -----

/// Every route the tests of this file and of `bad_input.rs` touch.
const TOUCHED: &[(&str, &str)] = &[
    ("/v2/user/login.json", "post"),
    ("/v2/user/points.json", "post"),
    ("/v2/user/histories.json", "post"),
    ("/v2/user/expired.json", "post"),
    ("/v2/user/recent/expired.json", "post"),
    ("/core/user/balance.json", "post"),
    ("/core/user/records.json", "post"),
    ("/core/point/update.json", "post"),
    ("/core/point/expired.json", "post"),
    ("/core/recent/expired.json", "post"),
    ("/center/api/getUserPoints", "post"),
    ("/center/api/getUserPoints", "get"),
    ("/center/api/changeRecord", "post"),
    ("/center/api/changeRecord", "get"),
    ("/center/admin/changePoints", "post"),
    (POINTS, "get"),
    (POINTS, "post"),
    (MINE, "get"),
    (TRANSACTIONS, "get"),
    (REPORT, "post"),
    ("/api/login/", "post"),
    ("/api/query_balance/", "post"),
    ("/api/query_point_record/", "post"),
    ("/admin/apps", "get"),
    ("/admin/apps", "post"),
    ("/admin/users", "post"),
    ("/admin/users/ledger", "get"),
    ("/admin/earning-rules", "get"),
    ("/admin/earning-rules", "post"),
    ("/admin/earning-rules/delete", "post"),
    ("/admin/jobs/run", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
];

/// The component a `$ref` names.
fn component<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a reference: {reference}"));
    &doc["components"]["schemas"][name]
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_openapi_document_describes_what_goes_over_the_wire() {
    let doc = points_engine::startup::openapi();
    let body = |path: &str| {
        let schema =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        property_names(component(&doc, schema))
    };
    // Same-named request types of different routes are different components.
    assert_eq!(
        body("/admin/apps"),
        ["id", "name", "settings"].map(String::from).into()
    );
    assert!(body("/v2/user/login.json").contains("auth_code"));
    assert!(body("/api/login/").contains("code"));

    // Answers are the dialect's envelope around the data, or its refusal.
    let answer = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
            .clone()
    };
    let apps = answer("/admin/apps", "get", "200");
    let success = &apps["oneOf"][0];
    assert_eq!(success["properties"]["status"]["enum"], json!([true]));
    let items = component(&doc, &success["properties"]["data"]);
    assert_eq!(items["type"], "array");
    assert!(
        property_names(&items["items"]).contains("settings"),
        "{items}"
    );
    let refusal = component(&doc, &apps["oneOf"][1]);
    assert_eq!(refusal["properties"]["status"]["enum"], json!([false]));
    let histories = &answer("/v2/user/histories.json", "post", "200")["oneOf"][0];
    assert!(property_names(histories).contains("count"), "{histories}");
    let center = &answer("/center/api/getUserPoints", "post", "200");
    assert!(center.to_string().contains("result"), "{center}");
    let open = answer("/api/v1/open/swan/integral/points", "get", "200");
    assert!(
        property_names(component(&doc, &open)).contains("balance"),
        "002 answers its data bare: {open}"
    );
    for status in ["400", "401", "409", "422", "429"] {
        assert!(
            component(
                &doc,
                &answer("/api/v1/open/swan/integral/points", "post", status)
            )["properties"]["error"]
                .is_object(),
            "002 documents {status}"
        );
    }
    for (path, method) in [("/v2/user/points.json", "post"), ("/admin/apps", "get")] {
        let responses = &doc["paths"][path][method]["responses"];
        assert!(responses["429"]["headers"]["Retry-After"].is_object());
        assert!(responses["405"]["headers"]["Allow"].is_object());
    }
    assert!(
        doc["paths"]["/admin/export/entries.csv"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object()
    );

    // A GET route's fields are its query parameters, never null.
    let params = doc["paths"]["/admin/users/ledger"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let user = params
        .iter()
        .find(|p| p["name"] == "user_id")
        .expect("user_id");
    assert_eq!(user["in"], "query");
    assert_eq!(user["schema"]["type"], "string");

    // Each route names its credentials.
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(security("/admin/apps", "get"), json!([{"admin_key": []}]));
    assert_eq!(
        security("/v2/user/points.json", "post"),
        json!([{"bearer": []}])
    );
    assert_eq!(security("/api/sign/", "post"), json!([{"bearer": []}]));
    assert_eq!(
        security("/api/v1/open/swan/integral/points", "get"),
        json!([{"gateway_consumer": [], "gateway_secret": []}])
    );
    assert_eq!(security("/v2/user/login.json", "post"), Value::Null);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_key"]["name"], "X-Admin-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    // Every reference resolves.
    let text = doc.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').expect("closing quote")];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{name} is referenced but not defined"
        );
    }
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route_and_the_server_serves_each() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, doc) = app.get("/openapi.json", &[]).await;
        assert_eq!(status, 200, "{doc}");
        assert!(doc["openapi"].is_string(), "{doc}");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, method) in TOUCHED {
            assert!(
                paths
                    .get(*path)
                    .is_some_and(|item| item.get(*method).is_some()),
                "{backend:?}: {method} {path} missing from /openapi.json"
            );
        }

        // Every documented operation is served: without credentials it may refuse, but it
        // never answers 500 nor the router's 404.
        let unrouted = json!({"error": "NOT_FOUND", "message": "no such route"});
        let mut checked = 0;
        for (path, item) in paths {
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_none() {
                    continue;
                }
                let m =
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let mut req = app.client.request(m, app.url(&concrete));
                if method != "get" {
                    req = req.json(&json!({}));
                }
                let res = req.send().await.expect("request");
                let status = res.status().as_u16();
                let text = res.text().await.unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(
                    status != 500 && status != 404,
                    "{backend:?}: {method} {path} answered {status}{}: {text:.300}",
                    if body == unrouted {
                        " (not routed)"
                    } else {
                        ""
                    }
                );
                checked += 1;
            }
        }
        assert!(checked >= TOUCHED.len(), "{checked} operations checked");

        // What the router answers for a path it does not serve.
        let (status, body) = app.get("/v2/no/such/route.json", &[]).await;
        assert_eq!((status, body), (404, unrouted));

        // Operational routes.
        assert_eq!(
            app.get("/healthz", &[]).await,
            (200, json!({"status": "ok"}))
        );
        assert_eq!(
            app.get("/readyz", &[]).await,
            (200, json!({"status": "ready", "redis": "not configured"}))
        );
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(metrics.status().as_u16(), 200);
        let text = metrics.text().await.expect("metrics text");
        assert!(text.contains("points_ledger_queue_depth"), "{text:.300}");

        // The docs page.
        let docs = app
            .client
            .get(app.url("/docs/"))
            .send()
            .await
            .expect("docs");
        assert_eq!(docs.status().as_u16(), 200, "{backend:?}");
        let content_type = docs
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = docs.text().await.expect("docs html");
        assert!(html.to_lowercase().contains("swagger"), "{html:.300}");
        let redirect = app
            .client
            .get(app.url("/docs"))
            .send()
            .await
            .expect("docs redirect");
        assert_eq!(
            redirect.status().as_u16(),
            200,
            "/docs leads to the docs page"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn timed_task_runs_the_daily_jobs_and_is_idempotent() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, body) = app
            .post("/center/admin/timedTask", &[], &serde_json::json!({}))
            .await;
        assert_eq!(
            (status, body["code"].clone()),
            (200, serde_json::json!(40100)),
            "{body}"
        );
        for _ in 0..2 {
            let (status, body) = app
                .post(
                    "/center/admin/timedTask",
                    &[("X-Admin-Key", common::ADMIN_KEY)],
                    &serde_json::json!({}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["code"], 0, "{backend:?}: {body}");
            assert_eq!(body["result"]["expired_points"], 0, "{body}");
        }
    }
}

#[actix_web::test]
async fn a_callers_transaction_and_operation_ids_are_their_own() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (alice, bob) = ("@key_alice:example.com", "@key_bob:example.com");
        rule(&app, "LIKE", 3, 0).await;
        for uid in [alice, bob] {
            let body = json!({"transactionId": "X", "userId": uid, "point": 7});
            let (status, answer) = app.post(POINTS, &gw(uid), &body).await;
            assert_eq!(status, 200, "{backend:?}: {uid}: {answer}");
            let body = json!({"type": "LIKE", "userId": uid, "operationId": "op"});
            let (status, answer) = report(&app, uid, body).await;
            assert_eq!(status, 200, "{backend:?}: {uid}: {answer}");
        }
        // Replays are replays for their own caller; another value for one's own key conflicts.
        let (status, _) = app
            .post(
                POINTS,
                &gw(bob),
                &json!({"transactionId": "X", "userId": bob, "point": 7}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = app
            .post(
                POINTS,
                &gw(alice),
                &json!({"transactionId": "X", "userId": alice, "point": 8}),
            )
            .await;
        assert_eq!(status, 409, "{backend:?}");
        for uid in [alice, bob] {
            assert_eq!(
                open_balance(&app, uid, None).await,
                10,
                "{backend:?}: {uid}"
            );
            let (_, mine) = app.get(MINE, &gw(uid)).await;
            let ids: BTreeSet<String> = mine["transaction"]["content"]
                .as_array()
                .expect("content")
                .iter()
                .map(|e| e["detailId"].as_str().unwrap_or_default().to_string())
                .collect();
            assert_eq!(ids, set(&["X", "op"]), "{backend:?}: {mine}");
        }

        // A change stored before keys were scoped still replays after the migration that
        // scopes them: put Bob's entry back in the old form and run that migration's statement.
        let db = Db::connect(&app.database_url, 2).await.expect("db");
        sqlx::query(
            "UPDATE ledger_entries SET idem_key = 'open:old' \
             WHERE idem_key LIKE 'open@%' AND user_id = (SELECT id FROM users WHERE platform_uid = $1)",
        )
        .bind(bob)
        .execute(&db.write)
        .await
        .expect("old key");
        common::rerun_migration(&db, backend, "20261203000013_scope_caller_keys.sql").await;
        let (status, answer) = app
            .post(
                POINTS,
                &gw(bob),
                &json!({"transactionId": "old", "userId": bob, "point": 7}),
            )
            .await;
        assert_eq!(status, 200, "{backend:?}: {answer}");
        assert_eq!(
            open_balance(&app, bob, None).await,
            10,
            "{backend:?}: replayed, not applied"
        );
        db.write.close().await;
        db.read.close().await;
        app.handle.stop(true).await;
    }
}
