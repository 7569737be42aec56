//! `flood`: one ordinary user beside floods of each route class, with the server's rate limits
//! on.
//!
//! An ordinary user reads their points at a steady pace (`--pace-ms` apart) for `--seconds`,
//! first alone, then while `--flooders` closed-loop workers flood one class as fast as they can:
//! `login` (logins from this one address), `read` and `grab` (one user's balance reads and
//! sign-ins), `write` (one 002 caller's grants, distinct keys) and `upload` (one user's image
//! uploads). Prints, per phase, the ordinary user's p50/p99/max and failed requests, what the
//! flood got (answered, refused with 429, other), and the server's resident memory (`--pid`).
//!
//! Usage: `flood --url http://127.0.0.1:18090 --gateway-secret S [--pid PID] [--seconds 10]
//! [--flooders 32] [--pace-ms 50]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[path = "../dev_login.rs"]
mod dev_login;
use dev_login::login;

const BOUNDARY: &str = "----floodboundary";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";

struct Options {
    url: String,
    gateway_secret: String,
    pid: Option<u32>,
    seconds: u64,
    flooders: usize,
    pace: Duration,
}

fn parse() -> Result<Options> {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        gateway_secret: std::env::var("POINTS_GATEWAY_SECRET").unwrap_or_default(),
        pid: None,
        seconds: 10,
        flooders: 32,
        pace: Duration::from_millis(50),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => o.url = value()?,
            "--gateway-secret" => o.gateway_secret = value()?,
            "--pid" => o.pid = Some(value()?.parse()?),
            "--seconds" => o.seconds = value()?.parse()?,
            "--flooders" => o.flooders = value()?.parse()?,
            "--pace-ms" => o.pace = Duration::from_millis(value()?.parse()?),
            other => bail!("unknown option {other:?}"),
        }
    }
    let host = reqwest::Url::parse(&o.url)?
        .host_str()
        .unwrap_or_default()
        .to_string();
    if host != "127.0.0.1" && host != "localhost" {
        bail!("--url must be a loopback address");
    }
    if !(1..=300).contains(&o.seconds) || !(1..=1024).contains(&o.flooders) {
        bail!("--seconds must be 1..=300 and --flooders 1..=1024");
    }
    Ok(o)
}

/// The server's resident memory in MiB, from `/proc`.
fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    None,
    Login,
    Read,
    Grab,
    Write,
    Upload,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::None => "alone",
            Class::Login => "login flood",
            Class::Read => "read flood",
            Class::Grab => "grab flood",
            Class::Write => "write flood",
            Class::Upload => "upload flood",
        }
    }
}

/// What one flood request got.
#[derive(Default)]
struct FloodCounts {
    ok: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

struct Flooder {
    client: reqwest::Client,
    url: String,
    user: String,
    auth: String,
    gateway_secret: String,
}

impl Flooder {
    fn request(&self, class: Class, n: u64) -> reqwest::RequestBuilder {
        let url = &self.url;
        match class {
            Class::None | Class::Read => self
                .client
                .post(format!("{url}/v2/user/points.json"))
                .header("Authorization", &self.auth)
                .json(&json!({"user_id": self.user})),
            Class::Login => self
                .client
                .post(format!("{url}/v2/user/login.json"))
                .json(&json!({"auth_code": format!("flood-login-{}", n % 1000)})),
            Class::Grab => self
                .client
                .post(format!("{url}/v2/sign/do.json"))
                .header("Authorization", &self.auth)
                .json(&json!({"user_id": self.user})),
            Class::Write => self
                .client
                .post(format!("{url}/api/v1/open/swan/integral/points"))
                .header("X-Consumer-Custom-ID", "@flood:example.com")
                .header("X-Gateway-Secret", &self.gateway_secret)
                .json(&json!({"transactionId": format!("flood-{n}"), "userId": "@flood:example.com", "point": 1})),
            Class::Upload => {
                let mut body = format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"openid\"\r\n\r\n{}\r\n\
                     --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
                     Content-Type: image/png\r\n\r\n",
                    self.user
                )
                .into_bytes();
                body.extend_from_slice(PNG);
                body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
                self.client
                    .post(format!("{url}/api/upload/"))
                    .header("Authorization", &self.auth)
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={BOUNDARY}"),
                    )
                    .body(body)
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = parse()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(o.flooders + 8)
        .build()?;
    let (normal_user, normal_token) = login(&client, &o.url, "flood_normal").await?;
    let (flood_user, flood_token) = login(&client, &o.url, "flood_user").await?;
    let (normal_auth, flood_auth) = (
        format!("Bearer {normal_token}"),
        format!("Bearer {flood_token}"),
    );
    let flooder = Arc::new(Flooder {
        client: client.clone(),
        url: o.url.clone(),
        user: flood_user,
        auth: flood_auth,
        gateway_secret: o.gateway_secret.clone(),
    });
    let normal = Flooder {
        client: client.clone(),
        url: o.url.clone(),
        user: normal_user,
        auth: normal_auth,
        gateway_secret: o.gateway_secret.clone(),
    };
    let rss_before = rss_mib(o.pid);
    let mut rows = Vec::new();
    for class in [
        Class::None,
        Class::Login,
        Class::Read,
        Class::Grab,
        Class::Write,
        Class::Upload,
    ] {
        let until = Instant::now() + Duration::from_secs(o.seconds);
        let counts = Arc::new(FloodCounts::default());
        let sent = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        if class != Class::None {
            for _ in 0..o.flooders {
                let (flooder, counts, sent) =
                    (Arc::clone(&flooder), Arc::clone(&counts), Arc::clone(&sent));
                workers.push(tokio::spawn(async move {
                    while Instant::now() < until {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        let counter = match flooder.request(class, n).send().await {
                            Ok(res) if res.status().as_u16() == 429 => &counts.limited,
                            Ok(res) if res.status().is_success() => &counts.ok,
                            _ => &counts.other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        // The ordinary user, at a steady pace.
        let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut failed = 0u64;
        let mut pace = tokio::time::interval(o.pace);
        while Instant::now() < until {
            pace.tick().await;
            let started = Instant::now();
            let answer = normal.request(Class::Read, 0).send().await;
            let took = started.elapsed().as_micros() as u64;
            match answer {
                Ok(res) if res.status().is_success() => {
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    if body["status"] == true {
                        latencies.record(took.max(1))?;
                    } else {
                        failed += 1;
                    }
                }
                _ => failed += 1,
            }
        }
        for w in workers {
            w.await?;
        }
        let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
        let rss = rss_mib(o.pid).map_or("-".to_string(), |m| format!("{m:.0}"));
        let flood = if class == Class::None {
            "-".to_string()
        } else {
            format!(
                "{} ok, {} refused (429), {} other",
                counts.ok.load(Ordering::Relaxed),
                counts.limited.load(Ordering::Relaxed),
                counts.other.load(Ordering::Relaxed)
            )
        };
        rows.push(format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {failed} | {flood} | {rss} |",
            class.name(),
            latencies.len(),
            ms(0.5),
            ms(0.99),
            latencies.max() as f64 / 1000.0
        ));
        eprintln!("flood: {} done", class.name());
    }
    println!(
        "| phase | ordinary requests ok | p50 ms | p99 ms | max ms | ordinary failed | flood | server RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    for row in rows {
        println!("{row}");
    }
    if let (Some(before), Some(after)) = (rss_before, rss_mib(o.pid)) {
        println!("\n- server RSS: {before:.0} MiB before the floods, {after:.0} MiB after");
    }
    Ok(())
}
