//! The admin sign-in routes (`/admin/signin/config`): thin handlers, their request shapes and
//! checks, and their docs.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{config, parse_milestones, ConfigChange, SigninConfig, SIGNIN_POINTS_MAX};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// Registers the admin sign-in routes, recording each in `doc`.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<AppReq, SigninConfig, _, _>(
        RouteDoc {
            path: "/admin/signin/config",
            methods: GET,
            tag,
            summary: "Sign-in settings of an app",
            description: "`app_id` (default `default`). A fresh app: `daily_points` 5, `milestones` `{\"7\":2,\"14\":4,\"21\":7,\"30\":11}`, `milestones_repeat` true, `focus_reward` 5, `collect_reward` 5.",
        },
        get_config,
    );
    r.add::<ConfigReq, SigninConfig, _, _>(
        RouteDoc {
            path: "/admin/signin/config",
            methods: POST,
            tag,
            summary: "Set the sign-in settings of an app",
            description: "`app_id` (default `default`); an omitted field keeps its value. `daily_points` 0-1000000. `milestones`: an object (or that object as a JSON string) of at most 64 entries `{\"<streak day 1-366>\": <bonus 0-1000000>}`; `{}` removes every milestone. `milestones_repeat` true/false: whether the milestones come round again after the largest one. `focus_reward`, `collect_reward` 0-1000000: one-time rewards of the pop. New settings apply to sign-ins from now on; a bad value answers 400 and changes nothing.",
        },
        save_config,
    );
}

/// An admin read of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `POST /admin/signin/config`; an omitted field keeps its value.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub daily_points: Option<i64>,
    /// `{"<streak day>": <bonus>}`, or that object as a JSON string.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub milestones: Option<Value>,
    /// `true`/`false` (also `1`/`0` or those as strings).
    #[serde(default)]
    #[schema(value_type = bool)]
    pub milestones_repeat: Option<Value>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub focus_reward: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub collect_reward: Option<i64>,
}

fn parse_bool(field: &str, raw: &Value) -> Result<bool, AppError> {
    match raw {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::String(s) => match s.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(AppError::invalid(format!("{field} must be true or false"))),
        },
        _ => Err(AppError::invalid(format!("{field} must be true or false"))),
    }
}

fn points_field(field: &str, value: Option<i64>) -> Result<Option<i64>, AppError> {
    match value {
        Some(v) if !(0..=SIGNIN_POINTS_MAX).contains(&v) => Err(AppError::invalid(format!(
            "{field} must be 0-{SIGNIN_POINTS_MAX}"
        ))),
        other => Ok(other),
    }
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state.stores.db, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    // Every field is checked before anything is written.
    let daily_points = points_field("daily_points", p.daily_points)?;
    let focus_reward = points_field("focus_reward", p.focus_reward)?;
    let collect_reward = points_field("collect_reward", p.collect_reward)?;
    let milestones = p.milestones.as_ref().map(parse_milestones).transpose()?;
    let repeat = p
        .milestones_repeat
        .as_ref()
        .map(|v| parse_bool("milestones_repeat", v))
        .transpose()?;
    let new = super::save_config(
        &state.stores.db,
        &app.id,
        ConfigChange {
            daily_points,
            milestones,
            milestones_repeat: repeat,
            focus_reward,
            collect_reward,
        },
    )
    .await?;
    Ok(ok(json!(new)))
}
