//! Settings: one struct, defaults in code, `POINTS_*` environment variables on top.
//!
//! An optional config file (`POINTS_CONFIG`, `KEY=value` lines with the same names as the
//! environment variables) may add to it; the environment wins over the file.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono_tz::Tz;
use points_actors::LedgerLimits;

/// Every setting of the server.
#[derive(Clone)]
pub struct Settings {
    /// Address the HTTP server listens on (`POINTS_BIND`). Port 0 picks a free port.
    pub bind: String,
    /// `sqlite://path` or `postgres://...` (`DATABASE_URL`).
    pub database_url: String,
    /// Optional Redis (`REDIS_URL`): shared counters and fan-out; never the source of truth.
    pub redis_url: Option<String>,
    /// Key for `/admin/*`, `core/*` and the 001 server ops (`POINTS_ADMIN_KEY`). Unset: those
    /// routes refuse every call.
    pub admin_key: Option<String>,
    /// Secret the API gateway adds in `X-Gateway-Secret` (`POINTS_GATEWAY_SECRET`). Unset: the
    /// open API (002) refuses every call.
    pub gateway_secret: Option<String>,
    /// Dev login (`POINTS_DEV_LOGIN=1`): code `X` logs in platform user `dev_X`.
    pub dev_login: bool,
    /// WeChat mini-program credentials of the default app (`POINTS_WECHAT_APPID`/`_SECRET`).
    pub wechat_appid: Option<String>,
    pub wechat_secret: Option<String>,
    /// Base URL of the WeChat API (`POINTS_WECHAT_API_BASE`).
    pub wechat_api_base: String,
    /// Alipay open-platform gateway (`POINTS_ALIPAY_GATEWAY`).
    pub alipay_gateway: String,
    /// Business timezone: what "a day" means (`POINTS_TIMEZONE`).
    pub timezone: Tz,
    /// Where fulfilment orders are delivered (`POINTS_FULFILMENT_WEBHOOK`).
    pub fulfilment_webhook: Option<String>,
    /// Key of the HMAC-SHA256 signature on fulfilment deliveries (`POINTS_FULFILMENT_SECRET`).
    pub fulfilment_secret: Option<String>,
    /// Failed deliveries after which an order is dead-lettered (`POINTS_FULFILMENT_MAX_ATTEMPTS`).
    pub fulfilment_max_attempts: i64,
    /// Origins of H5 pages allowed to call from a browser (`POINTS_CORS_ORIGINS`, comma-separated).
    pub cors_origins: Vec<String>,
    /// Ledger batching (`POINTS_LEDGER_BATCH_MAX`, `POINTS_LEDGER_LINGER_MS`,
    /// `POINTS_LEDGER_QUEUE_MAX`).
    pub ledger: LedgerLimits,
    /// Ledger batches committing at once (`POINTS_LEDGER_PIPELINE`, 1-8); default 1 on both
    /// backends (on SQLite a second batch would only wait for the one writer; on Postgres more
    /// may overlap one batch's commit with the next batch's reads).
    pub ledger_pipeline: Option<usize>,
    /// HTTP worker threads (`POINTS_WORKERS`); default: one per core.
    pub workers: usize,
    /// Lifetime of a session token (`POINTS_SESSION_TTL_HOURS`).
    pub session_ttl: Duration,
    /// Database connections (`POINTS_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// Whether to run the scheduled jobs (expiry) in this process (`POINTS_JOBS`, default on).
    pub jobs: bool,
    /// Log as JSON lines (`POINTS_LOG_JSON=1`).
    pub log_json: bool,
    /// Directory uploaded images are stored in (`POINTS_UPLOAD_DIR`).
    pub upload_dir: std::path::PathBuf,
    /// Base URL other nodes reach this node at (`POINTS_NODE_ADDR`); unset: `http://` and the
    /// bound address.
    pub node_addr: Option<String>,
    /// This node's name in the cluster (`POINTS_NODE_ID`); unset: derived from its address.
    pub node_id: Option<String>,
    /// How long an activity lease lasts without renewal (`POINTS_LEASE_TTL_MS`).
    pub lease_ttl: Duration,
    /// Rate limits by route class and scope (`POINTS_RATE_LIMITS`: `off`, or entries like
    /// `grab:user=10/s` on top of the defaults).
    pub rate_limits: crate::limits::RateLimits,
    /// Proxies whose `X-Forwarded-For` names the client (`POINTS_TRUSTED_PROXIES`: addresses
    /// and CIDR blocks); unset: the socket's peer is the client.
    pub trusted_proxies: crate::limits::TrustedProxies,
    /// Websockets, sessions, uploads and body read time per caller.
    pub bounds: crate::limits::Bounds,
}

/// Default lease time to live: an owner that stops renewing loses its activities within it.
pub const LEASE_TTL_DEFAULT: Duration = Duration::from_millis(3_000);
/// Shortest lease the settings accept: a renewal (every third of it) must fit in a round trip.
pub const LEASE_TTL_MIN: Duration = Duration::from_millis(300);

/// Default session lifetime: 30 days, like a mini-program's login state.
/// Failed deliveries of a fulfilment order before it is dead-lettered: with the backoff's
/// doubling from 0.5 s to an hour, jittered, 6 to 11 hours of retries.
pub const FULFILMENT_MAX_ATTEMPTS_DEFAULT: i64 = 24;
const SESSION_TTL_DEFAULT: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/points.db".into(),
            redis_url: None,
            admin_key: None,
            gateway_secret: None,
            dev_login: false,
            wechat_appid: None,
            wechat_secret: None,
            wechat_api_base: "https://api.weixin.qq.com".into(),
            alipay_gateway: "https://openapi.alipay.com/gateway.do".into(),
            timezone: chrono_tz::Asia::Shanghai,
            fulfilment_webhook: None,
            fulfilment_secret: None,
            fulfilment_max_attempts: FULFILMENT_MAX_ATTEMPTS_DEFAULT,
            cors_origins: Vec::new(),
            ledger: LedgerLimits::default(),
            ledger_pipeline: None,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            session_ttl: SESSION_TTL_DEFAULT,
            db_max_connections: 16,
            jobs: true,
            log_json: false,
            upload_dir: "data/uploads".into(),
            node_addr: None,
            node_id: None,
            lease_ttl: LEASE_TTL_DEFAULT,
            rate_limits: crate::limits::RateLimits::default(),
            trusted_proxies: crate::limits::TrustedProxies::default(),
            bounds: crate::limits::Bounds::default(),
        }
    }
}

impl Settings {
    /// Whether this node is one of several: Postgres and Redis are both configured.
    pub fn cluster(&self) -> bool {
        let pg = self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://");
        pg && self.redis_url.is_some()
    }

    /// Reads the settings from the process environment (and `POINTS_CONFIG`, if set).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(&env_vars()?)
    }

    /// Builds settings from a map of variables, on top of the defaults.
    pub fn from_vars(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let mut s = Settings::default();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("POINTS_BIND") {
            s.bind = v;
        }
        if let Some(v) = get("DATABASE_URL") {
            s.database_url = v;
        }
        s.redis_url = get("REDIS_URL");
        s.admin_key = get("POINTS_ADMIN_KEY");
        s.gateway_secret = get("POINTS_GATEWAY_SECRET");
        let flag = |k: &str| -> anyhow::Result<Option<bool>> {
            get(k)
                .map(|v| {
                    parse_flag(&v).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{k}={v:?} is not on or off (1/0, true/false, yes/no, on/off)"
                        )
                    })
                })
                .transpose()
        };
        s.dev_login = flag("POINTS_DEV_LOGIN")?.unwrap_or(false);
        s.wechat_appid = get("POINTS_WECHAT_APPID");
        s.wechat_secret = get("POINTS_WECHAT_SECRET");
        if let Some(v) = get("POINTS_WECHAT_API_BASE") {
            s.wechat_api_base = v.trim_end_matches('/').into();
        }
        if let Some(v) = get("POINTS_ALIPAY_GATEWAY") {
            s.alipay_gateway = v;
        }
        if let Some(v) = get("POINTS_TIMEZONE") {
            s.timezone = v
                .parse()
                .map_err(|e| anyhow::anyhow!("POINTS_TIMEZONE={v:?} is not a timezone: {e}"))?;
        }
        s.fulfilment_webhook = get("POINTS_FULFILMENT_WEBHOOK");
        s.fulfilment_secret = get("POINTS_FULFILMENT_SECRET");
        if let Some(v) = get("POINTS_CORS_ORIGINS") {
            s.cors_origins = cors_origins(&v)?;
        }
        let num = |k: &str| -> anyhow::Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .with_context(|| format!("{k}={v:?} is not a number"))
                })
                .transpose()
        };
        if let Some(v) = num("POINTS_FULFILMENT_MAX_ATTEMPTS")? {
            if v < 1 {
                anyhow::bail!("POINTS_FULFILMENT_MAX_ATTEMPTS must be at least 1");
            }
            s.fulfilment_max_attempts = i64::try_from(v).unwrap_or(i64::MAX);
        }
        if let Some(v) = num("POINTS_LEDGER_BATCH_MAX")? {
            s.ledger.batch_max = usize::try_from(v.max(1)).unwrap_or(usize::MAX);
        }
        if let Some(v) = num("POINTS_LEDGER_LINGER_MS")? {
            s.ledger.linger = Duration::from_millis(v);
        }
        if let Some(v) = num("POINTS_LEDGER_QUEUE_MAX")? {
            s.ledger.queue_max = usize::try_from(v.max(1)).unwrap_or(usize::MAX);
        }
        if let Some(v) = num("POINTS_LEDGER_PIPELINE")? {
            s.ledger_pipeline = Some(usize::try_from(v.clamp(1, 8)).unwrap_or(1));
        }
        if let Some(v) = num("POINTS_WORKERS")? {
            s.workers = usize::try_from(v.max(1)).unwrap_or(1);
        }
        if let Some(v) = num("POINTS_SESSION_TTL_HOURS")? {
            s.session_ttl = Duration::from_secs(v.max(1) * 3600);
        }
        if let Some(v) = num("POINTS_DB_MAX_CONNECTIONS")? {
            s.db_max_connections = u32::try_from(v.max(1)).unwrap_or(u32::MAX);
        }
        s.jobs = flag("POINTS_JOBS")?.unwrap_or(true);
        s.log_json = flag("POINTS_LOG_JSON")?.unwrap_or(false);
        if let Some(v) = get("POINTS_UPLOAD_DIR") {
            s.upload_dir = v.into();
        }
        if let Some(v) = get("POINTS_NODE_ADDR") {
            let parsed = url::Url::parse(&v)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if parsed.is_none() {
                bail!(
                    "POINTS_NODE_ADDR={v:?} is not an http(s) base URL, e.g. http://10.0.0.5:8080"
                );
            }
            s.node_addr = Some(v.trim_end_matches('/').into());
        }
        s.node_id = get("POINTS_NODE_ID");
        if let Some(v) = num("POINTS_LEASE_TTL_MS")? {
            s.lease_ttl = Duration::from_millis(v).max(LEASE_TTL_MIN);
        }
        if let Some(v) = get("POINTS_RATE_LIMITS") {
            s.rate_limits = crate::limits::RateLimits::parse(&v).map_err(anyhow::Error::msg)?;
        }
        if let Some(v) = get("POINTS_TRUSTED_PROXIES") {
            s.trusted_proxies =
                crate::limits::TrustedProxies::parse(&v).map_err(anyhow::Error::msg)?;
        }
        Ok(s)
    }
}

/// Every variable the settings read; any other `POINTS_*` key is a misspelling or a leftover.
pub const KNOWN_KEYS: &[&str] = &[
    "POINTS_BIND",
    "DATABASE_URL",
    "REDIS_URL",
    "POINTS_ADMIN_KEY",
    "POINTS_GATEWAY_SECRET",
    "POINTS_DEV_LOGIN",
    "POINTS_WECHAT_APPID",
    "POINTS_WECHAT_SECRET",
    "POINTS_WECHAT_API_BASE",
    "POINTS_ALIPAY_GATEWAY",
    "POINTS_TIMEZONE",
    "POINTS_FULFILMENT_WEBHOOK",
    "POINTS_FULFILMENT_SECRET",
    "POINTS_FULFILMENT_MAX_ATTEMPTS",
    "POINTS_CORS_ORIGINS",
    "POINTS_LEDGER_BATCH_MAX",
    "POINTS_LEDGER_LINGER_MS",
    "POINTS_LEDGER_QUEUE_MAX",
    "POINTS_LEDGER_PIPELINE",
    "POINTS_WORKERS",
    "POINTS_SESSION_TTL_HOURS",
    "POINTS_DB_MAX_CONNECTIONS",
    "POINTS_JOBS",
    "POINTS_LOG_JSON",
    "POINTS_CONFIG",
    "POINTS_UPLOAD_DIR",
    "POINTS_NODE_ADDR",
    "POINTS_NODE_ID",
    "POINTS_LEASE_TTL_MS",
    "POINTS_RATE_LIMITS",
    "POINTS_TRUSTED_PROXIES",
];

/// The variables the settings are built from: the `POINTS_CONFIG` file's, then the process
/// environment over them.
pub fn env_vars() -> anyhow::Result<HashMap<String, String>> {
    let mut vars = match std::env::var("POINTS_CONFIG") {
        Ok(path) => config_file(std::path::Path::new(&path))?,
        Err(_) => HashMap::new(),
    };
    vars.extend(std::env::vars());
    Ok(vars)
}

/// The variables of a config file in the dotenv format (`KEY=value`, `export KEY=value`,
/// quotes, `#` comments), read with `dotenvy`.
pub fn config_file(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
    let shown = path.display();
    let mut vars = HashMap::new();
    for item in
        dotenvy::from_path_iter(path).with_context(|| format!("reading config file {shown}"))?
    {
        let (key, value) = item.with_context(|| format!("config file {shown}"))?;
        vars.insert(key, value);
    }
    Ok(vars)
}

/// `POINTS_CORS_ORIGINS`: comma-separated origins (`https://h5.example.com`), each a scheme,
/// host and optional port with no path; `*` is refused, since the API carries credentials.
fn cors_origins(v: &str) -> anyhow::Result<Vec<String>> {
    let mut origins = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = url::Url::parse(item).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && !item.ends_with('/')
                && u.query().is_none()
                && u.username().is_empty()
        });
        match parsed {
            Some(u) => origins.push(u.origin().ascii_serialization()),
            None => anyhow::bail!(
                "POINTS_CORS_ORIGINS entry {item:?} is not an origin like https://h5.example.com (scheme and host, optional port, no path)"
            ),
        }
    }
    Ok(origins)
}

/// An on/off setting, one rule for every flag: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`
/// (any case); `None` for anything else.
pub fn parse_flag(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The `POINTS_*` keys among `vars` that no setting reads, sorted.
pub fn unknown_keys(vars: &HashMap<String, String>) -> Vec<String> {
    let mut unknown: Vec<String> = vars
        .keys()
        .filter(|k| k.starts_with("POINTS_") && !KNOWN_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    unknown.sort();
    unknown
}

/// Shows a secret as set or unset, never its value.
fn redact(v: &Option<String>) -> &'static str {
    if v.is_some() {
        "<redacted>"
    } else {
        "<unset>"
    }
}

/// Removes the password of a database or Redis URL: the user part's and any `password`
/// parameter (`?password=...`, `sslpassword=...`).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            let secret = |k: &str| k.to_ascii_lowercase().contains("password");
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) { "redacted".into() } else { v };
                        (k.into_owned(), v.into_owned())
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL (e.g. an unescaped `#` in the password): keep only the scheme and what
        // follows the last `@`, without parameters.
        Err(_) => {
            let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
            let (user, host) = match rest.rsplit_once('@') {
                Some((_, host)) => ("redacted@", host),
                None => ("", rest),
            };
            let host = host.split(['?', '#']).next().unwrap_or_default();
            format!("{scheme}://{user}{host}")
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("admin_key", &redact(&self.admin_key))
            .field("gateway_secret", &redact(&self.gateway_secret))
            .field("dev_login", &self.dev_login)
            .field("wechat_appid", &self.wechat_appid)
            .field("wechat_secret", &redact(&self.wechat_secret))
            .field("wechat_api_base", &self.wechat_api_base)
            .field("alipay_gateway", &self.alipay_gateway)
            .field("timezone", &self.timezone.name())
            .field("fulfilment_webhook", &self.fulfilment_webhook)
            .field("fulfilment_secret", &redact(&self.fulfilment_secret))
            .field("fulfilment_max_attempts", &self.fulfilment_max_attempts)
            .field("cors_origins", &self.cors_origins)
            .field("ledger", &self.ledger)
            .field("ledger_pipeline", &self.ledger_pipeline)
            .field("workers", &self.workers)
            .field("session_ttl", &self.session_ttl)
            .field("db_max_connections", &self.db_max_connections)
            .field("jobs", &self.jobs)
            .field("upload_dir", &self.upload_dir)
            .field("node_addr", &self.node_addr)
            .field("node_id", &self.node_id)
            .field("lease_ttl", &self.lease_ttl)
            .field("rate_limits", &self.rate_limits)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("bounds", &self.bounds)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let vars = HashMap::from([
            ("POINTS_ADMIN_KEY".to_string(), "s3cret-admin".to_string()),
            ("POINTS_WECHAT_SECRET".to_string(), "s3cret-wx".to_string()),
            (
                "DATABASE_URL".to_string(),
                "postgres://u:s3cret-pw@localhost/db".to_string(),
            ),
        ]);
        let shown = format!("{:?}", Settings::from_vars(&vars).expect("settings"));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn unknown_points_keys_are_named_and_every_read_key_is_known() {
        let vars = HashMap::from([
            ("POINTS_TIMEZON".to_string(), "Asia/Shanghai".to_string()),
            ("POINTS_BIND".to_string(), "127.0.0.1:1".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        assert_eq!(unknown_keys(&vars), vec!["POINTS_TIMEZON".to_string()]);
        let source = include_str!("config.rs");
        let calls = ["get(\"", "num(\"", "flag(\""];
        for quoted in calls.iter().flat_map(|c| source.split(c).skip(1)) {
            let key = quoted.split('"').next().unwrap_or_default();
            if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !key.is_empty() {
                assert!(
                    KNOWN_KEYS.contains(&key),
                    "{key} is read but not in KNOWN_KEYS"
                );
            }
        }
    }

    #[test]
    fn cors_origins_are_origins_and_nothing_else() {
        let read = |v: &str| {
            Settings::from_vars(&HashMap::from([(
                "POINTS_CORS_ORIGINS".to_string(),
                v.to_string(),
            )]))
            .map(|s| s.cors_origins)
        };
        assert_eq!(
            read(" https://h5.example.com , http://localhost:5173,").expect("origins"),
            vec!["https://h5.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "h5.example.com",
            "https://h5.example.com/page",
            "ftp://x.cn",
        ] {
            let e = read(bad).expect_err(bad).to_string();
            assert!(e.contains("POINTS_CORS_ORIGINS"), "{e}");
        }
        let s = Settings::from_vars(&HashMap::from([(
            "POINTS_FULFILMENT_MAX_ATTEMPTS".to_string(),
            "0".to_string(),
        )]));
        assert!(s.is_err());
    }

    #[test]
    fn every_flag_reads_the_same_words_and_refuses_others() {
        for (raw, want) in [
            ("1", true),
            ("YES", true),
            ("on", true),
            ("off", false),
            ("0", false),
        ] {
            let vars = HashMap::from([
                ("POINTS_LOG_JSON".to_string(), raw.to_string()),
                ("POINTS_DEV_LOGIN".to_string(), raw.to_string()),
                ("POINTS_JOBS".to_string(), raw.to_string()),
            ]);
            let s = Settings::from_vars(&vars).expect(raw);
            assert_eq!(
                (s.log_json, s.dev_login, s.jobs),
                (want, want, want),
                "{raw}"
            );
        }
        let vars = HashMap::from([("POINTS_LOG_JSON".to_string(), "sometimes".to_string())]);
        let err = Settings::from_vars(&vars).expect_err("not a flag");
        assert!(err.to_string().contains("POINTS_LOG_JSON"), "{err}");
    }

    #[test]
    fn config_files_take_export_lines_quotes_and_comments() {
        let dir = std::env::temp_dir().join(format!("points-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("points.env");
        std::fs::write(
            &path,
            "# a comment\nexport POINTS_BIND=127.0.0.1:9000\nPOINTS_TIMEZONE=\"Asia/Tokyo\"\nPOINTS_TIMEZON=x\n",
        )
        .expect("write");
        let vars = config_file(&path).expect("read");
        let s = Settings::from_vars(&vars).expect("settings");
        assert_eq!(s.bind, "127.0.0.1:9000");
        assert_eq!(s.timezone, chrono_tz::Asia::Tokyo);
        assert_eq!(unknown_keys(&vars), vec!["POINTS_TIMEZON".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_numbers_and_timezones_are_refused() {
        let vars = HashMap::from([("POINTS_LEDGER_BATCH_MAX".to_string(), "lots".to_string())]);
        assert!(Settings::from_vars(&vars).is_err());
        let vars = HashMap::from([("POINTS_TIMEZONE".to_string(), "Mars/Base".to_string())]);
        assert!(Settings::from_vars(&vars).is_err());
        let vars = HashMap::from([(
            "POINTS_RATE_LIMITS".to_string(),
            "grab:user=10/s,grab:users=1/s".to_string(),
        )]);
        let err = Settings::from_vars(&vars).expect_err("malformed entry");
        assert!(err.to_string().contains("grab:users=1/s"), "{err}");
    }
}
