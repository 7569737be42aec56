//! Three node processes on one Postgres and one Redis, a red-packet storm spread round-robin
//! over them, and the failures that must lose nothing: the card's owner killed mid-storm, the
//! owner paused for longer than its lease, and every database connection terminated. Every
//! scenario checks that no packet is granted twice, that every acknowledged grab is in the
//! database, that the books add up and that the counters stay within the stock; the owner
//! scenarios also check that the lease's epoch only grew.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{backends, spawn_process, Backend, ServerProcess, ADMIN_KEY};
use futures_util::stream::{self, StreamExt};
use points_engine::db::Db;
use serde_json::{json, Value};

/// Lease of the nodes under test: short, so a takeover happens within the test's time.
const LEASE_TTL_MS: u64 = 1_000;
/// Packets on the card; twice as many users grab it.
const STOCK: usize = 200;
/// Grabs in flight at once.
const CONCURRENCY: usize = 48;
/// Longest a user keeps retrying a grab before the test gives up.
const USER_DEADLINE: Duration = Duration::from_secs(40);

/// One scenario at a time: three nodes each, their connections and their cores, are as much as
/// one Postgres and this machine should carry at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    url: String,
    nodes: Vec<ServerProcess>,
    client: reqwest::Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        let redis = std::env::var("TEST_REDIS_URL").ok()?;
        if !backends().contains(&Backend::Postgres) {
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().await;
        let (url, _) = common::fresh_database(Backend::Postgres).await;
        let ttl = LEASE_TTL_MS.to_string();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let id = format!("node-{i}");
            let env = [
                ("REDIS_URL", redis.as_str()),
                ("POINTS_NODE_ID", id.as_str()),
                ("POINTS_LEASE_TTL_MS", ttl.as_str()),
                ("POINTS_DB_MAX_CONNECTIONS", "4"),
            ];
            nodes.push(spawn_process(&url, &env).await);
        }
        // Like a load balancer's upstream timeout: a request to a paused node is given up and
        // tried on the next node.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(1_500))
            .build()
            .ok()?;
        Some(Cluster {
            url,
            nodes,
            client,
            _turn: turn,
        })
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let body: Value = self
            .client
            .post(format!("{}{path}", self.nodes[0].address))
            .header("X-Admin-Key", ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("admin body");
        assert_eq!(body["status"], true, "{path}: {body}");
        body
    }

    /// The card's lease: (owner node id, epoch).
    async fn lease(&self, card: i64, via: usize) -> Option<(String, i64)> {
        let view: Value = self
            .client
            .get(format!("{}/admin/cluster", self.nodes[via].address))
            .header("X-Admin-Key", ADMIN_KEY)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let lease = view["data"]["leases"]
            .as_array()?
            .iter()
            .find(|l| l["activity"] == format!("redpack:card:{card}"))?
            .clone();
        Some((
            lease["node_id"].as_str()?.to_string(),
            lease["epoch"].as_i64()?,
        ))
    }
}

/// What a storm saw.
#[derive(Default)]
struct Seen {
    /// Users whose grab was acknowledged: when its last attempt was sent, and when it was
    /// answered.
    acked: Vec<(usize, Instant, Instant)>,
    /// Users refused as sold out or as having grabbed already.
    refused: usize,
}

/// Every user grabs until a node answers it for good (a win or a refusal), trying the next node
/// on a connection error, a timeout or a "try again". `fault` runs once `trigger` grabs are
/// acknowledged.
async fn storm(
    cluster: &Cluster,
    users: &[(String, String)],
    batch: i64,
    card: i64,
    trigger: usize,
    fault: impl FnOnce() + Send,
) -> Seen {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let fault = Mutex::new(Some(fault));
    let addresses: Vec<String> = cluster.nodes.iter().map(|n| n.address.clone()).collect();
    stream::iter(0..users.len())
        .map(|u| {
            let (seen, addresses, client) = (Arc::clone(&seen), &addresses, &cluster.client);
            let fault = &fault;
            async move {
                let started = Instant::now();
                let mut attempt = u;
                while started.elapsed() < USER_DEADLINE {
                    let address = &addresses[attempt % addresses.len()];
                    attempt += 1;
                    let sent = Instant::now();
                    let answer = client
                        .post(format!("{address}/v2/redpack/rob.json"))
                        .header("Authorization", &users[u].1)
                        .json(&json!({"app_id": "default", "user_id": users[u].0,
                                      "card_id": card, "batch_id": batch}))
                        .send()
                        .await;
                    let Ok(answer) = answer else { continue };
                    let Ok(body) = answer.json::<Value>().await else {
                        continue;
                    };
                    if body["status"] == true {
                        let acked = {
                            let mut seen = seen.lock().expect("seen");
                            seen.acked.push((u, sent, Instant::now()));
                            seen.acked.len()
                        };
                        if acked >= trigger {
                            if let Some(fault) = fault.lock().expect("fault").take() {
                                fault();
                            }
                        }
                        return;
                    }
                    let msg = body["msg"].as_str().unwrap_or_default();
                    if msg == "已被抢光了" || msg == "您已参与过了" {
                        seen.lock().expect("seen").refused += 1;
                        return;
                    }
                    // Unavailable or busy: the owner is moving; try again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("user {u} got no answer within {USER_DEADLINE:?}");
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    Arc::try_unwrap(seen)
        .ok()
        .expect("storm done")
        .into_inner()
        .expect("seen")
}

/// Sets up a card with [`STOCK`] packets and twice as many users, logged in round-robin.
async fn card_and_users(cluster: &Cluster) -> (i64, i64, Vec<(String, String)>) {
    let batch = cluster
        .admin(
            "/admin/redpack/sessions",
            json!({"app_id": "default", "name": "faults", "start_time": "00:00:00", "end_time": "24:00:00"}),
        )
        .await["data"]["batch_id"]
        .as_i64()
        .expect("batch_id");
    let card = cluster
        .admin(
            "/admin/redpack/cards",
            json!({"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": STOCK,
                   "unit": 1, "ticket": 0, "start_time": "00:00:00", "end_time": "24:00:00"}),
        )
        .await["data"]["card_id"]
        .as_i64()
        .expect("card_id");
    let mut users = Vec::new();
    for i in 0..STOCK * 2 {
        let address = &cluster.nodes[i % 3].address;
        let body: Value = cluster
            .client
            .post(format!("{address}/v2/user/login.json"))
            .json(&json!({"app_id": "default", "auth_code": format!("f{i}")}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        let uid = body["data"]["user_id"].as_str().expect("uid").to_string();
        let token = format!("Bearer {}", body["data"]["token"].as_str().expect("token"));
        users.push((uid, token));
    }
    (batch, card, users)
}

/// `first` grabs the card through node `via`, which takes the free card; answers the owner's
/// index, node id and lease epoch.
async fn first_grab(
    cluster: &Cluster,
    first: &(String, String),
    batch: i64,
    card: i64,
    via: usize,
) -> (usize, String, i64) {
    let body: Value = cluster
        .client
        .post(format!(
            "{}/v2/redpack/rob.json",
            cluster.nodes[via].address
        ))
        .header("Authorization", &first.1)
        .json(&json!({"app_id": "default", "user_id": first.0, "card_id": card, "batch_id": batch}))
        .send()
        .await
        .expect("first grab")
        .json()
        .await
        .expect("first body");
    assert_eq!(body["status"], true, "{body}");
    let (owner, epoch) = cluster.lease(card, 0).await.expect("lease");
    let index = owner
        .trim_start_matches("node-")
        .parse()
        .expect("node index");
    (index, owner, epoch)
}

/// The facts every scenario checks on the database.
async fn assert_nothing_lost_or_doubled(
    url: &str,
    card: i64,
    users: &[(String, String)],
    seen: &Seen,
) {
    let db = Db::connect(url, 2).await.expect("db");
    let granted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT u.platform_uid, COUNT(*) FROM ledger_entries e JOIN users u ON u.id = e.user_id \
         WHERE e.kind = 'redpack' AND e.reference LIKE $1 GROUP BY u.platform_uid",
    )
    .bind(format!("card:{card}:%"))
    .fetch_all(&db.read)
    .await
    .expect("grants");
    assert!(
        granted.iter().all(|(_, n)| *n == 1),
        "a packet granted twice to one user: {granted:?}"
    );
    assert_eq!(granted.len(), STOCK, "the whole stock is granted, no more");
    let granted: HashSet<&str> = granted.iter().map(|(uid, _)| uid.as_str()).collect();
    let lost: Vec<&str> = seen
        .acked
        .iter()
        .map(|(u, _, _)| users[*u].0.as_str())
        .filter(|uid| !granted.contains(uid))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged grabs not in the database: {lost:?}"
    );
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM balances b WHERE b.balance <> \
         (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.user_id = b.user_id)",
    )
    .fetch_one(&db.read)
    .await
    .expect("books");
    assert_eq!(
        unbalanced, 0,
        "balances that are not the sum of their entries"
    );
    let stock: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(count), 0) FROM ledger_counters WHERE counter_key LIKE $1",
    )
    .bind(format!("%card:{card}:%"))
    .fetch_one(&db.read)
    .await
    .expect("stock counter");
    assert!(stock <= STOCK as i64, "stock counter {stock} past {STOCK}");
}

#[actix_web::test]
async fn killing_the_owner_mid_storm_loses_no_grab_and_moves_the_card_within_a_lease() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let (batch, card, users) = card_and_users(&cluster).await;
    let (victim, owner, epoch) = first_grab(&cluster, &users[0], batch, card, 1).await;
    let pid = cluster.nodes[victim].child.id();
    let killed_at = Arc::new(Mutex::new(None));
    let mark = Arc::clone(&killed_at);

    // Act: the storm; the owner is SIGKILLed once 60 grabs are acknowledged.
    let mut seen = storm(&cluster, &users, batch, card, 60, move || {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        *mark.lock().expect("mark") = Some(Instant::now());
    })
    .await;
    cluster.nodes[victim].kill();

    // Assert: nothing lost or doubled; the card moved to a live node with a higher epoch, and
    // grabs were acknowledged again within a few leases of the kill.
    seen.acked.push((0, Instant::now(), Instant::now()));
    assert_nothing_lost_or_doubled(&cluster.url, card, &users, &seen).await;
    let survivor = (victim + 1) % 3;
    let (new_owner, new_epoch) = cluster.lease(card, survivor).await.expect("lease");
    assert_ne!(new_owner, owner, "the dead node still owns the card");
    assert!(
        new_epoch > epoch,
        "epoch {new_epoch} did not grow past {epoch}"
    );
    let killed_at = killed_at
        .lock()
        .expect("killed")
        .expect("the owner was killed");
    // The first grab sent after the kill and acknowledged: a live node took the card over.
    let resumed = seen
        .acked
        .iter()
        .filter(|(_, sent, _)| *sent > killed_at)
        .map(|(_, _, at)| *at)
        .min();
    if let Some(resumed) = resumed {
        let takeover = resumed - killed_at;
        eprintln!(
            "takeover after SIGKILL: {} ms (lease {LEASE_TTL_MS} ms)",
            takeover.as_millis()
        );
        assert!(
            takeover < Duration::from_millis(LEASE_TTL_MS * 4),
            "grabs resumed only after {takeover:?}"
        );
    }
}

#[actix_web::test]
async fn pausing_the_owner_past_its_lease_fences_it_and_loses_nothing() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (batch, card, users) = card_and_users(&cluster).await;
    let (paused, owner, epoch) = first_grab(&cluster, &users[0], batch, card, 2).await;
    let pid = cluster.nodes[paused].child.id();

    // Act: the storm; once 60 grabs are acknowledged the owner is stopped for three leases and
    // then continued, while the storm goes on.
    let mut seen = storm(&cluster, &users, batch, card, 60, move || {
        let _ = std::process::Command::new("kill")
            .arg("-STOP")
            .arg(pid.to_string())
            .status();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(LEASE_TTL_MS * 3));
            let _ = std::process::Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status();
        });
    })
    .await;

    // Assert: nothing lost or doubled, another node owns the card under a higher epoch, and the
    // paused node still answers (it stepped down and relays).
    seen.acked.push((0, Instant::now(), Instant::now()));
    assert_nothing_lost_or_doubled(&cluster.url, card, &users, &seen).await;
    let (new_owner, new_epoch) = cluster.lease(card, paused).await.expect("lease");
    assert!(
        new_epoch > epoch,
        "epoch {new_epoch} did not grow past {epoch}"
    );
    let metrics = cluster
        .client
        .get(format!("{}/metrics", cluster.nodes[paused].address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let fenced = metrics
        .lines()
        .find(|l| l.starts_with("points_cluster_fenced_changes_total"))
        .unwrap_or_default()
        .to_string();
    eprintln!("paused owner {owner} (epoch {epoch}) -> {new_owner} (epoch {new_epoch}); {fenced}");
}

#[actix_web::test]
async fn terminating_every_database_connection_mid_storm_loses_no_grab() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (batch, card, users) = card_and_users(&cluster).await;
    let admin_db = Db::connect(&cluster.url, 1).await.expect("db");
    let terminated = Arc::new(Mutex::new(None));
    let report = Arc::clone(&terminated);

    // Act: the storm; once 60 grabs are acknowledged every connection of every node to the
    // database is terminated (as a database failover would).
    let mut seen = storm(&cluster, &users, batch, card, 60, move || {
        actix_web::rt::spawn(async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&admin_db.write)
            .await
            .expect("terminate");
            *report.lock().expect("report") = Some((n, Instant::now()));
        });
    })
    .await;

    // Assert: connections were terminated while grabs were still coming, the nodes
    // reconnected and acknowledged grabs sent after it, and nothing was lost or doubled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (killed, at) = loop {
        if let Some(done) = *terminated.lock().expect("terminated") {
            break done;
        }
        assert!(Instant::now() < deadline, "the terminations never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(killed > 0, "no connection was terminated");
    let after = seen.acked.iter().filter(|(_, sent, _)| *sent > at).count();
    assert!(
        after > 0,
        "no grab was acknowledged after the connections were terminated"
    );
    eprintln!("{killed} connections terminated; {after} grabs acknowledged after");
    seen.acked.sort_by_key(|(u, _, _)| *u);
    assert_nothing_lost_or_doubled(&cluster.url, card, &users, &seen).await;
}
