//! Seed 001, the points center: C-end ops at `/center/api/{op}` (Bearer token) and server ops at
//! `/center/admin/{op}` (`X-Admin-Key`). Each op is a POST with a JSON body; reads also accept GET.
//!
//! Envelope `{"code":0,"msg":"ok","result":...}`. Codes: 0 ok, 300013 insufficient points (the
//! client checks for it), 40000 bad or missing field, 40100 no valid token or admin key, 40300
//! another user, 40400 not found, 40900 idempotency conflict,
//! 40910 refused by the activity's state (not started, ended, twice, sold out), 40800 body too slow, 41300 body too
//! large, 42900 busy, limit reached or rate limited (HTTP 429 with `Retry-After`), 50100 not configured, 50200 provider failed, 50300 storage unavailable.

use actix_web::{web, HttpRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::dialect::AppId;
use crate::dialect::{IdempotencyKey, Points};
use crate::dialect::{GET_POST, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::HistoryFilter;

use crate::dialect::center::{ok, Center, Reply};

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "001 points center";
    r.add::<crate::http::Empty, UserPoints, _, _>(
        RouteDoc {
            path: "/center/api/getUserPoints",
            methods: GET_POST,
            tag,
            summary: "查询当前用户积分信息: balance and the next expiry",
            description: "Bearer token. `expiredPointsInfo.faceValue` is the number of points of the nearest expiry day, `expiredTime` that day (`YYYY-MM-DD`, the last day they count); `expiredPointsInfo` is `null` when nothing is due to expire.",
        },
        get_user_points,
    );
    r.add::<ChangeRecordReq, ChangeRecordPage, _, _>(
        RouteDoc {
            path: "/center/api/changeRecord",
            methods: GET_POST,
            tag,
            summary: "查询当前用户兑换记录 / 积分明细",
            description: "`type`: `task` every point change (default), `exchange` prize exchanges only. `pageIndex` (from 1; `page` is read too) and optional `size` (1-100, default 20). Newest first. `result`: `{data:[{desc, type, changeStatus (1 in, 2 out), faceValue, userRemainingPoints, createdAt, created_At}], total}`; the client asks for the next page while `total > pageIndex * 20`.",
        },
        change_record,
    );
    r.add::<ChangePointsReq, i64, _, _>(
        RouteDoc {
            path: "/center/admin/changePoints",
            methods: POST,
            tag,
            summary: "自定义积分增减: add or deduct a user's points (server op)",
            description: "`X-Admin-Key`. `faceValue` is signed (negative deducts); `changeType` one of task/exchange/other/sign/invite; `openId` the user's platform id; `app_id` defaults to `default`. An optional `transactionId` (or `Idempotency-Key` header) makes the call safe to retry. Insufficient points answer 300013. `result` is the new balance.",
        },
        change_points,
    );
    r.add::<crate::http::Empty, crate::jobs::JobReport, _, _>(
        RouteDoc {
            path: "/center/admin/timedTask",
            methods: GET_POST,
            tag,
            summary: "定时任务: run the daily jobs now",
            description: "`X-Admin-Key`. Runs what runs every day at 00:00 business time (and every minute to catch up): expires due points, purges expired sessions, settles due morning rounds and archives the boards. Every step is idempotent, so calling it twice, or late, changes nothing extra. `result` counts what was done.",
        },
        timed_task,
    );
}

/// `timedTask`: the daily jobs, on demand.
async fn timed_task(state: web::Data<AppState>, _admin: AdminKey<Center>) -> Reply {
    let report = crate::jobs::run_daily(&state).await?;
    Ok(ok(json!(report)))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPoints {
    pub points: i64,
    /// `null` when no points are due to expire.
    pub expired_points_info: Option<ExpiredPointsInfo>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpiredPointsInfo {
    pub face_value: i64,
    pub expired_time: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeRecordReq {
    /// `task` (point details) or `exchange` (exchange records).
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    /// The page, from 1 (the client sends `pageIndex`; `page` is read too).
    #[serde(
        default,
        rename = "pageIndex",
        alias = "page",
        deserialize_with = "lenient::opt_i64"
    )]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// `changeRecord`'s `result`: one page and how many records there are in all.
#[derive(Serialize, ToSchema)]
pub struct ChangeRecordPage {
    pub data: Vec<ChangeRecordItem>,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecordItem {
    pub desc: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    /// The same time, under the name the client's templates read.
    #[serde(rename = "created_At")]
    pub created_at_client: String,
    /// Points changed (absolute).
    pub face_value: i64,
    /// 1 increase, 2 decrease.
    pub change_status: i64,
    pub user_remaining_points: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePointsReq {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub face_value: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub open_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub change_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub desc: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub prize_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub transaction_id: Option<String>,
    #[serde(default, rename = "app_id", deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

const CHANGE_TYPES: &[&str] = &["task", "exchange", "other", "sign", "invite"];
const PRIZE_TYPES: &[&str] = &["goods", "virtualGoods", "integral"];

async fn get_user_points(state: web::Data<AppState>, caller: Caller<Center>) -> Reply {
    let user = caller.session.user_id;
    let points = state.stores.ledger.balance(user).await?;
    let expired_points_info = match points::next_expiry(&state, user).await? {
        Some((at, _)) => {
            // Every lot that stops counting on the same business day.
            let (start, end) = state
                .clock
                .day_bounds(state.clock.date(at.saturating_sub(1)));
            let points = state
                .stores
                .ledger
                .expiring_between(user, start + 1, end + 1)
                .await?;
            Some(ExpiredPointsInfo {
                face_value: points,
                expired_time: state.clock.expiry_date(at),
            })
        }
        // The page shows its own default text for `null`.
        None => None,
    };
    Ok(ok(serde_json::to_value(UserPoints {
        points,
        expired_points_info,
    })
    .unwrap_or(Value::Null)))
}

async fn change_record(
    state: web::Data<AppState>,
    caller: Caller<Center>,
    p: Params<ChangeRecordReq, Center>,
) -> Reply {
    let p = p.into_inner();
    let kind = match p.kind.as_deref().unwrap_or("task") {
        "task" => None,
        "exchange" => Some("exchange".to_string()),
        other => {
            return Err(AppError::invalid(format!(
                "type must be \"task\" or \"exchange\", got {other:?}"
            ))
            .into())
        }
    };
    let page = Page::parse(p.page, p.size, 1, 20)?;
    let filter = HistoryFilter {
        kind,
        ..HistoryFilter::default()
    };
    let (rows, total) = state
        .stores
        .ledger
        .history(caller.session.user_id, &filter, page.offset, page.limit)
        .await?;
    let data: Vec<ChangeRecordItem> = rows
        .iter()
        .map(|e| ChangeRecordItem {
            desc: e.description.clone(),
            kind: e.kind.clone(),
            created_at: state.clock.format_datetime(e.created_at),
            created_at_client: state.clock.format_datetime(e.created_at),
            face_value: e.amount.abs(),
            change_status: if e.amount > 0 { 1 } else { 2 },
            user_remaining_points: e.balance_after,
        })
        .collect();
    Ok(ok(
        serde_json::to_value(ChangeRecordPage { data, total }).unwrap_or(Value::Null)
    ))
}

async fn change_points(
    state: web::Data<AppState>,
    _admin: AdminKey<Center>,
    req: HttpRequest,
    p: Params<ChangePointsReq, Center>,
) -> Reply {
    let p = p.into_inner();
    let amount = Points::parse(p.face_value.ok_or_else(|| AppError::missing("faceValue"))?)?;
    let open_id = p.open_id.ok_or_else(|| AppError::missing("openId"))?;
    let change_type = p.change_type.unwrap_or_else(|| "other".into());
    if !CHANGE_TYPES.contains(&change_type.as_str()) {
        return Err(AppError::invalid(format!(
            "changeType must be one of {}",
            CHANGE_TYPES.join("/")
        ))
        .into());
    }
    if let Some(t) = &p.prize_type {
        if !PRIZE_TYPES.contains(&t.as_str()) {
            return Err(AppError::invalid(format!(
                "prizeType must be one of {}",
                PRIZE_TYPES.join("/")
            ))
            .into());
        }
    }
    let app = AppId::text(p.app_id);
    let user = points::user(&state, &app, &open_id).await?;
    let idem = IdempotencyKey::from_request("center", p.transaction_id.as_deref(), &req)?
        .map(IdempotencyKey::into_string);
    let outcome = points::apply(
        &state,
        ChangeRequest {
            user: &user,
            amount,
            kind: &change_type,
            idem_key: idem,
            reference: p.id.as_deref().unwrap_or_default(),
            description: p.desc.as_deref().unwrap_or_default(),
            expires_at: None,
            limits: Vec::new(),
        },
    )
    .await?;
    Ok(ok(json!(outcome.balance_after)))
}
