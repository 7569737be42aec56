//! The `/admin/fulfilment/*` routes: listing the outbox's orders and retrying one now.

use actix_web::web;
use serde_json::json;

use crate::clock::now_ms;
use crate::dialect::gift::{ok, ok_with, Count, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::{GET_POST, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Empty, Page, Params, RouteDoc, Routes};
use crate::state::AppState;

use super::store;

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct OrdersReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// `pending`, `delivered` or `dead`; all when absent.
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

impl From<store::OrderRow> for OrderView {
    fn from(r: store::OrderRow) -> Self {
        OrderView {
            id: r.id,
            app_id: r.app_id,
            user_id: r.user_id,
            source: r.source_kind,
            reference: r.reference,
            reward_type: r.reward_type,
            amount: r.amount,
            detail: r.detail,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
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
        if !["pending", "delivered", "dead"].contains(&status.as_str()) {
            return Err(AppError::invalid("status must be pending, delivered or dead").into());
        }
    }
    let page = Page::parse(p.page, p.step, 1, 20)?;
    let status = p.status.unwrap_or_default();
    let db = &state.stores.db;
    let total = store::count_orders(db, &app_id, &status).await?;
    let orders: Vec<OrderView> = store::list_orders(db, &app_id, &status, page.limit, page.offset)
        .await?
        .into_iter()
        .map(OrderView::from)
        .collect();
    Ok(ok_with(json!(orders), Count { count: total }))
}

async fn retry_order(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<RetryReq, Gift>,
) -> Reply {
    let id = p.into_inner().id.ok_or_else(|| AppError::missing("id"))?;
    let db = &state.stores.db;
    if store::make_due(db, id, now_ms()).await? == 0 {
        let exists = store::order_status(db, id).await?;
        return Err(match exists {
            Some(_) => AppError::Conflict(format!("order {id} is already delivered")),
            None => AppError::NotFound(format!("fulfilment order {id}")),
        }
        .into());
    }
    state.fulfilment_wake.notify_one();
    Ok(ok(json!([])))
}

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin fulfilment";
    r.add_beside::<OrdersReq, Vec<OrderView>, Count, _, _>(
        RouteDoc {
            path: "/admin/fulfilment/orders",
            methods: GET_POST,
            tag,
            summary: "Fulfilment orders of an app",
            description: "`X-Admin-Key`. Rewards paid outside the ledger, newest first, with delivery state (`pending`, `delivered`, or `dead` after `POINTS_FULFILMENT_MAX_ATTEMPTS` failed attempts; attempts, last error); `count` beside `data`. Paged by `page`/`step`.",
        },
        list_orders,
    );
    r.add::<RetryReq, Empty, _, _>(
        RouteDoc {
            path: "/admin/fulfilment/orders/retry",
            methods: POST,
            tag,
            summary: "Deliver a pending or dead-lettered order now",
            description: "`X-Admin-Key`. `{id}`: the order's next attempt is now, skipping its backoff; a dead-lettered order is pending again with its attempts counted afresh. A delivered order answers 409.",
        },
        retry_order,
    );
}
