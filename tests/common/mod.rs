//! Test harness: start the real server against a fresh database and talk to it over HTTP.
//!
//! Every test gets its own database: a temporary SQLite file, or a new Postgres database created
//! on the server named by `TEST_DATABASE_URL`. Without that variable the Postgres variant of a
//! test prints that it was skipped. Logs stay silent unless `TEST_LOG` is set.
#![allow(dead_code)]

pub mod ws;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use points_engine::config::Settings;
use points_engine::db::Db;
use points_engine::startup::Application;
use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "test-admin-key";
pub const GATEWAY_SECRET: &str = "test-gateway-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run can test: SQLite always, Postgres when `TEST_DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        skipped(
            "TEST_DATABASE_URL is not set: the Postgres variants of this file's tests are skipped",
        );
        vec![Backend::Sqlite]
    }
}

/// Says once per test binary, past the harness's output capture (which would hide it inside
/// a passing test), that something was not tested.
pub fn skipped(what: &str) {
    use std::io::Write;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.iter().any(|s| s == what) {
        return;
    }
    said.push(what.to_string());
    let binary = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&binary)
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .split('-')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "SKIPPED ({name}): {what}");
}

/// A fresh, empty database of `backend`: its URL and the guard that keeps a SQLite file alive.
pub async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/points.db", dir.path().display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let base = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&base)
                .await
                .expect("connect to TEST_DATABASE_URL");
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), None)
        }
    }
}

/// Runs one migration's statements again on `db` (of `backend`), as a database saved before it
/// would meet them: `name` is the file name in `migrations/<backend>/`.
pub async fn rerun_migration(db: &Db, backend: Backend, name: &str) {
    let dir = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let path = format!("{}/migrations/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    sqlx::raw_sql(&sql)
        .execute(&db.write)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// Settings for a test server on `database_url`.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        database_url: database_url.to_string(),
        admin_key: Some(ADMIN_KEY.into()),
        gateway_secret: Some(GATEWAY_SECRET.into()),
        dev_login: true,
        jobs: false,
        workers: 2,
        db_max_connections: 8,
        // The tests of the limits set their own; every other test sends bursts from one address.
        rate_limits: points_engine::limits::RateLimits::off(),
        ..Settings::default()
    }
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        points_engine::telemetry::init(false);
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub handle: actix_web::dev::ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// A client of a server already started at `address`.
    pub fn at(address: String, database_url: String, handle: actix_web::dev::ServerHandle) -> Self {
        TestApp {
            address,
            client: client(),
            database_url,
            handle,
            _dir: None,
        }
    }
}

/// Starts the server on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the server on a fresh database, with `tweak` applied to its settings.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let mut settings = test_settings(&url);
    tweak(&mut settings);
    let mut app = spawn_on(settings).await;
    app._dir = dir;
    app
}

/// Starts a server with `settings` (its database already made).
pub async fn spawn_on(settings: Settings) -> TestApp {
    init_logs();
    let url = settings.database_url.clone();
    let app = Application::build(settings)
        .await
        .expect("build application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: client(),
        database_url: url,
        handle,
        _dir: None,
    }
}

/// Builds a server on a database another server of this process is still letting go of: the
/// first one's stop drains its ledger before it releases a SQLite file.
pub async fn build_when_released(settings: Settings) -> Application {
    let mut tries = 0;
    loop {
        match Application::build(settings.clone()).await {
            Ok(app) => return app,
            Err(e) if tries < 100 && format!("{e:#}").contains("already served") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("build a second server: {e:#}"),
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POSTs JSON and returns the HTTP status and JSON body (Null if the body is not JSON).
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
        send(self.client.post(self.url(path)).json(body), headers).await
    }

    /// GETs and returns the HTTP status and JSON body (Null if the body is not JSON).
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        send(self.client.get(self.url(path)), headers).await
    }

    /// Dev login through the 000 facade: returns (user id, bearer header value).
    pub async fn login(&self, code: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/v2/user/login.json",
                &[],
                &json!({"app_id": "default", "auth_code": code}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], true, "{body}");
        let user = body["data"]["user_id"]
            .as_str()
            .expect("user_id")
            .to_string();
        let token = body["data"]["token"].as_str().expect("token");
        (user, format!("Bearer {token}"))
    }

    /// `core/point/update.json` with an optional idempotency key; returns the 000 body.
    pub async fn change(&self, uuid: &str, amount: i64, key: Option<&str>) -> Value {
        let mut headers = vec![("X-Admin-Key", ADMIN_KEY)];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        let (status, body) = self
            .post(
                "/core/point/update.json",
                &headers,
                &json!({"uuid": uuid, "amount": amount, "task_id": "t", "flag": if amount > 0 {"grant"} else {"deduct"},
                        "transfer_info": "test", "expired_time": "2099-01-01 00:00:00"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The balance through `core/user/balance.json`.
    pub async fn balance(&self, uuid: &str) -> i64 {
        let (_, body) = self
            .post(
                "/core/user/balance.json",
                &[("X-Admin-Key", ADMIN_KEY)],
                &json!({"uuid": uuid}),
            )
            .await;
        body["data"]["active_balance"]
            .as_i64()
            .expect("active_balance")
    }
}

/// Sends `req`; returns the HTTP status and the JSON body (Null if not JSON).
pub async fn send_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    send(req, &[]).await
}

/// Sends `req` with `headers`; returns the HTTP status and the JSON body (Null if not JSON).
async fn send(mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> (u16, Value) {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Reads the ledger straight from the database: (balance row, sum of entries, entries, lowest
/// balance_after) of a platform user of the default app.
pub async fn ledger_facts(database_url: &str, uid: &str) -> LedgerFacts {
    let db = Db::connect(database_url, 2).await.expect("connect");
    let user_id: i64 =
        sqlx::query_scalar("SELECT id FROM users WHERE app_id = 'default' AND platform_uid = $1")
            .bind(uid)
            .fetch_one(&db.read)
            .await
            .expect("user");
    // Each fact is one number about the user; absent rows count as 0.
    let fact = |sql: &'static str| {
        let pool = db.read.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(user_id)
                .fetch_optional(&pool)
                .await
                .expect(sql)
                .unwrap_or(0)
        }
    };
    let balance = fact("SELECT balance FROM balances WHERE user_id = $1").await;
    let sum = fact(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE user_id = $1",
    )
    .await;
    let entries = fact("SELECT COUNT(*) FROM ledger_entries WHERE user_id = $1").await;
    let min_after = fact("SELECT CAST(COALESCE(MIN(balance_after), 0) AS BIGINT) FROM ledger_entries WHERE user_id = $1").await;
    let lots = fact(
        "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM credit_lots WHERE user_id = $1",
    )
    .await;
    db.write.close().await;
    db.read.close().await;
    LedgerFacts {
        balance,
        sum,
        entries,
        min_after,
        lots,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerFacts {
    pub balance: i64,
    pub sum: i64,
    pub entries: i64,
    pub min_after: i64,
    /// Unspent points of all credit lots: equals the balance.
    pub lots: i64,
}

impl LedgerFacts {
    /// Conservation: balance == sum of entries == open lots, never negative.
    pub fn assert_conserved(&self) {
        assert_eq!(
            self.balance, self.sum,
            "balance != sum of entries: {self:?}"
        );
        assert_eq!(self.balance, self.lots, "balance != unspent lots: {self:?}");
        assert!(self.min_after >= 0, "a balance went negative: {self:?}");
    }
}

/// A server running as a separate process (for crash and multi-process tests).
pub struct ServerProcess {
    pub child: Child,
    pub address: String,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `points-engine serve` on `database_url` and waits until `/readyz` answers 200.
pub async fn spawn_process(database_url: &str, extra_env: &[(&str, &str)]) -> ServerProcess {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_points-engine"));
    cmd.arg("serve")
        .env("POINTS_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("POINTS_ADMIN_KEY", ADMIN_KEY)
        .env("POINTS_GATEWAY_SECRET", GATEWAY_SECRET)
        .env("POINTS_DEV_LOGIN", "1")
        .env("POINTS_JOBS", "0")
        .env("POINTS_WORKERS", "2")
        .env("POINTS_RATE_LIMITS", "off")
        .env(
            "RUST_LOG",
            if std::env::var("TEST_LOG").is_ok() {
                "info"
            } else {
                "error"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if std::env::var("TEST_LOG").is_err() {
        cmd.stderr(Stdio::null());
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start points-engine");
    let address = format!("http://127.0.0.1:{port}");
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("{address}/readyz")).send().await {
            if res.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server process did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ServerProcess { child, address }
}

impl ServerProcess {
    /// SIGKILL: no shutdown, no drain.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Dev login against a server at `address` (a process); returns the user id.
pub async fn login_at(client: &reqwest::Client, address: &str, code: &str) -> String {
    let body: Value = client
        .post(format!("{address}/v2/user/login.json"))
        .json(&json!({"auth_code": code}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    body["data"]["user_id"]
        .as_str()
        .expect("user_id")
        .to_string()
}

/// `core/point/update.json` against a server at `address` (a process). Returns the 000 body,
/// or `None` when the server could not be reached or did not answer (it was killed or stopped).
pub async fn change_at(
    client: &reqwest::Client,
    address: &str,
    user: &str,
    amount: i64,
    key: Option<&str>,
) -> Option<Value> {
    let mut req = client
        .post(format!("{address}/core/point/update.json"))
        .header("X-Admin-Key", ADMIN_KEY)
        .json(&json!({"uuid": user, "amount": amount, "expired_time": "2099-01-01 00:00:00"}));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.ok()?.json().await.ok()
}

/// A Redis server of the test's own on a free port, without persistence: killing it loses
/// everything it held, as a failover to an empty replica would.
pub struct OwnRedis {
    pub port: u16,
    pub child: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start() -> Option<OwnRedis> {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.restart().await.then_some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port; whether it accepts connections.
    pub async fn restart(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            skipped(
                "redis-server is not installed: the scenarios that run their own Redis are skipped",
            );
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
