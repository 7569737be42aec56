//! Several nodes: one process per SQLite file, activity leases with epochs that only grow,
//! an owner that stops serving before its lease runs out, and `GET /admin/cluster`.

mod common;

use std::time::Duration;

use common::{backends, spawn_app, spawn_app_with, test_settings, Backend, ADMIN_KEY};
use points_engine::cluster::{Cluster, Owner};
use points_engine::db::Db;
use points_engine::startup::Application;

/// A short lease, so the tests wait little for one to run out, yet long enough that a slow
/// statement on a busy machine does not make it run out early.
const TTL: Duration = Duration::from_millis(1_000);

#[actix_web::test]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let err = match Application::build(test_settings(&app.database_url)).await {
        Ok(_) => panic!("a second server on the same SQLite file started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("already served by another process"), "{err}");
    // The first server is untouched.
    assert_eq!(app.get("/healthz", &[]).await.0, 200);
}

/// Two nodes' lease keepers on one fresh Postgres database, without servers around them.
async fn two_nodes() -> Option<(Db, Cluster, Cluster)> {
    if !backends().contains(&Backend::Postgres) {
        return None;
    }
    let (url, _) = common::fresh_database(Backend::Postgres).await;
    let db = Db::connect(&url, 2).await.expect("db");
    db.migrate().await.expect("migrate");
    let pool = db.hot_pg.clone().expect("native pool");
    let a = Cluster::clustered("a".into(), "http://a".into(), TTL, pool.clone());
    let b = Cluster::clustered("b".into(), "http://b".into(), TTL, pool);
    Some((db, a, b))
}

#[actix_web::test]
async fn one_owner_at_a_time_and_every_takeover_raises_the_epoch() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let activity = "redpack:card:1";
    assert_eq!(
        a.owner(activity).await.expect("a"),
        Owner::Local { epoch: 1 }
    );
    // While a holds it, b is sent to a, however often it asks.
    for _ in 0..3 {
        assert_eq!(
            b.owner(activity).await.expect("b"),
            Owner::Remote {
                node_id: "a".into(),
                addr: "http://a".into()
            }
        );
    }
    // a renews and keeps it past its first TTL.
    tokio::time::sleep(TTL / 2).await;
    a.renew().await.expect("renew");
    tokio::time::sleep(TTL / 2).await;
    assert_eq!(a.held_epoch(activity), Some(1));
    assert!(matches!(
        b.owner(activity).await.expect("b"),
        Owner::Remote { .. }
    ));

    // a stops renewing: it stops serving before the database's deadline, then b takes over.
    let mut lost = a.lost();
    tokio::time::sleep(TTL).await;
    assert_eq!(
        a.held_epoch(activity),
        None,
        "a still serves a lapsed lease"
    );
    tokio::time::sleep(TTL / 4).await;
    assert_eq!(
        b.owner(activity).await.expect("b"),
        Owner::Local { epoch: 2 }
    );
    // a's next renewal finds the epoch moved on and gives the activity up for good.
    a.renew().await.expect("renew");
    assert_eq!(lost.try_recv().ok().as_deref(), Some(activity));
    assert_eq!(
        a.owner(activity).await.expect("a"),
        Owner::Remote {
            node_id: "b".into(),
            addr: "http://b".into()
        }
    );

    // A graceful stop hands over without waiting for the lease to run out (a node that saw
    // the holder remembers it for a third of the TTL), and the epoch still grows.
    b.leave().await.expect("leave");
    tokio::time::sleep(TTL / 3 + TTL / 20).await;
    assert_eq!(
        a.owner(activity).await.expect("a"),
        Owner::Local { epoch: 3 }
    );
}

#[actix_web::test]
async fn racing_nodes_take_a_free_activity_once() {
    let Some((db, a, b)) = two_nodes().await else {
        return;
    };
    let pool = db.hot_pg.clone().expect("native pool");
    let c = Cluster::clustered("c".into(), "http://c".into(), TTL, pool);
    for n in 0..20 {
        let activity = format!("lottery:app{n}");
        let (x, y, z) = tokio::join!(a.owner(&activity), b.owner(&activity), c.owner(&activity));
        let owners = [x.expect("a"), y.expect("b"), z.expect("c")];
        let local: Vec<&Owner> = owners
            .iter()
            .filter(|o| matches!(o, Owner::Local { .. }))
            .collect();
        assert_eq!(
            local,
            vec![&Owner::Local { epoch: 1 }],
            "{activity}: {owners:?}"
        );
    }
}

#[actix_web::test]
async fn a_restarted_node_takes_its_own_leases_back_with_a_new_epoch() {
    let Some((db, a, _b)) = two_nodes().await else {
        return;
    };
    assert_eq!(
        a.owner("morning:default").await.expect("a"),
        Owner::Local { epoch: 1 }
    );
    // The same node id after a restart: its old actors died with the old process.
    let pool = db.hot_pg.clone().expect("native pool");
    let again = Cluster::clustered("a".into(), "http://a".into(), TTL, pool);
    assert_eq!(
        again.owner("morning:default").await.expect("again"),
        Owner::Local { epoch: 2 }
    );
}

#[actix_web::test]
async fn admin_cluster_shows_nodes_and_leases() {
    // A single node shows itself and no lease.
    let app = spawn_app(Backend::Sqlite).await;
    let (status, body) = app
        .get("/admin/cluster", &[("X-Admin-Key", ADMIN_KEY)])
        .await;
    assert_eq!(status, 200, "{body}");
    let nodes = body["data"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{body}");
    assert_eq!(
        nodes[0]["addr"].as_str(),
        Some(app.address.as_str()),
        "{body}"
    );
    assert_eq!(body["data"]["leases"], serde_json::json!([]), "{body}");
    let (_, body) = app.get("/admin/cluster", &[]).await;
    assert_eq!(body["status"], false, "no admin key: {body}");
    assert!(body["data"].get("nodes").is_none(), "{body}");

    // A cluster node shows its heartbeat row.
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        return;
    };
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.redis_url = Some(redis);
        s.node_id = Some("node-1".into());
        s.lease_ttl = TTL;
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = app
            .get("/admin/cluster", &[("X-Admin-Key", ADMIN_KEY)])
            .await;
        assert_eq!(status, 200, "{body}");
        let nodes = body["data"]["nodes"].as_array().expect("nodes").clone();
        if let Some(node) = nodes.iter().find(|n| n["node_id"] == "node-1") {
            assert_eq!(node["addr"].as_str(), Some(app.address.as_str()), "{body}");
            assert!(
                node["last_seen_ms"].as_i64().is_some_and(|t| t > 0),
                "{body}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no heartbeat: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its connections carry its name, so an operator can tell the nodes apart in Postgres.
    let db = Db::connect(&app.database_url, 1).await.expect("db");
    let named: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'points-engine node-1'",
    )
    .fetch_one(&db.read)
    .await
    .expect("pg_stat_activity");
    assert!(named > 0, "no connection names its node");
}

#[actix_web::test]
async fn a_commit_fenced_with_an_old_epoch_writes_nothing_and_spares_its_batch() {
    use std::sync::Arc;

    use points_actors::{Change, Fence, LedgerError, LedgerStore};
    use points_engine::store::LedgerDb;

    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let (old_owner, _) = app.login("fence-a").await;
    let (new_owner, _) = app.login("fence-b").await;
    let db = Db::connect(&app.database_url, 2).await.expect("db");
    let id_of = |uid: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE platform_uid = $1")
                .bind(uid)
                .fetch_one(&db.read)
                .await
                .expect("user id")
        }
    };
    let (a_user, b_user) = (id_of(old_owner.clone()).await, id_of(new_owner).await);
    let pool = db.hot_pg.clone().expect("native pool");
    let a = Cluster::clustered("a".into(), "http://a".into(), TTL, pool.clone());
    let b = Cluster::clustered("b".into(), "http://b".into(), TTL, pool);
    let activity = "redpack:card:77";
    let Owner::Local { epoch: first } = a.owner(activity).await.expect("a") else {
        panic!("a could not take a free activity");
    };
    // a's lease runs out; b takes over with a higher epoch.
    tokio::time::sleep(TTL + TTL / 4).await;
    let Owner::Local { epoch: second } = b.owner(activity).await.expect("b") else {
        panic!("b could not take a lapsed lease");
    };
    assert!(second > first);

    let fenced = |user: i64, key: &str, epoch: i64| Change {
        fence: Some(Fence {
            activity: activity.into(),
            epoch,
        }),
        ..Change::simple("default", user, 5, "redpack", key)
    };
    let store = LedgerDb { db: db.clone() };
    let batch: Arc<[Change]> = vec![
        fenced(a_user, "stale-grab", first),
        Change::simple("default", a_user, 2, "grant", "unfenced"),
        fenced(b_user, "current-grab", second),
    ]
    .into();
    let outcomes = store.commit_batch(batch).await.expect("commit");
    assert_eq!(
        outcomes[0],
        Err(LedgerError::Fenced {
            activity: activity.into()
        })
    );
    assert!(outcomes[1].is_ok(), "{outcomes:?}");
    assert!(outcomes[2].is_ok(), "{outcomes:?}");
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idem_key FROM ledger_entries ORDER BY idem_key")
            .fetch_all(&db.read)
            .await
            .expect("keys");
    assert_eq!(
        keys,
        vec!["current-grab".to_string(), "unfenced".to_string()]
    );
    assert_eq!(app.balance(&old_owner).await, 2);
}

/// One node of a cluster in this process, over `url` and Redis. Its lease is long enough that
/// its keeper renews rarely during a test step (every 2 s).
async fn cluster_node(url: &str, redis: &str, id: &str) -> common::TestApp {
    let mut settings = test_settings(url);
    settings.redis_url = Some(redis.to_string());
    settings.node_id = Some(id.to_string());
    settings.lease_ttl = Duration::from_secs(6);
    // Several two-node tests run at once on one Postgres.
    settings.db_max_connections = 4;
    common::spawn_on(settings).await
}

/// Two cluster nodes, `node-a` and `node-b`, on a fresh Postgres database and the test Redis;
/// `None` (the test is skipped) without them.
async fn two_cluster_nodes() -> Option<(String, common::TestApp, common::TestApp)> {
    let redis = std::env::var("TEST_REDIS_URL").ok()?;
    if !backends().contains(&Backend::Postgres) {
        return None;
    }
    let (url, _) = common::fresh_database(Backend::Postgres).await;
    let a = cluster_node(&url, &redis, "node-a").await;
    let b = cluster_node(&url, &redis, "node-b").await;
    Some((url, a, b))
}

/// A client's answer: its JSON body and the node that served it, if it was relayed.
async fn rob(
    client: &reqwest::Client,
    node: &common::TestApp,
    token: &str,
    uid: &str,
    batch: i64,
    card: i64,
) -> (serde_json::Value, Option<String>) {
    let res = client
        .post(node.url("/v2/redpack/rob.json"))
        .header("Authorization", token)
        .json(&serde_json::json!({"app_id": "default", "user_id": uid, "card_id": card, "batch_id": batch}))
        .send()
        .await
        .expect("rob");
    let served_by = res
        .headers()
        .get("x-points-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (res.json().await.expect("rob body"), served_by)
}

#[actix_web::test]
async fn grabs_on_any_node_are_served_by_the_owner_and_a_fenced_owner_hands_over() {
    use futures_util::stream::{self, StreamExt};
    use serde_json::json;

    let Some((url, a, b)) = two_cluster_nodes().await else {
        return;
    };
    let nodes = [&a, &b];
    let client = common::client();
    let batch = a
        .post(
            "/admin/redpack/sessions",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"app_id": "default", "name": "two nodes", "start_time": "00:00:00", "end_time": "24:00:00"}),
        )
        .await
        .1["data"]["batch_id"]
        .as_i64()
        .expect("batch_id");
    let card = a
        .post(
            "/admin/redpack/cards",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": 150,
                    "unit": 1, "ticket": 0, "start_time": "00:00:00", "end_time": "24:00:00"}),
        )
        .await
        .1["data"]["card_id"]
        .as_i64()
        .expect("card_id");
    let mut users = Vec::new();
    for i in 0..300 {
        users.push(nodes[i % 2].login(&format!("two-{i}")).await);
    }

    // Act: every user grabs once, half through each node, 64 at a time.
    let answers: Vec<(usize, serde_json::Value, Option<String>)> = stream::iter(0..300)
        .map(|i| {
            let (client, node, user) = (client.clone(), nodes[(i / 2 + i) % 2], &users[i]);
            async move {
                let (body, served_by) = rob(&client, node, &user.1, &user.0, batch, card).await;
                (i, body, served_by)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    // Assert: exactly the stock is granted, once per winner, by one owner; the other node's
    // grabs were relayed to it.
    let wins: Vec<usize> = answers
        .iter()
        .filter(|(_, body, _)| body["status"] == true)
        .map(|(i, _, _)| *i)
        .collect();
    for (_, body, _) in &answers {
        if body["status"] != true {
            assert_eq!(body["msg"], "已被抢光了", "{body}");
        }
    }
    assert_eq!(wins.len(), 150);
    let db = Db::connect(&url, 2).await.expect("db");
    let granted: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT user_id) FROM ledger_entries WHERE kind = 'redpack'",
    )
    .fetch_one(&db.read)
    .await
    .expect("granted");
    assert_eq!(granted, 150);
    let relayed = answers.iter().filter(|(_, _, s)| s.is_some()).count();
    assert!(relayed > 0, "no grab was relayed to the card's owner");
    let (_, view) = a.get("/admin/cluster", &[("X-Admin-Key", ADMIN_KEY)]).await;
    let leases = view["data"]["leases"].as_array().expect("leases").clone();
    let lease = leases
        .iter()
        .find(|l| l["activity"] == format!("redpack:card:{card}"))
        .unwrap_or_else(|| panic!("no lease for the card: {view}"));
    assert!(
        lease["node_id"] == "node-a" || lease["node_id"] == "node-b",
        "{view}"
    );
    // Taken once, however many grabs raced for the free card on both nodes.
    assert_eq!(lease["epoch"], 1, "{view}");

    // A takeover behind the owner's back (as after a pause longer than the lease): on a card
    // with stock left, a's lease runs out in the database while a still believes it holds it.
    let card = second_card(&a, batch).await;
    let first = a.login("first").await;
    let (body, served_by) = rob(&client, &a, &first.1, &first.0, batch, card).await;
    assert_eq!(body["status"], true, "{body}");
    assert_eq!(served_by, None, "a free card is taken by the node asked");
    let activity = format!("redpack:card:{card}");
    let mut tries = 0;
    loop {
        // a's keeper may renew between the two statements; then b is relayed to a: try again.
        sqlx::query("UPDATE activity_leases SET lease_until = 0 WHERE activity = $1")
            .bind(&activity)
            .execute(&db.write)
            .await
            .expect("expire");
        let newcomer = b.login(&format!("newcomer-{tries}")).await;
        let (body, served_by) = rob(&client, &b, &newcomer.1, &newcomer.0, batch, card).await;
        assert_eq!(body["status"], true, "{body}");
        if served_by.is_none() {
            break;
        }
        tries += 1;
        assert!(tries < 10, "b never took the lapsed lease");
    }
    // a still serves the card by its own clock: its actor grants in memory, the commit is
    // fenced, and the grab goes to b, which grants it once.
    let straggler = a.login("straggler").await;
    let (body, served_by) = rob(&client, &a, &straggler.1, &straggler.0, batch, card).await;
    assert_eq!(body["status"], true, "{body}");
    assert_eq!(served_by.as_deref(), Some(b.address.as_str()));
    let metrics = client
        .get(a.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("points_cluster_fenced_changes_total 1"),
        "a's grab was not fenced: {}",
        metrics
            .lines()
            .filter(|l| l.contains("cluster"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (_, view) = a.get("/admin/cluster", &[("X-Admin-Key", ADMIN_KEY)]).await;
    let lease = view["data"]["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .find(|l| l["activity"] == activity.as_str())
        .cloned()
        .expect("lease");
    assert_eq!(lease["node_id"], "node-b", "{view}");
    let grants: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT user_id, COUNT(*) FROM ledger_entries WHERE kind = 'redpack' AND reference LIKE $1 \
         GROUP BY user_id",
    )
    .bind(format!("card:{card}:%"))
    .fetch_all(&db.read)
    .await
    .expect("grants");
    assert_eq!(grants.len(), tries + 3, "{grants:?}");
    assert!(grants.iter().all(|(_, n)| *n == 1), "{grants:?}");
}

/// A second card in session `batch`, with stock left.
async fn second_card(node: &common::TestApp, batch: i64) -> i64 {
    node.post(
        "/admin/redpack/cards",
        &[("X-Admin-Key", ADMIN_KEY)],
        &serde_json::json!({"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": 50,
                "unit": 1, "ticket": 0, "start_time": "00:00:00", "end_time": "24:00:00"}),
    )
    .await
    .1["data"]["card_id"]
        .as_i64()
        .expect("card_id")
}

#[actix_web::test]
async fn a_pool_on_two_nodes_hands_out_every_packet_once_and_both_show_the_same() {
    use futures_util::stream::{self, StreamExt};
    use serde_json::json;

    let Some((_, a, b)) = two_cluster_nodes().await else {
        return;
    };
    let nodes = [&a, &b];
    let pool = b
        .post(
            "/admin/redpack/pools",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"app_id": "default", "title": "two nodes", "total_points": 1000, "count": 100, "split": "random"}),
        )
        .await
        .1["data"]["id"]
        .as_i64()
        .expect("pool id");
    let mut users = Vec::new();
    for i in 0..150 {
        users.push(nodes[i % 2].login(&format!("pool-{i}")).await);
    }
    let client = common::client();
    let post = |node: &common::TestApp, path: &str, user: &(String, String)| {
        client
            .post(node.url(path))
            .header("Authorization", &user.1)
            .json(&json!({"app_id": "default", "user_id": user.0, "id": pool}))
            .send()
    };

    // Every user grabs once, alternating nodes, 64 at a time.
    let answers: Vec<(usize, serde_json::Value)> = stream::iter(0..150)
        .map(|i| {
            let request = post(
                nodes[(i + i / 3) % 2],
                "/v2/redpack/pool/rob.json",
                &users[i],
            );
            async move {
                let body = request
                    .await
                    .expect("rob")
                    .json::<serde_json::Value>()
                    .await
                    .expect("rob body");
                (i, body)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let won: Vec<i64> = answers
        .iter()
        .filter(|(_, b)| b["status"] == true)
        .map(|(_, b)| b["data"]["amount"].as_i64().expect("amount"))
        .collect();
    assert_eq!(won.len(), 100, "every packet is grabbable from either node");
    assert_eq!(won.iter().sum::<i64>(), 1000);

    // Both nodes show the same pool, and the same `mine` for the same users (two winners, two
    // who came too late).
    let winners = answers
        .iter()
        .filter(|(_, b)| b["status"] == true)
        .map(|(i, _)| *i);
    let losers = answers
        .iter()
        .filter(|(_, b)| b["status"] != true)
        .map(|(i, _)| *i);
    let asked: Vec<usize> = winners.take(2).chain(losers.take(2)).collect();
    let mut shown = Vec::new();
    for node in nodes {
        for user in asked.iter().map(|&i| &users[i]) {
            let body: serde_json::Value = post(node, "/v2/redpack/pool/show.json", user)
                .await
                .expect("show")
                .json()
                .await
                .expect("show body");
            assert_eq!(body["data"]["remaining_count"], 0, "{body}");
            shown.push((user.0.clone(), body["data"]["mine"].clone()));
        }
    }
    assert_eq!(shown[..4], shown[4..], "the nodes disagree on `mine`");
    assert!(shown[0].1.as_i64().is_some_and(|m| m >= 1), "{shown:?}");
    assert!(shown[3].1.is_null(), "{shown:?}");
}

#[actix_web::test]
async fn a_lottery_board_is_drawn_on_its_owner_and_an_admin_change_on_any_node_reaches_it() {
    use serde_json::json;

    let Some((url, a, b)) = two_cluster_nodes().await else {
        return;
    };
    let nodes = [&a, &b];
    let board = |daily_limit: i64| {
        json!({"app_id": "default", "ticket": 0, "daily_limit": daily_limit, "prizes": [
            {"level": 1, "name": "5积分", "reward_type": "积分", "icon": "https://x/1.png",
             "sum": 20, "amount": 5, "rate": 0.5},
            {"level": 2, "name": "谢谢参与", "reward_type": "积分", "icon": "https://x/2.png",
             "sum": 0, "amount": 0, "rate": 0.5}]})
    };
    let admin = [("X-Admin-Key", ADMIN_KEY)];
    let (_, saved) = a.post("/admin/lottery", &admin, &board(3)).await;
    assert_eq!(saved["status"], true, "{saved}");
    let mut users = Vec::new();
    for i in 0..30 {
        users.push(nodes[i % 2].login(&format!("draw-{i}")).await);
    }
    let call = |node: &common::TestApp, path: &str, user: &(String, String)| {
        let (node, path, user) = (node.url(path), path.to_string(), user.clone());
        async move {
            let (_, body) = common::send_json(
                common::client()
                    .post(node)
                    .header("Authorization", &user.1)
                    .json(&json!({"app_id": "default", "user_id": user.0})),
            )
            .await;
            assert_eq!(body["status"], true, "{path}: {body}");
            body
        }
    };

    // Every user draws its three draws, each on the other node than the last.
    let mut draws = Vec::new();
    for (i, user) in users.iter().enumerate() {
        for d in 0..3 {
            draws.push(call(nodes[(i + d) % 2], "/v2/lottery/do.json", user));
        }
    }
    futures_util::future::join_all(draws).await;
    let db = Db::connect(&url, 2).await.expect("db");
    let (won, by_users): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM ledger_entries WHERE kind = 'lottery'",
    )
    .fetch_one(&db.read)
    .await
    .expect("draws");
    assert_eq!(
        (won, by_users),
        (90, 30),
        "each user drew exactly its daily limit"
    );
    let (_, view) = b.get("/admin/cluster", &admin).await;
    let lease = view["data"]["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .find(|l| l["activity"] == "lottery:default")
        .cloned()
        .unwrap_or_else(|| panic!("no lease for the board: {view}"));
    assert_eq!(lease["epoch"], 1, "{view}");

    // The owner keeps the board in memory; a new daily limit saved through the other node ends
    // the owner's lease, and the owner steps down at its next renewal (a third of the TTL):
    // from then on both nodes answer from the new board.
    let other = if lease["node_id"] == "node-a" { &b } else { &a };
    let (_, saved) = other.post("/admin/lottery", &admin, &board(5)).await;
    assert_eq!(saved["status"], true, "{saved}");
    let deadline = std::time::Instant::now() + Duration::from_secs(6) / 3 + Duration::from_secs(1);
    loop {
        let mut left = Vec::new();
        for node in nodes {
            left.push(call(node, "/v2/lottery/show.json", &users[0]).await["left_times"].clone());
        }
        if left == [json!(2), json!(2)] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new board did not reach both nodes: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node that holds `activity`'s lease, as `GET /admin/cluster` on `node` shows it.
async fn lease_holder(node: &common::TestApp, activity: &str) -> Option<String> {
    let (_, body) = node
        .get("/admin/cluster", &[("X-Admin-Key", ADMIN_KEY)])
        .await;
    body["data"]["leases"]
        .as_array()?
        .iter()
        .find(|l| l["activity"] == activity)
        .and_then(|l| l["node_id"].as_str())
        .map(str::to_string)
}

/// Reads data frames of `topic` from `ws` until `done` holds for the frames read so far.
async fn frames_of(
    ws: &mut common::ws::Ws,
    topic: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    while !done(&frames) {
        let frame = common::ws::next_json(ws, common::ws::FRAME_WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame of {topic}; saw {frames:?}"));
        if frame["topic"] == topic {
            frames.push(frame);
        }
    }
    frames
}

#[actix_web::test]
async fn websocket_frames_reach_both_nodes_with_the_same_seq_whichever_node_committed() {
    use common::ws::{connect, subscribe};
    use serde_json::json;

    let Some((_, a, b)) = two_cluster_nodes().await else {
        return;
    };
    let pool = a
        .post(
            "/admin/redpack/pools",
            &[("X-Admin-Key", ADMIN_KEY)],
            &json!({"app_id": "default", "title": "frames", "total_points": 100, "count": 10, "split": "even"}),
        )
        .await
        .1["data"]["id"]
        .as_i64()
        .expect("pool id");
    let topic = format!("redpack:pool:{pool}");
    let (_, mut on_a) = connect(&a, "watch-a").await;
    let (_, mut on_b) = connect(&b, "watch-b").await;
    subscribe(&mut on_a, &topic).await;
    subscribe(&mut on_b, &topic).await;

    // Ten grabs, one at a time, through alternating nodes (one node owns the pool).
    let client = common::client();
    let mut grabbers = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let user = node.login(&format!("frames-{i}")).await;
        let body: serde_json::Value = client
            .post(node.url("/v2/redpack/pool/rob.json"))
            .header("Authorization", &user.1)
            .json(&json!({"app_id": "default", "user_id": user.0, "id": pool}))
            .send()
            .await
            .expect("rob")
            .json()
            .await
            .expect("rob body");
        assert_eq!(body["status"], true, "{body}");
        grabbers.push(user.0);
    }

    // Both nodes deliver the same frames: same seq, same epoch, same events, in order.
    let every_grab = |frames: &[serde_json::Value]| {
        frames
            .iter()
            .map(|f| f["data"]["events"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            >= 10
    };
    let seen_a = frames_of(&mut on_a, &topic, every_grab).await;
    let seen_b = frames_of(&mut on_b, &topic, every_grab).await;
    assert_eq!(seen_a, seen_b, "the nodes delivered different frames");
    let epoch = &seen_a[0]["epoch"];
    assert!(epoch.as_str().is_some_and(|e| !e.is_empty()), "{seen_a:?}");
    for (i, frame) in seen_a.iter().enumerate() {
        assert_eq!(&frame["epoch"], epoch, "{seen_a:?}");
        assert_eq!(
            frame["seq"],
            json!(i + 1),
            "seq counts from 1 without gaps: {seen_a:?}"
        );
    }
    let winners: Vec<String> = seen_a
        .iter()
        .flat_map(|f| f["data"]["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["user_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(winners, grabbers, "every grab once, in order");

    // The points board: a change committed on the node that does not publish the board reaches
    // the publisher through Redis, and both nodes' subscribers see it with the same seq.
    subscribe(&mut on_a, "leaderboard:points").await;
    subscribe(&mut on_b, "leaderboard:points").await;
    let (first, _) = a.login("board-first").await;
    a.change(&first, 5, None).await;
    let shows = |user: String, score: i64| {
        move |frames: &[serde_json::Value]| {
            frames.last().is_some_and(|f| {
                f["data"]["top"].as_array().is_some_and(|top| {
                    top.iter()
                        .any(|e| e["user_id"] == user.as_str() && e["score"] == score)
                })
            })
        }
    };
    frames_of(&mut on_a, "leaderboard:points", shows(first.clone(), 5)).await;
    frames_of(&mut on_b, "leaderboard:points", shows(first.clone(), 5)).await;
    let publisher = lease_holder(&a, "leaderboard:points:default")
        .await
        .expect("one node publishes the board");
    let other = if publisher == "node-a" { &b } else { &a };
    let (top, _) = other.login("board-top").await;
    other.change(&top, 1_000, None).await;
    let last_a = frames_of(&mut on_a, "leaderboard:points", shows(top.clone(), 1_000)).await;
    let last_b = frames_of(&mut on_b, "leaderboard:points", shows(top.clone(), 1_000)).await;
    let (last_a, last_b) = (last_a.last().expect("frame"), last_b.last().expect("frame"));
    assert_eq!(last_a, last_b, "the nodes delivered different frames");
    assert_eq!(
        last_a["data"]["top"][0]["user_id"],
        top.as_str(),
        "{last_a}"
    );
}

#[actix_web::test]
async fn morning_sign_ups_on_either_node_are_counted_once_by_the_rounds_owner() {
    use futures_util::future::join_all;
    use serde_json::json;

    let Some((_, a, b)) = two_cluster_nodes().await else {
        return;
    };
    let nodes = [&a, &b];
    let mut users = Vec::new();
    for i in 0..40 {
        let node = nodes[i % 2];
        let user = node.login(&format!("early-{i}")).await;
        node.change(&user.0, 100, None).await;
        users.push(user);
    }
    let client = common::client();
    let call = |node: &str, path: &str, user: &(String, String)| {
        let node = if node == "a" { &a } else { &b };
        let request = client
            .post(node.url(path))
            .header("Authorization", &user.1)
            .json(&json!({"app_id": "default", "user_id": user.0}))
            .send();
        async move {
            request
                .await
                .expect("morning call")
                .json::<serde_json::Value>()
                .await
                .expect("morning body")
        }
    };

    // Everyone signs up at once, through alternating nodes; then again through the other one.
    let first = join_all(
        users
            .iter()
            .enumerate()
            .map(|(i, u)| call(if i % 2 == 0 { "a" } else { "b" }, "/v2/pick/sign.json", u)),
    )
    .await;
    for body in &first {
        assert_eq!(body["status"], true, "{body}");
    }
    let again = join_all(
        users
            .iter()
            .enumerate()
            .map(|(i, u)| call(if i % 2 == 0 { "b" } else { "a" }, "/v2/pick/sign.json", u)),
    )
    .await;
    for body in &again {
        assert_eq!(body["status"], false, "a second sign-up is refused: {body}");
    }
    for (i, (uid, _)) in users.iter().enumerate() {
        assert_eq!(nodes[(i + 1) % 2].balance(uid).await, 90, "charged once");
    }

    // One node serves the app's rounds, and both show the same count.
    let owner = lease_holder(&a, "morning:default").await;
    assert!(
        owner
            .as_deref()
            .is_some_and(|o| o == "node-a" || o == "node-b"),
        "{owner:?}"
    );
    for node in ["a", "b"] {
        let shown = call(node, "/v2/pick/show.json", &users[0]).await;
        assert_eq!(shown["data"]["pick_sum"], 40, "{shown}");
    }
}
