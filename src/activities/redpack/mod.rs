//! Red packets: 000 sessions and cards, pools, the radio of recent winners, click counting, and
//! the admin routes that create them.
//!
//! A grab goes to the card's (or pool's) actor, found through [`Activities`]'s registries; the
//! actor is built here from the database: the card or pool row, and what was already granted
//! (today's stock counter and grabbers; the pool's granted packets). Winners go to the radio and
//! to the websocket topics `redpack:radio` and `redpack:pool:<id>`.
//!
//! This file holds the logic and the domain types; the slice's SQL is in [`store`] (and, for the
//! ledger's tables, in [`crate::store::ledger::redpack`]), its routes in `routes_gift` (000) and
//! `routes_admin`.
//!
//! [`Activities`]: crate::activities::Activities

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use points_actors::activity::{ActivityError, Retire};
use points_actors::redpack::{
    CardActor, CardConfig, CardDay, CardRemaining, CardWin, GrabCard, GrabPool, PoolActor,
    PoolConfig, PoolGrab, PoolView, ShowPool, REWARD_POINTS,
};
use points_actors::LedgerError;
use serde_json::json;

use crate::clock::now_ms;
use crate::clock::{parse_time_of_day, Moment};
use crate::dialect::AppId;
use crate::dialect::Status;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points;
use crate::state::AppState;
use crate::store::ledger::redpack as ledger;

mod routes_admin;
mod routes_gift;
pub(crate) mod store;

pub use routes_admin::{
    AdminRedpackData, BatchIdData, CardIdData, NewCardReq, NewPoolReq, PoolIdData, SessionReq,
    StatusReq,
};
pub use routes_gift::{
    AppReq, CardReq, CardView, PoolGrabView, PoolReq, PoolRobData, PoolShowData, SessionView,
};

use store::{CardRow, PoolRow};

/// Most recent winners the radio keeps per app.
pub use crate::runtime::redpack::RADIO_ENTRIES_MAX;
/// Most packets one pool may hold.
pub const POOL_PACKETS_MAX: i64 = 100_000;
/// Most points one card packet or one pool may hold.
pub const REDPACK_POINTS_MAX: i64 = 1_000_000_000;
/// Longest session name or pool title.
pub const REDPACK_NAME_CHARS_MAX: usize = 64;
pub use points_actors::ledger::REWARD_TYPES;

pub use crate::runtime::redpack::{Owners, Radio};

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

/// Registers the 000 and admin red-packet routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

fn require<T: Copy>(v: Option<T>, field: &str) -> Result<T, AppError> {
    v.ok_or_else(|| AppError::missing(field))
}

// ---------------------------------------------------------------------------------------------
// Cards

/// The committed grabs of a card on `day`: the stock counter and the grabbers.
async fn card_day(
    state: &AppState,
    app_id: &str,
    card_id: i64,
    day: &str,
) -> Result<CardDay, sqlx::Error> {
    let db = &state.stores.db;
    let counter = CardActor::stock_counter(app_id, card_id, day);
    let taken = ledger::card_stock_taken(db, &counter).await?;
    let grabbed =
        ledger::card_grabbers(db, app_id, &CardActor::day_reference(card_id, day)).await?;
    Ok(CardDay {
        day: day.to_string(),
        taken: taken.unwrap_or(0),
        grabbed: grabbed.into_iter().collect(),
    })
}

/// Packets of `card` left on `day`: its actor's count if it runs, else the database's.
async fn cards_left(
    state: &AppState,
    app_id: &str,
    card: &CardRow,
    day: &str,
) -> Result<i64, AppError> {
    Ok(match state.activities.cards.get(&card.id) {
        Some(actor) => actor
            .send(CardRemaining {
                day: day.to_string(),
            })
            .await
            .map_err(|_| AppError::Busy)?,
        None => {
            let today = card_day(state, app_id, card.id, day).await?;
            (card.sum - today.taken).max(0)
        }
    })
}

fn window(start: &str, end: &str) -> (u32, u32) {
    (
        parse_time_of_day(start).unwrap_or(0),
        parse_time_of_day(end).unwrap_or(0),
    )
}

/// The lease name of a red-packet card.
pub fn card_activity(card_id: i64) -> String {
    format!("redpack:card:{card_id}")
}

/// The card's actor on this node, started under lease `epoch` (a running one started under
/// another epoch is retired first).
async fn card_actor(
    state: &AppState,
    card_id: i64,
    epoch: i64,
) -> Result<Addr<CardActor>, AppError> {
    let fence = state.cluster.fence(&card_activity(card_id), epoch);
    let started = state.activities.owners.card_epoch(card_id);
    if started.is_some_and(|epoch| epoch != fence.as_ref().map(|f| f.epoch)) {
        retire_card(state, card_id);
    }
    state
        .activities
        .cards
        .get_or_start(&card_id, || async {
            let found = store::card(&state.stores.db, card_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("red-packet card {card_id}")))?;
            let (row, session_status) = (found.card, found.session_status);
            let day = Moment::now(&state.clock).day;
            let today = card_day(state, &row.app_id, card_id, &day).await?;
            let config = CardConfig {
                card_id,
                app_id: row.app_id.clone(),
                batch_id: row.batch_id,
                reward_type: row.reward_type,
                daily_stock: row.sum,
                unit: row.unit,
                ticket: row.ticket,
                window: window(&row.start_time, &row.end_time),
                open: row.status == Status::On.code() && session_status == Status::On.code(),
                fence,
            };
            if let Ok(mut owners) = state.activities.owners.cards.lock() {
                owners.insert(card_id, config.clone());
            }
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

/// Stops card `card_id`'s actor on this node (an admin change, or its lease moved on); the next
/// use starts a fresh one from the database.
fn retire_card(state: &AppState, card_id: i64) {
    if let Some(actor) = state.activities.cards.forget(&card_id) {
        actor.do_send(Retire);
    }
}

/// Stops serving an activity whose lease this node lost.
pub fn step_down(state: &AppState, activity: &str) {
    let id = |prefix: &str| activity.strip_prefix(prefix)?.parse::<i64>().ok();
    if let Some(card_id) = id("redpack:card:") {
        retire_card(state, card_id);
    } else if let Some(pool_id) = id("redpack:pool:") {
        retire_pool(state, pool_id);
    }
}

/// Grabs one packet of card `card_id` in session `batch_id` for the user; answers after the
/// commit. On a node that does not own the card the request goes to its owner; a grab the
/// commit fenced off (the card moved to another node meanwhile) goes there too, once.
async fn grab_card(
    state: &AppState,
    app_id: &str,
    platform_uid: &str,
    card_id: i64,
    batch_id: i64,
) -> Result<(), AppError> {
    let activity = card_activity(card_id);
    let mut rerouted = false;
    loop {
        let epoch = state.cluster.serve(&activity).await?;
        match grab_owned_card(state, app_id, platform_uid, card_id, batch_id, epoch).await? {
            Err(ActivityError::Ledger(LedgerError::Fenced { .. })) if !rerouted => {
                state.cluster.count_fenced();
                state.cluster.step_down_from(&activity, epoch);
                retire_card(state, card_id);
                rerouted = true;
            }
            answer => return answer.map_err(AppError::from),
        }
    }
}

/// [`grab_card`] on the node that owns the card, under lease `epoch`: the actor's answer, or
/// why the grab could not reach it.
async fn grab_owned_card(
    state: &AppState,
    app_id: &str,
    platform_uid: &str,
    card_id: i64,
    batch_id: i64,
    epoch: i64,
) -> Result<Result<(), ActivityError>, AppError> {
    let actor = card_actor(state, card_id, epoch).await?;
    let user = points::user(state, app_id, platform_uid).await?;
    // The card must belong to the caller's app and the named session.
    let card = state
        .activities
        .owners
        .card(card_id)
        .filter(|card| card.app_id == user.app_id && card.batch_id == batch_id)
        .ok_or_else(|| {
            AppError::NotFound(format!("red-packet card {card_id} in batch {batch_id}"))
        })?;
    let expires_at = if card.reward_type == REWARD_POINTS {
        points::default_expiry(state, &user.app_id).await?
    } else {
        None
    };
    let now = Moment::now(&state.clock);
    let answer = actor
        .send(GrabCard {
            user_id: user.id,
            uid: user.platform_uid.clone(),
            nick: user.nick.clone(),
            day: now.day,
            second_of_day: now.second_of_day,
            expires_at,
        })
        .await
        .map_err(|_| AppError::Busy)?;
    Ok(answer.map(|_| ()))
}

/// The radio's lines for an app: the live list, else the latest wins read from the database.
async fn radio_lines(state: &AppState, app_id: &str) -> Result<Vec<String>, AppError> {
    if let Some(lines) = state.activities.radio.get(app_id) {
        return Ok(lines);
    }
    let rows = ledger::radio_wins(&state.stores.db, app_id, RADIO_ENTRIES_MAX).await?;
    let cards: HashMap<i64, CardRow> = store::cards_of(&state.stores.db, app_id)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        let card = CardActor::card_of_reference(&r.reference).and_then(|id| cards.get(&id));
        if let Some(card) = card {
            lines.push(radio_line(
                &display_name(&r.nick, &r.platform_uid),
                card.unit,
                &card.reward_type,
            ));
        }
    }
    state.activities.radio.set(app_id, lines.clone());
    Ok(lines)
}

// ---------------------------------------------------------------------------------------------
// Pools

/// The lease name of a red-packet pool.
pub fn pool_activity(pool_id: i64) -> String {
    format!("redpack:pool:{pool_id}")
}

/// Stops pool `pool_id`'s actor on this node; the next use starts a fresh one from the database.
fn retire_pool(state: &AppState, pool_id: i64) {
    if let Some(actor) = state.activities.pools.forget(&pool_id) {
        actor.do_send(Retire);
    }
}

/// The pool's actor, started from its packets and committed grabs on first use, under lease
/// `epoch` (a running one started under another epoch is retired first).
async fn pool_actor(
    state: &AppState,
    pool_id: i64,
    epoch: i64,
) -> Result<Addr<PoolActor>, AppError> {
    if state
        .activities
        .owners
        .pool_epoch(pool_id)
        .is_some_and(|e| e != epoch)
    {
        retire_pool(state, pool_id);
    }
    state
        .activities
        .pools
        .get_or_start(&pool_id, || async {
            let db = &state.stores.db;
            let row = store::pool(db, pool_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("red-packet pool {pool_id}")))?;
            let packets = store::pool_packets(db, pool_id).await?;
            let (from, to) = PoolActor::reference_range(pool_id);
            let rows = ledger::pool_grabs(db, &row.app_id, &from, &to).await?;
            let mut grabs = Vec::with_capacity(rows.len());
            for r in rows {
                let reference = r.reference;
                let seq = PoolActor::seq_of_reference(pool_id, &reference).ok_or_else(|| {
                    AppError::Unavailable(format!("bad pool reference {reference}"))
                })?;
                grabs.push(PoolGrab {
                    user_id: r.user_id,
                    uid: r.platform_uid,
                    seq,
                    amount: r.amount,
                    at: r.created_at,
                });
            }
            if let Ok(mut owners) = state.activities.owners.pools.lock() {
                owners.insert(pool_id, (row.app_id.clone(), epoch));
            }
            let config = PoolConfig {
                pool_id,
                app_id: row.app_id,
                title: row.title,
                packets,
                starts_at: row.starts_at,
                ends_at: row.ends_at,
                open: row.status == Status::On.code(),
                fence: state.cluster.fence(&pool_activity(pool_id), epoch),
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

/// Grabs the next packet of pool `pool_id` for the user; the points won. On a node that does
/// not own the pool the request goes to its owner; a grab the commit fenced off goes there too,
/// once.
async fn grab_pool(
    state: &AppState,
    app_id: &str,
    platform_uid: &str,
    pool_id: i64,
) -> Result<i64, AppError> {
    let activity = pool_activity(pool_id);
    let mut rerouted = false;
    loop {
        let epoch = state.cluster.serve(&activity).await?;
        let actor = pool_actor(state, pool_id, epoch).await?;
        let user = points::user(state, app_id, platform_uid).await?;
        if state.activities.owners.pool(pool_id).as_ref() != Some(&user.app_id) {
            return Err(AppError::NotFound(format!("red-packet pool {pool_id}")));
        }
        let answer = actor
            .send(GrabPool {
                user_id: user.id,
                uid: user.platform_uid.clone(),
                now_ms: now_ms(),
                expires_at: points::default_expiry(state, &user.app_id).await?,
            })
            .await
            .map_err(|_| AppError::Busy)?;
        match answer {
            Err(ActivityError::Ledger(LedgerError::Fenced { .. })) if !rerouted => {
                state.cluster.count_fenced();
                state.cluster.step_down_from(&activity, epoch);
                retire_pool(state, pool_id);
                rerouted = true;
            }
            answer => return answer.map(|grab| grab.amount).map_err(AppError::from),
        }
    }
}

/// A pool of `app_id` with its committed state.
async fn show_pool(
    state: &AppState,
    app_id: &str,
    pool_id: i64,
) -> Result<(PoolRow, PoolView), AppError> {
    let row = store::pool(&state.stores.db, pool_id)
        .await?
        .filter(|r| r.app_id == app_id)
        .ok_or_else(|| AppError::NotFound(format!("red-packet pool {pool_id}")))?;
    let epoch = state.cluster.serve(&pool_activity(pool_id)).await?;
    let view = pool_actor(state, pool_id, epoch)
        .await?
        .send(ShowPool)
        .await
        .map_err(|_| AppError::Busy)?;
    Ok((row, view))
}

// ---------------------------------------------------------------------------------------------
// Admin checks and changes

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
    let app_id = AppId::text_of(&app);
    crate::auth::app(state, &app_id).await?;
    Ok(app_id)
}

fn status_field(v: Option<String>) -> Result<String, AppError> {
    let v = v.ok_or_else(|| AppError::missing("status"))?;
    if Status::parse(&v).is_none() {
        return Err(AppError::invalid("status must be 10, 20 or 30"));
    }
    Ok(v)
}

/// Sets a card's, session's or pool's status and restarts the actors that cache it.
async fn set_status(
    state: &AppState,
    table: &str,
    id: Option<i64>,
    status: Option<String>,
) -> Result<(), AppError> {
    let id = require(id, "id")?;
    let status = status_field(status)?;
    let changed = store::set_status(&state.stores.db, table, &status, id, now_ms()).await?;
    if changed == 0 {
        return Err(AppError::NotFound(format!("{table} {id}")));
    }
    // This node's actors stop; on another node, the lease ends so its owner steps down.
    let (cards, pools) = match table {
        "redpack_cards" => (vec![id], vec![]),
        "redpack_sessions" => (
            store::card_ids_of_session(&state.stores.db, id).await?,
            vec![],
        ),
        _ => (vec![], vec![id]),
    };
    for card_id in cards {
        state.cluster.revoke(&card_activity(card_id)).await?;
        retire_card(state, card_id);
    }
    for pool_id in pools {
        state.cluster.revoke(&pool_activity(pool_id)).await?;
        retire_pool(state, pool_id);
    }
    Ok(())
}
