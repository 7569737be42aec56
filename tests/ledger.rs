//! Ledger invariants over HTTP against the real server, on SQLite and Postgres: concurrency,
//! idempotency, expiry order, crash durability and two processes on one database.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use actix::{Actor, Addr};
use common::{backends, ledger_facts, spawn_app, spawn_process, Backend, TestApp, ADMIN_KEY};
use futures_util::future::join_all;
use points_actors::leaderboard::{BoardKey, GetStandings, LeaderboardActor};
use points_actors::{LedgerActor, LedgerLimits, Listen};
use points_engine::db::Db;
use points_engine::points::expire_due;
use points_engine::store::LedgerDb;
use serde_json::{json, Value};

#[actix_web::test]
async fn concurrent_grants_and_deductions_keep_the_balance_whole() {
    for backend in backends() {
        // Arrange
        let app = Arc::new(spawn_app(backend).await);
        let (user, _) = app.login("crowd").await;
        app.change(&user, 100, Some("seed")).await;

        // Act: 500 concurrent changes, deductions larger than grants so many must be refused.
        let tasks = (0..500).map(|i| {
            let app = Arc::clone(&app);
            let user = user.clone();
            async move {
                let amount = if i % 2 == 0 { 7 } else { -11 };
                let body = app.change(&user, amount, Some(&format!("c-{i}"))).await;
                (amount, body)
            }
        });
        let results = join_all(tasks).await;

        // Assert: every answer is a success or a clean "insufficient", and the books add up.
        let mut expected = 100;
        for (amount, body) in &results {
            if body["status"] == true {
                expected += amount;
            } else {
                assert_eq!(body["code"], 402, "{backend:?}: {body}");
            }
        }
        assert!(
            results.iter().any(|(a, b)| *a < 0 && b["status"] == false),
            "{backend:?}: no deduction was refused"
        );
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!(facts.balance, expected, "{backend:?}");
        assert_eq!(app.balance(&user).await, expected, "{backend:?}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn one_idempotency_key_fifty_times_has_one_effect_and_identical_replies() {
    for backend in backends() {
        let app = Arc::new(spawn_app(backend).await);
        let (user, _) = app.login("idem").await;

        let tasks = (0..50).map(|_| {
            let app = Arc::clone(&app);
            let user = user.clone();
            async move { app.change(&user, 30, Some("same-key")).await }
        });
        let replies = join_all(tasks).await;

        let first = &replies[0];
        assert_eq!(first["status"], true, "{backend:?}: {first}");
        assert!(
            replies.iter().all(|r| r == first),
            "{backend:?}: replies differ"
        );
        let facts = ledger_facts(&app.database_url, &user).await;
        assert_eq!(facts.entries, 1, "{backend:?}");
        assert_eq!(facts.balance, 30, "{backend:?}");

        // The same key with other parameters is a conflict and changes nothing.
        let conflict = app.change(&user, 31, Some("same-key")).await;
        assert_eq!(conflict["status"], false);
        assert_eq!(conflict["code"], 409, "{backend:?}: {conflict}");
        assert_eq!(ledger_facts(&app.database_url, &user).await, facts);
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn open_api_replays_answer_200_and_conflicts_409() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let headers = [
            ("X-Consumer-Custom-ID", "@staff_a:example.com"),
            ("X-Gateway-Secret", common::GATEWAY_SECRET),
        ];
        let body = json!({"transactionId": "tx-1", "userId": "@staff_a:example.com", "point": 12, "type": "RETAIL_LIKE", "info": "like"});
        let (s1, b1) = app
            .post("/api/v1/open/swan/integral/points", &headers, &body)
            .await;
        let (s2, b2) = app
            .post("/api/v1/open/swan/integral/points", &headers, &body)
            .await;
        assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
        assert_eq!(b1, b2);
        let other = json!({"transactionId": "tx-1", "userId": "@staff_a:example.com", "point": 13, "type": "RETAIL_LIKE"});
        let (s3, b3) = app
            .post("/api/v1/open/swan/integral/points", &headers, &other)
            .await;
        assert_eq!(s3, 409, "{b3}");
        let (_, listing) = app
            .get(
                "/api/v1/open/swan/integral/points/transaction/mine",
                &headers,
            )
            .await;
        assert_eq!(listing["balance"], 12, "{listing}");
        assert_eq!(
            listing["transaction"]["content"][0]["detailId"], "tx-1",
            "{listing}"
        );
        let (_, listing) = app
            .get("/api/v1/open/swan/integral/points/transaction", &headers)
            .await;
        assert_eq!(listing["transaction"][0]["detailId"], "tx-1", "{listing}");
        assert_eq!(listing["total"], 1);
        app.handle.stop(true).await;
    }
}

/// Grants `amount` to `user` expiring at `expired_time`.
async fn grant_expiring(app: &TestApp, user: &str, amount: i64, expired_time: &str, key: &str) {
    let (status, body) = app
        .post(
            "/core/point/update.json",
            &[("X-Admin-Key", ADMIN_KEY), ("Idempotency-Key", key)],
            &json!({"uuid": user, "amount": amount, "task_id": "t", "flag": "grant", "transfer_info": "x", "expired_time": expired_time}),
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
}

#[actix_web::test]
async fn debits_spend_the_earliest_expiring_points_and_the_job_expires_the_rest() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, bearer) = app.login("expiry").await;
        grant_expiring(&app, &user, 10, "2090-06-01 00:00:00", "late").await;
        grant_expiring(&app, &user, 10, "2080-06-01 00:00:00", "early").await;
        grant_expiring(&app, &user, 10, "2085-06-01 00:00:00", "middle").await;

        // 15 points spend all of the 2080 lot and 5 of the 2085 lot.
        let spent = app.change(&user, -15, Some("spend")).await;
        assert_eq!(spent["status"], true, "{spent}");

        let auth = [("Authorization", bearer.as_str())];
        let (_, next) = app
            .post(
                "/v2/user/recent/expired.json",
                &auth,
                &json!({"app_id": "default", "user_id": user}),
            )
            .await;
        assert_eq!(
            next["data"],
            json!({"date": "2085-05-31", "points": 5}),
            "{backend:?}: {next}"
        );
        let (_, due) = app
            .post(
                "/core/point/expired.json",
                &[("X-Admin-Key", ADMIN_KEY)],
                &json!({"uuid": user}),
            )
            .await;
        assert_eq!(
            due["data"],
            json!([{"total": 5, "date": "2085-05-31"}, {"total": 10, "date": "2090-05-31"}]),
            "{backend:?}: {due}"
        );

        // The job, run as of 2086, expires the 5 left of the 2085 lot; twice changes nothing more.
        let (ledger, store) = second_ledger(&app).await;
        let in_2086 = 3_660_000_000_000;
        let expire = || expire_due(&ledger, &store, in_2086);
        assert_eq!(expire().await.expect("expire"), 5);
        assert_eq!(expire().await.expect("expire again"), 0);
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!(facts.balance, 10, "{backend:?}");
        let (_, expired) = app
            .post(
                "/v2/user/expired.json",
                &auth,
                &json!({"app_id": "default", "user_id": user}),
            )
            .await;
        assert_eq!(
            expired["data"],
            json!([{"total": 5, "date": "2085-05-31"}]),
            "{backend:?}: {expired}"
        );
        assert_eq!(expired["count"], 1);
        app.handle.stop(true).await;
    }
}

/// A ledger actor of its own on the app's database, as a second node would run: the expiry job
/// goes through it.
async fn second_ledger(app: &TestApp) -> (Addr<LedgerActor>, LedgerDb) {
    let db = Db::connect(&app.database_url, 4).await.expect("db");
    let store = LedgerDb { db };
    let ledger = LedgerActor::new(Arc::new(store.clone()), LedgerLimits::default(), None).start();
    (ledger, store)
}

#[actix_web::test]
async fn expiry_is_a_ledger_change_that_its_listeners_see() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (user, _) = app.login("fading").await;
        grant_expiring(&app, &user, 10, "2080-06-01 00:00:00", "early").await;
        grant_expiring(&app, &user, 7, "2090-06-01 00:00:00", "late").await;

        let (ledger, store) = second_ledger(&app).await;
        let day_of: points_actors::leaderboard::DayOf = Arc::new(|_| "2086-01-01".to_string());
        let board = LeaderboardActor::new(day_of).start();
        ledger
            .send(Listen(board.clone().recipient()))
            .await
            .expect("listen");
        let clock = points_engine::clock::BizClock::new(chrono_tz::Asia::Shanghai);
        points_engine::activities::leaderboard::rebuild(&store.db, &clock, &board)
            .await
            .expect("rebuild");
        let score = || async {
            let standings = board
                .send(GetStandings {
                    app_id: "default".into(),
                    key: BoardKey::Points,
                    top: 10,
                    user_id: None,
                })
                .await
                .expect("standings");
            standings.top.first().map(|r| r.score.value)
        };
        assert_eq!(score().await, Some(17), "{backend:?}");

        let in_2086 = 3_660_000_000_000;
        assert_eq!(
            expire_due(&ledger, &store, in_2086).await.expect("expire"),
            10
        );
        // The board moved with the commit, without a rebuild from the database.
        assert_eq!(score().await, Some(7), "{backend:?}");
        let facts = ledger_facts(&app.database_url, &user).await;
        facts.assert_conserved();
        assert_eq!(facts.balance, 7, "{backend:?}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn expiry_racing_a_debit_expires_only_what_the_debit_left() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let users: Vec<String> = join_all((0..16).map(|i| {
            let app = &app;
            async move { app.login(&format!("racer{i}")).await.0 }
        }))
        .await;
        for user in &users {
            grant_expiring(
                &app,
                user,
                10,
                "2080-06-01 00:00:00",
                &format!("{user}-due"),
            )
            .await;
            grant_expiring(
                &app,
                user,
                10,
                "2090-06-01 00:00:00",
                &format!("{user}-later"),
            )
            .await;
        }
        // Each user spends 8 through the app's ledger while a second ledger expires the due lots.
        let (ledger, store) = second_ledger(&app).await;
        let debits = join_all(users.iter().map(|user| {
            let app = &app;
            async move { app.change(user, -8, Some(&format!("{user}-spend"))).await }
        }));
        let (spent, expired) =
            futures_util::join!(debits, expire_due(&ledger, &store, 3_660_000_000_000));
        assert!(spent.iter().all(|r| r["status"] == true), "{spent:?}");
        let expired = expired.expect("expire");

        // Whichever committed first, the lot gave up only what it still held: a debit first
        // leaves 2 of the due lot to expire (balance 10), an expiry first takes all 10 and the
        // debit spends the later lot (balance 2).
        let mut total = 0;
        for user in &users {
            let entries: Vec<(i64, String)> = sqlx::query_as(
                "SELECT e.amount, e.kind FROM ledger_entries e JOIN users u ON u.id = e.user_id \
                 WHERE u.platform_uid = $1 AND e.amount < 0 ORDER BY e.id",
            )
            .bind(user)
            .fetch_all(&store.db.read)
            .await
            .expect("entries");
            let facts = ledger_facts(&app.database_url, user).await;
            facts.assert_conserved();
            let kinds: Vec<&str> = entries.iter().map(|(_, k)| k.as_str()).collect();
            match kinds.as_slice() {
                [_, "expire"] => {
                    assert_eq!(entries[1].0, -2, "{backend:?} {user}: {entries:?}");
                    assert_eq!(facts.balance, 10, "{backend:?} {user}");
                }
                ["expire", _] => {
                    assert_eq!(entries[0].0, -10, "{backend:?} {user}: {entries:?}");
                    assert_eq!(facts.balance, 2, "{backend:?} {user}");
                }
                other => panic!("{backend:?} {user}: unexpected entries {other:?}"),
            }
            total -= entries
                .iter()
                .find(|(_, k)| k == "expire")
                .map_or(0, |e| e.0);
        }
        assert_eq!(expired, total, "{backend:?}");
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn a_server_killed_during_load_keeps_every_acknowledged_change() {
    for backend in backends() {
        let (url, _dir) = common::fresh_database(backend).await;
        let mut server = spawn_process(&url, &[]).await;
        let address = server.address.clone();
        let client = common::client();
        let user = common::login_at(&client, &address, "victim").await;

        // 32 clients grant as fast as they can; the server is killed once 300 grants are
        // acknowledged.
        let (workers, acked) = grant_until_stopped(&client, &address, &user, 32, "k");
        wait_for_acks(&acked, 300).await;
        server.kill();
        for w in workers {
            let _ = w.await;
        }
        let acked: HashSet<String> = acked.lock().expect("lock").iter().cloned().collect();

        // Restart on the same database: every acknowledged key is there, the books add up.
        let server = spawn_process(&url, &[]).await;
        let db = points_engine::db::Db::connect(&url, 2).await.expect("db");
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT idem_key FROM ledger_entries WHERE idem_key LIKE 'core:k-%'",
        )
        .fetch_all(&db.read)
        .await
        .expect("keys");
        let stored: HashSet<String> = stored
            .into_iter()
            .map(|k| k.trim_start_matches("core:").to_string())
            .collect();
        let lost: Vec<&String> = acked.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "{backend:?}: {} acknowledged grants lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        let facts = ledger_facts(&url, &user).await;
        facts.assert_conserved();
        assert_eq!(facts.balance, stored.len() as i64);
        // The restarted server serves the same balance.
        let res: Value = client
            .post(format!("{}/core/user/balance.json", server.address))
            .header("X-Admin-Key", ADMIN_KEY)
            .json(&json!({"uuid": user}))
            .send()
            .await
            .expect("balance")
            .json()
            .await
            .expect("balance body");
        assert_eq!(
            res["data"]["active_balance"],
            json!(stored.len()),
            "{backend:?}"
        );
    }
}

#[actix_web::test]
async fn two_processes_on_one_postgres_never_overdraw() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let (url, _dir) = common::fresh_database(Backend::Postgres).await;
    let a = spawn_process(&url, &[]).await;
    let b = spawn_process(&url, &[]).await;
    let client = common::client();
    let user = common::login_at(&client, &a.address, "shared").await;
    let seed = common::change_at(&client, &a.address, &user, 1000, None)
        .await
        .expect("seed");
    assert_eq!(seed["status"], true, "{seed}");

    // 400 deductions of 7 split over both processes: at most 142 can succeed.
    let tasks = (0..400).map(|i| {
        let client = client.clone();
        let address = if i % 2 == 0 {
            a.address.clone()
        } else {
            b.address.clone()
        };
        let user = user.clone();
        async move {
            common::change_at(&client, &address, &user, -7, Some(&format!("d-{i}")))
                .await
                .expect("deduct")
        }
    });
    let results = join_all(tasks).await;
    let ok = results.iter().filter(|b| b["status"] == true).count() as i64;
    assert!(
        results
            .iter()
            .all(|b| b["status"] == true || b["code"] == 402),
        "unexpected answer"
    );
    assert_eq!(ok, 142, "every deduction that fits succeeds, none more");
    let facts = ledger_facts(&url, &user).await;
    facts.assert_conserved();
    assert_eq!(facts.balance, 1000 - 7 * ok);
}

#[actix_web::test]
async fn a_full_ledger_queue_answers_busy_and_commits_nothing_of_the_refused() {
    for backend in backends() {
        let app = Arc::new(
            common::spawn_app_with(backend, |s| {
                s.ledger.queue_max = 2;
                s.ledger.batch_max = 1;
            })
            .await,
        );
        let (user, _) = app.login("flood").await;

        let tasks = (0..200).map(|i| {
            let app = Arc::clone(&app);
            let user = user.clone();
            async move {
                let key = format!("f-{i}");
                let body = app.change(&user, 1, Some(&key)).await;
                (key, body)
            }
        });
        let results = join_all(tasks).await;

        let granted: HashSet<String> = results
            .iter()
            .filter(|(_, b)| b["status"] == true)
            .map(|(k, _)| format!("core:{k}"))
            .collect();
        let busy = results.iter().filter(|(_, b)| b["code"] == 429).count();
        assert!(
            busy > 0,
            "{backend:?}: a queue of 2 under 200 clients never said busy"
        );
        assert_eq!(
            granted.len() + busy,
            200,
            "{backend:?}: every answer is granted or busy"
        );
        let db = points_engine::db::Db::connect(&app.database_url, 2)
            .await
            .expect("db");
        let stored: HashSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT idem_key FROM ledger_entries WHERE idem_key LIKE 'core:f-%'",
        )
        .fetch_all(&db.read)
        .await
        .expect("keys")
        .into_iter()
        .collect();
        assert_eq!(
            stored, granted,
            "{backend:?}: the database holds exactly the granted changes"
        );
        ledger_facts(&app.database_url, &user)
            .await
            .assert_conserved();
        app.handle.stop(true).await;
    }
}

#[actix_web::test]
async fn two_processes_given_the_same_keys_apply_each_once() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let (url, _dir) = common::fresh_database(Backend::Postgres).await;
    let a = spawn_process(&url, &[]).await;
    let b = spawn_process(&url, &[]).await;
    let client = common::client();
    let user = common::login_at(&client, &a.address, "twice").await;

    // Every key goes to both processes at once.
    let tasks = (0..200).map(|i| {
        let client = client.clone();
        let address = if i % 2 == 0 {
            a.address.clone()
        } else {
            b.address.clone()
        };
        let user = user.clone();
        async move {
            common::change_at(
                &client,
                &address,
                &user,
                3,
                Some(&format!("shared-{}", i / 2)),
            )
            .await
            .expect("grant")
        }
    });
    let results = join_all(tasks).await;
    assert!(
        results.iter().all(|b| b["status"] == true),
        "every call is acknowledged"
    );
    let facts = ledger_facts(&url, &user).await;
    facts.assert_conserved();
    assert_eq!(facts.entries, 100, "one entry per key");
    assert_eq!(facts.balance, 300);
}

#[actix_web::test]
async fn sigterm_during_load_drains_and_exits_cleanly() {
    let (url, _dir) = common::fresh_database(Backend::Sqlite).await;
    let mut server = spawn_process(&url, &[]).await;
    let address = server.address.clone();
    let client = common::client();
    let user = common::login_at(&client, &address, "term").await;

    let (workers, acked) = grant_until_stopped(&client, &address, &user, 16, "t");
    wait_for_acks(&acked, 200).await;
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .expect("join")
        .expect("wait");
    for w in workers {
        let _ = w.await;
    }
    assert!(exit.success(), "the server exits 0 after SIGTERM: {exit:?}");

    let acked: HashSet<String> = acked
        .lock()
        .expect("lock")
        .iter()
        .map(|k| format!("core:{k}"))
        .collect();
    let db = points_engine::db::Db::connect(&url, 2).await.expect("db");
    let stored: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT idem_key FROM ledger_entries WHERE idem_key LIKE 'core:t-%'",
    )
    .fetch_all(&db.read)
    .await
    .expect("keys")
    .into_iter()
    .collect();
    assert!(
        acked.is_subset(&stored),
        "an acknowledged grant is missing after SIGTERM"
    );
    ledger_facts(&url, &user).await.assert_conserved();
}

type Acked = Arc<std::sync::Mutex<Vec<String>>>;

/// `clients` tasks granting 1 point each with keys `<prefix>-<client>-<n>` until the server
/// stops answering (at most 10,000 each); returns the tasks and the keys acknowledged so far.
fn grant_until_stopped(
    client: &reqwest::Client,
    address: &str,
    user: &str,
    clients: usize,
    prefix: &str,
) -> (Vec<tokio::task::JoinHandle<()>>, Acked) {
    let acked: Acked = Arc::default();
    let workers = (0..clients)
        .map(|w| {
            let (client, address, user, acked) = (
                client.clone(),
                address.to_string(),
                user.to_string(),
                Arc::clone(&acked),
            );
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                for i in 0..10_000 {
                    let key = format!("{prefix}-{w}-{i}");
                    let Some(body) =
                        common::change_at(&client, &address, &user, 1, Some(&key)).await
                    else {
                        break;
                    };
                    if body["status"] == true {
                        acked.lock().expect("lock").push(key);
                    }
                }
            })
        })
        .collect();
    (workers, acked)
}

/// Waits until `n` grants are acknowledged. Polls: the grants happen in another process.
async fn wait_for_acks(acked: &Acked, n: usize) {
    while acked.lock().expect("lock").len() < n {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn a_change_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits() {
    use points_actors::{Change, LedgerError, Submit};

    for backend in backends() {
        let app = spawn_app(backend).await;
        let users: Vec<String> = join_all((0..24).map(|i| {
            let app = &app;
            async move { app.login(&format!("batch{i}")).await.0 }
        }))
        .await;
        let db = Db::connect(&app.database_url, 2).await.expect("db");
        // What the database refuses: on Postgres a NUL in text, which it cannot store; SQLite
        // stores a NUL, so there a trigger refuses one description instead.
        let poison = match backend {
            Backend::Postgres => "bad\u{0}text",
            Backend::Sqlite => {
                sqlx::query(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger_entries \
                     WHEN NEW.description = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
                )
                .execute(&db.write)
                .await
                .expect("trigger");
                "poison"
            }
        };
        let mut ids = Vec::new();
        for uid in &users {
            let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE platform_uid = $1")
                .bind(uid)
                .fetch_one(&db.read)
                .await
                .expect("user id");
            ids.push(id);
        }
        // A linger gathers every change below into one batch.
        let limits = LedgerLimits {
            linger: std::time::Duration::from_millis(200),
            ..LedgerLimits::default()
        };
        let store = LedgerDb { db: db.clone() };
        let ledger = LedgerActor::new(Arc::new(store), limits, None).start();
        let changes = ids.iter().enumerate().map(|(i, id)| {
            let mut change = Change::simple("default", *id, 5, "grant", format!("batch-{i}"));
            if i == 7 {
                change.description = poison.into();
            }
            ledger.send(Submit(change))
        });
        let outcomes = join_all(changes).await;

        for (i, outcome) in outcomes.iter().enumerate() {
            let outcome = outcome.as_ref().expect("mailbox");
            if i == 7 {
                assert!(
                    matches!(outcome, Err(LedgerError::Rejected(_))),
                    "{backend:?}: {outcome:?}"
                );
            } else {
                assert!(outcome.is_ok(), "{backend:?}: change {i}: {outcome:?}");
            }
        }
        for (i, uid) in users.iter().enumerate() {
            let facts = ledger_facts(&app.database_url, uid).await;
            facts.assert_conserved();
            assert_eq!(
                facts.balance,
                if i == 7 { 0 } else { 5 },
                "{backend:?}: {uid}"
            );
        }
        let stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE idem_key LIKE 'batch-%'")
                .fetch_one(&db.read)
                .await
                .expect("count");
        assert_eq!(stored, 23, "{backend:?}");
        app.handle.stop(true).await;
    }
}
