//! The invites slice's own SQL (`invite_settings`, `share_codes`) and its row types.

use crate::db::Db;

/// A stored `invite_settings` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SettingsRow {
    pub points: i64,
    pub times: i64,
}

/// The stored invite settings of `app_id`, if any.
pub(crate) async fn settings(db: &Db, app_id: &str) -> Result<Option<SettingsRow>, sqlx::Error> {
    sqlx::query_as("SELECT points, times FROM invite_settings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await
}

/// Writes the invite settings of `app_id`, replacing any stored ones.
pub(crate) async fn save_settings(
    db: &Db,
    app_id: &str,
    points: i64,
    times: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invite_settings (app_id, points, times, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id) DO UPDATE SET points = excluded.points, times = excluded.times, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(points)
    .bind(times)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The user's stored share code in `app_id`, read from the primary database: a code just
/// created must be seen at once.
pub(crate) async fn code_of(
    db: &Db,
    app_id: &str,
    user_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT code FROM share_codes WHERE app_id = $1 AND user_id = $2")
        .bind(app_id)
        .bind(user_id)
        .fetch_optional(&db.write)
        .await
}

/// Stores `code` as the user's share code; nothing is inserted when the user already has a code
/// or the code is taken in the app.
pub(crate) async fn insert_code(
    db: &Db,
    app_id: &str,
    user_id: i64,
    code: String,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO share_codes (app_id, user_id, code, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(code)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The owner of the (already normalised) `code` in `app_id`, if any.
pub(crate) async fn code_owner(
    db: &Db,
    app_id: &str,
    code: String,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT user_id FROM share_codes WHERE app_id = $1 AND code = $2")
        .bind(app_id)
        .bind(code)
        .fetch_optional(&db.read)
        .await
}
