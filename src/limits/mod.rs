//! Limits and abuse: what every route does under hostile load.
//!
//! - **Rate limits** ([`RateLimits`], [`Limiter`], the [`middleware::rate_limit`] middleware):
//!   per user and per client address, by route class ([`RouteClass`]). Over a limit a request
//!   answers HTTP 429 in its route's dialect with `Retry-After`, before its body is read, so it
//!   changes nothing. The algorithm is GCRA (`governor`) in the process; with several nodes the
//!   same limits are kept in Redis by one Lua script per request, and when Redis does not answer
//!   each node falls back to its own counters (never to no limit, never to refusing everyone).
//! - **Bounds** ([`Bounds`]): websockets per user and per address, messages per second per
//!   websocket, sessions per user, upload bytes per user per day, the body read deadline.
//!
//! The server routes (`/admin/*`, `/core/*`, `/center/admin/*`, `/center/custom/*`: the admin key)
//! and the service routes (`/healthz`, `/metrics` ...) have no rate limit: they are the
//! operator's own callers.

pub mod client_ip;
pub mod limiter;
pub mod middleware;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use client_ip::TrustedProxies;
pub use limiter::Limiter;

/// What a route does, for its rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    /// Logging in: a new session.
    Login,
    /// Changes: profile, steps, tasks, exchanges, 002 grants and reports.
    Write,
    /// The hot activities: red-packet grabs, lottery draws, blind boxes, sign-ins and check-ins.
    Grab,
    /// Everything that only reads.
    Read,
    /// Image uploads.
    Upload,
    /// A new websocket.
    Ws,
}

impl RouteClass {
    pub const ALL: [RouteClass; 6] = [
        RouteClass::Login,
        RouteClass::Write,
        RouteClass::Grab,
        RouteClass::Read,
        RouteClass::Upload,
        RouteClass::Ws,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RouteClass::Login => "login",
            RouteClass::Write => "write",
            RouteClass::Grab => "grab",
            RouteClass::Read => "read",
            RouteClass::Upload => "upload",
            RouteClass::Ws => "ws",
        }
    }

    fn parse(name: &str) -> Option<RouteClass> {
        RouteClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class of a request for `method` at `path`, or `None` for a route without rate limits
    /// (the server and service routes).
    pub fn of(method: &actix_web::http::Method, path: &str) -> Option<RouteClass> {
        // 002 reads its balance with GET and changes it with POST at the same path.
        if path == "/api/v1/open/swan/integral/points" && *method != actix_web::http::Method::GET {
            return Some(RouteClass::Write);
        }
        RouteClass::of_path(path)
    }

    fn of_path(path: &str) -> Option<RouteClass> {
        const SERVER: [&str; 4] = ["/admin/", "/core/", "/center/admin/", "/center/custom/"];
        if SERVER.iter().any(|prefix| path.starts_with(prefix)) {
            return None;
        }
        let class = match path {
            "/healthz" | "/readyz" | "/metrics" | "/openapi.json" => return None,
            p if p == "/docs" || p.starts_with("/docs/") => return None,
            "/v2/user/login.json" | "/api/login/" => RouteClass::Login,
            "/api/upload/" => RouteClass::Upload,
            "/ws" => RouteClass::Ws,
            "/v2/redpack/rob.json"
            | "/v2/redpack/pool/rob.json"
            | "/v2/redpack/click.json"
            | "/v2/lottery/do.json"
            | "/v2/box/get.json"
            | "/v2/pick/pick.json"
            | "/v2/pick/sign.json"
            | "/v2/sign/do.json"
            | "/api/sign/" => RouteClass::Grab,
            "/v2/user/auth/info.json"
            | "/v2/user/auth/phone.json"
            | "/v2/sign/pop.json"
            | "/v2/task/click.json"
            | "/v2/task/finish.json"
            | "/v2/walk/get.json"
            | "/v2/walk/exchange.json"
            | "/center/api/exchangePrize"
            | "/center/api/receiveTaskAward"
            | "/api/update/"
            | "/api/wx_phone/"
            | "/api/wx_run/"
            | "/api/apply_audit/"
            | "/api/v1/open/swan/integral/points/report" => RouteClass::Write,
            _ => RouteClass::Read,
        };
        Some(class)
    }
}

/// Whom a limit counts: the signed-in user, or the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    User,
    Ip,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Ip => "ip",
        }
    }
}

/// `count` requests per `period`, in a burst or spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// How often the process's counters forget the callers whose counters are full again.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// The default limits: generous enough for a real event, where thousands of users behind one
/// carrier NAT share an address, and tight enough that one script cannot take a server's time.
pub const DEFAULT_RATE_LIMITS: [(RouteClass, Scope, Rate); 12] = [
    (RouteClass::Login, Scope::User, rate(30, MINUTE)),
    (RouteClass::Login, Scope::Ip, rate(3000, MINUTE)),
    (RouteClass::Write, Scope::User, rate(20, SECOND)),
    (RouteClass::Write, Scope::Ip, rate(2000, SECOND)),
    (RouteClass::Grab, Scope::User, rate(10, SECOND)),
    (RouteClass::Grab, Scope::Ip, rate(5000, SECOND)),
    (RouteClass::Read, Scope::User, rate(50, SECOND)),
    (RouteClass::Read, Scope::Ip, rate(10000, SECOND)),
    (RouteClass::Upload, Scope::User, rate(20, MINUTE)),
    (RouteClass::Upload, Scope::Ip, rate(600, MINUTE)),
    (RouteClass::Ws, Scope::User, rate(30, MINUTE)),
    (RouteClass::Ws, Scope::Ip, rate(3000, MINUTE)),
];

const fn rate(count: u32, period: Duration) -> Rate {
    Rate { count, period }
}

/// The rate limits in force (`POINTS_RATE_LIMITS`): `off`, or the defaults with the listed
/// entries replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    rules: Option<BTreeMap<(RouteClass, Scope), Rate>>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            rules: Some(
                DEFAULT_RATE_LIMITS
                    .iter()
                    .map(|(class, scope, rate)| ((*class, *scope), *rate))
                    .collect(),
            ),
        }
    }
}

impl RateLimits {
    /// No rate limits (benchmarks and load tests).
    pub fn off() -> Self {
        RateLimits { rules: None }
    }

    pub fn is_off(&self) -> bool {
        self.rules.is_none()
    }

    /// The limit of `class` for `scope`, if any.
    pub fn rate(&self, class: RouteClass, scope: Scope) -> Option<Rate> {
        self.rules.as_ref()?.get(&(class, scope)).copied()
    }

    /// Every limit in force.
    pub fn rules(&self) -> impl Iterator<Item = (RouteClass, Scope, Rate)> + '_ {
        self.rules
            .iter()
            .flat_map(|rules| rules.iter().map(|((c, s), r)| (*c, *s, *r)))
    }

    /// Parses `off`, or a comma-separated list of `<class>:<scope>=<count>/<period>` (scope
    /// `user` or `ip`, period `s`, `m` or `h`) on top of the defaults.
    pub fn parse(raw: &str) -> Result<RateLimits, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(RateLimits::off());
        }
        let mut limits = RateLimits::default();
        let rules = limits.rules.get_or_insert_with(BTreeMap::new);
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (class, scope, rate) = parse_entry(entry).map_err(|why| {
                format!(
                    "POINTS_RATE_LIMITS entry {entry:?}: {why} (expected <class>:<scope>=<count>/<period>, \
                     class one of login, write, grab, read, upload, ws; scope user or ip; \
                     period s, m or h; e.g. grab:user=10/s), or off"
                )
            })?;
            rules.insert((class, scope), rate);
        }
        Ok(limits)
    }
}

fn parse_entry(entry: &str) -> Result<(RouteClass, Scope, Rate), String> {
    let (name, rate) = entry.split_once('=').ok_or("no '='")?;
    let (class, scope) = name
        .trim()
        .split_once(':')
        .ok_or("no ':' after the class")?;
    let class = RouteClass::parse(class.trim()).ok_or("unknown class")?;
    let scope = match scope.trim() {
        "user" => Scope::User,
        "ip" => Scope::Ip,
        _ => return Err("unknown scope".into()),
    };
    let (count, period) = rate.trim().split_once('/').ok_or("no '/' in the rate")?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| "the count is not a whole number")?;
    if count == 0 {
        return Err("the count must be at least 1".into());
    }
    let period = match period.trim() {
        "s" => SECOND,
        "m" => MINUTE,
        "h" => Duration::from_secs(3600),
        _ => return Err("unknown period".into()),
    };
    Ok((class, scope, Rate { count, period }))
}

/// Bounds on what one caller may hold or send, beside the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Websockets one user holds at once; the next is refused at upgrade with 429.
    pub ws_per_user: usize,
    /// Websockets one client address holds at once.
    pub ws_per_ip: usize,
    /// Messages per second one websocket may send (a burst of twice as many); past it the
    /// socket is closed.
    pub ws_messages_per_second: u32,
    /// Live sessions per user; a new login revokes the oldest beyond it.
    pub sessions_per_user: i64,
    /// Upload bytes per user per business day.
    pub upload_bytes_per_day: i64,
    /// How long a request body may take to arrive; past it the request answers 408.
    pub body_read_deadline: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            ws_per_user: 20,
            ws_per_ip: 2000,
            ws_messages_per_second: 10,
            sessions_per_user: 20,
            upload_bytes_per_day: 100 * 1024 * 1024,
            body_read_deadline: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_replace_their_defaults_and_the_rest_stay() {
        let limits =
            RateLimits::parse("login:ip=30/m, grab:user=10/s,upload:user=5/h").expect("valid");
        assert_eq!(
            limits.rate(RouteClass::Login, Scope::Ip),
            Some(rate(30, MINUTE))
        );
        assert_eq!(
            limits.rate(RouteClass::Upload, Scope::User),
            Some(rate(5, Duration::from_secs(3600)))
        );
        assert_eq!(
            limits.rate(RouteClass::Read, Scope::Ip),
            RateLimits::default().rate(RouteClass::Read, Scope::Ip)
        );
        assert!(RateLimits::parse("off").expect("off").is_off());
        assert_eq!(RateLimits::parse("").expect("empty"), RateLimits::default());
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        for bad in [
            "grab",
            "grab:user",
            "grab:user=10",
            "grab:user=ten/s",
            "grab:user=0/s",
            "grab:user=10/d",
            "grab:team=10/s",
            "grabs:user=10/s",
            "grab:user=-1/s",
            "grab=10/s",
        ] {
            let err = RateLimits::parse(&format!("read:ip=5/s,{bad}")).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn server_and_service_routes_have_no_class_and_hot_routes_are_grabs() {
        for path in [
            "/admin/apps",
            "/core/point/update.json",
            "/center/admin/changePoints",
            "/center/custom/send_prize",
            "/healthz",
            "/metrics",
            "/docs/",
        ] {
            assert_eq!(RouteClass::of_path(path), None, "{path}");
        }
        for (path, class) in [
            ("/v2/redpack/rob.json", RouteClass::Grab),
            ("/v2/lottery/do.json", RouteClass::Grab),
            ("/api/sign/", RouteClass::Grab),
            ("/v2/user/login.json", RouteClass::Login),
            ("/api/login/", RouteClass::Login),
            ("/api/upload/", RouteClass::Upload),
            ("/ws", RouteClass::Ws),
            ("/center/api/exchangePrize", RouteClass::Write),
            ("/center/api/getUserPoints", RouteClass::Read),
            ("/v2/redpack/show.json", RouteClass::Read),
        ] {
            assert_eq!(RouteClass::of_path(path), Some(class), "{path}");
        }
    }
}
