//! Tasks over HTTP against the real server, on SQLite and Postgres: 000 finishes paid at most
//! `repeat` times a day under concurrency and counted by the blind boxes, list flags and
//! `is_done`, 001 rewards claimed once per cycle under concurrency, `setUserTaskStatus`
//! validation, bad input refused without change, and the cycle boundaries in business time.

mod common;

use std::sync::Arc;

use common::{backends, ledger_facts, spawn_app, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_engine::clock::BizClock;
use points_engine::db::Db;
use points_engine::features::tasks::{cycle_key, Cycle, CycleUnit};
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("X-Admin-Key", ADMIN_KEY);

/// A bad request: its headers, its body and the code it must get.
type Case<'a> = (Vec<(&'a str, &'a str)>, Value, i64);
/// A bad request to a route: its path, headers, body and the code it must get.
type RouteCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value, i64);

/// One number from the database.
async fn scalar(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_optional(&db.read)
        .await
        .expect(sql)
        .unwrap_or(0)
}

/// A fingerprint of everything a refused request must leave alone.
async fn fingerprint(db: &Db) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM ledger_entries",
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ledger_counters",
        "SELECT COUNT(*) FROM fulfilment_orders",
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM balances",
        "SELECT COUNT(*) FROM gift_tasks",
        "SELECT CAST(COALESCE(SUM(updated_at), 0) AS BIGINT) FROM gift_tasks",
        "SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM gift_task_clicks",
        "SELECT COUNT(*) FROM center_tasks",
        "SELECT CAST(COALESCE(SUM(updated_at), 0) AS BIGINT) FROM center_tasks",
        "SELECT COUNT(*) FROM center_task_progress",
        "SELECT CAST(COALESCE(SUM(updated_at), 0) AS BIGINT) FROM center_task_progress",
    ] {
        out.push(scalar(db, sql).await);
    }
    out
}

/// A call with a bearer token (`auth`); answers the body. Every dialect answers HTTP 200.
async fn call(app: &TestApp, path: &str, auth: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[("Authorization", auth)], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// An admin call; answers the body.
async fn admin(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, body) = app.post(path, &[ADMIN], &body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Creates a 000 task; answers its id.
async fn gift_task(app: &TestApp, task: Value) -> i64 {
    let body = admin(app, "/admin/tasks", task).await;
    assert_eq!(body["status"], true, "{body}");
    body["data"]["id"].as_i64().expect("task id")
}

/// Creates or replaces a 001 task.
async fn center_task(app: &TestApp, task: Value) -> Value {
    let body = admin(app, "/admin/center-tasks", task).await;
    assert_eq!(body["status"], true, "{body}");
    body["data"].clone()
}

fn ids(list: &Value) -> Vec<i64> {
    list["data"]
        .as_array()
        .expect("task list")
        .iter()
        .map(|t| t["id"].as_i64().expect("id"))
        .collect()
}

#[actix_web::test]
async fn gift_finish_pays_at_most_repeat_times_and_lists_follow_is_done() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let thrice = gift_task(
            &app,
            json!({"name": "浏览商品", "icon": "https://x/i.png", "flag": "BROWSE",
                   "reward_type": "积分", "amount": 5, "btn_desc": ["去完成", "已完成"],
                   "target_type": "MINI", "target": "/pages/shop", "repeat": 3, "sort": 2}),
        )
        .await;
        let once = gift_task(
            &app,
            json!({"name": "关注生活号", "reward_type": "积分", "amount": 7, "sort": 1}),
        )
        .await;
        let alipay = gift_task(
            &app,
            json!({"name": "领集分宝", "reward_type": "集分宝", "amount": 9, "sort": 3}),
        )
        .await;
        let (uid, auth) = app.login("tasker").await;
        let me = |extra: Value| {
            let mut body = json!({"app_id": "default", "user_id": uid});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            body
        };

        // Nothing done yet: index in sort order, nothing finished.
        let list = call(&app, "/v2/task/list.json", &auth, me(json!({}))).await;
        assert_eq!(ids(&list), vec![once, thrice, alipay], "{list}");
        let item = &list["data"][1];
        assert_eq!(item["btn_desc"], json!(["去完成", "已完成"]), "{item}");
        assert_eq!(item["repeat"], 3);
        assert_eq!(item["status"], "10");
        assert_eq!(item["is_done"], false);
        assert_eq!(item["reward_type"], "积分");
        assert!(item["create_time"].as_str().expect("time").len() == 19);
        let finished = call(
            &app,
            "/v2/task/list.json",
            &auth,
            me(json!({"flag": "finished"})),
        )
        .await;
        assert_eq!(ids(&finished), Vec::<i64>::new());

        // 20 finishes at once of a task with repeat 3: exactly 3 paid.
        let finishes = join_all((0..20).map(|_| {
            let app = Arc::clone(&app);
            let (auth, body) = (auth.clone(), me(json!({"id": thrice})));
            async move { call(&app, "/v2/task/finish.json", &auth, body).await }
        }))
        .await;
        let paid = finishes.iter().filter(|b| b["status"] == true).count();
        assert_eq!(paid, 3, "{backend:?}: {finishes:?}");
        for refused in finishes.iter().filter(|b| b["status"] != true) {
            assert_eq!(refused["code"], 410, "{refused}");
            assert_eq!(refused["msg"], "今日该任务已完成", "{refused}");
        }
        assert_eq!(app.balance(&uid).await, 15);
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'task' AND amount = 5"
            )
            .await,
            3
        );

        // A clicked, non-points task: a zero-point finish with a fulfilment order.
        let click = call(
            &app,
            "/v2/task/click.json",
            &auth,
            me(json!({"id": alipay})),
        )
        .await;
        assert_eq!(
            click,
            json!({"code": 200, "msg": "ok", "status": true, "data": []})
        );
        let got = call(
            &app,
            "/v2/task/finish.json",
            &auth,
            me(json!({"id": alipay})),
        )
        .await;
        assert_eq!(got["status"], true, "{got}");
        assert_eq!(app.balance(&uid).await, 15);
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM fulfilment_orders WHERE reward_type = '集分宝' AND amount = 9"
            )
            .await,
            1
        );
        let again = call(
            &app,
            "/v2/task/finish.json",
            &auth,
            me(json!({"id": alipay})),
        )
        .await;
        assert_eq!(again["code"], 410, "{again}");

        // Flags: finished holds the tasks done `repeat` times, unfinished the rest.
        let finished = call(
            &app,
            "/v2/task/list.json",
            &auth,
            me(json!({"flag": "finished"})),
        )
        .await;
        assert_eq!(ids(&finished), vec![thrice, alipay], "{finished}");
        assert!(finished["data"]
            .as_array()
            .expect("list")
            .iter()
            .all(|t| t["is_done"] == true));
        let unfinished = call(
            &app,
            "/v2/task/list.json",
            &auth,
            me(json!({"flag": "unfinished"})),
        )
        .await;
        assert_eq!(ids(&unfinished), vec![once], "{unfinished}");
        assert_eq!(unfinished["data"][0]["is_done"], false);

        // Another user's day is their own.
        let (other, other_auth) = app.login("tasker2").await;
        let list = call(
            &app,
            "/v2/task/list.json",
            &other_auth,
            json!({"app_id": "default", "user_id": other, "flag": "finished"}),
        )
        .await;
        assert_eq!(ids(&list), Vec::<i64>::new());

        // Off shelf: gone from the list, cannot be finished.
        let off = admin(&app, "/admin/tasks", json!({"id": once, "status": "20"})).await;
        assert_eq!(off["data"]["status"], "20", "{off}");
        assert_eq!(off["data"]["name"], "关注生活号", "{off}");
        let list = call(&app, "/v2/task/list.json", &auth, me(json!({}))).await;
        assert_eq!(ids(&list), vec![thrice, alipay]);
        let before = fingerprint(&db).await;
        let closed = call(&app, "/v2/task/finish.json", &auth, me(json!({"id": once}))).await;
        assert_eq!(closed["code"], 404, "{closed}");
        assert_eq!(fingerprint(&db).await, before);

        // The admin list shows every task with its clicks.
        let (_, listed) = app.get("/admin/tasks?app_id=default", &[ADMIN]).await;
        let rows = listed["data"].as_array().expect("admin list");
        assert_eq!(rows.len(), 3, "{listed}");
        let clicked = rows.iter().find(|t| t["id"] == alipay).expect("alipay");
        assert_eq!(clicked["clicks"], 1, "{listed}");

        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn blind_boxes_count_finished_tasks() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let body = admin(
            &app,
            "/admin/boxes",
            json!({"app_id": "default", "boxes": [{"name": "two", "task_sum": 2, "points_unit": 4}]}),
        )
        .await;
        assert_eq!(body["status"], true, "{body}");
        let task = gift_task(
            &app,
            json!({"name": "签到", "reward_type": "积分", "amount": 1, "repeat": 2}),
        )
        .await;
        let (uid, auth) = app.login("boxer").await;
        let me = json!({"app_id": "default", "user_id": uid});
        let finish = json!({"app_id": "default", "user_id": uid, "id": task});
        for _ in 0..2 {
            let done = call(&app, "/v2/task/finish.json", &auth, finish.clone()).await;
            assert_eq!(done["status"], true, "{done}");
        }
        let show = call(&app, "/v2/box/show.json", &auth, me.clone()).await;
        assert_eq!(show["done_tasks_sum"], 2, "{backend:?}: {show}");
        assert_eq!(show["diff"], 0, "{show}");
        let opened = call(
            &app,
            "/v2/box/get.json",
            &auth,
            json!({"app_id": "default", "user_id": uid, "box_name": "two"}),
        )
        .await;
        assert_eq!(
            opened["data"],
            json!({"type": "point", "amount": 4}),
            "{opened}"
        );
        assert_eq!(app.balance(&uid).await, 6);
        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn center_reward_is_claimed_once_per_cycle_under_concurrency() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let saved = center_task(
            &app,
            json!({"taskId": "recharge", "type": "permanent", "title": "累计充值", "desc": "充值满300",
                   "btnTitle": "去充值", "btnType": "route", "path": "/pages/pay", "faceValue": 30,
                   "total": 300}),
        )
        .await;
        assert_eq!(saved["taskId"], "recharge");
        assert_eq!(saved["type"], "permanent");
        let cyclic = center_task(
            &app,
            json!({"taskId": "daily-share", "type": "cyclic", "cycle": {"type": "day", "day": 1},
                   "title": "每日分享", "btnType": "qrCode", "imgUrl": "https://x/q.png",
                   "faceValue": 5, "total": 1}),
        )
        .await;
        assert_eq!(
            cyclic["cycle"],
            json!({"type": "day", "day": 1}),
            "{cyclic}"
        );
        let (uid, auth) = app.login("claimer").await;

        // The seed's op: `{permanentTask, cyclicTask}` with the caller's progress.
        let list = call(&app, "/center/api/getTasksList", &auth, json!({})).await;
        assert_eq!(list["code"], 0, "{list}");
        let growth = &list["result"]["permanentTask"][0];
        assert_eq!(growth["taskId"], "recharge", "{list}");
        assert_eq!(growth["faceValue"], 30);
        assert_eq!(growth["total"], 300);
        assert_eq!(growth["currentTotal"], 0);
        assert_eq!(growth["status"], 2);
        let daily = &list["result"]["cyclicTask"][0];
        assert_eq!(daily["taskId"], "daily-share", "{list}");
        assert_eq!(daily["cycle"], json!({"type": "day", "day": 1}));
        assert_eq!(daily["cycleStart"], daily["cycleEnd"], "{daily}");

        // The client's op, read as its page reads it: loop over the groups, show `title`, loop
        // over `item`; an unfinished task's button shows `taskInfo.btnTitle`, a `progress` task
        // "已完成<completeNum>/<total>", a `standard` one its `desc`.
        let groups = call(&app, "/center/api/getTaskList", &auth, json!({})).await;
        let groups = groups["result"]
            .as_array()
            .expect("a list of groups")
            .clone();
        let titles: Vec<&str> = groups
            .iter()
            .map(|g| g["title"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(titles, ["循环任务", "成长任务"], "{groups:?}");
        let growth = &groups[1]["item"][0];
        assert_eq!(growth["taskId"], "recharge", "{groups:?}");
        assert_eq!(growth["taskModel"], "progress");
        assert_eq!(
            format!("已完成{}/{}", growth["completeNum"], growth["total"]),
            "已完成0/300"
        );
        assert_eq!(
            growth["taskInfo"],
            json!({"btnTitle": "去充值", "btnType": "route", "path": "/pages/pay", "imgUrl": ""})
        );
        let daily = &groups[0]["item"][0];
        assert_eq!(daily["taskId"], "daily-share");
        assert_eq!(daily["taskModel"], "standard");
        assert_eq!(daily["taskInfo"]["btnType"], "qrCode");
        assert_eq!(daily["taskInfo"]["imgUrl"], "https://x/q.png");
        // Without tasks on shelf: no groups (the page shows "暂无新任务").
        let (_, empty_app_auth) = app.login("no-tasks").await;
        center_task(
            &app,
            json!({"taskId": "recharge", "type": "permanent", "title": "累计充值",
                                 "faceValue": 30, "total": 300, "status": "20"}),
        )
        .await;
        center_task(
            &app,
            json!({"taskId": "daily-share", "type": "cyclic",
                                 "cycle": {"type": "day", "day": 1}, "title": "每日分享",
                                 "faceValue": 5, "total": 1, "status": "20"}),
        )
        .await;
        let none = call(&app, "/center/api/getTaskList", &empty_app_auth, json!({})).await;
        assert_eq!(none["result"], json!([]), "{none}");
        // Back on shelf, saved through the server op with the integration guide's type names.
        for (id, kind) in [("recharge", "permanentTask"), ("daily-share", "cyclicTask")] {
            let mut task = json!({"taskId": id, "type": kind, "title": "t", "faceValue": 30,
                                  "total": if id == "recharge" { 300 } else { 1 },
                                  "btnTitle": "去充值", "btnType": "route", "path": "/pages/pay"});
            if id == "daily-share" {
                task["faceValue"] = json!(5);
                task["cycle"] = json!({"type": "day", "day": 1});
            }
            let (_, saved) = app.post("/center/admin/saveTask", &[ADMIN], &task).await;
            assert_eq!(saved["code"], 0, "{saved}");
            let expected = if kind == "permanentTask" {
                "permanent"
            } else {
                "cyclic"
            };
            assert_eq!(saved["result"]["type"], expected, "{saved}");
        }

        // Not finished: nothing to claim.
        let early = call(
            &app,
            "/center/api/receiveTaskAward",
            &auth,
            json!({"taskId": "recharge"}),
        )
        .await;
        assert_eq!(early["code"], 40910, "{early}");
        assert_eq!(early["msg"], "任务尚未完成");

        let set = |status: i64, n: i64| json!({"taskId": "recharge", "openId": uid, "completeNum": n, "status": status});
        // `setTaskStatus` is the integration guide's name of `setUserTaskStatus`.
        let (_, progress) = app
            .post("/center/admin/setTaskStatus", &[ADMIN], &set(2, 120))
            .await;
        assert_eq!(progress["code"], 0, "{progress}");
        let list = call(&app, "/center/api/getTasksList", &auth, json!({})).await;
        assert_eq!(list["result"]["permanentTask"][0]["currentTotal"], 120);
        let groups = call(&app, "/center/api/getTaskList", &auth, json!({})).await;
        assert_eq!(
            groups["result"][1]["item"][0]["completeNum"], 120,
            "{groups}"
        );
        let (_, progress) = app
            .post("/center/admin/setUserTaskStatus", &[ADMIN], &set(1, 300))
            .await;
        assert_eq!(progress["code"], 0, "{progress}");

        // 20 claims at once: one reward.
        let claims = join_all((0..20).map(|_| {
            let app = Arc::clone(&app);
            let auth = auth.clone();
            async move {
                call(
                    &app,
                    "/center/api/receiveTaskAward",
                    &auth,
                    json!({"taskId": "recharge"}),
                )
                .await
            }
        }))
        .await;
        let paid: Vec<&Value> = claims.iter().filter(|b| b["code"] == 0).collect();
        assert_eq!(paid.len(), 1, "{backend:?}: {claims:?}");
        assert_eq!(paid[0]["result"], json!({"points": 30}), "{claims:?}");
        for refused in claims.iter().filter(|b| b["code"] != 0) {
            assert_eq!(refused["code"], 40910, "{refused}");
        }
        assert_eq!(app.balance(&uid).await, 30);

        // Reported complete again in the same (permanent) cycle: still paid once.
        let (_, progress) = app
            .post("/center/admin/setUserTaskStatus", &[ADMIN], &set(1, 300))
            .await;
        assert_eq!(progress["code"], 0, "{progress}");
        let again = call(
            &app,
            "/center/api/receiveTaskAward",
            &auth,
            json!({"taskId": "recharge"}),
        )
        .await;
        assert_eq!(again["code"], 40910, "{again}");
        let list = call(&app, "/center/api/getTaskList", &auth, json!({})).await;
        assert_eq!(list["result"][1]["item"][0]["status"], 3, "{list}");

        // A cyclic task's claim: its own key, its own cycle.
        let (_, progress) = app
            .post(
                "/center/admin/setUserTaskStatus",
                &[ADMIN],
                &json!({"taskId": "daily-share", "openId": uid, "completeNum": 1, "status": 1}),
            )
            .await;
        assert_eq!(progress["code"], 0, "{progress}");
        let claim = call(
            &app,
            "/center/api/receiveTaskAward",
            &auth,
            json!({"taskId": "daily-share"}),
        )
        .await;
        assert_eq!(claim["result"], json!({"points": 35}), "{claim}");
        let entries = scalar(
            &Db::connect(&app.database_url, 1).await.expect("connect"),
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'task' AND idem_key LIKE 'ctask:default:%'",
        )
        .await;
        assert_eq!(entries, 2);

        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn set_user_task_status_is_validated_against_total() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        center_task(
            &app,
            json!({"taskId": "t1", "type": "cyclic", "cycle": {"type": "week", "day": 1},
                   "title": "每周邀请", "faceValue": 10, "total": 5}),
        )
        .await;
        let (uid, _) = app.login("progress").await;
        let path = "/center/admin/setUserTaskStatus";
        let base =
            |n: i64, s: i64| json!({"taskId": "t1", "openId": uid, "completeNum": n, "status": s});
        let before = fingerprint(&db).await;
        let cases: Vec<Case> = vec![
            (vec![ADMIN], base(6, 2), 40000),
            (vec![ADMIN], base(4, 1), 40000),
            (vec![ADMIN], base(4, 3), 40000),
            (vec![ADMIN], base(-1, 2), 40000),
            (vec![ADMIN], base(5, 4), 40000),
            (vec![ADMIN], base(5, 0), 40000),
            (
                vec![ADMIN],
                json!({"openId": uid, "completeNum": 1, "status": 2}),
                40000,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "t1", "completeNum": 1, "status": 2}),
                40000,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "t1", "openId": uid, "status": 2}),
                40000,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "t1", "openId": uid, "completeNum": 1}),
                40000,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "t1", "openId": uid, "completeNum": "x", "status": 2}),
                40000,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "nope", "openId": uid, "completeNum": 1, "status": 2}),
                40400,
            ),
            (
                vec![ADMIN],
                json!({"taskId": "t1", "openId": "ghost", "completeNum": 1, "status": 2}),
                40400,
            ),
            (vec![], base(5, 1), 40100),
            (vec![("X-Admin-Key", "wrong")], base(5, 1), 40100),
        ];
        for (headers, body, code) in cases {
            let (status, answer) = app.post(path, &headers, &body).await;
            assert_eq!(status, 200, "{body}: {answer}");
            assert_eq!(answer["code"], code, "{backend:?} {body}: {answer}");
        }
        assert_eq!(fingerprint(&db).await, before);

        // Accepted: unfinished below total; to-claim and done only at total.
        for (n, s) in [(0, 2), (4, 2), (5, 2), (5, 1), (5, 3)] {
            let (_, answer) = app.post(path, &[ADMIN], &base(n, s)).await;
            assert_eq!(answer["code"], 0, "{n} {s}: {answer}");
        }
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM center_task_progress").await,
            1,
            "one row per user, task and cycle"
        );
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn bad_input_is_refused_and_changes_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        let task = gift_task(
            &app,
            json!({"name": "任务", "reward_type": "积分", "amount": 1}),
        )
        .await;
        center_task(
            &app,
            json!({"taskId": "c1", "type": "permanent", "title": "成长", "faceValue": 3}),
        )
        .await;
        let (uid, auth) = app.login("bad").await;
        let (other, _) = app.login("bad2").await;
        let before = fingerprint(&db).await;

        // 000 user routes.
        let bearer = ("Authorization", auth.as_str());
        let user_cases: Vec<RouteCase> = vec![
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"user_id": uid}),
                400,
            ),
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"user_id": uid, "id": "abc"}),
                400,
            ),
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"user_id": uid, "id": 999}),
                404,
            ),
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"user_id": other, "id": task}),
                403,
            ),
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"id": task}),
                400,
            ),
            (
                "/v2/task/finish.json",
                vec![],
                json!({"user_id": uid, "id": task}),
                401,
            ),
            (
                "/v2/task/finish.json",
                vec![bearer],
                json!({"user_id": uid, "app_id": "x", "id": task}),
                403,
            ),
            (
                "/v2/task/click.json",
                vec![bearer],
                json!({"user_id": uid, "id": 999}),
                404,
            ),
            (
                "/v2/task/click.json",
                vec![bearer],
                json!({"user_id": uid}),
                400,
            ),
            (
                "/v2/task/click.json",
                vec![],
                json!({"user_id": uid, "id": task}),
                401,
            ),
            (
                "/v2/task/list.json",
                vec![bearer],
                json!({"user_id": uid, "flag": "all"}),
                400,
            ),
            (
                "/v2/task/list.json",
                vec![bearer],
                json!({"user_id": other}),
                403,
            ),
            ("/v2/task/list.json", vec![], json!({"user_id": uid}), 401),
        ];
        for (path, headers, body, code) in user_cases {
            let (status, answer) = app.post(path, &headers, &body).await;
            assert_eq!(status, 200, "{path} {body}: {answer}");
            assert_eq!(answer["status"], false, "{path} {body}: {answer}");
            assert_eq!(answer["code"], code, "{backend:?} {path} {body}: {answer}");
        }

        // 000 admin saves.
        let admin_cases: Vec<(Value, i64)> = vec![
            (json!({"reward_type": "积分", "amount": 1}), 400),
            (json!({"name": "x", "amount": 1}), 400),
            (json!({"name": "x", "reward_type": "积分"}), 400),
            (
                json!({"name": "x", "reward_type": "金币", "amount": 1}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": -1}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "集分宝", "amount": 0}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 2_000_000_000i64}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "repeat": 0}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "repeat": 101}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "status": "40"}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "btn_desc": [1]}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "btn_desc": "go"}),
                400,
            ),
            (
                json!({"name": "x".repeat(65), "reward_type": "积分", "amount": 1}),
                400,
            ),
            (
                json!({"name": "x", "reward_type": "积分", "amount": 1, "app_id": "nope"}),
                404,
            ),
            (json!({"id": 999, "name": "x"}), 404),
            (json!({"id": task, "amount": -5}), 400),
            (json!({"id": task, "repeat": 0}), 400),
        ];
        for (body, code) in admin_cases {
            let (status, answer) = app.post("/admin/tasks", &[ADMIN], &body).await;
            assert_eq!(status, 200, "{body}: {answer}");
            assert_eq!(answer["code"], code, "{backend:?} {body}: {answer}");
        }
        let (_, answer) = app
            .post(
                "/admin/tasks",
                &[],
                &json!({"name": "x", "reward_type": "积分", "amount": 1}),
            )
            .await;
        assert_eq!(answer["code"], 401, "{answer}");

        // 001 task saves, in both envelopes.
        let center_cases: Vec<Value> = vec![
            json!({"title": "x", "faceValue": 1}),
            json!({"type": "weekly", "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "cycle": {"type": "year"}, "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "cycle": {"type": "week", "day": 0}, "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "cycle": {"type": "week", "day": 8}, "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "cycle": {"type": "month", "day": 32}, "title": "x", "faceValue": 1}),
            json!({"type": "cyclic", "cycle": "day", "title": "x", "faceValue": 1}),
            json!({"type": "permanent", "faceValue": 1}),
            json!({"type": "permanent", "title": "x"}),
            json!({"type": "permanent", "title": "x", "faceValue": 0}),
            json!({"type": "permanent", "title": "x", "faceValue": 1, "total": 0}),
            json!({"type": "permanent", "title": "x", "faceValue": 1, "btnType": "link"}),
            json!({"type": "permanent", "title": "x", "faceValue": 1, "taskId": "a:b"}),
            json!({"type": "permanent", "title": "x", "faceValue": 1, "status": "1"}),
        ];
        for body in &center_cases {
            let (_, answer) = app.post("/admin/center-tasks", &[ADMIN], body).await;
            assert_eq!(answer["code"], 400, "{backend:?} {body}: {answer}");
            let (_, answer) = app.post("/center/admin/saveTask", &[ADMIN], body).await;
            assert_eq!(answer["code"], 40000, "{backend:?} {body}: {answer}");
        }
        let good = json!({"type": "permanent", "title": "x", "faceValue": 1});
        let (_, answer) = app.post("/center/admin/saveTask", &[], &good).await;
        assert_eq!(answer["code"], 40100, "{answer}");

        // 001 user ops.
        let claim_cases: Vec<Case> = vec![
            (vec![bearer], json!({}), 40000),
            (vec![bearer], json!({"taskId": "nope"}), 40400),
            (vec![bearer], json!({"taskId": "c1"}), 40910),
            (vec![], json!({"taskId": "c1"}), 40100),
        ];
        for (headers, body, code) in claim_cases {
            let (status, answer) = app
                .post("/center/api/receiveTaskAward", &headers, &body)
                .await;
            assert_eq!(status, 200, "{body}: {answer}");
            assert_eq!(answer["code"], code, "{backend:?} {body}: {answer}");
        }
        let (_, answer) = app.get("/center/api/getTasksList", &[]).await;
        assert_eq!(answer["code"], 40100, "{answer}");
        let (_, answer) = app
            .post(
                "/center/admin/getTaskById",
                &[ADMIN],
                &json!({"id": "nope"}),
            )
            .await;
        assert_eq!(answer["code"], 40400, "{answer}");
        let (_, answer) = app
            .post("/center/admin/getTaskById", &[ADMIN], &json!({}))
            .await;
        assert_eq!(answer["code"], 40000, "{answer}");
        let (_, answer) = app
            .post("/center/admin/getTaskById", &[ADMIN], &json!({"id": "c1"}))
            .await;
        assert_eq!(answer["result"]["title"], "成长", "{answer}");

        assert_eq!(fingerprint(&db).await, before, "{backend:?}");
        ledger_facts(&app.database_url, &uid)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[test]
fn cycles_refresh_at_midnight_business_time_on_their_day() {
    let clock = BizClock::new(chrono_tz::Asia::Shanghai);
    let at = |t: &str| clock.parse(t).expect("time");
    let cycle = |unit, day| Some(Cycle::new(unit, day).expect("cycle"));
    let (day, week, month) = (
        cycle(CycleUnit::Day, 1),
        cycle(CycleUnit::Week, 1),
        cycle(CycleUnit::Month, 1),
    );

    // 2026-03-02 is a Monday, and the day after the last day of February.
    let sunday_night = at("2026-03-01 23:59:59");
    let monday = at("2026-03-02 00:00:00");
    assert_eq!(cycle_key(&clock, day, sunday_night), "2026-03-01");
    assert_eq!(cycle_key(&clock, day, monday), "2026-03-02");
    assert_eq!(cycle_key(&clock, week, sunday_night), "2026-02-23");
    assert_eq!(cycle_key(&clock, week, monday), "2026-03-02");
    assert_eq!(
        cycle_key(&clock, week, at("2026-03-08 23:59:59")),
        "2026-03-02"
    );
    assert_eq!(
        cycle_key(&clock, month, at("2026-02-28 23:59:59")),
        "2026-02-01"
    );
    assert_eq!(
        cycle_key(&clock, month, at("2026-03-01 00:00:00")),
        "2026-03-01"
    );
    assert_eq!(cycle_key(&clock, None, monday), "permanent");

    // Midnight in Shanghai is 16:00 UTC the day before: the UTC date does not decide.
    assert_eq!(monday, 1_772_380_800_000);
    assert_eq!(cycle_key(&clock, day, monday - 1), "2026-03-01");

    // `day` is the refresh day: a weekly task with day 3 runs Wednesday to Tuesday.
    let wednesdays = cycle(CycleUnit::Week, 3);
    assert_eq!(
        cycle_key(&clock, wednesdays, at("2026-03-03 23:59:59")),
        "2026-02-25"
    );
    assert_eq!(
        cycle_key(&clock, wednesdays, at("2026-03-04 00:00:00")),
        "2026-03-04"
    );
    assert_eq!(
        cycle_key(&clock, wednesdays, at("2026-03-10 12:00:00")),
        "2026-03-04"
    );
    let sundays = cycle(CycleUnit::Week, 7);
    assert_eq!(cycle_key(&clock, sundays, sunday_night), "2026-03-01");
    assert_eq!(cycle_key(&clock, sundays, monday), "2026-03-01");
    // A monthly task with day 15 runs from the 15th to the 14th.
    let fifteenths = cycle(CycleUnit::Month, 15);
    assert_eq!(
        cycle_key(&clock, fifteenths, at("2026-03-14 23:59:59")),
        "2026-02-15"
    );
    assert_eq!(
        cycle_key(&clock, fifteenths, at("2026-03-15 00:00:00")),
        "2026-03-15"
    );
    assert_eq!(
        cycle_key(&clock, fifteenths, at("2026-01-10 08:00:00")),
        "2025-12-15"
    );
    // Day 31 is clamped to each month's last day.
    let month_ends = cycle(CycleUnit::Month, 31);
    assert_eq!(
        cycle_key(&clock, month_ends, at("2026-02-28 00:00:00")),
        "2026-02-28"
    );
    assert_eq!(
        cycle_key(&clock, month_ends, at("2026-03-30 23:00:00")),
        "2026-02-28"
    );
    assert_eq!(
        cycle_key(&clock, month_ends, at("2026-03-31 00:00:00")),
        "2026-03-31"
    );
    assert_eq!(
        cycle_key(&clock, month_ends, at("2024-02-29 10:00:00")),
        "2024-02-29"
    );
    // A daily task refreshes every day whatever `day` says.
    assert_eq!(Cycle::new(CycleUnit::Day, 9), Cycle::new(CycleUnit::Day, 1));

    // Next starts: a week later; the next month's refresh day.
    let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let c = Cycle::new(CycleUnit::Month, 31).expect("cycle");
    assert_eq!(c.next_start(date(2026, 1, 31)), date(2026, 2, 28));
    assert_eq!(c.next_start(date(2026, 2, 28)), date(2026, 3, 31));
    assert_eq!(c.next_start(date(2026, 12, 31)), date(2027, 1, 31));
    let c = Cycle::new(CycleUnit::Week, 3).expect("cycle");
    assert_eq!(c.next_start(date(2026, 3, 4)), date(2026, 3, 11));

    // Out of range for the unit: refused.
    for (unit, bad) in [
        (CycleUnit::Week, 0),
        (CycleUnit::Week, 8),
        (CycleUnit::Month, 32),
    ] {
        assert!(Cycle::new(unit, bad).is_err(), "{bad}");
    }
}

#[actix_web::test]
async fn a_cyclic_tasks_day_is_the_day_it_refreshes() {
    use chrono::Datelike;
    for backend in backends() {
        let app = spawn_app(backend).await;
        for (id, unit, day) in [("wed", "week", 3), ("fifteenth", "month", 15)] {
            center_task(
                &app,
                json!({"taskId": id, "type": "cyclicTask", "cycle": {"type": unit, "day": day},
                       "title": id, "faceValue": 1, "total": 1}),
            )
            .await;
        }
        let (_, auth) = app.login("cycles").await;
        let list = call(&app, "/center/api/getTasksList", &auth, json!({})).await;
        let tasks = list["result"]["cyclicTask"]
            .as_array()
            .expect("cyclic")
            .clone();
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        let today = clock.date(points_engine::clock::now_ms());
        let parse = |v: &Value| {
            chrono::NaiveDate::parse_from_str(v.as_str().unwrap_or_default(), "%Y-%m-%d")
                .expect("a date")
        };
        for t in &tasks {
            let (start, end) = (parse(&t["cycleStart"]), parse(&t["cycleEnd"]));
            assert!(start <= today && today <= end, "{backend:?}: {t}");
            match t["taskId"].as_str() {
                Some("wed") => {
                    assert_eq!(start.weekday(), chrono::Weekday::Wed, "{t}");
                    assert_eq!((end - start).num_days(), 6, "{t}");
                }
                Some("fifteenth") => {
                    assert_eq!(start.day(), 15, "{t}");
                    assert_eq!(end.day(), 14, "{t}");
                }
                other => panic!("unexpected task {other:?}"),
            }
            assert_eq!(t["cycle"]["day"], if t["taskId"] == "wed" { 3 } else { 15 });
        }
        assert_eq!(tasks.len(), 2, "{list}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn cycles_saved_as_lengths_are_brought_into_the_refresh_days_range() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let db = Db::connect(&app.database_url, 2).await.expect("connect");
        // Rows as a release that read `day` as a length could have stored them.
        for (id, unit, days) in [
            ("d", "day", 3),
            ("w", "week", 20),
            ("m", "month", 40),
            ("w1", "week", 2),
        ] {
            sqlx::query(
                "INSERT INTO center_tasks (app_id, task_id, kind, cycle_type, cycle_days, title, \
                 face_value, total, created_at, updated_at) \
                 VALUES ('default', $1, 'cyclic', $2, $3, 'x', 1, 1, 0, 0)",
            )
            .bind(id)
            .bind(unit)
            .bind(days)
            .execute(&db.write)
            .await
            .expect("old row");
        }
        common::rerun_migration(&db, backend, "20261203000016_task_cycle_refresh_day.sql").await;
        let (_, auth) = app.login("migrated").await;
        let list = call(&app, "/center/api/getTasksList", &auth, json!({})).await;
        let mut days: Vec<(String, Value)> = list["result"]["cyclicTask"]
            .as_array()
            .expect("cyclic")
            .iter()
            .map(|t| {
                (
                    t["taskId"].as_str().unwrap_or_default().to_string(),
                    t["cycle"]["day"].clone(),
                )
            })
            .collect();
        days.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            days,
            vec![
                ("d".into(), json!(1)),
                ("m".into(), json!(31)),
                ("w".into(), json!(7)),
                ("w1".into(), json!(2)),
            ],
            "{backend:?}"
        );
        app.handle.stop(true).await;
    }
}
