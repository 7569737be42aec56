//! The admin audit routes: list submissions, approve or reject one.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{decide, parse_status, store, Audit};
use crate::auth;
use crate::dialect::gift::{ok, Gift};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::Failure;
use crate::http::{lenient, AdminKey, ApiDoc, Page, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// `GET /admin/audits`.
#[derive(Deserialize, ToSchema)]
pub struct ListReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// `POST /admin/audits/decide`.
#[derive(Deserialize, ToSchema)]
pub struct DecideReq {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    /// `true` approves, `false` rejects.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub approve: Option<Value>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub points: Option<i64>,
}

/// Registers the admin audit routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin";
    r.add::<ListReq, Vec<Audit>, _, _>(
        RouteDoc {
            path: "/admin/audits",
            methods: GET,
            tag,
            summary: "List audit submissions of an app",
            description: "`app_id` (default `default`), optional `status` (`audit` in review, `success` approved, `failed` rejected), `page` from 1 and `size` 1-100 (default 20). Newest first.",
        },
        list_audits,
    );
    r.add::<DecideReq, Audit, _, _>(
        RouteDoc {
            path: "/admin/audits/decide",
            methods: POST,
            tag,
            summary: "Approve or reject an audit submission",
            description: "`id` the audit, `approve` true or false, `points` 0-1000000 granted on approval (default 0; ledger kind `audit`, key `audit:<app>:<id>`, so granted once however often or concurrently approved). Only a submission in review can be decided; the same decision again answers the audit unchanged (and completes a grant an earlier failure interrupted), another one answers 409. A rejection lets the user submit again.",
        },
        admin_decide,
    );
}

async fn list_audits(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ListReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(parse_status)
        .transpose()?;
    let page = Page::parse(p.page, p.size, 1, 20)?;
    let app = auth::app(&state, AppId::of(&p.app_id).as_str()).await?;
    let audits = store::audits(
        &state.stores.db,
        app.id.as_str(),
        status.unwrap_or(""),
        page.limit,
        page.offset,
    )
    .await?;
    Ok(ok(json!(audits)))
}

async fn admin_decide(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<DecideReq, Gift>,
) -> GiftReply {
    let audit = decide(&state, p.into_inner()).await?;
    Ok(ok(json!(audit)))
}
