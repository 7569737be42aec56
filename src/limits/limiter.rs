//! The rate limiter: GCRA per (class, scope, key), in the process with `governor`, and in Redis
//! with one Lua script per request when several nodes share the limits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Rate, RateLimits, RouteClass, Scope};
use crate::clock::now_ms;
use crate::state::Redis;

/// How long a Redis check may take before the process's own counters decide.
const SHARED_TIMEOUT: Duration = Duration::from_millis(100);
/// After Redis failed a check, how long the process's own counters decide alone.
const SHARED_PAUSE_MS: i64 = 1_000;

/// GCRA over several keys at once, atomically: the request is let through only if every key
/// allows it, and only then does each key's theoretical arrival time move on. `KEYS` are the
/// counters; `ARGV` holds, per key, its emission interval and its burst, in microseconds and
/// requests. Answers 0 (allowed) or the microseconds until the request would be allowed.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local next_tat = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = interval * (tonumber(ARGV[2 * i]) - 1)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  next_tat[i] = tat + interval
  local w = tat - tolerance - now
  if w > wait then wait = w end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, next_tat[i], 'PX', math.floor((next_tat[i] - now) / 1000) + 1)
end
return 0
";

/// One request's keys: what it counts against.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// `<app>:<user id>` of the signed-in caller, if any.
    pub user: Option<String>,
    /// The client address ([`super::TrustedProxies::client_of`]), if it counts.
    pub ip: Option<String>,
}

/// The process's limiters and, with several nodes, the shared ones.
pub struct Limiter {
    limits: RateLimits,
    local: HashMap<(RouteClass, Scope), DefaultKeyedRateLimiter<String>>,
    /// Prefix of the shared counters' Redis keys; `None`: the limits are per process.
    shared_prefix: Option<String>,
    /// Until when (epoch ms) Redis is not asked.
    shared_paused_until: AtomicI64,
    script: redis::Script,
    relay_token: Option<String>,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Option<Quota> {
    let burst = NonZeroU32::new(rate.count)?;
    Quota::with_period(rate.period / rate.count).map(|q| q.allow_burst(burst))
}

impl Limiter {
    /// Limiters for `limits`; shared through Redis under `shared_prefix` when it is set.
    pub fn new(limits: RateLimits, shared_prefix: Option<String>) -> Self {
        let local = limits
            .rules()
            .filter_map(|(class, scope, rate)| {
                quota(rate).map(|q| ((class, scope), RateLimiter::keyed(q)))
            })
            .collect();
        Limiter {
            limits,
            local,
            shared_prefix,
            shared_paused_until: AtomicI64::new(0),
            script: redis::Script::new(GCRA_SCRIPT),
            relay_token: None,
            clock: DefaultClock::default(),
        }
    }

    /// Requests carrying `token` in [`super::middleware::RELAY_TOKEN`] were relayed by another
    /// node, which counted them: they pass.
    pub fn with_relay_token(mut self, token: Option<String>) -> Self {
        self.relay_token = token;
        self
    }

    pub fn relay_token(&self) -> Option<&str> {
        self.relay_token.as_deref()
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Lets the request through, or answers how long the caller has to wait. Asks Redis when
    /// the limits are shared and Redis answers in time; otherwise the process's counters.
    pub async fn check(
        &self,
        class: RouteClass,
        keys: &Keys,
        redis: Option<&Redis>,
    ) -> Result<(), Duration> {
        let checks: Vec<(Scope, &String, Rate)> =
            [(Scope::User, &keys.user), (Scope::Ip, &keys.ip)]
                .into_iter()
                .filter_map(|(scope, key)| {
                    let rate = self.limits.rate(class, scope)?;
                    Some((scope, key.as_ref()?, rate))
                })
                .collect();
        if checks.is_empty() {
            return Ok(());
        }
        if let (Some(prefix), Some(redis)) = (&self.shared_prefix, redis) {
            if self.shared_paused_until.load(Ordering::Relaxed) <= now_ms() {
                let shared = shared_check(redis, &self.script, prefix, class, &checks);
                match tokio::time::timeout(SHARED_TIMEOUT, shared).await {
                    Ok(Ok(wait)) => return wait,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "shared rate limits unavailable; this node's own counters decide");
                    }
                    Err(_) => {
                        tracing::warn!(
                            "shared rate limits too slow; this node's own counters decide"
                        );
                    }
                }
                self.shared_paused_until
                    .store(now_ms() + SHARED_PAUSE_MS, Ordering::Relaxed);
            }
        }
        self.local_check(class, &checks)
    }

    fn local_check(
        &self,
        class: RouteClass,
        checks: &[(Scope, &String, Rate)],
    ) -> Result<(), Duration> {
        for (scope, key, _) in checks {
            let Some(limiter) = self.local.get(&(class, *scope)) else {
                continue;
            };
            if let Err(not_until) = limiter.check_key(key) {
                return Err(not_until.wait_time_from(self.clock.now()));
            }
        }
        Ok(())
    }

    /// Forgets the keys whose counters are back to full, so memory follows the callers of the
    /// last period and not every caller ever seen.
    pub fn sweep(&self) {
        for limiter in self.local.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held in the process's counters.
    pub fn keys_held(&self) -> usize {
        self.local.values().map(|l| l.len()).sum()
    }
}

async fn shared_check(
    redis: &Redis,
    script: &redis::Script,
    prefix: &str,
    class: RouteClass,
    checks: &[(Scope, &String, Rate)],
) -> redis::RedisResult<Result<(), Duration>> {
    let mut invocation = script.prepare_invoke();
    for (scope, key, rate) in checks {
        let interval = (rate.period / rate.count).as_micros().max(1);
        invocation
            .key(format!("{prefix}{}:{}:{key}", class.name(), scope.name()))
            .arg(u64::try_from(interval).unwrap_or(u64::MAX))
            .arg(rate.count);
    }
    let mut conn = redis.connection().await?;
    let wait_us: i64 = invocation.invoke_async(&mut conn).await?;
    Ok(if wait_us > 0 {
        Err(Duration::from_micros(wait_us.unsigned_abs()))
    } else {
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_refusals_with_the_wait_and_other_keys_unaffected() {
        let limits = RateLimits::parse("grab:user=3/s,grab:ip=100/s").expect("limits");
        let limiter = Limiter::new(limits, None);
        let alice = Keys {
            user: Some("default:1".into()),
            ip: Some("10.0.0.1".into()),
        };
        for _ in 0..3 {
            assert_eq!(limiter.check(RouteClass::Grab, &alice, None).await, Ok(()));
        }
        let wait = limiter
            .check(RouteClass::Grab, &alice, None)
            .await
            .expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        let bob = Keys {
            user: Some("default:2".into()),
            ip: Some("10.0.0.1".into()),
        };
        assert_eq!(limiter.check(RouteClass::Grab, &bob, None).await, Ok(()));
        // Another class has its own counters.
        assert_eq!(limiter.check(RouteClass::Read, &alice, None).await, Ok(()));
        assert!(limiter.keys_held() >= 3);
    }

    #[tokio::test]
    async fn off_lets_everything_through() {
        let limiter = Limiter::new(RateLimits::off(), None);
        let keys = Keys {
            user: Some("default:1".into()),
            ip: Some("10.0.0.1".into()),
        };
        for _ in 0..10_000 {
            assert_eq!(limiter.check(RouteClass::Login, &keys, None).await, Ok(()));
        }
    }
}
