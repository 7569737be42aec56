//! Seed 003, the WeChat mini-program points API at `/api/*/`, with its negative return codes.
//!
//! Envelope `{"code":0,"msg":"success","data":...}`; POST routes take form or JSON bodies, GET
//! routes query parameters (both methods are accepted everywhere). `/api/login/` answers
//! `data.token`; every later call sends `Authorization: Bearer <token>` and names the same user
//! in `openid`. Codes beyond each route's own table: -401 no valid session token, -400 a field
//! with a bad value, -402 insufficient points, -409 conflict, -410 refused by the activity's state, -408 body too slow, -413 body too large, -429 busy or rate limited (then HTTP 429 with `Retry-After`),
//! -503 storage unavailable.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{self, Provider};
use crate::dialect::AppId;
use crate::dialect::GET_POST;
use crate::error::AppError;
use crate::http::{lenient, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::state::AppState;
use crate::store::HistoryFilter;

use crate::dialect::mini::{ok, own_openid, Mini, Reply};

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<LoginReq, LoginData, _, _>(
        RouteDoc {
            path: "/api/login/",
            methods: GET_POST,
            tag,
            summary: "用户登录",
            description: "`code` from wx.login (dev login: `X` -> `dev_X`); optional `invite`. Codes: 0 ok, -1 empty parameter, -2 WeChat not configured, -3 failed to get openid, -4 failed to create the user. `data`: `openid`, `is_new`, `token`.",
        },
        login,
    );
    r.add::<OpenidReq, Balance, _, _>(
        RouteDoc {
            path: "/api/query_balance/",
            methods: GET_POST,
            tag,
            summary: "查询积分",
            description: "Bearer token; `openid` must be the token's user. `data`: `balance`, `p_num` (users with points in this app), `avg_balance` (their average, rounded down). Codes: 0, -1 empty parameter, -2 wrong openid.",
        },
        query_balance,
    );
    r.add::<RecordReq, Vec<PointRecord>, _, _>(
        RouteDoc {
            path: "/api/query_point_record/",
            methods: GET_POST,
            tag,
            summary: "获取积分记录",
            description: "Bearer token; `index` page from 0, `num` 1-100 (default 10). `data`: list of `{name, c_time, point}`, newest first. Codes: 0, -1 empty parameter, -2 wrong openid.",
        },
        query_point_record,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct LoginReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub invite: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginData {
    pub openid: String,
    pub is_new: bool,
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RecordReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub index: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub num: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Balance {
    pub balance: i64,
    pub p_num: i64,
    pub avg_balance: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PointRecord {
    pub name: String,
    pub c_time: String,
    pub point: i64,
}

async fn login(state: web::Data<AppState>, p: Params<LoginReq, Mini>) -> Reply {
    let p = p.into_inner();
    let code = p.code.ok_or_else(|| AppError::missing("code"))?;
    let app_id = AppId::text(p.app_id);
    let login = auth::login(&state, &app_id, Provider::Wechat, &code)
        .await
        .map_err(|e| match e {
            AppError::NotConfigured(m) => AppError::Coded(-2, format!("系统没有配置微信: {m}")),
            AppError::Provider(m) | AppError::Invalid(m) => {
                AppError::Coded(-3, format!("获取openID失败: {m}"))
            }
            AppError::Unavailable(_) => AppError::Coded(-4, "创建用户失败".into()),
            other => other,
        })?;
    crate::features::invites::on_login(&state, &login.user, login.is_new, p.invite.as_deref())
        .await;
    Ok(ok(json!(LoginData {
        openid: login.user.platform_uid,
        is_new: login.is_new,
        token: login.token,
    })))
}

async fn query_balance(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> Reply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let balance = state.stores.ledger.balance(caller.session.user_id).await?;
    let (p_num, avg_balance) = state
        .stores
        .ledger
        .participation(&caller.session.app_id)
        .await?;
    Ok(ok(json!(Balance {
        balance,
        p_num,
        avg_balance,
    })))
}

async fn query_point_record(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<RecordReq, Mini>,
) -> Reply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -2)?;
    let page = Page::parse(p.index, p.num, 0, 10)?;
    let (rows, _) = state
        .stores
        .ledger
        .history(
            caller.session.user_id,
            &HistoryFilter::default(),
            page.offset,
            page.limit,
        )
        .await?;
    let items: Vec<PointRecord> = rows
        .iter()
        .map(|e| PointRecord {
            name: if e.description.is_empty() {
                e.kind.clone()
            } else {
                e.description.clone()
            },
            c_time: state.clock.format_datetime(e.created_at),
            point: e.amount,
        })
        .collect();
    Ok(ok(json!(items)))
}
