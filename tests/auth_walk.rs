//! Every route of the OpenAPI document, walked twice: with no credentials, and with another
//! user's session naming the victim in every user field. Neither walk may read the victim's
//! points or change anything in the database, and no route may answer 500.

mod common;

use common::{backends, spawn_app, TestApp, ADMIN_KEY};
use serde_json::json;

/// The victim's balance: a number no route answers by chance.
const VICTIM_POINTS: i64 = 48_271;

/// Routes that show other users' points by design (leaderboards) to a signed-in user.
const RANKINGS: &[&str] = &[
    "/api/rank_by_balance/",
    "/v2/walk/rank.json",
    "/v2/pick/rank.json",
];

/// Counts and sums over every table a route could change.
async fn fingerprint(app: &TestApp) -> Vec<i64> {
    let db = points_engine::db::Db::connect(&app.database_url, 2)
        .await
        .expect("db");
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM ledger_entries",
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM balances",
        "SELECT COUNT(*) FROM users",
        "SELECT CAST(COALESCE(SUM(login_status), 0) AS BIGINT) FROM users",
        "SELECT COUNT(*) FROM users WHERE phone IS NOT NULL",
        "SELECT COUNT(*) FROM ledger_counters",
        "SELECT COUNT(*) FROM fulfilment_orders",
        "SELECT COUNT(*) FROM apps",
        "SELECT COUNT(*) FROM earning_rules",
        "SELECT COUNT(*) FROM redpack_sessions",
        "SELECT COUNT(*) FROM redpack_pools",
        "SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM redpack_cards",
    ] {
        out.push(
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.read)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        );
    }
    out
}

/// Every (method, path) of the OpenAPI document.
async fn routes(app: &TestApp) -> Vec<(String, String)> {
    let (_, doc) = app.get("/openapi.json", &[]).await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post"] {
            if item.get(method).is_some() {
                out.push((method.to_string(), path.clone()));
            }
        }
    }
    out
}

/// Sends the request naming `victim` in every user field the dialects use.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Option<&str>,
    victim: &str,
) -> (u16, String) {
    let fields = json!({
        "app_id": "default", "user_id": victim, "uuid": victim, "openid": victim, "openId": victim,
        "id": 1, "card_id": 1, "batch_id": 1, "box_name": "x", "action": "FOCUS", "amount": 1,
        "faceValue": 1, "changeType": "other", "task_id": "t", "expired_time": "2099-01-01 00:00:00",
    });
    let url = app.url(path);
    let mut req = match method {
        "get" => {
            let query: Vec<(String, String)> = fields
                .as_object()
                .expect("fields")
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map(str::to_string).unwrap_or(v.to_string()),
                    )
                })
                .collect();
            app.client.get(url).query(&query)
        }
        _ => app.client.post(url).json(&fields),
    };
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

#[actix_web::test]
async fn no_route_reads_or_changes_another_users_data() {
    for backend in backends() {
        // Arrange: a victim with a distinctive balance, and an attacker with a session.
        let app = spawn_app(backend).await;
        let (victim, _) = app.login("victim").await;
        let (_, attacker) = app.login("attacker").await;
        let body = app.change(&victim, VICTIM_POINTS, Some("walk-seed")).await;
        assert_eq!(body["status"], true, "{body}");
        let before = fingerprint(&app).await;
        let routes = routes(&app).await;
        assert!(routes.len() > 60, "the walk covers the whole document");

        for (method, path) in &routes {
            if path == "/openapi.json" || path.starts_with("/docs") {
                continue;
            }
            // Act: no credentials, then the attacker's session naming the victim.
            for auth in [None, Some(attacker.as_str())] {
                let (status, text) = call(&app, method, path, auth, &victim).await;

                // Assert: never a 500, never the victim's points, nothing changed.
                assert!(
                    status < 500,
                    "{backend:?} {method} {path} {auth:?}: {status} {text}"
                );
                let ranking = auth.is_some() && RANKINGS.contains(&path.as_str());
                assert!(
                    ranking || !text.contains(&VICTIM_POINTS.to_string()),
                    "{backend:?} {method} {path} {auth:?} shows the victim's points: {text}"
                );
                assert_eq!(
                    fingerprint(&app).await,
                    before,
                    "{backend:?} {method} {path} {auth:?} changed the database: {text}"
                );
            }
        }

        // The victim's points are intact and the admin key still reads them.
        assert_eq!(app.balance(&victim).await, VICTIM_POINTS);
        let (_, body) = app
            .post(
                "/core/user/balance.json",
                &[("X-Admin-Key", ADMIN_KEY)],
                &json!({"uuid": victim}),
            )
            .await;
        assert_eq!(body["data"]["active_balance"], VICTIM_POINTS);
    }
}
