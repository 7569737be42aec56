//! Bad input on every route answers a clear error in the route's own dialect, changes nothing
//! and never yields a 500, on SQLite and Postgres.
//!
//! Each test builds a table of bad requests for one dialect (missing fields, wrong types,
//! out-of-range amounts and pages, broken or oversized bodies, unknown users, forged or expired
//! tokens, wrong keys and secrets, another user's id), sends them one by one and, after each,
//! compares a snapshot of every table the request could have touched with the one taken before.

mod common;

use std::time::Duration;

use common::{backends, ledger_facts, spawn_app, spawn_app_with, Backend, TestApp, ADMIN_KEY};
use points_engine::db::Db;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::{json, Value};

const GATEWAY_SECRET: &str = common::GATEWAY_SECRET;
/// The 002 consumer the fixture creates.
const CONSUMER: &str = "@staff_a:example.com";
/// A 002 consumer never seen before.
const NEW_CONSUMER: &str = "@retail_new:example.com";
const POINTS: &str = "/api/v1/open/swan/integral/points";
const MINE: &str = "/api/v1/open/swan/integral/points/transaction/mine";
const TRANSACTIONS: &str = "/api/v1/open/swan/integral/points/transaction";
const REPORT: &str = "/api/v1/open/swan/integral/points/report";

// ----- requests -----

type Headers = Vec<(String, Vec<u8>)>;

fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn with(base: &Headers, extra: &[(&str, &str)]) -> Headers {
    let mut out = base.clone();
    out.extend(hdrs(extra));
    out
}

/// `path?k=v&...`, URL-encoded.
fn q(path: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).expect("query string");
    format!("{path}?{query}")
}

enum Body {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// What a refusal looks like in each dialect.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 000 and admin: HTTP 200, `status:false`, this `code`, a `msg`, `data: []`.
    Gift(i64),
    /// 001: HTTP 200, this `code`, a `msg`, `result: null`.
    Center(i64),
    /// 002: this HTTP status with `{"error","message"}`.
    Open(u16),
    /// 003: HTTP 200, this negative `code`, a `msg`.
    Mini(i64),
}

struct Case {
    method: Method,
    path: String,
    headers: Headers,
    body: Body,
    expect: Expect,
}

impl Case {
    fn post(path: &str, headers: &Headers, body: Value, expect: Expect) -> Case {
        Case {
            method: Method::POST,
            path: path.to_string(),
            headers: headers.clone(),
            body: Body::Json(body),
            expect,
        }
    }

    fn get(path: &str, headers: &Headers, expect: Expect) -> Case {
        Case {
            method: Method::GET,
            path: path.to_string(),
            headers: headers.clone(),
            body: Body::Empty,
            expect,
        }
    }

    fn raw(
        path: &str,
        headers: &Headers,
        content_type: &'static str,
        body: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> Case {
        Case {
            method: Method::POST,
            path: path.to_string(),
            headers: headers.clone(),
            body: Body::Raw(content_type, body.into()),
            expect,
        }
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        let body = match &self.body {
            Body::Empty => String::new(),
            Body::Json(v) => v.to_string(),
            Body::Raw(ct, b) => format!("({ct}) {}", String::from_utf8_lossy(b)),
        };
        let body: String = body.chars().take(140).collect();
        format!(
            "{} {} headers={names:?} body={body}",
            self.method, self.path
        )
    }
}

/// Sends a case and returns the HTTP status and body text.
async fn send(app: &TestApp, case: &Case) -> Result<(u16, String), String> {
    let mut req = app.client.request(case.method.clone(), app.url(&case.path));
    for (k, v) in &case.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(v).map_err(|e| e.to_string())?;
        req = req.header(name, value);
    }
    req = match &case.body {
        Body::Empty => req,
        Body::Json(v) => req.json(v),
        Body::Raw(ct, bytes) => req.header("Content-Type", *ct).body(bytes.clone()),
    };
    let res = req
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    Ok((status, text))
}

fn nonempty_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.trim().is_empty())
}

/// Checks an answer against the dialect's refusal shape and code.
fn check(expect: Expect, status: u16, text: &str) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("HTTP {status}: {text}"));
    }
    let body: Value = serde_json::from_str(text)
        .map_err(|_| format!("HTTP {status}, body is not JSON: {text:.200}"))?;
    let fail = |why: &str| Err(format!("{why}: HTTP {status} {body}"));
    match expect {
        Expect::Gift(code) => {
            if status != 200 {
                return fail("000 answers HTTP 200");
            }
            if body["status"] != false || body["code"] != code {
                return fail(&format!("expected status:false and code {code}"));
            }
            if !nonempty_str(&body["msg"]) || body["data"] != json!([]) {
                return fail("expected a msg and data []");
            }
        }
        Expect::Center(code) => {
            if status != 200 || body["code"] != code || code == 0 {
                return fail(&format!("expected HTTP 200 and code {code}"));
            }
            if !nonempty_str(&body["msg"]) || !body["result"].is_null() {
                return fail("expected a msg and result null");
            }
        }
        Expect::Open(want) => {
            if status != want {
                return fail(&format!("expected HTTP {want}"));
            }
            if !nonempty_str(&body["error"]) || !nonempty_str(&body["message"]) {
                return fail("expected {error, message}");
            }
        }
        Expect::Mini(code) => {
            if status != 200 || body["code"] != code || code >= 0 {
                return fail(&format!("expected HTTP 200 and code {code}"));
            }
            if !nonempty_str(&body["msg"]) {
                return fail("expected a msg");
            }
        }
    }
    Ok(())
}

// ----- what "nothing changed" means -----

/// Everything a request could change: row counts, sums and a digest of apps and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    apps: i64,
    users: i64,
    sessions: i64,
    balances: i64,
    entries: i64,
    lots: i64,
    counters: i64,
    rules: i64,
    balance_sum: i64,
    entry_sum: i64,
    lot_sum: i64,
    counter_sum: i64,
    apps_digest: Vec<String>,
    rules_digest: Vec<String>,
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&db.read)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn snapshot(db: &Db) -> Snapshot {
    let count = |t: &'static str| format!("SELECT COUNT(*) FROM {t}");
    let sum = |c: &'static str, t: &'static str| {
        format!("SELECT CAST(COALESCE(SUM({c}), 0) AS BIGINT) FROM {t}")
    };
    let apps_digest: Vec<String> = sqlx::query_scalar(
        "SELECT id || '|' || name || '|' || settings || '|' || CAST(updated_at AS TEXT) FROM apps ORDER BY id",
    )
    .fetch_all(&db.read)
    .await
    .expect("apps digest");
    let rules_digest: Vec<String> = sqlx::query_scalar(
        "SELECT app_id || '|' || event_type || '|' || CAST(points AS TEXT) || '|' || \
         CAST(daily_cap AS TEXT) || '|' || description || '|' || CAST(enabled AS TEXT) || '|' || \
         CAST(updated_at AS TEXT) FROM earning_rules ORDER BY app_id, event_type",
    )
    .fetch_all(&db.read)
    .await
    .expect("rules digest");
    Snapshot {
        apps: scalar(db, &count("apps")).await,
        users: scalar(db, &count("users")).await,
        sessions: scalar(db, &count("sessions")).await,
        // A refused change may leave a zero balance row behind (the ledger locks a row per
        // user of a batch); zero and absent are the same balance, so only non-zero rows count.
        balances: scalar(db, "SELECT COUNT(*) FROM balances WHERE balance <> 0").await,
        entries: scalar(db, &count("ledger_entries")).await,
        lots: scalar(db, &count("credit_lots")).await,
        counters: scalar(db, &count("ledger_counters")).await,
        rules: scalar(db, &count("earning_rules")).await,
        balance_sum: scalar(db, &sum("balance", "balances")).await,
        entry_sum: scalar(db, &sum("amount", "ledger_entries")).await,
        lot_sum: scalar(db, &sum("remaining", "credit_lots")).await,
        counter_sum: scalar(db, &sum("count", "ledger_counters")).await,
        apps_digest,
        rules_digest,
    }
}

// ----- the fixture -----

/// A server with two logged-in users, points, a 002 consumer and an earning rule.
struct World {
    backend: Backend,
    app: TestApp,
    db: Db,
    alice: String,
    alice_auth: String,
    bob: String,
}

async fn world(backend: Backend) -> World {
    world_on(backend, spawn_app(backend).await).await
}

async fn world_on(backend: Backend, app: TestApp) -> World {
    let (alice, alice_auth) = app.login("alice").await;
    let (bob, _) = app.login("bob").await;
    let granted = app.change(&alice, 100, Some("seed")).await;
    assert_eq!(granted["status"], true, "{granted}");
    let (status, body) = app
        .post(
            POINTS,
            &[
                ("X-Consumer-Custom-ID", CONSUMER),
                ("X-Gateway-Secret", GATEWAY_SECRET),
            ],
            &json!({"transactionId": "tx-seed", "userId": CONSUMER, "point": 50, "type": "RETAIL_LIKE", "info": "seed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, rule) = app
        .post(
            "/admin/earning-rules",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"app_id": "default", "event_type": "VIEW", "points": 3, "daily_cap": 2}),
        )
        .await;
    assert_eq!(rule["status"], true, "{rule}");
    let db = Db::connect(&app.database_url, 2).await.expect("connect");
    World {
        backend,
        app,
        db,
        alice,
        alice_auth,
        bob,
    }
}

impl World {
    /// Sends every case; after each, the snapshot must equal the one taken before. Panics with
    /// the list of every case that failed.
    async fn run(&self, cases: Vec<Case>) {
        let before = snapshot(&self.db).await;
        let mut failures = Vec::new();
        for case in &cases {
            let outcome = match send(&self.app, case).await {
                Ok((status, text)) => check(case.expect, status, &text),
                Err(e) => Err(e),
            };
            if let Err(why) = outcome {
                failures.push(format!("{}\n    -> {why}", case.describe()));
            }
            let after = snapshot(&self.db).await;
            if after != before {
                failures.push(format!(
                    "{}\n    -> state changed:\n       before {before:?}\n       after  {after:?}",
                    case.describe()
                ));
                break;
            }
        }
        assert!(
            failures.is_empty(),
            "{:?}: {} of {} bad requests misbehaved:\n{}",
            self.backend,
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        eprintln!(
            "{:?}: {} bad requests refused cleanly",
            self.backend,
            cases.len()
        );
    }

    /// After the bad requests the ledger still takes changes and its books add up.
    async fn assert_ledger_healthy(&self) {
        let before = self.app.balance(&self.alice).await;
        let body = self.app.change(&self.alice, 1, None).await;
        assert_eq!(body["status"], true, "{:?}: {body}", self.backend);
        assert_eq!(self.app.balance(&self.alice).await, before + 1);
        ledger_facts(&self.app.database_url, &self.alice)
            .await
            .assert_conserved();
    }

    async fn stop(self) {
        self.db.read.close().await;
        self.db.write.close().await;
        self.app.handle.stop(true).await;
    }
}

/// Broken bodies every route with fields must refuse: malformed JSON, a JSON array, a JSON
/// string, bytes that are not UTF-8 and a body over 64 KiB.
fn broken_bodies(path: &str, headers: &Headers, invalid: Expect, too_large: Expect) -> Vec<Case> {
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024));
    vec![
        Case::raw(
            path,
            headers,
            "application/json",
            r#"{"user_id": "#,
            invalid,
        ),
        Case::raw(
            path,
            headers,
            "application/json",
            "{'single': 'quotes'}",
            invalid,
        ),
        Case::raw(path, headers, "application/json", r#"[{"a":1}]"#, invalid),
        Case::raw(
            path,
            headers,
            "application/json",
            r#""just a string""#,
            invalid,
        ),
        Case::raw(path, headers, "application/json", "12", invalid),
        Case::raw(path, headers, "text/plain", r#"{"unclosed": true"#, invalid),
        Case::raw(
            path,
            headers,
            "application/json",
            vec![b'{', 0xff, 0xfe, b'}'],
            invalid,
        ),
        Case::raw(path, headers, "application/json", big, too_large),
    ]
}

/// Amount values that are never a valid change, as JSON bodies with `field` set (the rest of
/// `base` kept), plus `10^30` as a raw number literal.
fn bad_amounts(
    path: &str,
    headers: &Headers,
    base: &Value,
    field: &str,
    invalid: Expect,
) -> Vec<Case> {
    let values = [
        json!("abc"),
        json!("12abc"),
        json!(1.5),
        json!(-2.5),
        json!(1e12),
        json!(1_000_000_000_000_i64),
        json!(-1_000_000_000_000_i64),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(0),
        json!("0"),
        json!({"value": 1}),
        json!([1]),
        json!(true),
    ];
    let mut cases: Vec<Case> = values
        .into_iter()
        .map(|v| {
            let mut body = base.clone();
            body[field] = v;
            Case::post(path, headers, body, invalid)
        })
        .collect();
    let mut body = base.clone();
    body[field] = json!("__HUGE__");
    let raw = body
        .to_string()
        .replace(r#""__HUGE__""#, "1000000000000000000000000000000");
    cases.push(Case::raw(path, headers, "application/json", raw, invalid));
    cases
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// `base` with a NUL character in each of `fields` in turn (Postgres cannot store one in text),
/// sent as JSON and as a form; plus a field whose name holds one.
fn nul_texts(
    path: &str,
    headers: &Headers,
    base: &Value,
    fields: &[&str],
    invalid: Expect,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for field in fields {
        let mut body = base.clone();
        body[*field] = json!("x\u{0}y");
        let form: Vec<(String, String)> = body
            .as_object()
            .expect("a JSON object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
        let form = serde_urlencoded::to_string(form).expect("form body");
        cases.push(Case::post(path, headers, body, invalid));
        cases.push(Case::raw(
            path,
            headers,
            "application/x-www-form-urlencoded",
            form,
            invalid,
        ));
    }
    let mut body = base.clone();
    body["pad\u{0}"] = json!("x");
    cases.push(Case::post(path, headers, body, invalid));
    cases
}

// ----- 000 -----

#[actix_web::test]
async fn gift_points_routes_refuse_bad_input_and_change_nothing() {
    use Expect::Gift;
    for backend in backends() {
        let w = world(backend).await;
        let alice = w.alice.as_str();
        let bob = w.bob.as_str();
        let none = hdrs(&[]);
        let auth = hdrs(&[("Authorization", w.alice_auth.as_str())]);
        let forged = hdrs(&[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")]);
        let mut cases = Vec::new();

        // Login.
        let login = "/v2/user/login.json";
        cases.extend([
            Case::post(login, &none, json!({"app_id": "default"}), Gift(400)),
            Case::post(login, &none, json!({"auth_code": ""}), Gift(400)),
            Case::post(login, &none, json!({"auth_code": {"code": "x"}}), Gift(400)),
            Case::post(login, &none, json!({"auth_code": ["x"]}), Gift(400)),
            Case::post(
                login,
                &none,
                json!({"auth_code": "not allowed!"}),
                Gift(400),
            ),
            Case::post(login, &none, json!({"auth_code": long(300)}), Gift(400)),
            Case::post(
                login,
                &none,
                json!({"app_id": {"id": 1}, "auth_code": "zed"}),
                Gift(400),
            ),
            Case::post(
                login,
                &none,
                json!({"app_id": "no-such-app", "auth_code": "zed"}),
                Gift(404),
            ),
            Case::get(&q(login, &[("auth_code", "")]), &none, Gift(400)),
            Case::get(
                &q(login, &[("app_id", "nope"), ("auth_code", "zed")]),
                &none,
                Gift(404),
            ),
        ]);
        cases.extend(broken_bodies(login, &none, Gift(400), Gift(413)));

        // The caller's own routes: token required, user_id must be the token's.
        for path in [
            "/v2/user/points.json",
            "/v2/user/histories.json",
            "/v2/user/expired.json",
            "/v2/user/recent/expired.json",
        ] {
            let own = json!({"app_id": "default", "user_id": alice});
            cases.extend([
                Case::post(path, &none, own.clone(), Gift(401)),
                Case::post(path, &forged, own.clone(), Gift(401)),
                Case::post(
                    path,
                    &hdrs(&[("Authorization", "Basic YWxpY2U6cHc=")]),
                    own.clone(),
                    Gift(401),
                ),
                Case::post(
                    path,
                    &hdrs(&[("Authorization", "Bearer ")]),
                    own.clone(),
                    Gift(401),
                ),
                Case::post(
                    path,
                    &hdrs(&[("X-Admin-Key", ADMIN_KEY)]),
                    own.clone(),
                    Gift(401),
                ),
                Case::post(
                    path,
                    &auth,
                    json!({"app_id": "default", "user_id": bob}),
                    Gift(403),
                ),
                Case::post(
                    path,
                    &auth,
                    json!({"app_id": "default", "user_id": "dev_nobody"}),
                    Gift(403),
                ),
                Case::post(
                    path,
                    &auth,
                    json!({"app_id": "other", "user_id": alice}),
                    Gift(403),
                ),
                Case::post(path, &auth, json!({"app_id": "default"}), Gift(400)),
                Case::post(path, &auth, json!({"user_id": {"id": alice}}), Gift(400)),
                Case::post(path, &auth, json!({"user_id": [alice]}), Gift(400)),
                Case::get(&q(path, &[("user_id", bob)]), &auth, Gift(403)),
                Case::get(&q(path, &[("user_id", alice)]), &forged, Gift(401)),
            ]);
            cases.extend(broken_bodies(path, &auth, Gift(400), Gift(413)));
        }
        for path in ["/v2/user/histories.json", "/v2/user/expired.json"] {
            for (field, value) in [
                ("page", json!(-1)),
                ("page", json!(0)),
                ("page", json!(1.5)),
                ("page", json!("first")),
                ("page", json!(i64::MAX)),
                ("step", json!(1_000_000_000)),
                ("step", json!(0)),
                ("step", json!(-10)),
                ("step", json!({"n": 1})),
            ] {
                let mut body = json!({"app_id": "default", "user_id": alice});
                body[field] = value;
                cases.push(Case::post(path, &auth, body, Gift(400)));
            }
            cases.push(Case::get(
                &q(path, &[("user_id", alice), ("page", "-1")]),
                &auth,
                Gift(400),
            ));
            cases.push(Case::get(
                &q(path, &[("user_id", alice), ("step", "1000000000")]),
                &auth,
                Gift(400),
            ));
        }
        let histories = "/v2/user/histories.json";
        for (field, value) in [
            ("is_cost", json!("maybe")),
            ("is_cost", json!(["yes"])),
            ("start_time", json!("yesterday")),
            ("start_time", json!({"t": 1})),
            ("end_time", json!("2024-13-45 99:99:99")),
            ("end_time", json!("99999999999999999999")),
        ] {
            let mut body = json!({"app_id": "default", "user_id": alice});
            body[field] = value;
            cases.push(Case::post(histories, &auth, body, Gift(400)));
        }

        // The core: X-Admin-Key, a uuid that exists.
        let admin = hdrs(&[("X-Admin-Key", ADMIN_KEY)]);
        let wrong_key = hdrs(&[("X-Admin-Key", "not-the-key")]);
        for path in [
            "/core/user/balance.json",
            "/core/user/records.json",
            "/core/point/expired.json",
            "/core/recent/expired.json",
            "/core/point/update.json",
        ] {
            let body = json!({"uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00"});
            cases.extend([
                Case::post(path, &none, body.clone(), Gift(401)),
                Case::post(path, &wrong_key, body.clone(), Gift(401)),
                Case::post(path, &hdrs(&[("X-Admin-Key", "")]), body.clone(), Gift(401)),
                Case::post(path, &auth, body.clone(), Gift(401)),
                Case::post(path, &admin, json!({"uuid": "dev_nobody", "amount": 5, "expired_time": "2099-01-01 00:00:00"}), Gift(404)),
                Case::post(path, &admin, json!({"app_id": "no-such-app", "uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00"}), Gift(404)),
                Case::post(path, &admin, json!({"amount": 5, "expired_time": "2099-01-01 00:00:00"}), Gift(400)),
                Case::post(path, &admin, json!({"uuid": {"id": alice}, "amount": 5}), Gift(400)),
                Case::get(&q(path, &[("uuid", "dev_nobody"), ("amount", "5"), ("expired_time", "2099-01-01 00:00:00")]), &admin, Gift(404)),
            ]);
            cases.extend(broken_bodies(path, &admin, Gift(400), Gift(413)));
        }
        let records = "/core/user/records.json";
        for (field, value) in [
            ("page", json!(-1)),
            ("step", json!(1_000_000_000)),
            ("step", json!(0)),
            ("page", json!(2.5)),
            ("is_cost", json!("sometimes")),
            ("start_time", json!("last week")),
        ] {
            let mut body = json!({"uuid": alice});
            body[field] = value;
            cases.push(Case::post(records, &admin, body, Gift(400)));
        }

        // Point changes.
        let update = "/core/point/update.json";
        let grant = json!({"uuid": alice, "amount": 5, "task_id": "t", "flag": "grant", "transfer_info": "x", "expired_time": "2099-01-01 00:00:00"});
        cases.extend(bad_amounts(update, &admin, &grant, "amount", Gift(400)));
        cases.extend(nul_texts(
            update,
            &admin,
            &grant,
            &["uuid", "app_id", "task_id", "flag", "transfer_info"],
            Gift(400),
        ));
        cases.extend([
            Case::post(update, &admin, json!({"uuid": alice, "expired_time": "2099-01-01 00:00:00"}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "2001-01-01 00:00:00"}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "soon"}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "99999999999999999999"}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": {"at": 1}}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00", "transfer_info": long(201)}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00", "flag": long(201)}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00", "task_id": long(201)}), Gift(400)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": 5, "expired_time": "2099-01-01 00:00:00", "flag": {"f": 1}}), Gift(400)),
            // More than the balance: refused as insufficient, nothing spent.
            Case::post(update, &admin, json!({"uuid": alice, "amount": -101}), Gift(402)),
            Case::post(update, &admin, json!({"uuid": bob, "amount": -1}), Gift(402)),
            Case::post(update, &admin, json!({"uuid": alice, "amount": -1_000_000_000}), Gift(402)),
            Case::get(&q(update, &[("uuid", alice), ("amount", "1.5"), ("expired_time", "2099-01-01 00:00:00")]), &admin, Gift(400)),
            Case::raw(update, &admin, "application/x-www-form-urlencoded", format!("uuid={alice}&amount=abc&expired_time=2099-01-01"), Gift(400)),
            // The fixture's key with other parameters is a conflict.
            Case::post(update, &with(&admin, &[("Idempotency-Key", "seed")]), json!({"uuid": alice, "amount": 7, "task_id": "t", "flag": "grant", "transfer_info": "test", "expired_time": "2099-01-01 00:00:00"}), Gift(409)),
            Case::post(update, &with(&admin, &[("Idempotency-Key", &long(129))]), grant.clone(), Gift(400)),
            Case::post(update, &with(&admin, &[("Idempotency-Key", "   ")]), grant.clone(), Gift(400)),
        ]);
        let mut latin1 = admin.clone();
        latin1.push(("Idempotency-Key".into(), vec![b'k', 0xe9, b'y']));
        cases.push(Case::post(update, &latin1, grant.clone(), Gift(400)));

        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- 001 -----

#[actix_web::test]
async fn center_routes_refuse_bad_input_and_change_nothing() {
    use Expect::Center;
    for backend in backends() {
        let w = world(backend).await;
        let alice = w.alice.as_str();
        let none = hdrs(&[]);
        let auth = hdrs(&[("Authorization", w.alice_auth.as_str())]);
        let forged = hdrs(&[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")]);
        let admin = hdrs(&[("X-Admin-Key", ADMIN_KEY)]);
        let mut cases = Vec::new();

        for path in ["/center/api/getUserPoints", "/center/api/changeRecord"] {
            cases.extend([
                Case::post(path, &none, json!({}), Center(40100)),
                Case::post(path, &forged, json!({}), Center(40100)),
                Case::post(path, &admin, json!({}), Center(40100)),
                Case::get(path, &none, Center(40100)),
                Case::get(path, &forged, Center(40100)),
            ]);
        }
        let record = "/center/api/changeRecord";
        for (field, value) in [
            ("type", json!("bogus")),
            ("type", json!({"t": "task"})),
            ("type", json!(["task"])),
            ("page", json!(-1)),
            ("page", json!(0)),
            ("page", json!("one")),
            ("page", json!(1.5)),
            ("size", json!(1_000_000_000)),
            ("size", json!(0)),
            ("size", json!(-5)),
            ("size", json!(i64::MAX)),
        ] {
            let mut body = json!({});
            body[field] = value;
            cases.push(Case::post(record, &auth, body, Center(40000)));
        }
        cases.push(Case::get(
            &q(record, &[("type", "bogus")]),
            &auth,
            Center(40000),
        ));
        cases.push(Case::get(
            &q(record, &[("page", "-1")]),
            &auth,
            Center(40000),
        ));
        cases.push(Case::get(
            &q(record, &[("size", "1000000000")]),
            &auth,
            Center(40000),
        ));
        cases.extend(broken_bodies(record, &auth, Center(40000), Center(41300)));

        let change = "/center/admin/changePoints";
        let body = json!({"faceValue": 5, "openId": alice, "changeType": "other", "desc": "x"});
        cases.extend([
            Case::post(change, &none, body.clone(), Center(40100)),
            Case::post(
                change,
                &hdrs(&[("X-Admin-Key", "wrong")]),
                body.clone(),
                Center(40100),
            ),
            Case::post(change, &auth, body.clone(), Center(40100)),
            Case::post(change, &admin, json!({"openId": alice}), Center(40000)),
            Case::post(change, &admin, json!({"faceValue": 5}), Center(40000)),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": "dev_nobody"}),
                Center(40400),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "app_id": "no-such-app"}),
                Center(40400),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": {"id": alice}}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "changeType": "steal"}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "prizeType": "cash"}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "transactionId": long(129)}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "transactionId": {"id": 1}}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "desc": long(201)}),
                Center(40000),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": 5, "openId": alice, "id": long(201)}),
                Center(40000),
            ),
            // More than the balance: 300013, nothing spent.
            Case::post(
                change,
                &admin,
                json!({"faceValue": -101, "openId": alice}),
                Center(300_013),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": -1, "openId": w.bob}),
                Center(300_013),
            ),
            Case::post(
                change,
                &admin,
                json!({"faceValue": -101, "openId": alice, "transactionId": "never-used"}),
                Center(300_013),
            ),
            Case::raw(
                change,
                &admin,
                "application/x-www-form-urlencoded",
                format!("faceValue=1.5&openId={alice}"),
                Center(40000),
            ),
        ]);
        cases.extend(bad_amounts(
            change,
            &admin,
            &body,
            "faceValue",
            Center(40000),
        ));
        cases.extend(broken_bodies(change, &admin, Center(40000), Center(41300)));
        cases.extend(nul_texts(
            change,
            &admin,
            &body,
            &["openId", "changeType", "desc", "app_id"],
            Center(40000),
        ));

        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- 002 -----

#[actix_web::test]
async fn open_routes_refuse_bad_input_and_change_nothing() {
    use Expect::Open;
    for backend in backends() {
        let w = world(backend).await;
        let gw = hdrs(&[
            ("X-Consumer-Custom-ID", CONSUMER),
            ("X-Gateway-Secret", GATEWAY_SECRET),
        ]);
        let fresh = hdrs(&[
            ("X-Consumer-Custom-ID", NEW_CONSUMER),
            ("X-Gateway-Secret", GATEWAY_SECRET),
        ]);
        let mut cases = Vec::new();

        // Gateway credentials, on every route and method.
        let change_body = json!({"transactionId": "tx-new", "userId": CONSUMER, "point": 2, "type": "T", "info": "i"});
        let report_body = json!({"type": "VIEW", "userId": CONSUMER, "operationId": "op-new"});
        let bad_credentials = [
            hdrs(&[("X-Consumer-Custom-ID", CONSUMER)]),
            hdrs(&[
                ("X-Consumer-Custom-ID", CONSUMER),
                ("X-Gateway-Secret", "wrong"),
            ]),
            hdrs(&[("X-Consumer-Custom-ID", CONSUMER), ("X-Gateway-Secret", "")]),
            hdrs(&[("X-Gateway-Secret", GATEWAY_SECRET)]),
            hdrs(&[
                ("X-Consumer-Custom-ID", ""),
                ("X-Gateway-Secret", GATEWAY_SECRET),
            ]),
            hdrs(&[
                ("X-Consumer-Custom-ID", CONSUMER),
                ("X-Admin-Key", ADMIN_KEY),
            ]),
            hdrs(&[
                ("X-Consumer-Custom-ID", CONSUMER),
                ("Authorization", w.alice_auth.as_str()),
            ]),
        ];
        for headers in &bad_credentials {
            cases.extend([
                Case::get(POINTS, headers, Open(401)),
                Case::get(MINE, headers, Open(401)),
                Case::get(TRANSACTIONS, headers, Open(401)),
                Case::post(POINTS, headers, change_body.clone(), Open(401)),
                Case::post(REPORT, headers, report_body.clone(), Open(401)),
            ]);
        }
        // Consumer ids that are not ids, and unknown apps.
        let bad_ids: Vec<Headers> = vec![
            hdrs(&[
                ("X-Consumer-Custom-ID", &long(200)),
                ("X-Gateway-Secret", GATEWAY_SECRET),
            ]),
            hdrs(&[
                ("X-Consumer-Custom-ID", "a\tb"),
                ("X-Gateway-Secret", GATEWAY_SECRET),
            ]),
            hdrs(&[
                ("X-Consumer-Custom-ID", "\"\""),
                ("X-Gateway-Secret", GATEWAY_SECRET),
            ]),
        ];
        for headers in &bad_ids {
            cases.extend([
                Case::get(POINTS, headers, Open(400)),
                Case::get(MINE, headers, Open(400)),
                Case::post(POINTS, headers, change_body.clone(), Open(400)),
                Case::post(REPORT, headers, report_body.clone(), Open(400)),
            ]);
        }
        let unknown_app = with(&fresh, &[("X-App-Id", "no-such-app")]);
        cases.extend([
            Case::get(POINTS, &unknown_app, Open(404)),
            Case::get(TRANSACTIONS, &unknown_app, Open(404)),
            Case::post(
                POINTS,
                &unknown_app,
                json!({"transactionId": "t", "userId": NEW_CONSUMER, "point": 1}),
                Open(404),
            ),
        ]);

        // 1.2.4 point changes: the known consumer, and one never seen before (no user may be
        // created for a refused request).
        for (headers, me) in [(&gw, CONSUMER), (&fresh, NEW_CONSUMER)] {
            let base = json!({"transactionId": "tx-bad", "userId": me, "point": 2, "type": "T", "info": "i"});
            cases.extend([
                Case::post(POINTS, headers, json!({"userId": me, "point": 2}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "point": 2}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": me}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": "@someone_else:example.com", "point": 2}), Open(403)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": CONSUMER.to_uppercase(), "point": 2}), Open(403)),
                Case::post(POINTS, headers, json!({"transactionId": long(129), "userId": me, "point": 2}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": {"id": 1}, "userId": me, "point": 2}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": [me], "point": 2}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": me, "point": 2, "info": long(201)}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": me, "point": 2, "type": long(201)}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": me, "point": 2, "type": {"t": 1}}), Open(400)),
                Case::post(POINTS, headers, json!({"transactionId": "t1", "userId": me, "point": -51}), Open(422)),
            ]);
            cases.extend(bad_amounts(POINTS, headers, &base, "point", Open(400)));
            cases.extend(nul_texts(
                POINTS,
                headers,
                &base,
                &["transactionId", "type", "info"],
                Open(400),
            ));
            cases.extend(broken_bodies(POINTS, headers, Open(400), Open(413)));
        }
        // The fixture's transactionId with other values is a conflict.
        cases.push(Case::post(
            POINTS,
            &gw,
            json!({"transactionId": "tx-seed", "userId": CONSUMER, "point": 51, "type": "RETAIL_LIKE", "info": "seed"}),
            Open(409),
        ));

        // 1.2.2 and 1.2.3 listings.
        for headers in [&gw, &fresh] {
            for path in [MINE, TRANSACTIONS] {
                for (k, v) in [
                    ("page", "-1"),
                    ("page", "1000001"),
                    ("page", "x"),
                    ("size", "1000000000"),
                    ("size", "0"),
                    ("size", "-3"),
                    ("size", "1.5"),
                    ("startTime", "-5"),
                    ("startTime", "yesterday"),
                    ("endTime", "1e12"),
                    ("endTime", "99999999999999999999"),
                ] {
                    cases.push(Case::get(&q(path, &[(k, v)]), headers, Open(400)));
                }
            }
            for t in ["3", "-1", "income", "1.0"] {
                cases.push(Case::get(&q(MINE, &[("type", t)]), headers, Open(400)));
            }
        }

        // 1.2.5 event reports.
        for (headers, me) in [(&gw, CONSUMER), (&fresh, NEW_CONSUMER)] {
            cases.extend([
                Case::post(REPORT, headers, json!({"userId": me, "operationId": "o1"}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "operationId": "o1"}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": me}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": "@other:example.com", "operationId": "o1"}), Open(403)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": "@other:example.com", "staffId": "@staff_b:example.com", "operationId": "o1"}), Open(403)),
                Case::post(REPORT, headers, json!({"type": "NO_SUCH_EVENT", "userId": me, "operationId": "o1"}), Open(404)),
                Case::post(REPORT, headers, json!({"type": {"t": "VIEW"}, "userId": me, "operationId": "o1"}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": me, "operationId": long(129)}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": me, "operationId": ["o1"]}), Open(400)),
                Case::post(REPORT, headers, json!({"type": "VIEW", "userId": me, "staffId": {"s": 1}, "operationId": "o1"}), Open(400)),
            ]);
            cases.extend(broken_bodies(REPORT, headers, Open(400), Open(413)));
        }

        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- 003 -----

#[actix_web::test]
async fn miniapp_routes_refuse_bad_input_and_change_nothing() {
    use Expect::Mini;
    for backend in backends() {
        let w = world(backend).await;
        let alice = w.alice.as_str();
        let bob = w.bob.as_str();
        let none = hdrs(&[]);
        let auth = hdrs(&[("Authorization", w.alice_auth.as_str())]);
        let forged = hdrs(&[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")]);
        let form = "application/x-www-form-urlencoded";
        let mut cases = Vec::new();

        let login = "/api/login/";
        cases.extend([
            Case::post(login, &none, json!({}), Mini(-1)),
            Case::post(login, &none, json!({"code": ""}), Mini(-1)),
            Case::raw(login, &none, form, "code=", Mini(-1)),
            Case::raw(login, &none, form, "invite=abc", Mini(-1)),
            Case::get(login, &none, Mini(-1)),
            Case::post(login, &none, json!({"code": {"c": 1}}), Mini(-400)),
            Case::post(login, &none, json!({"code": ["abc"]}), Mini(-400)),
            Case::post(login, &none, json!({"code": "not allowed!"}), Mini(-3)),
            Case::post(login, &none, json!({"code": long(300)}), Mini(-3)),
            Case::post(
                login,
                &none,
                json!({"code": "zed", "app_id": "no-such-app"}),
                Mini(-404),
            ),
        ]);
        cases.extend(broken_bodies(login, &none, Mini(-400), Mini(-413)));
        cases.extend(nul_texts(
            login,
            &none,
            &json!({"code": "carol", "app_id": "default"}),
            &["code", "app_id"],
            Mini(-400),
        ));

        for path in ["/api/query_balance/", "/api/query_point_record/"] {
            cases.extend([
                Case::post(path, &none, json!({"openid": alice}), Mini(-401)),
                Case::post(path, &forged, json!({"openid": alice}), Mini(-401)),
                Case::post(
                    path,
                    &hdrs(&[("Authorization", alice)]),
                    json!({"openid": alice}),
                    Mini(-401),
                ),
                Case::get(&q(path, &[("openid", alice)]), &forged, Mini(-401)),
                Case::post(path, &auth, json!({}), Mini(-1)),
                Case::post(path, &auth, json!({"openid": ""}), Mini(-1)),
                Case::post(path, &auth, json!({"openid": bob}), Mini(-2)),
                Case::post(path, &auth, json!({"openid": "dev_nobody"}), Mini(-2)),
                Case::raw(path, &auth, form, format!("openid={bob}"), Mini(-2)),
                Case::get(&q(path, &[("openid", bob)]), &auth, Mini(-2)),
                Case::post(path, &auth, json!({"openid": {"id": alice}}), Mini(-400)),
            ]);
            cases.extend(broken_bodies(path, &auth, Mini(-400), Mini(-413)));
        }
        let record = "/api/query_point_record/";
        for (field, value) in [
            ("index", json!(-1)),
            ("index", json!(1_000_001)),
            ("index", json!("first")),
            ("index", json!(0.5)),
            ("num", json!(1_000_000_000)),
            ("num", json!(0)),
            ("num", json!(-1)),
            ("num", json!(i64::MAX)),
        ] {
            let mut body = json!({"openid": alice});
            body[field] = value;
            cases.push(Case::post(record, &auth, body, Mini(-400)));
        }
        cases.push(Case::raw(
            record,
            &auth,
            form,
            format!("openid={alice}&index=-1"),
            Mini(-400),
        ));
        cases.push(Case::raw(
            record,
            &auth,
            form,
            format!("openid={alice}&num=1000000000"),
            Mini(-400),
        ));

        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- admin -----

#[actix_web::test]
async fn admin_routes_refuse_bad_input_and_change_nothing() {
    use Expect::Gift;
    for backend in backends() {
        let w = world(backend).await;
        let alice = w.alice.as_str();
        let none = hdrs(&[]);
        let admin = hdrs(&[("X-Admin-Key", ADMIN_KEY)]);
        let bearer = hdrs(&[("Authorization", w.alice_auth.as_str())]);
        let mut cases = Vec::new();

        let bad_keys = [
            none.clone(),
            hdrs(&[("X-Admin-Key", "wrong")]),
            hdrs(&[("X-Admin-Key", "")]),
            hdrs(&[("X-Admin-Key", &ADMIN_KEY.to_uppercase())]),
            bearer.clone(),
        ];
        for headers in &bad_keys {
            cases.extend([
                Case::get("/admin/apps", headers, Gift(401)),
                Case::post("/admin/apps", headers, json!({"id": "intruder"}), Gift(401)),
                Case::post(
                    "/admin/users",
                    headers,
                    json!({"user_id": "intruder"}),
                    Gift(401),
                ),
                Case::get(
                    &q("/admin/users/ledger", &[("user_id", alice)]),
                    headers,
                    Gift(401),
                ),
                Case::get("/admin/earning-rules", headers, Gift(401)),
                Case::post(
                    "/admin/earning-rules",
                    headers,
                    json!({"event_type": "X", "points": 1}),
                    Gift(401),
                ),
                Case::post(
                    "/admin/earning-rules/delete",
                    headers,
                    json!({"event_type": "VIEW"}),
                    Gift(401),
                ),
                Case::post("/admin/jobs/run", headers, json!({}), Gift(401)),
            ]);
        }

        let apps = "/admin/apps";
        cases.extend([
            Case::post(apps, &admin, json!({}), Gift(400)),
            Case::post(apps, &admin, json!({"name": "no id"}), Gift(400)),
            Case::post(apps, &admin, json!({"id": ""}), Gift(400)),
            Case::post(apps, &admin, json!({"id": "   "}), Gift(400)),
            Case::post(apps, &admin, json!({"id": "bad id!"}), Gift(400)),
            Case::post(apps, &admin, json!({"id": "../default"}), Gift(400)),
            Case::post(apps, &admin, json!({"id": long(65)}), Gift(400)),
            Case::post(apps, &admin, json!({"id": 42}), Gift(400)),
            Case::post(apps, &admin, json!({"id": {"id": "x"}}), Gift(400)),
            Case::post(
                apps,
                &admin,
                json!({"id": "newapp", "name": {"n": 1}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "newapp", "settings": "wechat"}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "newapp", "settings": [1]}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"expiry_months": -1}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"expiry_months": 1.5}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"expiry_months": 5000}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"expiry_months": 1e30}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"expiry_months": "12"}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"wechat_secret": {"s": 1}}}),
                Gift(400),
            ),
            Case::post(
                apps,
                &admin,
                json!({"id": "default", "settings": {"alipay_private_key": long(20 * 1024)}}),
                Gift(400),
            ),
        ]);
        cases.extend(broken_bodies(apps, &admin, Gift(400), Gift(413)));
        cases.extend(nul_texts(
            apps,
            &admin,
            &json!({"id": "nul-app", "name": "n"}),
            &["id", "name"],
            Gift(400),
        ));

        let users = "/admin/users";
        cases.extend([
            Case::post(users, &admin, json!({}), Gift(400)),
            Case::post(users, &admin, json!({"user_id": ""}), Gift(400)),
            Case::post(users, &admin, json!({"user_id": long(129)}), Gift(400)),
            Case::post(users, &admin, json!({"user_id": "tab\there"}), Gift(400)),
            Case::post(users, &admin, json!({"user_id": {"id": "x"}}), Gift(400)),
            Case::post(users, &admin, json!({"user_id": ["x"]}), Gift(400)),
            Case::post(
                users,
                &admin,
                json!({"app_id": "no-such-app", "user_id": "someone"}),
                Gift(404),
            ),
            Case::post(
                users,
                &admin,
                json!({"app_id": {"a": 1}, "user_id": "someone"}),
                Gift(400),
            ),
        ]);
        cases.extend(broken_bodies(users, &admin, Gift(400), Gift(413)));

        let ledger = "/admin/users/ledger";
        cases.extend([
            Case::get(ledger, &admin, Gift(400)),
            Case::get(&q(ledger, &[("user_id", "dev_nobody")]), &admin, Gift(404)),
            Case::get(
                &q(ledger, &[("app_id", "no-such-app"), ("user_id", alice)]),
                &admin,
                Gift(404),
            ),
            Case::get(
                &q(ledger, &[("user_id", alice), ("page", "-1")]),
                &admin,
                Gift(400),
            ),
            Case::get(
                &q(ledger, &[("user_id", alice), ("page", "0")]),
                &admin,
                Gift(400),
            ),
            Case::get(
                &q(ledger, &[("user_id", alice), ("step", "1000000000")]),
                &admin,
                Gift(400),
            ),
            Case::get(
                &q(ledger, &[("user_id", alice), ("step", "abc")]),
                &admin,
                Gift(400),
            ),
            Case::get(
                &q(ledger, &[("user_id", alice), ("page", "1e30")]),
                &admin,
                Gift(400),
            ),
        ]);

        let rules = "/admin/earning-rules";
        let rule =
            json!({"app_id": "default", "event_type": "NEW_EVENT", "points": 5, "daily_cap": 1});
        cases.extend([
            Case::post(rules, &admin, json!({"points": 5}), Gift(400)),
            Case::post(rules, &admin, json!({"event_type": "NEW_EVENT"}), Gift(400)),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "", "points": 5}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "  ", "points": 5}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": long(65), "points": 5}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": {"e": 1}, "points": 5}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "app_id": "no-such-app"}),
                Gift(404),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "daily_cap": -1}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "daily_cap": 1_000_000_000}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "daily_cap": 1.5}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "description": long(201)}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "description": 7}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "NEW_EVENT", "points": 5, "enabled": "yes"}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "VIEW", "points": -3, "daily_cap": 2}),
                Gift(400),
            ),
            Case::post(
                rules,
                &admin,
                json!({"event_type": "VIEW", "points": 2_000_000}),
                Gift(400),
            ),
        ]);
        cases.extend(bad_amounts(rules, &admin, &rule, "points", Gift(400)));
        cases.extend(broken_bodies(rules, &admin, Gift(400), Gift(413)));

        let delete = "/admin/earning-rules/delete";
        cases.extend([
            Case::post(delete, &admin, json!({}), Gift(400)),
            Case::post(
                delete,
                &admin,
                json!({"event_type": {"e": "VIEW"}}),
                Gift(400),
            ),
            Case::post(
                delete,
                &admin,
                json!({"event_type": "NO_SUCH_EVENT"}),
                Gift(404),
            ),
            Case::post(
                delete,
                &admin,
                json!({"app_id": "no-such-app", "event_type": "VIEW"}),
                Gift(404),
            ),
            Case::post(
                delete,
                &admin,
                json!({"app_id": {"a": 1}, "event_type": "VIEW"}),
                Gift(400),
            ),
        ]);
        cases.extend(broken_bodies(delete, &admin, Gift(400), Gift(413)));

        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- expired sessions -----

#[actix_web::test]
async fn expired_session_tokens_are_refused_in_every_dialect() {
    for backend in backends() {
        // Every login of this server makes a session that expires after a millisecond.
        let app = spawn_app_with(backend, |s| s.session_ttl = Duration::from_millis(1)).await;
        let w = world_on(backend, app).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let alice = w.alice.as_str();
        let auth = hdrs(&[("Authorization", w.alice_auth.as_str())]);
        let own = json!({"app_id": "default", "user_id": alice, "openid": alice});
        let mut cases = Vec::new();
        for path in [
            "/v2/user/points.json",
            "/v2/user/histories.json",
            "/v2/user/expired.json",
            "/v2/user/recent/expired.json",
        ] {
            cases.push(Case::post(path, &auth, own.clone(), Expect::Gift(401)));
            cases.push(Case::get(
                &q(path, &[("user_id", alice)]),
                &auth,
                Expect::Gift(401),
            ));
        }
        for path in ["/center/api/getUserPoints", "/center/api/changeRecord"] {
            cases.push(Case::post(path, &auth, json!({}), Expect::Center(40100)));
            cases.push(Case::get(path, &auth, Expect::Center(40100)));
        }
        for path in ["/api/query_balance/", "/api/query_point_record/"] {
            cases.push(Case::post(path, &auth, own.clone(), Expect::Mini(-401)));
            cases.push(Case::raw(
                path,
                &auth,
                "application/x-www-form-urlencoded",
                format!("openid={alice}"),
                Expect::Mini(-401),
            ));
        }
        w.run(cases).await;
        w.assert_ledger_healthy().await;
        w.stop().await;
    }
}

// ----- refused changes leave every answer as it was -----

#[actix_web::test]
async fn refused_deductions_change_no_answer() {
    for backend in backends() {
        let w = world(backend).await;
        let app = &w.app;
        let alice = w.alice.as_str();
        let bob = w.bob.as_str();
        let auth = [("Authorization", w.alice_auth.as_str())];
        let admin = [("X-Admin-Key", ADMIN_KEY)];
        let answers = || async {
            let (_, balance) = app
                .post("/api/query_balance/", &auth, &json!({"openid": alice}))
                .await;
            let (_, ledger) = app
                .get(&q("/admin/users/ledger", &[("user_id", bob)]), &admin)
                .await;
            let (_, total) = app
                .get(
                    POINTS,
                    &[
                        ("X-Consumer-Custom-ID", CONSUMER),
                        ("X-Gateway-Secret", GATEWAY_SECRET),
                    ],
                )
                .await;
            (balance, ledger, total, app.balance(bob).await)
        };
        let before = answers().await;
        assert_eq!(before.0["data"]["p_num"], 2, "{backend:?}: {}", before.0);

        // Deductions from users without points, through every dialect that changes points.
        let refused = app
            .post(
                "/core/point/update.json",
                &admin,
                &json!({"uuid": bob, "amount": -5}),
            )
            .await;
        assert_eq!(refused.1["code"], 402, "{backend:?}: {}", refused.1);
        let refused = app
            .post(
                "/center/admin/changePoints",
                &admin,
                &json!({"openId": bob, "faceValue": -5, "transactionId": "c-refused"}),
            )
            .await;
        assert_eq!(refused.1["code"], 300_013, "{backend:?}: {}", refused.1);
        let refused = app
            .post(
                POINTS,
                &[
                    ("X-Consumer-Custom-ID", NEW_CONSUMER),
                    ("X-Gateway-Secret", GATEWAY_SECRET),
                ],
                &json!({"transactionId": "o-refused", "userId": NEW_CONSUMER, "point": -5}),
            )
            .await;
        assert_eq!(refused.0, 422, "{backend:?}: {}", refused.1);

        assert_eq!(answers().await, before, "{backend:?}");
        w.stop().await;
    }
}
