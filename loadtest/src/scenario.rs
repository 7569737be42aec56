//! The workloads: what one request looks like, the closed loop (`ledger`, `trivial`) and the open
//! loop (`ledger-rate`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::{Options, Scenario};
use crate::report::{Outcome, Stats, StopReason, Summary, DROPPED_KIND};

/// Longest `msg` text kept in an error kind; server messages are short sentences, and the cap keeps
/// one odd response from flooding the breakdown.
const ERROR_MSG_CHARS_MAX: usize = 80;

/// Builds the one HTTP client every request shares, so connections are kept alive and reused.
pub fn build_client(options: &Options) -> Result<Client> {
    Client::builder()
        // Never route through an HTTP proxy from the environment, and never follow a redirect:
        // requests must stay on the loopback target that was checked.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .build()
        .context("building HTTP client")
}

/// One kind of request, with everything needed to send it for a given sequence number.
pub struct Target {
    client: Client,
    scenario: Scenario,
    url: String,
    /// The scenario's URL on every target, requests going to each in turn.
    urls: Vec<String>,
    admin_key: String,
    /// Distinguishes this run's idempotency keys from any earlier run against the same database.
    run_id: String,
    users: u64,
    cards: u64,
    base: String,
    /// `redpack`: every user's bearer header, and the (batch, card) pairs grabbed.
    tokens: std::sync::OnceLock<Vec<String>>,
    grab_cards: std::sync::OnceLock<Vec<(i64, i64)>>,
}

impl Target {
    pub fn new(client: Client, options: &Options) -> Self {
        let path = match options.scenario {
            Scenario::Ledger | Scenario::LedgerRate => "/core/point/update.json",
            Scenario::Trivial => "/healthz",
            Scenario::Redpack => "/v2/redpack/rob.json",
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Target {
            client,
            scenario: options.scenario,
            url: format!("{}{}", options.base_url, path),
            urls: options
                .base_urls
                .iter()
                .map(|base| format!("{base}{path}"))
                .collect(),
            admin_key: options.admin_key.clone(),
            run_id: format!("{nanos:x}{:x}", std::process::id()),
            users: options.users,
            cards: options.cards,
            base: options.base_url.clone(),
            tokens: std::sync::OnceLock::new(),
            grab_cards: std::sync::OnceLock::new(),
        }
    }

    /// Creates the users the grants go to (`lt_0` .. `lt_{users-1}`) through `POST /admin/users`,
    /// which leaves existing users as they are. Grants to unknown users are refused.
    pub async fn prepare_users(&self) -> Result<()> {
        match self.scenario {
            Scenario::Trivial => return Ok(()),
            Scenario::Redpack => return self.prepare_redpack().await,
            Scenario::Ledger | Scenario::LedgerRate => {}
        }
        let base = self
            .url
            .strip_suffix("/core/point/update.json")
            .unwrap_or(&self.url)
            .to_string();
        let url = format!("{base}/admin/users");
        let mut set = JoinSet::new();
        let gate = Arc::new(Semaphore::new(32));
        for user in 0..self.users {
            let permit = Arc::clone(&gate).acquire_owned().await?;
            let request = self
                .client
                .post(&url)
                .header("X-Admin-Key", &self.admin_key)
                .json(&serde_json::json!({"app_id": "default", "user_id": format!("lt_{user}")}));
            set.spawn(async move {
                let _permit = permit;
                let response = request.send().await.context("creating a load-test user")?;
                let status = response.status();
                let body: Value = response.json().await.context("reading /admin/users")?;
                anyhow::ensure!(
                    status == StatusCode::OK && body.get("status") == Some(&Value::Bool(true)),
                    "creating user lt_{user} failed: {status} {body}"
                );
                Ok(())
            });
        }
        while let Some(done) = set.join_next().await {
            done.context("user creation task")??;
        }
        Ok(())
    }

    /// Sends request number `seq` and classifies the result.
    pub async fn send(&self, seq: u64) -> Outcome {
        match self.scenario {
            Scenario::Ledger | Scenario::LedgerRate => self.send_grant(seq).await,
            Scenario::Trivial => self.send_healthz(seq).await,
            Scenario::Redpack => self.send_grab(seq).await,
        }
    }

    /// The scenario's URL for request `seq`: the targets take turns.
    fn url_for(&self, seq: u64) -> &str {
        let turn = usize::try_from(seq).unwrap_or_default() % self.urls.len().max(1);
        self.urls.get(turn).unwrap_or(&self.url)
    }

    /// POSTs JSON to `path` with `headers`; the answer's envelope must say `status: true`.
    async fn call(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Result<Value> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let answer: Value = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?
            .json()
            .await?;
        anyhow::ensure!(answer["status"] == true, "{path} {body} failed: {answer}");
        Ok(answer)
    }

    /// `redpack`: logs the users in, pays each one point per card, and creates one session with
    /// the cards, each with a stock of one packet per user, a ticket of 1 and a unit of 1.
    async fn prepare_redpack(&self) -> Result<()> {
        let admin = [("X-Admin-Key", self.admin_key.as_str())];
        let batch = self
            .call(
                "/admin/redpack/sessions",
                &admin,
                serde_json::json!({"name": format!("lt-{}", self.run_id), "start_time": "00:00:00", "end_time": "24:00:00"}),
            )
            .await?["data"]["batch_id"]
            .as_i64()
            .context("batch_id")?;
        let mut cards = Vec::new();
        for _ in 0..self.cards {
            let card = self
                .call(
                    "/admin/redpack/cards",
                    &admin,
                    serde_json::json!({"batch_id": batch, "reward_type": "积分", "sum": self.users, "unit": 1,
                           "ticket": 1, "start_time": "00:00:00", "end_time": "24:00:00"}),
                )
                .await?["data"]["card_id"]
                .as_i64()
                .context("card_id")?;
            cards.push((batch, card));
        }
        let _ = self.grab_cards.set(cards);
        let mut set = JoinSet::new();
        let gate = Arc::new(Semaphore::new(32));
        for user in 0..self.users {
            let permit = Arc::clone(&gate).acquire_owned().await?;
            let (client, base, key, run, cards) = (
                self.client.clone(),
                self.base.clone(),
                self.admin_key.clone(),
                self.run_id.clone(),
                self.cards,
            );
            set.spawn(async move {
                let _permit = permit;
                let login: Value = client
                    .post(format!("{base}/v2/user/login.json"))
                    .json(&serde_json::json!({"auth_code": format!("lt_{user}")}))
                    .send()
                    .await?
                    .json()
                    .await?;
                let token = login["data"]["token"]
                    .as_str()
                    .context("login token (is POINTS_DEV_LOGIN=1 set?)")?;
                let grant: Value = client
                    .post(format!("{base}/core/point/update.json"))
                    .header("X-Admin-Key", key)
                    .header("Idempotency-Key", format!("lt-seed-{run}-{user}"))
                    .json(
                        &serde_json::json!({"uuid": format!("dev_lt_{user}"), "amount": cards,
                                              "expired_time": "2099-12-31 00:00:00"}),
                    )
                    .send()
                    .await?
                    .json()
                    .await?;
                anyhow::ensure!(grant["status"] == true, "seeding points failed: {grant}");
                anyhow::Ok((user, format!("Bearer {token}")))
            });
        }
        let mut tokens = vec![String::new(); usize::try_from(self.users)?];
        while let Some(done) = set.join_next().await {
            let (user, token) = done.context("login task")??;
            tokens[usize::try_from(user)?] = token;
        }
        let _ = self.tokens.set(tokens);
        Ok(())
    }

    /// Grab number `seq`: user `seq % U` grabs card `seq / U`, so no pair repeats.
    async fn send_grab(&self, seq: u64) -> Outcome {
        let (Some(tokens), Some(cards)) = (self.tokens.get(), self.grab_cards.get()) else {
            return Outcome::Error("not prepared".into());
        };
        let user = seq % self.users;
        let Some((batch, card)) = usize::try_from(seq / self.users)
            .ok()
            .and_then(|i| cards.get(i))
        else {
            return Outcome::Error("no card left for this request".into());
        };
        let body = format!(
            r#"{{"app_id":"default","user_id":"dev_lt_{user}","card_id":{card},"batch_id":{batch}}}"#
        );
        let token = usize::try_from(user)
            .ok()
            .and_then(|u| tokens.get(u))
            .cloned()
            .unwrap_or_default();
        let sent = self
            .client
            .post(self.url_for(seq))
            .header(reqwest::header::AUTHORIZATION, token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Outcome::Error(transport_error_kind(&error)),
        };
        let status = response.status();
        match response.bytes().await {
            Ok(bytes) => classify_envelope(status, &bytes),
            Err(error) => Outcome::Error(transport_error_kind(&error)),
        }
    }

    /// `redpack`: the packets the server says it granted today on the run's cards must equal the
    /// grabs it acknowledged (zero over-grab), and no card may exceed its stock. Prints the check.
    pub async fn verify(&self, summary: &Summary) -> Result<()> {
        let Some(cards) = self.grab_cards.get() else {
            return Ok(());
        };
        let listing: Value = self
            .client
            .get(format!("{}/admin/redpack?app_id=default", self.base))
            .header("X-Admin-Key", &self.admin_key)
            .send()
            .await?
            .json()
            .await?;
        let mut granted = 0;
        let mut over = 0;
        for session in listing["data"]["sessions"].as_array().into_iter().flatten() {
            for card in session["cards"].as_array().into_iter().flatten() {
                let id = card["card_id"].as_i64().unwrap_or_default();
                if cards.iter().any(|(_, c)| *c == id) {
                    let n = card["granted_today"].as_i64().unwrap_or_default();
                    granted += n;
                    over += (n - card["sum"].as_i64().unwrap_or_default()).max(0);
                }
            }
        }
        let acked = i64::try_from(summary.stats.ok).unwrap_or(i64::MAX);
        eprintln!("redpack check: {acked} grabs acknowledged, {granted} packets granted by the server, over-grab {over}");
        anyhow::ensure!(over == 0, "a card granted more than its stock");
        anyhow::ensure!(
            granted >= acked,
            "the server reports fewer grants ({granted}) than it acknowledged ({acked})"
        );
        Ok(())
    }

    async fn send_grant(&self, seq: u64) -> Outcome {
        let user = seq % self.users;
        // Every field is a fixed ASCII literal or a number, so formatting the body directly is
        // equivalent to serializing it and cheaper on a machine the server shares.
        let body = format!(
            concat!(
                r#"{{"app_id":"default","uuid":"lt_{}","amount":1,"task_id":"loadtest","#,
                r#""flag":"loadtest","transfer_info":"load test grant","#,
                r#""expired_time":"2099-12-31 00:00:00"}}"#
            ),
            user
        );
        let sent = self
            .client
            .post(self.url_for(seq))
            .header("X-Admin-Key", &self.admin_key)
            .header("Idempotency-Key", format!("lt-{}-{seq}", self.run_id))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Outcome::Error(transport_error_kind(&error)),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Outcome::Error(transport_error_kind(&error)),
        };
        classify_envelope(status, &bytes)
    }

    async fn send_healthz(&self, seq: u64) -> Outcome {
        let response = match self.client.get(self.url_for(seq)).send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Error(transport_error_kind(&error)),
        };
        let status = response.status();
        // Read the whole body so the connection goes back to the pool.
        if let Err(error) = response.bytes().await {
            return Outcome::Error(transport_error_kind(&error));
        }
        if status == StatusCode::OK {
            Outcome::Ok
        } else {
            Outcome::Error(format!("http {}", status.as_u16()))
        }
    }
}

/// Success is HTTP 200 with `"status": true` in the JSON envelope; anything else becomes an error
/// kind naming the HTTP status and, when present, the envelope's `code` and `msg`.
fn classify_envelope(status: StatusCode, body: &[u8]) -> Outcome {
    let envelope: Option<Value> = serde_json::from_slice(body).ok();
    let flag = envelope.as_ref().and_then(|v| v.get("status"));
    if status == StatusCode::OK && flag == Some(&Value::Bool(true)) {
        return Outcome::Ok;
    }
    let mut kind = format!("http {}", status.as_u16());
    match &envelope {
        Some(v) if flag == Some(&Value::Bool(false)) => {
            kind.push_str(" status:false");
            if let Some(code) = v.get("code") {
                kind.push_str(&format!(" code={code}"));
            }
            if let Some(msg) = v.get("msg").and_then(Value::as_str) {
                let msg: String = msg.chars().take(ERROR_MSG_CHARS_MAX).collect();
                kind.push_str(&format!(" ({msg})"));
            }
        }
        Some(_) => kind.push_str(" no status:true in body"),
        None => kind.push_str(" non-JSON body"),
    }
    Outcome::Error(kind)
}

fn transport_error_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect error".into()
    } else if error.is_body() || error.is_decode() {
        "body read error".into()
    } else {
        "request error".into()
    }
}

/// Closed loop: `concurrency` workers each send one request at a time, taking sequence numbers
/// from a shared counter, until the request budget is spent or the time budget has passed.
/// Requests already in flight at the deadline are allowed to finish (bounded by the timeout).
pub async fn closed_loop(target: Arc<Target>, options: &Options) -> Result<Summary> {
    let next_seq = Arc::new(AtomicU64::new(0));
    let requests = options.requests;
    let start = Instant::now();
    let deadline = start + options.duration;

    let mut workers = JoinSet::new();
    for _ in 0..options.concurrency {
        let target = Arc::clone(&target);
        let next_seq = Arc::clone(&next_seq);
        workers.spawn(async move {
            let mut stats = Stats::new()?;
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                if seq >= requests {
                    break;
                }
                let sent_at = Instant::now();
                let outcome = target.send(seq).await;
                stats.record(outcome, sent_at.elapsed());
            }
            anyhow::Ok(stats)
        });
    }

    let mut total = Stats::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.context("load worker panicked")??)?;
    }
    let elapsed = start.elapsed();
    let issued = next_seq.load(Ordering::Relaxed).min(requests);
    let stopped_by = if issued >= requests {
        StopReason::Requests
    } else {
        StopReason::Duration
    };
    Ok(Summary {
        stats: total,
        elapsed,
        stopped_by,
    })
}

/// Open loop: request `i` is due at `start + i / rate` whatever happened to earlier requests, and
/// its latency is measured from that due time, so a stalled server shows up as latency instead of
/// as a quietly lower send rate (coordinated omission). At most `max_inflight` requests are
/// outstanding; a request due while the cap is reached is not sent and counts as dropped.
pub async fn open_loop(target: Arc<Target>, options: &Options) -> Result<Summary> {
    let rate = options.rate.context("ledger-rate needs --rate")?;
    // Bounded in args::parse by OPEN_LOOP_REQUESTS_MAX, so the cast cannot overflow.
    let scheduled = (rate * options.duration.as_secs_f64()).round() as u64;
    let inflight = Arc::new(Semaphore::new(options.max_inflight));
    let mut tasks: JoinSet<(Outcome, Duration)> = JoinSet::new();
    let mut stats = Stats::new()?;
    let start = Instant::now();

    for seq in 0..scheduled {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        tokio::time::sleep_until(due).await;
        // Reap finished requests as we go so the set stays as small as the in-flight count.
        while let Some(joined) = tasks.try_join_next() {
            let (outcome, latency) = joined.context("request task panicked")?;
            stats.record(outcome, latency);
        }
        let Ok(permit) = Arc::clone(&inflight).try_acquire_owned() else {
            stats.count_error(DROPPED_KIND.to_string());
            continue;
        };
        let target = Arc::clone(&target);
        tasks.spawn(async move {
            let outcome = target.send(seq).await;
            let latency = due.elapsed();
            drop(permit);
            (outcome, latency)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (outcome, latency) = joined.context("request task panicked")?;
        stats.record(outcome, latency);
    }

    Ok(Summary {
        stats,
        elapsed: start.elapsed(),
        stopped_by: StopReason::Schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16, body: &str) -> String {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
        match classify_envelope(status, body.as_bytes()) {
            Outcome::Ok => "ok".into(),
            Outcome::Error(kind) => kind,
        }
    }

    #[test]
    fn envelope_classification() {
        assert_eq!(
            kind(200, r#"{"code":200,"msg":"ok","status":true,"data":[]}"#),
            "ok"
        );
        assert_eq!(
            kind(
                200,
                r#"{"code":300013,"msg":"insufficient","status":false,"data":[]}"#
            ),
            "http 200 status:false code=300013 (insufficient)"
        );
        assert_eq!(kind(503, "busy"), "http 503 non-JSON body");
        assert_eq!(kind(200, "{}"), "http 200 no status:true in body");
        assert_eq!(
            kind(401, r#"{"code":401,"status":false,"msg":"bad key"}"#),
            "http 401 status:false code=401 (bad key)"
        );
    }
}
