//! Image uploads and the review (audit) of a user's submitted images: 003 `/api/upload/` and
//! `/api/apply_audit/`, the admin review routes, and [`audit_status`] for 003's auth status.
//!
//! **Uploads.** `/api/upload/` takes `multipart/form-data` as `wx.uploadFile` sends it: the file
//! under the key `image`, `openid` as a form field (or in the query string). The body is read
//! up to [`UPLOAD_BODY_BYTES_MAX`]; the image itself may be at most [`UPLOAD_BYTES_MAX`]. The
//! type is decided by the file's first bytes (JPEG, PNG, GIF, WebP), never by its name or the
//! declared content type. The file is written under `POINTS_UPLOAD_DIR` with a random name and
//! one `uploads` row records it, owned by the caller.
//!
//! **Audits.** `/api/apply_audit/` submits a JSON list of the caller's own upload ids for
//! review. The partial unique index `audits_open` (one row per user in `audit` or `success`) is
//! what refuses a second submission while one is in review or approved, so racing submissions
//! store one. An admin approves or rejects (`/admin/audits/decide`); a rejected user may submit
//! again. Approval may grant points: one ledger change of kind `audit` under the key
//! `audit:<app>:<audit id>`, so however often or concurrently the approval is sent the points
//! are credited once.
//!
//! This file holds the rules and the flows; the SQL is in `store.rs`, the handlers in
//! `routes_mini.rs` (003) and `routes_admin.rs`.

use std::collections::HashSet;
use std::path::Path;

use actix_web::web;
use points_actors::{Change, LedgerError, Submit};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points;
use crate::state::AppState;
use crate::store::SessionUser;

mod routes_admin;
mod routes_mini;
pub(crate) mod store;

pub use routes_admin::{DecideReq, ListReq};
pub use routes_mini::{ApplyReq, UploadReq, Uploaded};

/// Largest image accepted, in bytes (5 MiB).
pub const UPLOAD_BYTES_MAX: usize = 5 * 1024 * 1024;
/// Largest multipart body read, in bytes: the image plus room for the boundaries, part headers
/// and the small text fields.
pub const UPLOAD_BODY_BYTES_MAX: usize = UPLOAD_BYTES_MAX + 64 * 1024;
/// Most files one audit submission may list.
pub const AUDIT_FILES_MAX: usize = 20;
/// Most points one approval may grant.
pub const AUDIT_POINTS_MAX: i64 = 1_000_000;

/// Registers the upload and audit routes (003, admin), recording each in `doc`.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

// ----- image types -----

/// An accepted image type, recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl ImageKind {
    /// The type of `bytes` by its signature; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageKind::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(ImageKind::Webp)
        } else {
            None
        }
    }

    /// The MIME type stored with the upload.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
            ImageKind::Gif => "gif",
            ImageKind::Webp => "webp",
        }
    }
}

// ----- multipart -----

/// One part of a `multipart/form-data` body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    pub data: &'a [u8],
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 200)
}

/// The `name="..."` of a part's headers.
fn part_name(headers: &str) -> Option<String> {
    let line = headers
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    line.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("name")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a `multipart/form-data` body into its parts; `None` when it is not well formed.
pub fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut at = find(body, delimiter.as_bytes(), 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        at = at
            .checked_add(2)
            .filter(|_| body[at..].starts_with(b"\r\n"))?;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let headers = std::str::from_utf8(&body[at..head_end]).ok()?;
        let data_start = head_end + 4;
        let data_end = find(body, next_delimiter.as_bytes(), data_start)?;
        if let Some(name) = part_name(headers) {
            parts.push(Part {
                name,
                data: &body[data_start..data_end],
            });
        }
        at = data_end + next_delimiter.len();
    }
}

// ----- storage -----

/// The review state 003's `/api/auth_status/` reports as `eye_status`: `success` (approved),
/// `audit` (in review), `failed` (the latest submission was rejected) or `need` (never
/// submitted).
pub async fn audit_status(state: &AppState, user_id: i64) -> Result<&'static str, AppError> {
    let status = store::latest_audit_status(&state.stores.db, user_id).await?;
    Ok(match status.as_deref() {
        Some("success") => "success",
        Some("audit") => "audit",
        Some("failed") => "failed",
        _ => "need",
    })
}

/// Writes `data` under `dir` with a random name; returns that name.
async fn store_file(dir: &Path, data: Vec<u8>, kind: ImageKind) -> Result<String, AppError> {
    let name = format!("{}.{}", uuid::Uuid::new_v4().simple(), kind.extension());
    let path = dir.join(&name);
    let dir = dir.to_path_buf();
    web::block(move || {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, data)
    })
    .await
    .map_err(|e| AppError::Unavailable(format!("upload writer: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "writing an upload failed");
        AppError::Unavailable("the upload could not be stored".into())
    })?;
    Ok(name)
}

async fn remove_file(dir: &Path, name: &str) {
    let path = dir.join(name);
    if let Err(e) = web::block(move || std::fs::remove_file(path)).await {
        tracing::warn!(error = %e, "removing an unrecorded upload failed");
    }
}

/// Stores the caller's `image` (its type sniffed from its bytes) and records it; the upload's id.
async fn save_upload(state: &AppState, s: &SessionUser, image: Vec<u8>) -> Result<i64, AppError> {
    let kind = ImageKind::sniff(&image).ok_or_else(|| {
        AppError::Coded(
            -3,
            "上传文件失败: only JPEG, PNG, GIF and WebP images are accepted".into(),
        )
    })?;
    let size = i64::try_from(image.len()).unwrap_or(i64::MAX);
    // The day's allowance of bytes: requests racing each other may pass it by what the upload
    // rate limit lets through at once, never by more.
    let now = now_ms();
    let today = state.clock.day_start(state.clock.date(now));
    let used = store::uploaded_bytes_since(&state.stores.db, s.user_id, today).await?;
    if used + size > state.settings.bounds.upload_bytes_per_day {
        return Err(AppError::LimitReached(format!(
            "upload allowance of {} bytes a day used up",
            state.settings.bounds.upload_bytes_per_day
        )));
    }
    let dir = state.settings.upload_dir.clone();
    let failed = |_| AppError::Coded(-3, "上传文件失败".into());
    let name = store_file(&dir, image, kind).await.map_err(failed)?;
    let inserted = store::insert_upload(
        &state.stores.db,
        s.app_id.as_str(),
        s.user_id,
        name.as_str(),
        kind.mime(),
        size,
        now,
    )
    .await;
    match inserted {
        Ok(id) => Ok(id),
        Err(e) => {
            // No row names the file: remove it so the directory holds only recorded uploads.
            tracing::error!(error = %e, "recording an upload failed");
            remove_file(&dir, &name).await;
            Err(AppError::Coded(-3, "上传文件失败".into()))
        }
    }
}

/// Parses `files`: a JSON list of upload ids, or that list as a JSON string. Duplicates count
/// once; the order is kept.
pub fn parse_files(raw: &Value) -> Result<Vec<i64>, AppError> {
    let bad = || {
        AppError::Coded(
            -2,
            "参数不正确: files must be a JSON list of upload ids".into(),
        )
    };
    let parsed;
    let value = match raw {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| bad())?;
            &parsed
        }
        other => other,
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    if items.is_empty() {
        return Err(AppError::Coded(-4, "上传文件列表不能为空".into()));
    }
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for item in items {
        let id = match item {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|id| *id > 0)
        .ok_or_else(bad)?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    if ids.len() > AUDIT_FILES_MAX {
        return Err(AppError::Coded(
            -2,
            format!("参数不正确: at most {AUDIT_FILES_MAX} files"),
        ));
    }
    Ok(ids)
}

/// Submits the caller's uploads `raw` (see [`parse_files`]) for review.
async fn apply_audit(state: &AppState, s: &SessionUser, raw: &Value) -> Result<(), AppError> {
    let ids = parse_files(raw)?;
    let db = &state.stores.db;
    let failed = |e: sqlx::Error| {
        tracing::error!(error = %e, "audit submission failed");
        AppError::Coded(-5, "操作失败".into())
    };
    // Every id must name an upload of the caller in this app; checked before anything is stored.
    let mut owned = 0usize;
    for id in &ids {
        let found = store::owns_upload(db, *id, s.user_id, s.app_id.as_str())
            .await
            .map_err(failed)?;
        owned += usize::from(found);
    }
    if owned != ids.len() {
        return Err(AppError::Coded(-2, "参数不正确: not your upload".into()));
    }
    let files = serde_json::to_string(&ids).map_err(|_| AppError::Coded(-5, "操作失败".into()))?;
    let inserted = store::insert_audit(db, s.app_id.as_str(), s.user_id, files, now_ms()).await;
    match inserted {
        Ok(()) => Ok(()),
        Err(e) if store::is_unique_violation(&e) => Err(AppError::Coded(
            -3,
            "不能继续提交，用户已有在审核或审核通过的任务".into(),
        )),
        Err(e) => Err(failed(e)),
    }
}

// ----- admin -----

/// One submission as the admin list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Audit {
    pub id: i64,
    pub app_id: String,
    /// The user's platform id (003 `openid`).
    pub openid: String,
    /// Upload ids submitted.
    pub files: Vec<i64>,
    /// `audit` (in review), `success` (approved) or `failed` (rejected).
    pub status: String,
    /// Points granted on approval.
    pub points: i64,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

fn parse_status(raw: &str) -> Result<&'static str, AppError> {
    match raw.trim() {
        "audit" => Ok("audit"),
        "success" => Ok("success"),
        "failed" => Ok("failed"),
        _ => Err(AppError::invalid("status must be audit, success or failed")),
    }
}

/// Grants an approved audit's points: one ledger change under `audit:<app>:<id>`, a replay when
/// it already committed.
async fn grant(state: &AppState, audit: &Audit, user_id: i64) -> Result<(), AppError> {
    if audit.points <= 0 {
        return Ok(());
    }
    let change = Change {
        app_id: audit.app_id.clone(),
        user_id,
        amount: audit.points,
        kind: "audit".into(),
        idem_key: format!("audit:{}:{}", audit.app_id, audit.id),
        reference: format!("audit:{}", audit.id),
        description: "审核通过奖励".into(),
        expires_at: points::default_expiry(state, &audit.app_id).await?,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
        expire_lot: None,
        fence: None,
    };
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => Ok(()),
        Err(LedgerError::Conflict) => Err(AppError::Conflict(
            "this audit's points were granted with another amount".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Approves or rejects audit `p.id`, granting the points of an approval; the audit as it stands.
async fn decide(state: &AppState, p: DecideReq) -> Result<Audit, AppError> {
    // Everything is checked before anything is written.
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    let approve = match p.approve {
        None | Some(Value::Null) => return Err(AppError::missing("approve")),
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) if n.as_i64() == Some(1) => true,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => false,
        Some(Value::String(s)) if matches!(s.trim(), "true" | "1") => true,
        Some(Value::String(s)) if matches!(s.trim(), "false" | "0") => false,
        Some(_) => return Err(AppError::invalid("approve must be true or false")),
    };
    let points = p.points.unwrap_or(0);
    if !(0..=AUDIT_POINTS_MAX).contains(&points) {
        return Err(AppError::invalid(format!(
            "points must be 0-{AUDIT_POINTS_MAX}"
        )));
    }
    if !approve && points != 0 {
        return Err(AppError::invalid("a rejection grants no points"));
    }
    let db = &state.stores.db;
    let Some(audit) = store::audit(db, id).await? else {
        return Err(AppError::NotFound("no such audit".into()));
    };
    let (status, granted) = if approve {
        ("success", points)
    } else {
        ("failed", 0)
    };
    // The conditional update decides which of racing decisions wins: only an audit still in
    // review changes.
    let done = store::decide_audit(db, audit.id, status, granted, now_ms()).await?;
    let Some(now) = store::audit(db, id).await? else {
        return Err(AppError::NotFound("no such audit".into()));
    };
    if done == 0 && (now.status != status || now.points != granted) {
        return Err(AppError::Conflict(format!(
            "audit already decided: {}",
            now.status
        )));
    }
    if now.status == "success" {
        // Also on a repeated identical approval: completes a grant a failure interrupted, and
        // is a ledger replay otherwise.
        let user_id = store::audit_user(db, id).await?;
        grant(state, &now, user_id).await?;
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn images_are_recognised_by_their_bytes() {
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageKind::Png)
        );
        assert_eq!(ImageKind::sniff(b"GIF89a..."), Some(ImageKind::Gif));
        assert_eq!(
            ImageKind::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::sniff(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(ImageKind::sniff(b"<html>"), None);
        assert_eq!(ImageKind::sniff(b""), None);
    }

    #[test]
    fn multipart_bodies_split_into_named_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"openid\"\r\n\r\ndev_a\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
        let parts = parse_multipart(body, "XyZ").expect("well formed");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "openid");
        assert_eq!(parts[0].data, b"dev_a");
        assert_eq!(parts[1].name, "image");
        assert_eq!(parts[1].data, b"\x89PNG");
        assert!(parse_multipart(b"--XyZ\r\nno end", "XyZ").is_none());
        assert!(parse_multipart(b"garbage", "XyZ").is_none());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json"), None);
    }

    #[test]
    fn file_lists_parse() {
        assert_eq!(
            parse_files(&json!("[1, 2, 2, 3]")).ok(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(parse_files(&json!([4, "5"])).ok(), Some(vec![4, 5]));
        for (bad, code) in [
            (json!("[]"), -4),
            (json!([]), -4),
            (json!("1,2"), -2),
            (json!([0]), -2),
            (json!([-1]), -2),
            (json!([1.5]), -2),
            (json!({"a": 1}), -2),
            (json!((1..=21).collect::<Vec<i64>>()), -2),
        ] {
            assert!(
                matches!(parse_files(&bad), Err(AppError::Coded(c, _)) if c == code),
                "{bad}"
            );
        }
    }
}
