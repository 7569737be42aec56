//! Invites on SQLite and Postgres: share codes, the inviter's reward paid once per invitee however
//! many logins of the new user race, self-invites and unknown codes ignored without failing the
//! login, paged invite records shaped as the 003 seed, 003's codes, the admin settings, and bad
//! input that changes nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{backends, ledger_facts, spawn_app, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::db::Db;
use serde_json::{json, Value};

const LOGIN: &str = "/api/login/";
const CODE: &str = "/api/query_share_code/";
const RECORD: &str = "/api/query_share_record/";
const CONFIG: &str = "/admin/invites/config";

/// A bad 003 request: path, headers and the code it must answer.
type Case<'a> = (String, &'a [(&'a str, &'a str)], i64);

// ----- helpers -----

async fn db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, 2).await.expect("connect")
}

/// 003 login with an optional invite code: (code, openid, bearer header, is_new).
async fn mini_login(
    app: &TestApp,
    code: &str,
    invite: Option<&str>,
) -> (i64, String, String, bool) {
    let mut body = json!({"code": code});
    if let Some(i) = invite {
        body["invite"] = json!(i);
    }
    let (status, body) = app.post(LOGIN, &[], &body).await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_i64().expect("code");
    if code != 0 {
        return (code, String::new(), String::new(), false);
    }
    let openid = body["data"]["openid"].as_str().expect("openid").to_string();
    let token = body["data"]["token"].as_str().expect("token");
    let is_new = body["data"]["is_new"].as_bool().expect("is_new");
    (0, openid, format!("Bearer {token}"), is_new)
}

/// The caller's share code through 003.
async fn share_code(app: &TestApp, openid: &str, auth: &str) -> String {
    let (_, body) = app
        .get(
            &format!("{CODE}?openid={openid}"),
            &[("Authorization", auth)],
        )
        .await;
    assert_eq!(body["code"], 0, "{body}");
    body["data"]["share_code"]
        .as_str()
        .expect("share_code")
        .to_string()
}

/// The inviter's `invite` ledger entries.
async fn invite_entries(app: &TestApp, openid: &str) -> Vec<(i64, String)> {
    let db = db(app).await;
    sqlx::query_as::<_, (i64, String)>(
        "SELECT e.amount, e.reference FROM ledger_entries e JOIN users u ON u.id = e.user_id \
         WHERE u.platform_uid = $1 AND e.kind = 'invite' ORDER BY e.id",
    )
    .bind(openid)
    .fetch_all(&db.read)
    .await
    .expect("entries")
}

/// Every row count an invite request could change.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let db = db(app).await;
    let mut out = Vec::new();
    for table in [
        "ledger_entries",
        "balances",
        "credit_lots",
        "share_codes",
        "invite_settings",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&db.read)
            .await
            .expect("count");
        out.push(n);
    }
    let settings: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT app_id, points, times FROM invite_settings ORDER BY app_id")
            .fetch_all(&db.read)
            .await
            .expect("settings");
    for (_, p, t) in settings {
        out.push(p);
        out.push(t);
    }
    out
}

// ----- tests -----

#[actix_web::test]
async fn share_code_is_stable_unique_and_created_once() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let (_, bob, bob_auth, _) = mini_login(&app, "bob", None).await;

        // Concurrent first asks agree on one code.
        let asks = (0..10).map(|_| {
            let app = app.clone();
            let (alice, auth) = (alice.clone(), alice_auth.clone());
            async move { share_code(&app, &alice, &auth).await }
        });
        let codes = join_all(asks).await;
        assert!(codes.iter().all(|c| c == &codes[0]), "{codes:?}");
        assert_eq!(codes[0].len(), 8);
        assert_eq!(share_code(&app, &alice, &alice_auth).await, codes[0]);
        let bobs = share_code(&app, &bob, &bob_auth).await;
        assert_ne!(bobs, codes[0]);

        let (_, body) = app
            .get(
                &format!("{CODE}?openid={alice}"),
                &[("Authorization", &alice_auth)],
            )
            .await;
        assert_eq!(body["data"]["times"], 1, "{body}");
        // The caller's own ranks: nobody was invited yet, so unranked on both days.
        assert_eq!(body["data"]["y_rank"], 0, "{body}");
        assert_eq!(body["data"]["n_rank"], 0, "{body}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM share_codes")
            .fetch_one(&db(&app).await.read)
            .await
            .expect("count");
        assert_eq!(rows, 2);
    }
}

#[actix_web::test]
async fn ten_concurrent_first_logins_reward_the_inviter_once() {
    for backend in backends() {
        // Arrange
        let app = Arc::new(spawn_app(backend).await);
        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let code = share_code(&app, &alice, &alice_auth).await;

        // Act: ten logins of the same new user race, all with alice's code.
        let logins = (0..10).map(|_| {
            let app = app.clone();
            let code = code.clone();
            async move { mini_login(&app, "newbie", Some(&code)).await }
        });
        let results = join_all(logins).await;

        // Assert: every login went through, one of them created the user, one reward.
        assert!(results.iter().all(|r| r.0 == 0), "{results:?}");
        assert_eq!(results.iter().filter(|r| r.3).count(), 1, "{results:?}");
        let entries = invite_entries(&app, &alice).await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].0, 20);
        assert_eq!(app.balance(&alice).await, 20);

        // A later login of the same user with the code pays nothing.
        let (c, _, _, is_new) = mini_login(&app, "newbie", Some(&code)).await;
        assert_eq!((c, is_new), (0, false));
        // Nor does a user who first came through another login (not created by this one).
        app.login("old_timer").await;
        let (c, _, _, is_new) = mini_login(&app, "old_timer", Some(&code)).await;
        assert_eq!((c, is_new), (0, false));
        assert_eq!(invite_entries(&app, &alice).await.len(), 1);
        assert_eq!(app.balance(&alice).await, 20);
        ledger_facts(&app.database_url, &alice)
            .await
            .assert_conserved();

        // Today alice is first on the invite board, as the client reads it: her own rank
        // number (the board follows the ledger); yesterday she was unranked.
        let mut body = Value::Null;
        for _ in 0..50 {
            body = app
                .get(
                    &format!("{CODE}?openid={alice}"),
                    &[("Authorization", &alice_auth)],
                )
                .await
                .1;
            if body["data"]["n_rank"] == 1 {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(body["data"]["n_rank"], 1, "{body}");
        assert_eq!(body["data"]["y_rank"], 0, "{body}");
        // The invitee has invited nobody: unranked.
        let (_, newbie_openid, newbie_auth, _) = mini_login(&app, "newbie", None).await;
        let (_, theirs) = app
            .get(
                &format!("{CODE}?openid={newbie_openid}"),
                &[("Authorization", &newbie_auth)],
            )
            .await;
        assert_eq!(theirs["data"]["n_rank"], 0, "{theirs}");
    }
}

#[actix_web::test]
async fn self_invites_and_unknown_codes_are_ignored_and_the_login_goes_through() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let code = share_code(&app, &alice, &alice_auth).await;
        let before = snapshot(&app).await;

        // Unknown, malformed and overlong codes: the new user is created, nothing is paid.
        for (user, invite) in [
            ("u1", "ZZZZZZZZ".to_string()),
            ("u2", "not a code!".to_string()),
            ("u3", "A".repeat(500)),
            ("u4", "   ".to_string()),
        ] {
            let (c, _, _, is_new) = mini_login(&app, user, Some(&invite)).await;
            assert_eq!((c, is_new), (0, true), "{user}");
        }
        // Alice's own code on her own (not first) login.
        let (c, _, _, _) = mini_login(&app, "alice", Some(&code)).await;
        assert_eq!(c, 0);
        assert_eq!(snapshot(&app).await, before);
        assert!(invite_entries(&app, &alice).await.is_empty());

        // Lower case is the same code.
        let (c, _, _, _) = mini_login(&app, "u5", Some(&code.to_lowercase())).await;
        assert_eq!(c, 0);
        assert_eq!(invite_entries(&app, &alice).await.len(), 1);
        ledger_facts(&app.database_url, &alice)
            .await
            .assert_conserved();
    }
}

#[actix_web::test]
async fn records_are_paged_newest_first_and_shaped_as_the_seed() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let code = share_code(&app, &alice, &alice_auth).await;
        for i in 0..12 {
            let (c, _, _, _) = mini_login(&app, &format!("friend{i}"), Some(&code)).await;
            assert_eq!(c, 0);
        }
        let db = db(&app).await;
        sqlx::query("UPDATE users SET nick = 'Eleven', avatar = 'https://a/11.png' WHERE platform_uid = 'dev_friend11'")
            .execute(&db.write)
            .await
            .expect("nick");
        let headers = [("Authorization", alice_auth.as_str())];

        let (_, body) = app.get(&format!("{RECORD}?openid={alice}"), &headers).await;
        assert_eq!(body["code"], 0, "{body}");
        let page = body["data"].as_array().expect("list");
        assert_eq!(page.len(), 10);
        assert_eq!(page[0]["nickname"], "Eleven", "{body}");
        assert_eq!(page[0]["avatar"], "https://a/11.png", "{body}");
        let c_time = page[0]["c_time"].as_str().expect("c_time");
        assert_eq!(c_time.len(), 19, "{c_time}");
        let mut keys: Vec<&String> = page[0].as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["avatar", "c_time", "nickname"]);

        let (_, body) = app
            .get(&format!("{RECORD}?openid={alice}&index=1&num=10"), &headers)
            .await;
        assert_eq!(body["data"].as_array().expect("list").len(), 2, "{body}");
        let (_, body) = app
            .get(&format!("{RECORD}?openid={alice}&index=5&num=5"), &headers)
            .await;
        assert_eq!(body["data"], json!([]), "{body}");

        assert_eq!(app.balance(&alice).await, 12 * 20);
        ledger_facts(&app.database_url, &alice)
            .await
            .assert_conserved();
    }
}

#[actix_web::test]
async fn mini_program_codes_and_bad_input_change_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let (_, bob, _, _) = mini_login(&app, "bob", None).await;
        let before = snapshot(&app).await;
        let auth = [("Authorization", alice_auth.as_str())];
        let none: [(&str, &str); 0] = [];

        let cases: Vec<Case> = vec![
            (CODE.to_string(), &auth, -1),
            (format!("{CODE}?openid={bob}"), &auth, -2),
            (format!("{CODE}?openid={alice}"), &none, -401),
            (RECORD.to_string(), &auth, -1),
            (format!("{RECORD}?openid={bob}"), &auth, -2),
            (format!("{RECORD}?openid={alice}"), &none, -401),
            (format!("{RECORD}?openid={alice}&index=-1"), &auth, -400),
            (format!("{RECORD}?openid={alice}&num=0"), &auth, -400),
            (format!("{RECORD}?openid={alice}&num=1000"), &auth, -400),
            (format!("{RECORD}?openid={alice}&num=abc"), &auth, -400),
        ];
        for (path, headers, code) in &cases {
            let (status, body) = app.get(path, headers).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["code"], *code, "{path}: {body}");
            // POST form the same.
            let (status, body) = app.post(path, headers, &json!({})).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["code"], *code, "{path}: {body}");
        }
        // Login without a code fails with -1 and links nothing.
        let (c, _, _, _) = mini_login(&app, "", Some("ABC")).await;
        assert_eq!(c, -1);
        assert_eq!(snapshot(&app).await, before);
    }
}

#[actix_web::test]
async fn admin_settings_are_validated_and_drive_the_reward() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = [("X-Admin-Key", ADMIN_KEY)];
        let (_, body) = app.get(CONFIG, &admin).await;
        assert_eq!(body["status"], true, "{body}");
        assert_eq!(body["data"]["points"], 20, "{body}");
        assert_eq!(body["data"]["times"], 1, "{body}");
        assert_eq!(body["data"]["reward"], 20, "{body}");

        let before = snapshot(&app).await;
        for bad in [
            json!({"points": -1}),
            json!({"points": 1_000_001}),
            json!({"times": 0}),
            json!({"times": 101}),
            json!({"points": 5, "times": "x"}),
            json!({"points": "many"}),
            json!({"app_id": "nope", "points": 5}),
        ] {
            let (status, body) = app.post(CONFIG, &admin, &bad).await;
            assert_eq!(status, 200, "{bad}: {body}");
            assert_eq!(body["status"], false, "{bad}: {body}");
        }
        let (status, body) = app.post(CONFIG, &[], &json!({"points": 5})).await;
        assert_ne!(body["status"], true, "{status} {body}");
        assert_eq!(snapshot(&app).await, before);

        let (_, body) = app
            .post(CONFIG, &admin, &json!({"points": 15, "times": 3}))
            .await;
        assert_eq!(body["status"], true, "{body}");
        assert_eq!(body["data"]["reward"], 45, "{body}");
        let (_, body) = app.post(CONFIG, &admin, &json!({"times": 2})).await;
        assert_eq!(body["data"]["points"], 15, "{body}");
        assert_eq!(body["data"]["reward"], 30, "{body}");

        let (_, alice, alice_auth, _) = mini_login(&app, "alice", None).await;
        let (_, body) = app
            .get(
                &format!("{CODE}?openid={alice}"),
                &[("Authorization", &alice_auth)],
            )
            .await;
        assert_eq!(body["data"]["times"], 2, "{body}");
        let code = body["data"]["share_code"]
            .as_str()
            .expect("code")
            .to_string();
        mini_login(&app, "carol", Some(&code)).await;
        assert_eq!(app.balance(&alice).await, 30);

        // A reward of nothing still records the invite, once.
        app.post(CONFIG, &admin, &json!({"points": 0})).await;
        mini_login(&app, "dave", Some(&code)).await;
        let entries = invite_entries(&app, &alice).await;
        assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), [30, 0]);
        let (_, body) = app
            .get(
                &format!("{RECORD}?openid={alice}"),
                &[("Authorization", &alice_auth)],
            )
            .await;
        assert_eq!(body["data"].as_array().expect("list").len(), 2, "{body}");
        ledger_facts(&app.database_url, &alice)
            .await
            .assert_conserved();
    }
}
