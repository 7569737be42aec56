//! Leaderboards: what the leaderboard actor (`points_actors::leaderboard`) reads from the
//! database, how its boards reach websocket subscribers, the daily archive, and the routes.
//!
//! - The actor is rebuilt from the database before the server accepts requests
//!   ([`rebuild`]), again every [`LEADERBOARD_REBUILD_INTERVAL`] (changes made by other
//!   processes and by the expiry job, which do not pass through this process's ledger actor),
//!   and after the daily jobs.
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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{web, HttpResponse};
use points_actors::leaderboard::{
    BoardKey, BoardSnapshot, ChangedBoard, GetStandings, LeaderboardActor, Rebuild, Score,
    Standings, TakeChanged, INVITE_KIND,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::Moment;
use crate::clock::{now_ms, BizClock};
use crate::db::Db;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{self, Gift};
use crate::facades::miniapp::{own_openid, Mini};
use crate::facades::{GET, GET_POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

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

/// The profiles of `ids` (absent users are left out).
pub async fn profiles(db: &Db, ids: &[i64]) -> Result<HashMap<i64, Profile>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT id, platform_uid, nick, avatar FROM users WHERE id IN {}",
        db.json_ints("$1")
    );
    let rows = sqlx::query(&sql).bind(list).fetch_all(&db.read).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>(0)?,
                Profile {
                    uid: r.try_get(1)?,
                    nick: r.try_get(2)?,
                    avatar: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

/// Every user's balance in `app_id` (or every app), as the points board scores it: the newest
/// non-zero entry gives the balance, the time it was reached and the version.
async fn points_scores(
    db: &Db,
    app_id: Option<&str>,
) -> Result<Vec<(String, i64, Score)>, sqlx::Error> {
    let (filter, outer) = match app_id {
        Some(_) => ("AND app_id = $1", "WHERE e.app_id = $1"),
        None => ("", ""),
    };
    let sql = format!(
        "SELECT e.app_id, e.user_id, e.balance_after, e.created_at, e.id FROM ledger_entries e \
         JOIN (SELECT user_id, MAX(id) AS last_id FROM ledger_entries WHERE amount <> 0 {filter} \
               GROUP BY user_id) m ON e.id = m.last_id {outer}"
    );
    let mut q = sqlx::query(&sql);
    if let Some(app) = app_id {
        q = q.bind(app);
    }
    let rows = q.fetch_all(&db.read).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                Score {
                    value: r.try_get(2)?,
                    reached_at: r.try_get(3)?,
                    version: r.try_get(4)?,
                },
            ))
        })
        .collect()
}

/// Every user's steps of `day` in `app_id` (or every app).
async fn steps_scores(
    db: &Db,
    app_id: Option<&str>,
    day: &str,
) -> Result<Vec<(String, i64, Score)>, sqlx::Error> {
    let filter = if app_id.is_some() {
        "AND app_id = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT app_id, user_id, steps, reached_at FROM walk_steps WHERE day = $1 {filter}"
    );
    let mut q = sqlx::query(&sql).bind(day);
    if let Some(app) = app_id {
        q = q.bind(app);
    }
    let rows = q.fetch_all(&db.read).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                Score {
                    value: r.try_get(2)?,
                    reached_at: r.try_get(3)?,
                    version: 0,
                },
            ))
        })
        .collect()
}

/// Invites each user of `app_id` earned in `[from, to)` (epoch ms): one per `invite` entry; the
/// time of the newest breaks ties.
async fn invite_scores(
    db: &Db,
    app_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Score)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT user_id, COUNT(*), MAX(created_at), MAX(id) FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND created_at >= $3 AND created_at < $4 GROUP BY user_id",
    )
    .bind(app_id)
    .bind(INVITE_KIND)
    .bind(from)
    .bind(to)
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                Score {
                    value: r.try_get(1)?,
                    reached_at: r.try_get(2)?,
                    version: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

async fn app_ids(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM apps ORDER BY id")
        .fetch_all(&db.read)
        .await
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
    for board in &changed {
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
        loop {
            // A change wakes the publisher at once; the tick catches day changes and rebuilds.
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed.notified() => {}
            }
            if rebuilt.elapsed() >= LEADERBOARD_REBUILD_INTERVAL {
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

/// Archives `rows` (already ranked) as `board`'s results of `period`, unless that period is
/// archived already. Returns whether it archived now.
async fn archive(
    db: &Db,
    app_id: &str,
    board: &str,
    period: &str,
    rows: &[(i64, Score)],
) -> Result<bool, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO leaderboard_periods (app_id, board, period, entries, archived_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, board, period) DO NOTHING",
    )
    .bind(app_id)
    .bind(board)
    .bind(period)
    .bind(rows.len() as i64)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        tx.rollback().await?;
        return Ok(false);
    }
    for (i, (user_id, score)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO leaderboard_archive (app_id, board, period, place, user_id, score, reached_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app_id)
        .bind(board)
        .bind(period)
        .bind(i as i64 + 1)
        .bind(*user_id)
        .bind(score.value)
        .bind(score.reached_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn archived(db: &Db, app_id: &str, board: &str, period: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT entries FROM leaderboard_periods WHERE app_id = $1 AND board = $2 AND period = $3",
    )
    .bind(app_id)
    .bind(board)
    .bind(period)
    .fetch_optional(&db.read)
    .await?;
    Ok(found.is_some())
}

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

/// The leaderboards' part of the daily jobs: archive yesterday (once), then, on a new day or
/// when `balances_changed` outside the ledger actor (expiry), merge the live boards with the
/// database again. Returns how many boards it archived.
pub async fn daily(state: &AppState, balances_changed: bool) -> Result<u64, AppError> {
    let archived = archive_due(state).await?;
    if archived > 0 || balances_changed {
        rebuild(&state.stores.db, &state.clock, &state.leaderboard)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
    }
    Ok(archived)
}

// ----- routes -----

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    r.add::<OpenidReq, Vec<BalanceRankRow>, _, _>(
        RouteDoc {
            path: "/api/rank_by_balance/",
            methods: GET_POST,
            tag: "003 mini-program",
            summary: "积分排行榜",
            description: "Bearer token; `openid` must be the token's user. `data`: the 10 users with the most points as `[[rank, nick, avatar, points], ...]`; beside `data`: `rank`, the caller's rank (0 while the caller has no points). Ties go to whoever reached the score first. Codes: 0, -1 empty parameter, -2 wrong openid.",
        },
        rank_by_balance,
    );
    r.add::<ArchiveQuery, ArchiveView, _, _>(
        RouteDoc {
            path: "/admin/leaderboards/archive",
            methods: GET,
            tag: "admin",
            summary: "Archived leaderboard results",
            description: "`app_id` (default `default`), `board` one of `points`, `steps`, `invites`, `period` `YYYY-MM-DD` (default: the newest archived). Boards are archived by the daily jobs just after midnight (business time): yesterday's steps and invites, and the points board as it stood then. 404 when nothing is archived for that period.",
        },
        archive_view,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// One row of 003 `/api/rank_by_balance/`: `[rank, nick, avatar, points]`.
#[derive(Serialize, ToSchema)]
pub struct BalanceRankRow(pub i64, pub String, pub String, pub i64);

#[derive(Deserialize, ToSchema)]
pub struct ArchiveQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// `points`, `steps` or `invites`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub board: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ArchiveView {
    pub app_id: String,
    pub board: String,
    pub period: String,
    pub archived_at: String,
    pub entries: Vec<ArchivedEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct ArchivedEntry {
    pub rank: i64,
    /// Platform user id.
    pub user_id: String,
    pub nick: String,
    pub avatar: String,
    pub score: i64,
    /// When the user reached the score, business time.
    pub reached_at: String,
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

async fn rank_by_balance(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> Result<HttpResponse, Failure<Mini>> {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let s = &caller.session;
    let board = standings(
        &state,
        &s.app_id,
        BoardKey::Points,
        RANK_BY_BALANCE_TOP,
        Some(s.user_id),
    )
    .await?;
    let ids: Vec<i64> = board.top.iter().map(|r| r.user_id).collect();
    let profiles = profiles(&state.stores.db, &ids).await?;
    let data: Vec<Value> = board
        .top
        .iter()
        .map(|r| {
            let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
            json!([r.rank, p.nick, p.avatar, r.score.value])
        })
        .collect();
    let rank = board.mine.map_or(0, |m| m.rank);
    Ok(HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "data": data, "rank": rank})))
}

async fn archive_view(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ArchiveQuery, Gift>,
) -> Result<HttpResponse, Failure<Gift>> {
    let p = p.into_inner();
    let app_id = p.app_id.unwrap_or_else(|| "default".into());
    let board = p.board.ok_or_else(|| AppError::missing("board"))?;
    if !BOARD_NAMES.contains(&board.as_str()) {
        return Err(AppError::invalid("board must be one of points, steps, invites").into());
    }
    if let Some(period) = &p.period {
        if chrono::NaiveDate::parse_from_str(period, "%Y-%m-%d").is_err() {
            return Err(AppError::invalid("period must be YYYY-MM-DD").into());
        }
    }
    let db = &state.stores.db;
    let head = sqlx::query(
        "SELECT period, archived_at FROM leaderboard_periods WHERE app_id = $1 AND board = $2 \
         AND ($3 = '' OR period = $3) ORDER BY period DESC LIMIT 1",
    )
    .bind(app_id.as_str())
    .bind(board.as_str())
    .bind(p.period.clone().unwrap_or_default())
    .fetch_optional(&db.read)
    .await?
    .ok_or_else(|| AppError::NotFound("no archived results for that board and period".into()))?;
    let period: String = head.try_get(0).map_err(AppError::from)?;
    let archived_at: i64 = head.try_get(1).map_err(AppError::from)?;
    let rows = sqlx::query(
        "SELECT place, user_id, score, reached_at FROM leaderboard_archive \
         WHERE app_id = $1 AND board = $2 AND period = $3 ORDER BY place",
    )
    .bind(app_id.as_str())
    .bind(board.as_str())
    .bind(period.as_str())
    .fetch_all(&db.read)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        ids.push(r.try_get::<i64, _>(1).map_err(AppError::from)?);
    }
    let profiles = profiles(db, &ids).await?;
    for (r, user_id) in rows.iter().zip(ids) {
        let p = profiles.get(&user_id).cloned().unwrap_or_default();
        entries.push(ArchivedEntry {
            rank: r.try_get(0).map_err(AppError::from)?,
            user_id: p.uid,
            nick: p.nick,
            avatar: p.avatar,
            score: r.try_get(2).map_err(AppError::from)?,
            reached_at: state
                .clock
                .format_datetime(r.try_get(3).map_err(AppError::from)?),
        });
    }
    Ok(giftpoint::ok(json!(ArchiveView {
        app_id,
        board,
        period,
        archived_at: state.clock.format_datetime(archived_at),
        entries,
    })))
}
