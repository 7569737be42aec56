//! Morning check-in rounds over HTTP against the real server, on SQLite and Postgres: concurrent
//! sign-ups charge once, check-in refusals change nothing, `split` rounds pay exactly the stakes
//! (or refund them), `random` rounds pay inside their bounds and inflate on the 7th day in a
//! row, settlement is idempotent, and bad input never yields a 500.
//!
//! Time is not faked: each test sets the app's window around "now" (open all day to check in,
//! closed since 00:00:01 to settle) and opens today's round with `POST /admin/morning/signups`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Timelike;
use common::{backends, ledger_facts, spawn_app, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::clock::{now_ms, BizClock};
use points_engine::db::Db;
use serde_json::{json, Value};

const ADMIN: &[(&str, &str)] = &[("X-Admin-Key", ADMIN_KEY)];
const OPEN_ALL_DAY: (&str, &str) = ("00:00:00", "24:00:00");
const CLOSED_SINCE_MIDNIGHT: (&str, &str) = ("00:00:00", "00:00:01");

fn clock() -> BizClock {
    BizClock::new(chrono_tz::Asia::Shanghai)
}

/// The period of the business day `offset` days from today.
fn period(offset: i64) -> String {
    let date = clock().date(now_ms()) + chrono::Duration::days(offset);
    date.format("%Y%m%d").to_string()
}

fn second_of_day() -> u32 {
    clock().local(now_ms()).num_seconds_from_midnight()
}

/// Creates app `app_id` with `rules` as its morning config (on top of the defaults).
async fn setup_app(app: &TestApp, app_id: &str, rules: Value) {
    if app_id != "default" {
        let (_, body) = app.post("/admin/apps", ADMIN, &json!({"id": app_id})).await;
        assert_eq!(body["status"], true, "{body}");
    }
    configure(app, app_id, rules).await;
}

async fn configure(app: &TestApp, app_id: &str, mut rules: Value) -> Value {
    rules["app_id"] = json!(app_id);
    let (status, body) = app.post("/admin/morning/config", ADMIN, &rules).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], true, "{body}");
    body
}

async fn window(app: &TestApp, app_id: &str, (start, end): (&str, &str)) {
    configure(app, app_id, json!({"start_time": start, "end_time": end})).await;
}

/// A user of `app_id` with `points` points: (user id, bearer header).
async fn user(app: &TestApp, app_id: &str, code: &str, points: i64) -> (String, String) {
    let (_, body) = app
        .post(
            "/v2/user/login.json",
            &[],
            &json!({"app_id": app_id, "auth_code": code}),
        )
        .await;
    assert_eq!(body["status"], true, "{body}");
    let uid = body["data"]["user_id"]
        .as_str()
        .expect("user_id")
        .to_string();
    let bearer = format!("Bearer {}", body["data"]["token"].as_str().expect("token"));
    if points > 0 {
        let (_, body) = app
            .post(
                "/core/point/update.json",
                ADMIN,
                &json!({"app_id": app_id, "uuid": uid, "amount": points, "task_id": "seed",
                        "flag": "grant", "transfer_info": "seed", "expired_time": "2099-01-01 00:00:00"}),
            )
            .await;
        assert_eq!(body["status"], true, "{body}");
    }
    (uid, bearer)
}

async fn balance(app: &TestApp, app_id: &str, uid: &str) -> i64 {
    let (_, body) = app
        .post(
            "/core/user/balance.json",
            ADMIN,
            &json!({"app_id": app_id, "uuid": uid}),
        )
        .await;
    body["data"]["active_balance"]
        .as_i64()
        .expect("active_balance")
}

/// A 000 call as `uid` of `app_id`.
async fn call(app: &TestApp, route: &str, app_id: &str, (uid, bearer): &(String, String)) -> Value {
    let (status, body) = app
        .post(
            route,
            &[("Authorization", bearer.as_str())],
            &json!({"app_id": app_id, "user_id": uid}),
        )
        .await;
    assert_eq!(status, 200, "{route}: {body}");
    body
}

async fn admin_signup(app: &TestApp, app_id: &str, period: &str, uid: &str) -> Value {
    let (status, body) = app
        .post(
            "/admin/morning/signups",
            ADMIN,
            &json!({"app_id": app_id, "period": period, "user_id": uid}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn settle(app: &TestApp, app_id: &str, period: &str) -> Value {
    let (status, body) = app
        .post(
            "/admin/morning/settle",
            ADMIN,
            &json!({"app_id": app_id, "period": period}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every user of the database: balance == sum of entries == unspent lots, never negative.
async fn assert_all_conserved(database_url: &str) {
    let db = Db::connect(database_url, 2).await.expect("connect");
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT u.id, \
         CAST(COALESCE((SELECT balance FROM balances b WHERE b.user_id = u.id), 0) AS BIGINT), \
         CAST(COALESCE((SELECT SUM(amount) FROM ledger_entries e WHERE e.user_id = u.id), 0) AS BIGINT), \
         CAST(COALESCE((SELECT SUM(remaining) FROM credit_lots l WHERE l.user_id = u.id), 0) AS BIGINT) \
         FROM users u",
    )
    .fetch_all(&db.read)
    .await
    .expect("facts");
    for (user, balance, sum, lots) in rows {
        assert_eq!(balance, sum, "user {user}: balance != sum of entries");
        assert_eq!(balance, lots, "user {user}: balance != unspent lots");
        assert!(balance >= 0, "user {user}: negative balance");
    }
    let negative: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries WHERE balance_after < 0",
    )
    .fetch_one(&db.read)
    .await
    .expect("negatives");
    assert_eq!(negative, 0, "a balance went negative");
    db.read.close().await;
    db.write.close().await;
}

/// Sum and count of the entries of `kind` in round `period` of `app_id`.
async fn round_entries(database_url: &str, app_id: &str, period: &str, kind: &str) -> (i64, i64) {
    let db = Db::connect(database_url, 2).await.expect("connect");
    let row: (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT), CAST(COUNT(*) AS BIGINT) \
         FROM ledger_entries WHERE app_id = $1 AND reference = $2 AND kind = $3",
    )
    .bind(app_id)
    .bind(format!("pick:{period}"))
    .bind(kind)
    .fetch_one(&db.read)
    .await
    .expect("round entries");
    db.read.close().await;
    db.write.close().await;
    row
}

/// Entry count of a user (any kind), to show that a refusal wrote nothing.
async fn entry_count(app: &TestApp, app_id: &str, uid: &str) -> i64 {
    let (_, body) = app
        .get(
            &format!("/admin/users/ledger?app_id={app_id}&user_id={uid}&step=100"),
            ADMIN,
        )
        .await;
    body["data"]["total"].as_i64().expect("total")
}

fn refused(body: &Value, code: i64, msg: &str) {
    assert_eq!(body["status"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["msg"].as_str().unwrap_or_default().contains(msg),
        "expected {msg:?}: {body}"
    );
}

#[actix_web::test]
async fn concurrent_sign_ups_charge_each_user_once() {
    for backend in backends() {
        // Arrange: the default app's fresh rules (ticket 10), 50 users with 100 points.
        let app = Arc::new(spawn_app(backend).await);
        let (_, body) = app.get("/admin/morning/config?app_id=default", ADMIN).await;
        assert_eq!(
            body["data"],
            json!({"app_id": "default", "ticket": 10, "coefficient": 1.0, "start_time": "05:30:00",
                   "end_time": "08:30:00", "mode": "random", "min": 10, "max": 100,
                   "inflation_min": 1, "inflation_max": 3}),
            "{backend:?}"
        );
        let mut users = Vec::new();
        for i in 0..50 {
            users.push(user(&app, "default", &format!("early{i}"), 100).await);
        }

        // Act: everyone signs up at once.
        let answers = join_all(users.iter().map(|u| {
            let app = Arc::clone(&app);
            async move { call(&app, "/v2/pick/sign.json", "default", u).await }
        }))
        .await;

        // Assert: each paid once; a second sign-up is refused and charges nothing.
        for body in &answers {
            assert_eq!(body["status"], true, "{backend:?}: {body}");
            assert_eq!(body["data"], json!([]));
        }
        for (uid, _) in &users {
            assert_eq!(balance(&app, "default", uid).await, 90, "{backend:?}");
        }
        let again = call(&app, "/v2/pick/sign.json", "default", &users[0]).await;
        refused(&again, 410, "已参与");
        assert_eq!(balance(&app, "default", &users[0].0).await, 90);

        // One user, 20 concurrent sign-ups: one charge.
        let eager = user(&app, "default", "eager", 100).await;
        let answers = join_all((0..20).map(|_| {
            let app = Arc::clone(&app);
            let eager = eager.clone();
            async move { call(&app, "/v2/pick/sign.json", "default", &eager).await }
        }))
        .await;
        let wins = answers.iter().filter(|b| b["status"] == true).count();
        assert_eq!(wins, 1, "{backend:?}: {answers:?}");
        for body in answers.iter().filter(|b| b["status"] == false) {
            refused(body, 410, "已参与");
        }
        assert_eq!(balance(&app, "default", &eager.0).await, 90);

        // Not enough points: 402 and nothing written; another user's id: 403; no token: 401.
        let poor = user(&app, "default", "poor", 5).await;
        let before = entry_count(&app, "default", &poor.0).await;
        refused(
            &call(&app, "/v2/pick/sign.json", "default", &poor).await,
            402,
            "积分不足",
        );
        assert_eq!(balance(&app, "default", &poor.0).await, 5);
        assert_eq!(entry_count(&app, "default", &poor.0).await, before);
        let forged = (users[1].0.clone(), poor.1.clone());
        refused(
            &call(&app, "/v2/pick/sign.json", "default", &forged).await,
            403,
            "",
        );
        let (_, body) = app
            .post("/v2/pick/sign.json", &[], &json!({"user_id": poor.0}))
            .await;
        refused(&body, 401, "");

        // The ledger holds 51 stakes of 10 for tomorrow's round, and show reflects it.
        let tomorrow = period(1);
        assert_eq!(
            round_entries(&app.database_url, "default", &tomorrow, "pick_sign").await,
            (-510, 51)
        );
        let shown = call(&app, "/v2/pick/show.json", "default", &users[3]).await;
        let data = &shown["data"];
        assert_eq!(data["period"], tomorrow, "{shown}");
        assert_eq!(data["btn_callback"], "SIGN");
        assert_eq!(data["btn_click"], false, "signed up already: {shown}");
        assert_eq!(data["pick_sum"], 51);
        assert_eq!(data["diff_sum"], 51);
        assert_eq!(data["pool"], 510);
        assert_eq!(data["is_pop"], false);
        let shown = call(&app, "/v2/pick/show.json", "default", &poor).await;
        assert_eq!(shown["data"]["btn_click"], true, "{shown}");

        for (uid, _) in users.iter().chain([&eager, &poor]) {
            ledger_facts(&app.database_url, uid)
                .await
                .assert_conserved();
        }
        assert_all_conserved(&app.database_url).await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn check_ins_outside_the_window_or_without_sign_up_change_nothing() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let today = period(0);
        window(&app, "default", OPEN_ALL_DAY).await;
        let signed: Vec<(String, String)> = {
            let mut v = Vec::new();
            for code in ["ann", "bob", "cat", "dan"] {
                let u = user(&app, "default", code, 50).await;
                let body = admin_signup(&app, "default", &today, &u.0).await;
                assert_eq!(body["status"], true, "{backend:?}: {body}");
                assert_eq!(body["data"]["stake"], 10);
                assert_eq!(body["data"]["balance_after"], 40);
                v.push(u);
            }
            v
        };
        let stranger = user(&app, "default", "stranger", 50).await;
        let counts = |u: &(String, String)| {
            let app = Arc::clone(&app);
            let uid = u.0.clone();
            async move {
                (
                    balance(&app, "default", &uid).await,
                    entry_count(&app, "default", &uid).await,
                )
            }
        };
        let before: Vec<(i64, i64)> = join_all(signed.iter().chain([&stranger]).map(counts)).await;

        // Before the window (when "now" leaves room for a later one).
        let now = second_of_day();
        if now < 86_000 {
            let start = now + 300;
            let start = format!(
                "{:02}:{:02}:{:02}",
                start / 3600,
                start % 3600 / 60,
                start % 60
            );
            window(&app, "default", (&start, "24:00:00")).await;
            refused(
                &call(&app, "/v2/pick/pick.json", "default", &signed[0]).await,
                410,
                "尚未开始",
            );
            refused(
                &call(&app, "/v2/pick/pick.json", "default", &stranger).await,
                410,
                "尚未开始",
            );
            let shown = call(&app, "/v2/pick/show.json", "default", &signed[0]).await;
            assert_eq!(shown["data"]["btn_callback"], "SIGN", "{shown}");
        }

        // After the window.
        window(&app, "default", CLOSED_SINCE_MIDNIGHT).await;
        refused(
            &call(&app, "/v2/pick/pick.json", "default", &signed[0]).await,
            410,
            "已结束",
        );

        // Inside the window: not signed up, first check-in, twice.
        window(&app, "default", OPEN_ALL_DAY).await;
        let shown = call(&app, "/v2/pick/show.json", "default", &signed[0]).await;
        assert_eq!(shown["data"]["period"], today, "{shown}");
        assert_eq!(shown["data"]["btn_callback"], "PICK");
        assert_eq!(shown["data"]["btn_click"], true);
        assert_eq!(shown["data"]["pick_sum"], 4);
        assert_eq!(shown["data"]["diff_sum"], 4);
        refused(
            &call(&app, "/v2/pick/pick.json", "default", &stranger).await,
            410,
            "未报名",
        );
        let after: Vec<(i64, i64)> = join_all(signed.iter().chain([&stranger]).map(counts)).await;
        assert_eq!(before, after, "{backend:?}: a refusal changed something");

        let ok = call(&app, "/v2/pick/pick.json", "default", &signed[0]).await;
        assert_eq!(ok["status"], true, "{backend:?}: {ok}");
        assert_eq!(ok["data"], json!([]));
        refused(
            &call(&app, "/v2/pick/pick.json", "default", &signed[0]).await,
            410,
            "已参与",
        );
        let shown = call(&app, "/v2/pick/show.json", "default", &signed[0]).await;
        assert_eq!(shown["data"]["btn_callback"], "PICK");
        assert_eq!(
            shown["data"]["btn_click"], false,
            "checked in already: {shown}"
        );
        assert_eq!(shown["data"]["diff_sum"], 3);

        // 20 concurrent check-ins of one user: one entry.
        let answers = join_all((0..20).map(|_| {
            let app = Arc::clone(&app);
            let u = signed[1].clone();
            async move { call(&app, "/v2/pick/pick.json", "default", &u).await }
        }))
        .await;
        assert_eq!(answers.iter().filter(|b| b["status"] == true).count(), 1);
        assert_eq!(
            round_entries(&app.database_url, "default", &today, "pick_check").await,
            (0, 2)
        );
        // A check-in costs nothing.
        assert_eq!(balance(&app, "default", &signed[0].0).await, 40);

        // The earliest check-in leads today's lark rank.
        let rank = call(&app, "/v2/pick/rank.json", "default", &stranger).await;
        assert_eq!(rank["status"], true, "{rank}");
        // The request names no user: the same board without a token, by GET and POST.
        let (_, anonymous) = app.get("/v2/pick/rank.json?app_id=default", &[]).await;
        assert_eq!(anonymous["data"], rank["data"], "{anonymous}");
        let (_, anonymous) = app.post("/v2/pick/rank.json", &[], &json!({})).await;
        assert_eq!(anonymous["data"], rank["data"], "{anonymous}");
        let (_, unknown) = app.get("/v2/pick/rank.json?app_id=no-such-app", &[]).await;
        assert_eq!(unknown["code"], 404, "{unknown}");
        assert!(rank["data"]["lark"]["desc"]
            .as_str()
            .unwrap_or_default()
            .contains("打卡"));
        assert_eq!(rank["data"]["lucky"]["desc"], "虚位以待");

        // Settlement is refused while the window is open.
        refused(&settle(&app, "default", &today).await, 410, "尚未结束");
        assert_all_conserved(&app.database_url).await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn split_rounds_pay_exactly_the_stakes() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let today = period(0);
        // (app, ticket, signers, checkers): even shares, a remainder, everyone, nobody.
        let cases = [
            ("s1", 10, 10, 3),
            ("s2", 7, 9, 4),
            ("s3", 5, 6, 6),
            ("s4", 10, 5, 0),
            ("s5", 1, 3, 5),
            ("s6", 0, 3, 2),
        ];
        for (app_id, ticket, signers, checkers) in cases {
            let checkers = checkers.min(signers);
            setup_app(
                &app,
                app_id,
                json!({"mode": "split", "ticket": ticket, "coefficient": "1.5",
                       "start_time": OPEN_ALL_DAY.0, "end_time": OPEN_ALL_DAY.1}),
            )
            .await;
            let mut users = Vec::new();
            for i in 0..signers {
                let u = user(&app, app_id, &format!("{app_id}u{i}"), 100).await;
                let body = admin_signup(&app, app_id, &today, &u.0).await;
                assert_eq!(body["status"], true, "{backend:?}: {body}");
                users.push(u);
            }
            // Check in one after another: the order decides who gets the remainder.
            for u in users.iter().take(checkers) {
                let body = call(&app, "/v2/pick/pick.json", app_id, u).await;
                assert_eq!(body["status"], true, "{backend:?}: {body}");
            }
            let stakes = ticket * signers as i64;
            let shown = call(&app, "/v2/pick/show.json", app_id, &users[0]).await;
            if checkers > 0 {
                assert_eq!(shown["data"]["pool"], stakes * 3 / 2, "{shown}");
            }

            window(&app, app_id, CLOSED_SINCE_MIDNIGHT).await;
            let report = settle(&app, app_id, &today).await;
            assert_eq!(report["status"], true, "{backend:?}: {report}");
            assert_eq!(report["data"]["already_settled"], false);
            assert_eq!(report["data"]["stakes"], stakes, "{report}");
            assert_eq!(report["data"]["payouts"], stakes, "{report}");
            assert_eq!(report["data"]["mode"], "split");

            let paid = round_entries(&app.database_url, app_id, &today, "pick_pay").await;
            assert_eq!(paid.0, stakes, "{backend:?} {app_id}: payouts != stakes");
            let base = if checkers > 0 {
                stakes / checkers as i64
            } else {
                0
            };
            let extra = if checkers > 0 {
                stakes % checkers as i64
            } else {
                0
            };
            for (i, u) in users.iter().enumerate() {
                let got = balance(&app, app_id, &u.0).await - (100 - ticket);
                let expected = if checkers == 0 {
                    ticket
                } else if i < checkers {
                    base + i64::from((i as i64) < extra)
                } else {
                    0
                };
                assert_eq!(got, expected, "{backend:?} {app_id}: user {i}");
            }

            // The result pops once; missed (or refunded) users are told so.
            let shown = call(&app, "/v2/pick/show.json", app_id, &users[0]).await;
            assert_eq!(shown["data"]["is_pop"], true, "{shown}");
            let popped = call(&app, "/v2/pick/pop.json", app_id, &users[0]).await;
            if checkers > 0 {
                assert_eq!(popped["status"], true, "{popped}");
                assert_eq!(popped["data"]["pub_points"], base + i64::from(extra > 0));
            } else {
                refused(&popped, 410, "退还");
            }
            let shown = call(&app, "/v2/pick/show.json", app_id, &users[0]).await;
            assert_eq!(shown["data"]["is_pop"], false, "{shown}");
            if checkers < signers {
                let missed = call(&app, "/v2/pick/pop.json", app_id, &users[signers - 1]).await;
                assert_eq!(missed["status"], false, "{missed}");
            }

            // Settling again, or by the job, pays nothing extra.
            let again = settle(&app, app_id, &today).await;
            assert_eq!(again["data"]["already_settled"], true, "{again}");
            assert_eq!(again["data"]["payouts"], stakes);
            let (_, jobs) = app.post("/admin/jobs/run", ADMIN, &json!({})).await;
            assert_eq!(jobs["status"], true, "{jobs}");
            assert_eq!(
                round_entries(&app.database_url, app_id, &today, "pick_pay").await,
                paid
            );
            // The round is closed: no late check-in or sign-up.
            window(&app, app_id, OPEN_ALL_DAY).await;
            if checkers < signers {
                let late = call(&app, "/v2/pick/pick.json", app_id, &users[signers - 1]).await;
                refused(&late, 410, "已结束");
            }
            let late = user(&app, app_id, &format!("{app_id}late"), 100).await;
            refused(
                &admin_signup(&app, app_id, &today, &late.0).await,
                410,
                "已结束",
            );
            assert_all_conserved(&app.database_url).await;
        }
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn random_rounds_pay_within_bounds_and_inflate_on_the_seventh_day() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let today = period(0);
        let yesterday = period(-1);
        // r1: a spread of payouts; r2: fixed amounts so the inflation is visible exactly.
        for (app_id, min, max, inflation) in [("r1", 10, 100, (2, 3)), ("r2", 10, 10, (3, 3))] {
            setup_app(
                &app,
                app_id,
                json!({"mode": "random", "ticket": 5, "min": min, "max": max,
                       "inflation_min": inflation.0, "inflation_max": inflation.1,
                       "start_time": OPEN_ALL_DAY.0, "end_time": OPEN_ALL_DAY.1}),
            )
            .await;
            let mut users = Vec::new();
            for i in 0..12 {
                let u = user(&app, app_id, &format!("{app_id}u{i}"), 100).await;
                admin_signup(&app, app_id, &today, &u.0).await;
                users.push(u);
            }
            // User 0 checked in on each of the 6 days before: today is their 7th in a row.
            let db = Db::connect(&app.database_url, 2).await.expect("connect");
            let streaker: i64 =
                sqlx::query_scalar("SELECT id FROM users WHERE app_id = $1 AND platform_uid = $2")
                    .bind(app_id)
                    .bind(&users[0].0)
                    .fetch_one(&db.read)
                    .await
                    .expect("user id");
            sqlx::query(
                "INSERT INTO morning_results (app_id, period, user_id, stake, checked_in, \
                 checked_at, streak, inflation, payout) VALUES ($1, $2, $3, 5, 1, 0, 6, 1, 10)",
            )
            .bind(app_id)
            .bind(&yesterday)
            .bind(streaker)
            .execute(&db.write)
            .await
            .expect("seed streak");
            db.write.close().await;
            db.read.close().await;

            for u in users.iter().take(9) {
                let body = call(&app, "/v2/pick/pick.json", app_id, u).await;
                assert_eq!(body["status"], true, "{backend:?}: {body}");
            }
            window(&app, app_id, CLOSED_SINCE_MIDNIGHT).await;
            // r2 is settled by the periodic job, r1 by the admin route.
            if app_id == "r2" {
                let (_, jobs) = app.post("/admin/jobs/run", ADMIN, &json!({})).await;
                assert_eq!(jobs["status"], true, "{jobs}");
                let again = settle(&app, app_id, &today).await;
                assert_eq!(again["data"]["already_settled"], true, "{again}");
            } else {
                let report = settle(&app, app_id, &today).await;
                assert_eq!(report["data"]["already_settled"], false, "{report}");
                assert_eq!(report["data"]["checkins"], 9);
                assert_eq!(report["data"]["signups"], 12);
            }
            let paid = round_entries(&app.database_url, app_id, &today, "pick_pay").await;
            assert_eq!(paid.1, 9, "{backend:?}: one payout per check-in");

            let mut payouts = HashMap::new();
            for (i, u) in users.iter().enumerate() {
                let got = balance(&app, app_id, &u.0).await - 95;
                payouts.insert(i, got);
                if i >= 9 {
                    assert_eq!(got, 0, "{backend:?}: missed users get nothing");
                } else if i == 0 {
                    assert!(
                        (min * inflation.0..=max * inflation.1).contains(&got),
                        "{backend:?} {app_id}: streak payout {got}"
                    );
                } else {
                    assert!((min..=max).contains(&got), "{backend:?}: payout {got}");
                }
            }
            if app_id == "r2" {
                assert_eq!(payouts[&0], 30, "the 7th day triples the payout");
                let popped = call(&app, "/v2/pick/pop.json", app_id, &users[0]).await;
                assert_eq!(
                    popped["data"],
                    json!({"is_combo_pick": true, "pub_points": 30})
                );
                let popped = call(&app, "/v2/pick/pop.json", app_id, &users[1]).await;
                assert_eq!(
                    popped["data"],
                    json!({"is_combo_pick": false, "pub_points": 10})
                );
                let missed = call(&app, "/v2/pick/pop.json", app_id, &users[10]).await;
                refused(&missed, 410, "未在规定时间");
                let rank = call(&app, "/v2/pick/rank.json", app_id, &users[5]).await;
                assert_eq!(rank["data"]["lucky"]["desc"], "获得30积分", "{rank}");
                assert_eq!(rank["data"]["diligent"]["desc"], "连续打卡7天", "{rank}");
            }

            // Settling twice pays nothing extra.
            settle(&app, app_id, &today).await;
            assert_eq!(
                round_entries(&app.database_url, app_id, &today, "pick_pay").await,
                paid
            );
            assert_all_conserved(&app.database_url).await;
        }
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let today = period(0);
        let original = configure(&app, "default", json!({})).await["data"].clone();
        let bad_configs = [
            json!({"ticket": -1}),
            json!({"ticket": "many"}),
            json!({"start_time": "08:30", "end_time": "05:30"}),
            json!({"start_time": "07:00", "end_time": "07:00"}),
            json!({"start_time": "25:00"}),
            json!({"end_time": "8:30"}),
            json!({"min": 50, "max": 10}),
            json!({"min": -1}),
            json!({"inflation_min": 0}),
            json!({"inflation_min": 3, "inflation_max": 2}),
            json!({"mode": "lottery"}),
            json!({"coefficient": "abc"}),
            json!({"coefficient": -1}),
            json!({"max": 1_000_000_000_000_i64}),
        ];
        for bad in bad_configs {
            let mut body = bad.clone();
            body["app_id"] = json!("default");
            let (status, answer) = app.post("/admin/morning/config", ADMIN, &body).await;
            assert_eq!(status, 200, "{backend:?}: {bad}");
            refused(&answer, 400, "");
        }
        let (_, now) = app.get("/admin/morning/config", ADMIN).await;
        assert_eq!(
            now["data"], original,
            "{backend:?}: bad input changed the config"
        );
        let (_, answer) = app
            .post(
                "/admin/morning/config",
                ADMIN,
                &json!({"app_id": "nope", "ticket": 1}),
            )
            .await;
        refused(&answer, 404, "");
        let (_, answer) = app
            .post("/admin/morning/config", &[], &json!({"ticket": 1}))
            .await;
        refused(&answer, 401, "");

        let someone = user(&app, "default", "someone", 100).await;
        for bad_period in ["2026-13-01", "abc", "20261301", "2026111", ""] {
            refused(&settle(&app, "default", bad_period).await, 400, "");
            refused(
                &admin_signup(&app, "default", bad_period, &someone.0).await,
                400,
                "",
            );
        }
        refused(
            &admin_signup(&app, "default", &period(-1), &someone.0).await,
            400,
            "",
        );
        refused(
            &admin_signup(&app, "default", &period(40), &someone.0).await,
            400,
            "",
        );
        refused(
            &admin_signup(&app, "default", &today, "nobody").await,
            404,
            "",
        );
        refused(&settle(&app, "nope", &today).await, 404, "");
        refused(&settle(&app, "default", &period(1)).await, 410, "");
        let (_, answer) = app
            .post(
                "/admin/morning/settle",
                ADMIN,
                &json!({"app_id": "default"}),
            )
            .await;
        refused(&answer, 400, "period");

        for route in ["sign", "pick", "show", "pop", "rank"] {
            let path = format!("/v2/pick/{route}.json");
            let auth = [("Authorization", someone.1.as_str())];
            let (status, answer) = app.post(&path, &auth, &json!({"app_id": [1]})).await;
            assert_eq!(status, 200, "{path}");
            refused(&answer, 400, "");
            let res = app
                .client
                .post(app.url(&path))
                .header("Authorization", someone.1.as_str())
                .header("Content-Type", "application/json")
                .body("{not json")
                .send()
                .await
                .expect("send");
            assert_eq!(res.status().as_u16(), 200, "{path}");
            let answer: Value = res.json().await.expect("json");
            refused(&answer, 400, "");
            if route != "rank" {
                let (_, answer) = app.post(&path, &auth, &json!({})).await;
                refused(&answer, 400, "user_id");
            }
        }
        // Nothing was charged, nothing was written.
        assert_eq!(balance(&app, "default", &someone.0).await, 100);
        assert_eq!(entry_count(&app, "default", &someone.0).await, 1);
        refused(
            &call(&app, "/v2/pick/pop.json", "default", &someone).await,
            410,
            "暂无",
        );
        assert_all_conserved(&app.database_url).await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_second_process_rebuilds_the_round_from_the_ledger() {
    // Two processes on one database: Postgres only (a SQLite file serves one process).
    for backend in backends()
        .into_iter()
        .filter(|b| *b == common::Backend::Postgres)
    {
        // Arrange: sign-ups (today and tomorrow) and check-ins through one server.
        let app = spawn_app(backend).await;
        let today = period(0);
        setup_app(
            &app,
            "default",
            json!({"mode": "split", "start_time": OPEN_ALL_DAY.0, "end_time": OPEN_ALL_DAY.1}),
        )
        .await;
        let mut users = Vec::new();
        for i in 0..4 {
            let u = user(&app, "default", &format!("twin{i}"), 100).await;
            admin_signup(&app, "default", &today, &u.0).await;
            users.push(u);
        }
        for u in users.iter().take(2) {
            let body = call(&app, "/v2/pick/pick.json", "default", u).await;
            assert_eq!(body["status"], true, "{body}");
        }
        let body = call(&app, "/v2/pick/sign.json", "default", &users[0]).await;
        assert_eq!(body["status"], true, "{body}");

        // Act: a second process on the same database, whose round actors start from the ledger.
        let other = common::spawn_process(&app.database_url, &[]).await;
        let client = common::client();
        let post = |path: &str, headers: Vec<(&str, String)>, body: Value| {
            let mut req = client.post(format!("{}{path}", other.address)).json(&body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            async move {
                req.send()
                    .await
                    .expect("send")
                    .json::<Value>()
                    .await
                    .expect("json")
            }
        };
        let as_user = |u: &(String, String)| {
            (
                vec![("Authorization", u.1.clone())],
                json!({"app_id": "default", "user_id": u.0}),
            )
        };

        // Assert: it knows who signed up and who checked in.
        let (h, b) = as_user(&users[0]);
        refused(&post("/v2/pick/pick.json", h, b).await, 410, "已参与");
        let (h, b) = as_user(&users[0]);
        refused(&post("/v2/pick/sign.json", h, b).await, 410, "已参与");
        let (h, b) = as_user(&users[3]);
        let shown = post("/v2/pick/show.json", h, b).await;
        assert_eq!(shown["data"]["btn_callback"], "PICK", "{shown}");
        assert_eq!(shown["data"]["pick_sum"], 4, "{shown}");
        assert_eq!(shown["data"]["diff_sum"], 2, "{shown}");
        let (h, b) = as_user(&users[2]);
        assert_eq!(post("/v2/pick/pick.json", h, b).await["status"], true);

        // One server settles; the other finds it settled and pays nothing more. The other still
        // caches the open window, yet the sealed round refuses its late check-in.
        window(&app, "default", CLOSED_SINCE_MIDNIGHT).await;
        let report = settle(&app, "default", &today).await;
        assert_eq!(
            report["data"]["already_settled"], false,
            "{backend:?}: {report}"
        );
        assert_eq!(report["data"]["checkins"], 3, "{report}");
        assert_eq!(report["data"]["payouts"], 40, "{report}");
        let again = post(
            "/admin/morning/settle",
            vec![("X-Admin-Key", ADMIN_KEY.to_string())],
            json!({"app_id": "default", "period": today}),
        )
        .await;
        assert_eq!(again["data"]["already_settled"], true, "{again}");
        let (h, b) = as_user(&users[3]);
        assert_eq!(post("/v2/pick/pick.json", h, b).await["status"], false);
        assert_eq!(
            round_entries(&app.database_url, "default", &today, "pick_check").await,
            (0, 3)
        );
        assert_eq!(
            round_entries(&app.database_url, "default", &today, "pick_pay").await,
            (40, 3)
        );
        // 40 points over three: 14 to the earliest, 13 to the others.
        assert_eq!(balance(&app, "default", &users[0].0).await, 80 + 14);
        assert_eq!(balance(&app, "default", &users[1].0).await, 90 + 13);
        assert_eq!(balance(&app, "default", &users[2].0).await, 90 + 13);
        assert_eq!(balance(&app, "default", &users[3].0).await, 90);
        assert_all_conserved(&app.database_url).await;
        drop(other);
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn check_ins_and_settlement_are_pushed_on_the_app_topic() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    for backend in backends() {
        let app = spawn_app(backend).await;
        let today = period(0);
        setup_app(
            &app,
            "default",
            json!({"mode": "split", "start_time": OPEN_ALL_DAY.0, "end_time": OPEN_ALL_DAY.1}),
        )
        .await;
        let ann = user(&app, "default", "wsann", 50).await;
        let bob = user(&app, "default", "wsbob", 50).await;
        for u in [&ann, &bob] {
            admin_signup(&app, "default", &today, &u.0).await;
        }
        let token = ann.1.trim_start_matches("Bearer ");
        let url = format!(
            "{}/ws?token={token}",
            app.address.replacen("http://", "ws://", 1)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket upgrade");
        let topic = json!({"op": "subscribe", "topic": "morning:default"});
        ws.send(Message::text(topic.to_string()))
            .await
            .expect("subscribe");
        // Frames of the topic until one satisfies `done`.
        let mut frame_where = async |done: &dyn Fn(&Value) -> bool| loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(text) = next {
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                if frame["topic"] == "morning:default" && done(&frame["data"]) {
                    return frame;
                }
            }
        };

        let body = call(&app, "/v2/pick/pick.json", "default", &ann).await;
        assert_eq!(body["status"], true, "{body}");
        let frame = frame_where(&|d| d["checked_sum"] == 1).await;
        assert_eq!(frame["data"]["period"], today, "{backend:?}: {frame}");
        assert_eq!(frame["data"]["pick_sum"], 2);
        assert_eq!(frame["data"]["diff_sum"], 1);
        assert_eq!(frame["data"]["settled"], false);

        window(&app, "default", CLOSED_SINCE_MIDNIGHT).await;
        settle(&app, "default", &today).await;
        let frame = frame_where(&|d| d["settled"] == true).await;
        assert_eq!(frame["data"]["payouts"], 20, "{backend:?}: {frame}");
        assert_eq!(balance(&app, "default", &ann.0).await, 60);
        // Close the socket first: a graceful stop waits for open connections.
        ws.close(None).await.expect("close");
        app.handle.stop(true).await;
    }
}
