//! The admin content routes: create, change and list banners and icon-grid entries.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{banners, kingkongs, save_banner, save_kingkong, AppReq, Banner, Kingkong};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::Failure;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// `POST /admin/banners`: without `id` a new banner, with `id` a change (absent fields kept).
#[derive(Deserialize, ToSchema)]
pub struct BannerSave {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub image: Option<String>,
    /// `TASK` or `NORMAL`.
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub task_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub remark: Option<String>,
}

/// `POST /admin/kingkong`: without `id` a new entry, with `id` a change (absent fields kept).
#[derive(Deserialize, ToSchema)]
pub struct KingkongSave {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub icon: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub remark: Option<String>,
}

/// Registers the admin content routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<BannerSave, Banner, _, _>(
        RouteDoc {
            path: "/admin/banners",
            methods: POST,
            tag,
            summary: "Create or change a banner",
            description: "`X-Admin-Key`. Without `id` creates a banner (`image` and `type` required); with `id` changes that banner of the app, absent fields keeping their value. `image` 1-1000 characters; `type` `TASK` or `NORMAL`; a TASK banner needs `task_id` of a task of the app that is on shelf, a NORMAL banner stores `task_id` 0; `target_type`, `target`, `remark` at most 200/1000/200 characters; `sort` within ±1000000; `status` \"10\" shown (default), \"20\" hidden, \"30\" deleted (a deleted banner cannot be changed). An app keeps at most 100 banners not deleted. Any violation answers 400 and changes nothing; unknown app or banner 404. `data`: the saved banner.",
        },
        admin_save_banner,
    );
    r.add::<AppReq, Vec<Banner>, _, _>(
        RouteDoc {
            path: "/admin/banners",
            methods: GET,
            tag,
            summary: "Every banner of an app that is not deleted",
            description: "`X-Admin-Key`; `app_id` defaults to `default`. Shown and hidden banners by `sort` then `id`, without `task_info`.",
        },
        admin_banners,
    );
    r.add::<KingkongSave, Kingkong, _, _>(
        RouteDoc {
            path: "/admin/kingkong",
            methods: POST,
            tag,
            summary: "Create or change an icon-grid entry",
            description: "`X-Admin-Key`. Without `id` creates an entry (`icon` and `name` required); with `id` changes that entry of the app, absent fields keeping their value. `icon` 1-1000 characters, `name` 1-200; `target_type`, `target`, `remark` at most 200/1000/200 characters; `sort` within ±1000000; `status` \"10\" shown (default), \"20\" hidden, \"30\" deleted (a deleted entry cannot be changed). An app keeps at most 100 entries not deleted. Any violation answers 400 and changes nothing; unknown app or entry 404. `data`: the saved entry.",
        },
        admin_save_kingkong,
    );
    r.add::<AppReq, Vec<Kingkong>, _, _>(
        RouteDoc {
            path: "/admin/kingkong",
            methods: GET,
            tag,
            summary: "Every icon-grid entry of an app that is not deleted",
            description: "`X-Admin-Key`; `app_id` defaults to `default`. Shown and hidden entries by `sort` then `id`.",
        },
        admin_kingkong,
    );
}

async fn admin_banners(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(banners(&state, &app.id, false).await?)))
}

async fn admin_kingkong(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(kingkongs(&state, &app.id, false).await?)))
}

async fn admin_save_banner(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<BannerSave, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    Ok(ok(json!(save_banner(&state, &app.id, p).await?)))
}

async fn admin_save_kingkong(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<KingkongSave, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &AppId::text_of(&p.app_id)).await?;
    Ok(ok(json!(save_kingkong(&state, &app.id, p).await?)))
}
