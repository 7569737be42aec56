//! Command-line parsing for `points-loadtest`.
//!
//! Hand-written `--key value` parsing keeps the binary's dependency list short; the option set is
//! small and flat. Everything is validated here so the scenarios only see well-formed values,
//! including the rule that the target must be a loopback address.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Url;

/// Default target of every scenario.
const URL_DEFAULT: &str = "http://127.0.0.1:8080";
/// Admin key used when neither `--admin-key` nor `POINTS_ADMIN_KEY` is given.
const ADMIN_KEY_DEFAULT: &str = "dev-admin-key";
const CONCURRENCY_DEFAULT: usize = 64;
const REQUESTS_DEFAULT: u64 = 20_000;
const USERS_DEFAULT: u64 = 1_000;
const CARDS_DEFAULT: u64 = 10;
const CARDS_MAX: u64 = 1_000;
const CLOSED_LOOP_DURATION_SECS_DEFAULT: f64 = 20.0;
const OPEN_LOOP_DURATION_SECS_DEFAULT: f64 = 10.0;
const MAX_INFLIGHT_DEFAULT: usize = 2_000;
const TIMEOUT_SECS_DEFAULT: f64 = 10.0;

/// Upper bounds that keep a typo from turning into an hour-long or machine-filling run.
const CONCURRENCY_MAX: usize = 10_000;
const MAX_INFLIGHT_MAX: usize = 100_000;
const REQUESTS_MAX: u64 = 100_000_000;
const DURATION_SECS_MAX: f64 = 3_600.0;
const TIMEOUT_SECS_MAX: f64 = 300.0;
/// Bound on the number of requests one open-loop run may schedule (`rate * duration`).
const OPEN_LOOP_REQUESTS_MAX: f64 = 10_000_000.0;

pub const USAGE: &str = "\
points-loadtest: drive a running points-engine over loopback and print one result row

USAGE:
    points-loadtest <SCENARIO> [OPTIONS]

SCENARIOS:
    ledger        closed loop: C workers send point grants (POST /core/point/update.json)
                  until --requests are done or --duration passes
    trivial       the same closed loop against GET /healthz, as a no-op baseline
    redpack       closed loop of red-packet grabs (POST /v2/redpack/rob.json): U dev-login users
                  (dev_lt_*), each paid C points, grab C cards of stock U once each; afterwards
                  the grants the server reports are checked against the acknowledged grabs
                  (needs POINTS_DEV_LOGIN=1 on the server; --requests at most U x C)
    ledger-rate   open loop: grants at a fixed --rate for --duration seconds; latency is
                  measured from each request's scheduled send time

OPTIONS:
    --url URL             server base URL; the host must be loopback (127.0.0.0/8, localhost
                          or [::1]); given several times, requests go to each in turn (the
                          nodes of a cluster; setup uses the first) [default: http://127.0.0.1:8080]
    --admin-key KEY       X-Admin-Key for core/* routes     [default: $POINTS_ADMIN_KEY or dev-admin-key]
    --concurrency C       closed-loop workers                                           [default: 64]
    --requests N          closed-loop request budget                                 [default: 20000]
    --duration SECS       time budget; closed loop stops issuing new requests after it
                                                  [default: 20 for ledger/trivial, 10 for ledger-rate]
    --users U             grants cycle over users lt_0 .. lt_{U-1}                     [default: 1000]
    --cards C             redpack: cards grabbed                                        [default: 10]
    --rate R              ledger-rate: requests per second (required for ledger-rate)
    --max-inflight M      ledger-rate: in-flight cap; requests that would exceed it are dropped
                          and counted as errors                                       [default: 2000]
    --timeout SECS        per-request timeout                                           [default: 10]
    --label TEXT          text for the label column                                      [default: -]
    --json                print one JSON object instead of the markdown row
    --json-out PATH       also append the JSON object as one line to PATH
    --no-header           do not print the markdown table header
    -h, --help            print this help

OUTPUT:
    | label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |
    req/s counts successful requests only; latency percentiles are over successful requests.
    A breakdown of errors by kind goes to stderr. The exit status is 1 when no request succeeded.
";

/// Which workload to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Ledger,
    Redpack,
    Trivial,
    LedgerRate,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ledger => "ledger",
            Scenario::Redpack => "redpack",
            Scenario::Trivial => "trivial",
            Scenario::LedgerRate => "ledger-rate",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "ledger" => Ok(Scenario::Ledger),
            "redpack" => Ok(Scenario::Redpack),
            "trivial" => Ok(Scenario::Trivial),
            "ledger-rate" => Ok(Scenario::LedgerRate),
            other => bail!(
                "unknown scenario {other:?} (expected ledger, trivial, redpack or ledger-rate)"
            ),
        }
    }
}

/// Fully validated options for one run.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: Scenario,
    /// Base URL without a trailing slash, already checked to be loopback: the first `--url`.
    pub base_url: String,
    /// Every `--url`, in order; requests go to each in turn.
    pub base_urls: Vec<String>,
    pub admin_key: String,
    pub label: String,
    pub json: bool,
    pub json_out: Option<String>,
    pub no_header: bool,
    pub concurrency: usize,
    pub requests: u64,
    pub duration: Duration,
    pub users: u64,
    /// Red-packet cards of the `redpack` scenario.
    pub cards: u64,
    /// Requests per second; only set for `ledger-rate`.
    pub rate: Option<f64>,
    pub max_inflight: usize,
    pub timeout: Duration,
}

/// What the command line asked for.
pub enum Command {
    Help,
    Run(Box<Options>),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command> {
    let mut scenario = None;
    let mut urls: Vec<String> = Vec::new();
    let mut admin_key = None;
    let mut label = "-".to_string();
    let mut json = false;
    let mut json_out = None;
    let mut no_header = false;
    let mut concurrency = CONCURRENCY_DEFAULT;
    let mut requests = REQUESTS_DEFAULT;
    let mut duration_secs = None;
    let mut users = USERS_DEFAULT;
    let mut cards = CARDS_DEFAULT;
    let mut rate = None;
    let mut max_inflight = MAX_INFLIGHT_DEFAULT;
    let mut timeout_secs = TIMEOUT_SECS_DEFAULT;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| -> Result<String> {
            args.next().with_context(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "--no-header" => no_header = true,
            "--url" => urls.push(value("--url")?),
            "--admin-key" => admin_key = Some(value("--admin-key")?),
            "--label" => label = value("--label")?,
            "--json-out" => json_out = Some(value("--json-out")?),
            "--concurrency" => {
                concurrency = parse_number("--concurrency", &value("--concurrency")?)?
            }
            "--requests" => requests = parse_number("--requests", &value("--requests")?)?,
            "--duration" => duration_secs = Some(parse_secs("--duration", &value("--duration")?)?),
            "--users" => users = parse_number("--users", &value("--users")?)?,
            "--cards" => cards = parse_number("--cards", &value("--cards")?)?,
            "--rate" => rate = Some(parse_secs("--rate", &value("--rate")?)?),
            "--max-inflight" => {
                max_inflight = parse_number("--max-inflight", &value("--max-inflight")?)?
            }
            "--timeout" => timeout_secs = parse_secs("--timeout", &value("--timeout")?)?,
            flag if flag.starts_with('-') => bail!("unknown option {flag:?}"),
            positional => {
                if scenario.is_some() {
                    bail!("unexpected argument {positional:?}");
                }
                scenario = Some(Scenario::parse(positional)?);
            }
        }
    }

    let scenario = scenario.context("missing scenario (ledger, trivial or ledger-rate)")?;
    if urls.is_empty() {
        urls.push(URL_DEFAULT.to_string());
    }
    let base_urls = urls
        .iter()
        .map(|u| check_loopback_url(u))
        .collect::<Result<Vec<_>>>()?;
    let base_url = base_urls[0].clone();
    let admin_key = match admin_key {
        Some(key) => key,
        None => std::env::var("POINTS_ADMIN_KEY").unwrap_or_else(|_| ADMIN_KEY_DEFAULT.into()),
    };
    let duration_secs = duration_secs.unwrap_or(match scenario {
        Scenario::LedgerRate => OPEN_LOOP_DURATION_SECS_DEFAULT,
        Scenario::Ledger | Scenario::Trivial | Scenario::Redpack => {
            CLOSED_LOOP_DURATION_SECS_DEFAULT
        }
    });

    check_range(
        "--concurrency",
        concurrency as f64,
        1.0,
        CONCURRENCY_MAX as f64,
    )?;
    check_range("--requests", requests as f64, 1.0, REQUESTS_MAX as f64)?;
    check_range("--users", users as f64, 1.0, u64::MAX as f64)?;
    check_range("--cards", cards as f64, 1.0, CARDS_MAX as f64)?;
    if scenario == Scenario::Redpack && requests > users.saturating_mul(cards) {
        bail!("redpack: --requests must be at most --users x --cards (one grab per user and card)");
    }
    check_range(
        "--max-inflight",
        max_inflight as f64,
        1.0,
        MAX_INFLIGHT_MAX as f64,
    )?;
    check_range("--duration", duration_secs, 0.001, DURATION_SECS_MAX)?;
    check_range("--timeout", timeout_secs, 0.001, TIMEOUT_SECS_MAX)?;
    match (scenario, rate) {
        (Scenario::LedgerRate, None) => bail!("ledger-rate needs --rate R (requests per second)"),
        (Scenario::LedgerRate, Some(r)) => {
            check_range("--rate", r, 0.001, f64::MAX)?;
            if r * duration_secs > OPEN_LOOP_REQUESTS_MAX {
                bail!("--rate * --duration schedules more than {OPEN_LOOP_REQUESTS_MAX} requests");
            }
        }
        (_, Some(_)) => bail!("--rate only applies to ledger-rate"),
        (_, None) => {}
    }

    Ok(Command::Run(Box::new(Options {
        scenario,
        base_url,
        base_urls,
        admin_key,
        label,
        json,
        json_out,
        no_header,
        concurrency,
        requests,
        duration: Duration::from_secs_f64(duration_secs),
        users,
        cards,
        rate,
        max_inflight,
        timeout: Duration::from_secs_f64(timeout_secs),
    })))
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {text:?} is not a whole number"))
}

fn parse_secs(flag: &str, text: &str) -> Result<f64> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {text:?} is not a number"))?;
    if !value.is_finite() {
        bail!("{flag}: {text:?} is not a finite number");
    }
    Ok(value)
}

fn check_range(flag: &str, value: f64, min: f64, max: f64) -> Result<()> {
    if value < min || value > max {
        bail!("{flag} must be between {min} and {max}, got {value}");
    }
    Ok(())
}

/// Accepts only http(s) URLs whose host is a loopback address, and returns the URL without a
/// trailing slash so paths can be appended. The load generator must never point at a shared
/// server by accident.
fn check_loopback_url(text: &str) -> Result<String> {
    let url = Url::parse(text).with_context(|| format!("--url: {text:?} is not a valid URL"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!(
            "--url: scheme must be http or https, got {:?}",
            url.scheme()
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--url: give a base URL without query or fragment");
    }
    // The URL parser normalises hosts: IPv4 in dotted form, IPv6 in brackets, names lowercased.
    let host = url.host_str().unwrap_or("");
    let ip_text = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match ip_text.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    };
    if !loopback {
        bail!(
            "--url: refusing host {:?}; only loopback targets (127.0.0.0/8, localhost, [::1]) are allowed",
            host
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(options) => Ok(*options),
            Command::Help => bail!("help"),
        }
    }

    #[test]
    fn loopback_hosts_are_accepted() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:1/",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
        ] {
            assert!(check_loopback_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for url in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://localhost.example.com",
            "http://0.0.0.0:8080",
            "http://[::2]:8080",
            "ftp://127.0.0.1",
        ] {
            assert!(check_loopback_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn defaults_depend_on_scenario() -> Result<()> {
        let ledger = run(&["ledger"])?;
        assert_eq!(ledger.duration, Duration::from_secs(20));
        assert_eq!(ledger.base_url, "http://127.0.0.1:8080");
        let rate = run(&["ledger-rate", "--rate", "100"])?;
        assert_eq!(rate.duration, Duration::from_secs(10));
        assert!(run(&["ledger-rate"]).is_err());
        assert!(run(&["ledger", "--rate", "5"]).is_err());
        assert!(run(&["ledger", "--bogus"]).is_err());
        Ok(())
    }
}
