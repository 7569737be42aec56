//! The 000 dialect's content routes: the shown banners and icon grid of an app.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{kingkongs, shown_banners, Banner, Kingkong};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::GET_POST;
use crate::error::Failure;
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// A list request of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// Registers the 000 content routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<AppReq, Vec<Banner>, _, _>(
        RouteDoc {
            path: "/v2/banner/list.json",
            methods: GET_POST,
            tag,
            summary: "banner列表: the app's shown banners",
            description: "Public; `app_id` (default `default`). Banners with status \"10\", by `sort` then `id`. `type` `TASK` banners carry `task_info`, the linked task's item as in `v2/task/list.json`; its `is_done` is the caller's when a valid bearer token of the same app is sent, `false` otherwise. A TASK banner whose task is not on shelf is left out. Unknown app: code 404.",
        },
        list_banners,
    );
    r.add::<AppReq, Vec<Kingkong>, _, _>(
        RouteDoc {
            path: "/v2/kingkong/list.json",
            methods: GET_POST,
            tag,
            summary: "金刚区列表: the app's shown icon grid",
            description: "Public; `app_id` (default `default`). Entries with status \"10\", by `sort` then `id`. Unknown app: code 404.",
        },
        list_kingkong,
    );
}

async fn list_banners(
    state: web::Data<AppState>,
    caller: Option<Caller<Gift>>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    // Only the caller's own progress is shown, and only within the app the token belongs to.
    let user = caller
        .filter(|c| c.session.app_id == app.id)
        .map(|c| c.session.user_id);
    Ok(ok(json!(shown_banners(&state, &app.id, user).await?)))
}

async fn list_kingkong(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(kingkongs(&state, &app.id, true).await?)))
}
