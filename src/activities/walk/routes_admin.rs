//! The walk admin routes: the walk settings and the cover images of an app.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::routes_gift::AppReq;
use super::{store, Covers, WalkConfig, COVER_URL_CHARS_MAX, WALK_AUTH_REWARD_MAX, WALK_RATE_MAX};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<AppReq, WalkConfig, _, _>(
        RouteDoc {
            path: "/admin/walk/config",
            methods: GET,
            tag,
            summary: "Walk settings of an app",
            description: "`app_id` (default `default`). `rate`: steps per point (default 300); `auth_reward`: points granted once for authorising WeRun (default 0).",
        },
        get_config,
    );
    r.add::<ConfigReq, WalkConfig, _, _>(
        RouteDoc {
            path: "/admin/walk/config",
            methods: POST,
            tag,
            summary: "Set the walk settings of an app",
            description: "`app_id` (default `default`), `rate` 1-1000000, `auth_reward` 0-1000000; an omitted field keeps its value. A new rate applies to exchanges from now on.",
        },
        save_config,
    );
    r.add::<AppReq, CoversView, _, _>(
        RouteDoc {
            path: "/admin/covers",
            methods: GET,
            tag,
            summary: "Cover images of an app",
            description: "`app_id` (default `default`).",
        },
        get_covers,
    );
    r.add::<CoversReq, CoversView, _, _>(
        RouteDoc {
            path: "/admin/covers",
            methods: POST,
            tag,
            summary: "Set the cover images of an app",
            description: "`app_id` (default `default`); `lottery_cover_img`, `walk_cover_img`, `pickup_cover_img` URLs of at most 1024 characters (an empty string clears one, an omitted field keeps its value).",
        },
        save_covers,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub auth_reward: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct CoversReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Absent keeps the stored value; `""` clears it.
    #[serde(default)]
    pub lottery_cover_img: Option<String>,
    #[serde(default)]
    pub walk_cover_img: Option<String>,
    #[serde(default)]
    pub pickup_cover_img: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CoversView {
    pub app_id: String,
    #[serde(flatten)]
    pub covers: Covers,
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(store::config(&state.stores.db, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    if p.rate.is_some_and(|r| !(1..=WALK_RATE_MAX).contains(&r)) {
        return Err(AppError::invalid(format!("rate must be 1-{WALK_RATE_MAX}")).into());
    }
    if p.auth_reward
        .is_some_and(|r| !(0..=WALK_AUTH_REWARD_MAX).contains(&r))
    {
        return Err(
            AppError::invalid(format!("auth_reward must be 0-{WALK_AUTH_REWARD_MAX}")).into(),
        );
    }
    let old = store::config(&state.stores.db, &app.id).await?;
    let new = WalkConfig {
        app_id: app.id.clone(),
        rate: p.rate.unwrap_or(old.rate),
        auth_reward: p.auth_reward.unwrap_or(old.auth_reward),
    };
    store::save_config(&state.stores.db, &new, crate::clock::now_ms()).await?;
    Ok(ok(json!(new)))
}

async fn get_covers(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    let covers = store::covers(&state.stores.db, &app.id).await?;
    Ok(ok(json!(CoversView {
        app_id: app.id,
        covers,
    })))
}

async fn save_covers(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoversReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    let fields: HashMap<&str, &Option<String>> = HashMap::from([
        ("lottery_cover_img", &p.lottery_cover_img),
        ("walk_cover_img", &p.walk_cover_img),
        ("pickup_cover_img", &p.pickup_cover_img),
    ]);
    for (name, value) in &fields {
        if value.as_ref().is_some_and(|v| {
            v.chars().count() > COVER_URL_CHARS_MAX || v.chars().any(char::is_control)
        }) {
            return Err(AppError::invalid(format!(
                "{name} must be a URL of at most {COVER_URL_CHARS_MAX} printable characters"
            ))
            .into());
        }
    }
    let old = store::covers(&state.stores.db, &app.id).await?;
    let pick =
        |new: &Option<String>, old: String| new.as_ref().map_or(old, |v| v.trim().to_string());
    let new = Covers {
        lottery_cover_img: pick(&p.lottery_cover_img, old.lottery_cover_img),
        walk_cover_img: pick(&p.walk_cover_img, old.walk_cover_img),
        pickup_cover_img: pick(&p.pickup_cover_img, old.pickup_cover_img),
    };
    store::save_covers(&state.stores.db, &app.id, &new, crate::clock::now_ms()).await?;
    Ok(ok(json!(CoversView {
        app_id: app.id,
        covers: new,
    })))
}
