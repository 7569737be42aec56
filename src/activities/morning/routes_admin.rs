//! The admin morning routes (`/admin/morning/*`): rules, settlement and operator sign-ups, with
//! their request and answer shapes, thin handlers and route docs.

use actix_web::web;
use points_actors::activity::Refusal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::store;
use super::{
    config, parse_period, settle_round, sign_up, time_of_day, Mode, MorningConfig,
    MorningSettleReport, MORNING_SETTLE_ROUNDS_MAX, MORNING_SIGNUP_AHEAD_DAYS_MAX,
};
use crate::clock::{parse_time_of_day, Moment};
use crate::dialect::gift::{ok, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

/// Registers the admin morning routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<MorningAppQuery, MorningConfigView, _, _>(
        RouteDoc {
            path: "/admin/morning/config",
            methods: GET,
            tag,
            summary: "Morning check-in rules of an app",
            description: "`app_id` defaults to `default`. A fresh app: ticket 10, coefficient 1, 05:30:00-08:30:00, mode random 10-100, inflation 1-3.",
        },
        get_config,
    );
    r.add::<MorningConfigReq, MorningConfigView, _, _>(
        RouteDoc {
            path: "/admin/morning/config",
            methods: POST,
            tag,
            summary: "Set the morning check-in rules of an app",
            description: "Omitted fields keep their value. `ticket` 0-1000000; `coefficient` 0-1000 (shown pool = stakes × coefficient); `start_time` < `end_time`, `HH:MM[:SS]` business time (`24:00:00` = end of day); `mode` `random` (each successful user gets `min`-`max`, times `inflation_min`-`inflation_max` on every 7th consecutive check-in) or `split` (the stakes are shared exactly among the successful users, refunded if nobody checks in); 0 <= `min` <= `max` <= 1000000; 1 <= `inflation_min` <= `inflation_max` <= 100. Rounds already planned keep their payouts.",
        },
        set_config,
    );
    r.add::<MorningSettleReq, MorningSettleReport, _, _>(
        RouteDoc {
            path: "/admin/morning/settle",
            methods: POST,
            tag,
            summary: "Settle a morning round now",
            description: "`period` `YYYYMMDD`. Refused (410) while the round's window has not closed. Settles unsettled earlier rounds of the app first (streaks chain through them). Idempotent: a settled round answers its totals with `already_settled: true` and pays nothing. The periodic job does the same every minute.",
        },
        settle,
    );
    r.add::<MorningSignupReq, MorningSignupView, _, _>(
        RouteDoc {
            path: "/admin/morning/signups",
            methods: POST,
            tag,
            summary: "Sign a user up for a round",
            description: "Charges the app's ticket exactly like `v2/pick/sign.json`, for any `period` from today up to 31 days ahead (operators migrating sign-ups; tests opening a round for today). 410 already signed up or round closed; 402 not affordable; 404 unknown user.",
        },
        admin_signup,
    );
}

impl MorningConfig {
    fn view(&self, app_id: &str) -> MorningConfigView {
        MorningConfigView {
            app_id: app_id.to_string(),
            ticket: self.ticket,
            coefficient: self.coefficient,
            start_time: time_of_day(self.start),
            end_time: time_of_day(self.end),
            mode: self.mode.as_str().to_string(),
            min: self.min,
            max: self.max,
            inflation_min: self.inflation_min,
            inflation_max: self.inflation_max,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MorningAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub ticket: Option<i64>,
    #[serde(default, deserialize_with = "opt_f64")]
    pub coefficient: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
    /// `random` or `split`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub min: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub max: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub inflation_min: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub inflation_max: Option<i64>,
}

/// A number, also written as a string; empty counts as absent.
fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let parsed = match Value::deserialize(d)? {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(
            s.trim()
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))?,
        ),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a number, got {other}"
            )))
        }
    };
    match parsed {
        Some(x) if !x.is_finite() => Err(serde::de::Error::custom("expected a finite number")),
        other => Ok(other),
    }
}

#[derive(Serialize, ToSchema)]
pub struct MorningConfigView {
    pub app_id: String,
    pub ticket: i64,
    pub coefficient: f64,
    pub start_time: String,
    pub end_time: String,
    pub mode: String,
    pub min: i64,
    pub max: i64,
    pub inflation_min: i64,
    pub inflation_max: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningSettleReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningSignupReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MorningSignupView {
    pub app_id: String,
    pub period: String,
    pub user_id: String,
    /// Points charged.
    pub stake: i64,
    pub balance_after: i64,
}

async fn get_config(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningAppQuery, Gift>,
) -> Reply {
    let app_id = AppId::text(p.into_inner().app_id);
    let cfg = config(&state, &app_id).await?;
    Ok(ok(json!(cfg.view(&app_id))))
}

async fn set_config(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningConfigReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    // Read fresh, not cached: the update starts from what is stored.
    crate::auth::app(&state, &app_id).await?;
    let db = &state.stores.db;
    let old = store::load_config(db, &app_id).await?.unwrap_or_default();
    let time = |field: &str, raw: Option<String>, old: u32| -> Result<u32, AppError> {
        match raw {
            None => Ok(old),
            Some(raw) => parse_time_of_day(&raw).ok_or_else(|| {
                AppError::invalid(format!("{field} must be HH:MM or HH:MM:SS (00:00-24:00)"))
            }),
        }
    };
    let mode = match p.mode {
        None => old.mode,
        Some(raw) => Mode::parse(&raw)
            .ok_or_else(|| AppError::invalid("mode must be \"random\" or \"split\""))?,
    };
    let new = MorningConfig {
        ticket: p.ticket.unwrap_or(old.ticket),
        coefficient: p.coefficient.unwrap_or(old.coefficient),
        start: time("start_time", p.start_time, old.start)?,
        end: time("end_time", p.end_time, old.end)?,
        mode,
        min: p.min.unwrap_or(old.min),
        max: p.max.unwrap_or(old.max),
        inflation_min: p.inflation_min.unwrap_or(old.inflation_min),
        inflation_max: p.inflation_max.unwrap_or(old.inflation_max),
    };
    new.validate()?;
    store::save_config(db, &app_id, &new).await?;
    state
        .activities
        .slots
        .get::<super::Morning>()
        .configs
        .invalidate(&app_id);
    Ok(ok(json!(new.view(&app_id))))
}

async fn settle(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningSettleReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let period = p.period.ok_or_else(|| AppError::missing("period"))?;
    parse_period(&period)?;
    let period = period.trim().to_string();
    config(&state, &app_id).await?;
    // Earlier rounds first: the streaks of this one chain through their results.
    let earlier = store::unsettled_before(
        &state.stores.db,
        &app_id,
        &period,
        MORNING_SETTLE_ROUNDS_MAX,
    )
    .await?;
    for earlier in earlier {
        if let Err(e) = settle_round(&state, &app_id, &earlier).await {
            tracing::warn!(app_id, period = earlier, error = %e, "earlier morning round not settled");
        }
    }
    let report = settle_round(&state, &app_id, &period).await?;
    Ok(ok(json!(report)))
}

async fn admin_signup(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningSignupReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = AppId::text(p.app_id);
    let raw = p.period.ok_or_else(|| AppError::missing("period"))?;
    let uid = p.user_id.ok_or_else(|| AppError::missing("user_id"))?;
    let date = parse_period(&raw)?;
    let period = raw.trim().to_string();
    let now = Moment::now(&state.clock);
    let today = state.clock.date(now.ms);
    let last = today
        .checked_add_days(chrono::Days::new(MORNING_SIGNUP_AHEAD_DAYS_MAX))
        .unwrap_or(today);
    if date < today || date > last {
        return Err(AppError::invalid(format!(
            "period must be between today and {MORNING_SIGNUP_AHEAD_DAYS_MAX} days ahead"
        ))
        .into());
    }
    let cfg = config(&state, &app_id).await?;
    let user = crate::points::user(&state, &app_id, &uid).await?;
    if date == today && now.second_of_day >= cfg.end {
        return Err(AppError::Refused(Refusal::Ended).into());
    }
    let (stake, outcome) = sign_up(&state, &app_id, &period, user.id).await?;
    Ok(ok(json!(MorningSignupView {
        app_id,
        period,
        user_id: uid,
        stake,
        balance_after: outcome.balance_after,
    })))
}
