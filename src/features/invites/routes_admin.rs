//! The admin invite routes (`/admin/invites/config`): thin handlers, their request shapes and
//! checks, and their docs.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{config, InviteConfig, INVITE_POINTS_MAX, INVITE_TIMES_MAX};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// Registers the admin invite routes, recording each in `doc`.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<AppReq, InviteConfig, _, _>(
        RouteDoc {
            path: "/admin/invites/config",
            methods: GET,
            tag,
            summary: "Invite settings of an app",
            description: "`app_id` (default `default`). `points` per new invitee (fresh app: 20), `times` the multiplier (fresh app: 1), `reward` = `points * times`, what an inviter earns per new invitee.",
        },
        get_config,
    );
    r.add::<ConfigReq, InviteConfig, _, _>(
        RouteDoc {
            path: "/admin/invites/config",
            methods: POST,
            tag,
            summary: "Set the invite settings of an app",
            description: "`app_id` (default `default`); an omitted field keeps its value. `points` 0-1000000, `times` 1-100. Applies to invites from now on; a bad value answers 400 and changes nothing.",
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

/// `POST /admin/invites/config`; an omitted field keeps its value.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub points: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub times: Option<i64>,
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
    if let Some(v) = p.points.filter(|v| !(0..=INVITE_POINTS_MAX).contains(v)) {
        return Err(
            AppError::invalid(format!("points must be 0-{INVITE_POINTS_MAX}, not {v}")).into(),
        );
    }
    if let Some(v) = p.times.filter(|v| !(1..=INVITE_TIMES_MAX).contains(v)) {
        return Err(
            AppError::invalid(format!("times must be 1-{INVITE_TIMES_MAX}, not {v}")).into(),
        );
    }
    let new = super::save_config(&state.stores.db, &app.id, p.points, p.times).await?;
    Ok(ok(json!(new)))
}
