//! The admin profile routes: the per-app profile settings.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{config, save_config, ProfileConfig};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::Failure;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// An admin request of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `POST /admin/profile/config`.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub phone_reward: Option<i64>,
}

/// Registers the admin profile routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<AppReq, ProfileConfig, _, _>(
        RouteDoc {
            path: "/admin/profile/config",
            methods: GET,
            tag,
            summary: "Profile settings of an app",
            description: "`app_id` (default `default`). `phone_reward`: points credited once for binding a phone through 003 `/api/wx_phone/` (default 0).",
        },
        admin_get_config,
    );
    r.add::<ConfigReq, ProfileConfig, _, _>(
        RouteDoc {
            path: "/admin/profile/config",
            methods: POST,
            tag,
            summary: "Set the profile settings of an app",
            description: "`app_id` (default `default`), `phone_reward` 0-1000000 (required). A bad value answers 400 and changes nothing.",
        },
        admin_save_config,
    );
}

async fn admin_get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state, &app.id).await?)))
}

async fn admin_save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    Ok(ok(json!(
        save_config(&state, &app.id, p.phone_reward).await?
    )))
}
