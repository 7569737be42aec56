//! Walk (WeRun steps, the daily steps rank, exchanging steps for points) and the leaderboards'
//! HTTP side (003 `/api/rank_by_balance/`, archives), on SQLite and Postgres.
//!
//! Users log in through 003 `/api/login/` against a fake WeChat `jscode2session` on loopback
//! that hands each code its own 16-byte `session_key`; the tests encrypt their WeRun fixtures
//! with that key (AES-128-CBC, PKCS#7) exactly as WeChat does.

mod common;

use std::collections::HashMap;

use actix_web::{web, App, HttpResponse, HttpServer};
use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use common::{backends, ledger_facts, spawn_app_with, test_settings, Backend, TestApp, ADMIN_KEY};
use points_engine::clock::{now_ms, BizClock};
use points_engine::db::Db;
use serde_json::{json, Value};

const WX_APPID: &str = "wx-walk-appid";
const WX_SECRET: &str = "wx-walk-secret";
const IV: [u8; 16] = *b"0011223344556677";

// ----- fake WeChat -----

/// The session key the fake WeChat gives login code `good-<n>`.
fn session_key(n: &str) -> [u8; 16] {
    let mut key = [b'k'; 16];
    for (slot, b) in key.iter_mut().zip(n.bytes()) {
        *slot = b;
    }
    key
}

async fn jscode2session(q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let field = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if field("appid") != WX_APPID || field("secret") != WX_SECRET {
        return HttpResponse::Ok().json(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    match field("js_code").strip_prefix("good-") {
        Some(n) if !n.is_empty() => HttpResponse::Ok().json(json!({
            "openid": format!("oW-{n}"),
            "session_key": b64(&session_key(n)),
        })),
        _ => HttpResponse::Ok().json(json!({"errcode": 40029, "errmsg": "invalid code"})),
    }
}

/// Starts the fake WeChat API; returns its base URL.
fn fake_wechat() -> String {
    let server =
        HttpServer::new(|| App::new().route("/sns/jscode2session", web::get().to(jscode2session)))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind fake WeChat");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

/// A server whose default app has WeChat credentials (dev login stays on for 000 users).
async fn spawn(backend: Backend, wechat: &str) -> TestApp {
    let base = wechat.to_string();
    spawn_app_with(backend, move |s| {
        s.wechat_api_base = base;
        s.wechat_appid = Some(WX_APPID.into());
        s.wechat_secret = Some(WX_SECRET.into());
    })
    .await
}

// ----- fixtures -----

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// WeRun plaintext with `steps` today (and some steps yesterday), watermarked for `appid`.
fn werun(appid: &str, steps: i64) -> String {
    let clock = BizClock::new(chrono_tz::Asia::Shanghai);
    let today = clock.day_start(clock.date(now_ms())) / 1000;
    json!({
        "stepInfoList": [
            {"timestamp": today - 86_400, "step": 123},
            {"timestamp": today, "step": steps},
        ],
        "watermark": {"appid": appid, "timestamp": today + 60},
    })
    .to_string()
}

/// `(encryptedData, iv)` as WeChat sends them.
fn encrypt(key: &[u8; 16], plain: &str) -> (String, String) {
    let ct = cbc::Encryptor::<aes::Aes128>::new(key.into(), &IV.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    (b64(&ct), b64(&IV))
}

/// A WeChat user: openid, bearer header and session key.
struct WxUser {
    openid: String,
    bearer: String,
    key: [u8; 16],
}

async fn wx_login(app: &TestApp, n: &str) -> WxUser {
    let (status, body) = app.get(&format!("/api/login/?code=good-{n}"), &[]).await;
    assert_eq!((status, &body["code"]), (200, &json!(0)), "{body}");
    WxUser {
        openid: body["data"]["openid"].as_str().expect("openid").into(),
        bearer: format!("Bearer {}", body["data"]["token"].as_str().expect("token")),
        key: session_key(n),
    }
}

/// 000 `v2/walk/get.json` with `encryption` as given.
async fn walk_get(app: &TestApp, u: &WxUser, encryption: Value) -> Value {
    let (status, body) = app
        .post(
            "/v2/walk/get.json",
            &[("Authorization", &u.bearer)],
            &json!({"app_id": "default", "user_id": u.openid, "encryption": encryption}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Reports `steps` for today through 000 and checks the answer.
async fn report(app: &TestApp, u: &WxUser, steps: i64) -> i64 {
    let (data, iv) = encrypt(&u.key, &werun(WX_APPID, steps));
    let body = walk_get(app, u, json!({"encryptedData": data, "iv": iv})).await;
    assert_eq!(body["status"], true, "{body}");
    body["data"]["count"].as_i64().expect("count")
}

async fn rank(app: &TestApp, u: &WxUser) -> Value {
    let (status, body) = app
        .post(
            "/v2/walk/rank.json",
            &[("Authorization", &u.bearer)],
            &json!({"app_id": "default", "user_id": u.openid}),
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    body
}

async fn wx_run(app: &TestApp, bearer: &str, form: &[(&str, &str)]) -> Value {
    let res = app
        .client
        .post(app.url("/api/wx_run/"))
        .header("Authorization", bearer)
        .form(form)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("JSON body")
}

async fn exchange(app: &TestApp, u: &WxUser) -> Value {
    let (status, body) = app
        .post(
            "/v2/walk/exchange.json",
            &[("Authorization", &u.bearer)],
            &json!({"app_id": "default", "user_id": u.openid}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, 2).await.expect("connect")
}

async fn set_nick(app: &TestApp, uid: &str, nick: &str) {
    let db = db(app).await;
    sqlx::query("UPDATE users SET nick = $1, avatar = $2 WHERE platform_uid = $3")
        .bind(nick)
        .bind(format!("https://img.example/{nick}.png"))
        .bind(uid)
        .execute(&db.write)
        .await
        .expect("set nick");
    db.write.close().await;
    db.read.close().await;
}

async fn rank_by_balance(
    client: reqwest::Client,
    base: String,
    uid: String,
    bearer: String,
) -> Value {
    let res = client
        .post(format!("{base}/api/rank_by_balance/"))
        .header("Authorization", bearer)
        .form(&[("openid", uid)])
        .send()
        .await
        .expect("request");
    res.json::<Value>().await.expect("JSON")
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[("X-Admin-Key", ADMIN_KEY)], &body).await;
    assert_eq!(status, 200, "{body}");
    body
}

// ----- tests -----

#[actix_web::test]
async fn steps_are_decrypted_kept_at_the_day_maximum_and_ranked_ties_to_the_earliest() {
    let wechat = fake_wechat();
    for backend in backends() {
        // Arrange
        let app = spawn(backend, &wechat).await;
        let (a, b, c) = (
            wx_login(&app, "a").await,
            wx_login(&app, "b").await,
            wx_login(&app, "c").await,
        );
        for (u, nick) in [(&a, "Ann"), (&b, "Bob"), (&c, "Cat")] {
            set_nick(&app, &u.openid, nick).await;
        }

        // Act: a and c tie at 5000, a first; b leads; a lower report changes nothing; the
        // encryption also arrives as a JSON string.
        assert_eq!(report(&app, &a, 5000).await, 5000);
        assert_eq!(report(&app, &b, 8000).await, 8000);
        let (data, iv) = encrypt(&c.key, &werun(WX_APPID, 5000));
        let as_string = json!({"encryptedData": data, "iv": iv}).to_string();
        let body = walk_get(&app, &c, Value::String(as_string)).await;
        assert_eq!(body["data"]["count"], 5000, "{body}");
        assert_eq!(
            report(&app, &a, 4000).await,
            5000,
            "the day keeps its maximum"
        );

        // Assert
        let board = rank(&app, &c).await;
        let names: Vec<&str> = board["data"]
            .as_array()
            .expect("list")
            .iter()
            .map(|i| i["nick"].as_str().expect("nick"))
            .collect();
        assert_eq!(names, vec!["Bob", "Ann", "Cat"], "{board}");
        assert_eq!(board["data"][0]["count"], 8000);
        assert_eq!(board["data"][0]["avatar"], "https://img.example/Bob.png");
        assert_eq!(board["my_rank"], 3, "{board}");
        assert_eq!(board["my_count"], 5000);
        assert_eq!(board["my_nick"], "Cat");
        assert_eq!(board["my_avatar"], "https://img.example/Cat.png");
        assert_eq!(board["rate"], 300);
        assert_eq!(board["is_exchanged"], false);

        // c overtakes everyone.
        assert_eq!(report(&app, &c, 9000).await, 9000);
        let board = rank(&app, &c).await;
        assert_eq!(board["my_rank"], 1, "{board}");
        assert_eq!(board["data"][0]["nick"], "Cat");

        // A user without steps today is not ranked.
        let d = wx_login(&app, "d").await;
        let board = rank(&app, &d).await;
        assert_eq!(
            (&board["my_rank"], &board["my_count"]),
            (&json!(0), &json!(0))
        );
        assert_eq!(board["data"].as_array().map(Vec::len), Some(3));
    }
}

#[actix_web::test]
async fn wrong_keys_foreign_watermarks_and_bad_input_are_refused_and_change_nothing() {
    let wechat = fake_wechat();
    for backend in backends() {
        // Arrange
        let app = spawn(backend, &wechat).await;
        let a = wx_login(&app, "a").await;
        let b = wx_login(&app, "b").await;
        let send = |encryption: Value| {
            let (app, a) = (&app, &a);
            async move { walk_get(app, a, encryption).await }
        };

        // Act + Assert: encrypted with b's key, not a's.
        let (data, iv) = encrypt(&b.key, &werun(WX_APPID, 7000));
        let body = send(json!({"encryptedData": data, "iv": iv})).await;
        assert_eq!(
            (&body["status"], &body["code"]),
            (&json!(false), &json!(400)),
            "{body}"
        );

        // Another mini-program's data (right key, foreign watermark).
        let (data, iv) = encrypt(&a.key, &werun("wx-someone-else", 7000));
        let body = send(json!({"encryptedData": data, "iv": iv})).await;
        assert_eq!(body["code"], 400, "{body}");
        assert!(
            body["msg"]
                .as_str()
                .is_some_and(|m| m.contains("watermark")),
            "{body}"
        );

        // Malformed inputs: never a 500, always a clear 400.
        // A string that is not WeChat's object is Alipay's form: this app has no AES key.
        let body = send(json!("not json")).await;
        assert_eq!(body["code"], 501, "{body}");
        for bad in [
            Value::Null,
            json!(""),
            json!("{not json"),
            json!({"iv": "x"}),
            json!({"encryptedData": "x"}),
            json!({"encryptedData": 5, "iv": "x"}),
            json!({"encryptedData": "!!!", "iv": "!!!"}),
            json!({"encryptedData": b64(b"sixteen bytes!!!"), "iv": b64(b"short")}),
            json!({"encryptedData": "A".repeat(40_000), "iv": b64(&IV)}),
            json!([1, 2]),
        ] {
            let body = send(bad.clone()).await;
            assert_eq!(
                (&body["status"], &body["code"]),
                (&json!(false), &json!(400)),
                "{bad}: {body}"
            );
        }
        // Plaintext that is not WeRun, and steps out of range.
        for plain in [
            "hello".to_string(),
            werun(WX_APPID, 10_000_000),
            werun(WX_APPID, -5),
        ] {
            let (data, iv) = encrypt(&a.key, &plain);
            let body = send(json!({"encryptedData": data, "iv": iv})).await;
            assert_eq!(body["code"], 400, "{plain}: {body}");
        }

        // Someone else's user_id: 403.
        let (data, iv) = encrypt(&a.key, &werun(WX_APPID, 7000));
        let (_, body) = app
            .post(
                "/v2/walk/get.json",
                &[("Authorization", &a.bearer)],
                &json!({"user_id": b.openid, "encryption": {"encryptedData": data, "iv": iv}}),
            )
            .await;
        assert_eq!(body["code"], 403, "{body}");

        // A dev (Alipay) user has no WeChat session key.
        let (dev, dev_bearer) = app.login("walker").await;
        let (_, body) = app
            .post(
                "/v2/walk/get.json",
                &[("Authorization", &dev_bearer)],
                &json!({"user_id": dev, "encryption": {"encryptedData": data, "iv": iv}}),
            )
            .await;
        assert_eq!(body["code"], 400, "{body}");
        assert!(
            body["msg"]
                .as_str()
                .is_some_and(|m| m.contains("session key")),
            "{body}"
        );

        // Nothing was stored by any of it.
        let board = rank(&app, &a).await;
        assert_eq!(board["data"], json!([]), "{board}");
        assert_eq!(board["my_count"], 0);
    }
}

#[actix_web::test]
async fn wx_run_answers_the_seed_codes_and_rewards_authorisation_once() {
    let wechat = fake_wechat();
    for backend in backends() {
        // Arrange
        let app = spawn(backend, &wechat).await;
        admin_post(&app, "/admin/walk/config", json!({"auth_reward": 7})).await;
        let a = wx_login(&app, "a").await;
        let b = wx_login(&app, "b").await;
        let (data, iv) = encrypt(&a.key, &werun(WX_APPID, 3000));

        // -1: a field missing or empty.
        for form in [
            vec![("encryptedData", data.as_str()), ("iv", iv.as_str())],
            vec![("openid", a.openid.as_str()), ("iv", iv.as_str())],
            vec![
                ("openid", a.openid.as_str()),
                ("encryptedData", data.as_str()),
                ("iv", ""),
            ],
        ] {
            let body = wx_run(&app, &a.bearer, &form).await;
            assert_eq!(body["code"], -1, "{form:?}: {body}");
        }
        // -4: another user's openid.
        let body = wx_run(
            &app,
            &a.bearer,
            &[("openid", &b.openid), ("encryptedData", &data), ("iv", &iv)],
        )
        .await;
        assert_eq!(body["code"], -4, "{body}");
        // -5: undecryptable (wrong key) and another mini-program's watermark.
        let (other_data, other_iv) = encrypt(&b.key, &werun(WX_APPID, 3000));
        let (foreign, foreign_iv) = encrypt(&a.key, &werun("wx-someone-else", 3000));
        for (d, i) in [(&other_data, &other_iv), (&foreign, &foreign_iv)] {
            let body = wx_run(
                &app,
                &a.bearer,
                &[("openid", &a.openid), ("encryptedData", d), ("iv", i)],
            )
            .await;
            assert_eq!(body["code"], -5, "{body}");
        }
        // -3: a user without a WeChat session key.
        let (dev, dev_bearer) = app.login("runner").await;
        let body = wx_run(
            &app,
            &dev_bearer,
            &[("openid", &dev), ("encryptedData", &data), ("iv", &iv)],
        )
        .await;
        assert_eq!(body["code"], -3, "{body}");
        // -2: an app without WeChat settings (its users log in with dev login).
        admin_post(
            &app,
            "/admin/apps",
            json!({"id": "nowx", "name": "No WeChat"}),
        )
        .await;
        let (_, login) = app.get("/api/login/?code=nowx-user&app_id=nowx", &[]).await;
        let token = format!("Bearer {}", login["data"]["token"].as_str().expect("token"));
        let openid = login["data"]["openid"].as_str().expect("openid");
        let body = wx_run(
            &app,
            &token,
            &[("openid", openid), ("encryptedData", &data), ("iv", &iv)],
        )
        .await;
        assert_eq!(body["code"], -2, "{body}");
        assert_eq!(app.balance(&a.openid).await, 0, "no failed call rewarded");

        // 0: stored, ranked, rewarded once.
        for _ in 0..2 {
            let body = wx_run(
                &app,
                &a.bearer,
                &[("openid", &a.openid), ("encryptedData", &data), ("iv", &iv)],
            )
            .await;
            assert_eq!(
                (&body["code"], &body["data"]["count"]),
                (&json!(0), &json!(3000)),
                "{body}"
            );
        }
        assert_eq!(app.balance(&a.openid).await, 7);
        let board = rank(&app, &a).await;
        assert_eq!(board["my_count"], 3000);
        assert_eq!(board["my_rank"], 1);
    }
}

#[actix_web::test]
async fn steps_are_exchanged_once_a_day_even_when_twenty_requests_race() {
    let wechat = fake_wechat();
    for backend in backends() {
        // Arrange
        let app = spawn(backend, &wechat).await;
        let a = wx_login(&app, "a").await;
        let poor = wx_login(&app, "poor").await;
        admin_post(&app, "/admin/walk/config", json!({"rate": 250})).await;
        report(&app, &a, 5100).await;
        report(&app, &poor, 249).await;

        // Act: fewer steps than the rate.
        let body = exchange(&app, &poor).await;
        assert_eq!(
            (&body["status"], &body["code"]),
            (&json!(false), &json!(410)),
            "{body}"
        );
        assert!(
            body["msg"].as_str().is_some_and(|m| m.contains("250")),
            "{body}"
        );
        assert_eq!(app.balance(&poor.openid).await, 0);

        // Act: 20 at once.
        let answers = futures_util::future::join_all((0..20).map(|_| exchange(&app, &a))).await;

        // Assert: one credit of 5100 / 250 = 20 points; the others are refused as done.
        let ok = answers.iter().filter(|b| b["status"] == true).count();
        assert_eq!(ok, 1, "{answers:?}");
        for b in answers.iter().filter(|b| b["status"] != true) {
            assert_eq!(b["code"], 410, "{b}");
        }
        assert_eq!(app.balance(&a.openid).await, 20);
        ledger_facts(&app.database_url, &a.openid)
            .await
            .assert_conserved();

        // Later, with more steps: still done for today.
        report(&app, &a, 9000).await;
        let again = exchange(&app, &a).await;
        assert_eq!(again["code"], 410, "{again}");
        assert_eq!(app.balance(&a.openid).await, 20);
        assert_eq!(rank(&app, &a).await["is_exchanged"], true);
        assert_eq!(rank(&app, &poor).await["is_exchanged"], false);

        // Someone else's user_id.
        let (_, body) = app
            .post(
                "/v2/walk/exchange.json",
                &[("Authorization", &a.bearer)],
                &json!({"user_id": poor.openid}),
            )
            .await;
        assert_eq!(body["code"], 403, "{body}");
    }
}

#[actix_web::test]
async fn rank_by_balance_lists_the_top_ten_with_ties_to_the_earliest_and_survives_a_restart() {
    for backend in backends() {
        // Arrange: twelve users; u3 and u5 tie at 50, u3 first.
        let app = spawn_app_with(backend, |_| {}).await;
        let mut users = Vec::new();
        for i in 0..12 {
            let (uid, bearer) = app.login(&format!("u{i}")).await;
            set_nick(&app, &uid, &format!("N{i}")).await;
            users.push((uid, bearer));
        }
        for (i, points) in [(3, 50), (5, 50), (0, 10)] {
            app.change(&users[i].0, points, None).await;
        }
        for i in [1, 2, 4, 6, 7, 8, 9, 10] {
            app.change(&users[i].0, 20 + i as i64, None).await;
        }
        // u0 spends some of its points: it stays ranked with the lower score.
        app.change(&users[0].0, -5, None).await;

        // Act
        let ask = |base: String, who: usize| {
            let (uid, bearer) = users[who].clone();
            rank_by_balance(app.client.clone(), base, uid, bearer)
        };
        let body = ask(app.address.clone(), 0).await;

        // Assert
        assert_eq!(body["code"], 0, "{body}");
        let rows = body["data"].as_array().expect("rows");
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0], json!([1, "N3", "https://img.example/N3.png", 50]));
        assert_eq!(rows[1], json!([2, "N5", "https://img.example/N5.png", 50]));
        assert_eq!(rows[2][1], "N10");
        assert_eq!(rows[9], json!([10, "N1", "https://img.example/N1.png", 21]));
        assert_eq!(body["rank"], 11, "u0 has 5 points: 11th");
        assert_eq!(
            ask(app.address.clone(), 11).await["rank"],
            0,
            "no points: not ranked"
        );
        assert_eq!(ask(app.address.clone(), 5).await["rank"], 2);

        // Another user's openid: -2.
        let res = app
            .client
            .post(app.url("/api/rank_by_balance/"))
            .header("Authorization", &users[0].1)
            .form(&[("openid", &users[1].0)])
            .send()
            .await
            .expect("request");
        assert_eq!(res.json::<Value>().await.expect("JSON")["code"], -2);

        // A second server on the same database rebuilds the same board at start (after the first
        // stopped: a SQLite file serves one process at a time).
        app.handle.stop(true).await;
        let again = common::build_when_released(test_settings(&app.database_url)).await;
        let address = format!("http://127.0.0.1:{}", again.port());
        actix_web::rt::spawn(again.run_until_stopped());
        let body = ask(address, 0).await;
        assert_eq!(
            body["data"][0],
            json!([1, "N3", "https://img.example/N3.png", 50])
        );
        assert_eq!(body["rank"], 11, "{body}");
    }
}

#[actix_web::test]
async fn yesterdays_boards_are_archived_once() {
    let wechat = fake_wechat();
    for backend in backends() {
        // Arrange: yesterday's steps as the database holds them, and some points.
        let app = spawn(backend, &wechat).await;
        let a = wx_login(&app, "a").await;
        let b = wx_login(&app, "b").await;
        set_nick(&app, &a.openid, "Ann").await;
        app.change(&a.openid, 30, None).await;
        app.change(&b.openid, 40, None).await;
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        let yesterday = clock
            .date(now_ms())
            .pred_opt()
            .expect("a day before")
            .format("%Y-%m-%d")
            .to_string();
        let db = db(&app).await;
        for (uid, steps, at) in [(&a.openid, 6000, 200), (&b.openid, 6000, 100)] {
            sqlx::query(
                "INSERT INTO walk_steps (user_id, day, app_id, steps, reached_at, updated_at) \
                 SELECT id, $1, app_id, $2, $3, $3 FROM users WHERE platform_uid = $4",
            )
            .bind(&yesterday)
            .bind(steps)
            .bind(at)
            .bind(uid)
            .execute(&db.write)
            .await
            .expect("insert steps");
        }

        // Act: the daily jobs, twice.
        admin_post(&app, "/admin/jobs/run", json!({})).await;
        let path = format!("/admin/leaderboards/archive?board=steps&period={yesterday}");
        let (_, first) = app.get(&path, &[("X-Admin-Key", ADMIN_KEY)]).await;
        admin_post(&app, "/admin/jobs/run", json!({})).await;
        let (_, second) = app.get(&path, &[("X-Admin-Key", ADMIN_KEY)]).await;

        // Assert
        assert_eq!(first["status"], true, "{first}");
        let entries = first["data"]["entries"].as_array().expect("entries");
        let order: Vec<(&Value, &Value, &Value)> = entries
            .iter()
            .map(|e| (&e["rank"], &e["user_id"], &e["score"]))
            .collect();
        let expected = [
            json!(1),
            json!(b.openid),
            json!(6000),
            json!(2),
            json!(a.openid),
            json!(6000),
        ];
        assert_eq!(
            order,
            vec![
                (&expected[0], &expected[1], &expected[2]),
                (&expected[3], &expected[4], &expected[5])
            ],
            "the earlier 6000 first"
        );
        assert_eq!(entries[1]["nick"], "Ann");
        assert_eq!(first, second, "archived once");
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM leaderboard_archive WHERE board = 'steps'")
                .fetch_one(&db.read)
                .await
                .expect("count");
        assert_eq!(rows, 2);
        let (_, points) = app
            .get(
                "/admin/leaderboards/archive?board=points",
                &[("X-Admin-Key", ADMIN_KEY)],
            )
            .await;
        assert_eq!(points["data"]["period"], json!(yesterday), "{points}");
        assert_eq!(points["data"]["entries"][0]["score"], 40);

        // Bad queries are clear errors.
        for (query, code) in [
            ("board=nope", 400),
            ("board=steps&period=yesterday", 400),
            ("", 400),
            ("board=invites&period=1999-01-01", 404),
        ] {
            let (status, body) = app
                .get(
                    &format!("/admin/leaderboards/archive?{query}"),
                    &[("X-Admin-Key", ADMIN_KEY)],
                )
                .await;
            assert_eq!(
                (status, &body["code"]),
                (200, &json!(code)),
                "{query}: {body}"
            );
        }
        let (_, body) = app
            .get("/admin/leaderboards/archive?board=steps", &[])
            .await;
        assert_eq!(body["code"], 401);
        db.write.close().await;
        db.read.close().await;
    }
}

#[actix_web::test]
async fn covers_and_walk_settings_are_configured_per_app() {
    for backend in backends() {
        let app = spawn_app_with(backend, |_| {}).await;

        // Defaults: empty covers, 300 steps per point.
        let (_, body) = app
            .get("/v2/kingkong/cover_img.json?app_id=default", &[])
            .await;
        assert_eq!(
            body["data"],
            json!({"lottery_cover_img": "", "walk_cover_img": "", "pickup_cover_img": ""})
        );
        let (_, body) = app
            .get("/admin/walk/config", &[("X-Admin-Key", ADMIN_KEY)])
            .await;
        assert_eq!(body["data"]["rate"], 300, "{body}");

        // Set, then partly update.
        admin_post(
            &app,
            "/admin/covers",
            json!({"lottery_cover_img": "https://x/l.png", "walk_cover_img": "https://x/w.png"}),
        )
        .await;
        admin_post(&app, "/admin/covers", json!({"walk_cover_img": ""})).await;
        let (_, body) = app
            .post("/v2/kingkong/cover_img.json", &[], &json!({}))
            .await;
        assert_eq!(
            body["data"],
            json!({"lottery_cover_img": "https://x/l.png", "walk_cover_img": "", "pickup_cover_img": ""})
        );

        // Refusals.
        let admin = [("X-Admin-Key", ADMIN_KEY)];
        for (path, req, code) in [
            ("/admin/walk/config", json!({"rate": 0}), 400),
            ("/admin/walk/config", json!({"rate": "many"}), 400),
            ("/admin/walk/config", json!({"auth_reward": -1}), 400),
            (
                "/admin/walk/config",
                json!({"app_id": "ghost", "rate": 5}),
                404,
            ),
            (
                "/admin/covers",
                json!({"walk_cover_img": "x".repeat(2000)}),
                400,
            ),
            ("/admin/covers", json!({"app_id": "ghost"}), 404),
        ] {
            let (status, body) = app.post(path, &admin, &req).await;
            assert_eq!(
                (status, &body["code"]),
                (200, &json!(code)),
                "{path} {req}: {body}"
            );
        }
        let (_, body) = app
            .post("/admin/walk/config", &[], &json!({"rate": 5}))
            .await;
        assert_eq!(body["code"], 401);
        let (_, body) = app
            .get("/v2/kingkong/cover_img.json?app_id=ghost", &[])
            .await;
        assert_eq!(body["code"], 404);
        let (_, body) = app.get("/admin/walk/config", &admin).await;
        assert_eq!(body["data"]["rate"], 300, "refusals changed nothing");
    }
}

/// Alipay's `my.getRunData` response as the mini-program gets it: the JSON encrypted with the
/// app's AES key (AES-128-CBC, PKCS#7, zero IV), base64.
fn alipay_encrypt(key: &[u8; 16], plain: &str) -> String {
    let ct = cbc::Encryptor::<aes::Aes128>::new(key.into(), &[0u8; 16].into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    b64(&ct)
}

#[actix_web::test]
async fn alipay_users_report_exchange_and_rank_with_the_apps_aes_key() {
    const AES_KEY: [u8; 16] = *b"alipay-aes-key16";
    let wechat = fake_wechat();
    for backend in backends() {
        let app = spawn(backend, &wechat).await;
        let (status, body) = app
            .post(
                "/admin/apps",
                &[("X-Admin-Key", ADMIN_KEY)],
                &json!({"id": "default", "name": "Default app", "settings": {"aes_key": b64(&AES_KEY)}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // An Alipay user: no WeChat session key, only the app's AES key decrypts their steps.
        let (openid, bearer) = app.login("ali").await;
        let ali = WxUser {
            openid,
            bearer,
            key: [0; 16],
        };
        let body = walk_get(
            &app,
            &ali,
            json!(alipay_encrypt(&AES_KEY, r#"{"count": 8000}"#)),
        )
        .await;
        assert_eq!(
            (&body["status"], &body["data"]["count"]),
            (&json!(true), &json!(8000)),
            "{backend:?}: {body}"
        );
        // `count` also as a string of digits; the day keeps its maximum.
        let body = walk_get(
            &app,
            &ali,
            json!(alipay_encrypt(
                &AES_KEY,
                r#"{"count": "9000", "time": "2026-12-03"}"#
            )),
        )
        .await;
        assert_eq!(body["data"]["count"], 9000, "{body}");
        let body = walk_get(
            &app,
            &ali,
            json!(alipay_encrypt(&AES_KEY, r#"{"count": 100}"#)),
        )
        .await;
        assert_eq!(body["data"]["count"], 9000, "{body}");
        // Another key, no count, a count out of range, not ciphertext: 400, nothing stored.
        for bad in [
            alipay_encrypt(b"another-aes-key!", r#"{"count": 20000}"#),
            alipay_encrypt(&AES_KEY, r#"{"steps": 20000}"#),
            alipay_encrypt(&AES_KEY, r#"{"count": 10000000}"#),
            alipay_encrypt(&AES_KEY, r#"{"count": "12a"}"#),
            "!!!".to_string(),
        ] {
            let body = walk_get(&app, &ali, json!(bad)).await;
            assert_eq!(
                (&body["status"], &body["code"]),
                (&json!(false), &json!(400)),
                "{bad}: {body}"
            );
        }
        // The rank shows the Alipay user, and the steps exchange for points once.
        let board = rank(&app, &ali).await;
        assert_eq!(
            (&board["my_rank"], &board["my_count"]),
            (&json!(1), &json!(9000)),
            "{board}"
        );
        let rate = board["rate"].as_i64().expect("rate");
        let body = exchange(&app, &ali).await;
        assert_eq!(body["status"], true, "{body}");
        assert_eq!(app.balance(&ali.openid).await, 9000 / rate, "{backend:?}");
        let again = exchange(&app, &ali).await;
        assert_eq!(again["status"], false, "{again}");
        ledger_facts(&app.database_url, &ali.openid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}
