//! The admin red-packet routes (`/admin/redpack*`): request and answer shapes, handlers, route
//! docs.

use actix_web::web;
use points_actors::redpack::split_pool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::store::{self, NewCard, NewPool};
use super::{
    admin_app, amount_field, card_day, name_field, require, set_status, window_fields, AppReq,
    POOL_PACKETS_MAX, REWARD_TYPES,
};
use crate::clock::now_ms;
use crate::clock::Moment;
use crate::dialect::gift::{ok, Gift, Reply};
use crate::dialect::{GET, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct SessionReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `HH:MM:SS`, business time.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewCardReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub batch_id: Option<i64>,
    /// One of `积分`, `集分宝`, `现金红包`, `电子权益`, `实物`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub reward_type: Option<String>,
    /// Packets a day.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sum: Option<i64>,
    /// Value of one packet.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub unit: Option<i64>,
    /// Points paid per grab (0 for free).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub ticket: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewPoolReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub total_points: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub count: Option<i64>,
    /// `random` (double mean) or `even`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub split: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (business time) or epoch seconds/ms.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub ends_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct StatusReq {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    /// `10` on shelf, `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchIdData {
    pub batch_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CardIdData {
    pub card_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PoolIdData {
    pub id: i64,
}

async fn create_session(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<SessionReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let name = name_field(p.name, "name")?;
    let (start, end) = window_fields(p.start_time, p.end_time)?;
    let app_id = admin_app(&state, p.app_id).await?;
    let now = now_ms();
    let id = store::insert_session(&state.stores.db, &app_id, &name, &start, &end, now).await?;
    Ok(ok(json!(BatchIdData { batch_id: id })))
}

async fn create_card(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<NewCardReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let batch_id = require(p.batch_id, "batch_id")?;
    let reward_type = p
        .reward_type
        .ok_or_else(|| AppError::missing("reward_type"))?;
    if !REWARD_TYPES.contains(&reward_type.as_str()) {
        return Err(AppError::invalid(format!(
            "reward_type must be one of {}",
            REWARD_TYPES.join(", ")
        ))
        .into());
    }
    let sum = amount_field(p.sum, "sum", 0)?;
    let unit = amount_field(p.unit, "unit", 1)?;
    let ticket = amount_field(p.ticket.or(Some(0)), "ticket", 0)?;
    let (start, end) = window_fields(p.start_time, p.end_time)?;
    let app_id = admin_app(&state, p.app_id).await?;
    let session_app = store::session_app(&state.stores.db, batch_id).await?;
    if session_app.as_deref() != Some(app_id.as_str()) {
        return Err(AppError::NotFound(format!("red-packet session {batch_id}")).into());
    }
    let now = now_ms();
    let id = store::insert_card(
        &state.stores.db,
        &NewCard {
            app_id: &app_id,
            batch_id,
            reward_type: &reward_type,
            sum,
            unit,
            ticket,
            start_time: &start,
            end_time: &end,
            now,
        },
    )
    .await?;
    Ok(ok(json!(CardIdData { card_id: id })))
}

async fn create_pool(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<NewPoolReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let title = name_field(p.title, "title")?;
    let total = amount_field(p.total_points, "total_points", 1)?;
    let count = p.count.ok_or_else(|| AppError::missing("count"))?;
    if !(1..=POOL_PACKETS_MAX).contains(&count) {
        return Err(
            AppError::invalid(format!("count must be between 1 and {POOL_PACKETS_MAX}")).into(),
        );
    }
    if count > total {
        return Err(AppError::invalid(
            "count must not exceed total_points: every packet holds at least 1 point",
        )
        .into());
    }
    let split = p.split.unwrap_or_else(|| "random".into());
    if split != "random" && split != "even" {
        return Err(AppError::invalid("split must be random or even").into());
    }
    let parse = |v: Option<String>, field: &str| -> Result<Option<i64>, AppError> {
        v.filter(|s| !s.trim().is_empty())
            .map(|s| {
                state.clock.parse(&s).ok_or_else(|| {
                    AppError::invalid(format!("{field} must be YYYY-MM-DD HH:MM:SS or epoch time"))
                })
            })
            .transpose()
    };
    let starts_at = parse(p.starts_at, "starts_at")?;
    let ends_at = parse(p.ends_at, "ends_at")?;
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if s >= e {
            return Err(AppError::invalid("starts_at must be before ends_at").into());
        }
    }
    let app_id = admin_app(&state, p.app_id).await?;
    let packets = split_pool(total, count, split == "random", &mut rand::rng())
        .ok_or_else(|| AppError::invalid("cannot split the pool"))?;
    let now = now_ms();
    let id = store::insert_pool(
        &state.stores.db,
        &NewPool {
            app_id: &app_id,
            title: &title,
            total_points: total,
            count,
            split: &split,
            starts_at,
            ends_at,
            now,
            packets: &packets,
        },
    )
    .await?;
    Ok(ok(json!(PoolIdData { id })))
}

async fn card_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    set_status(&state, "redpack_cards", p.id, p.status).await?;
    Ok(ok(json!([])))
}

async fn session_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    set_status(&state, "redpack_sessions", p.id, p.status).await?;
    Ok(ok(json!([])))
}

async fn pool_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    set_status(&state, "redpack_pools", p.id, p.status).await?;
    Ok(ok(json!([])))
}

/// An app's red packets, for operators.
#[derive(Serialize, ToSchema)]
pub struct AdminRedpackData {
    /// Sessions with their cards (status, clicks, packets granted today).
    #[schema(value_type = Vec<Object>)]
    pub sessions: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub pools: Vec<Value>,
}

/// Everything an app's red packets hold, for operators: sessions with their cards (clicks,
/// today's grabs) and pools.
async fn admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> Reply {
    let app_id = admin_app(&state, p.into_inner().app_id).await?;
    let day = Moment::now(&state.clock).day;
    let db = &state.stores.db;
    let sessions = store::sessions_of(db, &app_id).await?;
    let cards = store::cards_of(db, &app_id).await?;
    let clicks = store::card_clicks(db, &app_id).await?;
    let mut out = Vec::new();
    for s in sessions {
        let mut card_views = Vec::new();
        for c in cards.iter().filter(|c| c.batch_id == s.id) {
            let today = card_day(&state, &app_id, c.id, &day).await?;
            card_views.push(json!({
                "card_id": c.id, "reward_type": c.reward_type, "sum": c.sum, "unit": c.unit,
                "ticket": c.ticket, "start_time": c.start_time, "end_time": c.end_time,
                "status": c.status, "clicks": clicks.get(&c.id), "granted_today": today.taken,
            }));
        }
        out.push(json!({
            "batch_id": s.id, "name": s.name, "start_time": s.start_time, "end_time": s.end_time,
            "status": s.status, "cards": card_views,
        }));
    }
    let pools = store::pools_of(db, &app_id).await?;
    let mut pool_views = Vec::new();
    for r in pools {
        pool_views.push(json!({
            "id": r.id, "title": r.title, "total_points": r.total_points,
            "count": r.count, "split": r.split,
            "starts_at": r.starts_at, "ends_at": r.ends_at,
            "status": r.status,
        }));
    }
    Ok(ok(json!(AdminRedpackData {
        sessions: out,
        pools: pool_views
    })))
}

/// Registers the `/admin/redpack*` routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin red packets";
    r.add::<SessionReq, BatchIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/sessions",
            methods: POST,
            tag,
            summary: "Create a red-packet session (batch)",
            description: "`X-Admin-Key`. `{app_id, name, start_time, end_time}` (`HH:MM:SS`, start before end) -> `data.batch_id`.",
        },
        create_session,
    );
    r.add::<NewCardReq, CardIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/cards",
            methods: POST,
            tag,
            summary: "Create a red-packet card in a session",
            description: "`X-Admin-Key`. `{app_id, batch_id, reward_type, sum (packets a day), unit (value of one packet, >= 1), ticket (points per grab, >= 0), start_time, end_time}` -> `data.card_id`.",
        },
        create_card,
    );
    r.add::<NewPoolReq, PoolIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/pools",
            methods: POST,
            tag,
            summary: "Create a red-packet pool",
            description: "`X-Admin-Key`. `{app_id, title, total_points, count, split: random|even, starts_at?, ends_at?}` -> `data.id`. The packets are split at creation and stored: `random` is the double-mean method, `even` gives the remainder to the first packets; every packet holds at least 1 point, so `count` above `total_points` is refused.",
        },
        create_pool,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/cards/status",
            methods: POST,
            tag,
            summary: "Put a card on or off shelf",
            description: "`X-Admin-Key`. `{id, status}`: `10` on shelf, `20` off shelf, `30` deleted. Takes effect for the next grab.",
        },
        card_status,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/sessions/status",
            methods: POST,
            tag,
            summary: "Put a session on or off shelf",
            description:
                "`X-Admin-Key`. `{id, status}` (10/20/30); a session off shelf closes its cards.",
        },
        session_status,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/pools/status",
            methods: POST,
            tag,
            summary: "Open or close a pool",
            description: "`X-Admin-Key`. `{id, status}` (10/20/30).",
        },
        pool_status,
    );
    r.add::<AppReq, AdminRedpackData, _, _>(
        RouteDoc {
            path: "/admin/redpack",
            methods: GET,
            tag,
            summary: "An app's red packets",
            description: "`X-Admin-Key`. Sessions with their cards (status, clicks, packets granted today) and pools.",
        },
        admin_list,
    );
}
