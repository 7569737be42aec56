//! The walk slice's SQL: per-app settings, the steps of each user and day, the WeChat session
//! key, and the cover images.

use sqlx::Row;

use super::{Covers, WalkConfig, WALK_RATE_DEFAULT};
use crate::db::Db;
use crate::store::SessionUser;

/// The app's walk settings (defaults when none are stored).
pub(super) async fn config(db: &Db, app_id: &str) -> Result<WalkConfig, sqlx::Error> {
    let row = sqlx::query("SELECT rate, auth_reward FROM walk_settings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await?;
    Ok(match row {
        Some(r) => WalkConfig {
            app_id: app_id.to_string(),
            rate: r.try_get("rate")?,
            auth_reward: r.try_get("auth_reward")?,
        },
        None => WalkConfig {
            app_id: app_id.to_string(),
            rate: WALK_RATE_DEFAULT,
            auth_reward: 0,
        },
    })
}

/// Stores the app's walk settings.
pub(super) async fn save_config(db: &Db, config: &WalkConfig, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO walk_settings (app_id, rate, auth_reward, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id) DO UPDATE SET rate = excluded.rate, auth_reward = excluded.auth_reward, \
         updated_at = excluded.updated_at",
    )
    .bind(config.app_id.as_str())
    .bind(config.rate)
    .bind(config.auth_reward)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Stores `steps` for the user's `day` unless more were stored already; returns the day's
/// maximum and when it was first reported.
pub(super) async fn record_steps(
    db: &Db,
    session: &SessionUser,
    day: &str,
    steps: i64,
    now: i64,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query(
        "INSERT INTO walk_steps (user_id, day, app_id, steps, reached_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id, day) DO UPDATE \
         SET steps = excluded.steps, reached_at = excluded.reached_at, updated_at = excluded.updated_at \
         WHERE excluded.steps > walk_steps.steps",
    )
    .bind(session.user_id)
    .bind(day)
    .bind(session.app_id.as_str())
    .bind(steps)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(day_steps(db, session.user_id, day)
        .await?
        .unwrap_or((steps, now)))
}

/// The user's stored steps of `day` and when they were reached.
pub(super) async fn day_steps(
    db: &Db,
    user_id: i64,
    day: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT steps, reached_at FROM walk_steps WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(day)
            .fetch_optional(&db.read)
            .await?;
    row.map(|r| Ok((r.try_get("steps")?, r.try_get("reached_at")?)))
        .transpose()
}

/// The session key of the user's WeChat login, if one is stored.
pub(super) async fn session_key(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    let key: Option<Option<String>> =
        sqlx::query_scalar("SELECT session_key FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(key.flatten().filter(|k| !k.is_empty()))
}

/// The app's cover images (empty strings when none are stored).
pub(super) async fn covers(db: &Db, app_id: &str) -> Result<Covers, sqlx::Error> {
    let row = sqlx::query(
        "SELECT lottery_cover_img, walk_cover_img, pickup_cover_img FROM cover_images WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await?;
    row.map(|r| {
        Ok(Covers {
            lottery_cover_img: r.try_get("lottery_cover_img")?,
            walk_cover_img: r.try_get("walk_cover_img")?,
            pickup_cover_img: r.try_get("pickup_cover_img")?,
        })
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

/// Stores the app's cover images.
pub(super) async fn save_covers(
    db: &Db,
    app_id: &str,
    covers: &Covers,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cover_images (app_id, lottery_cover_img, walk_cover_img, pickup_cover_img, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id) DO UPDATE SET \
         lottery_cover_img = excluded.lottery_cover_img, walk_cover_img = excluded.walk_cover_img, \
         pickup_cover_img = excluded.pickup_cover_img, updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(covers.lottery_cover_img.as_str())
    .bind(covers.walk_cover_img.as_str())
    .bind(covers.pickup_cover_img.as_str())
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}
