//! The profile slice's SQL: the profile columns of `users` and the per-app profile settings.

use crate::db::Db;

/// The stored profile JSON (country, province, ...) of the user.
pub(crate) async fn profile_json(db: &Db, user_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT profile FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&db.write)
        .await
}

/// Sets the given profile fields (`None` keeps the stored value) and lifts the login status to
/// at least `status`, in one statement.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_profile(
    db: &Db,
    user_id: i64,
    nick: Option<String>,
    avatar: Option<String>,
    gender: Option<i64>,
    profile: Option<String>,
    status: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET nick = COALESCE($1, nick), avatar = COALESCE($2, avatar), \
         gender = COALESCE($3, gender), profile = COALESCE($4, profile), \
         login_status = CASE WHEN login_status < $5 THEN $5 ELSE login_status END, \
         updated_at = $6 WHERE id = $7",
    )
    .bind(nick)
    .bind(avatar)
    .bind(gender)
    .bind(profile)
    .bind(status)
    .bind(now)
    .bind(user_id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Stores `phone` and login status `status`; with `once`, only if no number is bound yet.
/// Returns whether the row changed.
pub(crate) async fn bind_phone(
    db: &Db,
    user_id: i64,
    phone: &str,
    status: i64,
    now: i64,
    once: bool,
) -> Result<bool, sqlx::Error> {
    let guard = if once { " AND phone IS NULL" } else { "" };
    Ok(sqlx::query(&format!(
        "UPDATE users SET phone = $1, login_status = $2, updated_at = $3 WHERE id = $4{guard}"
    ))
    .bind(phone)
    .bind(status)
    .bind(now)
    .bind(user_id)
    .execute(&db.write)
    .await?
    .rows_affected()
        > 0)
}

/// The user's stored phone number (possibly empty).
pub(crate) async fn phone(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT phone FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&db.write)
        .await
}

/// The session key of the user's WeChat login (possibly empty).
pub(crate) async fn session_key(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT session_key FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&db.write)
        .await
}

/// Whether the user reported WeRun steps in the app.
pub(crate) async fn has_walk_steps(
    db: &Db,
    user_id: i64,
    app_id: &str,
) -> Result<bool, sqlx::Error> {
    let wx_run: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM walk_steps WHERE user_id = $1 AND app_id = $2 LIMIT 1")
            .bind(user_id)
            .bind(app_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(wx_run.is_some())
}

/// The app's stored one-time phone reward, if any.
pub(crate) async fn phone_reward(db: &Db, app_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT phone_reward FROM profile_settings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await
}

/// Stores the app's one-time phone reward.
pub(crate) async fn save_phone_reward(
    db: &Db,
    app_id: &str,
    reward: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO profile_settings (app_id, phone_reward) VALUES ($1, $2) \
         ON CONFLICT (app_id) DO UPDATE SET phone_reward = excluded.phone_reward",
    )
    .bind(app_id)
    .bind(reward)
    .execute(&db.write)
    .await?;
    Ok(())
}
