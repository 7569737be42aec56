//! The prize shop over HTTP against the real server, on SQLite and Postgres: no prize oversold
//! and no per-user allowance exceeded under concurrency, points and stock conserved, refusals
//! that change nothing, the list's order, the rule ops in both spellings, `send_prize` through
//! the fulfilment outbox, and bad input answered with the dialect's code, never a 500.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{backends, ledger_facts, spawn_app, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::db::Db;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("X-Admin-Key", ADMIN_KEY);
/// 001's "insufficient points".
const INSUFFICIENT: i64 = 300_013;
/// 001's "refused by the state" (sold out, allowance used up, off shelf).
const REFUSED: i64 = 40_910;
/// 001's "bad or missing field".
const BAD_FIELD: i64 = 40_000;

/// One number from the database.
async fn scalar(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_optional(&db.read)
        .await
        .expect(sql)
        .unwrap_or(0)
}

/// A fingerprint of everything a refused request must leave alone.
async fn fingerprint(db: &Db) -> (i64, i64, i64, i64) {
    (
        scalar(db, "SELECT COUNT(*) FROM ledger_entries").await,
        scalar(
            db,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ledger_counters",
        )
        .await,
        scalar(db, "SELECT COUNT(*) FROM fulfilment_orders").await,
        scalar(
            db,
            "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM balances",
        )
        .await,
    )
}

/// A 001 call; answers the body (HTTP is always 200).
async fn center(app: &TestApp, op: &str, headers: &[(&str, &str)], body: Value) -> Value {
    let (status, body) = app.post(op, headers, &body).await;
    assert_eq!(status, 200, "{op}: {body}");
    body
}

/// Creates a prize through 001 `savePrize`; answers the stored prize.
async fn save_prize(app: &TestApp, prize: Value) -> Value {
    let body = center(app, "/center/admin/savePrize", &[ADMIN], prize).await;
    assert_eq!(body["code"], 0, "{body}");
    body["result"].clone()
}

/// A logged-in user holding `points`: (user id, bearer header value).
async fn user_with(app: &TestApp, code: &str, points: i64) -> (String, String) {
    let (uid, auth) = app.login(code).await;
    if points > 0 {
        let body = app.change(&uid, points, Some(&format!("seed-{uid}"))).await;
        assert_eq!(body["status"], true, "{body}");
    }
    (uid, auth)
}

fn goods_order(id: &Value) -> Value {
    json!({"id": id, "address": "北京市海淀区中关村大街1号", "userName": "张三",
           "telNumber": "13800138000", "postalCode": "100080"})
}

async fn exchange(app: &TestApp, auth: &str, body: Value) -> Value {
    center(
        app,
        "/center/api/exchangePrize",
        &[("Authorization", auth)],
        body,
    )
    .await
}

#[actix_web::test]
async fn concurrent_exchanges_never_oversell() {
    for backend in backends() {
        // Arrange: a 50-unit goods prize at 10 points; 200 users with 100 points each.
        let app = Arc::new(spawn_app(backend).await);
        let prize = save_prize(
            &app,
            json!({"title": "保温杯", "faceValue": 10, "total": 50, "type": "goods",
                   "exchangeLimit": "once"}),
        )
        .await;
        let id = prize["_id"].clone();
        let users = join_all((0..200).map(|i| {
            let app = Arc::clone(&app);
            async move { user_with(&app, &format!("buyer{i}"), 100).await }
        }))
        .await;

        // Act: all 200 exchange at once.
        let answers = join_all(users.iter().map(|(uid, auth)| {
            let app = Arc::clone(&app);
            let body = goods_order(&id);
            async move { (uid.clone(), exchange(&app, auth, body).await) }
        }))
        .await;

        // Assert: exactly 50 succeed, the rest are refused as sold out.
        let mut winners = Vec::new();
        for (uid, body) in &answers {
            match body["code"].as_i64() {
                Some(0) => {
                    assert_eq!(body["result"]["points"], 90, "{body}");
                    winners.push(uid.clone());
                }
                _ => {
                    assert_eq!(body["code"], REFUSED, "{backend:?}: {body}");
                    assert_eq!(body["msg"], "奖品已兑完", "{body}");
                }
            }
        }
        assert_eq!(winners.len(), 50, "{backend:?}: oversold or undersold");
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let counter = format!(
            "SELECT count FROM ledger_counters WHERE counter_key = 'shop:default:prize:{}'",
            id.as_str().expect("_id")
        );
        assert_eq!(scalar(&db, &counter).await, 50, "{backend:?}");
        let orders = scalar(
            &db,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE source_kind = 'exchange' AND reward_type = '实物'",
        )
        .await;
        assert_eq!(orders, 50, "{backend:?}");
        let entries = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'exchange' AND amount = -10",
        )
        .await;
        assert_eq!(entries, 50, "{backend:?}");
        let total = scalar(&db, "SELECT CAST(SUM(balance) AS BIGINT) FROM balances").await;
        assert_eq!(
            total,
            200 * 100 - 50 * 10,
            "{backend:?}: points not conserved"
        );
        // Every order carries the contact the user gave.
        let detail: String = sqlx::query_scalar("SELECT detail FROM fulfilment_orders LIMIT 1")
            .fetch_one(&db.read)
            .await
            .expect("order");
        let detail: Value = serde_json::from_str(&detail).expect("detail is JSON");
        assert_eq!(detail["telNumber"], "13800138000", "{detail}");
        assert_eq!(detail["postalCode"], "100080", "{detail}");
        assert_eq!(detail["userName"], "张三", "{detail}");
        for uid in winners
            .iter()
            .take(5)
            .chain(users.iter().map(|u| &u.0).take(5))
        {
            ledger_facts(&app.database_url, uid)
                .await
                .assert_conserved();
        }
        let (_, view) = app
            .get(
                &format!(
                    "/center/admin/getPrizeById?id={}",
                    id.as_str().expect("_id")
                ),
                &[ADMIN],
            )
            .await;
        assert_eq!(view["result"]["totalRemaining"], 0, "{view}");
        assert_eq!(view["result"]["exchanged"], 50, "{view}");
        // The records read from the ledger list every exchange with its order.
        let (_, records) = app
            .get(
                &format!(
                    "/admin/shop/exchanges?id={}&size=100",
                    id.as_str().expect("_id")
                ),
                &[ADMIN],
            )
            .await;
        let records = records["data"].as_array().expect("records");
        assert_eq!(records.len(), 50, "{backend:?}");
        assert!(records.iter().all(|r| r["cost"] == 10
            && r["order"]["reward_type"] == "实物"
            && r["order"]["detail"]["address"] == "北京市海淀区中关村大街1号"));
    }
}

#[actix_web::test]
async fn per_user_allowance_holds_under_concurrency() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let once = save_prize(
            &app,
            json!({"title": "视频会员", "faceValue": 5, "total": 100, "type": "virtualGoods",
                   "exchangeLimit": "once"}),
        )
        .await;
        let daily = save_prize(
            &app,
            json!({"title": "每日红包", "faceValue": 7, "total": 100, "type": "virtualGoods",
                   "exchangeLimit": "day"}),
        )
        .await;
        let three = save_prize(
            &app,
            json!({"title": "咖啡券", "faceValue": 1, "total": 100, "type": "virtualGoods",
                   "exchangeLimit": "week", "limitCount": 3}),
        )
        .await;
        let (uid, auth) = user_with(&app, "eager", 1000).await;
        let auth = Arc::new(auth);

        // 20 concurrent exchanges of each one-per-period prize, without client keys.
        for (prize, cost) in [(&once, 5), (&daily, 7)] {
            let before = app.balance(&uid).await;
            let answers = join_all((0..20).map(|_| {
                let (app, auth) = (Arc::clone(&app), Arc::clone(&auth));
                let body = json!({"id": prize["_id"], "userName": "李四"});
                async move { exchange(&app, &auth, body).await }
            }))
            .await;
            let mut records = HashSet::new();
            for body in &answers {
                match body["code"].as_i64() {
                    // A request that raced the first one is that same exchange (double tap).
                    Some(0) => {
                        records.insert(body["result"]["recordId"].as_i64().expect("recordId"));
                    }
                    _ => assert_eq!(body["code"], REFUSED, "{backend:?}: {body}"),
                }
            }
            assert_eq!(records.len(), 1, "{backend:?}: {answers:?}");
            assert_eq!(app.balance(&uid).await, before - cost, "{backend:?}");
            // Once the allowance is used, a later request is refused clearly.
            let again = exchange(&app, &auth, json!({"id": prize["_id"]})).await;
            assert_eq!(again["code"], REFUSED, "{again}");
        }
        let again = exchange(&app, &auth, json!({"id": once["_id"]})).await;
        assert_eq!(again["msg"], "您已兑换过该奖品", "{again}");
        let again = exchange(&app, &auth, json!({"prizeId": daily["prizeId"]})).await;
        assert_eq!(again["msg"], "今日兑换次数已用完", "{again}");

        // Distinct client keys are distinct requests: exactly the allowance of 3 succeeds.
        let answers = join_all((0..20).map(|i| {
            let (app, auth) = (Arc::clone(&app), Arc::clone(&auth));
            let body = json!({"id": three["_id"], "transactionId": format!("tx-{i}")});
            async move { exchange(&app, &auth, body).await }
        }))
        .await;
        let ok = answers.iter().filter(|b| b["code"] == 0).count();
        assert_eq!(ok, 3, "{backend:?}: {answers:?}");
        assert!(answers
            .iter()
            .all(|b| b["code"] == 0 || b["code"] == REFUSED));
        // A replayed key answers the original exchange and changes nothing.
        let balance = app.balance(&uid).await;
        let winner = answers
            .iter()
            .position(|b| b["code"] == 0)
            .expect("a winner");
        let replay = exchange(
            &app,
            &auth,
            json!({"id": three["_id"], "transactionId": format!("tx-{winner}")}),
        )
        .await;
        assert_eq!(replay["code"], 0, "{replay}");
        assert_eq!(
            replay["result"]["recordId"],
            answers[winner]["result"]["recordId"]
        );
        assert_eq!(app.balance(&uid).await, balance);

        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let exchanges = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'exchange'",
        )
        .await;
        assert_eq!(exchanges, 5, "{backend:?}");
        let orders = scalar(
            &db,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE reward_type = '电子权益'",
        )
        .await;
        assert_eq!(orders, 5, "{backend:?}");
        assert_eq!(app.balance(&uid).await, 1000 - 5 - 7 - 3, "{backend:?}");
        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
    }
}

#[actix_web::test]
async fn refusals_change_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let goods = save_prize(
            &app,
            json!({"title": "背包", "faceValue": 50, "total": 10, "type": "goods"}),
        )
        .await;
        let off = save_prize(
            &app,
            json!({"title": "下架品", "faceValue": 1, "total": 10, "type": "virtualGoods",
                   "status": "20"}),
        )
        .await;
        let (_, poor) = user_with(&app, "poor", 20).await;
        let (_, rich) = user_with(&app, "rich", 500).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let before = fingerprint(&db).await;

        // Not enough points: 300013.
        let body = exchange(&app, &poor, goods_order(&goods["_id"])).await;
        assert_eq!(body["code"], INSUFFICIENT, "{body}");
        // Goods without address, name or phone, or with a bad phone or postal code: 40000.
        let mut cases = Vec::new();
        for field in ["address", "userName", "telNumber"] {
            let mut b = goods_order(&goods["_id"]);
            b.as_object_mut().expect("object").remove(field);
            cases.push(b);
        }
        for (field, bad) in [
            ("telNumber", json!("call me")),
            ("telNumber", json!("123")),
            ("postalCode", json!("12")),
            ("address", json!("x")),
            ("userName", json!(["a"])),
            ("id", json!({"a": 1})),
        ] {
            let mut b = goods_order(&goods["_id"]);
            b[field] = bad;
            cases.push(b);
        }
        cases.push(json!({"address": "somewhere long"}));
        for case in cases {
            let body = exchange(&app, &rich, case.clone()).await;
            assert_eq!(body["code"], BAD_FIELD, "{case}: {body}");
        }
        let body = exchange(&app, &rich, json!({"id": "999999"})).await;
        assert_eq!(body["code"], 40_400, "{body}");
        let body = exchange(&app, &rich, json!({"id": off["_id"]})).await;
        assert_eq!(body["code"], REFUSED, "{body}");
        assert_eq!(body["msg"], "奖品已下架", "{body}");
        let body = exchange(&app, "Bearer nope", goods_order(&goods["_id"])).await;
        assert_eq!(body["code"], 40_100, "{body}");
        assert_eq!(
            fingerprint(&db).await,
            before,
            "{backend:?}: a refusal changed state"
        );
    }
}

#[actix_web::test]
async fn list_puts_exchanged_sold_out_and_unaffordable_last() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mk = |title: &str, cost: i64, total: i64, sort: i64| {
            json!({"title": title, "faceValue": cost, "total": total, "type": "virtualGoods",
                   "exchangeLimit": "day", "sort": sort, "prizeId": title})
        };
        let cheap = save_prize(&app, mk("cheap", 10, 5, 1)).await;
        save_prize(&app, mk("dear", 1000, 5, 2)).await;
        save_prize(&app, mk("gone", 5, 0, 3)).await;
        let taken = save_prize(&app, mk("taken", 1, 5, 4)).await;
        save_prize(&app, mk("mid", 20, 5, 5)).await;
        let mut hidden = mk("hidden", 1, 5, 0);
        hidden["status"] = json!("20");
        save_prize(&app, hidden).await;
        let (_, auth) = user_with(&app, "lister", 100).await;
        let body = exchange(&app, &auth, json!({"id": taken["_id"]})).await;
        assert_eq!(body["code"], 0, "{body}");

        for method in ["GET", "POST"] {
            let (_, body) = if method == "GET" {
                app.get("/center/api/getPrizedsList", &[("Authorization", &auth)])
                    .await
            } else {
                app.post(
                    "/center/api/getPrizedsList",
                    &[("Authorization", &auth)],
                    &json!({}),
                )
                .await
            };
            assert_eq!(body["code"], 0, "{body}");
            let items = body["result"].as_array().expect("items");
            let order: Vec<&str> = items
                .iter()
                .map(|i| i["prizeId"].as_str().expect("prizeId"))
                .collect();
            assert_eq!(order, ["cheap", "mid", "dear", "gone", "taken"], "{body}");
            let first = &items[0];
            assert_eq!(first["_id"], cheap["_id"]);
            assert_eq!(first["type"], "virtualGoods");
            assert_eq!(first["exchangeLimit"], "day");
            assert_eq!(first["totalRemaining"], 5);
            assert_eq!(first["status"], 0);
            let last = &items[4];
            assert_eq!(last["status"], 1, "{last}");
            assert_eq!(last["totalRemaining"], 4, "{last}");
            assert_eq!(items[3]["totalRemaining"], 0);
        }
        let (_, body) = app.get("/center/api/getPrizedsList", &[]).await;
        assert_eq!(body["code"], 40_100, "{body}");
    }
}

#[actix_web::test]
async fn integral_prizes_pay_first_then_credit() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let prize = save_prize(
            &app,
            json!({"title": "积分礼包", "faceValue": 30, "total": 10, "type": "integral",
                   "points": 50, "exchangeLimit": "month"}),
        )
        .await;
        // The prize's own points cannot pay for it.
        let (_, short) = user_with(&app, "short", 20).await;
        let body = exchange(&app, &short, json!({"id": prize["_id"]})).await;
        assert_eq!(body["code"], INSUFFICIENT, "{body}");
        let (uid, auth) = user_with(&app, "exact", 30).await;
        let body = exchange(&app, &auth, json!({"id": prize["_id"]})).await;
        assert_eq!(body["code"], 0, "{body}");
        assert_eq!(body["result"]["points"], 50, "{body}");
        assert_eq!(app.balance(&uid).await, 50);
        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
        let (_, records) = app.get("/admin/shop/exchanges", &[ADMIN]).await;
        let records = records["data"].as_array().expect("records");
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["cost"], 30);
        assert_eq!(records[0]["credited"], 50);
        assert_eq!(records[0]["order"], Value::Null);
    }
}

#[actix_web::test]
async fn send_prize_goes_through_the_outbox() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let prize = save_prize(
            &app,
            json!({"title": "会员月卡", "faceValue": 0, "total": 2, "type": "virtualGoods",
                   "prizeId": "vip-month"}),
        )
        .await;
        let goods = save_prize(
            &app,
            json!({"title": "台灯", "faceValue": 0, "total": 2, "type": "goods"}),
        )
        .await;
        let (uid, _) = user_with(&app, "gifted", 10).await;
        let send = |body: Value| {
            let app = &app;
            async move { center(app, "/center/custom/send_prize", &[ADMIN], body).await }
        };
        let db = Db::connect(&app.database_url, 2).await.expect("connect");

        let before = fingerprint(&db).await;
        for (body, code) in [
            (
                json!({"prizeId": "vip-month", "openId": uid, "faceValue": 11}),
                INSUFFICIENT,
            ),
            (
                json!({"prizeId": goods["prizeId"], "openId": uid, "faceValue": 0}),
                BAD_FIELD,
            ),
            (json!({"prizeId": "vip-month", "openId": uid}), BAD_FIELD),
            (
                json!({"prizeId": "vip-month", "openId": uid, "faceValue": -1}),
                BAD_FIELD,
            ),
            (
                json!({"prizeId": "nope", "openId": uid, "faceValue": 0}),
                40_400,
            ),
            (
                json!({"prizeId": "vip-month", "openId": "nobody", "faceValue": 0}),
                40_400,
            ),
        ] {
            let answer = send(body.clone()).await;
            assert_eq!(answer["code"], code, "{body}: {answer}");
        }
        let (_, body) = app
            .post(
                "/center/custom/send_prize",
                &[],
                &json!({"prizeId": "vip-month", "openId": uid, "faceValue": 0}),
            )
            .await;
        assert_eq!(body["code"], 40_100, "{body}");
        assert_eq!(fingerprint(&db).await, before, "{backend:?}");

        // A keyed call retried is one delivery; the stock of 2 allows one more, then sold out.
        let keyed = json!({"prizeId": "vip-month", "openId": uid, "faceValue": 4,
                           "transactionId": "gift-1"});
        let first = send(keyed.clone()).await;
        assert_eq!(first["code"], 0, "{first}");
        assert_eq!(first["result"]["points"], 6, "{first}");
        let again = send(keyed).await;
        assert_eq!(again["result"], first["result"], "{again}");
        let second = send(json!({"prizeId": prize["_id"], "openId": uid, "faceValue": 0})).await;
        assert_eq!(second["code"], 0, "{second}");
        let third = send(json!({"prizeId": "vip-month", "openId": uid, "faceValue": 0})).await;
        assert_eq!(third["code"], REFUSED, "{third}");
        let orders = scalar(
            &db,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE reward_type = '电子权益' AND source_kind = 'exchange'",
        )
        .await;
        assert_eq!(orders, 2, "{backend:?}");
        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
    }
}

#[actix_web::test]
async fn rule_ops_in_both_shapes() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (_, auth) = app.login("reader").await;
        let bearer = [("Authorization", auth.as_str())];
        // Before one is saved: a sentence with the app's points life (12 months by default).
        // `getPointsRule` (the seed) answers `{ruleDetail}`; `getRule` (the client, which hands
        // `result` to `<rich-text nodes>`) the text itself.
        let body = center(&app, "/center/api/getPointsRule", &bearer, json!({})).await;
        assert_eq!(body["code"], 0, "{body}");
        let text = body["result"]["ruleDetail"].as_str().expect("ruleDetail");
        assert!(text.contains("12个自然月"), "{text}");
        let body = center(&app, "/center/api/getRule", &bearer, json!({})).await;
        assert_eq!(body["result"].as_str(), Some(text), "{body}");
        let rule = "1. 每日签到得积分\n2. 积分12个月内有效";
        let body = center(
            &app,
            "/center/admin/savePointsRule",
            &[ADMIN],
            json!({"ruleDetail": rule}),
        )
        .await;
        assert_eq!(body["code"], 0, "{body}");
        let (_, body) = app.get("/center/api/getPointsRule", &bearer).await;
        assert_eq!(body["result"]["ruleDetail"], rule, "{body}");
        let (_, body) = app.get("/center/api/getRule", &bearer).await;
        assert_eq!(body["result"], rule, "{body}");
        for (headers, body, code) in [
            (vec![], json!({"ruleDetail": "x"}), 40_100),
            (vec![ADMIN], json!({}), BAD_FIELD),
            (vec![ADMIN], json!({"ruleDetail": "   "}), BAD_FIELD),
            (vec![ADMIN], json!({"ruleDetail": ["x"]}), BAD_FIELD),
            (
                vec![ADMIN],
                json!({"ruleDetail": "x".repeat(10_001)}),
                BAD_FIELD,
            ),
            (
                vec![ADMIN],
                json!({"ruleDetail": "x", "app_id": "ghost"}),
                40_400,
            ),
        ] {
            let answer = center(&app, "/center/admin/savePointsRule", &headers, body).await;
            assert_eq!(answer["code"], code, "{answer}");
        }
        let (_, body) = app.post("/center/api/getRule", &bearer, &json!({})).await;
        assert_eq!(body["result"], rule, "{body}");
        let (_, body) = app.get("/center/api/getRule", &[]).await;
        assert_eq!(body["code"], 40_100, "{body}");
    }
}

#[actix_web::test]
async fn admin_manages_the_catalog_and_bad_input_never_500s() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        // Create through the admin route in snake_case, update through savePrize by prizeId.
        let (_, body) = app
            .post(
                "/admin/shop/prizes",
                &[ADMIN],
                &json!({"title": "雨伞", "face_value": 30, "total": 5, "type": "goods",
                        "exchange_limit": "week", "limit_count": 2, "prize_id": "umbrella"}),
            )
            .await;
        assert_eq!(body["status"], true, "{body}");
        let id = body["data"]["_id"].clone();
        assert_eq!(body["data"]["limitCount"], 2, "{body}");
        let updated = save_prize(&app, json!({"prizeId": "umbrella", "total": 8})).await;
        assert_eq!(updated["_id"], id);
        assert_eq!(updated["total"], 8);
        assert_eq!(updated["faceValue"], 30, "omitted fields keep their value");
        assert_eq!(updated["exchangeLimit"], "week");
        let (_, body) = app
            .post(
                "/admin/shop/prizes/status",
                &[ADMIN],
                &json!({"id": id, "status": "20"}),
            )
            .await;
        assert_eq!(body["data"]["status"], "20", "{body}");
        let (_, list) = app.get("/admin/shop/prizes?app_id=default", &[ADMIN]).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
        let (_, body) = app
            .post(
                "/admin/shop/prizes/status",
                &[ADMIN],
                &json!({"id": id, "status": "30"}),
            )
            .await;
        assert_eq!(body["status"], true, "{body}");
        let (_, list) = app.get("/admin/shop/prizes", &[ADMIN]).await;
        assert_eq!(list["data"], json!([]), "{list}");
        let (_, body) = app
            .get(
                &format!(
                    "/center/admin/getPrizeById?id={}",
                    id.as_str().expect("_id")
                ),
                &[ADMIN],
            )
            .await;
        assert_eq!(body["code"], 40_400, "{body}");

        // Bad input: the dialect's code, HTTP 200, nothing stored.
        save_prize(
            &app,
            json!({"title": "占位", "faceValue": 1, "total": 1, "type": "goods", "prizeId": "taken"}),
        )
        .await;
        let other = save_prize(
            &app,
            json!({"title": "另一个", "faceValue": 1, "total": 1, "type": "goods"}),
        )
        .await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let prizes = "SELECT COUNT(*) FROM shop_prizes";
        let before = (scalar(&db, prizes).await, fingerprint(&db).await);
        let base = json!({"title": "t", "faceValue": 1, "total": 1, "type": "goods"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let bad_prizes = [
            json!({}),
            json!({"faceValue": 1, "total": 1, "type": "goods"}),
            with("type", json!("car")),
            with("type", json!(3)),
            with("faceValue", json!(-1)),
            with("faceValue", json!("abc")),
            with("faceValue", json!(1.5)),
            with("faceValue", json!(1e20)),
            with("total", json!(-5)),
            with("total", json!([1])),
            with("exchangeLimit", json!("year")),
            with("limitCount", json!(0)),
            with("limitCount", json!(1001)),
            with("type", json!("integral")),
            with("status", json!("99")),
            with("title", json!("t".repeat(65))),
            with("title", json!("a\u{0}b")),
            with("prizeId", json!("has space")),
            json!({"_id": other["_id"], "prizeId": "taken"}),
            with("_id", json!("424242")),
            with("sort", json!(-1)),
            with("app_id", json!("ghost")),
        ];
        for body in &bad_prizes {
            let answer = center(&app, "/center/admin/savePrize", &[ADMIN], body.clone()).await;
            let code = answer["code"].as_i64().expect("code");
            assert!(
                [BAD_FIELD, 40_400, 40_900].contains(&code),
                "{body}: {answer}"
            );
            let (status, answer) = app.post("/admin/shop/prizes", &[ADMIN], body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["status"], false, "{body}: {answer}");
            assert!([400, 404, 409].contains(&answer["code"].as_i64().expect("code")));
        }
        for (path, body) in [
            (
                "/admin/shop/prizes/status",
                json!({"id": "1", "status": "5"}),
            ),
            ("/admin/shop/prizes/status", json!({"status": "10"})),
            (
                "/admin/shop/prizes/status",
                json!({"id": "nope", "status": "10"}),
            ),
        ] {
            let (status, answer) = app.post(path, &[ADMIN], &body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["status"], false, "{body}: {answer}");
        }
        for query in ["page=0", "size=1000", "page=x", "id=nope", "app_id=ghost"] {
            let (status, answer) = app
                .get(&format!("/admin/shop/exchanges?{query}"), &[ADMIN])
                .await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["status"], false, "{query}: {answer}");
        }
        for (path, body) in [
            ("/center/admin/getPrizeById", json!({})),
            ("/center/admin/getPrizeById", json!({"id": [1]})),
            ("/center/custom/send_prize", json!({"openId": "x"})),
            ("/center/custom/send_prize", json!("not an object")),
        ] {
            let answer = center(&app, path, &[ADMIN], body.clone()).await;
            assert_eq!(answer["code"], BAD_FIELD, "{path} {body}: {answer}");
        }
        let (status, _) = app.get("/admin/shop/prizes", &[]).await;
        assert_eq!(status, 200);
        let (_, answer) = app.post("/center/admin/savePrize", &[], &base).await;
        assert_eq!(answer["code"], 40_100, "{answer}");
        assert_eq!(
            (scalar(&db, prizes).await, fingerprint(&db).await),
            before,
            "{backend:?}: bad input changed state"
        );
    }
}

#[actix_web::test]
async fn one_users_transaction_id_never_blocks_another_users_exchange() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let prize = save_prize(
            &app,
            json!({"title": "书签", "faceValue": 10, "total": 10, "type": "virtualGoods",
                   "exchangeLimit": "day", "limitCount": 5, "prizeId": "bookmark"}),
        )
        .await;
        let (alice, alice_auth) = user_with(&app, "key-alice", 100).await;
        let (bob, bob_auth) = user_with(&app, "key-bob", 100).await;
        let body = json!({"id": prize["_id"], "transactionId": "X"});
        let first = exchange(&app, &alice_auth, body.clone()).await;
        assert_eq!(first["code"], 0, "{backend:?}: {first}");
        // Bob's own "X" is his own request, not a conflict with Alice's.
        let second = exchange(&app, &bob_auth, body.clone()).await;
        assert_eq!(second["code"], 0, "{backend:?}: {second}");
        assert_ne!(second["result"]["recordId"], first["result"]["recordId"]);
        // Each one's replay answers their own exchange and changes nothing.
        let replay = exchange(&app, &bob_auth, body).await;
        assert_eq!(replay["result"]["recordId"], second["result"]["recordId"]);
        assert_eq!(app.balance(&alice).await, 90, "{backend:?}");
        assert_eq!(app.balance(&bob).await, 90, "{backend:?}");
        app.handle.stop(true).await;
    }
}
