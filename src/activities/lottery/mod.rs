//! Lottery boards: one per app. The 000 routes `v2/lottery/show.json` and `v2/lottery/do.json`,
//! the admin routes that configure the board, and the loader that starts the board's actor.
//!
//! The actor ([`LotteryActor`]) decides each draw in memory and commits it as one ledger change
//! (ticket, result, daily counter, prize stock counter). Its state is rebuilt here from the
//! database: today's draw results (`ledger_entries` of kind `lottery` with today's reference)
//! and the prizes' stock counters (`ledger_counters`).
//!
//! This file holds the board's logic; `store.rs` its SQL, `routes_gift.rs` the 000 routes and
//! `routes_admin.rs` the admin routes.

mod routes_admin;
mod routes_gift;
mod store;

use actix::Addr;
use actix_web::web;
use points_actors::activity::Retire;
use points_actors::lottery::{
    LotteryActor, LotteryConfig, LotteryState, Prize, UserDraws, LOTTERY_KIND, LOTTERY_RATE_SCALE,
};
use serde_json::Value;

use crate::clock::now_ms;
use crate::clock::Moment;
use crate::dialect::Status;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::state::AppState;

pub use routes_admin::{
    LotteryBoardAdminView, LotteryBoardReq, LotteryPrizeAdminView, LotteryPrizeReq, LotteryQuery,
};
pub use routes_gift::{LotteryDrawData, LotteryPrizeItem};

/// Most points one draw may cost.
pub const LOTTERY_TICKET_MAX: i64 = 1_000_000;
/// Most units (points, 集分宝, cents, pieces) one prize may pay.
pub const LOTTERY_PRIZE_AMOUNT_MAX: i64 = 1_000_000_000;
/// Most units of stock one prize may hold.
pub const LOTTERY_PRIZE_STOCK_MAX: i64 = 1_000_000_000;
/// Longest prize level label.
pub const LOTTERY_LABEL_CHARS_MAX: usize = 32;
/// Longest prize name.
pub const LOTTERY_NAME_CHARS_MAX: usize = 64;
/// Longest prize icon URL.
pub const LOTTERY_ICON_CHARS_MAX: usize = 512;
/// Decimal places a rate may have: rates are whole millionths.
const RATE_DECIMALS_MAX: usize = 6;

/// Units granted so far of each prize: its stock counter.
async fn granted(state: &AppState, app_id: &str, prizes: &[Prize]) -> Result<Vec<i64>, AppError> {
    let keys: Vec<String> = prizes
        .iter()
        .map(|p| LotteryActor::stock_counter(app_id, p.level))
        .collect();
    crate::points::counter_values(state, &keys).await
}

/// Today's committed draws per user, and the highest draw number each user used.
async fn draws_of_day(state: &AppState, app_id: &str, day: &str) -> Result<LotteryState, AppError> {
    let rows = crate::store::ledger::lottery::draws_of_day(
        &state.stores.db,
        app_id,
        LOTTERY_KIND,
        &LotteryActor::day_reference(day),
    )
    .await?;
    let mut out = LotteryState {
        day: day.to_string(),
        ..LotteryState::default()
    };
    for r in &rows {
        let user_id = r.user_id;
        let key = &r.idem_key;
        let number = LotteryActor::number_of_draw_key(key).unwrap_or(0);
        let user: &mut UserDraws = out.users.entry(user_id).or_default();
        user.used += 1;
        user.last_number = user.last_number.max(number);
    }
    Ok(out)
}

/// The lease name of an app's lottery board.
pub fn board_activity(app_id: &str) -> String {
    format!("lottery:{app_id}")
}

/// Stops the app's board actor on this node; the next use starts one from the database.
pub(crate) fn retire_board(state: &AppState, app_id: &str) {
    if let Some(old) = state.activities.lotteries.forget(&app_id.to_string()) {
        old.do_send(Retire);
    }
}

/// The app's board actor on the node that owns the board, started from the database on first
/// use, and the lease epoch it serves under; on another node, [`AppError::Elsewhere`].
pub(crate) async fn board_actor(
    state: &AppState,
    app_id: &str,
) -> Result<(Addr<LotteryActor>, i64), AppError> {
    let activity = board_activity(app_id);
    let epoch = state.cluster.serve(&activity).await?;
    if state.activities.epochs.is_stale(&activity, epoch) {
        retire_board(state, app_id);
    }
    let actor = state
        .activities
        .lotteries
        .get_or_start(&app_id.to_string(), || async {
            let board = store::board_row(&state.stores.db, app_id)
                .await?
                .filter(|b| b.status != Status::Deleted.code())
                .ok_or_else(|| AppError::NotFound("lottery board".into()))?;
            let day = Moment::now(&state.clock).day;
            let mut today = draws_of_day(state, app_id, &day).await?;
            today.granted = granted(state, app_id, &board.prizes).await?;
            let config = LotteryConfig {
                app_id: app_id.to_string(),
                ticket: board.ticket,
                daily_limit: board.daily_limit,
                open: board.status == Status::On.code(),
                prizes: board.prizes,
                fence: state.cluster.fence(&activity, epoch),
            };
            state.activities.epochs.record(&activity, epoch);
            Ok::<_, AppError>(LotteryActor::new(config, today, state.ledger.clone()))
        })
        .await?;
    Ok((actor, epoch))
}

/// Stores the app's new board, then retires the running actor so the next draw starts one from
/// the new configuration.
async fn replace_board(
    state: &AppState,
    app_id: &str,
    ticket: i64,
    daily_limit: i64,
    status: &str,
    prizes: &[Prize],
) -> Result<(), AppError> {
    let now = now_ms();
    store::save_board(
        &state.stores.db,
        app_id,
        ticket,
        daily_limit,
        status,
        prizes,
        now,
    )
    .await?;
    // The running actor holds the old board: stop it once its pending draws are answered, so
    // the next draw starts one from the new configuration; on another node, end its lease.
    state.cluster.revoke(&board_activity(app_id)).await?;
    if let Some(old) = state.activities.lotteries.forget(&app_id.to_string()) {
        // An error only means the actor already stopped.
        let _ = old.send(Retire).await;
    }
    Ok(())
}

/// Parses a rate into millionths, exactly: `0.125` and `"0.125"` are 125000.
pub fn parse_rate(v: &Value) -> Result<u32, String> {
    let scale = u64::from(LOTTERY_RATE_SCALE);
    let ppm: u64 = match v {
        Value::String(s) => {
            let s = s.trim();
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
            if s.is_empty() || (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac)
            {
                return Err(format!("{s:?} is not a decimal number between 0 and 1"));
            }
            if frac.len() > RATE_DECIMALS_MAX {
                return Err(format!("{s:?} has more than {RATE_DECIMALS_MAX} decimals"));
            }
            let int: u64 = if int.is_empty() {
                0
            } else if int.len() > 2 {
                return Err(format!("{s:?} is greater than 1"));
            } else {
                int.parse().map_err(|_| format!("{s:?} is not a number"))?
            };
            let padded = format!("{frac:0<width$}", width = RATE_DECIMALS_MAX);
            let frac: u64 = padded
                .parse()
                .map_err(|_| format!("{s:?} is not a number"))?;
            int * scale + frac
        }
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
            if !f.is_finite() || f < 0.0 {
                return Err(format!("{n} is negative"));
            }
            if f > 1.0 {
                return Err(format!("{n} is greater than 1"));
            }
            let scaled = f * f64::from(LOTTERY_RATE_SCALE);
            let whole = scaled.round();
            // A float rate is taken when it names a whole number of millionths (0.1 is
            // 100000.00000000001 millionths in binary); anything finer is refused, not rounded.
            if (scaled - whole).abs() > 1e-6 {
                return Err(format!("{n} has more than {RATE_DECIMALS_MAX} decimals"));
            }
            // In range: 0 <= whole <= 1000000.
            whole as u64
        }
        other => return Err(format!("expected a number, got {other}")),
    };
    if ppm > scale {
        return Err(format!("{v} is greater than 1"));
    }
    u32::try_from(ppm).map_err(|_| format!("{v} is greater than 1"))
}

/// Registers the lottery routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rates_parse_exactly() {
        for (v, ppm) in [
            (json!("0.5"), 500_000),
            (json!("1"), 1_000_000),
            (json!("1.000000"), 1_000_000),
            (json!(".25"), 250_000),
            (json!("0.000001"), 1),
            (json!(0.1), 100_000),
            (json!(0.7), 700_000),
            (json!(0), 0),
            (json!(1), 1_000_000),
        ] {
            assert_eq!(parse_rate(&v), Ok(ppm), "{v}");
        }
        for bad in [
            json!("-0.1"),
            json!(-0.1),
            json!("1.1"),
            json!(1.5),
            json!("0.0000001"),
            json!(0.0000001),
            json!("abc"),
            json!(""),
            json!("."),
            json!("100"),
            json!(true),
            json!([0.5]),
        ] {
            assert!(parse_rate(&bad).is_err(), "{bad}");
        }
    }
}
