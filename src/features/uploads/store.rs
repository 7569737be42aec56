//! The uploads slice's SQL: the `uploads` rows of stored images and the `audits` submissions.

use sqlx::Row;

use super::Audit;
use crate::db::Db;

const AUDIT_COLUMNS: &str = "a.id, a.app_id, u.platform_uid, a.files, a.status, a.points, \
     a.created_at, a.decided_at FROM audits a JOIN users u ON u.id = a.user_id";

fn audit_from_row(r: &sqlx::any::AnyRow) -> Result<Audit, sqlx::Error> {
    let files: String = r.try_get("files")?;
    Ok(Audit {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        openid: r.try_get("platform_uid")?,
        files: serde_json::from_str(&files).unwrap_or_default(),
        status: r.try_get("status")?,
        points: r.try_get("points")?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
    })
}

/// Whether `e` is a unique-index violation (`audits_open`: a submission already open).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// The status of the user's latest audit submission, if any.
pub(crate) async fn latest_audit_status(
    db: &Db,
    user_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM audits WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(user_id)
        .fetch_optional(&db.read)
        .await
}

/// Records a stored upload of the user; its id.
pub(crate) async fn insert_upload(
    db: &Db,
    app_id: &str,
    user_id: i64,
    file_name: &str,
    mime: &str,
    size: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO uploads (app_id, user_id, file_name, mime, size_bytes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(file_name)
    .bind(mime)
    .bind(size)
    .bind(now)
    .fetch_one(&db.write)
    .await
}

/// Bytes the user uploaded since `since` (epoch ms).
pub(crate) async fn uploaded_bytes_since(
    db: &Db,
    user_id: i64,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM uploads \
         WHERE user_id = $1 AND created_at >= $2",
    )
    .bind(user_id)
    .bind(since)
    .fetch_one(&db.read)
    .await
}

/// Whether upload `id` is the user's, in the app.
pub(crate) async fn owns_upload(
    db: &Db,
    id: i64,
    user_id: i64,
    app_id: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM uploads WHERE id = $1 AND user_id = $2 AND app_id = $3")
            .bind(id)
            .bind(user_id)
            .bind(app_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(found.is_some())
}

/// Stores a submission in review; `files` is the JSON list of upload ids.
pub(crate) async fn insert_audit(
    db: &Db,
    app_id: &str,
    user_id: i64,
    files: String,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audits (app_id, user_id, files, status, points, created_at) \
         VALUES ($1, $2, $3, 'audit', 0, $4)",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(files)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Audit `id`, if any.
pub(crate) async fn audit(db: &Db, id: i64) -> Result<Option<Audit>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {AUDIT_COLUMNS} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&db.write)
        .await?;
    row.as_ref().map(audit_from_row).transpose()
}

/// Audits of the app, newest first; `status` `""` for every status.
pub(crate) async fn audits(
    db: &Db,
    app_id: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Audit>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {AUDIT_COLUMNS} WHERE a.app_id = $1 AND ($2 = '' OR a.status = $2) \
         ORDER BY a.id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(app_id)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(audit_from_row).collect()
}

/// Decides audit `id` if it is still in review; the rows changed (0 or 1).
pub(crate) async fn decide_audit(
    db: &Db,
    id: i64,
    status: &str,
    points: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE audits SET status = $1, points = $2, decided_at = $3 \
         WHERE id = $4 AND status = 'audit'",
    )
    .bind(status)
    .bind(points)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?
    .rows_affected())
}

/// The user who submitted audit `id`.
pub(crate) async fn audit_user(db: &Db, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT user_id FROM audits WHERE id = $1")
        .bind(id)
        .fetch_one(&db.write)
        .await
}
