//! Daily sign-in on SQLite and Postgres: one reward per business day however many requests race,
//! streaks and milestones (reached by seeding earlier days straight into `signins`, since a test
//! cannot wait for days), the month detail, the follow/favourite pop, 003's codes, the admin
//! settings, and bad input that changes nothing.
//!
//! The day arithmetic around midnight business time is covered by the unit tests of
//! `points_engine::features::signin` (`streak_after`, `detail`).

mod common;

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use common::{backends, ledger_facts, spawn_app, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::clock::{now_ms, BizClock};
use points_engine::db::Db;
use serde_json::{json, Value};

const DO: &str = "/v2/sign/do.json";
const DETAIL: &str = "/v2/sign/detail.json";
const POP: &str = "/v2/sign/pop.json";
const POP_INFO: &str = "/v2/sign/pop/info.json";
const CONFIG: &str = "/admin/signin/config";

// ----- helpers -----

/// Today in business time (the test server runs on the default Asia/Shanghai).
fn today() -> NaiveDate {
    BizClock::new(chrono_tz::Asia::Shanghai).date(now_ms())
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).expect("date")
}

fn text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

async fn db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, 2).await.expect("connect")
}

async fn user_id(db: &Db, uid: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE app_id = 'default' AND platform_uid = $1")
        .bind(uid)
        .fetch_one(&db.read)
        .await
        .expect("user")
}

/// Stores earlier sign-ins of `uid` as `(day, streak)` rows, as if they had happened.
async fn seed(app: &TestApp, uid: &str, days: &[(NaiveDate, i64)]) {
    let db = db(app).await;
    let id = user_id(&db, uid).await;
    for (day, streak) in days {
        sqlx::query(
            "INSERT INTO signins (app_id, user_id, day, streak, points, bonus, created_at) \
             VALUES ('default', $1, $2, $3, 5, 0, 0)",
        )
        .bind(id)
        .bind(text(*day))
        .bind(*streak)
        .execute(&db.write)
        .await
        .expect("seed sign-in");
    }
}

/// Every row count a sign-in request could change.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let db = db(app).await;
    let mut out = Vec::new();
    for table in [
        "ledger_entries",
        "balances",
        "credit_lots",
        "signins",
        "signin_settings",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&db.read)
            .await
            .expect("count");
        out.push(n);
    }
    let sum: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries")
            .fetch_one(&db.read)
            .await
            .expect("sum");
    out.push(sum);
    out
}

/// `(kind, amount)` of a user's ledger entries in commit order.
async fn entries(app: &TestApp, uid: &str) -> Vec<(String, i64)> {
    let db = db(app).await;
    let id = user_id(&db, uid).await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, amount FROM ledger_entries WHERE user_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&db.read)
            .await
            .expect("entries");
    rows
}

async fn signin_row(app: &TestApp, uid: &str, day: NaiveDate) -> Option<(i64, i64, i64)> {
    let db = db(app).await;
    let id = user_id(&db, uid).await;
    sqlx::query_as("SELECT streak, points, bonus FROM signins WHERE user_id = $1 AND day = $2")
        .bind(id)
        .bind(text(day))
        .fetch_optional(&db.read)
        .await
        .expect("signin row")
}

async fn call(app: &TestApp, path: &str, auth: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[("Authorization", auth)], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn sign(app: &TestApp, user: &str, auth: &str) -> Value {
    call(app, DO, auth, json!({"app_id": "default", "user_id": user})).await
}

async fn detail(app: &TestApp, user: &str, auth: &str) -> Value {
    let body = call(
        app,
        DETAIL,
        auth,
        json!({"app_id": "default", "user_id": user}),
    )
    .await;
    assert_eq!(body["status"], true, "{body}");
    body["data"].clone()
}

fn assert_refused(body: &Value, code: i64) {
    assert_eq!(body["status"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["data"], json!([]), "{body}");
}

/// Dev login through 003 `/api/login/`: (openid, bearer header value).
async fn mini_login(app: &TestApp, code: &str) -> (String, String) {
    let (status, body) = app.post("/api/login/", &[], &json!({"code": code})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0, "{body}");
    let openid = body["data"]["openid"].as_str().expect("openid").to_string();
    let token = body["data"]["token"].as_str().expect("token");
    (openid, format!("Bearer {token}"))
}

/// A bad request: path, headers, body and the 000 code it must answer.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value, i64);

// ----- tests -----

#[actix_web::test]
async fn twenty_concurrent_sign_ins_pay_once() {
    for backend in backends() {
        // Arrange
        let app = Arc::new(spawn_app(backend).await);
        let (user, auth) = app.login("alice").await;

        // Act: 20 sign-ins of one user at once.
        let tasks = (0..20).map(|_| {
            let app = Arc::clone(&app);
            let (user, auth) = (user.clone(), auth.clone());
            async move { sign(&app, &user, &auth).await }
        });
        let replies = join_all(tasks).await;

        // Assert: one success, 19 "already done", one reward.
        let wins = replies.iter().filter(|r| r["status"] == true).count();
        assert_eq!(wins, 1, "{backend:?}: {replies:?}");
        for r in replies.iter().filter(|r| r["status"] != true) {
            assert_refused(r, 410);
        }
        let winner = replies
            .iter()
            .find(|r| r["status"] == true)
            .expect("winner");
        assert_eq!(winner["data"], json!([]), "{winner}");
        assert_eq!(app.balance(&user).await, 5, "{backend:?}");
        assert_eq!(entries(&app, &user).await, vec![("sign".to_string(), 5)]);
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!((facts.balance, facts.entries), (5, 1), "{backend:?}");
        assert_eq!(signin_row(&app, &user, today()).await, Some((1, 5, 0)));

        // Once more later: still refused, nothing added.
        assert_refused(&sign(&app, &user, &auth).await, 410);
        assert_eq!(app.balance(&user).await, 5);

        let d = detail(&app, &user, &auth).await;
        assert_eq!(d["is_sign"], true, "{d}");
        assert_eq!(d["combo_sum"], 1, "{d}");
        assert_eq!(d["reward"], 5, "{d}");
        assert_eq!(d["sign_days"], json!([text(today())]), "{d}");
        assert_eq!(
            (d["more_day"].clone(), d["more_point"].clone()),
            (json!(6), json!(2))
        );
        app.handle.stop(true).await;
    }
}

/// The milestone dates the detail should list: streak day `streak_today + k` on `today + k`,
/// for the rest of this month, with the default milestones repeating every 30 days.
fn expected_special(streak_today: i64, from_offset: u64) -> serde_json::Map<String, Value> {
    let milestones = [(7, 2), (14, 4), (21, 7), (30, 11)];
    let t = today();
    let mut out = serde_json::Map::new();
    for k in from_offset..40 {
        let day = t.checked_add_days(Days::new(k)).expect("date");
        if day.month() != t.month() {
            break;
        }
        let streak = streak_today + k as i64;
        let position = (streak - 1) % 30 + 1;
        if let Some((_, bonus)) = milestones.iter().find(|(d, _)| *d == position) {
            out.insert(text(day), json!(bonus));
        }
    }
    out
}

#[actix_web::test]
async fn streaks_milestones_and_gaps_from_earlier_days() {
    for backend in backends() {
        let app = spawn_app(backend).await;

        // Alice signed the six days before today: today is day 7 of her streak.
        let (alice, alice_auth) = app.login("alice").await;
        let history: Vec<(NaiveDate, i64)> = (1..=6).map(|n| (days_ago(7 - n), n as i64)).collect();
        seed(&app, &alice, &history).await;
        let d = detail(&app, &alice, &alice_auth).await;
        assert_eq!(d["is_sign"], false, "{d}");
        assert_eq!(d["combo_sum"], 6, "{d}");
        assert_eq!(d["reward"], 7, "day 7 pays 5 + 2: {d}");
        assert_eq!(
            (d["more_day"].clone(), d["more_point"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(
            d["special_days"],
            Value::Object(expected_special(7, 0)),
            "{d}"
        );
        assert_eq!(d["special_days"][text(today())], 2, "{d}");
        let month: Vec<String> = history
            .iter()
            .filter(|(day, _)| day.month() == today().month())
            .map(|(day, _)| text(*day))
            .collect();
        assert_eq!(d["sign_days"], json!(month), "{d}");

        let r = sign(&app, &alice, &alice_auth).await;
        assert_eq!(r["status"], true, "{backend:?}: {r}");
        assert_eq!(app.balance(&alice).await, 7, "{backend:?}");
        assert_eq!(
            entries(&app, &alice).await,
            vec![("sign_bonus".to_string(), 2), ("sign".to_string(), 5)],
            "the bonus is a leg of the same change"
        );
        assert_eq!(signin_row(&app, &alice, today()).await, Some((7, 5, 2)));
        let d = detail(&app, &alice, &alice_auth).await;
        assert_eq!(d["is_sign"], true, "{d}");
        assert_eq!(d["combo_sum"], 7, "{d}");
        assert_eq!(d["reward"], 7, "{d}");
        assert_eq!(
            (d["more_day"].clone(), d["more_point"].clone()),
            (json!(7), json!(4))
        );
        assert_eq!(
            d["special_days"],
            Value::Object(expected_special(7, 1)),
            "{d}"
        );
        let mut month = month;
        month.push(text(today()));
        assert_eq!(d["sign_days"], json!(month), "{d}");
        ledger_facts(&app.database_url, &alice)
            .await
            .assert_conserved();

        // Bob missed yesterday: the streak starts again at 1, no bonus.
        let (bob, bob_auth) = app.login("bob").await;
        let history: Vec<(NaiveDate, i64)> = (1..=7).map(|n| (days_ago(9 - n), n as i64)).collect();
        seed(&app, &bob, &history).await;
        assert_eq!(detail(&app, &bob, &bob_auth).await["combo_sum"], 0);
        assert_eq!(sign(&app, &bob, &bob_auth).await["status"], true);
        assert_eq!(app.balance(&bob).await, 5);
        assert_eq!(signin_row(&app, &bob, today()).await, Some((1, 5, 0)));
        let d = detail(&app, &bob, &bob_auth).await;
        assert_eq!(
            (d["combo_sum"].clone(), d["more_day"].clone()),
            (json!(1), json!(6))
        );

        // Carol reaches day 30 (5 + 11); Dave day 37, which is day 7 of the second round.
        let (carol, carol_auth) = app.login("carol").await;
        seed(&app, &carol, &[(days_ago(1), 29)]).await;
        assert_eq!(sign(&app, &carol, &carol_auth).await["status"], true);
        assert_eq!(app.balance(&carol).await, 16);
        let d = detail(&app, &carol, &carol_auth).await;
        assert_eq!(
            (
                d["combo_sum"].clone(),
                d["more_day"].clone(),
                d["more_point"].clone()
            ),
            (json!(30), json!(7), json!(2))
        );
        let (dave, dave_auth) = app.login("dave").await;
        seed(&app, &dave, &[(days_ago(1), 36)]).await;
        assert_eq!(sign(&app, &dave, &dave_auth).await["status"], true);
        assert_eq!(app.balance(&dave).await, 7);
        assert_eq!(signin_row(&app, &dave, today()).await, Some((37, 5, 2)));
        for user in [&bob, &carol, &dave] {
            ledger_facts(&app.database_url, user)
                .await
                .assert_conserved();
        }
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_lost_row_is_restored_from_the_ledger() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, auth) = app.login("erin").await;
        seed(&app, &user, &[(days_ago(1), 3)]).await;
        assert_eq!(sign(&app, &user, &auth).await["status"], true);
        // As if the process had died between the ledger commit and the row.
        let db = db(&app).await;
        sqlx::query("DELETE FROM signins WHERE day = $1")
            .bind(text(today()))
            .execute(&db.write)
            .await
            .expect("delete row");

        // The next attempt pays nothing, says "already done" and writes the row back.
        assert_refused(&sign(&app, &user, &auth).await, 410);
        assert_eq!(app.balance(&user).await, 5);
        assert_eq!(signin_row(&app, &user, today()).await, Some((4, 5, 0)));
        assert_eq!(detail(&app, &user, &auth).await["combo_sum"], 4);
        ledger_facts(&app.database_url, &user)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn follow_and_favourite_pay_once_each() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let (user, auth) = app.login("fay").await;
        let info = |app: Arc<TestApp>, user: String, auth: String| async move {
            let body = call(&app, POP_INFO, &auth, json!({"user_id": user})).await;
            assert_eq!(body["status"], true, "{body}");
            body["data"].clone()
        };
        assert_eq!(
            info(Arc::clone(&app), user.clone(), auth.clone()).await,
            json!({"is_focus": false, "is_collect": false})
        );

        let r = call(
            &app,
            POP,
            &auth,
            json!({"user_id": user, "action": "FOCUS"}),
        )
        .await;
        assert_eq!(
            (r["status"].clone(), r["data"].clone()),
            (json!(true), json!([])),
            "{r}"
        );
        assert_refused(
            &call(
                &app,
                POP,
                &auth,
                json!({"user_id": user, "action": "FOCUS"}),
            )
            .await,
            410,
        );
        assert_eq!(
            info(Arc::clone(&app), user.clone(), auth.clone()).await,
            json!({"is_focus": true, "is_collect": false})
        );

        // Ten favourites at once: one reward.
        let tasks = (0..10).map(|_| {
            let app = Arc::clone(&app);
            let (user, auth) = (user.clone(), auth.clone());
            async move {
                call(
                    &app,
                    POP,
                    &auth,
                    json!({"user_id": user, "action": "COLLECT"}),
                )
                .await
            }
        });
        let replies = join_all(tasks).await;
        assert_eq!(
            replies.iter().filter(|r| r["status"] == true).count(),
            1,
            "{replies:?}"
        );
        for r in replies.iter().filter(|r| r["status"] != true) {
            assert_refused(r, 410);
        }
        assert_eq!(
            info(Arc::clone(&app), user.clone(), auth.clone()).await,
            json!({"is_focus": true, "is_collect": true})
        );
        assert_eq!(app.balance(&user).await, 10, "{backend:?}");
        assert_eq!(
            entries(&app, &user).await,
            vec![("signpop".to_string(), 5), ("signpop".to_string(), 5)]
        );

        // Unknown, missing or malformed actions: 400, nothing changes.
        let before = snapshot(&app).await;
        for body in [
            json!({"user_id": user, "action": "LIKE"}),
            json!({"user_id": user}),
            json!({"user_id": user, "action": ""}),
            json!({"user_id": user, "action": ["FOCUS"]}),
        ] {
            assert_refused(&call(&app, POP, &auth, body.clone()).await, 400);
        }
        assert_eq!(snapshot(&app).await, before);
        ledger_facts(&app.database_url, &user)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn mini_program_sign_and_status_codes() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (openid, auth) = mini_login(&app, "gus").await;
        let headers = [("Authorization", auth.as_str())];
        let status_of = |body: &Value| body["code"].as_i64().expect("code");

        let (_, body) = app
            .get(&format!("/api/sign_status/?openid={openid}"), &headers)
            .await;
        assert_eq!(status_of(&body), 0, "{body}");
        assert_eq!(body["data"]["is_sign"], false, "{body}");

        let before = snapshot(&app).await;
        let (_, body) = app.post("/api/sign/", &headers, &json!({})).await;
        assert_eq!(status_of(&body), -1, "{body}");
        let (_, body) = app
            .post(
                "/api/sign/",
                &headers,
                &json!({"openid": "dev_somebody_else"}),
            )
            .await;
        assert_eq!(status_of(&body), -3, "{body}");
        let (_, body) = app
            .post("/api/sign/", &[], &json!({"openid": openid}))
            .await;
        assert_eq!(status_of(&body), -401, "{body}");
        let (_, body) = app
            .post(
                "/api/sign/",
                &[("Authorization", "Bearer forged")],
                &json!({"openid": openid}),
            )
            .await;
        assert_eq!(status_of(&body), -401, "{body}");
        let (_, body) = app
            .get("/api/sign_status/?openid=dev_somebody_else", &headers)
            .await;
        assert_eq!(status_of(&body), -2, "{body}");
        let (_, body) = app.get("/api/sign_status/", &headers).await;
        assert_eq!(status_of(&body), -1, "{body}");
        assert_eq!(snapshot(&app).await, before, "refusals changed nothing");

        // A form-encoded sign-in, as the original read form fields.
        let res = app
            .client
            .post(app.url("/api/sign/"))
            .header("Authorization", &auth)
            .form(&[("openid", openid.as_str())])
            .send()
            .await
            .expect("sign");
        let body: Value = res.json().await.expect("json");
        assert_eq!(status_of(&body), 0, "{backend:?}: {body}");
        assert_eq!(body["data"], json!({"reward": 5, "combo_sum": 1}), "{body}");

        let (_, body) = app
            .post("/api/sign/", &headers, &json!({"openid": openid}))
            .await;
        assert_eq!(status_of(&body), -2, "{body}");
        assert_eq!(body["msg"], "每天只能签到一次", "{body}");
        let (_, body) = app
            .get(&format!("/api/sign_status/?openid={openid}"), &headers)
            .await;
        assert_eq!(body["data"]["is_sign"], true, "{body}");
        assert_eq!(app.balance(&openid).await, 5);

        // The same person through 000 sees the day as signed.
        let (user, gift_auth) = app.login("gus").await;
        assert_eq!(user, openid);
        assert_refused(&sign(&app, &user, &gift_auth).await, 410);
        assert_eq!(detail(&app, &user, &gift_auth).await["is_sign"], true);
        ledger_facts(&app.database_url, &openid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn admin_settings_are_validated_and_apply() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = [("X-Admin-Key", ADMIN_KEY)];

        let (_, body) = app.get(CONFIG, &[]).await;
        assert_eq!(body["code"], 401, "{body}");
        let (_, body) = app.get(CONFIG, &admin).await;
        assert_eq!(
            body["data"],
            json!({"app_id": "default", "daily_points": 5,
                   "milestones": {"7": 2, "14": 4, "21": 7, "30": 11},
                   "milestones_repeat": true, "focus_reward": 5, "collect_reward": 5}),
            "{body}"
        );
        let defaults = body["data"].clone();

        let before = snapshot(&app).await;
        for bad in [
            json!({"daily_points": -1}),
            json!({"daily_points": 1_000_001}),
            json!({"daily_points": "five"}),
            json!({"milestones": {"0": 1}}),
            json!({"milestones": {"x": 1}}),
            json!({"milestones": {"7": -2}}),
            json!({"milestones": {"7": 2.5}}),
            json!({"milestones": [7, 2]}),
            json!({"milestones": "{broken"}),
            json!({"milestones_repeat": "maybe"}),
            json!({"focus_reward": -5}),
            json!({"collect_reward": []}),
            json!({"daily_points": 3, "milestones": {"7": -1}}),
        ] {
            let (status, body) = app.post(CONFIG, &admin, &bad).await;
            assert_eq!(status, 200, "{bad}: {body}");
            assert_refused(&body, 400);
        }
        let (_, body) = app
            .post(
                CONFIG,
                &admin,
                &json!({"app_id": "nope", "daily_points": 1}),
            )
            .await;
        assert_refused(&body, 404);
        let (_, body) = app.post(CONFIG, &[], &json!({"daily_points": 1})).await;
        assert_refused(&body, 401);
        assert_eq!(
            snapshot(&app).await,
            before,
            "refused settings changed nothing"
        );
        assert_eq!(app.get(CONFIG, &admin).await.1["data"], defaults);

        // Nothing a day, 3 on day 1, no repeat, no follow reward.
        let (_, body) = app
            .post(
                CONFIG,
                &admin,
                &json!({"daily_points": 0, "milestones": "{\"1\": 3}",
                        "milestones_repeat": false, "focus_reward": 0}),
            )
            .await;
        assert_eq!(body["status"], true, "{body}");
        assert_eq!(
            body["data"],
            json!({"app_id": "default", "daily_points": 0, "milestones": {"1": 3},
                   "milestones_repeat": false, "focus_reward": 0, "collect_reward": 5})
        );
        let (user, auth) = app.login("hal").await;
        assert_eq!(sign(&app, &user, &auth).await["status"], true);
        assert_eq!(app.balance(&user).await, 3);
        let d = detail(&app, &user, &auth).await;
        assert_eq!(
            (
                d["reward"].clone(),
                d["more_day"].clone(),
                d["more_point"].clone()
            ),
            (json!(3), json!(0), json!(0))
        );
        assert_eq!(d["special_days"], json!({}));
        // A reward of nothing is still taken once.
        let focus = json!({"user_id": user, "action": "FOCUS"});
        assert_eq!(call(&app, POP, &auth, focus.clone()).await["status"], true);
        assert_refused(&call(&app, POP, &auth, focus).await, 410);
        assert_eq!(
            call(&app, POP_INFO, &auth, json!({"user_id": user})).await["data"]["is_focus"],
            true
        );
        assert_eq!(app.balance(&user).await, 3);

        // No points at all: the sign-in is still recorded once.
        let (_, body) = app.post(CONFIG, &admin, &json!({"milestones": {}})).await;
        assert_eq!(body["data"]["milestones"], json!({}), "{body}");
        let (ida, ida_auth) = app.login("ida").await;
        assert_eq!(sign(&app, &ida, &ida_auth).await["status"], true);
        assert_refused(&sign(&app, &ida, &ida_auth).await, 410);
        assert_eq!(app.balance(&ida).await, 0);
        assert_eq!(detail(&app, &ida, &ida_auth).await["is_sign"], true);
        for u in [&user, &ida] {
            ledger_facts(&app.database_url, u).await.assert_conserved();
        }

        // Every route is in the OpenAPI document.
        let (_, doc) = app.get("/openapi.json", &[]).await;
        for path in [
            DO,
            DETAIL,
            POP,
            POP_INFO,
            CONFIG,
            "/api/sign/",
            "/api/sign_status/",
        ] {
            assert!(
                doc["paths"].get(path).is_some(),
                "{path} missing from OpenAPI"
            );
        }
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn bad_input_changes_nothing_and_never_fails_the_server() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, auth) = app.login("jo").await;
        let (other, _) = app.login("kim").await;
        let before = snapshot(&app).await;
        let cases: Vec<Case> = vec![
            (DO, vec![], json!({"user_id": user}), 401),
            (
                DO,
                vec![("Authorization", "Bearer forged")],
                json!({"user_id": user}),
                401,
            ),
            (DO, vec![("Authorization", auth.as_str())], json!({}), 400),
            (
                DO,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": other}),
                403,
            ),
            (
                DO,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": user, "app_id": "other"}),
                403,
            ),
            (
                DO,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": {"x": 1}}),
                400,
            ),
            (
                DETAIL,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": other}),
                403,
            ),
            (DETAIL, vec![], json!({"user_id": user}), 401),
            (
                POP_INFO,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": [1]}),
                400,
            ),
            (
                POP,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": other, "action": "FOCUS"}),
                403,
            ),
            (
                POP,
                vec![("Authorization", auth.as_str())],
                json!({"user_id": user, "action": 7}),
                400,
            ),
        ];
        for (path, headers, body, code) in &cases {
            let (status, answer) = app.post(path, headers, body).await;
            assert_eq!(status, 200, "{path} {body}: {answer}");
            assert_refused(&answer, *code);
        }
        // A body that is not JSON at all, and one far too large.
        for raw in ["{not json", &"x".repeat(70 * 1024)] {
            let res = app
                .client
                .post(app.url(DO))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body(raw.to_string())
                .send()
                .await
                .expect("send");
            assert!(res.status().as_u16() < 500, "{}", res.status());
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["status"], false, "{body}");
        }
        assert_eq!(
            snapshot(&app).await,
            before,
            "{backend:?}: bad input changed state"
        );
        assert_eq!(detail(&app, &user, &auth).await["is_sign"], false);
        app.handle.stop(true).await;
    }
}
