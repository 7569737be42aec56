//! Red packets: 000 sessions and cards, pools, the radio of recent winners, click counting, and
//! the admin routes that create them.
//!
//! A grab goes to the card's (or pool's) actor, found through [`Activities`]'s registries; the
//! actor is built here from the database: the card or pool row, and what was already granted
//! (today's stock counter and grabbers; the pool's granted packets). Winners go to the radio and
//! to the websocket topics `redpack:radio` and `redpack:pool:<id>`.
//!
//! [`Activities`]: crate::activities::Activities

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix::Addr;
use actix_web::web;
use points_actors::activity::Retire;
use points_actors::redpack::{
    split_pool, CardActor, CardConfig, CardDay, CardRemaining, CardWin, GrabCard, GrabPool,
    PoolActor, PoolConfig, PoolGrab, ShowPool, REWARD_POINTS,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::{parse_time_of_day, Moment};
use crate::clock::now_ms;
use crate::error::AppError;
use crate::facades::giftpoint::{ok, own_user, Gift, Reply};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// Most recent winners the radio keeps per app.
pub const RADIO_ENTRIES_MAX: usize = 20;
/// Most packets one pool may hold.
pub const POOL_PACKETS_MAX: i64 = 100_000;
/// Most points one card packet or one pool may hold.
pub const REDPACK_POINTS_MAX: i64 = 1_000_000_000;
/// Longest session name or pool title.
pub const REDPACK_NAME_CHARS_MAX: usize = 64;
/// The reward types of 000 cards.
pub const REWARD_TYPES: &[&str] = &[REWARD_POINTS, "集分宝", "现金红包", "电子权益", "实物"];

/// What a grab route checks before it asks the actor: the card's app, session and reward type
/// (or the pool's app), remembered when the actor is loaded so a grab reads no row.
#[derive(Default)]
pub struct Owners {
    // std Mutex: lookups and inserts only.
    cards: Mutex<HashMap<i64, (String, i64, String)>>,
    pools: Mutex<HashMap<i64, String>>,
}

impl Owners {
    fn card(&self, id: i64) -> Option<(String, i64, String)> {
        self.cards.lock().ok()?.get(&id).cloned()
    }

    fn pool(&self, id: i64) -> Option<String> {
        self.pools.lock().ok()?.get(&id).cloned()
    }
}

/// Recent winners per app, newest first, loaded from the database on first read.
#[derive(Default)]
pub struct Radio {
    // std Mutex: pushes and copies only, never an await.
    entries: Mutex<HashMap<String, VecDeque<String>>>,
}

impl Radio {
    fn push(&self, app_id: &str, line: String) {
        if let Ok(mut entries) = self.entries.lock() {
            // Only apps already loaded keep a live list; others read the database on first use.
            if let Some(list) = entries.get_mut(app_id) {
                list.push_front(line);
                list.truncate(RADIO_ENTRIES_MAX);
            }
        }
    }

    fn get(&self, app_id: &str) -> Option<Vec<String>> {
        let entries = self.entries.lock().ok()?;
        entries.get(app_id).map(|l| l.iter().cloned().collect())
    }

    fn set(&self, app_id: &str, lines: Vec<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .entry(app_id.to_string())
                .or_insert_with(|| lines.into_iter().collect());
        }
    }
}

/// How a winner is named on the radio: the nick, else the platform id half hidden.
fn display_name(nick: &str, uid: &str) -> String {
    if !nick.is_empty() {
        return nick.to_string();
    }
    let head: String = uid.chars().take(3).collect();
    format!("{head}***")
}

fn radio_line(name: &str, amount: i64, reward_type: &str) -> String {
    format!("恭喜{name}获得{amount}{reward_type}")
}

// ---------------------------------------------------------------------------------------------
// Storage

struct CardRow {
    id: i64,
    app_id: String,
    batch_id: i64,
    reward_type: String,
    sum: i64,
    unit: i64,
    ticket: i64,
    start_time: String,
    end_time: String,
    status: String,
}

const CARD_COLUMNS: &str =
    "id, app_id, batch_id, reward_type, sum, unit, ticket, start_time, end_time, status";

fn card_row(row: &sqlx::any::AnyRow) -> Result<CardRow, sqlx::Error> {
    Ok(CardRow {
        id: row.try_get(0)?,
        app_id: row.try_get(1)?,
        batch_id: row.try_get(2)?,
        reward_type: row.try_get(3)?,
        sum: row.try_get(4)?,
        unit: row.try_get(5)?,
        ticket: row.try_get(6)?,
        start_time: row.try_get(7)?,
        end_time: row.try_get(8)?,
        status: row.try_get(9)?,
    })
}

struct SessionRow {
    id: i64,
    name: String,
    start_time: String,
    end_time: String,
    status: String,
}

async fn sessions_of(state: &AppState, app_id: &str) -> Result<Vec<SessionRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, start_time, end_time, status FROM redpack_sessions \
         WHERE app_id = $1 ORDER BY start_time, id",
    )
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SessionRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                start_time: r.try_get(2)?,
                end_time: r.try_get(3)?,
                status: r.try_get(4)?,
            })
        })
        .collect()
}

async fn cards_of(state: &AppState, app_id: &str) -> Result<Vec<CardRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS} FROM redpack_cards WHERE app_id = $1 ORDER BY start_time, id"
    ))
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    rows.iter().map(card_row).collect()
}

async fn card(state: &AppState, card_id: i64) -> Result<Option<(CardRow, String)>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {}, s.status FROM redpack_cards c JOIN redpack_sessions s ON s.id = c.batch_id \
         WHERE c.id = $1",
        CARD_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(card_id)
    .fetch_optional(&state.stores.db.read)
    .await?;
    row.map(|r| Ok((card_row(&r)?, r.try_get(10)?))).transpose()
}

/// The committed grabs of a card on `day`: the stock counter and the grabbers.
async fn card_day(
    state: &AppState,
    app_id: &str,
    card_id: i64,
    day: &str,
) -> Result<CardDay, sqlx::Error> {
    let counter = CardActor::stock_counter(app_id, card_id, day);
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT count FROM ledger_counters WHERE counter_key = $1")
            .bind(&counter)
            .fetch_optional(&state.stores.db.write)
            .await?;
    let grabbed: Vec<i64> = sqlx::query_scalar(
        "SELECT user_id FROM ledger_entries WHERE app_id = $1 AND kind = 'redpack' AND reference = $2",
    )
    .bind(app_id)
    .bind(CardActor::day_reference(card_id, day))
    .fetch_all(&state.stores.db.write)
    .await?;
    Ok(CardDay {
        day: day.to_string(),
        taken: taken.unwrap_or(0),
        grabbed: grabbed.into_iter().collect(),
    })
}

fn window(start: &str, end: &str) -> (u32, u32) {
    (
        parse_time_of_day(start).unwrap_or(0),
        parse_time_of_day(end).unwrap_or(0),
    )
}

/// The card's actor, started from the database on first use.
async fn card_actor(state: &AppState, card_id: i64) -> Result<Addr<CardActor>, AppError> {
    state
        .activities
        .cards
        .get_or_start(&card_id, || async {
            let (row, session_status) = card(state, card_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("red-packet card {card_id}")))?;
            let day = Moment::now(&state.clock).day;
            let today = card_day(state, &row.app_id, card_id, &day).await?;
            if let Ok(mut owners) = state.activities.owners.cards.lock() {
                owners.insert(
                    card_id,
                    (row.app_id.clone(), row.batch_id, row.reward_type.clone()),
                );
            }
            let config = CardConfig {
                card_id,
                app_id: row.app_id.clone(),
                reward_type: row.reward_type,
                daily_stock: row.sum,
                unit: row.unit,
                ticket: row.ticket,
                window: window(&row.start_time, &row.end_time),
                open: row.status == "10" && session_status == "10",
            };
            let radio = Arc::clone(&state.activities);
            let hub = Arc::clone(&state.hub);
            let app_id = row.app_id;
            let on_win = Arc::new(move |win: &CardWin| {
                let name = display_name(&win.nick, &win.uid);
                radio
                    .radio
                    .push(&app_id, radio_line(&name, win.unit, &win.reward_type));
                hub.event(
                    "redpack:radio",
                    json!({
                        "app_id": app_id, "card_id": win.card_id, "user_id": win.uid,
                        "nick": name, "amount": win.unit, "reward_type": win.reward_type,
                        "at": win.outcome.created_at,
                    }),
                );
            });
            Ok::<_, AppError>(CardActor::new(config, today, state.ledger.clone(), on_win))
        })
        .await
}

struct PoolRow {
    app_id: String,
    title: String,
    total_points: i64,
    count: i64,
    split: String,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    status: String,
}

async fn pool(state: &AppState, pool_id: i64) -> Result<Option<PoolRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT app_id, title, total_points, count, split, starts_at, ends_at, status \
         FROM redpack_pools WHERE id = $1",
    )
    .bind(pool_id)
    .fetch_optional(&state.stores.db.read)
    .await?;
    row.map(|r| {
        Ok(PoolRow {
            app_id: r.try_get(0)?,
            title: r.try_get(1)?,
            total_points: r.try_get(2)?,
            count: r.try_get(3)?,
            split: r.try_get(4)?,
            starts_at: r.try_get(5)?,
            ends_at: r.try_get(6)?,
            status: r.try_get(7)?,
        })
    })
    .transpose()
}

/// The pool's actor, started from its packets and committed grabs on first use.
async fn pool_actor(state: &AppState, pool_id: i64) -> Result<Addr<PoolActor>, AppError> {
    state
        .activities
        .pools
        .get_or_start(&pool_id, || async {
            let row = pool(state, pool_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("red-packet pool {pool_id}")))?;
            let packets: Vec<i64> = sqlx::query_scalar(
                "SELECT amount FROM redpack_pool_packets WHERE pool_id = $1 ORDER BY seq",
            )
            .bind(pool_id)
            .fetch_all(&state.stores.db.write)
            .await?;
            // References `pool:<id>:<seq>` sort between `pool:<id>:` and `pool:<id>;`.
            let prefix = format!("pool:{pool_id}:");
            let rows = sqlx::query(
                "SELECT e.user_id, u.platform_uid, e.reference, e.amount, e.created_at \
                 FROM ledger_entries e JOIN users u ON u.id = e.user_id \
                 WHERE e.app_id = $1 AND e.kind = 'redpack_pool' \
                 AND e.reference >= $2 AND e.reference < $3 ORDER BY e.id",
            )
            .bind(&row.app_id)
            .bind(&prefix)
            .bind(format!("pool:{pool_id};"))
            .fetch_all(&state.stores.db.write)
            .await?;
            let mut grabs = Vec::with_capacity(rows.len());
            for r in rows {
                let reference: String = r.try_get(2)?;
                let seq = reference
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| {
                        AppError::Unavailable(format!("bad pool reference {reference}"))
                    })?;
                grabs.push(PoolGrab {
                    user_id: r.try_get(0)?,
                    uid: r.try_get(1)?,
                    seq,
                    amount: r.try_get(3)?,
                    at: r.try_get(4)?,
                });
            }
            if let Ok(mut owners) = state.activities.owners.pools.lock() {
                owners.insert(pool_id, row.app_id.clone());
            }
            let config = PoolConfig {
                pool_id,
                app_id: row.app_id,
                title: row.title,
                packets,
                starts_at: row.starts_at,
                ends_at: row.ends_at,
                open: row.status == "10",
            };
            let hub = Arc::clone(&state.hub);
            let on_grab = Arc::new(move |(pool_id, grab): &(i64, PoolGrab)| {
                hub.event(
                    &format!("redpack:pool:{pool_id}"),
                    json!({"user_id": grab.uid, "amount": grab.amount, "at": grab.at}),
                );
            });
            Ok::<_, AppError>(PoolActor::new(config, grabs, state.ledger.clone(), on_grab))
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// 000 routes

#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CardReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub card_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub batch_id: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct PoolReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
}

/// One card as `show` lists it.
#[derive(Serialize, ToSchema)]
pub struct CardView {
    pub card_id: i64,
    pub reward_type: String,
    /// Packets left today.
    pub sum: i64,
    pub unit: i64,
    pub ticket: i64,
    pub start_time: String,
    pub end_time: String,
}

/// One session as `show` lists it, keyed by its name.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub start_time: String,
    pub end_time: String,
    pub batch_id: i64,
    pub cards: Vec<CardView>,
}

#[derive(Serialize, ToSchema)]
pub struct PoolRobData {
    pub amount: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PoolGrabView {
    pub user_id: String,
    pub amount: i64,
    /// `YYYY-MM-DD HH:MM:SS`, business time.
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct PoolShowData {
    pub id: i64,
    pub title: String,
    pub total_points: i64,
    pub count: i64,
    /// `random` or `even`.
    pub split: String,
    pub remaining_count: i64,
    pub remaining_points: i64,
    /// What the caller won, or null.
    pub mine: Option<i64>,
    pub grabs: Vec<PoolGrabView>,
}

fn app_of(app: &Option<String>, caller: Option<&Caller<Gift>>) -> String {
    app.clone()
        .filter(|a| !a.trim().is_empty())
        .or_else(|| caller.map(|c| c.session.app_id.clone()))
        .unwrap_or_else(|| "default".to_string())
}

fn require<T: Copy>(v: Option<T>, field: &str) -> Result<T, AppError> {
    v.ok_or_else(|| AppError::missing(field))
}

async fn show(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> Reply {
    let app_id = app_of(&p.into_inner().app_id, None);
    crate::auth::app(&state, &app_id).await?;
    let day = Moment::now(&state.clock).day;
    let sessions = sessions_of(&state, &app_id).await?;
    let cards = cards_of(&state, &app_id).await?;
    let mut out = serde_json::Map::new();
    for session in sessions.into_iter().filter(|s| s.status == "10") {
        let mut views = Vec::new();
        for card in cards
            .iter()
            .filter(|c| c.batch_id == session.id && c.status == "10")
        {
            let left = match state.activities.cards.get(&card.id) {
                Some(actor) => actor
                    .send(CardRemaining { day: day.clone() })
                    .await
                    .map_err(|_| AppError::Busy)?,
                None => {
                    let today = card_day(&state, &app_id, card.id, &day).await?;
                    (card.sum - today.taken).max(0)
                }
            };
            views.push(CardView {
                card_id: card.id,
                reward_type: card.reward_type.clone(),
                sum: left,
                unit: card.unit,
                ticket: card.ticket,
                start_time: card.start_time.clone(),
                end_time: card.end_time.clone(),
            });
        }
        out.insert(
            session.name,
            json!(SessionView {
                start_time: session.start_time,
                end_time: session.end_time,
                batch_id: session.id,
                cards: views,
            }),
        );
    }
    Ok(ok(Value::Object(out)))
}

async fn rob(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<CardReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let card_id = require(p.card_id, "card_id")?;
    let batch_id = require(p.batch_id, "batch_id")?;
    let actor = card_actor(&state, card_id).await?;
    let user = points::user(&state, &caller.session.app_id, &caller.session.platform_uid).await?;
    // The card must belong to the caller's app and the named session.
    let (_, _, reward_type) = state
        .activities
        .owners
        .card(card_id)
        .filter(|(app, batch, _)| *app == user.app_id && *batch == batch_id)
        .ok_or_else(|| {
            AppError::NotFound(format!("red-packet card {card_id} in batch {batch_id}"))
        })?;
    let expires_at = if reward_type == REWARD_POINTS {
        points::default_expiry(&state, &user.app_id).await?
    } else {
        None
    };
    let now = Moment::now(&state.clock);
    actor
        .send(GrabCard {
            user_id: user.id,
            uid: user.platform_uid.clone(),
            nick: user.nick.clone(),
            day: now.day,
            second_of_day: now.second_of_day,
            expires_at,
        })
        .await
        .map_err(|_| AppError::Busy)?
        .map_err(AppError::from)?;
    Ok(ok(json!([])))
}

async fn radio(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> Reply {
    let app_id = app_of(&p.into_inner().app_id, None);
    crate::auth::app(&state, &app_id).await?;
    if let Some(lines) = state.activities.radio.get(&app_id) {
        return Ok(ok(json!(lines)));
    }
    let rows = sqlx::query(&format!(
        "SELECT u.nick, u.platform_uid, e.reference FROM ledger_entries e \
         JOIN users u ON u.id = e.user_id WHERE e.app_id = $1 AND e.kind = 'redpack' \
         ORDER BY e.id DESC LIMIT {RADIO_ENTRIES_MAX}"
    ))
    .bind(&app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    let cards: HashMap<i64, CardRow> = cards_of(&state, &app_id)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        let nick: String = r.try_get(0)?;
        let uid: String = r.try_get(1)?;
        let reference: String = r.try_get(2)?;
        // `card:<id>:<day>`
        let card = reference
            .split(':')
            .nth(1)
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| cards.get(&id));
        if let Some(card) = card {
            lines.push(radio_line(
                &display_name(&nick, &uid),
                card.unit,
                &card.reward_type,
            ));
        }
    }
    state.activities.radio.set(&app_id, lines.clone());
    Ok(ok(json!(lines)))
}

async fn click(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<CardReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let card_id = require(p.card_id, "card_id")?;
    let batch_id = require(p.batch_id, "batch_id")?;
    let done = sqlx::query(
        "UPDATE redpack_cards SET clicks = clicks + 1 WHERE id = $1 AND batch_id = $2 AND app_id = $3",
    )
    .bind(card_id)
    .bind(batch_id)
    .bind(&caller.session.app_id)
    .execute(&state.stores.db.write)
    .await?;
    if done.rows_affected() == 0 {
        return Err(
            AppError::NotFound(format!("red-packet card {card_id} in batch {batch_id}")).into(),
        );
    }
    Ok(ok(json!([])))
}

async fn pool_rob(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PoolReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let pool_id = require(p.id, "id")?;
    let actor = pool_actor(&state, pool_id).await?;
    let user = points::user(&state, &caller.session.app_id, &caller.session.platform_uid).await?;
    if state.activities.owners.pool(pool_id).as_ref() != Some(&user.app_id) {
        return Err(AppError::NotFound(format!("red-packet pool {pool_id}")).into());
    }
    let grab = actor
        .send(GrabPool {
            user_id: user.id,
            uid: user.platform_uid.clone(),
            now_ms: now_ms(),
            expires_at: points::default_expiry(&state, &user.app_id).await?,
        })
        .await
        .map_err(|_| AppError::Busy)?
        .map_err(AppError::from)?;
    Ok(ok(json!(PoolRobData {
        amount: grab.amount
    })))
}

async fn pool_show(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PoolReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let pool_id = require(p.id, "id")?;
    let row = pool(&state, pool_id)
        .await?
        .filter(|r| r.app_id == caller.session.app_id)
        .ok_or_else(|| AppError::NotFound(format!("red-packet pool {pool_id}")))?;
    let view = pool_actor(&state, pool_id)
        .await?
        .send(ShowPool)
        .await
        .map_err(|_| AppError::Busy)?;
    let mine = view
        .grabs
        .iter()
        .find(|g| g.user_id == caller.session.user_id)
        .map(|g| g.amount);
    Ok(ok(json!(PoolShowData {
        id: pool_id,
        title: row.title,
        total_points: row.total_points,
        count: row.count,
        split: row.split,
        remaining_count: view.remaining_count,
        remaining_points: view.remaining_points,
        mine,
        grabs: view
            .grabs
            .iter()
            .map(|g| PoolGrabView {
                user_id: g.uid.clone(),
                amount: g.amount,
                at: state.clock.format_datetime(g.at),
            })
            .collect(),
    })))
}

// ---------------------------------------------------------------------------------------------
// Admin routes

#[derive(Deserialize, ToSchema)]
pub struct SessionReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `HH:MM:SS`, business time.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewCardReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub batch_id: Option<i64>,
    /// One of `积分`, `集分宝`, `现金红包`, `电子权益`, `实物`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub reward_type: Option<String>,
    /// Packets a day.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sum: Option<i64>,
    /// Value of one packet.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub unit: Option<i64>,
    /// Points paid per grab (0 for free).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub ticket: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewPoolReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub total_points: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub count: Option<i64>,
    /// `random` (double mean) or `even`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub split: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (business time) or epoch seconds/ms.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub ends_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct StatusReq {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    /// `10` on shelf, `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchIdData {
    pub batch_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CardIdData {
    pub card_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PoolIdData {
    pub id: i64,
}

fn name_field(v: Option<String>, field: &str) -> Result<String, AppError> {
    let v = v
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::missing(field))?;
    if v.chars().count() > REDPACK_NAME_CHARS_MAX {
        return Err(AppError::invalid(format!(
            "{field} is longer than {REDPACK_NAME_CHARS_MAX} characters"
        )));
    }
    Ok(v)
}

fn time_field(v: Option<String>, field: &str) -> Result<String, AppError> {
    let v = v.ok_or_else(|| AppError::missing(field))?;
    parse_time_of_day(&v).ok_or_else(|| AppError::invalid(format!("{field} must be HH:MM:SS")))?;
    Ok(v.trim().to_string())
}

fn window_fields(start: Option<String>, end: Option<String>) -> Result<(String, String), AppError> {
    let start = time_field(start, "start_time")?;
    let end = time_field(end, "end_time")?;
    let (s, e) = window(&start, &end);
    if s >= e {
        return Err(AppError::invalid("start_time must be before end_time"));
    }
    Ok((start, end))
}

fn amount_field(v: Option<i64>, field: &str, min: i64) -> Result<i64, AppError> {
    let v = v.ok_or_else(|| AppError::missing(field))?;
    if !(min..=REDPACK_POINTS_MAX).contains(&v) {
        return Err(AppError::invalid(format!(
            "{field} must be between {min} and {REDPACK_POINTS_MAX}"
        )));
    }
    Ok(v)
}

async fn admin_app(state: &AppState, app: Option<String>) -> Result<String, AppError> {
    let app_id = app_of(&app, None);
    crate::auth::app(state, &app_id).await?;
    Ok(app_id)
}

async fn create_session(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<SessionReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let name = name_field(p.name, "name")?;
    let (start, end) = window_fields(p.start_time, p.end_time)?;
    let app_id = admin_app(&state, p.app_id).await?;
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO redpack_sessions (app_id, name, start_time, end_time, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, '10', $5, $5) RETURNING id",
    )
    .bind(&app_id)
    .bind(&name)
    .bind(&start)
    .bind(&end)
    .bind(now)
    .fetch_one(&state.stores.db.write)
    .await?;
    Ok(ok(json!(BatchIdData { batch_id: id })))
}

async fn create_card(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<NewCardReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let batch_id = require(p.batch_id, "batch_id")?;
    let reward_type = p
        .reward_type
        .ok_or_else(|| AppError::missing("reward_type"))?;
    if !REWARD_TYPES.contains(&reward_type.as_str()) {
        return Err(AppError::invalid(format!(
            "reward_type must be one of {}",
            REWARD_TYPES.join(", ")
        ))
        .into());
    }
    let sum = amount_field(p.sum, "sum", 0)?;
    let unit = amount_field(p.unit, "unit", 1)?;
    let ticket = amount_field(p.ticket.or(Some(0)), "ticket", 0)?;
    let (start, end) = window_fields(p.start_time, p.end_time)?;
    let app_id = admin_app(&state, p.app_id).await?;
    let session_app: Option<String> =
        sqlx::query_scalar("SELECT app_id FROM redpack_sessions WHERE id = $1")
            .bind(batch_id)
            .fetch_optional(&state.stores.db.read)
            .await?;
    if session_app.as_deref() != Some(app_id.as_str()) {
        return Err(AppError::NotFound(format!("red-packet session {batch_id}")).into());
    }
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO redpack_cards (app_id, batch_id, reward_type, sum, unit, ticket, start_time, \
         end_time, status, clicks, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '10', 0, $9, $9) RETURNING id",
    )
    .bind(&app_id)
    .bind(batch_id)
    .bind(&reward_type)
    .bind(sum)
    .bind(unit)
    .bind(ticket)
    .bind(&start)
    .bind(&end)
    .bind(now)
    .fetch_one(&state.stores.db.write)
    .await?;
    Ok(ok(json!(CardIdData { card_id: id })))
}

async fn create_pool(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<NewPoolReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let title = name_field(p.title, "title")?;
    let total = amount_field(p.total_points, "total_points", 1)?;
    let count = p.count.ok_or_else(|| AppError::missing("count"))?;
    if !(1..=POOL_PACKETS_MAX).contains(&count) {
        return Err(
            AppError::invalid(format!("count must be between 1 and {POOL_PACKETS_MAX}")).into(),
        );
    }
    if count > total {
        return Err(AppError::invalid(
            "count must not exceed total_points: every packet holds at least 1 point",
        )
        .into());
    }
    let split = p.split.unwrap_or_else(|| "random".into());
    if split != "random" && split != "even" {
        return Err(AppError::invalid("split must be random or even").into());
    }
    let parse = |v: Option<String>, field: &str| -> Result<Option<i64>, AppError> {
        v.filter(|s| !s.trim().is_empty())
            .map(|s| {
                state.clock.parse(&s).ok_or_else(|| {
                    AppError::invalid(format!("{field} must be YYYY-MM-DD HH:MM:SS or epoch time"))
                })
            })
            .transpose()
    };
    let starts_at = parse(p.starts_at, "starts_at")?;
    let ends_at = parse(p.ends_at, "ends_at")?;
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if s >= e {
            return Err(AppError::invalid("starts_at must be before ends_at").into());
        }
    }
    let app_id = admin_app(&state, p.app_id).await?;
    let packets = split_pool(total, count, split == "random", &mut rand::rng())
        .ok_or_else(|| AppError::invalid("cannot split the pool"))?;
    let now = now_ms();
    let mut tx = state.stores.db.write.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO redpack_pools (app_id, title, total_points, count, split, starts_at, ends_at, \
         status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '10', $8) RETURNING id",
    )
    .bind(&app_id)
    .bind(&title)
    .bind(total)
    .bind(count)
    .bind(&split)
    .bind(starts_at)
    .bind(ends_at)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let rows: Vec<Value> = packets
        .iter()
        .enumerate()
        .map(|(seq, amount)| json!({"seq": seq, "amount": amount}))
        .collect();
    sqlx::query(&format!(
        "INSERT INTO redpack_pool_packets (pool_id, seq, amount) SELECT $2, r.seq, r.amount FROM {} r",
        state
            .stores
            .db
            .json_records("$1", &[("seq", crate::db::Col::Int), ("amount", crate::db::Col::Int)])
    ))
    .bind(Value::Array(rows).to_string())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ok(json!(PoolIdData { id })))
}

fn status_field(v: Option<String>) -> Result<String, AppError> {
    let v = v.ok_or_else(|| AppError::missing("status"))?;
    if !["10", "20", "30"].contains(&v.as_str()) {
        return Err(AppError::invalid("status must be 10, 20 or 30"));
    }
    Ok(v)
}

/// Sets a card's, session's or pool's status and restarts the actors that cache it.
async fn set_status(state: &AppState, table: &str, p: StatusReq) -> Result<(), AppError> {
    let id = require(p.id, "id")?;
    let status = status_field(p.status)?;
    let statement = match table {
        "redpack_pools" => "UPDATE redpack_pools SET status = $1 WHERE id = $2".to_string(),
        _ => format!("UPDATE {table} SET status = $1, updated_at = $3 WHERE id = $2"),
    };
    let done = sqlx::query(&statement)
        .bind(&status)
        .bind(id)
        .bind(now_ms())
        .execute(&state.stores.db.write)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("{table} {id}")));
    }
    let retire_cards = |ids: Vec<i64>| {
        for id in ids {
            if let Some(actor) = state.activities.cards.forget(&id) {
                actor.do_send(Retire);
            }
        }
    };
    match table {
        "redpack_cards" => retire_cards(vec![id]),
        "redpack_sessions" => {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM redpack_cards WHERE batch_id = $1")
                    .bind(id)
                    .fetch_all(&state.stores.db.read)
                    .await?;
            retire_cards(ids);
        }
        _ => {
            if let Some(actor) = state.activities.pools.forget(&id) {
                actor.do_send(Retire);
            }
        }
    }
    Ok(())
}

async fn card_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    set_status(&state, "redpack_cards", p.into_inner()).await?;
    Ok(ok(json!([])))
}

async fn session_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    set_status(&state, "redpack_sessions", p.into_inner()).await?;
    Ok(ok(json!([])))
}

async fn pool_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<StatusReq, Gift>,
) -> Reply {
    set_status(&state, "redpack_pools", p.into_inner()).await?;
    Ok(ok(json!([])))
}

/// An app's red packets, for operators.
#[derive(Serialize, ToSchema)]
pub struct AdminRedpackData {
    /// Sessions with their cards (status, clicks, packets granted today).
    #[schema(value_type = Vec<Object>)]
    pub sessions: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub pools: Vec<Value>,
}

/// Everything an app's red packets hold, for operators: sessions with their cards (clicks,
/// today's grabs) and pools.
async fn admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> Reply {
    let app_id = admin_app(&state, p.into_inner().app_id).await?;
    let day = Moment::now(&state.clock).day;
    let sessions = sessions_of(&state, &app_id).await?;
    let cards = cards_of(&state, &app_id).await?;
    let clicks: BTreeMap<i64, i64> =
        sqlx::query("SELECT id, clicks FROM redpack_cards WHERE app_id = $1")
            .bind(&app_id)
            .fetch_all(&state.stores.db.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    let mut out = Vec::new();
    for s in sessions {
        let mut card_views = Vec::new();
        for c in cards.iter().filter(|c| c.batch_id == s.id) {
            let today = card_day(&state, &app_id, c.id, &day).await?;
            card_views.push(json!({
                "card_id": c.id, "reward_type": c.reward_type, "sum": c.sum, "unit": c.unit,
                "ticket": c.ticket, "start_time": c.start_time, "end_time": c.end_time,
                "status": c.status, "clicks": clicks.get(&c.id), "granted_today": today.taken,
            }));
        }
        out.push(json!({
            "batch_id": s.id, "name": s.name, "start_time": s.start_time, "end_time": s.end_time,
            "status": s.status, "cards": card_views,
        }));
    }
    let pools = sqlx::query(
        "SELECT id, title, total_points, count, split, starts_at, ends_at, status \
         FROM redpack_pools WHERE app_id = $1 ORDER BY id",
    )
    .bind(&app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    let mut pool_views = Vec::new();
    for r in pools {
        let id: i64 = r.try_get(0)?;
        pool_views.push(json!({
            "id": id, "title": r.try_get::<String, _>(1)?, "total_points": r.try_get::<i64, _>(2)?,
            "count": r.try_get::<i64, _>(3)?, "split": r.try_get::<String, _>(4)?,
            "starts_at": r.try_get::<Option<i64>, _>(5)?, "ends_at": r.try_get::<Option<i64>, _>(6)?,
            "status": r.try_get::<String, _>(7)?,
        }));
    }
    Ok(ok(json!(AdminRedpackData {
        sessions: out,
        pools: pool_views
    })))
}

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 red packets";
    r.add::<AppReq, BTreeMap<String, SessionView>, _, _>(
        RouteDoc {
            path: "/v2/redpack/show.json",
            methods: GET_POST,
            tag,
            summary: "红包详情页数据: sessions and their cards",
            description: "Public. `data` maps each on-shelf session's name to its window, `batch_id` and on-shelf cards; a card's `sum` is the packets left today (restocked at 00:00 business time).",
        },
        show,
    );
    r.add::<CardReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/v2/redpack/rob.json",
            methods: GET_POST,
            tag,
            summary: "抢红包: grab one packet of a card",
            description: "Bearer token; `user_id` must be the caller. Inside the card's daily window, pays `ticket` points and wins one packet of `unit` (points credited, other reward types recorded as a fulfilment order), at most once per user per card per day. Answers after the commit. Refusals (`status:false`, code 410): not started, ended, closed, already grabbed today, sold out; 402 ticket not affordable; 429 busy; 404 unknown card or batch.",
        },
        rob,
    );
    r.add::<AppReq, Vec<String>, _, _>(
        RouteDoc {
            path: "/v2/redpack/radio.json",
            methods: GET_POST,
            tag,
            summary: "广播红包用户: recent winners",
            description: "Public. The latest 20 card winners of the app, newest first, as `恭喜<nick>获得<amount><unit>`. Also pushed live on websocket topic `redpack:radio`.",
        },
        radio,
    );
    r.add::<CardReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/v2/redpack/click.json",
            methods: GET_POST,
            tag,
            summary: "点击红包(统计用): count a click on a card",
            description: "Bearer token; counts one click for statistics (shown to operators by `GET /admin/redpack`).",
        },
        click,
    );
    r.add::<PoolReq, PoolRobData, _, _>(
        RouteDoc {
            path: "/v2/redpack/pool/rob.json",
            methods: GET_POST,
            tag,
            summary: "抢红包池: grab one packet of a pool",
            description: "Bearer token. Wins the next packet of the pool (amounts split at creation) once per user; `data.amount` is the points credited. Refusals (code 410): not started, ended, closed, already grabbed, sold out; 404 unknown pool.",
        },
        pool_rob,
    );
    r.add::<PoolReq, PoolShowData, _, _>(
        RouteDoc {
            path: "/v2/redpack/pool/show.json",
            methods: GET_POST,
            tag,
            summary: "红包池详情: what is left and who won",
            description: "Bearer token. `remaining_count`, `remaining_points`, the caller's own amount in `mine` (null if none) and every committed grab `{user_id, amount, at}`. Live grabs are pushed on websocket topic `redpack:pool:<id>`.",
        },
        pool_show,
    );

    let tag = "admin red packets";
    r.add::<SessionReq, BatchIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/sessions",
            methods: POST,
            tag,
            summary: "Create a red-packet session (batch)",
            description: "`X-Admin-Key`. `{app_id, name, start_time, end_time}` (`HH:MM:SS`, start before end) -> `data.batch_id`.",
        },
        create_session,
    );
    r.add::<NewCardReq, CardIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/cards",
            methods: POST,
            tag,
            summary: "Create a red-packet card in a session",
            description: "`X-Admin-Key`. `{app_id, batch_id, reward_type, sum (packets a day), unit (value of one packet, >= 1), ticket (points per grab, >= 0), start_time, end_time}` -> `data.card_id`.",
        },
        create_card,
    );
    r.add::<NewPoolReq, PoolIdData, _, _>(
        RouteDoc {
            path: "/admin/redpack/pools",
            methods: POST,
            tag,
            summary: "Create a red-packet pool",
            description: "`X-Admin-Key`. `{app_id, title, total_points, count, split: random|even, starts_at?, ends_at?}` -> `data.id`. The packets are split at creation and stored: `random` is the double-mean method, `even` gives the remainder to the first packets; every packet holds at least 1 point, so `count` above `total_points` is refused.",
        },
        create_pool,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/cards/status",
            methods: POST,
            tag,
            summary: "Put a card on or off shelf",
            description: "`X-Admin-Key`. `{id, status}`: `10` on shelf, `20` off shelf, `30` deleted. Takes effect for the next grab.",
        },
        card_status,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/sessions/status",
            methods: POST,
            tag,
            summary: "Put a session on or off shelf",
            description:
                "`X-Admin-Key`. `{id, status}` (10/20/30); a session off shelf closes its cards.",
        },
        session_status,
    );
    r.add::<StatusReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/admin/redpack/pools/status",
            methods: POST,
            tag,
            summary: "Open or close a pool",
            description: "`X-Admin-Key`. `{id, status}` (10/20/30).",
        },
        pool_status,
    );
    r.add::<AppReq, AdminRedpackData, _, _>(
        RouteDoc {
            path: "/admin/redpack",
            methods: GET,
            tag,
            summary: "An app's red packets",
            description: "`X-Admin-Key`. Sessions with their cards (status, clicks, packets granted today) and pools.",
        },
        admin_list,
    );
}
