//! The content slice's SQL: the banners and icon-grid entries of each app.

use sqlx::Row;

use crate::db::Db;

const BANNER_COLUMNS: &str =
    "id, image, kind, target_type, target, status, sort, task_id, remark, created_at, updated_at";
const KINGKONG_COLUMNS: &str =
    "id, icon, name, target_type, target, status, sort, remark, created_at, updated_at";

/// A stored banner; times in milliseconds.
pub(crate) struct BannerRow {
    pub id: i64,
    pub image: String,
    pub kind: String,
    pub target_type: String,
    pub target: String,
    pub status: String,
    pub sort: i64,
    pub task_id: i64,
    pub remark: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored icon-grid entry; times in milliseconds.
pub(crate) struct KingkongRow {
    pub id: i64,
    pub icon: String,
    pub name: String,
    pub target_type: String,
    pub target: String,
    pub status: String,
    pub sort: i64,
    pub remark: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The values a banner is saved with.
pub(crate) struct BannerValues<'a> {
    pub image: &'a str,
    pub kind: &'a str,
    pub target_type: &'a str,
    pub target: &'a str,
    pub status: &'a str,
    pub sort: i64,
    pub task_id: i64,
    pub remark: &'a str,
}

/// The values an icon-grid entry is saved with.
pub(crate) struct KingkongValues<'a> {
    pub icon: &'a str,
    pub name: &'a str,
    pub target_type: &'a str,
    pub target: &'a str,
    pub status: &'a str,
    pub sort: i64,
    pub remark: &'a str,
}

fn banner_row(r: &sqlx::any::AnyRow) -> Result<BannerRow, sqlx::Error> {
    Ok(BannerRow {
        id: r.try_get("id")?,
        image: r.try_get("image")?,
        kind: r.try_get("kind")?,
        target_type: r.try_get("target_type")?,
        target: r.try_get("target")?,
        status: r.try_get("status")?,
        sort: r.try_get("sort")?,
        task_id: r.try_get("task_id")?,
        remark: r.try_get("remark")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn kingkong_row(r: &sqlx::any::AnyRow) -> Result<KingkongRow, sqlx::Error> {
    Ok(KingkongRow {
        id: r.try_get("id")?,
        icon: r.try_get("icon")?,
        name: r.try_get("name")?,
        target_type: r.try_get("target_type")?,
        target: r.try_get("target")?,
        status: r.try_get("status")?,
        sort: r.try_get("sort")?,
        remark: r.try_get("remark")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn list_filter(shown_only: bool) -> &'static str {
    if shown_only {
        "status = '10'"
    } else {
        "status <> '30'"
    }
}

/// Banners of `app_id` by `sort` then id: only shown ones, or every one not deleted.
pub(crate) async fn banners(
    db: &Db,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<BannerRow>, sqlx::Error> {
    let filter = list_filter(shown_only);
    let rows = sqlx::query(&format!(
        "SELECT {BANNER_COLUMNS} FROM content_banners WHERE app_id = $1 AND {filter} ORDER BY sort, id"
    ))
    .bind(app_id)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(banner_row).collect()
}

/// Icon-grid entries of `app_id` by `sort` then id: only shown ones, or every one not deleted.
pub(crate) async fn kingkongs(
    db: &Db,
    app_id: &str,
    shown_only: bool,
) -> Result<Vec<KingkongRow>, sqlx::Error> {
    let filter = list_filter(shown_only);
    let rows = sqlx::query(&format!(
        "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE app_id = $1 AND {filter} ORDER BY sort, id"
    ))
    .bind(app_id)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(kingkong_row).collect()
}

/// Entries of `table` (`content_banners` or `content_kingkong`) of the app not deleted.
pub(crate) async fn live_count(db: &Db, table: &str, app_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE app_id = $1 AND status <> '30'"
    ))
    .bind(app_id)
    .fetch_one(&db.write)
    .await
}

/// Banner `id` of the app, deleted or not.
pub(crate) async fn banner_of_app(
    db: &Db,
    app_id: &str,
    id: i64,
) -> Result<Option<BannerRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {BANNER_COLUMNS} FROM content_banners WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(id)
    .fetch_optional(&db.write)
    .await?;
    row.as_ref().map(banner_row).transpose()
}

/// Banner `id`, read back after a save.
pub(crate) async fn banner(db: &Db, id: i64) -> Result<BannerRow, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {BANNER_COLUMNS} FROM content_banners WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&db.write)
    .await?;
    banner_row(&row)
}

/// Changes banner `id` of the app.
pub(crate) async fn update_banner(
    db: &Db,
    app_id: &str,
    id: i64,
    v: &BannerValues<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE content_banners SET image = $1, kind = $2, target_type = $3, target = $4, \
         status = $5, sort = $6, task_id = $7, remark = $8, updated_at = $9 \
         WHERE app_id = $10 AND id = $11",
    )
    .bind(v.image)
    .bind(v.kind)
    .bind(v.target_type)
    .bind(v.target)
    .bind(v.status)
    .bind(v.sort)
    .bind(v.task_id)
    .bind(v.remark)
    .bind(now)
    .bind(app_id)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Stores a new banner of the app; its id.
pub(crate) async fn insert_banner(
    db: &Db,
    app_id: &str,
    v: &BannerValues<'_>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO content_banners (app_id, image, kind, target_type, target, status, \
         sort, task_id, remark, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(app_id)
    .bind(v.image)
    .bind(v.kind)
    .bind(v.target_type)
    .bind(v.target)
    .bind(v.status)
    .bind(v.sort)
    .bind(v.task_id)
    .bind(v.remark)
    .bind(now)
    .fetch_one(&db.write)
    .await
}

/// Icon-grid entry `id` of the app, deleted or not.
pub(crate) async fn kingkong_of_app(
    db: &Db,
    app_id: &str,
    id: i64,
) -> Result<Option<KingkongRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(id)
    .fetch_optional(&db.write)
    .await?;
    row.as_ref().map(kingkong_row).transpose()
}

/// Icon-grid entry `id`, read back after a save.
pub(crate) async fn kingkong(db: &Db, id: i64) -> Result<KingkongRow, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {KINGKONG_COLUMNS} FROM content_kingkong WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&db.write)
    .await?;
    kingkong_row(&row)
}

/// Changes icon-grid entry `id` of the app.
pub(crate) async fn update_kingkong(
    db: &Db,
    app_id: &str,
    id: i64,
    v: &KingkongValues<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE content_kingkong SET icon = $1, name = $2, target_type = $3, target = $4, \
         status = $5, sort = $6, remark = $7, updated_at = $8 WHERE app_id = $9 AND id = $10",
    )
    .bind(v.icon)
    .bind(v.name)
    .bind(v.target_type)
    .bind(v.target)
    .bind(v.status)
    .bind(v.sort)
    .bind(v.remark)
    .bind(now)
    .bind(app_id)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Stores a new icon-grid entry of the app; its id.
pub(crate) async fn insert_kingkong(
    db: &Db,
    app_id: &str,
    v: &KingkongValues<'_>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO content_kingkong (app_id, icon, name, target_type, target, status, \
         sort, remark, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(app_id)
    .bind(v.icon)
    .bind(v.name)
    .bind(v.target_type)
    .bind(v.target)
    .bind(v.status)
    .bind(v.sort)
    .bind(v.remark)
    .bind(now)
    .fetch_one(&db.write)
    .await
}
