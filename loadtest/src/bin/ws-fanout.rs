//! `ws-fanout`: websocket fan-out of live leaderboard changes.
//!
//! Opens `--subscribers` websockets to `/ws`, each subscribed to `leaderboard:points` and
//! `redpack:radio`, then makes `--changes` score changes (a grant to one user, `--interval-ms`
//! apart, each lifting the user to a new top score) and measures, for every subscriber, the time
//! from sending the change to receiving the frame that shows the new score. Prints subscribers,
//! deliveries and the delivery latency percentiles. With `--hold-secs`, it then keeps every
//! connection open and reading for that long (touching `--ready-file` first), so a grab storm can
//! be measured with the subscribers connected.
//!
//! With several nodes, `--change-url` names the node the changes are sent to (default: `--url`),
//! so the latency from a commit on one node to subscribers on another can be measured.
//!
//! Usage: `ws-fanout --url http://127.0.0.1:18081 --admin-key KEY [--subscribers 10000]
//! [--changes 30] [--interval-ms 500] [--hold-secs 0] [--ready-file PATH] [--change-url URL]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[path = "../dev_login.rs"]
mod dev_login;
use dev_login::login;

/// Most subscribers one run may open.
const SUBSCRIBERS_MAX: u64 = 60_000;
/// Connections opened at once while connecting.
const CONNECT_CONCURRENCY: usize = 200;
/// Points each change adds, so every change gives a new, distinct top score.
const CHANGE_POINTS: i64 = 1_000;
/// How long after the last change the subscribers keep reading for late frames.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

struct Options {
    url: String,
    change_url: Option<String>,
    admin_key: String,
    subscribers: u64,
    changes: u64,
    interval: Duration,
    hold: Duration,
    ready_file: Option<String>,
}

fn parse() -> Result<Options> {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        change_url: None,
        admin_key: std::env::var("POINTS_ADMIN_KEY").unwrap_or_else(|_| "dev-admin-key".into()),
        subscribers: 10_000,
        changes: 30,
        interval: Duration::from_millis(500),
        hold: Duration::ZERO,
        ready_file: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => o.url = value()?,
            "--change-url" => o.change_url = Some(value()?),
            "--admin-key" => o.admin_key = value()?,
            "--subscribers" => o.subscribers = value()?.parse()?,
            "--changes" => o.changes = value()?.parse()?,
            "--interval-ms" => o.interval = Duration::from_millis(value()?.parse()?),
            "--hold-secs" => o.hold = Duration::from_secs(value()?.parse()?),
            "--ready-file" => o.ready_file = Some(value()?),
            other => bail!("unknown option {other:?}"),
        }
    }
    for url in std::iter::once(&o.url).chain(&o.change_url) {
        let host = reqwest::Url::parse(url)?
            .host_str()
            .unwrap_or_default()
            .to_string();
        if host != "127.0.0.1" && host != "localhost" && host != "[::1]" {
            bail!("--url and --change-url must be loopback addresses");
        }
    }
    if !(1..=SUBSCRIBERS_MAX).contains(&o.subscribers) || o.changes > 10_000 {
        bail!("--subscribers must be 1..={SUBSCRIBERS_MAX}, --changes at most 10000");
    }
    if o.hold > Duration::from_secs(3_600) {
        bail!("--hold-secs must be at most 3600");
    }
    Ok(o)
}

/// The star's score in a `leaderboard:points` frame. serde_json writes object keys in sorted
/// order, so a row reads `{"avatar":..,"nick":..,"rank":..,"score":N,"user_id":"<star>"}`.
fn score_in_frame(text: &str, marker: &str) -> Option<i64> {
    if !text.contains("\"topic\":\"leaderboard:points\"") {
        return None;
    }
    let at = text.find(marker)?;
    let head = &text[..at];
    let start = head.rfind("\"score\":")? + "\"score\":".len();
    let digits: String = head[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// When each change was sent, by the score it produces.
type Sent = Arc<Mutex<Vec<(i64, Instant)>>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let o = parse()?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (star, _) = login(&client, &o.url, "ws_star").await?;
    let ws_base = format!("{}/ws?token=", o.url.replacen("http://", "ws://", 1));

    let sent: Sent = Arc::default();
    let latencies: Arc<Mutex<Histogram<u64>>> =
        Arc::new(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?));
    let frames = Arc::new(AtomicU64::new(0));
    let stop_at = Arc::new(Mutex::new(None::<Instant>));

    // Connect every subscriber; each reads until told to stop.
    let started = Instant::now();
    let connected = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    for i in 0..o.subscribers {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (client, url, ws_base) = (client.clone(), o.url.clone(), ws_base.clone());
        let (star, sent, latencies, frames, stop_at, connected) = (
            star.clone(),
            Arc::clone(&sent),
            Arc::clone(&latencies),
            Arc::clone(&frames),
            Arc::clone(&stop_at),
            Arc::clone(&connected),
        );
        readers.push(tokio::spawn(async move {
            // One user per subscriber: a user holds a bounded number of websockets.
            let (_, token) = login(&client, &url, &format!("ws_watcher{i}")).await?;
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}{token}")).await?;
            for topic in ["leaderboard:points", "redpack:radio"] {
                ws.send(Message::text(
                    json!({"op": "subscribe", "topic": topic}).to_string(),
                ))
                .await?;
            }
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let mut best = 0;
            let marker = format!("\"user_id\":\"{star}\"");
            loop {
                let deadline = *stop_at.lock().map_err(|_| anyhow::anyhow!("lock"))?;
                let wait = match deadline {
                    Some(at) => at.saturating_duration_since(Instant::now()),
                    None => Duration::from_millis(500),
                };
                if deadline.is_some() && wait.is_zero() {
                    break;
                }
                let Ok(next) = tokio::time::timeout(wait, ws.next()).await else {
                    continue;
                };
                let Some(Ok(msg)) = next else {
                    bail!("connection closed by the server")
                };
                let Message::Text(text) = msg else { continue };
                frames.fetch_add(1, Ordering::Relaxed);
                let at = Instant::now();
                // A full JSON parse of every frame by 10,000 readers would make this client the
                // bottleneck on a small machine; the star's score is found by a substring search.
                let score = score_in_frame(text.as_str(), &marker).unwrap_or(0);
                if score > best {
                    best = score;
                    let sent_at = sent
                        .lock()
                        .map_err(|_| anyhow::anyhow!("lock"))?
                        .iter()
                        .find(|(s, _)| *s == score)
                        .map(|(_, t)| *t);
                    if let Some(t) = sent_at {
                        let us =
                            u64::try_from(at.duration_since(t).as_micros()).unwrap_or(u64::MAX);
                        latencies
                            .lock()
                            .map_err(|_| anyhow::anyhow!("lock"))?
                            .saturating_record(us.max(1));
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    while connected.load(Ordering::Relaxed) < o.subscribers {
        if readers.iter().any(|r| r.is_finished()) {
            bail!("a subscriber failed to connect");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "ws-fanout: {} subscribers connected in {:.1} s",
        o.subscribers,
        started.elapsed().as_secs_f64()
    );

    // The changes: each grant lifts the star to a new top score.
    let change_url = o.change_url.clone().unwrap_or_else(|| o.url.clone());
    let mut score = client
        .post(format!("{change_url}/core/user/balance.json"))
        .header("X-Admin-Key", &o.admin_key)
        .json(&json!({"uuid": star}))
        .send()
        .await?
        .json::<Value>()
        .await?["data"]["active_balance"]
        .as_i64()
        .unwrap_or(0);
    let run = format!(
        "{:x}",
        std::process::id() as u64 ^ started.elapsed().as_nanos() as u64
    );
    for i in 0..o.changes {
        tokio::time::sleep(o.interval).await;
        score += CHANGE_POINTS;
        sent.lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .push((score, Instant::now()));
        let answer: Value = client
            .post(format!("{change_url}/core/point/update.json"))
            .header("X-Admin-Key", &o.admin_key)
            .header("Idempotency-Key", format!("ws-{run}-{i}"))
            .json(&json!({"uuid": star, "amount": CHANGE_POINTS, "expired_time": "2099-12-31 00:00:00"}))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(answer["status"] == true, "grant failed: {answer}");
    }
    tokio::time::sleep(DRAIN_WAIT).await;
    let deliveries = latencies.lock().map_err(|_| anyhow::anyhow!("lock"))?.len();
    let frames_before_hold = frames.load(Ordering::Relaxed);
    {
        let h = latencies.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {} subscribers | {} changes | {} of {} deliveries | p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms |",
            o.subscribers,
            o.changes,
            deliveries,
            o.subscribers * o.changes,
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    if !o.hold.is_zero() {
        if let Some(path) = &o.ready_file {
            std::fs::write(path, "ready\n")?;
        }
        eprintln!(
            "ws-fanout: holding {} connections for {} s",
            o.subscribers,
            o.hold.as_secs()
        );
    }
    *stop_at.lock().map_err(|_| anyhow::anyhow!("lock"))? = Some(Instant::now() + o.hold);
    let mut failed = 0;
    for r in readers {
        if !matches!(r.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    if !o.hold.is_zero() {
        println!(
            "held {} subscribers: {} frames received while holding, {} connections lost",
            o.subscribers,
            frames.load(Ordering::Relaxed) - frames_before_hold,
            failed
        );
    } else if failed > 0 {
        println!("{failed} connections lost");
    }
    Ok(())
}
