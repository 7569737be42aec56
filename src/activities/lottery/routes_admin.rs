//! The lottery's admin routes: `GET`/`POST /admin/lottery`, with the board's validation.

use std::collections::HashSet;

use actix_web::web;
use points_actors::lottery::{
    Prize, LOTTERY_DAILY_LIMIT_MAX, LOTTERY_PRIZES_MAX, LOTTERY_RATE_SCALE,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{
    granted, parse_rate, replace_board, store, LOTTERY_ICON_CHARS_MAX, LOTTERY_LABEL_CHARS_MAX,
    LOTTERY_NAME_CHARS_MAX, LOTTERY_PRIZE_AMOUNT_MAX, LOTTERY_PRIZE_STOCK_MAX, LOTTERY_TICKET_MAX,
};
use crate::dialect::gift::{ok, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::Status;
use crate::dialect::{GET, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;
use points_actors::ledger::REWARD_TYPES;

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
    /// The prize's level as players see it (`一等奖`, `二等奖` ...; a number is read as its
    /// digits): 1-32 printable characters, unique on the board.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub level: Option<String>,
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
    /// The label players see.
    pub level: String,
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
    let status = p.status.unwrap_or_else(|| Status::On.code().into());
    if Status::parse(&status).is_none() {
        return Err(AppError::invalid("status must be 10, 20 or 30"));
    }
    let raw = p.prizes.ok_or_else(|| AppError::missing("prizes"))?;
    if raw.is_empty() || raw.len() > LOTTERY_PRIZES_MAX {
        return Err(AppError::invalid(format!(
            "prizes must hold 1-{LOTTERY_PRIZES_MAX} prizes"
        )));
    }
    let mut labels = HashSet::new();
    let mut prizes = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("prizes[{i}].{field}");
        let label = text_field(p.level, &at("level"), LOTTERY_LABEL_CHARS_MAX)?;
        if !labels.insert(label.clone()) {
            return Err(AppError::invalid(format!(
                "prize level {label:?} appears twice"
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
            // The slot is chosen when the board is saved (`assign_slots`).
            level: 0,
            label,
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

/// Gives each prize its slot, the number its stock counter is named by: the slot the board
/// already gave its label, so a saved board keeps counting what each prize granted; for a new
/// label, a number derived from the label itself, so a label removed and added again finds its
/// counter again.
fn assign_slots(prizes: &mut [Prize], stored: &[Prize]) -> Result<(), AppError> {
    let mut taken = HashSet::new();
    for prize in prizes.iter_mut() {
        prize.level = stored
            .iter()
            .find(|s| s.label == prize.label)
            .map_or_else(|| label_slot(&prize.label), |s| s.level);
        if !taken.insert(prize.level) {
            return Err(AppError::invalid(format!(
                "prize level {:?} cannot be told apart from another; rename it",
                prize.label
            )));
        }
    }
    Ok(())
}

/// A stable number for a label, above every slot a number label was ever given.
fn label_slot(label: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(label.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // 62 bits: positive, and far above the small numbers boards saved before labels used.
    (i64::from_be_bytes(bytes) & ((1 << 62) - 1)) | (1 << 61)
}

/// The stored board with its committed stock, for operators.
async fn admin_view(state: &AppState, app_id: &str) -> Result<LotteryBoardAdminView, AppError> {
    let board = store::board_row(&state.stores.db, app_id)
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
            level: p.label,
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
    let app_id = AppId::text(p.app_id.clone());
    let (ticket, daily_limit, status, mut prizes) = parse_board(p)?;
    crate::auth::app(&state, &app_id).await?;
    let stored = store::board_row(&state.stores.db, &app_id)
        .await?
        .map(|b| b.prizes)
        .unwrap_or_default();
    assign_slots(&mut prizes, &stored)?;
    replace_board(&state, &app_id, ticket, daily_limit, &status, &prizes).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

async fn get_board(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<LotteryQuery, Gift>,
) -> Reply {
    let app_id = AppId::text(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

/// Registers the lottery's admin routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "admin lottery";
    r.add::<LotteryBoardReq, LotteryBoardAdminView, _, _>(
        RouteDoc {
            path: "/admin/lottery",
            methods: POST,
            tag,
            summary: "Create or replace an app's lottery board",
            description: "`X-Admin-Key` required. `ticket` points per draw (0-1000000), `daily_limit` draws per user per day (1-1000), `status` 10/20/30, `prizes` 1-32 of `{icon, level, name, reward_type, sum, amount, rate}`: `level` the label players see (`一等奖`; 1-32 printable characters, a number is read as its digits), unique on the board; the board's order is the list's order; `sum` the total stock over the board's life (units already granted of a level count against it), `amount` units per win (0 only for a slot with no stock), `rate` a number or decimal string in [0, 1] with at most 6 decimals. The rates must add up to exactly 1. Any violation answers 400 and changes nothing. The running board picks the new configuration up at once.",
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
