//! Three node processes on one Postgres and one Redis (a Redis of the scenario's own, so it can
//! be killed), a red-packet storm spread round-robin over them, and the failures that must lose
//! nothing: the card's owner killed mid-storm, the owner paused for longer than its lease,
//! Redis killed and started again, every database connection terminated, and only the owner's
//! connections terminated. Every scenario checks that no packet is granted twice, that every
//! acknowledged grab is in the database, that the books add up, that the counters stay within
//! the stock, that websocket watchers on every node saw the radio's frames with the same `seq`
//! (without gaps while Redis stayed up), and that every node's points board ends equal to the
//! database; the owner scenarios also check that the lease's epoch only grew.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ws::{next_json, open, subscribe};
use common::{backends, spawn_process, Backend, OwnRedis, ServerProcess, ADMIN_KEY};
use futures_util::stream::{self, StreamExt};
use points_engine::db::Db;
use serde_json::{json, Value};

/// Lease of the nodes under test: short, so a takeover happens within the test's time.
const LEASE_TTL_MS: u64 = 1_000;
/// Packets on the card; twice as many users grab it.
const STOCK: usize = 200;
/// Users whose rank every node's points board must agree on with the database.
const BOARD_SAMPLE: usize = 30;
/// How long a node's board may take to catch up after a failure (a rebuild after a node
/// stopped beating or Redis came back).
const BOARD_WAIT: Duration = Duration::from_secs(15);
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
    redis: OwnRedis,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        std::env::var("TEST_REDIS_URL").ok()?;
        if !backends().contains(&Backend::Postgres) {
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().await;
        let own = OwnRedis::start().await?;
        let redis = own.url();
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
            redis: own,
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

    /// Dev login through node `via`: the user id and the bearer header value.
    async fn login(&self, via: usize, code: &str) -> (String, String) {
        let body: Value = self
            .client
            .post(format!("{}/v2/user/login.json", self.nodes[via].address))
            .json(&json!({"app_id": "default", "auth_code": code}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        let uid = body["data"]["user_id"].as_str().expect("uid").to_string();
        let token = format!("Bearer {}", body["data"]["token"].as_str().expect("token"));
        (uid, token)
    }

    /// A websocket watcher of `topic` on every node; stop them with [`Watchers::finish`].
    async fn watch(&self, topic: &str) -> Watchers {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let (_, bearer) = self.login(i, &format!("watcher-{i}")).await;
            let mut ws = open(&node.address, &bearer).await;
            subscribe(&mut ws, topic).await;
            let (stop, topic) = (Arc::clone(&stop), topic.to_string());
            tasks.push(actix_web::rt::spawn(async move {
                let mut frames = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match next_json(&mut ws, Duration::from_millis(200)).await {
                        Some(frame) if frame["topic"] == topic.as_str() => frames.push(frame),
                        Some(_) => {}
                        // Nothing came, or the node is gone: keep what was seen.
                        None => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                frames
            }));
        }
        Watchers { stop, tasks }
    }

    /// Waits until every node in `nodes` ranks exactly the users the database gives points
    /// (their points board, through 003 `/api/rank_by_balance/`), within `within`.
    async fn assert_boards_match_database(
        &self,
        nodes: &[usize],
        users: &[(String, String)],
        within: Duration,
    ) {
        let db = Db::connect(&self.url, 1).await.expect("db");
        let deadline = Instant::now() + within;
        for &n in nodes {
            let address = &self.nodes[n].address;
            loop {
                let mut wrong = Vec::new();
                for (uid, token) in users {
                    let balance: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(b.balance), 0) FROM balances b                          JOIN users u ON u.id = b.user_id WHERE u.platform_uid = $1",
                    )
                    .bind(uid)
                    .fetch_one(&db.read)
                    .await
                    .expect("balance");
                    let body: Value = match self
                        .client
                        .get(format!("{address}/api/rank_by_balance/?openid={uid}"))
                        .header("Authorization", token)
                        .send()
                        .await
                    {
                        Ok(res) => res.json().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    };
                    let ranked = body["rank"].as_i64().is_some_and(|r| r > 0);
                    if body["code"] != 0 || ranked != (balance > 0) {
                        wrong.push((uid.clone(), balance, body["rank"].clone()));
                    }
                }
                if wrong.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node-{n}'s points board differs from the database: {wrong:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Websocket watchers, one per node.
struct Watchers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Value>>>,
}

impl Watchers {
    /// Stops the watchers; the frames each node delivered.
    async fn finish(self) -> Vec<Vec<Value>> {
        // Late frames of the last grabs arrive within the radio's interval.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut seen = Vec::new();
        for task in self.tasks {
            seen.push(task.await.expect("watcher"));
        }
        seen
    }
}

/// Frames every node in `nodes` delivered: the same `seq` carries the same frame on every node,
/// `seq` only grows within an epoch, and (unless `gaps`) grows by one.
fn assert_frames_agree(seen: &[Vec<Value>], nodes: &[usize], gaps: bool) {
    let mut by_seq: std::collections::HashMap<(String, u64), (usize, &Value)> =
        std::collections::HashMap::new();
    for &n in nodes {
        let frames = &seen[n];
        assert!(!frames.is_empty(), "node-{n} delivered no frame");
        let mut last: Option<(&str, u64)> = None;
        for frame in frames {
            let epoch = frame["epoch"].as_str().expect("epoch");
            let seq = frame["seq"].as_u64().expect("seq");
            if let Some((e, s)) = last.filter(|(e, _)| *e == epoch) {
                assert!(seq > s, "node-{n}: seq {seq} after {s} in epoch {e}");
                assert!(
                    gaps || seq == s + 1,
                    "node-{n}: seq {seq} after {s} in epoch {e} without a failure"
                );
            }
            last = Some((epoch, seq));
            if let Some((other, theirs)) = by_seq.insert((epoch.to_string(), seq), (n, frame)) {
                assert_eq!(
                    theirs, frame,
                    "node-{other} and node-{n} delivered different frames as seq {seq}"
                );
            }
        }
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
        users.push(cluster.login(i % 3, &format!("f{i}")).await);
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
    let watchers = cluster.watch("redpack:radio").await;
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
    let survivors: Vec<usize> = (0..3).filter(|n| *n != victim).collect();
    assert_frames_agree(&watchers.finish().await, &survivors, false);
    cluster
        .assert_boards_match_database(&survivors, &users[..BOARD_SAMPLE], BOARD_WAIT)
        .await;
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
    let watchers = cluster.watch("redpack:radio").await;

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
    assert_frames_agree(&watchers.finish().await, &[0, 1, 2], false);
    cluster
        .assert_boards_match_database(&[0, 1, 2], &users[..BOARD_SAMPLE], BOARD_WAIT)
        .await;
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
    terminating_connections_mid_storm_loses_no_grab(false).await;
}

#[actix_web::test]
async fn terminating_the_owners_database_connections_mid_storm_loses_no_grab() {
    terminating_connections_mid_storm_loses_no_grab(true).await;
}

/// The storm; once 60 grabs are acknowledged, the database connections of every node (as a
/// database failover would) or of the card's owner only are terminated.
async fn terminating_connections_mid_storm_loses_no_grab(owner_only: bool) {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (batch, card, users) = card_and_users(&cluster).await;
    let (_, owner, _) = first_grab(&cluster, &users[0], batch, card, 0).await;
    let watchers = cluster.watch("redpack:radio").await;
    let admin_db = Db::connect(&cluster.url, 1).await.expect("db");
    let terminated = Arc::new(Mutex::new(None));
    let report = Arc::clone(&terminated);
    // Every node names its connections `points-engine <node id>`.
    let whose = if owner_only {
        format!("points-engine {owner}")
    } else {
        "points-engine %".to_string()
    };

    let pattern = whose.clone();

    // Act
    let mut seen = storm(&cluster, &users, batch, card, 60, move || {
        actix_web::rt::spawn(async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND application_name LIKE $1",
            )
            .bind(pattern)
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
    eprintln!("{killed} connections terminated ({whose}); {after} grabs acknowledged after");
    seen.acked.sort_by_key(|(u, _, _)| *u);
    assert_nothing_lost_or_doubled(&cluster.url, card, &users, &seen).await;
    assert_frames_agree(&watchers.finish().await, &[0, 1, 2], false);
    cluster
        .assert_boards_match_database(&[0, 1, 2], &users[..BOARD_SAMPLE], BOARD_WAIT)
        .await;
}

#[actix_web::test]
async fn killing_redis_mid_storm_pauses_fan_out_and_loses_no_grab() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let (batch, card, users) = card_and_users(&cluster).await;
    first_grab(&cluster, &users[0], batch, card, 0).await;
    let watchers = cluster.watch("redpack:radio").await;
    // The radio's numbering before the failure, as the first grab's frame left it in Redis.
    let database = cluster.url.rsplit('/').next().expect("database name");
    let client = redis::Client::open(cluster.redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let old_epoch: String = redis::cmd("HGET")
        .arg(format!("points:{database}:topic:redpack:radio"))
        .arg("epoch")
        .query_async(&mut conn)
        .await
        .expect("the radio's epoch");
    let pid = cluster.redis.child.as_ref().expect("redis").id();
    let killed_at = Arc::new(Mutex::new(None));
    let mark = Arc::clone(&killed_at);

    // Act: the storm; Redis is SIGKILLed once 60 grabs are acknowledged, and started again
    // (empty) after the storm.
    let mut seen = storm(&cluster, &users, batch, card, 60, move || {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        *mark.lock().expect("mark") = Some(Instant::now());
    })
    .await;
    let killed_at = killed_at.lock().expect("killed").expect("Redis was killed");
    cluster.redis.kill();
    assert!(cluster.redis.restart().await, "Redis did not start again");

    // Assert: grabs went on without Redis, and nothing was lost or doubled.
    let without = seen
        .acked
        .iter()
        .filter(|(_, sent, _)| *sent > killed_at)
        .count();
    assert!(without > 0, "no grab was acknowledged while Redis was down");
    seen.acked.push((0, Instant::now(), Instant::now()));
    assert_nothing_lost_or_doubled(&cluster.url, card, &users, &seen).await;

    // Fan-out resumes on every node under a new epoch (the new Redis has no numbering): grabs
    // of a second card until every watcher saw a frame of the new epoch.
    let second = cluster
        .admin(
            "/admin/redpack/cards",
            json!({"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": 40,
                   "unit": 1, "ticket": 0, "start_time": "00:00:00", "end_time": "24:00:00"}),
        )
        .await["data"]["card_id"]
        .as_i64()
        .expect("card_id");
    let after = cluster.watch("redpack:radio").await;
    for (i, (uid, token)) in users.iter().take(10).enumerate() {
        let _ = cluster
            .client
            .post(format!(
                "{}/v2/redpack/rob.json",
                cluster.nodes[i % 3].address
            ))
            .header("Authorization", token)
            .json(
                &json!({"app_id": "default", "user_id": uid, "card_id": second, "batch_id": batch}),
            )
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let resumed = after.finish().await;
    let seen_before = watchers.finish().await;
    assert_frames_agree(&seen_before, &[0, 1, 2], true);
    assert_frames_agree(&resumed, &[0, 1, 2], false);
    for (n, frames) in resumed.iter().enumerate() {
        let epoch = frames.last().and_then(|f| f["epoch"].as_str());
        assert!(
            epoch.is_some_and(|e| e != old_epoch),
            "node-{n} delivered no frame of a new epoch after Redis came back: {frames:?}"
        );
    }
    cluster
        .assert_boards_match_database(&[0, 1, 2], &users[..BOARD_SAMPLE], BOARD_WAIT)
        .await;
}
