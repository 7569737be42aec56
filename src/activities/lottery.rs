//! Lottery boards: one per app. The 000 routes `v2/lottery/show.json` and `v2/lottery/do.json`,
//! the admin routes that configure the board, and the loader that starts the board's actor.
//!
//! The actor ([`LotteryActor`]) decides each draw in memory and commits it as one ledger change
//! (ticket, result, daily counter, prize stock counter). Its state is rebuilt here from the
//! database: today's draw results (`ledger_entries` of kind `lottery` with today's reference)
//! and the prizes' stock counters (`ledger_counters`).

use std::collections::HashSet;

use actix::Addr;
use actix_web::web;
use points_actors::activity::Retire;
use points_actors::lottery::{
    Draw, LotteryActor, LotteryConfig, LotteryState, Prize, ShowLottery, UserDraws,
    LOTTERY_DAILY_LIMIT_MAX, LOTTERY_KIND, LOTTERY_PRIZES_MAX, LOTTERY_RATE_SCALE,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::redpack::REWARD_TYPES;
use crate::activities::Moment;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::facades::giftpoint::{ok, ok_with, own_user, Gift, Reply, UserReq};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// Most points one draw may cost.
pub const LOTTERY_TICKET_MAX: i64 = 1_000_000;
/// Most units (points, 集分宝, cents, pieces) one prize may pay.
pub const LOTTERY_PRIZE_AMOUNT_MAX: i64 = 1_000_000_000;
/// Most units of stock one prize may hold.
pub const LOTTERY_PRIZE_STOCK_MAX: i64 = 1_000_000_000;
/// Highest prize level.
pub const LOTTERY_LEVEL_MAX: i64 = 1_000_000;
/// Longest prize name.
pub const LOTTERY_NAME_CHARS_MAX: usize = 64;
/// Longest prize icon URL.
pub const LOTTERY_ICON_CHARS_MAX: usize = 512;
/// Decimal places a rate may have: rates are whole millionths.
const RATE_DECIMALS_MAX: usize = 6;

// ---------------------------------------------------------------------------------------------
// Storage

/// A board as stored.
struct BoardRow {
    ticket: i64,
    daily_limit: i64,
    status: String,
    prizes: Vec<Prize>,
}

/// The app's board, if it has one.
async fn board_row(state: &AppState, app_id: &str) -> Result<Option<BoardRow>, sqlx::Error> {
    let db = &state.stores.db.read;
    let Some(row) =
        sqlx::query("SELECT ticket, daily_limit, status FROM lottery_boards WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(db)
            .await?
    else {
        return Ok(None);
    };
    let prizes = sqlx::query(
        "SELECT level, name, reward_type, icon, stock, amount, rate_ppm FROM lottery_prizes \
         WHERE app_id = $1 ORDER BY sort, level",
    )
    .bind(app_id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| {
        let rate: i64 = r.try_get(6)?;
        Ok(Prize {
            level: r.try_get(0)?,
            name: r.try_get(1)?,
            reward_type: r.try_get(2)?,
            icon: r.try_get(3)?,
            stock: r.try_get(4)?,
            amount: r.try_get(5)?,
            // The table's CHECK keeps it in 0..=1000000.
            rate: u32::try_from(rate).unwrap_or(0),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(BoardRow {
        ticket: row.try_get(0)?,
        daily_limit: row.try_get(1)?,
        status: row.try_get(2)?,
        prizes,
    }))
}

/// The values of ledger counters, in the order of `keys` (an absent counter is 0).
pub(crate) async fn counter_values(
    state: &AppState,
    keys: &[String],
) -> Result<Vec<i64>, AppError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT counter_key, count FROM ledger_counters WHERE counter_key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for k in keys {
        query = query.bind(k);
    }
    let rows = query.fetch_all(&state.stores.db.read).await?;
    let mut counts = std::collections::HashMap::new();
    for r in &rows {
        let key: String = r.try_get(0)?;
        let count: i64 = r.try_get(1)?;
        counts.insert(key, count);
    }
    Ok(keys
        .iter()
        .map(|k| counts.get(k).copied().unwrap_or(0))
        .collect())
}

/// Units granted so far of each prize: its stock counter.
async fn granted(state: &AppState, app_id: &str, prizes: &[Prize]) -> Result<Vec<i64>, AppError> {
    let keys: Vec<String> = prizes
        .iter()
        .map(|p| LotteryActor::stock_counter(app_id, p.level))
        .collect();
    counter_values(state, &keys).await
}

/// Today's committed draws per user, and the highest draw number each user used.
async fn draws_of_day(state: &AppState, app_id: &str, day: &str) -> Result<LotteryState, AppError> {
    let rows = sqlx::query(
        "SELECT user_id, idem_key FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND reference = $3",
    )
    .bind(app_id)
    .bind(LOTTERY_KIND)
    .bind(LotteryActor::day_reference(day))
    .fetch_all(&state.stores.db.read)
    .await?;
    let mut out = LotteryState {
        day: day.to_string(),
        ..LotteryState::default()
    };
    for r in &rows {
        let user_id: i64 = r.try_get(0)?;
        let key: String = r.try_get(1)?;
        // The key ends with the user's draw number: `lottery:<app>:<day>:<user>:<n>`.
        let number = key
            .rsplit(':')
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        let user: &mut UserDraws = out.users.entry(user_id).or_default();
        user.used += 1;
        user.last_number = user.last_number.max(number);
    }
    Ok(out)
}

/// The app's board actor, started from the database on first use.
async fn board_actor(state: &AppState, app_id: &str) -> Result<Addr<LotteryActor>, AppError> {
    state
        .activities
        .lotteries
        .get_or_start(&app_id.to_string(), || async {
            let board = board_row(state, app_id)
                .await?
                .filter(|b| b.status != "30")
                .ok_or_else(|| AppError::NotFound("lottery board".into()))?;
            let day = Moment::now(&state.clock).day;
            let mut today = draws_of_day(state, app_id, &day).await?;
            today.granted = granted(state, app_id, &board.prizes).await?;
            let config = LotteryConfig {
                app_id: app_id.to_string(),
                ticket: board.ticket,
                daily_limit: board.daily_limit,
                open: board.status == "10",
                prizes: board.prizes,
            };
            Ok::<_, AppError>(LotteryActor::new(config, today, state.ledger.clone()))
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// 000 routes

/// A prize as the board shows it.
#[derive(Serialize, ToSchema)]
pub struct LotteryPrizeItem {
    pub level: i64,
    pub name: String,
    pub reward_type: String,
    pub icon: String,
}

/// The prize a draw won.
#[derive(Serialize, ToSchema)]
pub struct LotteryDrawData {
    pub level: i64,
    pub name: String,
    pub reward_type: String,
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let actor = board_actor(&state, &caller.session.app_id).await?;
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
            level: p.level,
            name: p.name,
            reward_type: p.reward_type,
            icon: p.icon,
        })
        .collect();
    Ok(ok_with(
        json!(items),
        &[
            ("left_times", json!(view.left_times)),
            ("ticket", json!(view.ticket)),
        ],
    ))
}

async fn draw(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let app_id = caller.session.app_id.clone();
    let actor = board_actor(&state, &app_id).await?;
    let expires_at = points::default_expiry(&state, &app_id).await?;
    let result = actor
        .send(Draw {
            user_id: caller.session.user_id,
            day: Moment::now(&state.clock).day,
            expires_at,
        })
        .await?
        .map_err(AppError::from)?;
    Ok(match result.prize {
        Some(p) => ok_with(
            json!(LotteryDrawData {
                level: p.level,
                name: p.name,
                reward_type: p.reward_type,
            }),
            &[("is_reward", json!(true))],
        ),
        None => ok_with(json!([]), &[("is_reward", json!(false))]),
    })
}

// ---------------------------------------------------------------------------------------------
// Admin routes

/// A board's configuration.
#[derive(Deserialize, ToSchema)]
pub struct LotteryBoardReq {
    /// Default `default`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Points per draw, 0 or more.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub ticket: Option<i64>,
    /// Draws per user per business day, at least 1.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub daily_limit: Option<i64>,
    /// `10` on shelf (default), `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    pub prizes: Option<Vec<LotteryPrizeReq>>,
}

/// One prize of a board's configuration.
#[derive(Deserialize, ToSchema)]
pub struct LotteryPrizeReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub icon: Option<String>,
    /// Unique on the board.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub level: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `积分`, `集分宝`, `现金红包`, `电子权益` or `实物`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub reward_type: Option<String>,
    /// Total stock over the board's life (granted units count against it).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sum: Option<i64>,
    /// Units paid per win.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub amount: Option<i64>,
    /// Chance of being drawn: a number or decimal string in [0, 1] with at most 6 decimals.
    #[schema(value_type = f64)]
    pub rate: Option<Value>,
}

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct LotteryQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// A stored prize with its stock.
#[derive(Serialize, ToSchema)]
pub struct LotteryPrizeAdminView {
    pub level: i64,
    pub name: String,
    pub reward_type: String,
    pub icon: String,
    /// Total stock.
    pub sum: i64,
    pub amount: i64,
    pub rate: f64,
    /// The rate in millionths, exact.
    pub rate_ppm: u32,
    /// Units granted (committed).
    pub granted: i64,
    pub remaining: i64,
}

/// A stored board.
#[derive(Serialize, ToSchema)]
pub struct LotteryBoardAdminView {
    pub app_id: String,
    pub ticket: i64,
    pub daily_limit: i64,
    pub status: String,
    pub prizes: Vec<LotteryPrizeAdminView>,
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

fn text_field(v: Option<String>, field: &str, max: usize) -> Result<String, AppError> {
    let v = v
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::missing(field))?;
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "{field} must be 1-{max} printable characters"
        )));
    }
    Ok(v)
}

fn ranged(v: Option<i64>, field: &str, min: i64, max: i64) -> Result<i64, AppError> {
    let v = v.ok_or_else(|| AppError::missing(field))?;
    if !(min..=max).contains(&v) {
        return Err(AppError::invalid(format!(
            "{field} must be between {min} and {max}"
        )));
    }
    Ok(v)
}

/// Checks a whole board; refuses anything a draw could not honour.
fn parse_board(p: LotteryBoardReq) -> Result<(i64, i64, String, Vec<Prize>), AppError> {
    let ticket = ranged(p.ticket.or(Some(0)), "ticket", 0, LOTTERY_TICKET_MAX)?;
    let daily_limit = ranged(p.daily_limit, "daily_limit", 1, LOTTERY_DAILY_LIMIT_MAX)?;
    let status = p.status.unwrap_or_else(|| "10".into());
    if !["10", "20", "30"].contains(&status.as_str()) {
        return Err(AppError::invalid("status must be 10, 20 or 30"));
    }
    let raw = p.prizes.ok_or_else(|| AppError::missing("prizes"))?;
    if raw.is_empty() || raw.len() > LOTTERY_PRIZES_MAX {
        return Err(AppError::invalid(format!(
            "prizes must hold 1-{LOTTERY_PRIZES_MAX} prizes"
        )));
    }
    let mut levels = HashSet::new();
    let mut prizes = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("prizes[{i}].{field}");
        let level = ranged(p.level, &at("level"), 0, LOTTERY_LEVEL_MAX)?;
        if !levels.insert(level) {
            return Err(AppError::invalid(format!(
                "prize level {level} appears twice"
            )));
        }
        let name = text_field(p.name, &at("name"), LOTTERY_NAME_CHARS_MAX)?;
        let reward_type = p
            .reward_type
            .ok_or_else(|| AppError::missing(&at("reward_type")))?;
        if !REWARD_TYPES.contains(&reward_type.as_str()) {
            return Err(AppError::invalid(format!(
                "{} must be one of {}",
                at("reward_type"),
                REWARD_TYPES.join(", ")
            )));
        }
        let icon = p.icon.unwrap_or_default();
        if icon.chars().count() > LOTTERY_ICON_CHARS_MAX {
            return Err(AppError::invalid(format!(
                "{} is longer than {LOTTERY_ICON_CHARS_MAX} characters",
                at("icon")
            )));
        }
        let stock = ranged(p.sum, &at("sum"), 0, LOTTERY_PRIZE_STOCK_MAX)?;
        let amount = ranged(p.amount, &at("amount"), 0, LOTTERY_PRIZE_AMOUNT_MAX)?;
        // A zero amount only makes sense for a "thanks for playing" slot, which has no stock.
        if amount == 0 && stock > 0 {
            return Err(AppError::invalid(format!(
                "{} must be at least 1 for a prize with stock",
                at("amount")
            )));
        }
        let rate = p.rate.ok_or_else(|| AppError::missing(&at("rate")))?;
        let rate =
            parse_rate(&rate).map_err(|e| AppError::invalid(format!("{}: {e}", at("rate"))))?;
        prizes.push(Prize {
            level,
            name,
            reward_type,
            icon,
            stock,
            amount,
            rate,
        });
    }
    let total: u64 = prizes.iter().map(|p| u64::from(p.rate)).sum();
    if total != u64::from(LOTTERY_RATE_SCALE) {
        return Err(AppError::invalid(format!(
            "the prizes' rates must add up to exactly 1 (they add up to {})",
            total as f64 / f64::from(LOTTERY_RATE_SCALE)
        )));
    }
    Ok((ticket, daily_limit, status, prizes))
}

fn app_of(raw: Option<String>) -> String {
    raw.filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The stored board with its committed stock, for operators.
async fn admin_view(state: &AppState, app_id: &str) -> Result<LotteryBoardAdminView, AppError> {
    let board = board_row(state, app_id)
        .await?
        .ok_or_else(|| AppError::NotFound("lottery board".into()))?;
    let granted = granted(state, app_id, &board.prizes).await?;
    let prizes = board
        .prizes
        .into_iter()
        .zip(granted)
        .map(|(p, g)| LotteryPrizeAdminView {
            remaining: (p.stock - g).max(0),
            granted: g,
            rate: f64::from(p.rate) / f64::from(LOTTERY_RATE_SCALE),
            rate_ppm: p.rate,
            level: p.level,
            name: p.name,
            reward_type: p.reward_type,
            icon: p.icon,
            sum: p.stock,
            amount: p.amount,
        })
        .collect();
    Ok(LotteryBoardAdminView {
        app_id: app_id.to_string(),
        ticket: board.ticket,
        daily_limit: board.daily_limit,
        status: board.status,
        prizes,
    })
}

async fn save_board(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<LotteryBoardReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id.clone());
    let (ticket, daily_limit, status, prizes) = parse_board(p)?;
    crate::auth::app(&state, &app_id).await?;
    let now = now_ms();
    let mut tx = state.stores.db.write.begin().await?;
    sqlx::query(
        "INSERT INTO lottery_boards (app_id, ticket, daily_limit, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (app_id) DO UPDATE SET \
         ticket = excluded.ticket, daily_limit = excluded.daily_limit, status = excluded.status, \
         updated_at = excluded.updated_at",
    )
    .bind(&app_id)
    .bind(ticket)
    .bind(daily_limit)
    .bind(&status)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM lottery_prizes WHERE app_id = $1")
        .bind(&app_id)
        .execute(&mut *tx)
        .await?;
    for (sort, prize) in prizes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO lottery_prizes (app_id, level, name, reward_type, icon, stock, amount, \
             rate_ppm, sort) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&app_id)
        .bind(prize.level)
        .bind(&prize.name)
        .bind(&prize.reward_type)
        .bind(&prize.icon)
        .bind(prize.stock)
        .bind(prize.amount)
        .bind(i64::from(prize.rate))
        .bind(sort as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // The running actor holds the old board: stop it once its pending draws are answered, so
    // the next draw starts one from the new configuration.
    if let Some(old) = state.activities.lotteries.forget(&app_id) {
        // An error only means the actor already stopped.
        let _ = old.send(Retire).await;
    }
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

async fn get_board(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<LotteryQuery, Gift>,
) -> Reply {
    let app_id = app_of(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

/// Registers the lottery routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 lottery";
    r.add::<UserReq, Vec<LotteryPrizeItem>, _, _>(
        RouteDoc {
            path: "/v2/lottery/show.json",
            methods: GET_POST,
            tag,
            summary: "抽奖页面: the app's lottery board",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `data`: the prizes `[{level, name, reward_type, icon}]`; beside `data`: `left_times` (draws the caller has left today, business day) and `ticket` (points per draw). 404 when the app has no board.",
        },
        show,
    );
    r.add::<UserReq, LotteryDrawData, _, _>(
        RouteDoc {
            path: "/v2/lottery/do.json",
            methods: GET_POST,
            tag,
            summary: "抽奖: draw once",
            description: "Pays `ticket` points and draws a prize by its rate with a cryptographically secure generator. A drawn prize whose stock is gone (or a slot without stock) yields no reward: `data` `[]` and `is_reward: false`; a won prize answers `data` `{level, name, reward_type}` and `is_reward: true` (`积分` prizes are credited at once, other reward types become fulfilment orders). The ticket, the result, the daily count and the prize's stock are committed together or not at all. Refusals (nothing changed): 402 not enough points for the ticket, 410 no draws left today or board off shelf, 404 no board, 429 busy, 401/403 token or user mismatch.",
        },
        draw,
    );
    let tag = "admin lottery";
    r.add::<LotteryBoardReq, LotteryBoardAdminView, _, _>(
        RouteDoc {
            path: "/admin/lottery",
            methods: POST,
            tag,
            summary: "Create or replace an app's lottery board",
            description: "`X-Admin-Key` required. `ticket` points per draw (0-1000000), `daily_limit` draws per user per day (1-1000), `status` 10/20/30, `prizes` 1-32 of `{icon, level, name, reward_type, sum, amount, rate}`: `level` unique, `sum` the total stock over the board's life (units already granted of a level count against it), `amount` units per win (0 only for a slot with no stock), `rate` a number or decimal string in [0, 1] with at most 6 decimals. The rates must add up to exactly 1. Any violation answers 400 and changes nothing. The running board picks the new configuration up at once.",
        },
        save_board,
    );
    r.add::<LotteryQuery, LotteryBoardAdminView, _, _>(
        RouteDoc {
            path: "/admin/lottery",
            methods: GET,
            tag,
            summary: "An app's lottery board with its remaining stock",
            description: "`X-Admin-Key` required; `app_id` defaults to `default`. Each prize shows `granted` (committed wins) and `remaining`. 404 when the app has no board.",
        },
        get_board,
    );
}

#[cfg(test)]
mod tests {
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
