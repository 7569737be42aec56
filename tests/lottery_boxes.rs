//! Lottery boards and blind boxes over HTTP against the real server, on SQLite and Postgres:
//! no prize oversold and the daily draw limit kept under concurrency, every ticket paired with
//! one draw result, refusals that change nothing, boxes unlocked by today's tasks and opened
//! once per day, external stock paid out exactly once per unit, state rebuilt after a crash.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{backends, ledger_facts, spawn_app, spawn_process, Backend, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::db::Db;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("X-Admin-Key", ADMIN_KEY);

/// A bad request: its headers, its body and the 000 code it must get.
type Case<'a> = (Vec<(&'a str, &'a str)>, Value, i64);

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

async fn save_board(app: &TestApp, board: &Value) -> Value {
    let (status, body) = app.post("/admin/lottery", &[ADMIN], board).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn save_boxes(app: &TestApp, boxes: &Value) -> Value {
    let (status, body) = app
        .post(
            "/admin/boxes",
            &[ADMIN],
            &json!({"app_id": "default", "boxes": boxes}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A 000 call as `user` with its bearer `auth`; answers the body (HTTP is always 200).
async fn call(app: &TestApp, path: &str, auth: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[("Authorization", auth)], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Records one finished task for `uid` today: a `task` entry, as the tasks feature writes.
async fn finish_task(app: &TestApp, uid: &str, key: &str) {
    let (status, body) = app
        .post(
            "/core/point/update.json",
            &[ADMIN, ("Idempotency-Key", key)],
            &json!({"uuid": uid, "amount": 1, "flag": "task", "task_id": "t1",
                    "transfer_info": "任务奖励", "expired_time": "2099-01-01 00:00:00"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], true, "{body}");
}

/// The board of the concurrency test: one winnable prize (stock 20) drawn half the time, a
/// "thanks" slot without stock the other half.
fn scarce_board(ticket: i64, daily_limit: i64) -> Value {
    json!({
        "app_id": "default", "ticket": ticket, "daily_limit": daily_limit,
        "prizes": [
            {"level": "一等奖", "name": "10集分宝", "reward_type": "集分宝", "icon": "https://x/1.png",
             "sum": 20, "amount": 5, "rate": 0.5},
            {"level": "参与奖", "name": "谢谢参与", "reward_type": "积分", "icon": "https://x/2.png",
             "sum": 0, "amount": 0, "rate": "0.5"},
        ]
    })
}

#[actix_web::test]
async fn concurrent_draws_never_oversell_and_keep_the_daily_limit() {
    for backend in backends() {
        // Arrange: 100 users with 100 points each; 2 draws a day at 10 points.
        let app = Arc::new(spawn_app(backend).await);
        save_board(&app, &scarce_board(10, 2)).await;
        let users = join_all((0..100).map(|i| {
            let app = Arc::clone(&app);
            async move { app.login(&format!("drawer{i}")).await }
        }))
        .await;
        join_all(users.iter().map(|(uid, _)| {
            let app = Arc::clone(&app);
            async move { app.change(uid, 100, Some(&format!("seed-{uid}"))).await }
        }))
        .await;

        // Act: every user draws three times at once: 300 concurrent draws.
        let attempts: Vec<(String, String)> = users
            .iter()
            .flat_map(|user| std::iter::repeat_n(user.clone(), 3))
            .collect();
        let draws = join_all(attempts.into_iter().map(|(uid, auth)| {
            let app = Arc::clone(&app);
            async move {
                let body = call(
                    &app,
                    "/v2/lottery/do.json",
                    &auth,
                    json!({"app_id": "default", "user_id": uid}),
                )
                .await;
                (uid, body)
            }
        }))
        .await;

        // Assert: exactly two draws per user succeeded, the third was refused (410).
        let mut per_user: HashMap<String, i64> = HashMap::new();
        let mut wins = 0;
        for (uid, body) in &draws {
            if body["status"] == true {
                *per_user.entry(uid.clone()).or_default() += 1;
                if body["is_reward"] == true {
                    wins += 1;
                    assert_eq!(body["data"]["level"], "一等奖", "{body}");
                    assert_eq!(body["data"]["reward_type"], "集分宝", "{body}");
                } else {
                    assert_eq!(body["is_reward"], false, "{body}");
                    assert_eq!(body["data"], json!([]), "{body}");
                }
            } else {
                assert_eq!(body["code"], 410, "{backend:?}: {body}");
            }
        }
        assert_eq!(per_user.len(), 100, "{backend:?}");
        assert!(
            per_user.values().all(|&n| n == 2),
            "{backend:?}: {per_user:?}"
        );
        // 200 draws at rate 0.5 win far more than 20 times: the stock is what stops them.
        assert_eq!(wins, 20, "{backend:?}: the prize was oversold or undersold");

        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let orders = scalar(
            &db,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE source_kind = 'lottery' AND reward_type = '集分宝'",
        )
        .await;
        assert_eq!(orders, 20, "{backend:?}");
        let order_units = scalar(
            &db,
            "SELECT CAST(SUM(amount) AS BIGINT) FROM fulfilment_orders WHERE source_kind = 'lottery'",
        )
        .await;
        assert_eq!(order_units, 100, "{backend:?}");
        let stock_counter = scalar(
            &db,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ledger_counters WHERE counter_key LIKE 'lottery:default:prize:%'",
        )
        .await;
        assert_eq!(stock_counter, 20, "{backend:?}");
        // One result entry per draw, one ticket leg per won draw, each leg beside its result.
        let results = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'lottery'",
        )
        .await;
        assert_eq!(results, 200, "{backend:?}");
        let legs = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'lottery_ticket'",
        )
        .await;
        assert_eq!(legs, 20, "{backend:?}");
        let orphans = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries t WHERE t.kind = 'lottery_ticket' AND NOT EXISTS \
             (SELECT 1 FROM ledger_entries m WHERE m.kind = 'lottery' AND m.app_id = t.app_id \
              AND m.idem_key || '#0' = t.idem_key)",
        )
        .await;
        assert_eq!(orphans, 0, "{backend:?}");
        let lost = scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'lottery' AND amount = -10",
        )
        .await;
        assert_eq!(lost, 180, "{backend:?}");
        let paid = scalar(
            &db,
            "SELECT CAST(-SUM(amount) AS BIGINT) FROM ledger_entries WHERE kind IN ('lottery', 'lottery_ticket')",
        )
        .await;
        assert_eq!(paid, 2000, "{backend:?}: every draw pays its ticket once");
        let most = scalar(
            &db,
            "SELECT CAST(MAX(n) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM ledger_entries \
             WHERE kind = 'lottery' GROUP BY user_id) d",
        )
        .await;
        assert_eq!(most, 2, "{backend:?}: a user drew past the daily limit");
        for (uid, _) in users.iter().take(10) {
            let facts = ledger_facts(&app.database_url, uid).await;
            facts.assert_conserved();
            assert_eq!(facts.balance, 80, "{backend:?}");
        }
        let total = scalar(&db, "SELECT CAST(SUM(balance) AS BIGINT) FROM balances").await;
        assert_eq!(total, 100 * 80, "{backend:?}");

        // The board agrees: nothing left to draw today, no stock left.
        let (uid, auth) = &users[0];
        let show = call(
            &app,
            "/v2/lottery/show.json",
            auth,
            json!({"app_id": "default", "user_id": uid}),
        )
        .await;
        assert_eq!(show["left_times"], 0, "{show}");
        let (_, board) = app.get("/admin/lottery?app_id=default", &[ADMIN]).await;
        assert_eq!(board["data"]["prizes"][0]["granted"], 20, "{board}");
        assert_eq!(board["data"]["prizes"][0]["remaining"], 0, "{board}");
        db.write.close().await;
        db.read.close().await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn refused_draws_change_nothing_and_bad_boards_are_refused() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let board = json!({
            "app_id": "default", "ticket": 10, "daily_limit": 3,
            "prizes": [
                {"level": "一等奖", "name": "50积分", "reward_type": "积分", "icon": "i1", "sum": 1000,
                 "amount": 50, "rate": "0.3"},
                {"level": "二等奖", "name": "谢谢参与", "reward_type": "积分", "icon": "i2", "sum": 0,
                 "amount": 0, "rate": 0.7},
            ]
        });
        save_board(&app, &board).await;
        let (poor, poor_auth) = app.login("poor").await;
        app.change(&poor, 5, Some("poor-seed")).await;
        let me = json!({"app_id": "default", "user_id": poor});

        // show: the prizes, three draws left, the ticket.
        let show = call(&app, "/v2/lottery/show.json", &poor_auth, me.clone()).await;
        assert_eq!(show["status"], true, "{show}");
        assert_eq!(show["left_times"], 3, "{show}");
        // `ticket` is a string of digits, `level` the label the operator typed.
        assert_eq!(show["ticket"], "10", "{show}");
        assert_eq!(
            show["data"][0],
            json!({"level": "一等奖", "name": "50积分", "reward_type": "积分", "icon": "i1"})
        );
        assert_eq!(show["data"][1]["level"], "二等奖");
        assert_eq!(show["data"].as_array().map(Vec::len), Some(2));

        // A draw without enough points: 402, nothing changed, the draw not counted.
        let before = fingerprint(&db).await;
        let refused = call(&app, "/v2/lottery/do.json", &poor_auth, me.clone()).await;
        assert_eq!(refused["status"], false, "{refused}");
        assert_eq!(refused["code"], 402, "{backend:?}: {refused}");
        assert_eq!(refused["msg"], "积分不足", "{refused}");
        assert_eq!(fingerprint(&db).await, before, "{backend:?}");
        let show = call(&app, "/v2/lottery/show.json", &poor_auth, me.clone()).await;
        assert_eq!(show["left_times"], 3, "{show}");
        assert_eq!(app.balance(&poor).await, 5);

        // A user who can pay draws; left_times counts down; the books add up.
        let (rich, rich_auth) = app.login("rich").await;
        app.change(&rich, 100, Some("rich-seed")).await;
        let rich_me = json!({"app_id": "default", "user_id": rich});
        let drawn = call(&app, "/v2/lottery/do.json", &rich_auth, rich_me.clone()).await;
        assert_eq!(drawn["status"], true, "{drawn}");
        let won = if drawn["is_reward"] == true { 50 } else { 0 };
        assert_eq!(app.balance(&rich).await, 100 - 10 + won, "{drawn}");
        ledger_facts(&app.database_url, &rich)
            .await
            .assert_conserved();
        let show = call(&app, "/v2/lottery/show.json", &rich_auth, rich_me.clone()).await;
        assert_eq!(show["left_times"], 2, "{show}");

        // Bad boards: each answers 400 and leaves the stored board as it was.
        let (_, stored) = app.get("/admin/lottery?app_id=default", &[ADMIN]).await;
        assert_eq!(stored["status"], true, "{stored}");
        let prize = |level: i64, rate: Value| json!({"level": level, "name": "p", "reward_type": "积分", "sum": 5, "amount": 1, "rate": rate});
        let with_prizes = |prizes: Value| json!({"app_id": "default", "ticket": 10, "daily_limit": 3, "prizes": prizes});
        let many: Vec<Value> = (0..33)
            .map(|l| prize(l, json!(if l == 0 { "0.04" } else { "0.03" })))
            .collect();
        let bad_boards = [
            with_prizes(json!([prize(1, json!(0.5)), prize(2, json!(0.4))])),
            with_prizes(json!([prize(1, json!("0.6")), prize(2, json!("0.5"))])),
            with_prizes(json!([prize(1, json!(-0.5)), prize(2, json!(1.5))])),
            with_prizes(json!([prize(1, json!("1.1"))])),
            with_prizes(json!([
                prize(1, json!("0.3333333")),
                prize(2, json!("0.6666667"))
            ])),
            with_prizes(json!([prize(1, json!("abc"))])),
            with_prizes(json!([prize(1, json!(0.5)), prize(1, json!(0.5))])),
            with_prizes(json!([
                {"level": "一等奖", "name": "p", "reward_type": "积分", "sum": 1, "amount": 1, "rate": 0.5},
                {"level": " 一等奖 ", "name": "q", "reward_type": "积分", "sum": 1, "amount": 1, "rate": 0.5}
            ])),
            with_prizes(
                json!([{"level": "", "name": "p", "reward_type": "积分", "sum": 1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": "x".repeat(33), "name": "p", "reward_type": "积分", "sum": 1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": {"l": 1}, "name": "p", "reward_type": "积分", "sum": 1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(json!([])),
            with_prizes(json!(many)),
            with_prizes(json!("not a list")),
            with_prizes(
                json!([{"level": 1, "name": "p", "reward_type": "金币", "sum": 1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": 1, "name": "p", "reward_type": "积分", "sum": 1, "amount": 0, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": 1, "name": "p", "reward_type": "积分", "sum": -1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": 1, "reward_type": "积分", "sum": 1, "amount": 1, "rate": 1}]),
            ),
            with_prizes(
                json!([{"level": 1, "name": "p", "reward_type": "积分", "sum": 1, "amount": 1}]),
            ),
            json!({"app_id": "default", "ticket": 10, "prizes": [prize(1, json!(1))]}),
            json!({"app_id": "default", "ticket": -1, "daily_limit": 3, "prizes": [prize(1, json!(1))]}),
            json!({"app_id": "default", "ticket": "abc", "daily_limit": 3, "prizes": [prize(1, json!(1))]}),
            json!({"app_id": "default", "daily_limit": 0, "prizes": [prize(1, json!(1))]}),
            json!({"app_id": "default", "daily_limit": 3, "status": "40", "prizes": [prize(1, json!(1))]}),
        ];
        for bad in &bad_boards {
            let (status, body) = app.post("/admin/lottery", &[ADMIN], bad).await;
            assert_eq!(status, 200, "{bad}: {body}");
            assert_eq!(body["status"], false, "{backend:?}: accepted {bad}");
            assert_eq!(body["code"], 400, "{backend:?}: {bad}: {body}");
        }
        let (_, unknown_app) = app
            .post(
                "/admin/lottery",
                &[ADMIN],
                &json!({"app_id": "nope", "daily_limit": 1, "prizes": [prize(1, json!(1))]}),
            )
            .await;
        assert_eq!(unknown_app["code"], 404, "{unknown_app}");
        let (_, no_key) = app.post("/admin/lottery", &[], &board).await;
        assert_eq!(no_key["code"], 401, "{no_key}");
        let (_, after) = app.get("/admin/lottery?app_id=default", &[ADMIN]).await;
        assert_eq!(
            after, stored,
            "{backend:?}: a refused board changed the stored one"
        );

        // A good change reaches the running board at once.
        let mut cheaper = board.clone();
        cheaper["ticket"] = json!(20);
        cheaper["status"] = json!("20");
        save_board(&app, &cheaper).await;
        let show = call(&app, "/v2/lottery/show.json", &rich_auth, rich_me.clone()).await;
        assert_eq!(show["ticket"], "20", "{show}");
        assert_eq!(
            show["left_times"], 2,
            "{backend:?}: the reloaded board forgot today's draw"
        );
        let closed = call(&app, "/v2/lottery/do.json", &rich_auth, rich_me).await;
        assert_eq!(closed["code"], 410, "{closed}");
        db.write.close().await;
        db.read.close().await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn boxes_open_with_todays_tasks_once_a_day_and_pay_external_stock_first() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        save_boxes(
            &app,
            &json!([
                {"name": "small", "task_sum": 1, "alipay_point_valve": 2, "alipay_point_unit": 10, "points_unit": 3},
                {"name": "big", "task_sum": 3, "points_unit": 20},
            ]),
        )
        .await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let (a, a_auth) = app.login("boxa").await;
        let a_me = json!({"app_id": "default", "user_id": a});
        let small = json!({"app_id": "default", "user_id": a, "box_name": "small"});

        // No task yet: every box locked.
        let show = call(&app, "/v2/box/show.json", &a_auth, a_me.clone()).await;
        assert_eq!(show["done_tasks_sum"], 0, "{show}");
        assert_eq!(show["diff"], 1, "{show}");
        assert_eq!(
            show["data"][0],
            json!({"box_name": "small", "task_sum": 1, "alipay_point_unit": 10, "point_unit": 3, "is_get": false})
        );
        let before = fingerprint(&db).await;
        let locked = call(&app, "/v2/box/get.json", &a_auth, small.clone()).await;
        assert_eq!(locked["code"], 410, "{backend:?}: {locked}");
        assert_eq!(locked["msg"], "还需完成1个任务才能领取", "{locked}");
        assert_eq!(fingerprint(&db).await, before);

        // One task: the small box opens, once, however many ask at once.
        finish_task(&app, &a, "a-task-1").await;
        let show = call(&app, "/v2/box/show.json", &a_auth, a_me.clone()).await;
        assert_eq!(show["done_tasks_sum"], 1, "{show}");
        assert_eq!(show["diff"], 2, "{show}");
        let opens = join_all((0..20).map(|_| {
            let app = Arc::clone(&app);
            let (auth, body) = (a_auth.clone(), small.clone());
            async move { call(&app, "/v2/box/get.json", &auth, body).await }
        }))
        .await;
        let won: Vec<&Value> = opens.iter().filter(|b| b["status"] == true).collect();
        assert_eq!(won.len(), 1, "{backend:?}: {opens:?}");
        assert_eq!(
            won[0]["data"],
            json!({"type": "alipay_point", "amount": 10})
        );
        for refused in opens.iter().filter(|b| b["status"] != true) {
            assert_eq!(refused["code"], 410, "{refused}");
        }
        let show = call(&app, "/v2/box/show.json", &a_auth, a_me.clone()).await;
        assert_eq!(show["data"][0]["is_get"], true, "{show}");
        assert_eq!(show["data"][1]["is_get"], false, "{show}");
        let big_locked = call(
            &app,
            "/v2/box/get.json",
            &a_auth,
            json!({"app_id": "default", "user_id": a, "box_name": "big"}),
        )
        .await;
        assert_eq!(big_locked["code"], 410, "{big_locked}");
        assert_eq!(big_locked["msg"], "还需完成2个任务才能领取", "{big_locked}");

        // The external stock (2) runs out with the second opener; later ones get points.
        let mut payouts = Vec::new();
        for name in ["boxb", "boxc", "boxd"] {
            let (uid, auth) = app.login(name).await;
            finish_task(&app, &uid, &format!("{name}-task")).await;
            let got = call(
                &app,
                "/v2/box/get.json",
                &auth,
                json!({"app_id": "default", "user_id": uid, "box_name": "small"}),
            )
            .await;
            assert_eq!(got["status"], true, "{got}");
            payouts.push((uid, got["data"].clone()));
        }
        assert_eq!(payouts[0].1, json!({"type": "alipay_point", "amount": 10}));
        assert_eq!(payouts[1].1, json!({"type": "point", "amount": 3}));
        assert_eq!(payouts[2].1, json!({"type": "point", "amount": 3}));
        assert_eq!(app.balance(&payouts[1].0).await, 1 + 3);
        ledger_facts(&app.database_url, &payouts[1].0)
            .await
            .assert_conserved();
        assert_eq!(app.balance(&a).await, 1);

        // Orders exist exactly for the external payouts.
        let orders = scalar(
            &db,
            "SELECT COUNT(*) FROM fulfilment_orders WHERE source_kind = 'box' AND reward_type = '集分宝' AND amount = 10",
        )
        .await;
        assert_eq!(orders, 2, "{backend:?}");
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM fulfilment_orders").await,
            2,
            "{backend:?}"
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT count FROM ledger_counters WHERE counter_key = 'box:default:small:alipay'"
            )
            .await,
            2
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'box'"
            )
            .await,
            4
        );
        let (_, admin) = app.get("/admin/boxes?app_id=default", &[ADMIN]).await;
        assert_eq!(admin["data"][0]["alipay_paid"], 2, "{admin}");
        assert_eq!(admin["data"][0]["alipay_left"], 0, "{admin}");

        // Two more tasks open the big box.
        finish_task(&app, &a, "a-task-2").await;
        finish_task(&app, &a, "a-task-3").await;
        let big = call(
            &app,
            "/v2/box/get.json",
            &a_auth,
            json!({"app_id": "default", "user_id": a, "box_name": "big"}),
        )
        .await;
        assert_eq!(big["data"], json!({"type": "point", "amount": 20}), "{big}");
        let show = call(&app, "/v2/box/show.json", &a_auth, a_me.clone()).await;
        assert_eq!(show["done_tasks_sum"], 3, "{show}");
        assert_eq!(show["diff"], 0, "{show}");

        // Unknown box, missing name, bad lists: refused, nothing changed.
        let before = fingerprint(&db).await;
        let unknown = call(
            &app,
            "/v2/box/get.json",
            &a_auth,
            json!({"app_id": "default", "user_id": a, "box_name": "nope"}),
        )
        .await;
        assert_eq!(unknown["code"], 404, "{unknown}");
        let missing = call(&app, "/v2/box/get.json", &a_auth, a_me.clone()).await;
        assert_eq!(missing["code"], 400, "{missing}");
        for bad in [
            json!([{"name": "x", "task_sum": 1, "points_unit": 1}, {"name": "x", "task_sum": 2, "points_unit": 1}]),
            json!([{"name": "x", "task_sum": 1}]),
            json!([{"name": "x", "task_sum": -1, "points_unit": 1}]),
            json!([{"task_sum": 1, "points_unit": 1}]),
            json!([{"name": "x", "task_sum": "many", "points_unit": 1}]),
            json!("boxes"),
        ] {
            let (_, body) = app
                .post(
                    "/admin/boxes",
                    &[ADMIN],
                    &json!({"app_id": "default", "boxes": bad}),
                )
                .await;
            assert_eq!(body["code"], 400, "{backend:?}: {bad}: {body}");
        }
        let (_, after) = app.get("/admin/boxes?app_id=default", &[ADMIN]).await;
        assert_eq!(
            after, admin,
            "{backend:?}: a refused list changed the stored one"
        );
        assert_eq!(fingerprint(&db).await, before);
        db.write.close().await;
        db.read.close().await;
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn bad_input_is_refused_in_the_000_dialect_and_changes_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        save_board(&app, &scarce_board(1, 5)).await;
        save_boxes(
            &app,
            &json!([{"name": "small", "task_sum": 0, "points_unit": 1}]),
        )
        .await;
        let (me, auth) = app.login("careful").await;
        let (other, _) = app.login("other").await;
        app.change(&me, 100, Some("careful-seed")).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let before = fingerprint(&db).await;

        let routes = [
            "/v2/lottery/show.json",
            "/v2/lottery/do.json",
            "/v2/box/show.json",
            "/v2/box/get.json",
        ];
        for path in routes {
            let good = json!({"app_id": "default", "user_id": me, "box_name": "small"});
            let bearer = vec![("Authorization", auth.as_str())];
            let mut cases: Vec<Case> = vec![
                (vec![], good.clone(), 401),
                (vec![("Authorization", "Bearer nope")], good.clone(), 401),
                (
                    bearer.clone(),
                    json!({"app_id": "default", "user_id": other, "box_name": "small"}),
                    403,
                ),
                (
                    bearer.clone(),
                    json!({"app_id": "other-app", "user_id": me, "box_name": "small"}),
                    403,
                ),
                (
                    bearer.clone(),
                    json!({"app_id": "default", "box_name": "small"}),
                    400,
                ),
                (
                    bearer.clone(),
                    json!({"app_id": "default", "user_id": {"id": me}, "box_name": "small"}),
                    400,
                ),
                (
                    bearer.clone(),
                    json!({"app_id": ["default"], "user_id": me, "box_name": "small"}),
                    400,
                ),
            ];
            // Only the opening reads box_name.
            if path == "/v2/box/get.json" {
                cases.push((
                    bearer.clone(),
                    json!({"app_id": "default", "user_id": me, "box_name": ["small"]}),
                    400,
                ));
                cases.push((
                    bearer.clone(),
                    json!({"app_id": "default", "user_id": me}),
                    400,
                ));
            }
            for (headers, body, code) in cases {
                let (status, answer) = app.post(path, &headers, &body).await;
                assert_eq!(status, 200, "{path} {body}: {answer}");
                assert_eq!(
                    answer["status"], false,
                    "{backend:?}: {path} {body}: {answer}"
                );
                assert_eq!(answer["code"], code, "{backend:?}: {path} {body}: {answer}");
            }
            // A body that is not JSON.
            let res = app
                .client
                .post(app.url(path))
                .header("Authorization", auth.as_str())
                .header("Content-Type", "application/json")
                .body("{\"user_id\": ")
                .send()
                .await
                .expect("send");
            assert_eq!(res.status().as_u16(), 200);
            let answer: Value = res.json().await.expect("json");
            assert_eq!(answer["code"], 400, "{backend:?}: {path}: {answer}");
        }
        for path in ["/admin/lottery", "/admin/boxes"] {
            let (_, answer) = app.get(path, &[]).await;
            assert_eq!(answer["code"], 401, "{path}: {answer}");
            let (_, answer) = app
                .post(path, &[("X-Admin-Key", "wrong")], &json!({}))
                .await;
            assert_eq!(answer["code"], 401, "{path}: {answer}");
            let (_, answer) = app
                .post(path, &[ADMIN], &json!({"app_id": ["default"]}))
                .await;
            assert_eq!(answer["code"], 400, "{path}: {answer}");
        }
        assert_eq!(
            fingerprint(&db).await,
            before,
            "{backend:?}: a refused request changed state"
        );

        // Every route is in the OpenAPI document.
        let (_, doc) = app.get("/openapi.json", &[]).await;
        for (path, method) in [
            ("/v2/lottery/show.json", "post"),
            ("/v2/lottery/do.json", "post"),
            ("/v2/box/show.json", "post"),
            ("/v2/box/get.json", "post"),
            ("/admin/lottery", "post"),
            ("/admin/lottery", "get"),
            ("/admin/boxes", "post"),
            ("/admin/boxes", "get"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op["summary"].is_string(), "{path} {method} undocumented");
            assert!(
                op["description"].is_string(),
                "{path} {method} undocumented"
            );
        }
        db.write.close().await;
        db.read.close().await;
        app.handle.stop(true).await;
    }
}

/// A logged-in user of a server process: (user id, bearer header).
async fn login_process(client: &reqwest::Client, address: &str, code: &str) -> (String, String) {
    let body: Value = client
        .post(format!("{address}/v2/user/login.json"))
        .json(&json!({"app_id": "default", "auth_code": code}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    (
        body["data"]["user_id"]
            .as_str()
            .expect("user_id")
            .to_string(),
        format!("Bearer {}", body["data"]["token"].as_str().expect("token")),
    )
}

async fn post_process(
    client: &reqwest::Client,
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Value {
    let mut req = client.post(format!("{address}{path}")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json body")
}

#[actix_web::test]
async fn a_killed_server_restarts_with_todays_draws_and_openings() {
    for backend in backends() {
        let (url, _dir) = common::fresh_database(backend).await;
        let client = common::client();
        let mut server = spawn_process(&url, &[]).await;
        let address = server.address.clone();
        let board = scarce_board(1, 2);
        let saved = post_process(&client, &address, "/admin/lottery", &[ADMIN], &board).await;
        assert_eq!(saved["status"], true, "{saved}");
        let boxes = json!({"app_id": "default", "boxes": [
            {"name": "small", "task_sum": 0, "alipay_point_valve": 1, "alipay_point_unit": 7, "points_unit": 2}]});
        let saved = post_process(&client, &address, "/admin/boxes", &[ADMIN], &boxes).await;
        assert_eq!(saved["status"], true, "{saved}");
        let (uid, auth) = login_process(&client, &address, "survivor").await;
        let seed = common::change_at(&client, &address, &uid, 10, Some("seed")).await;
        assert_eq!(seed.expect("seed")["status"], true);
        let me = json!({"app_id": "default", "user_id": uid, "box_name": "small"});
        let bearer = [("Authorization", auth.as_str())];
        for _ in 0..2 {
            let drawn = post_process(&client, &address, "/v2/lottery/do.json", &bearer, &me).await;
            assert_eq!(drawn["status"], true, "{drawn}");
        }
        let opened = post_process(&client, &address, "/v2/box/get.json", &bearer, &me).await;
        assert_eq!(opened["data"]["type"], "alipay_point", "{opened}");

        // kill -9 and start again on the same database.
        server.kill();
        let server = spawn_process(&url, &[]).await;
        let address = server.address.clone();
        let show = post_process(&client, &address, "/v2/lottery/show.json", &bearer, &me).await;
        assert_eq!(show["left_times"], 0, "{backend:?}: {show}");
        let again = post_process(&client, &address, "/v2/lottery/do.json", &bearer, &me).await;
        assert_eq!(again["code"], 410, "{backend:?}: {again}");
        let boxes = post_process(&client, &address, "/v2/box/show.json", &bearer, &me).await;
        assert_eq!(boxes["data"][0]["is_get"], true, "{backend:?}: {boxes}");
        let twice = post_process(&client, &address, "/v2/box/get.json", &bearer, &me).await;
        assert_eq!(twice["code"], 410, "{backend:?}: {twice}");
        // Another user finds the external stock used up: points, not a second order.
        let (other, other_auth) = login_process(&client, &address, "latecomer").await;
        let late = post_process(
            &client,
            &address,
            "/v2/box/get.json",
            &[("Authorization", other_auth.as_str())],
            &json!({"app_id": "default", "user_id": other, "box_name": "small"}),
        )
        .await;
        assert_eq!(
            late["data"],
            json!({"type": "point", "amount": 2}),
            "{backend:?}: {late}"
        );
        drop(server);
    }
}

#[actix_web::test]
async fn two_processes_drawing_on_one_board_never_oversell() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let (url, _dir) = common::fresh_database(Backend::Postgres).await;
    let a = spawn_process(&url, &[]).await;
    let b = spawn_process(&url, &[]).await;
    let client = common::client();
    let saved = post_process(
        &client,
        &a.address,
        "/admin/lottery",
        &[ADMIN],
        &scarce_board(5, 2),
    )
    .await;
    assert_eq!(saved["status"], true, "{saved}");
    let mut users = Vec::new();
    for i in 0..60 {
        let (uid, auth) = login_process(&client, &a.address, &format!("twin{i}")).await;
        let seed = common::change_at(&client, &a.address, &uid, 50, Some(&format!("s{i}"))).await;
        assert_eq!(seed.expect("seed")["status"], true);
        users.push((uid, auth));
    }

    // Each user draws three times on each process at once: 360 draws, both actors believing
    // they own the whole stock and the whole allowance.
    let draws = join_all(users.iter().flat_map(|(uid, auth)| {
        [a.address.clone(), b.address.clone()]
            .into_iter()
            .flat_map(move |address| {
                (0..3).map(move |_| (address.clone(), uid.clone(), auth.clone()))
            })
            .map(|(address, uid, auth)| {
                let client = client.clone();
                async move {
                    post_process(
                        &client,
                        &address,
                        "/v2/lottery/do.json",
                        &[("Authorization", auth.as_str())],
                        &json!({"app_id": "default", "user_id": uid}),
                    )
                    .await
                }
            })
    }))
    .await;
    for body in &draws {
        let code = body["code"].as_i64().unwrap_or_default();
        assert!([200, 409, 410, 429].contains(&code), "{body}");
    }

    // The database held both invariants: the stock and the daily limit.
    let db = Db::connect(&url, 2).await.expect("connect");
    let granted = scalar(
        &db,
        "SELECT COUNT(*) FROM fulfilment_orders WHERE source_kind = 'lottery'",
    )
    .await;
    assert!(granted <= 20, "oversold: {granted}");
    assert_eq!(
        scalar(
            &db,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ledger_counters WHERE counter_key LIKE 'lottery:default:prize:%'"
        )
        .await,
        granted
    );
    let most = scalar(
        &db,
        "SELECT CAST(MAX(n) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM ledger_entries \
         WHERE kind = 'lottery' GROUP BY user_id) d",
    )
    .await;
    assert!(most <= 2, "a user drew {most} times");
    for (uid, _) in users.iter().take(5) {
        ledger_facts(&url, uid).await.assert_conserved();
    }
}

#[actix_web::test]
async fn a_prizes_stock_follows_its_label_through_reorders_and_renames() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let prize = |label: &str, rate: f64| json!({"level": label, "name": label, "reward_type": "积分", "sum": 2, "amount": 1, "rate": rate});
        let board = |prizes: Value| json!({"app_id": "default", "ticket": 0, "daily_limit": 5, "prizes": prizes});
        save_board(
            &app,
            &board(json!([prize("一等奖", 1.0), prize("二等奖", 0.0)])),
        )
        .await;
        let (user, auth) = app.login("labels").await;
        let me = json!({"app_id": "default", "user_id": user});
        for _ in 0..2 {
            let drawn = call(&app, "/v2/lottery/do.json", &auth, me.clone()).await;
            assert_eq!(drawn["data"]["level"], "一等奖", "{backend:?}: {drawn}");
        }
        // Reordered, with a new label in front: 一等奖 keeps the two units it granted.
        let saved = save_board(
            &app,
            &board(json!([
                prize("特等奖", 0.0),
                prize("一等奖", 1.0),
                prize("二等奖", 0.0)
            ])),
        )
        .await;
        let granted: Vec<(Value, Value)> = saved["data"]["prizes"]
            .as_array()
            .expect("prizes")
            .iter()
            .map(|p| (p["level"].clone(), p["granted"].clone()))
            .collect();
        assert_eq!(
            granted,
            vec![
                (json!("特等奖"), json!(0)),
                (json!("一等奖"), json!(2)),
                (json!("二等奖"), json!(0))
            ],
            "{backend:?}"
        );
        let drawn = call(&app, "/v2/lottery/do.json", &auth, me.clone()).await;
        assert_eq!(
            drawn["is_reward"], false,
            "{backend:?}: its stock is used up: {drawn}"
        );
        // Removed and added again, a label finds its counter again.
        save_board(&app, &board(json!([prize("二等奖", 1.0)]))).await;
        let saved = save_board(
            &app,
            &board(json!([prize("二等奖", 0.0), prize("一等奖", 1.0)])),
        )
        .await;
        assert_eq!(
            saved["data"]["prizes"][1]["granted"], 2,
            "{backend:?}: {saved}"
        );
        app.handle.stop(true).await;
    }
}
