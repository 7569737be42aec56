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

    // A graceful stop hands over at once, and the epoch still grows.
    b.leave().await.expect("leave");
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
