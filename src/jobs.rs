//! Scheduled jobs. At 00:00 business time (and every few minutes, to catch up after downtime):
//! expire due points and purge expired sessions. Each step is idempotent, so running twice or
//! late changes nothing extra.

use std::time::Duration;

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::error::AppError;
use crate::state::AppState;

/// How often the scheduler looks for due work. Expiry instants are midnights, so this bounds how
/// late after midnight points expire (and how soon a restarted server catches up).
pub const JOBS_INTERVAL: Duration = Duration::from_secs(60);

/// What one run of the daily jobs did.
#[derive(Serialize, ToSchema)]
pub struct JobReport {
    pub expired_points: i64,
    pub purged_sessions: u64,
}

/// Runs every daily step once, now.
pub async fn run_daily(state: &AppState) -> Result<JobReport, AppError> {
    let now = now_ms();
    let expired_points =
        crate::points::expire_due(&state.ledger, &state.stores.ledger, now).await?;
    let purged_sessions = state.stores.accounts.purge_sessions(now).await?;
    // Morning rounds whose check-in window has closed, oldest first (idempotent; runs every
    // JOBS_INTERVAL, so a round is paid within a minute of its window's end).
    let settled_rounds = crate::activities::morning::settle_due(state).await?;
    if settled_rounds > 0 {
        tracing::info!(settled_rounds, "morning rounds settled");
    }
    // Leaderboards: archive yesterday's boards once (idempotent). Expiry reached them through the
    // ledger actor like any other change.
    crate::activities::leaderboard::daily(state).await?;
    if expired_points > 0 || purged_sessions > 0 {
        tracing::info!(expired_points, purged_sessions, "daily jobs ran");
    }
    Ok(JobReport {
        expired_points,
        purged_sessions,
    })
}

/// Runs the daily steps every [`JOBS_INTERVAL`] until the process stops.
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(JOBS_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(e) = run_daily(&state).await {
                tracing::warn!(error = %e, "daily jobs failed; will retry");
            }
        }
    });
}
