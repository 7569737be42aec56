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
//!
//! This file holds the rules (validation, merging a change into the stored entry); the SQL is in
//! `store.rs`, the handlers in `routes_gift.rs` and `routes_admin.rs`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::dialect::Status;
use crate::error::AppError;
use crate::features::tasks::{gift_task_item, GiftTaskItem};
use crate::http::ApiDoc;
use crate::state::AppState;

mod routes_admin;
mod routes_gift;
pub(crate) mod store;

pub use routes_admin::{BannerSave, KingkongSave};
pub use routes_gift::AppReq;

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

const STATUS_SHOWN: &str = Status::On.code();
const STATUS_DELETED: &str = Status::Deleted.code();
const STATUSES: &[&str] = &Status::CODES;

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

/// Registers the content routes.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
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

fn banner_from(state: &AppState, r: store::BannerRow) -> Banner {
    Banner {
        id: r.id,
        image: r.image,
        kind: r.kind,
        target_type: r.target_type,
        target: r.target,
        status: r.status,
        sort: r.sort,
        task_id: r.task_id,
        remark: r.remark,
        create_time: state.clock.format_datetime(r.created_at),
        modify_time: state.clock.format_datetime(r.updated_at),
        task_info: None,
    }
}

fn kingkong_from(state: &AppState, r: store::KingkongRow) -> Kingkong {
    Kingkong {
        id: r.id,
        icon: r.icon,
        name: r.name,
        target_type: r.target_type,
        target: r.target,
        status: r.status,
        sort: r.sort,
        remark: r.remark,
        create_time: state.clock.format_datetime(r.created_at),
        modify_time: state.clock.format_datetime(r.updated_at),
    }
}

/// Banners of `app_id`: only shown ones, or every one not deleted.
async fn banners(
    state: &AppState,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<Banner>, AppError> {
    let rows = store::banners(&state.stores.db, app_id, shown_only).await?;
    Ok(rows.into_iter().map(|r| banner_from(state, r)).collect())
}

async fn kingkongs(
    state: &AppState,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<Kingkong>, AppError> {
    let rows = store::kingkongs(&state.stores.db, app_id, shown_only).await?;
    Ok(rows.into_iter().map(|r| kingkong_from(state, r)).collect())
}

/// The app's shown banners, TASK banners with the task's item (`user`'s progress when known);
/// TASK banners whose task is not on shelf left out.
async fn shown_banners(
    state: &AppState,
    app_id: &str,
    user: Option<i64>,
) -> Result<Vec<Banner>, AppError> {
    let mut shown = Vec::new();
    for mut b in banners(state, app_id, true).await? {
        if b.kind == "TASK" {
            match gift_task_item(state, app_id, b.task_id, user).await? {
                Some(item) => b.task_info = Some(item),
                None => continue,
            }
        }
        shown.push(b);
    }
    Ok(shown)
}

/// Creates (no `id`) or changes a banner of `app_id`; the saved banner.
async fn save_banner(state: &AppState, app_id: &str, p: BannerSave) -> Result<Banner, AppError> {
    let db = &state.stores.db;
    let old = match p.id {
        Some(id) => {
            let row = store::banner_of_app(db, app_id, id)
                .await?
                .ok_or_else(|| AppError::NotFound("banner not found".into()))?;
            let b = banner_from(state, row);
            if b.status == STATUS_DELETED {
                return Err(AppError::NotFound("banner was deleted".into()));
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
            if gift_task_item(state, app_id, id, None).await?.is_none() {
                return Err(AppError::invalid(
                    "task_id is not a task of the app on shelf",
                ));
            }
            id
        }
        _ => return Err(AppError::invalid("type must be TASK or NORMAL")),
    };
    let values = store::BannerValues {
        image: &image,
        kind: &kind,
        target_type: &target_type,
        target: &target,
        status: &status,
        sort,
        task_id,
        remark: &remark,
    };
    let now = now_ms();
    let id = match old {
        Some(o) => {
            store::update_banner(db, app_id, o.id, &values, now).await?;
            o.id
        }
        None => {
            if status != STATUS_DELETED
                && store::live_count(db, "content_banners", app_id).await? >= CONTENT_BANNERS_MAX
            {
                return Err(AppError::invalid(format!(
                    "an app keeps at most {CONTENT_BANNERS_MAX} banners"
                )));
            }
            store::insert_banner(db, app_id, &values, now).await?
        }
    };
    Ok(banner_from(state, store::banner(db, id).await?))
}

/// Creates (no `id`) or changes an icon-grid entry of `app_id`; the saved entry.
async fn save_kingkong(
    state: &AppState,
    app_id: &str,
    p: KingkongSave,
) -> Result<Kingkong, AppError> {
    let db = &state.stores.db;
    let old = match p.id {
        Some(id) => {
            let row = store::kingkong_of_app(db, app_id, id)
                .await?
                .ok_or_else(|| AppError::NotFound("entry not found".into()))?;
            let k = kingkong_from(state, row);
            if k.status == STATUS_DELETED {
                return Err(AppError::NotFound("entry was deleted".into()));
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
    let values = store::KingkongValues {
        icon: &icon,
        name: &name,
        target_type: &target_type,
        target: &target,
        status: &status,
        sort,
        remark: &remark,
    };
    let now = now_ms();
    let id = match old {
        Some(o) => {
            store::update_kingkong(db, app_id, o.id, &values, now).await?;
            o.id
        }
        None => {
            if status != STATUS_DELETED
                && store::live_count(db, "content_kingkong", app_id).await? >= CONTENT_KINGKONG_MAX
            {
                return Err(AppError::invalid(format!(
                    "an app keeps at most {CONTENT_KINGKONG_MAX} icon-grid entries"
                )));
            }
            store::insert_kingkong(db, app_id, &values, now).await?
        }
    };
    Ok(kingkong_from(state, store::kingkong(db, id).await?))
}
