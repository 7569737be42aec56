//! The fulfilment outbox: rewards paid outside the ledger (Alipay points, cash, vouchers, goods).
//!
//! An order row is written by the ledger's batch commit, in the same transaction as the grab or
//! draw that won it, so an order exists exactly when its win is committed. This worker delivers
//! pending orders to `POINTS_FULFILMENT_WEBHOOK`: it claims due orders with a lease (an
//! `UPDATE ... RETURNING` that moves their next attempt past the lease, so another process or a
//! restarted one does not send them meanwhile), POSTs each as JSON, marks it delivered on a 2xx
//! answer and otherwise schedules a retry with jittered exponential backoff. After
//! `POINTS_FULFILMENT_MAX_ATTEMPTS` failed attempts the order is dead-lettered (`dead`): it is
//! no longer sent, `/admin/fulfilment/orders?status=dead` lists it,
//! `points_fulfilment_dead_orders` counts it, and an operator's retry makes it pending again.
//!
//! Delivery contract for receivers, in the Standard Webhooks format: each request carries
//! `webhook-id` (`order_<id>`, stable across retries), `webhook-timestamp` (epoch seconds) and,
//! when `POINTS_FULFILMENT_SECRET` is set, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`; `X-Points-Order-Id` carries the bare order id. A secret written
//! `whsec_<base64>` is the base64 key, as the Standard Webhooks libraries take it; any other
//! value is the key's bytes as written. A process killed after the receiver answered but before
//! the order was marked delivered sends it again after the lease, so a receiver acknowledges a
//! known `webhook-id` again without acting twice; with that, every order takes effect exactly
//! once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use points_actors::ledger::Committed;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::http::ApiDoc;
use crate::state::AppState;

mod routes_admin;
mod store;

pub use routes_admin::{OrderView, OrdersReq, RetryReq};

/// How long a claimed order is reserved for the process sending it.
pub const FULFILMENT_LEASE: Duration = Duration::from_secs(30);
/// Most orders claimed at once.
pub const FULFILMENT_CLAIM_ORDERS_MAX: i64 = 64;
/// Most deliveries in flight at once.
pub const FULFILMENT_CONCURRENCY_MAX: usize = 8;
/// Timeout of one delivery request.
pub const FULFILMENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker looks for due orders when nothing wakes it.
pub const FULFILMENT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// First retry delay; it doubles per failed attempt up to [`FULFILMENT_BACKOFF_MAX`].
pub const FULFILMENT_BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const FULFILMENT_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// Wakes the worker when a commit stored an order.
pub struct OrderWatcher(pub Arc<Notify>);

impl Actor for OrderWatcher {
    type Context = Context<Self>;
}

impl Handler<Committed> for OrderWatcher {
    type Result = ();

    /// Wakes the worker if any change of the batch carried an order.
    fn handle(&mut self, msg: Committed, _ctx: &mut Self::Context) {
        if msg.0.iter().any(|c| c.has_order) {
            self.0.notify_one();
        }
    }
}

/// Delay before the attempt after `attempts` failed ones, before jitter.
pub fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    FULFILMENT_BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(exp))
        .min(FULFILMENT_BACKOFF_MAX)
}

/// [`backoff`] spread over its upper half at random, so orders failed together (a receiver's
/// outage) are not all retried in the same instant.
pub fn jittered_backoff(attempts: i64) -> Duration {
    backoff(attempts).mul_f64(rand::random_range(0.5..=1.0))
}

/// The HMAC key a `POINTS_FULFILMENT_SECRET` stands for: the base64 after `whsec_`, else the
/// text's bytes. `None` when a `whsec_` secret is not base64.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
        None => Some(secret.as_bytes().to_vec()),
    }
}

/// The `webhook-id` of order `id`.
pub fn webhook_id(id: i64) -> String {
    format!("order_{id}")
}

/// The Standard Webhooks `webhook-signature`: `v1,<base64 HMAC-SHA256 of
/// "<webhook-id>.<timestamp>.<body>">` under `key`.
pub fn signature(key: &[u8], webhook_id: &str, timestamp: i64, body: &str) -> String {
    use base64::Engine as _;
    // unwrap-free: HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{webhook_id}.{timestamp}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

struct Claimed {
    id: i64,
    attempts: i64,
    body: String,
}

/// Claims the due orders: moves their next attempt past the lease and returns them.
async fn claim(state: &AppState, now: i64) -> Result<Vec<Claimed>, sqlx::Error> {
    let lease_ms = i64::try_from(FULFILMENT_LEASE.as_millis()).unwrap_or(i64::MAX);
    let rows = store::claim_due(
        &state.stores.db,
        now,
        now + lease_ms,
        FULFILMENT_CLAIM_ORDERS_MAX,
    )
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let detail: serde_json::Value =
            serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::String(r.detail));
        let body = json!({
            "order_id": r.id,
            "app_id": r.app_id,
            "user_id": r.platform_uid,
            "source": r.source_kind,
            "reference": r.reference,
            "reward_type": r.reward_type,
            "amount": r.amount,
            "detail": detail,
            "created_at": r.created_at,
        });
        claimed.push(Claimed {
            id: r.id,
            attempts: r.attempts,
            body: body.to_string(),
        });
    }
    Ok(claimed)
}

/// Sends one order; `Ok` when the receiver acknowledged it with a 2xx.
async fn send(
    state: &AppState,
    url: &str,
    key: Option<&[u8]>,
    order: &Claimed,
) -> Result<(), String> {
    let timestamp = now_ms() / 1000;
    let id = webhook_id(order.id);
    let mut request = state
        .http
        .post(url)
        .timeout(FULFILMENT_REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("X-Points-Order-Id", order.id.to_string());
    if let Some(key) = key {
        request = request.header(
            "webhook-signature",
            signature(key, &id, timestamp, &order.body),
        );
    }
    let response = request
        .body(order.body.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {}", response.status()))
    }
}

/// Records the outcome of one attempt.
async fn settle(
    state: &AppState,
    order: &Claimed,
    result: Result<(), String>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    match result {
        Ok(()) => {
            store::mark_delivered(&state.stores.db, order.id, now).await?;
        }
        Err(error) => {
            let attempts = order.attempts + 1;
            let error: String = error.chars().take(500).collect();
            if attempts >= state.settings.fulfilment_max_attempts {
                tracing::error!(order = order.id, attempts, %error, "fulfilment delivery failed for the last time; the order is dead-lettered");
                store::mark_dead(&state.stores.db, order.id, &error).await?;
            } else {
                let delay =
                    i64::try_from(jittered_backoff(order.attempts).as_millis()).unwrap_or(i64::MAX);
                tracing::warn!(order = order.id, attempts, %error, "fulfilment delivery failed; will retry");
                store::schedule_retry(
                    &state.stores.db,
                    order.id,
                    now.saturating_add(delay),
                    &error,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Claims and delivers every due order once; returns how many were attempted.
pub async fn deliver_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let Some(url) = state.settings.fulfilment_webhook.clone() else {
        return Ok(0);
    };
    let key = state
        .settings
        .fulfilment_secret
        .as_deref()
        .and_then(signing_key);
    let claimed = claim(state, now_ms()).await?;
    let attempted = claimed.len();
    let results: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(claimed)
        .map(|order| {
            let url = url.clone();
            let key = key.as_deref();
            async move {
                let result = send(state, &url, key, &order).await;
                settle(state, &order, result).await
            }
        })
        .buffer_unordered(FULFILMENT_CONCURRENCY_MAX)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(attempted)
}

/// Runs the outbox worker until the process stops: on every commit that stored an order, and
/// every [`FULFILMENT_POLL_INTERVAL`] for retries.
pub fn spawn(state: actix_web::web::Data<AppState>, wake: Arc<Notify>) {
    // The backlog gauge, delivered or not (without a webhook, orders only pile up).
    let counting = state.clone();
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(FULFILMENT_BACKLOG_INTERVAL);
        loop {
            every.tick().await;
            match store::backlog(&counting.stores.db).await {
                Ok((pending, dead)) => {
                    counting.metrics.fulfilment_pending.set(pending);
                    counting.metrics.fulfilment_dead.set(dead);
                }
                Err(e) => tracing::debug!(error = %e, "counting fulfilment orders failed"),
            }
        }
    });
    if state.settings.fulfilment_webhook.is_none() {
        tracing::info!(
            "POINTS_FULFILMENT_WEBHOOK is not set: fulfilment orders are recorded, not delivered"
        );
        return;
    }
    match state.settings.fulfilment_secret.as_deref().map(signing_key) {
        None => tracing::warn!(
            "POINTS_FULFILMENT_SECRET is not set: fulfilment deliveries are not signed"
        ),
        Some(None) => tracing::error!(
            "POINTS_FULFILMENT_SECRET starts with whsec_ but the rest is not base64: fulfilment deliveries are not signed"
        ),
        Some(Some(_)) => {}
    }
    actix_web::rt::spawn(async move {
        loop {
            match deliver_due(&state).await {
                // A full claim means more may be due at once.
                Ok(n) if n as i64 >= FULFILMENT_CLAIM_ORDERS_MAX => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "fulfilment worker failed; will retry"),
            }
            let _ = tokio::time::timeout(FULFILMENT_POLL_INTERVAL, wake.notified()).await;
        }
    });
}

/// How often `points_fulfilment_pending_orders` is counted.
pub const FULFILMENT_BACKLOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_admin::routes(cfg, doc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), FULFILMENT_BACKOFF_MIN);
        assert_eq!(backoff(1), FULFILMENT_BACKOFF_MIN * 2);
        assert_eq!(backoff(100), FULFILMENT_BACKOFF_MAX);
    }

    #[test]
    fn jitter_stays_within_the_upper_half_of_the_backoff() {
        for attempts in [0, 3, 30] {
            let full = backoff(attempts);
            let delays: Vec<Duration> = (0..200).map(|_| jittered_backoff(attempts)).collect();
            assert!(delays.iter().all(|d| *d >= full / 2 && *d <= full));
            assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
        }
    }

    #[test]
    fn signature_matches_the_standard_webhooks_reference() {
        // The vector of the Standard Webhooks reference libraries (Python `standardwebhooks`
        // signs the same message with the same result).
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("base64 key");
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signing_key("plain"), Some(b"plain".to_vec()));
        assert_eq!(signing_key("whsec_not base64!"), None);
    }
}
