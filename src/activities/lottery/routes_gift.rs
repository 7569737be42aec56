//! The lottery's 000 routes: `v2/lottery/show.json` and `v2/lottery/do.json`.

use actix_web::web;
use points_actors::activity::ActivityError;
use points_actors::lottery::{Draw, ShowLottery};
use points_actors::LedgerError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{board_activity, board_actor, retire_board};
use crate::clock::Moment;
use crate::dialect::gift::{ok_with, own_user, Gift, Reply, UserReq};
use crate::dialect::GET_POST;
use crate::error::AppError;
use crate::http::{ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// A prize as the board shows it.
#[derive(Serialize, ToSchema)]
pub struct LotteryPrizeItem {
    /// The prize's label (`一等奖`).
    pub level: String,
    pub name: String,
    pub reward_type: String,
    pub icon: String,
}

/// The prize a draw won.
#[derive(Serialize, ToSchema)]
pub struct LotteryDrawData {
    /// The prize's label (`一等奖`).
    pub level: String,
    pub name: String,
    pub reward_type: String,
}

/// Beside the prize table.
#[derive(Serialize, ToSchema)]
pub struct ShowBeside {
    /// Draws left today.
    pub left_times: i64,
    /// The caller's ticket count, as a string of digits.
    pub ticket: String,
}

/// A draw's data: the prize won, or `[]` when the draw won nothing.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum DrawData {
    Prize(LotteryDrawData),
    Nothing(Vec<crate::http::Empty>),
}

/// Beside a draw's data.
#[derive(Serialize, ToSchema)]
pub struct DrawBeside {
    pub is_reward: bool,
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let (actor, _) = board_actor(&state, &caller.session.app_id).await?;
    let view = actor
        .send(ShowLottery {
            user_id: Some(caller.session.user_id),
            day: Moment::now(&state.clock).day,
        })
        .await?;
    let items: Vec<LotteryPrizeItem> = view
        .prizes
        .into_iter()
        .map(|p| LotteryPrizeItem {
            level: p.label,
            name: p.name,
            reward_type: p.reward_type,
            icon: p.icon,
        })
        .collect();
    Ok(ok_with(
        json!(items),
        ShowBeside {
            left_times: view.left_times,
            // A string of digits, as the original answered it.
            ticket: view.ticket.to_string(),
        },
    ))
}

async fn draw(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let app_id = caller.session.app_id.clone();
    let expires_at = points::default_expiry(&state, &app_id).await?;
    let draw = || async {
        let (actor, epoch) = board_actor(&state, &app_id).await?;
        let answer = actor
            .send(Draw {
                user_id: caller.session.user_id,
                day: Moment::now(&state.clock).day,
                expires_at,
            })
            .await?;
        Ok::<_, AppError>((answer, epoch))
    };
    let (mut answer, epoch) = draw().await?;
    if matches!(
        answer,
        Err(ActivityError::Ledger(LedgerError::Fenced { .. }))
    ) {
        // The board moved to another node while this draw was decided: nothing was written;
        // step down and draw where the board is now.
        state.cluster.count_fenced();
        state
            .cluster
            .step_down_from(&board_activity(&app_id), epoch);
        retire_board(&state, &app_id);
        answer = draw().await?.0;
    }
    let result = answer.map_err(AppError::from)?;
    let is_reward = result.prize.is_some();
    let data = match result.prize {
        Some(p) => DrawData::Prize(LotteryDrawData {
            level: p.label,
            name: p.name,
            reward_type: p.reward_type,
        }),
        None => DrawData::Nothing(Vec::new()),
    };
    Ok(ok_with(json!(data), DrawBeside { is_reward }))
}

/// Registers the lottery's 000 routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 lottery";
    r.add_beside::<UserReq, Vec<LotteryPrizeItem>, ShowBeside, _, _>(
        RouteDoc {
            path: "/v2/lottery/show.json",
            methods: GET_POST,
            tag,
            summary: "抽奖页面: the app's lottery board",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `data`: the prizes `[{level, name, reward_type, icon}]`; `level` is the prize's label (`一等奖`); beside `data`: `left_times` (draws the caller has left today, business day, a number) and `ticket` (points per draw, a string of digits). 404 when the app has no board.",
        },
        show,
    );
    r.add_beside::<UserReq, DrawData, DrawBeside, _, _>(
        RouteDoc {
            path: "/v2/lottery/do.json",
            methods: GET_POST,
            tag,
            summary: "抽奖: draw once",
            description: "Pays `ticket` points and draws a prize by its rate with a cryptographically secure generator. A drawn prize whose stock is gone (or a slot without stock) yields no reward: `data` `[]` and `is_reward: false`; a won prize answers `data` `{level, name, reward_type}` and `is_reward: true` (`积分` prizes are credited at once, other reward types become fulfilment orders). The ticket, the result, the daily count and the prize's stock are committed together or not at all. Refusals (nothing changed): 402 not enough points for the ticket, 410 no draws left today or board off shelf, 404 no board, 429 busy, 401/403 token or user mismatch.",
        },
        draw,
    );
}
