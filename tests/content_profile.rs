//! Content (000 banners and icon grid) and profile/auth (000 auth info and phone, 003 update,
//! phone binding and auth status), on SQLite and Postgres.
//!
//! Phone fixtures are encrypted here the way the platforms do: Alipay's response with the app's
//! AES key and a zero IV, WeChat's `getPhoneNumber` data with the user's session key and an IV.

mod common;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use common::{backends, TestApp, ADMIN_KEY};
use points_engine::db::Db;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("X-Admin-Key", ADMIN_KEY);
const AES_KEY: [u8; 16] = *b"alipay-aes-key-1";
const SESSION_KEY: [u8; 16] = *b"wx-session-key-1";
const WX_APPID: &str = "wx-profile-appid";
const IV: [u8; 16] = *b"0011223344556677";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn encrypt(key: &[u8; 16], iv: &[u8; 16], plain: &str) -> String {
    b64(&cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes()))
}

async fn db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, 2).await.expect("connect")
}

/// `(login_status, phone, nick, avatar, gender)` of a user.
async fn user_row(app: &TestApp, uid: &str) -> (i64, Option<String>, String, String, i64) {
    let db = db(app).await;
    let row: (i64, Option<String>, String, String, i64) = sqlx::query_as(
        "SELECT login_status, phone, nick, avatar, gender FROM users WHERE platform_uid = $1",
    )
    .bind(uid)
    .fetch_one(&db.read)
    .await
    .expect("user row");
    db.write.close().await;
    db.read.close().await;
    row
}

/// Configures the default app (before anything caches it): AES key and WeChat credentials.
async fn configure(app: &TestApp) {
    let (status, body) = app
        .post(
            "/admin/apps",
            &[ADMIN],
            &json!({"id": "default", "name": "Default app", "settings": {
                "aes_key": b64(&AES_KEY),
                "wechat_appid": WX_APPID,
                "wechat_secret": "wx-secret",
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn admin(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[ADMIN], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn gift(app: &TestApp, path: &str, auth: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[("Authorization", auth)], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

#[actix_web::test]
async fn banners_and_icon_grid_list_shown_entries_in_order_with_task_info() {
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        let task = admin(
            &app,
            "/admin/tasks",
            json!({"name": "看视频", "reward_type": "积分", "amount": 10}),
        )
        .await;
        let task_id = task["data"]["id"].as_i64().expect("task id");

        // Arrange: three banners out of id order by sort, one of them task-linked.
        let b = |body: Value| admin(&app, "/admin/banners", body);
        let late = b(json!({"image": "https://img/a.png", "type": "NORMAL", "sort": 5})).await;
        let first =
            b(json!({"image": "https://img/b.png", "type": "TASK", "task_id": task_id, "sort": 1}))
                .await;
        let hidden =
            b(json!({"image": "https://img/c.png", "type": "NORMAL", "sort": 0, "status": "20"}))
                .await;
        let late = late["data"]["id"].as_i64().expect("id");
        let first = first["data"]["id"].as_i64().expect("id");
        let hidden = hidden["data"]["id"].as_i64().expect("id");

        // Act + assert: public list, shown only, by sort; the TASK banner carries its task.
        let (_, list) = app.get("/v2/banner/list.json?app_id=default", &[]).await;
        assert_eq!(list["status"], true, "{list}");
        assert_eq!(ids(&list["data"]), vec![first, late]);
        let info = &list["data"][0]["task_info"];
        assert_eq!(info["id"], task_id, "{list}");
        assert_eq!(info["is_done"], false);
        assert_eq!(list["data"][0]["type"], "TASK");
        assert!(list["data"][1].get("task_info").is_none(), "{list}");

        // A finished task shows as done to its user only.
        let (uid, auth) = app.login("ann").await;
        let done = gift(
            &app,
            "/v2/task/finish.json",
            &auth,
            json!({"app_id": "default", "user_id": uid, "id": task_id}),
        )
        .await;
        assert_eq!(done["status"], true, "{done}");
        let (_, mine) = app
            .get(
                "/v2/banner/list.json?app_id=default",
                &[("Authorization", &auth)],
            )
            .await;
        assert_eq!(mine["data"][0]["task_info"]["is_done"], true, "{mine}");
        let (_, anon) = app.get("/v2/banner/list.json", &[]).await;
        assert_eq!(anon["data"][0]["task_info"]["is_done"], false, "{anon}");

        // Status changes: show the hidden one, delete the late one; a task off shelf hides its banner.
        b(json!({"id": hidden, "status": "10"})).await;
        b(json!({"id": late, "status": "30"})).await;
        let (_, list) = app.get("/v2/banner/list.json", &[]).await;
        assert_eq!(ids(&list["data"]), vec![hidden, first]);
        admin(&app, "/admin/tasks", json!({"id": task_id, "status": "20"})).await;
        let (_, list) = app.get("/v2/banner/list.json", &[]).await;
        assert_eq!(ids(&list["data"]), vec![hidden]);
        let (_, all) = app.get("/admin/banners?app_id=default", &[ADMIN]).await;
        assert_eq!(ids(&all["data"]), vec![hidden, first]);

        // Bad input: 400 and nothing changes.
        for bad in [
            json!({"image": "x", "type": "OTHER"}),
            json!({"image": "x", "type": "TASK"}),
            json!({"image": "x", "type": "TASK", "task_id": task_id}),
            json!({"image": "", "type": "NORMAL"}),
            json!({"image": "x", "type": "NORMAL", "status": "99"}),
            json!({"image": "x", "type": "NORMAL", "sort": 10_000_000}),
            json!({"image": "x".repeat(1001), "type": "NORMAL"}),
            json!({"id": late, "status": "10"}),
            json!({"id": "abc"}),
        ] {
            let got = app.post("/admin/banners", &[ADMIN], &bad).await;
            assert_eq!(got.0, 200, "{bad}");
            assert_eq!(got.1["status"], false, "{bad}: {}", got.1);
            assert!(
                matches!(got.1["code"].as_i64(), Some(400 | 404)),
                "{}",
                got.1
            );
        }
        let (_, again) = app.get("/admin/banners", &[ADMIN]).await;
        assert_eq!(again["data"], all["data"]);
        let (_, nokey) = app
            .post(
                "/admin/banners",
                &[],
                &json!({"image": "x", "type": "NORMAL"}),
            )
            .await;
        assert_eq!(nokey["code"], 401, "{nokey}");

        // Icon grid.
        let k = |body: Value| admin(&app, "/admin/kingkong", body);
        let k2 = k(json!({"icon": "i2", "name": "抽奖", "sort": 2, "target_type": "PAGE", "target": "/lottery"})).await;
        let k1 = k(json!({"icon": "i1", "name": "签到", "sort": 1})).await;
        let k3 = k(json!({"icon": "i3", "name": "隐藏", "sort": 0, "status": "20"})).await;
        let (k1, k2, k3) = (
            k1["data"]["id"].as_i64().expect("id"),
            k2["data"]["id"].as_i64().expect("id"),
            k3["data"]["id"].as_i64().expect("id"),
        );
        let (_, grid) = app.get("/v2/kingkong/list.json?app_id=default", &[]).await;
        assert_eq!(ids(&grid["data"]), vec![k1, k2]);
        assert_eq!(grid["data"][1]["target"], "/lottery");
        assert_eq!(grid["data"][1]["name"], "抽奖");
        k(json!({"id": k1, "sort": 3})).await;
        let (_, grid) = app.get("/v2/kingkong/list.json", &[]).await;
        assert_eq!(ids(&grid["data"]), vec![k2, k1]);
        for bad in [
            json!({"icon": "i"}),
            json!({"name": "n"}),
            json!({"id": k3, "status": "5"}),
            json!({"id": 999_999, "name": "x"}),
        ] {
            let got = app.post("/admin/kingkong", &[ADMIN], &bad).await;
            assert_eq!(got.1["status"], false, "{bad}: {}", got.1);
        }
        let (_, all) = app.get("/admin/kingkong", &[ADMIN]).await;
        assert_eq!(ids(&all["data"]), vec![k3, k2, k1]);
        let (_, unknown) = app.get("/v2/kingkong/list.json?app_id=nope", &[]).await;
        assert_eq!(unknown["code"], 404, "{unknown}");
    }
}

#[actix_web::test]
async fn gift_auth_info_and_phone_raise_the_login_status_and_never_lower_it() {
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        configure(&app).await;
        let (uid, auth) = app.login("bea").await;
        let (other, _) = app.login("cid").await;
        assert_eq!(user_row(&app, &uid).await.0, 10);
        let me = |extra: Value| {
            let mut body = json!({"app_id": "default", "user_id": uid});
            for (k, v) in extra.as_object().expect("object") {
                body[k] = v.clone();
            }
            body
        };

        // Bad input changes nothing.
        for (body, code) in [
            (me(json!({})), 400),
            (me(json!({"info": {"gender": "X"}})), 400),
            (me(json!({"info": "not json"})), 400),
            (me(json!({"info": {"nick": "n".repeat(65)}})), 400),
            (me(json!({"info": {"nick": 5}})), 400),
            (
                json!({"app_id": "default", "user_id": other, "info": {"nick": "x"}}),
                403,
            ),
        ] {
            let got = gift(&app, "/v2/user/auth/info.json", &auth, body.clone()).await;
            assert_eq!(
                (got["status"].clone(), got["code"].clone()),
                (json!(false), json!(code)),
                "{body}: {got}"
            );
        }
        assert_eq!(
            user_row(&app, &uid).await,
            (10, None, String::new(), String::new(), 0)
        );

        let got = gift(
            &app,
            "/v2/user/auth/info.json",
            &auth,
            me(json!({"info": {"nick": "Bea", "avatar": "https://img/bea.png", "gender": "F"}})),
        )
        .await;
        assert_eq!(got["data"], json!([]), "{got}");
        assert_eq!(
            user_row(&app, &uid).await,
            (20, None, "Bea".into(), "https://img/bea.png".into(), 2)
        );

        // Phone: wrong key and garbage refused, right key binds and sets 30.
        let plain = r#"{"code":"10000","msg":"Success","mobile":"13800001111"}"#;
        let zero = [0u8; 16];
        for (enc, code) in [
            (encrypt(b"some-other-key!!", &zero, plain), 400),
            ("not base64!".to_string(), 400),
            (
                encrypt(&AES_KEY, &zero, r#"{"code":"40004","msg":"fail"}"#),
                400,
            ),
        ] {
            let got = gift(
                &app,
                "/v2/user/auth/phone.json",
                &auth,
                me(json!({"encrypted": enc})),
            )
            .await;
            assert_eq!(got["code"], code, "{got}");
        }
        let missing = gift(&app, "/v2/user/auth/phone.json", &auth, me(json!({}))).await;
        assert_eq!(missing["code"], 400, "{missing}");
        assert_eq!(user_row(&app, &uid).await.0, 20);
        let got = gift(
            &app,
            "/v2/user/auth/phone.json",
            &auth,
            me(json!({"encrypted": encrypt(&AES_KEY, &zero, plain)})),
        )
        .await;
        assert_eq!(got["status"], true, "{got}");
        let row = user_row(&app, &uid).await;
        assert_eq!((row.0, row.1.as_deref()), (30, Some("13800001111")));

        // A later profile update keeps 30.
        gift(
            &app,
            "/v2/user/auth/info.json",
            &auth,
            me(json!({"info": {"nick": "Bea2"}})),
        )
        .await;
        let row = user_row(&app, &uid).await;
        assert_eq!((row.0, row.2.as_str(), row.4), (30, "Bea2", 2));
        let (_, anon) = app
            .post(
                "/v2/user/auth/info.json",
                &[],
                &me(json!({"info": {"nick": "x"}})),
            )
            .await;
        assert_eq!(anon["code"], 401, "{anon}");
    }
}

#[actix_web::test]
async fn mini_update_phone_binding_and_auth_status() {
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        configure(&app).await;
        // A dev login: with WeChat configured, 003 `/api/login/` would call WeChat itself.
        let (openid, auth) = app.login("dee").await;
        let h = [("Authorization", auth.as_str())];
        let post = |path: &'static str, body: Value| {
            let app = &app;
            async move { app.post(path, &h, &body).await.1 }
        };

        // Update: gender and openid rules, nothing changed by bad input.
        for (body, code) in [
            (json!({"nickname": "x"}), -1),
            (json!({"openid": openid}), -1),
            (json!({"openid": openid, "nickname": "Dee", "sex": 3}), -2),
            (
                json!({"openid": openid, "nickname": "Dee", "sex": "男"}),
                -2,
            ),
            (json!({"openid": "dev_else", "nickname": "Dee"}), -3),
            (json!({"openid": openid, "nickname": "n".repeat(65)}), -4),
        ] {
            let got = post("/api/update/", body.clone()).await;
            assert_eq!(got["code"], code, "{body}: {got}");
        }
        assert_eq!(
            user_row(&app, &openid).await,
            (10, None, String::new(), String::new(), 0)
        );
        let got = post(
            "/api/update/",
            json!({"openid": openid, "nickname": "Dee", "sex": "1", "avatar": "https://img/d.png", "city": "杭州"}),
        )
        .await;
        assert_eq!(got["code"], 0, "{got}");
        assert_eq!(
            user_row(&app, &openid).await,
            (20, None, "Dee".into(), "https://img/d.png".into(), 1)
        );

        // Auth status before binding.
        let (_, status) = app
            .get(&format!("/api/auth_status/?openid={openid}"), &h)
            .await;
        assert_eq!(status["code"], 0, "{status}");
        assert_eq!(
            status["data"],
            json!({"is_phone": false, "is_email": false, "is_real_name": false, "is_face": false,
                   "is_wx_run": false, "is_mp": false, "is_eye": false, "eye_status": "need"})
        );
        let (_, wrong) = app.get("/api/auth_status/?openid=dev_else", &h).await;
        assert_eq!(wrong["code"], -2, "{wrong}");
        let (_, empty) = app.get("/api/auth_status/", &h).await;
        assert_eq!(empty["code"], -1, "{empty}");

        // Phone: no session key yet, then wrong key, wrong watermark, no number, then bound once.
        admin(&app, "/admin/profile/config", json!({"phone_reward": 7})).await;
        let phone = |appid: &str, number: &str| {
            json!({"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86",
                   "watermark": {"appid": appid, "timestamp": 1}})
            .to_string()
        };
        let body = |key: &[u8; 16], plain: &str| json!({"openid": openid, "encrypted_data": encrypt(key, &IV, plain), "iv": b64(&IV)});
        let good = body(&SESSION_KEY, &phone(WX_APPID, "13900002222"));
        assert_eq!(post("/api/wx_phone/", good.clone()).await["code"], -4);
        {
            let db = db(&app).await;
            sqlx::query("UPDATE users SET session_key = $1 WHERE platform_uid = $2")
                .bind(b64(&SESSION_KEY))
                .bind(&openid)
                .execute(&db.write)
                .await
                .expect("set session key");
            db.write.close().await;
            db.read.close().await;
        }
        for (req, code) in [
            (json!({"openid": openid, "iv": b64(&IV)}), -1),
            (
                body(b"another-key-1234", &phone(WX_APPID, "13900002222")),
                -7,
            ),
            (body(&SESSION_KEY, &phone("wx-other", "13900002222")), -7),
            (body(&SESSION_KEY, &phone(WX_APPID, "")), -6),
            (body(&SESSION_KEY, "not json"), -7),
            (
                {
                    let mut other = good.clone();
                    other["openid"] = json!("dev_else");
                    other
                },
                -5,
            ),
        ] {
            let got = post("/api/wx_phone/", req.clone()).await;
            assert_eq!(got["code"], code, "{req}: {got}");
        }
        assert_eq!(user_row(&app, &openid).await.1, None);
        assert_eq!(app.balance(&openid).await, 0);

        // The original server's spelling `encryptedData` is read too.
        let camel = |key: &[u8; 16], plain: &str| json!({"openid": openid, "encryptedData": encrypt(key, &IV, plain), "iv": b64(&IV)});
        let got = post("/api/wx_phone/", camel(&SESSION_KEY, &phone(WX_APPID, ""))).await;
        assert_eq!(got["code"], -6, "{got}");

        // Concurrent binds in both spellings: one succeeds, the reward is paid once.
        let good_camel = camel(&SESSION_KEY, &phone(WX_APPID, "13900002222"));
        let tries = futures_util::future::join_all((0..6).map(|i| {
            let body = if i % 2 == 0 {
                good.clone()
            } else {
                good_camel.clone()
            };
            post("/api/wx_phone/", body)
        }))
        .await;
        let codes: Vec<i64> = tries
            .iter()
            .map(|t| t["code"].as_i64().expect("code"))
            .collect();
        assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
        assert!(codes.iter().all(|c| *c == 0 || *c == -3), "{codes:?}");
        assert_eq!(app.balance(&openid).await, 7);
        let again = post(
            "/api/wx_phone/",
            body(&SESSION_KEY, &phone(WX_APPID, "13700003333")),
        )
        .await;
        assert_eq!(again["code"], -3, "{again}");
        let row = user_row(&app, &openid).await;
        assert_eq!((row.0, row.1.as_deref()), (30, Some("13900002222")));
        assert_eq!(app.balance(&openid).await, 7);

        // Profile update keeps 30; auth status shows the phone.
        post(
            "/api/update/",
            json!({"openid": openid, "nickname": "Dee2"}),
        )
        .await;
        assert_eq!(user_row(&app, &openid).await.0, 30);
        let (_, status) = app
            .get(&format!("/api/auth_status/?openid={openid}"), &h)
            .await;
        assert_eq!(status["data"]["is_phone"], true, "{status}");

        // Admin config validation.
        let (_, bad) = app
            .post(
                "/admin/profile/config",
                &[ADMIN],
                &json!({"phone_reward": -1}),
            )
            .await;
        assert_eq!(bad["code"], 400, "{bad}");
        let (_, cfg) = app.get("/admin/profile/config", &[ADMIN]).await;
        assert_eq!(cfg["data"]["phone_reward"], 7, "{cfg}");
    }
}
