//! Seed 000, the gift-points client API (`/v2/*`) and its points core (`/core/*`), exactly as
//! SEED-DETAILS.md writes them.
//!
//! Envelope: `{"code":200,"msg":"ok","status":true,"data":...}`, some routes with fields beside
//! `data`. Errors: HTTP 200 with `status:false`, a non-200 `code` and a Chinese `msg` the client
//! shows. Codes: 400 bad or missing field, 401 no valid token / admin key, 403 another user's
//! `user_id`, 404 unknown user or app, 402 insufficient points, 409 idempotency conflict,
//! 410 refused by the activity's state (not started, ended, twice, sold out, not signed up),
//! 408 body too slow, 413 body too large, 429 busy, limit reached or rate limited (then HTTP 429
//! with `Retry-After`), 501 login not configured, 502 login provider
//! failed, 503 storage unavailable.

use actix_web::{web, HttpRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::{self, Provider};
use crate::dialect::AppId;
use crate::dialect::GET_POST;
use crate::dialect::{IdempotencyKey, Points};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::{EntryRow, HistoryFilter, User};

use crate::dialect::gift::{ok, ok_with, own_user, Count, Gift, Reply, Total, UserReq};

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<LoginReq, LoginData, _, _>(
        RouteDoc {
            path: "/v2/user/login.json",
            methods: GET_POST,
            tag,
            summary: "小程序登录: log in with the platform auth_code",
            description: "Exchanges an Alipay `auth_code` (dev login: code `X` -> user `dev_X`) for the user's id, login status (10 guest, 20 profile, 30 phone) and a session token to send as `Authorization: Bearer`.",
        },
        login,
    );
    r.add::<UserReq, PointsData, _, _>(
        RouteDoc {
            path: "/v2/user/points.json",
            methods: GET_POST,
            tag,
            summary: "查询用户积分: the caller's balance",
            description: "Bearer token required; `user_id` must be the token's user.",
        },
        user_points,
    );
    r.add_beside::<HistoriesReq, Vec<RecordItem>, Count, _, _>(
        RouteDoc {
            path: "/v2/user/histories.json",
            methods: GET_POST,
            tag,
            summary: "用户积分变更记录: the caller's point history",
            description: "`is_cost`: `yes` income only, `no` spending only, absent all. `start_time`/`end_time` as `YYYY-MM-DD HH:MM:SS` (business time) or epoch seconds. `page` from 1, `step` 1-100. Beside `data`: `count`.",
        },
        histories,
    );
    r.add_beside::<PagedUserReq, Vec<DayTotal>, Count, _, _>(
        RouteDoc {
            path: "/v2/user/expired.json",
            methods: GET_POST,
            tag,
            summary: "过期积分列表: points that expired, per day",
            description: "Newest day first. Beside `data`: `count` (number of days).",
        },
        expired,
    );
    r.add::<UserReq, RecentExpiry, _, _>(
        RouteDoc {
            path: "/v2/user/recent/expired.json",
            methods: GET_POST,
            tag,
            summary: "即将过期积分数: the next expiry day and its points",
            description: "`date` is empty and `points` 0 when nothing is due to expire.",
        },
        recent_expired,
    );

    let tag = "000 points core";
    r.add::<CoreUserReq, CoreBalance, _, _>(
        RouteDoc {
            path: "/core/user/balance.json",
            methods: GET_POST,
            tag,
            summary: "查询用户积分: balance of a user (admin)",
            description: "`X-Admin-Key` required. `uuid` is the user's platform id; `app_id` defaults to `default`.",
        },
        core_balance,
    );
    r.add_beside::<CoreRecordsReq, Vec<RecordItem>, Total, _, _>(
        RouteDoc {
            path: "/core/user/records.json",
            methods: GET_POST,
            tag,
            summary: "查询用户积分变更记录: history of a user (admin)",
            description: "Same filters as `v2/user/histories.json`; beside `data`: `total`.",
        },
        core_records,
    );
    r.add::<CoreUpdateReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/core/point/update.json",
            methods: GET_POST,
            tag,
            summary: "发放|扣减 用户积分: grant (+) or deduct (-) points (admin)",
            description: "`amount` is signed. Grants need `expired_time` (`YYYY-MM-DD HH:MM:SS` business time, or epoch seconds). An `Idempotency-Key` header makes the call safe to retry: a replay answers the same, the same key with other parameters answers 409. Deducting more than the balance answers 402 and changes nothing.",
        },
        core_update,
    );
    r.add::<CoreUserReq, Vec<DayTotal>, _, _>(
        RouteDoc {
            path: "/core/point/expired.json",
            methods: GET_POST,
            tag,
            summary: "查询用户过期积分: points due to expire, by day (admin)",
            description: "Upcoming expiries, earliest day first.",
        },
        core_expiring,
    );
    r.add::<CoreUserReq, CoreRecent, _, _>(
        RouteDoc {
            path: "/core/recent/expired.json",
            methods: GET_POST,
            tag,
            summary: "查询最近一天要过期的积分: today's expiry window (admin)",
            description: "`s`/`e`: today's first and last second in business time (epoch seconds); `points`: points that stop counting at the end of today.",
        },
        core_recent,
    );
}

// ----- request and answer shapes -----

#[derive(Deserialize, ToSchema)]
pub struct LoginReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub auth_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginData {
    /// "10" guest, "20" profile authorised, "30" phone authorised.
    pub status: String,
    pub user_id: String,
    /// Session token for `Authorization: Bearer`.
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PagedUserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub step: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct HistoriesReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `yes` income, `no` spending.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub is_cost: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub step: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PointsData {
    pub points: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RecordItem {
    pub id: i64,
    /// What the change refers to (the core's `task_id`).
    pub task_id: String,
    /// Signed amount.
    pub record_points: i64,
    pub transfer_info: String,
    pub app_id: String,
    pub create_time: String,
    /// The change's kind (`flag` of `core/point/update.json`).
    pub flag: String,
}

#[derive(Serialize, ToSchema)]
pub struct DayTotal {
    pub total: i64,
    pub date: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecentExpiry {
    pub date: String,
    pub points: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct CoreUserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CoreRecordsReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub is_cost: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub step: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct CoreUpdateReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
    /// Signed points: positive grants, negative deducts.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub amount: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub flag: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub transfer_info: Option<String>,
    /// Required for grants.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub expired_time: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CoreBalance {
    pub active_balance: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CoreRecent {
    pub s: i64,
    pub e: i64,
    pub points: i64,
}

// ----- helpers -----

fn history_filter(
    state: &AppState,
    is_cost: &Option<String>,
    start: &Option<String>,
    end: &Option<String>,
) -> Result<HistoryFilter, AppError> {
    let income = match is_cost.as_deref() {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(other) => {
            return Err(AppError::invalid(format!(
                "is_cost must be \"yes\" or \"no\", got {other:?}"
            )))
        }
    };
    let parse = |field: &str, v: &Option<String>| -> Result<Option<i64>, AppError> {
        v.as_deref()
            .map(|raw| {
                state.clock.parse(raw).ok_or_else(|| {
                    AppError::invalid(format!(
                        "{field} must be YYYY-MM-DD HH:MM:SS or epoch seconds"
                    ))
                })
            })
            .transpose()
    };
    Ok(HistoryFilter {
        income,
        from: parse("start_time", start)?,
        to: parse("end_time", end)?,
        kind: None,
    })
}

fn record_item(state: &AppState, e: &EntryRow) -> RecordItem {
    RecordItem {
        id: e.id,
        task_id: e.reference.clone(),
        record_points: e.amount,
        transfer_info: e.description.clone(),
        app_id: e.app_id.clone(),
        create_time: state.clock.format_datetime(e.created_at),
        flag: e.kind.clone(),
    }
}

fn json<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Upcoming expiries folded per business day, earliest first.
async fn expiring_days(
    state: &AppState,
    user_id: i64,
    days: usize,
) -> Result<Vec<DayTotal>, AppError> {
    let instants = state
        .stores
        .ledger
        .upcoming_expiries(user_id, crate::clock::now_ms(), 1000)
        .await?;
    let mut out: Vec<DayTotal> = Vec::new();
    for (at, points) in instants {
        let date = state.clock.expiry_date(at);
        if let Some(last) = out.last_mut().filter(|last| last.date == date) {
            last.total += points;
        } else if out.len() == days {
            break;
        } else {
            out.push(DayTotal {
                total: points,
                date,
            });
        }
    }
    Ok(out)
}

async fn page_of_history(
    state: &AppState,
    user: i64,
    filter: &HistoryFilter,
    page: Option<i64>,
    step: Option<i64>,
) -> Result<(Vec<RecordItem>, i64), AppError> {
    let page = Page::parse(page, step, 1, 10)?;
    let (rows, total) = state
        .stores
        .ledger
        .history(user, filter, page.offset, page.limit)
        .await?;
    Ok((rows.iter().map(|e| record_item(state, e)).collect(), total))
}

async fn core_user(
    state: &AppState,
    app: &Option<String>,
    uuid: &Option<String>,
) -> Result<User, AppError> {
    let uuid = uuid.as_deref().ok_or_else(|| AppError::missing("uuid"))?;
    points::user(state, &AppId::text_of(app), uuid).await
}

// ----- handlers -----

async fn login(state: web::Data<AppState>, p: Params<LoginReq, Gift>) -> Reply {
    let p = p.into_inner();
    let code = p.auth_code.ok_or_else(|| AppError::missing("auth_code"))?;
    let login = auth::login(&state, &AppId::text_of(&p.app_id), Provider::Alipay, &code).await?;
    Ok(ok(json(LoginData {
        status: login.user.login_status.to_string(),
        user_id: login.user.platform_uid,
        token: login.token,
    })))
}

async fn user_points(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let points = state.stores.ledger.balance(caller.session.user_id).await?;
    Ok(ok(json(PointsData { points })))
}

async fn histories(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<HistoriesReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let filter = history_filter(&state, &p.is_cost, &p.start_time, &p.end_time)?;
    let (items, count) =
        page_of_history(&state, caller.session.user_id, &filter, p.page, p.step).await?;
    Ok(ok_with(json(items), Count { count }))
}

async fn expired(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PagedUserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let page = Page::parse(p.page, p.step, 1, 10)?;
    let (rows, count) = state
        .stores
        .ledger
        .expired_history(caller.session.user_id, page.offset, page.limit)
        .await?;
    let items: Vec<DayTotal> = rows
        .into_iter()
        .map(|(at, total)| DayTotal {
            total,
            date: state.clock.expiry_date(at),
        })
        .collect();
    Ok(ok_with(json(items), Count { count }))
}

async fn recent_expired(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let next = expiring_days(&state, caller.session.user_id, 1).await?;
    let (date, points) = next
        .into_iter()
        .next()
        .map(|d| (d.date, d.total))
        .unwrap_or_default();
    Ok(ok(json(RecentExpiry { date, points })))
}

async fn core_balance(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoreUserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let user = core_user(&state, &p.app_id, &p.uuid).await?;
    let active_balance = state.stores.ledger.balance(user.id).await?;
    Ok(ok(json(CoreBalance { active_balance })))
}

async fn core_records(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoreRecordsReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let user = core_user(&state, &p.app_id, &p.uuid).await?;
    let filter = history_filter(&state, &p.is_cost, &p.start_time, &p.end_time)?;
    let (items, total) = page_of_history(&state, user.id, &filter, p.page, p.step).await?;
    Ok(ok_with(json(items), Total { total }))
}

async fn core_update(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    req: HttpRequest,
    p: Params<CoreUpdateReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let amount = Points::parse(p.amount.ok_or_else(|| AppError::missing("amount"))?)?;
    let user = core_user(&state, &p.app_id, &p.uuid).await?;
    let expires_at = match (&p.expired_time, amount.is_credit()) {
        (Some(raw), true) => {
            let at = state.clock.parse(raw).ok_or_else(|| {
                AppError::invalid("expired_time must be YYYY-MM-DD HH:MM:SS or epoch seconds")
            })?;
            if at <= crate::clock::now_ms() {
                return Err(AppError::invalid("expired_time is in the past").into());
            }
            Some(at)
        }
        (None, true) => return Err(AppError::missing("expired_time").into()),
        (_, false) => None,
    };
    let idem = IdempotencyKey::from_request("core", None, &req)?.map(IdempotencyKey::into_string);
    let flag = p.flag.unwrap_or_else(|| {
        if amount.is_credit() {
            "grant"
        } else {
            "deduct"
        }
        .into()
    });
    points::apply(
        &state,
        ChangeRequest {
            user: &user,
            amount,
            kind: &flag,
            idem_key: idem,
            reference: p.task_id.as_deref().unwrap_or_default(),
            description: p.transfer_info.as_deref().unwrap_or_default(),
            expires_at,
            limits: Vec::new(),
        },
    )
    .await?;
    Ok(ok(json!([])))
}

async fn core_expiring(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoreUserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let user = core_user(&state, &p.app_id, &p.uuid).await?;
    let days = expiring_days(&state, user.id, 366).await?;
    Ok(ok(json(days)))
}

async fn core_recent(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoreUserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let user = core_user(&state, &p.app_id, &p.uuid).await?;
    let today = state.clock.date(crate::clock::now_ms());
    let (s, e) = state.clock.day_bounds(today);
    // Points that stop counting at the end of today expire at the next midnight: (s, e].
    let points = state
        .stores
        .ledger
        .expiring_between(user.id, s + 1, e + 1)
        .await?;
    Ok(ok(json(CoreRecent {
        s: s / 1000,
        e: e / 1000 - 1,
        points,
    })))
}
