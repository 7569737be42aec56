//! Leaderboards: what the leaderboard actor (`points_actors::leaderboard`) reads from the
//! database, how its boards reach websocket subscribers, the daily archive, and the routes.
//!
//! - The actor is rebuilt from the database before the server accepts requests
//!   ([`rebuild`]), again every [`LEADERBOARD_REBUILD_INTERVAL`] (changes committed by other
//!   processes, which do not pass through this process's ledger actor), and on a new day.
//! - Every [`LEADERBOARD_PUBLISH_INTERVAL`] the boards that changed are published to the hub as
//!   states (the newest state wins, the hub sends at most 5 frames per second per topic):
//!   topic `leaderboard:points`, `leaderboard:steps` (today) and `leaderboard:invites` (today)
//!   for the default app, the same names with `:<app_id>` appended for other apps. Frame data:
//!   `{"app_id","board","day"?,"ranked","top":[{rank,user_id,nick,avatar,score}]}`.
//! - At the business day change [`archive_due`] archives yesterday's steps and invites boards
//!   and a snapshot of the points board, keyed by app+board+period so running it again (or on
//!   another process) archives nothing twice.
//!
//! Routes: 003 `/api/rank_by_balance/`, admin `GET /admin/leaderboards/archive`.
//!
//! Layout: this file holds the boards' logic; `store` its SQL (the ledger's scores are read
//! through `crate::store::ledger::leaderboard`); `routes_mini` and `routes_admin` the handlers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::web;
use points_actors::leaderboard::{
    BoardKey, BoardSnapshot, ChangedBoard, GetStandings, LeaderboardActor, Rebuild, Score,
    Standings, TakeChanged,
};
use serde_json::{json, Value};

use crate::clock::Moment;
use crate::clock::{now_ms, BizClock};
use crate::db::Db;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::state::AppState;
use crate::store::ledger::leaderboard::{invite_scores, points_scores};

mod routes_admin;
mod routes_mini;
mod store;

pub use store::profiles;
use store::{app_ids, archive, archived, steps_scores};

/// How often the publisher looks at the boards when no change woke it (day changes, rebuilds).
/// Changes wake it at once. Short, so a change to a quiet
/// board reaches subscribers at once (the hub sends a quiet topic's first change immediately and
/// coalesces the rest to one frame per `WS_COALESCE_INTERVAL`); a cycle with no change costs one
/// actor message.
pub const LEADERBOARD_PUBLISH_INTERVAL: Duration = Duration::from_millis(50);
/// How often the boards are merged again with what the database holds.
pub const LEADERBOARD_REBUILD_INTERVAL: Duration = Duration::from_secs(600);
/// Entries of a board in a websocket frame.
pub const LEADERBOARD_PUBLISH_TOP: usize = 20;
/// Entries 003 `/api/rank_by_balance/` lists (the seed: "the 10 users with the most points").
pub const RANK_BY_BALANCE_TOP: usize = 10;
/// Entries kept per archived board and period.
pub const LEADERBOARD_ARCHIVE_ENTRIES_MAX: i64 = 100;

/// The board names the archive and the topics use.
pub const BOARD_NAMES: &[&str] = &["points", "steps", "invites"];

/// The hub topic of an app's board: `leaderboard:<board>` for the default app,
/// `leaderboard:<board>:<app_id>` for the others.
pub fn topic(app_id: &str, board: &str) -> String {
    if app_id == "default" {
        format!("leaderboard:{board}")
    } else {
        format!("leaderboard:{board}:{app_id}")
    }
}

/// What the boards show of a user.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Platform user id.
    pub uid: String,
    pub nick: String,
    pub avatar: String,
}

/// Reads every app's points board, today's steps board and the invites boards of today and
/// yesterday, and merges them into the actor, dropping daily boards older than yesterday.
pub async fn rebuild(
    db: &Db,
    clock: &BizClock,
    actor: &Addr<LeaderboardActor>,
) -> anyhow::Result<()> {
    let now = now_ms();
    let today = clock.date(now);
    let day = today.format("%Y-%m-%d").to_string();
    let yesterday = today
        .pred_opt()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let mut boards: HashMap<(String, BoardKey), Vec<(i64, Score)>> = HashMap::new();
    for app in app_ids(db).await? {
        // Every app gets a points board, so its topic is published even while it is empty.
        boards.entry((app, BoardKey::Points)).or_default();
    }
    for (app, user, score) in points_scores(db, None).await? {
        boards
            .entry((app, BoardKey::Points))
            .or_default()
            .push((user, score));
    }
    for (app, user, score) in steps_scores(db, None, &day).await? {
        boards
            .entry((app, BoardKey::Steps(day.clone())))
            .or_default()
            .push((user, score));
    }
    // Invites of today and of yesterday (the invite ranks show both).
    let mut apps: Vec<String> = boards.keys().map(|(a, _)| a.clone()).collect();
    apps.sort_unstable();
    apps.dedup();
    let days = [
        (today, day.clone()),
        (today.pred_opt().unwrap_or(today), yesterday.clone()),
    ];
    for app in apps {
        for (date, name) in &days {
            let (from, to) = clock.day_bounds(*date);
            let invites = invite_scores(db, &app, from, to).await?;
            if !invites.is_empty() {
                boards.insert((app.clone(), BoardKey::Invites(name.clone())), invites);
            }
        }
    }
    let boards = boards
        .into_iter()
        .map(|((app_id, key), scores)| BoardSnapshot {
            app_id,
            key,
            scores,
        })
        .collect();
    actor
        .send(Rebuild {
            boards,
            keep_from: yesterday,
        })
        .await
        .map_err(|e| anyhow::anyhow!("leaderboard actor stopped: {e}"))?;
    Ok(())
}

/// What a websocket frame of a board carries.
fn board_frame(board: &ChangedBoard, profiles: &HashMap<i64, Profile>) -> Value {
    let top: Vec<Value> = board
        .top
        .iter()
        .map(|r| {
            let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
            json!({"rank": r.rank, "user_id": p.uid, "nick": p.nick, "avatar": p.avatar,
                   "score": r.score.value})
        })
        .collect();
    let mut frame = json!({
        "app_id": board.app_id,
        "board": board.key.name(),
        "ranked": board.ranked,
        "top": top,
    });
    if let (Some(day), Some(map)) = (board.key.day(), frame.as_object_mut()) {
        map.insert("day".into(), json!(day));
    }
    frame
}

/// The activity whose lease says which node publishes app `app_id`'s boards.
pub fn points_activity(app_id: &str) -> String {
    format!("leaderboard:points:{app_id}")
}

/// Publishes every board that changed since the last call.
pub async fn publish_changed(state: &AppState) -> Result<usize, AppError> {
    let today = Moment::now(&state.clock).day;
    let changed = state
        .leaderboard
        .send(TakeChanged {
            today,
            top: LEADERBOARD_PUBLISH_TOP,
        })
        .await?;
    if changed.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<i64> = changed
        .iter()
        .flat_map(|b| b.top.iter().map(|r| r.user_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let profiles = profiles(&state.stores.db, &ids).await?;
    let mut owned: HashMap<&str, bool> = HashMap::new();
    for board in &changed {
        // With several nodes every node keeps every board, and the app's boards are published
        // by the node that holds their lease.
        let app = board.app_id.as_str();
        let ours = match owned.get(app) {
            Some(ours) => *ours,
            None => {
                let ours = !state.cluster.is_clustered()
                    || state.cluster.serve(&points_activity(app)).await.is_ok();
                owned.insert(app, ours);
                ours
            }
        };
        if !ours {
            continue;
        }
        state.hub.state(
            &topic(&board.app_id, board.key.name()),
            board_frame(board, &profiles),
        );
    }
    Ok(changed.len())
}

/// Publishes changed boards every [`LEADERBOARD_PUBLISH_INTERVAL`] and rebuilds the boards
/// every [`LEADERBOARD_REBUILD_INTERVAL`], for as long as the process runs.
pub fn spawn(state: web::Data<AppState>, changed: std::sync::Arc<tokio::sync::Notify>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(LEADERBOARD_PUBLISH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rebuilt = Instant::now();
        // With several nodes, the bus and the cluster ask for a rebuild when the other nodes'
        // changes may have been missed: after Redis was unreachable, or when a node stopped
        // (its last commits may not have been shared).
        let resynced = state.bus.as_ref().map(|bus| bus.resynced());
        let departures = state.cluster.departures();
        loop {
            // A change wakes the publisher at once; the tick catches day changes and rebuilds.
            let mut rebuild_now = false;
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed.notified() => {}
                _ = async {
                    match &resynced {
                        Some(resynced) => resynced.notified().await,
                        None => std::future::pending().await,
                    }
                } => rebuild_now = true,
                _ = departures.notified() => rebuild_now = true,
            }
            if rebuild_now || rebuilt.elapsed() >= LEADERBOARD_REBUILD_INTERVAL {
                rebuilt = Instant::now();
                if let Err(e) = rebuild(&state.stores.db, &state.clock, &state.leaderboard).await {
                    tracing::warn!(error = %e, "leaderboard rebuild failed; will retry");
                }
            }
            if let Err(e) = publish_changed(&state).await {
                tracing::warn!(error = %e, "publishing leaderboards failed; will retry");
            }
        }
    });
}

// ----- archive -----

/// Ranks scores the way the boards do (higher first, earlier first, lower user id first) and
/// keeps the first [`LEADERBOARD_ARCHIVE_ENTRIES_MAX`].
fn ranked(mut rows: Vec<(i64, Score)>) -> Vec<(i64, Score)> {
    rows.retain(|(_, s)| s.value > 0);
    rows.sort_by_key(|(user, s)| (std::cmp::Reverse(s.value), s.reached_at, *user));
    rows.truncate(usize::try_from(LEADERBOARD_ARCHIVE_ENTRIES_MAX).unwrap_or(100));
    rows
}

/// Archives yesterday's boards of every app that are not archived yet: the steps and invites
/// boards of yesterday, and the points board as it stands now under yesterday's date (the
/// jobs run just after midnight, so that is the balance at the end of yesterday plus whatever
/// changed since). Returns how many boards it archived.
pub async fn archive_due(state: &AppState) -> Result<u64, AppError> {
    let db = &state.stores.db;
    let Some(yesterday) = state.clock.date(now_ms()).pred_opt() else {
        return Ok(0);
    };
    let period = yesterday.format("%Y-%m-%d").to_string();
    let (from, to) = state.clock.day_bounds(yesterday);
    let mut done = 0;
    for app in app_ids(db).await? {
        for board in BOARD_NAMES {
            if archived(db, &app, board, &period).await? {
                continue;
            }
            let rows: Vec<(i64, Score)> = match *board {
                "points" => points_scores(db, Some(&app))
                    .await?
                    .into_iter()
                    .map(|(_, u, s)| (u, s))
                    .collect(),
                "steps" => steps_scores(db, Some(&app), &period)
                    .await?
                    .into_iter()
                    .map(|(_, u, s)| (u, s))
                    .collect(),
                _ => invite_scores(db, &app, from, to).await?,
            };
            if archive(db, &app, board, &period, &ranked(rows)).await? {
                done += 1;
            }
        }
    }
    if done > 0 {
        tracing::info!(boards = done, period = %period, "leaderboards archived");
    }
    Ok(done)
}

/// The leaderboards' part of the daily jobs: archive yesterday (once), then, on a new day, merge
/// the live boards with the database again. Returns how many boards it archived.
pub async fn daily(state: &AppState) -> Result<u64, AppError> {
    let archived = archive_due(state).await?;
    if archived > 0 {
        rebuild(&state.stores.db, &state.clock, &state.leaderboard)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
    }
    Ok(archived)
}

/// The caller's app's standings on `key`.
pub async fn standings(
    state: &AppState,
    app_id: &str,
    key: BoardKey,
    top: usize,
    user_id: Option<i64>,
) -> Result<Standings, AppError> {
    Ok(state
        .leaderboard
        .send(GetStandings {
            app_id: app_id.to_string(),
            key,
            top,
            user_id,
        })
        .await?)
}

// ----- routes -----

/// Registers the leaderboard routes: 003, then admin.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}
