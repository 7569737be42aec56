//! Home-page content of the 000 dialect: banners (plain, or linked to a task and then carrying
//! that task's item as `task_info`) and the icon grid (金刚区), each with a sort order and a
//! status. Clients list what is shown (status "10"), ordered by `sort` then id; operators create,
//! change, hide and delete entries through the admin routes.
//!
//! Banners are public. A TASK banner's `task_info.is_done` is the caller's when the request
//! carries a valid bearer token of the same app, and `false` otherwise. A TASK banner whose task
//! is not on shelf (off shelf, deleted) is left out of the list, since it would lead nowhere.
//!
//! Routes: 000 `v2/banner/list.json`, `v2/kingkong/list.json`; admin `/admin/banners`,
//! `/admin/kingkong`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use utoipa::ToSchema;

use crate::auth;
use crate::clock::now_ms;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{ok, Gift};
use crate::facades::{GET, GET_POST, POST};
use crate::features::tasks::{gift_task_item, GiftTaskItem};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

/// Banners an app keeps, deleted ones not counted.
pub const CONTENT_BANNERS_MAX: i64 = 100;
/// Icon-grid entries an app keeps, deleted ones not counted.
pub const CONTENT_KINGKONG_MAX: i64 = 100;
/// Longest image or icon link, in characters.
pub const CONTENT_LINK_CHARS_MAX: usize = 1000;
/// Longest name, target type or remark, in characters.
pub const CONTENT_TEXT_CHARS_MAX: usize = 200;
/// Largest absolute sort value.
pub const CONTENT_SORT_ABS_MAX: i64 = 1_000_000;

const STATUS_SHOWN: &str = "10";
const STATUS_DELETED: &str = "30";
const STATUSES: &[&str] = &["10", "20", "30"];

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// A banner as listed.
#[derive(Serialize, ToSchema)]
pub struct Banner {
    pub id: i64,
    pub image: String,
    /// `TASK` (linked to `task_id`) or `NORMAL`.
    #[serde(rename = "type")]
    pub kind: String,
    pub target_type: String,
    pub target: String,
    /// "10" shown, "20" hidden, "30" deleted.
    pub status: String,
    pub sort: i64,
    /// The linked task; 0 for NORMAL banners.
    pub task_id: i64,
    pub remark: String,
    pub create_time: String,
    pub modify_time: String,
    /// The linked task's item, for TASK banners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_info: Option<GiftTaskItem>,
}

/// An icon-grid entry as listed.
#[derive(Serialize, ToSchema)]
pub struct Kingkong {
    pub id: i64,
    pub icon: String,
    pub name: String,
    pub target_type: String,
    pub target: String,
    /// "10" shown, "20" hidden, "30" deleted.
    pub status: String,
    pub sort: i64,
    pub remark: String,
    pub create_time: String,
    pub modify_time: String,
}

/// A list request of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

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

/// Registers the content routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
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

    let tag = "admin";
    r.add::<BannerSave, Banner, _, _>(
        RouteDoc {
            path: "/admin/banners",
            methods: POST,
            tag,
            summary: "Create or change a banner",
            description: "`X-Admin-Key`. Without `id` creates a banner (`image` and `type` required); with `id` changes that banner of the app, absent fields keeping their value. `image` 1-1000 characters; `type` `TASK` or `NORMAL`; a TASK banner needs `task_id` of a task of the app that is on shelf, a NORMAL banner stores `task_id` 0; `target_type`, `target`, `remark` at most 200/1000/200 characters; `sort` within ±1000000; `status` \"10\" shown (default), \"20\" hidden, \"30\" deleted (a deleted banner cannot be changed). An app keeps at most 100 banners not deleted. Any violation answers 400 and changes nothing; unknown app or banner 404. `data`: the saved banner.",
        },
        save_banner,
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
        save_kingkong,
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

fn app_or_default(app: &Option<String>) -> String {
    app.clone().unwrap_or_else(|| "default".into())
}

fn text(field: &str, v: &str, max: usize, required: bool) -> Result<(), AppError> {
    let n = v.chars().count();
    if required && v.trim().is_empty() {
        return Err(AppError::missing(field));
    }
    if n > max {
        return Err(AppError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(())
}

fn check_status_sort(status: &str, sort: i64) -> Result<(), AppError> {
    if !STATUSES.contains(&status) {
        return Err(AppError::invalid("status must be \"10\", \"20\" or \"30\""));
    }
    if sort.abs() > CONTENT_SORT_ABS_MAX {
        return Err(AppError::invalid(format!(
            "sort must be within ±{CONTENT_SORT_ABS_MAX}"
        )));
    }
    Ok(())
}

const BANNER_COLUMNS: &str =
    "id, image, kind, target_type, target, status, sort, task_id, remark, created_at, updated_at";
const KINGKONG_COLUMNS: &str =
    "id, icon, name, target_type, target, status, sort, remark, created_at, updated_at";

fn banner_from(state: &AppState, r: &sqlx::any::AnyRow) -> Result<Banner, sqlx::Error> {
    Ok(Banner {
        id: r.try_get(0)?,
        image: r.try_get(1)?,
        kind: r.try_get(2)?,
        target_type: r.try_get(3)?,
        target: r.try_get(4)?,
        status: r.try_get(5)?,
        sort: r.try_get(6)?,
        task_id: r.try_get(7)?,
        remark: r.try_get(8)?,
        create_time: state.clock.format_datetime(r.try_get(9)?),
        modify_time: state.clock.format_datetime(r.try_get(10)?),
        task_info: None,
    })
}

fn kingkong_from(state: &AppState, r: &sqlx::any::AnyRow) -> Result<Kingkong, sqlx::Error> {
    Ok(Kingkong {
        id: r.try_get(0)?,
        icon: r.try_get(1)?,
        name: r.try_get(2)?,
        target_type: r.try_get(3)?,
        target: r.try_get(4)?,
        status: r.try_get(5)?,
        sort: r.try_get(6)?,
        remark: r.try_get(7)?,
        create_time: state.clock.format_datetime(r.try_get(8)?),
        modify_time: state.clock.format_datetime(r.try_get(9)?),
    })
}

/// Banners of `app_id`: only shown ones, or every one not deleted.
async fn banners(
    state: &AppState,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<Banner>, AppError> {
    let filter = if shown_only {
        "status = '10'"
    } else {
        "status <> '30'"
    };
    let rows = sqlx::query(&format!(
        "SELECT {BANNER_COLUMNS} FROM content_banners WHERE app_id = $1 AND {filter} ORDER BY sort, id"
    ))
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    Ok(rows
        .iter()
        .map(|r| banner_from(state, r))
        .collect::<Result<_, _>>()?)
}

async fn kingkongs(
    state: &AppState,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<Kingkong>, AppError> {
    let filter = if shown_only {
        "status = '10'"
    } else {
        "status <> '30'"
    };
    let rows = sqlx::query(&format!(
        "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE app_id = $1 AND {filter} ORDER BY sort, id"
    ))
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    Ok(rows
        .iter()
        .map(|r| kingkong_from(state, r))
        .collect::<Result<_, _>>()?)
}

async fn list_banners(
    state: web::Data<AppState>,
    caller: Option<Caller<Gift>>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    // Only the caller's own progress is shown, and only within the app the token belongs to.
    let user = caller
        .filter(|c| c.session.app_id == app.id)
        .map(|c| c.session.user_id);
    let mut shown = Vec::new();
    for mut b in banners(&state, &app.id, true).await? {
        if b.kind == "TASK" {
            match gift_task_item(&state, &app.id, b.task_id, user).await? {
                Some(item) => b.task_info = Some(item),
                None => continue,
            }
        }
        shown.push(b);
    }
    Ok(ok(json!(shown)))
}

async fn list_kingkong(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(kingkongs(&state, &app.id, true).await?)))
}

async fn admin_banners(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(banners(&state, &app.id, false).await?)))
}

async fn admin_kingkong(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(kingkongs(&state, &app.id, false).await?)))
}

async fn live_count(state: &AppState, table: &str, app_id: &str) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE app_id = $1 AND status <> '30'"
    ))
    .bind(app_id)
    .fetch_one(&state.stores.db.write)
    .await?)
}

async fn save_banner(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<BannerSave, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    let old = match p.id {
        Some(id) => {
            let row = sqlx::query(&format!(
                "SELECT {BANNER_COLUMNS} FROM content_banners WHERE app_id = $1 AND id = $2"
            ))
            .bind(&app.id)
            .bind(id)
            .fetch_optional(&state.stores.db.write)
            .await?
            .ok_or_else(|| AppError::NotFound("banner not found".into()))?;
            let b = banner_from(&state, &row)?;
            if b.status == STATUS_DELETED {
                return Err(AppError::NotFound("banner was deleted".into()).into());
            }
            Some(b)
        }
        None => None,
    };
    let pick = |new: &Option<String>, old: Option<&String>| {
        new.clone().or_else(|| old.cloned()).unwrap_or_default()
    };
    let image = pick(&p.image, old.as_ref().map(|o| &o.image));
    let kind = pick(&p.kind, old.as_ref().map(|o| &o.kind));
    let target_type = pick(&p.target_type, old.as_ref().map(|o| &o.target_type));
    let target = pick(&p.target, old.as_ref().map(|o| &o.target));
    let remark = pick(&p.remark, old.as_ref().map(|o| &o.remark));
    let status = p
        .status
        .clone()
        .or_else(|| old.as_ref().map(|o| o.status.clone()))
        .unwrap_or_else(|| STATUS_SHOWN.into());
    let sort = p.sort.or(old.as_ref().map(|o| o.sort)).unwrap_or(0);
    text("image", &image, CONTENT_LINK_CHARS_MAX, true)?;
    text("type", &kind, CONTENT_TEXT_CHARS_MAX, true)?;
    text("target_type", &target_type, CONTENT_TEXT_CHARS_MAX, false)?;
    text("target", &target, CONTENT_LINK_CHARS_MAX, false)?;
    text("remark", &remark, CONTENT_TEXT_CHARS_MAX, false)?;
    check_status_sort(&status, sort)?;
    let task_id = match kind.as_str() {
        "NORMAL" => 0,
        "TASK" => {
            let id = p
                .task_id
                .or(old.as_ref().map(|o| o.task_id))
                .filter(|id| *id > 0)
                .ok_or_else(|| AppError::missing("task_id"))?;
            if gift_task_item(&state, &app.id, id, None).await?.is_none() {
                return Err(AppError::invalid("task_id is not a task of the app on shelf").into());
            }
            id
        }
        _ => return Err(AppError::invalid("type must be TASK or NORMAL").into()),
    };
    let now = now_ms();
    let id = match old {
        Some(o) => {
            sqlx::query(
                "UPDATE content_banners SET image = $1, kind = $2, target_type = $3, target = $4, \
                 status = $5, sort = $6, task_id = $7, remark = $8, updated_at = $9 \
                 WHERE app_id = $10 AND id = $11",
            )
            .bind(&image)
            .bind(&kind)
            .bind(&target_type)
            .bind(&target)
            .bind(&status)
            .bind(sort)
            .bind(task_id)
            .bind(&remark)
            .bind(now)
            .bind(&app.id)
            .bind(o.id)
            .execute(&state.stores.db.write)
            .await?;
            o.id
        }
        None => {
            if status != STATUS_DELETED
                && live_count(&state, "content_banners", &app.id).await? >= CONTENT_BANNERS_MAX
            {
                return Err(AppError::invalid(format!(
                    "an app keeps at most {CONTENT_BANNERS_MAX} banners"
                ))
                .into());
            }
            sqlx::query_scalar(
                "INSERT INTO content_banners (app_id, image, kind, target_type, target, status, \
                 sort, task_id, remark, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
            )
            .bind(&app.id)
            .bind(&image)
            .bind(&kind)
            .bind(&target_type)
            .bind(&target)
            .bind(&status)
            .bind(sort)
            .bind(task_id)
            .bind(&remark)
            .bind(now)
            .fetch_one(&state.stores.db.write)
            .await?
        }
    };
    let row = sqlx::query(&format!(
        "SELECT {BANNER_COLUMNS} FROM content_banners WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&state.stores.db.write)
    .await?;
    Ok(ok(json!(banner_from(&state, &row)?)))
}

async fn save_kingkong(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<KingkongSave, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    let old = match p.id {
        Some(id) => {
            let row = sqlx::query(&format!(
                "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE app_id = $1 AND id = $2"
            ))
            .bind(&app.id)
            .bind(id)
            .fetch_optional(&state.stores.db.write)
            .await?
            .ok_or_else(|| AppError::NotFound("entry not found".into()))?;
            let k = kingkong_from(&state, &row)?;
            if k.status == STATUS_DELETED {
                return Err(AppError::NotFound("entry was deleted".into()).into());
            }
            Some(k)
        }
        None => None,
    };
    let pick = |new: &Option<String>, old: Option<&String>| {
        new.clone().or_else(|| old.cloned()).unwrap_or_default()
    };
    let icon = pick(&p.icon, old.as_ref().map(|o| &o.icon));
    let name = pick(&p.name, old.as_ref().map(|o| &o.name));
    let target_type = pick(&p.target_type, old.as_ref().map(|o| &o.target_type));
    let target = pick(&p.target, old.as_ref().map(|o| &o.target));
    let remark = pick(&p.remark, old.as_ref().map(|o| &o.remark));
    let status = p
        .status
        .clone()
        .or_else(|| old.as_ref().map(|o| o.status.clone()))
        .unwrap_or_else(|| STATUS_SHOWN.into());
    let sort = p.sort.or(old.as_ref().map(|o| o.sort)).unwrap_or(0);
    text("icon", &icon, CONTENT_LINK_CHARS_MAX, true)?;
    text("name", &name, CONTENT_TEXT_CHARS_MAX, true)?;
    text("target_type", &target_type, CONTENT_TEXT_CHARS_MAX, false)?;
    text("target", &target, CONTENT_LINK_CHARS_MAX, false)?;
    text("remark", &remark, CONTENT_TEXT_CHARS_MAX, false)?;
    check_status_sort(&status, sort)?;
    let now = now_ms();
    let id = match old {
        Some(o) => {
            sqlx::query(
                "UPDATE content_kingkong SET icon = $1, name = $2, target_type = $3, target = $4, \
                 status = $5, sort = $6, remark = $7, updated_at = $8 WHERE app_id = $9 AND id = $10",
            )
            .bind(&icon)
            .bind(&name)
            .bind(&target_type)
            .bind(&target)
            .bind(&status)
            .bind(sort)
            .bind(&remark)
            .bind(now)
            .bind(&app.id)
            .bind(o.id)
            .execute(&state.stores.db.write)
            .await?;
            o.id
        }
        None => {
            if status != STATUS_DELETED
                && live_count(&state, "content_kingkong", &app.id).await? >= CONTENT_KINGKONG_MAX
            {
                return Err(AppError::invalid(format!(
                    "an app keeps at most {CONTENT_KINGKONG_MAX} icon-grid entries"
                ))
                .into());
            }
            sqlx::query_scalar(
                "INSERT INTO content_kingkong (app_id, icon, name, target_type, target, status, \
                 sort, remark, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
            )
            .bind(&app.id)
            .bind(&icon)
            .bind(&name)
            .bind(&target_type)
            .bind(&target)
            .bind(&status)
            .bind(sort)
            .bind(&remark)
            .bind(now)
            .fetch_one(&state.stores.db.write)
            .await?
        }
    };
    let row = sqlx::query(&format!(
        "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&state.stores.db.write)
    .await?;
    Ok(ok(json!(kingkong_from(&state, &row)?)))
}
