//! The sign-in slice's own SQL (`signin_settings`, `signins`) and its row types.

use crate::db::Db;

/// A stored `signin_settings` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SettingsRow {
    pub daily_points: i64,
    /// The milestones as a JSON object text.
    pub milestones: String,
    pub milestones_repeat: i64,
    pub focus_reward: i64,
    pub collect_reward: i64,
}

/// A stored `signins` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SigninRow {
    /// `YYYY-MM-DD`, business time.
    pub day: String,
    pub streak: i64,
    pub points: i64,
    pub bonus: i64,
}

/// The stored sign-in settings of `app_id`, if any.
pub(crate) async fn settings(db: &Db, app_id: &str) -> Result<Option<SettingsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT daily_points, milestones, milestones_repeat, focus_reward, collect_reward \
         FROM signin_settings WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await
}

/// Writes the sign-in settings of `app_id`, replacing any stored ones.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn save_settings(
    db: &Db,
    app_id: &str,
    daily_points: i64,
    milestones_json: String,
    milestones_repeat: i64,
    focus_reward: i64,
    collect_reward: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signin_settings (app_id, daily_points, milestones, milestones_repeat, \
         focus_reward, collect_reward, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (app_id) DO UPDATE SET daily_points = excluded.daily_points, \
         milestones = excluded.milestones, milestones_repeat = excluded.milestones_repeat, \
         focus_reward = excluded.focus_reward, collect_reward = excluded.collect_reward, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(daily_points)
    .bind(milestones_json)
    .bind(milestones_repeat)
    .bind(focus_reward)
    .bind(collect_reward)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The user's latest `signins` row on or before `today` (`YYYY-MM-DD`).
pub(crate) async fn last_signin(
    db: &Db,
    app_id: &str,
    user_id: i64,
    today: String,
) -> Result<Option<SigninRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT day, streak, points, bonus FROM signins \
         WHERE app_id = $1 AND user_id = $2 AND day <= $3 ORDER BY day DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(today)
    .fetch_optional(&db.read)
    .await
}

/// The user's signed days (`YYYY-MM-DD`) between `from` and `to` (inclusive), ascending.
pub(crate) async fn signed_days(
    db: &Db,
    app_id: &str,
    user_id: i64,
    from: String,
    to: String,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT day FROM signins WHERE app_id = $1 AND user_id = $2 AND day >= $3 AND day <= $4 \
         ORDER BY day",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_all(&db.read)
    .await
}

/// Records a committed sign-in; a second write of the same day keeps the first.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_signin(
    db: &Db,
    app_id: &str,
    user_id: i64,
    day: &str,
    streak: i64,
    points: i64,
    bonus: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signins (app_id, user_id, day, streak, points, bonus, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, user_id, day) DO NOTHING",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(day)
    .bind(streak)
    .bind(points)
    .bind(bonus)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}
