//! The prize shop: a catalog per app whose prizes users exchange for points.
//!
//! Routes: 001's C-end ops `getPrizedsList`, `exchangePrize`, `getPointsRule` (and the client's
//! `getRule`), its server ops `savePrize`, `getPrizeById`, `savePointsRule`, its custom op
//! `send_prize`, and the admin routes under `/admin/shop/`.
//!
//! Only the catalog and the rule text live in this module's tables. An exchange is ONE ledger
//! change of kind `exchange` with reference `shop:<prize id>`: it debits the prize's cost, takes
//! one unit of stock (counter `shop:<app>:prize:<id>`, ceiling the prize's `total`) and one unit
//! of the user's allowance for the current period (counter
//! `shop:<app>:prize:<id>:user:<user>:<period>`, ceiling the prize's `limitCount`), and for goods
//! and virtual goods stores a fulfilment order — all in one commit or not at all. So no prize is
//! oversold and no allowance exceeded however many requests race, and the exchange records are
//! the ledger entries themselves, joined with their orders.
//!
//! Prize types, as 001 names them: `goods` (实物, shipped: the order carries address, name, phone
//! and postal code), `virtualGoods` (电子权益, delivered by the fulfilment outbox) and `integral`
//! (a points package: the exchange pays the cost and credits the prize's `points` in the same
//! change — the cost as a leg applied first, so it must be affordable from the balance alone).
//!
//! Layout: this file holds the catalog's rules (validation, saving, views, the period an
//! exchange counts in); `exchange.rs` builds the ledger changes of exchanges and deliveries;
//! `store.rs` holds the catalog and rule-text SQL, `crate::store::ledger::shop` the exchange
//! records' ledger query; `routes_center.rs` serves the 001 ops and `routes_admin.rs` the admin
//! routes.

use actix_web::web;
use chrono::Datelike;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::{now_ms, BizClock};
use crate::dialect::AppId;
use crate::dialect::Status;
use crate::error::AppError;
use crate::http::{lenient, ApiDoc, Page};
use crate::points::counter_values;
use crate::state::AppState;
use crate::store::ledger::shop::ShopExchangeRow;

mod exchange;
mod routes_admin;
mod routes_center;
mod store;

pub use routes_admin::{ExchangeQuery, ExchangeRecord, PrizeStatusReq, ShopAppQuery};
pub use routes_center::{
    ExchangeReq, ExchangeResult, PrizeItem, PrizeQuery, RuleView, SaveRuleReq, SendPrizeReq,
    SendPrizeResult,
};
use store::Prize;

/// Ledger kind of every exchange entry (and of `send_prize`).
pub const SHOP_EXCHANGE_KIND: &str = "exchange";
/// Prize types, as 001 names them.
pub const PRIZE_GOODS: &str = "goods";
pub const PRIZE_VIRTUAL: &str = "virtualGoods";
pub const PRIZE_INTEGRAL: &str = "integral";
pub const PRIZE_TYPES: &[&str] = &[PRIZE_GOODS, PRIZE_VIRTUAL, PRIZE_INTEGRAL];
/// Per-user exchange periods, as 001 names them.
pub const EXCHANGE_LIMITS: &[&str] = &["day", "week", "month", "once"];
/// Fulfilment reward types of the two prize types delivered outside the ledger.
const REWARD_GOODS: &str = "实物";
const REWARD_VIRTUAL: &str = "电子权益";

/// Most prizes one app's catalog lists (and holds on shelf or off).
pub const SHOP_PRIZES_MAX: i64 = 500;
/// Longest prize title (it becomes part of the ledger description).
pub const SHOP_TITLE_CHARS_MAX: usize = 64;
/// Longest prize description.
pub const SHOP_DESC_CHARS_MAX: usize = 1_000;
/// Longest icon URL.
pub const SHOP_ICON_CHARS_MAX: usize = 512;
/// Longest business prize id (`prizeId`).
pub const SHOP_PRIZE_KEY_CHARS_MAX: usize = 64;
/// Most points one exchange may cost or credit.
pub const SHOP_POINTS_MAX: i64 = 100_000_000;
/// Most units of stock one prize may hold over its life.
pub const SHOP_STOCK_MAX: i64 = 1_000_000_000;
/// Most exchanges of one prize per user per period.
pub const SHOP_LIMIT_COUNT_MAX: i64 = 1_000;
/// Largest sort value.
pub const SHOP_SORT_MAX: i64 = 1_000_000;
/// Longest points rule text.
pub const SHOP_RULE_CHARS_MAX: usize = 10_000;
/// Longest shipping address.
pub const SHOP_ADDRESS_CHARS_MAX: usize = 200;
/// Shortest shipping address that can be a real one.
pub const SHOP_ADDRESS_CHARS_MIN: usize = 4;
/// Longest recipient name.
pub const SHOP_NAME_CHARS_MAX: usize = 50;
/// Digits a phone number has, at least and at most (landlines with area code, mobiles, E.164).
pub const SHOP_PHONE_DIGITS_MIN: usize = 6;
pub const SHOP_PHONE_DIGITS_MAX: usize = 15;
/// Digits of a (mainland China) postal code.
pub const SHOP_POSTAL_CODE_DIGITS: usize = 6;

// ---------------------------------------------------------------------------------------------
// Catalog

impl Prize {
    /// The ledger reference of its exchanges.
    fn reference(&self) -> String {
        format!("shop:{}", self.id)
    }

    /// Its stock counter: units exchanged over its life.
    fn stock_key(&self) -> String {
        format!("shop:{}:prize:{}", self.app_id, self.id)
    }

    /// A user's allowance counter for the period `period`.
    fn user_key(&self, user_id: i64, period: &str) -> String {
        format!(
            "shop:{}:prize:{}:user:{user_id}:{period}",
            self.app_id, self.id
        )
    }
}

/// The period an exchange at `ms` counts in, in business time: the date, the ISO week (weeks
/// start on Monday), the month, or `once` for the prize's whole life.
pub fn period(clock: &BizClock, limit: &str, ms: i64) -> String {
    let local = clock.local(ms);
    match limit {
        "day" => local.format("%Y-%m-%d").to_string(),
        "week" => {
            let week = local.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        "month" => local.format("%Y-%m").to_string(),
        _ => "once".into(),
    }
}

/// How a request names a prize.
#[derive(Debug, Clone, Copy)]
enum PrizeRef<'a> {
    /// By `_id` (the client's `id`); a non-numeric value is tried as a `prizeId`.
    Id(&'a str),
    /// By `prizeId`; a value that names no prizeId is tried as an `_id`.
    Key(&'a str),
}

/// The app's prize named by `r`, deleted ones excluded.
async fn find_prize(
    state: &AppState,
    app_id: &str,
    r: PrizeRef<'_>,
) -> Result<Option<Prize>, AppError> {
    let by_id = |raw: &str| raw.trim().parse::<i64>().ok();
    let (first_id, key) = match r {
        PrizeRef::Id(raw) => (by_id(raw), raw.trim()),
        PrizeRef::Key(raw) => (None, raw.trim()),
    };
    let db = &state.stores.db;
    if let Some(id) = first_id {
        if let Some(prize) = store::prize_by_id(db, app_id, id).await? {
            return Ok(Some(prize));
        }
    }
    if let Some(prize) = store::prize_by_key(db, app_id, key).await? {
        return Ok(Some(prize));
    }
    if let (PrizeRef::Key(_), Some(id)) = (r, by_id(key)) {
        if let Some(prize) = store::prize_by_id(db, app_id, id).await? {
            return Ok(Some(prize));
        }
    }
    Ok(None)
}

async fn require_prize(state: &AppState, app_id: &str, r: PrizeRef<'_>) -> Result<Prize, AppError> {
    find_prize(state, app_id, r)
        .await?
        .ok_or_else(|| AppError::NotFound("prize".into()))
}

/// The app's points rule text: the saved one, or a sentence built from the app's points life.
async fn rule_text(state: &AppState, app_id: &str) -> Result<String, AppError> {
    let saved = store::saved_rule(&state.stores.db, app_id).await?;
    if let Some(text) = saved {
        return Ok(text);
    }
    let months = crate::auth::app(state, app_id)
        .await?
        .settings
        .expiry_months();
    Ok(if months > 0 {
        format!("积分自获得之日起{months}个自然月内有效，逾期自动失效；积分可在积分商城兑换奖品，兑换后不退还积分。")
    } else {
        "积分长期有效；积分可在积分商城兑换奖品，兑换后不退还积分。".into()
    })
}

/// Checks and saves the app's points rule text; answers it as saved.
async fn save_rule(
    state: &AppState,
    app_id: &str,
    rule_detail: Option<String>,
) -> Result<String, AppError> {
    let rule = rule_detail
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| AppError::missing("ruleDetail"))?;
    // Newlines are the point of a rule text; other control characters are not.
    if rule.chars().count() > SHOP_RULE_CHARS_MAX
        || rule
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(AppError::invalid(format!(
            "ruleDetail must be at most {SHOP_RULE_CHARS_MAX} printable characters"
        )));
    }
    crate::auth::app(state, app_id).await?;
    store::save_rule(&state.stores.db, app_id, &rule, now_ms()).await?;
    Ok(rule)
}

// ---------------------------------------------------------------------------------------------
// Validation

/// A trimmed text of at most `max` printable characters; empty counts as absent.
fn text(v: Option<String>, field: &str, max: usize) -> Result<Option<String>, AppError> {
    let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(Some(v))
}

fn ranged(v: i64, field: &str, min: i64, max: i64) -> Result<i64, AppError> {
    if !(min..=max).contains(&v) {
        return Err(AppError::invalid(format!(
            "{field} must be between {min} and {max}"
        )));
    }
    Ok(v)
}

fn one_of(v: String, field: &str, allowed: &[&str]) -> Result<String, AppError> {
    if !allowed.contains(&v.as_str()) {
        return Err(AppError::invalid(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        )));
    }
    Ok(v)
}

fn prize_key(raw: &str) -> Result<String, AppError> {
    let ok = !raw.is_empty()
        && raw.len() <= SHOP_PRIZE_KEY_CHARS_MAX
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(AppError::invalid(format!(
            "prizeId must be 1-{SHOP_PRIZE_KEY_CHARS_MAX} of [A-Za-z0-9_-]"
        )));
    }
    Ok(raw.to_string())
}

/// A prize as saved, before it is stored.
struct PrizeInput {
    key: Option<String>,
    title: String,
    desc: String,
    icon: String,
    face_value: i64,
    total: i64,
    kind: String,
    limit: String,
    limit_count: i64,
    points: i64,
    sort: i64,
    status: String,
}

/// Merges a save request onto the stored prize (or the defaults for a new one) and checks it.
fn merge(p: SavePrizeReq, old: Option<&Prize>) -> Result<PrizeInput, AppError> {
    let key = p.prize_id.map(|k| prize_key(k.trim())).transpose()?;
    let title = text(p.title, "title", SHOP_TITLE_CHARS_MAX)?
        .or_else(|| old.map(|o| o.title.clone()))
        .ok_or_else(|| AppError::missing("title"))?;
    let desc = match p.desc {
        Some(d) => text(Some(d), "desc", SHOP_DESC_CHARS_MAX)?.unwrap_or_default(),
        None => old.map(|o| o.desc.clone()).unwrap_or_default(),
    };
    let icon = match p.icon {
        Some(i) => text(Some(i), "icon", SHOP_ICON_CHARS_MAX)?.unwrap_or_default(),
        None => old.map(|o| o.icon.clone()).unwrap_or_default(),
    };
    let face_value = p
        .face_value
        .or(old.map(|o| o.face_value))
        .ok_or_else(|| AppError::missing("faceValue"))?;
    let face_value = ranged(face_value, "faceValue", 0, SHOP_POINTS_MAX)?;
    let total = p
        .total
        .or(old.map(|o| o.total))
        .ok_or_else(|| AppError::missing("total"))?;
    let total = ranged(total, "total", 0, SHOP_STOCK_MAX)?;
    let kind = p
        .kind
        .or(old.map(|o| o.kind.clone()))
        .ok_or_else(|| AppError::missing("type"))?;
    let kind = one_of(kind, "type", PRIZE_TYPES)?;
    let limit = p
        .exchange_limit
        .or(old.map(|o| o.limit.clone()))
        .unwrap_or_else(|| "once".into());
    let limit = one_of(limit, "exchangeLimit", EXCHANGE_LIMITS)?;
    let limit_count = p.limit_count.or(old.map(|o| o.limit_count)).unwrap_or(1);
    let limit_count = ranged(limit_count, "limitCount", 1, SHOP_LIMIT_COUNT_MAX)?;
    let points = p.points.or(old.map(|o| o.points)).unwrap_or(0);
    let points = ranged(points, "points", 0, SHOP_POINTS_MAX)?;
    if kind == PRIZE_INTEGRAL && points == 0 {
        return Err(AppError::invalid(
            "points must be at least 1 for an integral prize (the points it credits)",
        ));
    }
    let sort = p.sort.or(old.map(|o| o.sort)).unwrap_or(0);
    let sort = ranged(sort, "sort", 0, SHOP_SORT_MAX)?;
    let status = p
        .status
        .or(old.map(|o| o.status.clone()))
        .unwrap_or_else(|| Status::On.code().into());
    let status = one_of(status, "status", &Status::CODES)?;
    Ok(PrizeInput {
        key,
        title,
        desc,
        icon,
        face_value,
        total,
        kind,
        limit,
        limit_count,
        points,
        sort,
        status,
    })
}

/// Creates or updates a prize; answers it as stored.
async fn save_prize_row(state: &AppState, p: SavePrizeReq) -> Result<PrizeView, AppError> {
    let app_id = AppId::text(p.app_id.clone());
    crate::auth::app(state, &app_id).await?;
    let old = match (&p.id, &p.prize_id) {
        (Some(id), _) => Some(require_prize(state, &app_id, PrizeRef::Id(id)).await?),
        (None, Some(key)) => find_prize(state, &app_id, PrizeRef::Key(key)).await?,
        (None, None) => None,
    };
    let input = merge(p, old.as_ref())?;
    let now = now_ms();
    let db = &state.stores.db;
    let result = match &old {
        Some(old) => store::update_prize(
            db,
            old.id,
            input.key.clone().unwrap_or_else(|| old.key.clone()),
            &input,
            now,
        )
        .await
        .map(|_| old.id),
        None => {
            let count = store::prize_count(db, &app_id).await?;
            if count >= SHOP_PRIZES_MAX {
                return Err(AppError::LimitReached(format!(
                    "an app holds at most {SHOP_PRIZES_MAX} prizes"
                )));
            }
            // Without a business id the prize gets a random one: a numeric default could
            // collide with a later prize's chosen `prizeId`.
            let key = input.key.clone().unwrap_or_else(|| {
                let id = uuid::Uuid::new_v4().simple().to_string();
                format!("p{}", &id[..12])
            });
            store::insert_prize(db, &app_id, key, &input, now).await
        }
    };
    let id: i64 = match result {
        Ok(id) => id,
        Err(e) if store::is_unique_violation(&e) => {
            return Err(AppError::Conflict(
                "prizeId is already used by another prize of the app".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // Read back from the writer (a prize just saved as deleted included), so the answer is
    // what was stored.
    let prize = store::prize_written(db, id).await?;
    view_of(state, prize).await
}

/// Sets a prize's shelf status; answers the prize with it.
async fn set_prize_status(
    state: &AppState,
    app_id: &str,
    id: &str,
    status: String,
) -> Result<PrizeView, AppError> {
    let prize = require_prize(state, app_id, PrizeRef::Id(id)).await?;
    store::set_status(&state.stores.db, prize.id, &status, now_ms()).await?;
    let mut view = view_of(state, prize).await?;
    view.status = status;
    Ok(view)
}

// ---------------------------------------------------------------------------------------------
// Views

/// A prize as operators see it.
#[derive(Serialize, ToSchema)]
pub struct PrizeView {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "prizeId")]
    pub prize_id: String,
    pub title: String,
    pub desc: String,
    pub icon: String,
    /// Points one exchange costs.
    #[serde(rename = "faceValue")]
    pub face_value: i64,
    /// Units over the prize's life.
    pub total: i64,
    /// Units exchanged (committed).
    pub exchanged: i64,
    #[serde(rename = "totalRemaining")]
    pub total_remaining: i64,
    /// `goods`, `virtualGoods` or `integral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `day`, `week`, `month` or `once`.
    #[serde(rename = "exchangeLimit")]
    pub exchange_limit: String,
    /// Exchanges per user per period.
    #[serde(rename = "limitCount")]
    pub limit_count: i64,
    /// Points an `integral` prize credits.
    pub points: i64,
    pub sort: i64,
    /// `10` on shelf, `20` off shelf.
    pub status: String,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

fn view(state: &AppState, p: Prize, exchanged: i64) -> PrizeView {
    PrizeView {
        id: p.id.to_string(),
        prize_id: p.key,
        title: p.title,
        desc: p.desc,
        icon: p.icon,
        face_value: p.face_value,
        total: p.total,
        exchanged,
        total_remaining: (p.total - exchanged).max(0),
        kind: p.kind,
        exchange_limit: p.limit,
        limit_count: p.limit_count,
        points: p.points,
        sort: p.sort,
        status: p.status,
        created_at: state.clock.format_datetime(p.created_at),
        updated_at: state.clock.format_datetime(p.updated_at),
    }
}

async fn view_of(state: &AppState, p: Prize) -> Result<PrizeView, AppError> {
    let exchanged = counter_values(state, &[p.stock_key()]).await?;
    Ok(view(state, p, exchanged.first().copied().unwrap_or(0)))
}

/// The app's prizes, on and off shelf, with their stock (the admin list).
async fn catalog(state: &AppState, app_id: &str) -> Result<Vec<PrizeView>, AppError> {
    crate::auth::app(state, app_id).await?;
    let prizes = store::prizes_of(&state.stores.db, app_id, true).await?;
    let keys: Vec<String> = prizes.iter().map(Prize::stock_key).collect();
    let counts = counter_values(state, &keys).await?;
    Ok(prizes
        .into_iter()
        .zip(counts)
        .map(|(p, c)| view(state, p, c))
        .collect())
}

/// A prize on shelf as the caller sees it.
struct Listed {
    prize: Prize,
    /// Units left.
    remaining: i64,
    /// The caller's exchanges of it in the current period.
    mine: i64,
    /// The caller's allowance for the current period is used up.
    exchanged: bool,
}

/// The app's prizes on shelf for the caller: those already exchanged, sold out or costing more
/// than the caller's balance last; otherwise catalog order.
async fn listing(state: &AppState, app_id: &str, user_id: i64) -> Result<Vec<Listed>, AppError> {
    let prizes = store::prizes_of(&state.stores.db, app_id, false).await?;
    let now = now_ms();
    let keys: Vec<String> = prizes
        .iter()
        .flat_map(|p| {
            [
                p.stock_key(),
                p.user_key(user_id, &period(&state.clock, &p.limit, now)),
            ]
        })
        .collect();
    let counts = counter_values(state, &keys).await?;
    let balance = state.stores.ledger.balance(user_id).await?;
    let mut items: Vec<(bool, Listed)> = prizes
        .into_iter()
        .zip(counts.chunks(2))
        .map(|(p, c)| {
            let (taken, mine) = (
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            );
            let remaining = (p.total - taken).max(0);
            let exchanged = mine >= p.limit_count;
            let last = exchanged || remaining == 0 || p.face_value > balance;
            let item = Listed {
                prize: p,
                remaining,
                mine,
                exchanged,
            };
            (last, item)
        })
        .collect();
    // Stable: within each group the catalog order (sort, id) stays.
    items.sort_by_key(|(last, _)| *last);
    Ok(items.into_iter().map(|(_, i)| i).collect())
}

/// The app's exchange records, newest first: of the prize with `_id` `id`, or of all prizes.
async fn exchange_rows(
    state: &AppState,
    app_id: &str,
    id: Option<String>,
    page: &Page,
) -> Result<Vec<ShopExchangeRow>, AppError> {
    crate::auth::app(state, app_id).await?;
    let reference = match id {
        Some(id) => {
            let prize = require_prize(state, app_id, PrizeRef::Id(&id)).await?;
            Some(prize.reference())
        }
        None => None,
    };
    Ok(crate::store::ledger::shop::exchange_entries(
        &state.stores.db,
        app_id,
        SHOP_EXCHANGE_KIND,
        reference,
        page.limit,
        page.offset,
    )
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Requests the 001 server op and the admin route share

/// A prize to create or update. 001 writes the fields in camelCase; the admin route also takes
/// them in snake_case.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavePrizeReq {
    /// Default `default`.
    #[serde(
        default,
        rename = "app_id",
        alias = "appId",
        deserialize_with = "lenient::opt_string"
    )]
    pub app_id: Option<String>,
    /// `_id` of the prize to update (also `id`); absent creates one (or updates the prize
    /// whose `prizeId` is given).
    #[serde(
        default,
        rename = "_id",
        alias = "id",
        deserialize_with = "lenient::opt_string"
    )]
    pub id: Option<String>,
    /// Business id, 1-64 of `[A-Za-z0-9_-]`, unique in the app; generated when absent.
    #[serde(default, alias = "prize_id", deserialize_with = "lenient::opt_string")]
    pub prize_id: Option<String>,
    /// 1-64 characters.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub desc: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub icon: Option<String>,
    /// Points per exchange, 0-100000000.
    #[serde(default, alias = "face_value", deserialize_with = "lenient::opt_i64")]
    pub face_value: Option<i64>,
    /// Units over the prize's life, 0-1000000000; exchanged units count against it.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub total: Option<i64>,
    /// `goods`, `virtualGoods` or `integral`.
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    /// `day`, `week`, `month` or `once` (default `once`).
    #[serde(
        default,
        alias = "exchange_limit",
        deserialize_with = "lenient::opt_string"
    )]
    pub exchange_limit: Option<String>,
    /// Exchanges per user per period, 1-1000 (default 1).
    #[serde(default, alias = "limit_count", deserialize_with = "lenient::opt_i64")]
    pub limit_count: Option<i64>,
    /// Points an `integral` prize credits (required for it, at least 1).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub points: Option<i64>,
    /// Catalog order, ascending (default 0).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    /// `10` on shelf (default), `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the shop's 001 ops and admin routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_center::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_business_time() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        // 2026-11-29 23:30 Shanghai (a Sunday) is 15:30 UTC.
        let sunday = 1_795_966_200_000;
        assert_eq!(period(&clock, "day", sunday), "2026-11-29");
        assert_eq!(period(&clock, "week", sunday), "2026-W48");
        assert_eq!(period(&clock, "month", sunday), "2026-11");
        assert_eq!(period(&clock, "once", sunday), "once");
        // One hour later it is Monday 2026-11-30 in business time: a new ISO week.
        let monday = sunday + 3_600_000;
        assert_eq!(period(&clock, "day", monday), "2026-11-30");
        assert_eq!(period(&clock, "week", monday), "2026-W49");
    }
}
