//! The fulfilment outbox: rewards paid outside the ledger (Alipay points, cash, vouchers, goods).
//!
//! An order row is written by the ledger's batch commit, in the same transaction as the grab or
//! draw that won it, so an order exists exactly when its win is committed. This worker delivers
//! pending orders to `POINTS_FULFILMENT_WEBHOOK`: it claims due orders with a lease (an
//! `UPDATE ... RETURNING` that moves their next attempt past the lease, so another process or a
//! restarted one does not send them meanwhile), POSTs each as JSON, marks it delivered on a 2xx
//! answer and otherwise schedules a retry with exponential backoff, forever, until acknowledged.
//!
//! Delivery contract for receivers: each request carries `X-Points-Order-Id` (stable across
//! retries), `X-Points-Timestamp` (epoch seconds) and, when `POINTS_FULFILMENT_SECRET` is set,
//! `X-Points-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. A process killed after
//! the receiver answered but before the order was marked delivered sends it again after the
//! lease, so a receiver acknowledges a known order id again without acting twice; with that,
//! every order takes effect exactly once.

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
pub const FULFILMENT_BACKOFF_MAX: Duration = Duration::from_secs(300);

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

/// Delay before the attempt after `attempts` failed ones.
pub fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    FULFILMENT_BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(exp))
        .min(FULFILMENT_BACKOFF_MAX)
}

/// `sha256=<hex>` of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // unwrap-free: HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
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
async fn send(state: &AppState, url: &str, order: &Claimed) -> Result<(), String> {
    let timestamp = now_ms() / 1000;
    let mut request = state
        .http
        .post(url)
        .timeout(FULFILMENT_REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .header("X-Points-Order-Id", order.id.to_string())
        .header("X-Points-Timestamp", timestamp.to_string());
    if let Some(secret) = &state.settings.fulfilment_secret {
        request = request.header(
            "X-Points-Signature",
            signature(secret, timestamp, &order.body),
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
            let delay = i64::try_from(backoff(order.attempts).as_millis()).unwrap_or(i64::MAX);
            tracing::warn!(order = order.id, attempts = order.attempts + 1, %error, "fulfilment delivery failed; will retry");
            let error: String = error.chars().take(500).collect();
            store::schedule_retry(
                &state.stores.db,
                order.id,
                now.saturating_add(delay),
                &error,
            )
            .await?;
        }
    }
    Ok(())
}

/// Claims and delivers every due order once; returns how many were attempted.
pub async fn deliver_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let Some(url) = state.settings.fulfilment_webhook.clone() else {
        return Ok(0);
    };
    let claimed = claim(state, now_ms()).await?;
    let attempted = claimed.len();
    let results: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(claimed)
        .map(|order| {
            let url = url.clone();
            async move {
                let result = send(state, &url, &order).await;
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
            match store::pending_count(&counting.stores.db).await {
                Ok(n) => counting.metrics.fulfilment_pending.set(n),
                Err(e) => tracing::debug!(error = %e, "counting pending fulfilment orders failed"),
            }
        }
    });
    if state.settings.fulfilment_webhook.is_none() {
        tracing::info!(
            "POINTS_FULFILMENT_WEBHOOK is not set: fulfilment orders are recorded, not delivered"
        );
        return;
    }
    if state.settings.fulfilment_secret.is_none() {
        tracing::warn!("POINTS_FULFILMENT_SECRET is not set: fulfilment deliveries are not signed");
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
    fn signature_is_hmac_of_timestamp_and_body() {
        let s = signature("k", 1, "{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(s, signature("k", 2, "{}"));
        assert_ne!(s, signature("other", 1, "{}"));
    }
}
