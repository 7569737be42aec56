//! The 000 red-packet routes (`/v2/redpack/*`): request and answer shapes, handlers, route docs.

use std::collections::BTreeMap;

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{cards_left, grab_card, grab_pool, radio_lines, require, show_pool, store};
use crate::clock::Moment;
use crate::dialect::gift::{ok, own_user, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::Status;
use crate::dialect::GET_POST;
use crate::error::AppError;
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

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

async fn show(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> Reply {
    let app_id = AppId::text_of(&p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    let day = Moment::now(&state.clock).day;
    let sessions = store::sessions_of(&state.stores.db, &app_id).await?;
    let cards = store::cards_of(&state.stores.db, &app_id).await?;
    let mut out = serde_json::Map::new();
    for session in sessions
        .into_iter()
        .filter(|s| s.status == Status::On.code())
    {
        let mut views = Vec::new();
        for card in cards
            .iter()
            .filter(|c| c.batch_id == session.id && c.status == Status::On.code())
        {
            let left = cards_left(&state, &app_id, card, &day).await?;
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
    grab_card(
        &state,
        &caller.session.app_id,
        &caller.session.platform_uid,
        card_id,
        batch_id,
    )
    .await?;
    Ok(ok(json!([])))
}

async fn radio(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> Reply {
    let app_id = AppId::text_of(&p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    let lines = radio_lines(&state, &app_id).await?;
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
    let changed =
        store::add_click(&state.stores.db, card_id, batch_id, &caller.session.app_id).await?;
    if changed == 0 {
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
    let amount = grab_pool(
        &state,
        &caller.session.app_id,
        &caller.session.platform_uid,
        pool_id,
    )
    .await?;
    Ok(ok(json!(PoolRobData { amount })))
}

async fn pool_show(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PoolReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let pool_id = require(p.id, "id")?;
    let (row, view) = show_pool(&state, &caller.session.app_id, pool_id).await?;
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

/// Registers the `/v2/redpack/*` routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
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
}
