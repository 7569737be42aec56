//! Seed 002, the open integral API behind an API gateway, at `/api/v1/open/swan/integral/*`.
//!
//! The gateway authenticates the caller and names them in `X-Consumer-Custom-ID`; we trust that
//! header only when the request also carries `X-Gateway-Secret` equal to `POINTS_GATEWAY_SECRET`
//! (unset: every call is refused). `X-App-Id` picks the app (tenant), default `default`.
//! Errors use HTTP statuses with `{"error": NAME, "message": sentence}`: 400 bad input, 401 bad
//! gateway credentials, 403 a body user that is not the caller, 404 unknown event type,
//! 408 body too slow, 409 `transactionId` reused with other values (a caller's keys are their
//! own: another caller's equal key is another request), 413 body too large, 422 insufficient
//! points, 429 busy or rate limited (`RATE_LIMITED`, with `Retry-After`), 503 storage unavailable.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::dialect::{IdempotencyKey, Points, GET, POST};
use crate::error::AppError;
use crate::http::{lenient, secret_eq, ApiDoc, Page, Params, RouteDoc, Routes};
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::{EntryRow, HistoryFilter, User};
use points_actors::Limit;

use crate::dialect::open::{Open, Reply};

/// One month, for `oneMonthExpired`.
const ONE_MONTH_MS: i64 = 30 * 86_400_000;
/// Longest user id the gateway may send.
const CONSUMER_ID_BYTES_MAX: usize = 128;

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "002 open integral";
    let auth = "Gateway call: `X-Consumer-Custom-ID` names the caller and `X-Gateway-Secret` must equal POINTS_GATEWAY_SECRET; optional `X-App-Id`.";
    r.add::<crate::http::Empty, PointsTotal, _, _>(
        RouteDoc {
            path: "/api/v1/open/swan/integral/points",
            methods: GET,
            tag,
            summary: "1.2.1 查询用户积分总额",
            description: auth,
        },
        total,
    );
    r.add::<PointsChangeReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/api/v1/open/swan/integral/points",
            methods: POST,
            tag,
            summary: "1.2.4 增加或兑换扣减用户积分",
            description: "`point` is signed (negative deducts). `userId` must be the caller. A replayed `transactionId` with the same body answers 200 again; with other values 409. Insufficient points answer 422. Answers `{}`.",
        },
        change,
    );
    r.add::<MineReq, Mine, _, _>(
        RouteDoc {
            path: "/api/v1/open/swan/integral/points/transaction/mine",
            methods: GET,
            tag,
            summary: "1.2.2 查询用户的总积分和流水明细",
            description: "`type`: 1 income only, 2 spending only, absent or 0 all. `startTime`/`endTime` epoch ms. `page` from 0, `size` 1-100 (default 20). `oneMonthExpired`: points that expire within 30 days. `detailId` is the `transactionId`/`operationId` the change was made with.",
        },
        mine,
    );
    r.add::<TransactionsReq, Transactions, _, _>(
        RouteDoc {
            path: "/api/v1/open/swan/integral/points/transaction",
            methods: GET,
            tag,
            summary: "1.2.3 分页查询用户积分流水明细",
            description: "Newest first. `startTime`/`endTime` epoch ms, `page` from 0, `size` 1-100 (default 20).",
        },
        transactions,
    );
    r.add::<ReportReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/api/v1/open/swan/integral/points/report",
            methods: POST,
            tag,
            summary: "1.2.5 积分事件的上报",
            description: "Reports an event of an admin-configured type; the caller earns the rule's points, at most `daily_cap` times per business day. `operationId` deduplicates. The caller must be `userId`, or `staffId` when a staff member reports a customer's event. Unknown types answer 404. Answers `{}` (also when the daily cap is used up).",
        },
        report,
    );
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointsTotal {
    pub user_id: String,
    pub balance: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointsChangeReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub transaction_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub point: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub info: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MineReq {
    /// 1 income only, 2 spending only, 0 or absent all.
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0, maximum = 2)]
    pub kind: Option<i64>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub start_time: Option<i64>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub end_time: Option<i64>,
    /// From 0.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub page: Option<i64>,
    /// 1-100, default 20.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionsReq {
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub start_time: Option<i64>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub end_time: Option<i64>,
    /// From 0.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 0)]
    pub page: Option<i64>,
    /// 1-100, default 20.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    #[schema(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MineItem {
    pub id: i64,
    pub tid: String,
    pub mid: String,
    pub create_at: i64,
    pub update_at: i64,
    pub user_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The `transactionId`/`operationId` of the change, or the entry id for changes made
    /// through other APIs.
    pub detail_id: DetailId,
    pub points: i64,
    pub info: String,
}

#[derive(Serialize, ToSchema)]
pub struct MinePage {
    pub content: Vec<MineItem>,
    pub page: i64,
    pub size: i64,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mine {
    pub staff_id: String,
    pub transaction: MinePage,
    pub balance: i64,
    pub one_month_expired: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionItem {
    /// Signed points, as a string (as the seed shows it).
    pub points: String,
    pub user_id: String,
    pub detail_id: DetailId,
    pub created_at: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub info: String,
}

#[derive(Serialize, ToSchema)]
pub struct Transactions {
    pub transaction: Vec<TransactionItem>,
    pub size: i64,
    pub total: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportReq {
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub staff_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub operation_id: Option<String>,
}

/// A caller the gateway vouched for: app and platform id, checked but not yet stored.
struct Gateway {
    app_id: String,
    uid: String,
}

/// Checks the gateway credentials and the caller's id; stores nothing.
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Gateway, AppError> {
    let expected = state.settings.gateway_secret.as_deref().ok_or_else(|| {
        AppError::BadCredentials("open API disabled: POINTS_GATEWAY_SECRET is not set".into())
    })?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let given = header("x-gateway-secret")
        .ok_or_else(|| AppError::BadCredentials("missing X-Gateway-Secret".into()))?;
    if !secret_eq(given, expected) {
        return Err(AppError::BadCredentials("wrong X-Gateway-Secret".into()));
    }
    let uid = header("x-consumer-custom-id")
        .ok_or_else(|| AppError::BadCredentials("missing X-Consumer-Custom-ID".into()))?;
    // The seed's example quotes the id; accept it with or without quotes.
    let uid = uid.trim_matches('"');
    if uid.is_empty() || uid.len() > CONSUMER_ID_BYTES_MAX || uid.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "X-Consumer-Custom-ID is not a valid user id",
        ));
    }
    let app_id = header("x-app-id").unwrap_or("default");
    crate::auth::app(state, app_id).await?;
    Ok(Gateway {
        app_id: app_id.to_string(),
        uid: uid.to_string(),
    })
}

impl Gateway {
    /// The caller's user if it was stored before.
    async fn existing(&self, state: &AppState) -> Result<Option<User>, AppError> {
        Ok(state
            .stores
            .accounts
            .user_by_uid(&self.app_id, &self.uid)
            .await?)
    }

    /// The caller's user, created on first sight. Call it only once the request is known to
    /// be valid, so a refused request stores nothing.
    async fn user(&self, state: &AppState) -> Result<User, AppError> {
        if let Some(user) = self.existing(state).await? {
            return Ok(user);
        }
        let (user, _) = state
            .stores
            .accounts
            .login_user(&self.app_id, &self.uid, "gateway", None, None)
            .await?;
        Ok(user)
    }
}

/// The id a listing shows for an entry: the caller's own `transactionId`/`operationId`, or the
/// entry's id for changes made through other APIs.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum DetailId {
    Key(String),
    Entry(i64),
}

fn detail_id(e: &EntryRow) -> DetailId {
    for namespace in ["open", "report"] {
        if let Some(id) = IdempotencyKey::raw_of(namespace, &e.idem_key) {
            return DetailId::Key(id.to_string());
        }
    }
    DetailId::Entry(e.id)
}

fn time_filter(
    start: Option<i64>,
    end: Option<i64>,
    income: Option<bool>,
) -> Result<HistoryFilter, AppError> {
    for (name, v) in [("startTime", start), ("endTime", end)] {
        if v.is_some_and(|t| t < 0) {
            return Err(AppError::invalid(format!(
                "{name} must be epoch milliseconds"
            )));
        }
    }
    Ok(HistoryFilter {
        income,
        from: start,
        to: end,
        kind: None,
    })
}

async fn total(state: web::Data<AppState>, req: HttpRequest) -> Reply {
    let user = authenticate(&state, &req).await?.user(&state).await?;
    let balance = state.stores.ledger.balance(user.id).await?;
    let updated_at = state
        .stores
        .ledger
        .history(user.id, &HistoryFilter::default(), 0, 1)
        .await?
        .0
        .first()
        .map(|e| e.created_at)
        .unwrap_or(user.created_at);
    Ok(HttpResponse::Ok().json(PointsTotal {
        user_id: user.platform_uid,
        balance,
        created_at: user.created_at,
        updated_at,
    }))
}

async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Params<PointsChangeReq, Open>,
) -> Reply {
    let gateway = authenticate(&state, &req).await?;
    let p = p.into_inner();
    let transaction_id = p
        .transaction_id
        .ok_or_else(|| AppError::missing("transactionId"))?;
    let body_user = p.user_id.ok_or_else(|| AppError::missing("userId"))?;
    if body_user != gateway.uid {
        return Err(AppError::WrongUser.into());
    }
    let point = Points::parse(p.point.ok_or_else(|| AppError::missing("point"))?)?;
    let kind = p
        .kind
        .unwrap_or_else(|| if point.is_credit() { "grant" } else { "deduct" }.into());
    let idem_key = points::idem_key("open", &transaction_id)?;
    let info = p.info.as_deref().unwrap_or_default();
    points::check(&kind, "", info)?;
    let user = match gateway.existing(&state).await? {
        Some(user) => user,
        // A caller never seen before has nothing to deduct: refuse without storing them.
        None if !point.is_credit() => {
            return Err(AppError::Insufficient {
                balance: 0,
                needed: -point.get(),
            }
            .into())
        }
        None => gateway.user(&state).await?,
    };
    points::apply(
        &state,
        ChangeRequest {
            user: &user,
            amount: point,
            kind: &kind,
            idem_key: Some(idem_key.for_user(user.id).into_string()),
            reference: "",
            description: info,
            expires_at: None,
            limits: Vec::new(),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn mine(state: web::Data<AppState>, req: HttpRequest, p: Params<MineReq, Open>) -> Reply {
    let gateway = authenticate(&state, &req).await?;
    let p = p.into_inner();
    let income = match p.kind.unwrap_or(0) {
        0 => None,
        1 => Some(true),
        2 => Some(false),
        other => {
            return Err(AppError::invalid(format!("type must be 0, 1 or 2, got {other}")).into())
        }
    };
    let filter = time_filter(p.start_time, p.end_time, income)?;
    let page = Page::parse(p.page, p.size, 0, 20)?;
    let user = gateway.user(&state).await?;
    let (rows, total) = state
        .stores
        .ledger
        .history(user.id, &filter, page.offset, page.limit)
        .await?;
    let balance = state.stores.ledger.balance(user.id).await?;
    let now = now_ms();
    let one_month_expired = state
        .stores
        .ledger
        .expiring_between(user.id, now + 1, now + ONE_MONTH_MS + 1)
        .await?;
    let content = rows
        .iter()
        .map(|e| MineItem {
            id: e.id,
            tid: e.app_id.clone(),
            mid: e.app_id.clone(),
            create_at: e.created_at,
            update_at: e.created_at,
            user_id: user.platform_uid.clone(),
            kind: e.kind.clone(),
            detail_id: detail_id(e),
            points: e.amount,
            info: e.description.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Mine {
        staff_id: user.platform_uid.clone(),
        transaction: MinePage {
            content,
            page: page.offset / page.limit,
            size: page.limit,
            total,
        },
        balance,
        one_month_expired,
    }))
}

async fn transactions(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Params<TransactionsReq, Open>,
) -> Reply {
    let gateway = authenticate(&state, &req).await?;
    let p = p.into_inner();
    let filter = time_filter(p.start_time, p.end_time, None)?;
    let page = Page::parse(p.page, p.size, 0, 20)?;
    let user = gateway.user(&state).await?;
    let (rows, total) = state
        .stores
        .ledger
        .history(user.id, &filter, page.offset, page.limit)
        .await?;
    let transaction = rows
        .iter()
        .map(|e| TransactionItem {
            points: e.amount.to_string(),
            user_id: user.platform_uid.clone(),
            detail_id: detail_id(e),
            created_at: e.created_at,
            kind: e.kind.clone(),
            info: e.description.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Transactions {
        transaction,
        size: page.limit,
        total,
    }))
}

async fn report(state: web::Data<AppState>, req: HttpRequest, p: Params<ReportReq, Open>) -> Reply {
    let gateway = authenticate(&state, &req).await?;
    let p = p.into_inner();
    let kind = p.kind.ok_or_else(|| AppError::missing("type"))?;
    let body_user = p.user_id.ok_or_else(|| AppError::missing("userId"))?;
    let operation_id = p
        .operation_id
        .ok_or_else(|| AppError::missing("operationId"))?;
    let reporter_ok =
        body_user == gateway.uid || p.staff_id.as_deref() == Some(gateway.uid.as_str());
    if !reporter_ok {
        return Err(AppError::WrongUser.into());
    }
    let idem_key = points::idem_key("report", &operation_id)?;
    let rule = state
        .stores
        .rules
        .get(&gateway.app_id, &kind)
        .await?
        .filter(|r| r.enabled)
        .ok_or_else(|| AppError::NotFound(format!("no earning rule for event type {kind:?}")))?;
    let description = if rule.description.is_empty() {
        format!("{} 获得积分", rule.event_type)
    } else {
        rule.description.clone()
    };
    let amount = Points::parse(rule.points)?;
    points::check(&rule.event_type, &body_user, &description)?;
    let user = gateway.user(&state).await?;
    let day = state.clock.format_date(now_ms());
    let limits: Vec<Limit> = (rule.daily_cap > 0)
        .then(|| Limit {
            key: format!(
                "event:{}:{}:{}:{day}",
                user.app_id, user.id, rule.event_type
            ),
            max: rule.daily_cap,
        })
        .into_iter()
        .collect();
    let result = points::apply(
        &state,
        ChangeRequest {
            user: &user,
            amount,
            kind: &rule.event_type,
            idem_key: Some(idem_key.for_user(user.id).into_string()),
            reference: &body_user,
            description: &description,
            expires_at: None,
            limits,
        },
    )
    .await;
    match result {
        Ok(_) | Err(AppError::LimitReached(_)) => Ok(HttpResponse::Ok().json(json!({}))),
        Err(e) => Err(e.into()),
    }
}
