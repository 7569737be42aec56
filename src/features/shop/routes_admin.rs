//! The shop's admin routes (`/admin/shop/*`), in the 000 envelope: the catalog, shelf status
//! and exchange records.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{catalog, exchange_rows, one_of, save_prize_row, set_prize_status};
use super::{PrizeView, SavePrizeReq};
use crate::dialect::gift::{self, Gift};
use crate::dialect::AppId;
use crate::dialect::Status;
use crate::dialect::{GET, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Page, Params, RouteDoc, Routes};
use crate::state::AppState;

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct ShopAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

async fn admin_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<SavePrizeReq, Gift>,
) -> gift::Reply {
    let view = save_prize_row(&state, p.into_inner()).await?;
    Ok(gift::ok(json!(view)))
}

async fn admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<ShopAppQuery, Gift>,
) -> gift::Reply {
    let app_id = AppId::text(p.into_inner().app_id);
    let views: Vec<PrizeView> = catalog(&state, &app_id).await?;
    Ok(gift::ok(json!(views)))
}

/// A prize's new shelf status.
#[derive(Deserialize, ToSchema)]
pub struct PrizeStatusReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// The prize's `_id`.
    #[serde(default, alias = "_id", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// `10` on shelf, `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

async fn admin_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<PrizeStatusReq, Gift>,
) -> gift::Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    let status = p.status.ok_or_else(|| AppError::missing("status"))?;
    let status = one_of(status, "status", &Status::CODES)?;
    let view = set_prize_status(&state, &app_id, &id, status).await?;
    Ok(gift::ok(json!(view)))
}

/// Which exchange records to list.
#[derive(Deserialize, ToSchema)]
pub struct ExchangeQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Only this prize's (`_id`); all prizes when absent.
    #[serde(default, alias = "_id", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// From 1.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    /// 1-100, default 20.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// One exchange, read from the ledger with its fulfilment order.
#[derive(Serialize, ToSchema)]
pub struct ExchangeRecord {
    /// The exchange's ledger entry.
    pub record_id: i64,
    /// The prize's `_id`.
    pub prize: String,
    pub open_id: String,
    /// Points paid.
    pub cost: i64,
    /// Points credited (integral prizes).
    pub credited: i64,
    pub description: String,
    pub created_at: String,
    /// The fulfilment order (goods and virtual goods): id, reward type, status, detail with the
    /// contact the user gave.
    pub order: Option<Value>,
}

async fn admin_exchanges(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<ExchangeQuery, Gift>,
) -> gift::Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let page = Page::parse(p.page, p.size, 1, 20)?;
    let rows = exchange_rows(&state, &app_id, p.id, &page).await?;
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        let order = r.order.map(|o| {
            let detail = o.detail;
            json!({
                "id": o.id,
                "reward_type": o.reward_type,
                "status": o.status,
                "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::String(detail)),
            })
        });
        records.push(ExchangeRecord {
            record_id: r.id,
            prize: r.reference.trim_start_matches("shop:").to_string(),
            open_id: r.platform_uid,
            cost: (-r.amount).max(0) - r.leg_amount,
            credited: r.amount.max(0),
            description: r.description,
            created_at: state.clock.format_datetime(r.created_at),
            order,
        });
    }
    Ok(gift::ok(json!(records)))
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the shop's admin routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin shop";
    r.add::<SavePrizeReq, PrizeView, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes",
            methods: POST,
            tag,
            summary: "Create or update a prize",
            description: "`X-Admin-Key`. Same fields and rules as 001 `savePrize` (snake_case names such as `face_value`, `exchange_limit`, `limit_count`, `prize_id` are accepted too). 400 on any invalid field, 409 for a `prizeId` in use; nothing changed.",
        },
        admin_save,
    );
    r.add::<ShopAppQuery, Vec<PrizeView>, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes",
            methods: GET,
            tag,
            summary: "An app's prizes, on and off shelf, with stock",
            description:
                "`X-Admin-Key`; `app_id` defaults to `default`. Deleted prizes are not listed.",
        },
        admin_list,
    );
    r.add::<PrizeStatusReq, PrizeView, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes/status",
            methods: POST,
            tag,
            summary: "Put a prize on shelf, off shelf, or delete it",
            description: "`X-Admin-Key`. `id` the prize's `_id`, `status` 10 on shelf, 20 off shelf (listed to operators, not exchangeable), 30 deleted. Exchanges already made and their orders stay.",
        },
        admin_status,
    );
    r.add::<ExchangeQuery, Vec<ExchangeRecord>, _, _>(
        RouteDoc {
            path: "/admin/shop/exchanges",
            methods: GET,
            tag,
            summary: "Exchange records, newest first",
            description: "`X-Admin-Key`; `app_id` defaults to `default`; `id` narrows to one prize; `page` from 1, `size` 1-100. Read from the ledger (entries of kind `exchange` of shop prizes, `send_prize` included) with each one's fulfilment order, whose `detail` carries the address, name, phone and postal code to ship goods to.",
        },
        admin_exchanges,
    );
}
