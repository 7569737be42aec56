//! The admin API at `/admin/*`: apps and their provider settings, users, earning rules, a user's
//! ledger, and running the daily jobs by hand. `X-Admin-Key` required; answers use the 000
//! envelope and code table (see [`crate::facades::giftpoint`]).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Page, Params, RouteDoc, Routes};
use crate::jobs::JobReport;
use crate::state::AppState;
use crate::store::{AppSettings, EarningRule, HistoryFilter};

type Reply = Result<HttpResponse, Failure<Gift>>;

/// Longest app id.
const APP_ID_BYTES_MAX: usize = 64;
/// Largest reward one earning rule may grant per event.
const RULE_POINTS_MAX: i64 = 1_000_000;

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<crate::http::Empty, Vec<AppView>, _, _>(
        RouteDoc {
            path: "/admin/apps",
            methods: GET,
            tag,
            summary: "List apps",
            description: "Secrets show as `<set>`.",
        },
        list_apps,
    );
    r.add::<AppReq, AppView, _, _>(
        RouteDoc {
            path: "/admin/apps",
            methods: POST,
            tag,
            summary: "Create or update an app",
            description: "`id` 1-64 of `[A-Za-z0-9_-]`; `settings` holds the app's WeChat and Alipay credentials, AES key and points life (`expiry_months`). Omitted settings fields keep their stored value.",
        },
        save_app,
    );
    r.add::<UserReq, UserView, _, _>(
        RouteDoc {
            path: "/admin/users",
            methods: POST,
            tag,
            summary: "Create a user",
            description: "Creates user `user_id` (a platform id) in `app_id` if absent, e.g. to import users before granting them points.",
        },
        create_user,
    );
    r.add::<LedgerReq, LedgerView, _, _>(
        RouteDoc {
            path: "/admin/users/ledger",
            methods: GET,
            tag,
            summary: "A user's balance and ledger entries",
            description: "`app_id` (default `default`), `user_id`, `page` from 1, `step` 1-100.",
        },
        user_ledger,
    );
    r.add::<AppQuery, Vec<EarningRule>, _, _>(
        RouteDoc {
            path: "/admin/earning-rules",
            methods: GET,
            tag,
            summary: "List earning rules of an app",
            description: "`app_id` defaults to `default`.",
        },
        list_rules,
    );
    r.add::<RuleReq, EarningRule, _, _>(
        RouteDoc {
            path: "/admin/earning-rules",
            methods: POST,
            tag,
            summary: "Create or replace an earning rule",
            description: "Event `event_type` earns `points` (1-1000000) per report, at most `daily_cap` times per user per business day (0 = no cap).",
        },
        save_rule,
    );
    r.add::<RuleKey, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/admin/earning-rules/delete",
            methods: POST,
            tag,
            summary: "Delete an earning rule",
            description: "404 when the rule does not exist.",
        },
        delete_rule,
    );
    r.add::<crate::http::Empty, JobReport, _, _>(
        RouteDoc {
            path: "/admin/jobs/run",
            methods: POST,
            tag,
            summary: "Run the daily jobs now",
            description: "Expires due points and purges expired sessions. Safe to run any time and any number of times.",
        },
        run_jobs,
    );
    r.add::<crate::http::Empty, ClusterView, _, _>(
        RouteDoc {
            path: "/admin/cluster",
            methods: GET,
            tag,
            summary: "Nodes and activity leases",
            description: "`data.nodes`: every node's `node_id`, `addr` and `last_seen_ms` (the database's clock). `data.leases`: every activity lease (`activity` like `redpack:card:<id>`), its owner's `node_id`, its `epoch` (grows at every takeover) and `expires_in_ms` (0 once run out). A single node shows itself and no lease.",
        },
        cluster,
    );
}

/// The cluster as `GET /admin/cluster` shows it.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    pub nodes: Vec<crate::cluster::NodeView>,
    pub leases: Vec<crate::cluster::LeaseView>,
}

async fn cluster(state: web::Data<AppState>, _a: AdminKey<Gift>) -> Reply {
    let (nodes, leases) = state.cluster.view().await?;
    Ok(ok(json!(ClusterView { nodes, leases })))
}

#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub settings: AppSettings,
}

#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub settings: Option<AppSettings>,
}

#[derive(Deserialize, ToSchema)]
pub struct AppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub app_id: String,
    pub user_id: String,
    pub created: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct LedgerReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub step: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    pub amount: i64,
    pub kind: String,
    pub idempotency_key: String,
    pub reference: String,
    pub description: String,
    pub expires_at: Option<String>,
    pub balance_after: i64,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerView {
    pub balance: i64,
    pub total: i64,
    pub entries: Vec<LedgerEntryView>,
}

#[derive(Deserialize, ToSchema)]
pub struct RuleReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    pub event_type: String,
    #[serde(deserialize_with = "lenient_i64")]
    pub points: i64,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub daily_cap: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient::opt_i64(d)?.ok_or_else(|| serde::de::Error::custom("expected a whole number"))
}

#[derive(Deserialize, ToSchema)]
pub struct RuleKey {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    pub event_type: String,
}

fn app_view(app: crate::store::App) -> AppView {
    AppView {
        settings: app.settings.redacted(),
        id: app.id,
        name: app.name,
    }
}

async fn list_apps(state: web::Data<AppState>, _a: AdminKey<Gift>) -> Reply {
    let apps: Vec<AppView> = state
        .stores
        .accounts
        .apps()
        .await?
        .into_iter()
        .map(app_view)
        .collect();
    Ok(ok(json!(apps)))
}

/// Fills the fields `new` leaves out from `old`.
fn merge_settings(old: AppSettings, new: AppSettings) -> AppSettings {
    AppSettings {
        wechat_appid: new.wechat_appid.or(old.wechat_appid),
        wechat_secret: new.wechat_secret.or(old.wechat_secret),
        alipay_app_id: new.alipay_app_id.or(old.alipay_app_id),
        alipay_private_key: new.alipay_private_key.or(old.alipay_private_key),
        alipay_public_key: new.alipay_public_key.or(old.alipay_public_key),
        aes_key: new.aes_key.or(old.aes_key),
        expiry_months: new.expiry_months.or(old.expiry_months),
    }
}

async fn save_app(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let id = p.id.trim();
    if id.is_empty()
        || id.len() > APP_ID_BYTES_MAX
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(AppError::invalid("id must be 1-64 of A-Z a-z 0-9 _ -").into());
    }
    let existing = state.stores.accounts.app(id).await?;
    let settings = p.settings.unwrap_or_default();
    if settings.expiry_months.is_some_and(|m| m > 1200) {
        return Err(AppError::invalid("expiry_months must be at most 1200").into());
    }
    if let Some(key) = &settings.alipay_private_key {
        if key.len() > 16 * 1024 {
            return Err(AppError::invalid("alipay_private_key is too long").into());
        }
    }
    let (name, settings) = match existing {
        Some(app) => (
            p.name.unwrap_or(app.name),
            merge_settings(app.settings, settings),
        ),
        None => (p.name.unwrap_or_else(|| id.to_string()), settings),
    };
    state
        .stores
        .accounts
        .upsert_app(id, &name, &settings)
        .await?;
    let app = state
        .stores
        .accounts
        .app(id)
        .await?
        .ok_or_else(|| AppError::Unavailable("app vanished after saving".into()))?;
    Ok(ok(json!(app_view(app))))
}

async fn create_user(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<UserReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let uid = p.user_id.ok_or_else(|| AppError::missing("user_id"))?;
    if uid.len() > 128 || uid.chars().any(char::is_control) {
        return Err(AppError::invalid("user_id must be 1-128 printable characters").into());
    }
    crate::auth::app(&state, &app_id).await?;
    let (user, created) = state
        .stores
        .accounts
        .login_user(&app_id, &uid, "admin", None, None)
        .await?;
    Ok(ok(json!(UserView {
        app_id: user.app_id,
        user_id: user.platform_uid,
        created,
    })))
}

async fn user_ledger(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<LedgerReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let uid = p.user_id.ok_or_else(|| AppError::missing("user_id"))?;
    let user = crate::points::user(&state, &AppId::text(p.app_id), &uid).await?;
    let page = Page::parse(p.page, p.step, 1, 20)?;
    let (rows, total) = state
        .stores
        .ledger
        .history(user.id, &HistoryFilter::default(), page.offset, page.limit)
        .await?;
    let balance = state.stores.ledger.balance(user.id).await?;
    let entries = rows
        .into_iter()
        .map(|e| LedgerEntryView {
            id: e.id,
            amount: e.amount,
            kind: e.kind,
            idempotency_key: e.idem_key,
            reference: e.reference,
            description: e.description,
            expires_at: e.expires_at.map(|t| state.clock.format_datetime(t)),
            balance_after: e.balance_after,
            created_at: state.clock.format_datetime(e.created_at),
        })
        .collect();
    Ok(ok(json!(LedgerView {
        balance,
        total,
        entries,
    })))
}

async fn list_rules(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<AppQuery, Gift>,
) -> Reply {
    let rules = state
        .stores
        .rules
        .list(&AppId::text(p.into_inner().app_id))
        .await?;
    Ok(ok(json!(rules)))
}

async fn save_rule(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<RuleReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    crate::auth::app(&state, &app_id).await?;
    let event_type = p.event_type.trim().to_string();
    if event_type.is_empty() || event_type.len() > 64 {
        return Err(AppError::invalid("event_type must be 1-64 characters").into());
    }
    if !(1..=RULE_POINTS_MAX).contains(&p.points) {
        return Err(AppError::invalid(format!("points must be 1-{RULE_POINTS_MAX}")).into());
    }
    let daily_cap = p.daily_cap.unwrap_or(0);
    if !(0..=1_000_000).contains(&daily_cap) {
        return Err(AppError::invalid("daily_cap must be 0-1000000").into());
    }
    let rule = EarningRule {
        app_id,
        event_type,
        points: p.points,
        daily_cap,
        description: crate::points::text(
            "description",
            p.description.as_deref().unwrap_or_default(),
        )?
        .to_string(),
        enabled: p.enabled.unwrap_or(true),
        updated_at: crate::clock::now_ms(),
    };
    state.stores.rules.upsert(&rule).await?;
    Ok(ok(json!(rule)))
}

async fn delete_rule(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<RuleKey, Gift>,
) -> Reply {
    let p = p.into_inner();
    if !state
        .stores
        .rules
        .delete(&AppId::text(p.app_id), &p.event_type)
        .await?
    {
        return Err(AppError::NotFound("no such earning rule".into()).into());
    }
    Ok(ok(json!([])))
}

async fn run_jobs(state: web::Data<AppState>, _a: AdminKey<Gift>) -> Reply {
    let report = crate::jobs::run_daily(&state).await?;
    Ok(ok(json!(report)))
}
