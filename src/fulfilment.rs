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
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use points_actors::ledger::Committed;
use serde_json::json;
use sha2::Sha256;
use sqlx::Row;
use tokio::sync::Notify;

use actix_web::web;

use crate::clock::now_ms;
use crate::dialect::gift::{ok, ok_with, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::{GET_POST, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Empty, Page, Params, RouteDoc, Routes};
use crate::state::AppState;

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
    let rows = sqlx::query(&format!(
        "UPDATE fulfilment_orders SET next_attempt_at = $1 \
         WHERE id IN (SELECT id FROM fulfilment_orders WHERE status = 'pending' \
         AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT {FULFILMENT_CLAIM_ORDERS_MAX}{}) \
         AND status = 'pending' AND next_attempt_at <= $2 \
         RETURNING id, app_id, user_id, source_kind, reference, reward_type, amount, detail, attempts, \
         created_at, (SELECT platform_uid FROM users u WHERE u.id = fulfilment_orders.user_id)",
        state.stores.db.skip_locked()
    ))
    .bind(now + lease_ms)
    .bind(now)
    .fetch_all(&state.stores.db.write)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let detail: String = r.try_get(7)?;
        let detail: serde_json::Value =
            serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail));
        let body = json!({
            "order_id": id,
            "app_id": r.try_get::<String, _>(1)?,
            "user_id": r.try_get::<Option<String>, _>(10)?,
            "source": r.try_get::<String, _>(3)?,
            "reference": r.try_get::<String, _>(4)?,
            "reward_type": r.try_get::<String, _>(5)?,
            "amount": r.try_get::<i64, _>(6)?,
            "detail": detail,
            "created_at": r.try_get::<i64, _>(9)?,
        });
        claimed.push(Claimed {
            id,
            attempts: r.try_get(8)?,
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
            sqlx::query(
                "UPDATE fulfilment_orders SET status = 'delivered', delivered_at = $1, \
                 attempts = attempts + 1, last_error = '' WHERE id = $2",
            )
            .bind(now)
            .bind(order.id)
            .execute(&state.stores.db.write)
            .await?;
        }
        Err(error) => {
            let delay = i64::try_from(backoff(order.attempts).as_millis()).unwrap_or(i64::MAX);
            tracing::warn!(order = order.id, attempts = order.attempts + 1, %error, "fulfilment delivery failed; will retry");
            sqlx::query(
                "UPDATE fulfilment_orders SET attempts = attempts + 1, next_attempt_at = $1, \
                 last_error = $2 WHERE id = $3 AND status = 'pending'",
            )
            .bind(now.saturating_add(delay))
            .bind(error.chars().take(500).collect::<String>())
            .bind(order.id)
            .execute(&state.stores.db.write)
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

// ---------------------------------------------------------------------------------------------
// Admin routes

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct OrdersReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// `pending` or `delivered`; all when absent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub step: Option<i64>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: i64,
    pub app_id: String,
    pub user_id: i64,
    pub source: String,
    pub reference: String,
    pub reward_type: String,
    pub amount: i64,
    pub detail: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct RetryReq {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
}

async fn list_orders(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<OrdersReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    if let Some(status) = &p.status {
        if status != "pending" && status != "delivered" {
            return Err(AppError::invalid("status must be pending or delivered").into());
        }
    }
    let page = Page::parse(p.page, p.step, 1, 20)?;
    let filter = "app_id = $1 AND ($2 = '' OR status = $2)";
    let status = p.status.unwrap_or_default();
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM fulfilment_orders WHERE {filter}"
    ))
    .bind(&app_id)
    .bind(&status)
    .fetch_one(&state.stores.db.read)
    .await?;
    let rows = sqlx::query(&format!(
        "SELECT id, app_id, user_id, source_kind, reference, reward_type, amount, detail, status, \
         attempts, next_attempt_at, last_error, created_at, delivered_at FROM fulfilment_orders \
         WHERE {filter} ORDER BY id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(&app_id)
    .bind(&status)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&state.stores.db.read)
    .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        orders.push(OrderView {
            id: r.try_get(0)?,
            app_id: r.try_get(1)?,
            user_id: r.try_get(2)?,
            source: r.try_get(3)?,
            reference: r.try_get(4)?,
            reward_type: r.try_get(5)?,
            amount: r.try_get(6)?,
            detail: r.try_get(7)?,
            status: r.try_get(8)?,
            attempts: r.try_get(9)?,
            next_attempt_at: r.try_get(10)?,
            last_error: r.try_get(11)?,
            created_at: r.try_get(12)?,
            delivered_at: r.try_get(13)?,
        });
    }
    Ok(ok_with(json!(orders), &[("count", json!(total))]))
}

async fn retry_order(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<RetryReq, Gift>,
) -> Reply {
    let id = p.into_inner().id.ok_or_else(|| AppError::missing("id"))?;
    let done = sqlx::query(
        "UPDATE fulfilment_orders SET next_attempt_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&state.stores.db.write)
    .await?;
    if done.rows_affected() == 0 {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT status FROM fulfilment_orders WHERE id = $1")
                .bind(id)
                .fetch_optional(&state.stores.db.read)
                .await?;
        return Err(match exists {
            Some(_) => AppError::Conflict(format!("order {id} is already delivered")),
            None => AppError::NotFound(format!("fulfilment order {id}")),
        }
        .into());
    }
    state.fulfilment_wake.notify_one();
    Ok(ok(json!([])))
}

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin fulfilment";
    r.add::<OrdersReq, Vec<OrderView>, _, _>(
        RouteDoc {
            path: "/admin/fulfilment/orders",
            methods: GET_POST,
            tag,
            summary: "Fulfilment orders of an app",
            description: "`X-Admin-Key`. Rewards paid outside the ledger, newest first, with delivery state (`pending`/`delivered`, attempts, last error); `count` beside `data`. Paged by `page`/`step`.",
        },
        list_orders,
    );
    r.add::<RetryReq, Empty, _, _>(
        RouteDoc {
            path: "/admin/fulfilment/orders/retry",
            methods: POST,
            tag,
            summary: "Deliver a pending order now",
            description: "`X-Admin-Key`. `{id}`: the order's next attempt is now, skipping its backoff. A delivered order answers 409.",
        },
        retry_order,
    );
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
