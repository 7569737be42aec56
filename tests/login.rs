//! Login against fake WeChat and Alipay servers on loopback, dev login, and session tokens, on
//! SQLite and Postgres.
//!
//! The fake WeChat server answers `GET /sns/jscode2session` and checks the app's appid and
//! secret. The fake Alipay gateway answers `alipay.system.oauth.token`: it verifies the RSA2
//! signature of every request with the app's public key and signs its answers with a separate
//! "platform" key, whose public key the app is configured with. The keys are fixed test keys in
//! `tests/fixtures/`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine;
use common::{backends, spawn_app_with, Backend, TestApp, ADMIN_KEY};
use points_engine::db::Db;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ----- fixed credentials -----

const WX_APPID: &str = "wx-test-appid";
const WX_SECRET: &str = "wx-test-secret";
const WX_OTHER_APPID: &str = "wx-other-appid";
const WX_OTHER_SECRET: &str = "wx-other-secret";
/// The Alipay open-platform app id both Alipay test apps use.
const ALIPAY_APP_ID: &str = "2021000000000001";

const APP_PRIVATE_PEM: &str = include_str!("fixtures/alipay_app_private.pem");
const APP_PRIVATE_PKCS1_PEM: &str = include_str!("fixtures/alipay_app_private_pkcs1.pem");
const APP_PUBLIC_PEM: &str = include_str!("fixtures/alipay_app_public.pem");
const PLATFORM_PRIVATE_PEM: &str = include_str!("fixtures/alipay_platform_private.pem");
const PLATFORM_PUBLIC_PEM: &str = include_str!("fixtures/alipay_platform_public.pem");
const STRANGER_PRIVATE_PEM: &str = include_str!("fixtures/alipay_stranger_private.pem");

// ----- fake providers -----

/// What the fake providers know and count.
struct Fake {
    /// WeChat appid -> (secret, openid prefix).
    wechat_apps: HashMap<String, (String, String)>,
    /// Alipay app id -> the app's public key as PKCS#1 `RSAPublicKey` DER.
    alipay_apps: HashMap<String, Vec<u8>>,
    platform_key: RsaKeyPair,
    stranger_key: RsaKeyPair,
    wechat_calls: AtomicUsize,
    alipay_calls: AtomicUsize,
    /// Alipay requests whose signature verified.
    alipay_verified: AtomicUsize,
}

/// The fake WeChat API and Alipay gateway, served by one loopback server.
struct FakeProviders {
    base: String,
    state: Arc<Fake>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeProviders {
    async fn start() -> FakeProviders {
        let state = Arc::new(Fake {
            wechat_apps: HashMap::from([
                (WX_APPID.into(), (WX_SECRET.into(), "oWx".into())),
                (
                    WX_OTHER_APPID.into(),
                    (WX_OTHER_SECRET.into(), "oOther".into()),
                ),
            ]),
            alipay_apps: HashMap::from([(ALIPAY_APP_ID.into(), rsa_public_key(APP_PUBLIC_PEM))]),
            platform_key: rsa_key_pair(PLATFORM_PRIVATE_PEM),
            stranger_key: rsa_key_pair(STRANGER_PRIVATE_PEM),
            wechat_calls: AtomicUsize::new(0),
            alipay_calls: AtomicUsize::new(0),
            alipay_verified: AtomicUsize::new(0),
        });
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/sns/jscode2session", web::get().to(jscode2session))
                .route("/gateway.do", web::post().to(alipay_gateway))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind fake providers");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeProviders {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    fn gateway(&self) -> String {
        format!("{}/gateway.do", self.base)
    }

    fn wechat_calls(&self) -> usize {
        self.state.wechat_calls.load(Ordering::SeqCst)
    }

    fn alipay_calls(&self) -> usize {
        self.state.alipay_calls.load(Ordering::SeqCst)
    }

    fn alipay_verified(&self) -> usize {
        self.state.alipay_verified.load(Ordering::SeqCst)
    }
}

fn wechat_error(errcode: i64, errmsg: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"errcode": errcode, "errmsg": errmsg}))
}

/// `GET /sns/jscode2session?appid&secret&js_code&grant_type`, as WeChat answers it.
async fn jscode2session(
    fake: web::Data<Fake>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    fake.wechat_calls.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "authorization_code" {
        return wechat_error(40002, "invalid grant_type");
    }
    let Some((secret, prefix)) = fake.wechat_apps.get(field("appid")) else {
        return wechat_error(40013, "invalid appid");
    };
    if field("secret") != secret {
        return wechat_error(40125, "invalid appsecret");
    }
    match field("js_code").strip_prefix("good-") {
        Some(n) if !n.is_empty() => HttpResponse::Ok().json(json!({
            "openid": format!("{prefix}-{n}"),
            "session_key": format!("SECRET-SK-{n}"),
            "unionid": format!("u-{n}"),
        })),
        _ => wechat_error(40029, "invalid code"),
    }
}

/// The string an Alipay RSA2 signature covers: every non-empty parameter but `sign`, sorted by
/// name, `k=v` joined by `&` (written here independently of the server's own code).
fn alipay_content(params: &[(String, String)]) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn rsa_key_pair(pem: &str) -> RsaKeyPair {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).expect("PKCS#8 PEM");
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("RSA private key")
}

/// The PKCS#1 `RSAPublicKey` inside a PEM SubjectPublicKeyInfo.
fn rsa_public_key(pem: &str) -> Vec<u8> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).expect("public key PEM");
    let info = spki::SubjectPublicKeyInfoRef::try_from(der.as_ref()).expect("SPKI");
    info.subject_public_key
        .as_bytes()
        .expect("whole bytes")
        .to_vec()
}

fn sign_b64(key: &RsaKeyPair, content: &str) -> String {
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        content.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    base64::engine::general_purpose::STANDARD.encode(signature)
}

fn alipay_error(code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json;charset=utf-8")
        .body(
            json!({"error_response": {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}})
                .to_string(),
        )
}

/// The Alipay open-platform gateway, `alipay.system.oauth.token` only. Auth codes:
/// `good-N` -> user `2088-N`, signed by the platform key; `forged-N` -> signed by a stranger's
/// key; `tampered-N` -> signed, then `user_id` changed; `unsigned-N` -> no `sign`; anything
/// else -> invalid auth_code.
async fn alipay_gateway(fake: web::Data<Fake>, body: web::Bytes) -> HttpResponse {
    fake.alipay_calls.fetch_add(1, Ordering::SeqCst);
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return alipay_error("40001", "Missing Required Arguments", "", "form body");
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    for (name, want) in [
        ("method", "alipay.system.oauth.token"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("version", "1.0"),
        ("grant_type", "authorization_code"),
    ] {
        if get(name) != want {
            return alipay_error("40002", "Invalid Arguments", "isv.invalid-parameter", name);
        }
    }
    if chrono::NaiveDateTime::parse_from_str(get("timestamp"), "%Y-%m-%d %H:%M:%S").is_err() {
        return alipay_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-timestamp",
            "timestamp",
        );
    }
    let Some(app_key) = fake.alipay_apps.get(get("app_id")) else {
        return alipay_error("40002", "Invalid Arguments", "isv.invalid-app-id", "app_id");
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(get("sign"))
        .ok();
    let verified = signature.is_some_and(|sig| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, app_key)
            .verify(alipay_content(&params).as_bytes(), &sig)
            .is_ok()
    });
    if !verified {
        return alipay_error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature",
            "验签出错",
        );
    }
    fake.alipay_verified.fetch_add(1, Ordering::SeqCst);
    let code = get("code");
    let (kind, n) = code.split_once('-').unwrap_or((code, ""));
    if n.is_empty() || !["good", "forged", "tampered", "unsigned"].contains(&kind) {
        return alipay_error(
            "40002",
            "Invalid Arguments",
            "isv.code-invalid",
            "invalid auth_code",
        );
    }
    let node = json!({
        "access_token": format!("authbseB-{n}"),
        "alipay_user_id": format!("2088-{n}"),
        "expires_in": 1_296_000,
        "re_expires_in": 2_592_000,
        "refresh_token": format!("authbseR-{n}"),
        "user_id": format!("2088-{n}"),
    })
    .to_string();
    let body = match kind {
        "good" => format!(
            r#"{{"alipay_system_oauth_token_response":{node},"sign":"{}"}}"#,
            sign_b64(&fake.platform_key, &node)
        ),
        "forged" => format!(
            r#"{{"alipay_system_oauth_token_response":{node},"sign":"{}"}}"#,
            sign_b64(&fake.stranger_key, &node)
        ),
        "tampered" => {
            let sign = sign_b64(&fake.platform_key, &node);
            let changed = node.replace(&format!("\"2088-{n}\""), "\"2088-666\"");
            format!(r#"{{"alipay_system_oauth_token_response":{changed},"sign":"{sign}"}}"#)
        }
        _ => format!(r#"{{"alipay_system_oauth_token_response":{node}}}"#),
    };
    HttpResponse::Ok()
        .content_type("application/json;charset=utf-8")
        .body(body)
}

// ----- log capture -----

/// Everything the process logs, kept in memory so tests can check what never appears in it.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buf) = self.0.lock() {
            buf.extend_from_slice(bytes);
        }
        if std::env::var("TEST_LOG").is_ok() {
            std::io::stderr().write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// Installs the capturing subscriber for this test binary, at the most verbose level for the
/// server's own crates. `None` when another subscriber was installed first.
fn captured_logs() -> Option<LogBuffer> {
    static LOGS: OnceLock<Option<LogBuffer>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,points_engine=trace,points_actors=trace,mio=info,rustls=info",
            ))
            .with_ansi(false)
            .with_writer(buf.clone())
            .try_init()
            .ok()
            .map(|_| buf)
    })
    .clone()
}

// ----- helpers -----

async fn db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, 2).await.expect("connect")
}

async fn close(db: Db) {
    db.write.close().await;
    db.read.close().await;
}

/// GET and return the status and the raw body text.
async fn get_text(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(app.url(path));
    if let Some(b) = bearer {
        req = req.header("Authorization", b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Creates or updates an app through the admin API.
async fn save_app(app: &TestApp, id: &str, settings: Value) {
    let (status, body) = app
        .post(
            "/admin/apps",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"id": id, "settings": settings}),
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
}

/// A server with dev login off, talking to the fake providers; the default app has the
/// WeChat credentials `POINTS_WECHAT_*` would give it.
async fn spawn_with_providers(backend: Backend, fake: &FakeProviders) -> TestApp {
    let base = fake.base.clone();
    let gateway = fake.gateway();
    spawn_app_with(backend, move |s| {
        s.dev_login = false;
        s.wechat_api_base = base;
        s.wechat_appid = Some(WX_APPID.into());
        s.wechat_secret = Some(WX_SECRET.into());
        s.alipay_gateway = gateway;
    })
    .await
}

/// The `user_id` and token of a 000 login answer, checking the envelope.
fn gift_login_ok(body: &Value) -> (String, String) {
    assert_eq!(body["code"], 200, "{body}");
    assert_eq!(body["status"], true, "{body}");
    let user = body["data"]["user_id"]
        .as_str()
        .expect("user_id")
        .to_string();
    let token = body["data"]["token"].as_str().expect("token").to_string();
    (user, token)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

// ----- WeChat (003 `/api/login/`) -----

#[actix_web::test]
async fn wechat_login_issues_our_token_and_keeps_the_session_key_on_the_server() {
    let logs = captured_logs();
    let fake = FakeProviders::start().await;
    for backend in backends() {
        // Arrange
        let app = spawn_with_providers(backend, &fake).await;
        let calls_before = fake.wechat_calls();

        // Act: first login.
        let (status, text) = get_text(&app, "/api/login/?code=good-1", None).await;

        // Assert: a new user, our own token, and no trace of WeChat's session_key.
        assert_eq!(status, 200, "{backend:?}: {text}");
        assert!(!text.contains("SECRET-SK"), "{backend:?}: {text}");
        let body = parse(&text);
        assert_eq!(body["code"], 0, "{backend:?}: {body}");
        assert_eq!(body["data"]["openid"], "oWx-1", "{body}");
        assert_eq!(body["data"]["is_new"], true, "{body}");
        let token = body["data"]["token"].as_str().expect("token").to_string();
        assert!(token.len() >= 32, "token too short: {token:?}");
        assert_eq!(
            fake.wechat_calls(),
            calls_before + 1,
            "WeChat was asked once"
        );

        // The token works on a later call for the same openid.
        let bearer = format!("Bearer {token}");
        let (status, text) =
            get_text(&app, "/api/query_balance/?openid=oWx-1", Some(&bearer)).await;
        assert_eq!(status, 200, "{text}");
        let balance = parse(&text);
        assert_eq!(balance["code"], 0, "{backend:?}: {balance}");
        assert_eq!(balance["data"]["balance"], 0, "{balance}");
        assert!(!text.contains("SECRET-SK"));
        // ... and for no other openid (-2 wrong openid).
        let (_, other) = app
            .get(
                "/api/query_balance/?openid=oWx-2",
                &[("Authorization", &bearer)],
            )
            .await;
        assert_eq!(other["code"], -2, "{other}");

        // Second login: the same user, not new, a different token; both tokens work.
        let (_, text) = get_text(&app, "/api/login/?code=good-1", None).await;
        assert!(!text.contains("SECRET-SK"), "{text}");
        let again = parse(&text);
        assert_eq!(again["code"], 0, "{again}");
        assert_eq!(again["data"]["openid"], "oWx-1");
        assert_eq!(again["data"]["is_new"], false, "{again}");
        let token2 = again["data"]["token"].as_str().expect("token");
        assert_ne!(token2, token);
        let (_, still) = app
            .get(
                "/api/query_balance/?openid=oWx-1",
                &[("Authorization", &bearer)],
            )
            .await;
        assert_eq!(still["code"], 0, "{still}");

        // POST with a form body, the way the original mini-program sends it.
        let res = app
            .client
            .post(app.url("/api/login/"))
            .form(&[("code", "good-2")])
            .send()
            .await
            .expect("form login");
        let text = res.text().await.expect("body");
        assert!(!text.contains("SECRET-SK"), "{text}");
        let form = parse(&text);
        assert_eq!(form["code"], 0, "{form}");
        assert_eq!(form["data"]["openid"], "oWx-2", "{form}");

        // The session key is stored on the user row, on the server only.
        let db = db(&app).await;
        let row: (Option<String>, Option<String>, String) = sqlx::query_as(
            "SELECT session_key, unionid, provider FROM users WHERE app_id = 'default' AND platform_uid = $1",
        )
        .bind("oWx-1")
        .fetch_one(&db.read)
        .await
        .expect("user row");
        assert_eq!(
            row,
            (
                Some("SECRET-SK-1".to_string()),
                Some("u-1".to_string()),
                "wechat".to_string()
            ),
            "{backend:?}"
        );
        close(db).await;
        app.handle.stop(true).await;
    }
    fake.handle.stop(true).await;

    // Nothing the server logged (at trace level) carries a session key.
    match logs {
        Some(logs) => {
            let text = logs.text();
            assert!(text.contains("login"), "the log capture saw no login");
            assert!(
                !text.contains("SECRET-SK"),
                "a session key reached the logs"
            );
        }
        None => eprintln!("another log subscriber was installed first: log check skipped"),
    }
}

#[actix_web::test]
async fn wechat_login_failures_answer_the_seed_codes() {
    let fake = FakeProviders::start().await;
    for backend in backends() {
        let app = spawn_with_providers(backend, &fake).await;

        // WeChat refuses the code: -3.
        let (_, bad) = app.get("/api/login/?code=bad", &[]).await;
        assert_eq!(bad["code"], -3, "{backend:?}: {bad}");
        assert!(bad["data"].is_null(), "{bad}");
        // Missing or empty code: -1, and WeChat is not even asked.
        let calls = fake.wechat_calls();
        let (_, missing) = app.get("/api/login/", &[]).await;
        assert_eq!(missing["code"], -1, "{backend:?}: {missing}");
        let (_, empty) = app.post("/api/login/", &[], &json!({"code": ""})).await;
        assert_eq!(empty["code"], -1, "{backend:?}: {empty}");
        let (_, blank) = app.post("/api/login/", &[], &json!({"code": "   "})).await;
        assert_eq!(blank["code"], -1, "{backend:?}: {blank}");
        assert_eq!(
            fake.wechat_calls(),
            calls,
            "no provider call for a missing code"
        );

        // An app whose WeChat secret is wrong: the fake refuses it, -3; no user is created.
        save_app(
            &app,
            "wx-wrong",
            json!({"wechat_appid": WX_APPID, "wechat_secret": "not-the-secret"}),
        )
        .await;
        let (_, wrong) = app
            .get("/api/login/?code=good-5&app_id=wx-wrong", &[])
            .await;
        assert_eq!(wrong["code"], -3, "{backend:?}: {wrong}");

        // An app with its own WeChat credentials logs in through them.
        save_app(
            &app,
            "wx-other",
            json!({"wechat_appid": WX_OTHER_APPID, "wechat_secret": WX_OTHER_SECRET}),
        )
        .await;
        let (_, other) = app
            .get("/api/login/?code=good-5&app_id=wx-other", &[])
            .await;
        assert_eq!(other["code"], 0, "{backend:?}: {other}");
        assert_eq!(other["data"]["openid"], "oOther-5", "{other}");

        // An app without WeChat credentials, dev login off: -2 (WeChat not configured).
        save_app(&app, "no-wechat", json!({})).await;
        let calls = fake.wechat_calls();
        let (_, unconfigured) = app
            .get("/api/login/?code=good-1&app_id=no-wechat", &[])
            .await;
        assert_eq!(unconfigured["code"], -2, "{backend:?}: {unconfigured}");
        assert_eq!(fake.wechat_calls(), calls);

        let db = db(&app).await;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&db.read)
            .await
            .expect("count users");
        assert_eq!(users, 1, "{backend:?}: only oOther-5 was created");
        close(db).await;
        app.handle.stop(true).await;
    }
    fake.handle.stop(true).await;
}

#[actix_web::test]
async fn wechat_login_without_any_configuration_answers_minus_two() {
    for backend in backends() {
        // Neither POINTS_WECHAT_* nor dev login.
        let app = spawn_app_with(backend, |s| s.dev_login = false).await;
        let (status, body) = app.get("/api/login/?code=good-1", &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["code"], -2, "{backend:?}: {body}");
        assert!(
            body["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn wechat_unreachable_answers_minus_three_quickly() {
    let port = common::free_port();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.dev_login = false;
        s.wechat_api_base = format!("http://127.0.0.1:{port}");
        s.wechat_appid = Some(WX_APPID.into());
        s.wechat_secret = Some(WX_SECRET.into());
    })
    .await;
    let started = std::time::Instant::now();
    let (_, body) = app.get("/api/login/?code=good-1", &[]).await;
    assert_eq!(body["code"], -3, "{body}");
    assert!(
        !body.to_string().contains(WX_SECRET),
        "the secret leaked into the answer: {body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    app.handle.stop(true).await;
}

// ----- Alipay (000 `/v2/user/login.json`) -----

#[actix_web::test]
async fn alipay_login_signs_the_request_and_verifies_the_answer() {
    let fake = FakeProviders::start().await;
    for backend in backends() {
        // Arrange
        let app = spawn_with_providers(backend, &fake).await;
        save_app(
            &app,
            "alipay-app",
            json!({"alipay_app_id": ALIPAY_APP_ID, "alipay_private_key": APP_PRIVATE_PEM,
                   "alipay_public_key": PLATFORM_PUBLIC_PEM}),
        )
        .await;
        let verified_before = fake.alipay_verified();

        // Act
        let (status, body) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "alipay-app", "auth_code": "good-7"}),
            )
            .await;

        // Assert: the gateway verified our signature, we verified its answer.
        assert_eq!(status, 200, "{body}");
        let (user, token) = gift_login_ok(&body);
        assert_eq!(user, "2088-7", "{backend:?}: {body}");
        assert_eq!(body["data"]["status"], "10", "{body}");
        assert_eq!(fake.alipay_verified(), verified_before + 1);
        let bearer = format!("Bearer {token}");
        let (_, points) = app
            .post(
                "/v2/user/points.json",
                &[("Authorization", &bearer)],
                &json!({"app_id": "alipay-app", "user_id": "2088-7"}),
            )
            .await;
        assert_eq!(points["status"], true, "{backend:?}: {points}");
        assert_eq!(points["data"]["points"], 0, "{points}");

        // The same key as PKCS#1 PEM, the other form the Alipay console hands out.
        save_app(
            &app,
            "alipay-pkcs1",
            json!({"alipay_app_id": ALIPAY_APP_ID, "alipay_private_key": APP_PRIVATE_PKCS1_PEM,
                   "alipay_public_key": PLATFORM_PUBLIC_PEM}),
        )
        .await;
        let (_, pkcs1) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "alipay-pkcs1", "auth_code": "good-8"}),
            )
            .await;
        let (user, _) = gift_login_ok(&pkcs1);
        assert_eq!(user, "2088-8");

        // The admin API never shows the private key back.
        let (_, apps) = app.get("/admin/apps", &[("X-Admin-Key", ADMIN_KEY)]).await;
        assert!(
            !apps.to_string().contains("PRIVATE KEY"),
            "private key shown: {apps}"
        );
        app.handle.stop(true).await;
    }
    fake.handle.stop(true).await;
}

#[actix_web::test]
async fn alipay_refusals_and_forged_answers_are_502_and_create_nobody() {
    let fake = FakeProviders::start().await;
    for backend in backends() {
        let app = spawn_with_providers(backend, &fake).await;
        save_app(
            &app,
            "alipay-app",
            json!({"alipay_app_id": ALIPAY_APP_ID, "alipay_private_key": APP_PRIVATE_PEM,
                   "alipay_public_key": PLATFORM_PUBLIC_PEM}),
        )
        .await;
        // Signs its requests with a key the gateway does not know for this app id.
        save_app(
            &app,
            "alipay-badkey",
            json!({"alipay_app_id": ALIPAY_APP_ID, "alipay_private_key": STRANGER_PRIVATE_PEM,
                   "alipay_public_key": PLATFORM_PUBLIC_PEM}),
        )
        .await;
        let login = |app_id: &'static str, code: &'static str| {
            let app = &app;
            async move {
                app.post(
                    "/v2/user/login.json",
                    &[],
                    &json!({"app_id": app_id, "auth_code": code}),
                )
                .await
            }
        };

        // Our request badly signed: the gateway answers error_response, we answer 502.
        let calls = fake.alipay_calls();
        let verified = fake.alipay_verified();
        let (status, bad_sig) = login("alipay-badkey", "good-7").await;
        assert_eq!(status, 200, "{bad_sig}");
        assert_eq!(bad_sig["status"], false, "{backend:?}: {bad_sig}");
        assert_eq!(bad_sig["code"], 502, "{backend:?}: {bad_sig}");
        assert!(
            bad_sig["msg"]
                .as_str()
                .is_some_and(|m| m.contains("登录失败")),
            "{bad_sig}"
        );
        assert_eq!(fake.alipay_calls(), calls + 1, "the gateway was asked");
        assert_eq!(
            fake.alipay_verified(),
            verified,
            "and refused our signature"
        );

        // The gateway refuses the auth code: 502.
        let (_, invalid) = login("alipay-app", "expired-code").await;
        assert_eq!(invalid["code"], 502, "{backend:?}: {invalid}");
        assert_eq!(invalid["status"], false);

        // Answers not signed by the platform key: refused.
        for code in ["forged-9", "tampered-9", "unsigned-9"] {
            let (_, refused) = login("alipay-app", code).await;
            assert_eq!(refused["code"], 502, "{backend:?} {code}: {refused}");
            assert_eq!(refused["status"], false, "{code}: {refused}");
            assert!(refused["data"].get("token").is_none(), "{refused}");
        }

        // Nobody was logged in by any of them.
        let db = db(&app).await;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&db.read)
            .await
            .expect("count users");
        let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&db.read)
            .await
            .expect("count sessions");
        assert_eq!((users, sessions), (0, 0), "{backend:?}");
        close(db).await;

        // The same app still logs in a good code afterwards.
        let (_, good) = login("alipay-app", "good-9").await;
        assert_eq!(gift_login_ok(&good).0, "2088-9");
        app.handle.stop(true).await;
    }
    fake.handle.stop(true).await;
}

// ----- dev login -----

#[actix_web::test]
async fn dev_login_maps_code_x_to_dev_x_and_refuses_bad_codes() {
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        let (status, body) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "default", "auth_code": "X"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (user, token) = gift_login_ok(&body);
        assert_eq!(user, "dev_X", "{backend:?}: {body}");
        assert!(!token.is_empty());
        assert_eq!(body["data"]["status"], "10", "{body}");
        // 003 dev login answers the same user.
        let (_, mini) = app.get("/api/login/?code=X", &[]).await;
        assert_eq!(mini["code"], 0, "{mini}");
        assert_eq!(mini["data"]["openid"], "dev_X", "{mini}");
        assert_eq!(mini["data"]["is_new"], false, "{mini}");

        let long = "a".repeat(100);
        let too_long = "b".repeat(300);
        for code in [
            "has space",
            "semi;colon",
            "dev/../x",
            "ünïcode",
            long.as_str(),
            too_long.as_str(),
        ] {
            let (_, bad) = app
                .post(
                    "/v2/user/login.json",
                    &[],
                    &json!({"app_id": "default", "auth_code": code}),
                )
                .await;
            assert_eq!(bad["code"], 400, "{backend:?} {code:?}: {bad}");
            assert_eq!(bad["status"], false, "{bad}");
        }
        // Missing auth_code: 400; unknown app: 404.
        let (_, missing) = app
            .post("/v2/user/login.json", &[], &json!({"app_id": "default"}))
            .await;
        assert_eq!(missing["code"], 400, "{missing}");
        let (_, unknown) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "nope", "auth_code": "X"}),
            )
            .await;
        assert_eq!(unknown["code"], 404, "{unknown}");

        // Only dev_X exists.
        let db = db(&app).await;
        let uids: Vec<String> = sqlx::query_scalar("SELECT platform_uid FROM users")
            .fetch_all(&db.read)
            .await
            .expect("users");
        assert_eq!(uids, vec!["dev_X".to_string()], "{backend:?}");
        close(db).await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn without_dev_login_or_a_provider_alipay_login_is_501() {
    for backend in backends() {
        let app = spawn_app_with(backend, |s| s.dev_login = false).await;
        let (_, body) = app
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "default", "auth_code": "X"}),
            )
            .await;
        assert_eq!(body["code"], 501, "{backend:?}: {body}");
        assert_eq!(body["status"], false, "{body}");
        app.handle.stop(true).await;
    }
}

// ----- session tokens -----

#[actix_web::test]
async fn sessions_store_only_a_hash_and_tokens_stay_in_their_app() {
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        save_app(&app, "app-b", json!({})).await;
        let login = |app_id: &'static str, code: &'static str| {
            let app = &app;
            async move {
                let (_, body) = app
                    .post(
                        "/v2/user/login.json",
                        &[],
                        &json!({"app_id": app_id, "auth_code": code}),
                    )
                    .await;
                gift_login_ok(&body)
            }
        };
        let (alice, token_a) = login("default", "alice").await;
        let (bob, token_b) = login("app-b", "bob").await;
        // The same platform id in app B is a different user.
        let (alice_b, _) = login("app-b", "alice").await;
        assert_eq!((alice.as_str(), bob.as_str()), ("dev_alice", "dev_bob"));
        assert_eq!(alice_b, "dev_alice");

        // The sessions table holds SHA-256 hex digests, never the tokens.
        let db = db(&app).await;
        let hashes: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM sessions")
            .fetch_all(&db.read)
            .await
            .expect("sessions");
        assert_eq!(hashes.len(), 3, "{backend:?}");
        for token in [&token_a, &token_b] {
            assert!(
                hashes.contains(&sha256_hex(token)),
                "{backend:?}: no SHA-256 of the token stored"
            );
            assert!(
                hashes.iter().all(|h| !h.contains(token.as_str())),
                "{backend:?}: raw token stored"
            );
        }
        assert!(hashes
            .iter()
            .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())));
        let row_app: String =
            sqlx::query_scalar("SELECT app_id FROM sessions WHERE token_hash = $1")
                .bind(sha256_hex(&token_b))
                .fetch_one(&db.read)
                .await
                .expect("session of bob");
        assert_eq!(row_app, "app-b");
        close(db).await;

        // A token of app A reads its own user...
        let bearer_a = format!("Bearer {token_a}");
        let auth_a = [("Authorization", bearer_a.as_str())];
        let (_, own) = app
            .post(
                "/v2/user/points.json",
                &auth_a,
                &json!({"app_id": "default", "user_id": "dev_alice"}),
            )
            .await;
        assert_eq!(own["status"], true, "{backend:?}: {own}");
        // ...but not a user of app B, also not one with the same platform id.
        for (app_id, user_id) in [("app-b", "dev_bob"), ("app-b", "dev_alice")] {
            let (_, refused) = app
                .post(
                    "/v2/user/points.json",
                    &auth_a,
                    &json!({"app_id": app_id, "user_id": user_id}),
                )
                .await;
            assert_eq!(
                refused["code"], 403,
                "{backend:?} {app_id}/{user_id}: {refused}"
            );
            assert_eq!(refused["status"], false);
        }
        let (_, refused) = app
            .post(
                "/v2/user/histories.json",
                &auth_a,
                &json!({"user_id": "dev_bob"}),
            )
            .await;
        assert_eq!(refused["code"], 403, "{refused}");
        // In the 003 dialect the same attempt is "wrong openid".
        let (_, mini) = app.get("/api/query_balance/?openid=dev_bob", &auth_a).await;
        assert_eq!(mini["code"], -2, "{mini}");

        // A made-up token, or the stored hash used as a token, is no session.
        let hash_as_token = format!("Bearer {}", sha256_hex(&token_a));
        for bearer in ["Bearer not-a-token", hash_as_token.as_str()] {
            let (_, unauthorized) = app
                .post(
                    "/v2/user/points.json",
                    &[("Authorization", bearer)],
                    &json!({"app_id": "default", "user_id": "dev_alice"}),
                )
                .await;
            assert_eq!(unauthorized["code"], 401, "{backend:?}: {unauthorized}");
        }
        app.handle.stop(true).await;
    }
}
