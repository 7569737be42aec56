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

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Datelike;
use points_actors::activity::Refusal;
use points_actors::{Change, LedgerError, Leg, Limit, OrderSpec, Submit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::lottery::counter_values;
use crate::clock::{now_ms, BizClock};
use crate::error::{AppError, Failure};
use crate::facades::center::{self, Center};
use crate::facades::giftpoint::{self, Gift};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Page, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

type CenterReply = Result<HttpResponse, Failure<Center>>;

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
// Storage

/// A catalog row.
#[derive(Debug, Clone)]
struct Prize {
    id: i64,
    app_id: String,
    key: String,
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
    created_at: i64,
    updated_at: i64,
}

const PRIZE_COLUMNS: &str = "id, app_id, prize_key, title, description, icon, face_value, total, \
     prize_type, exchange_limit, limit_count, points, sort, status, created_at, updated_at";

fn prize_from_row(r: &sqlx::any::AnyRow) -> Result<Prize, sqlx::Error> {
    Ok(Prize {
        id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        key: r.try_get(2)?,
        title: r.try_get(3)?,
        desc: r.try_get(4)?,
        icon: r.try_get(5)?,
        face_value: r.try_get(6)?,
        total: r.try_get(7)?,
        kind: r.try_get(8)?,
        limit: r.try_get(9)?,
        limit_count: r.try_get(10)?,
        points: r.try_get(11)?,
        sort: r.try_get(12)?,
        status: r.try_get(13)?,
        created_at: r.try_get(14)?,
        updated_at: r.try_get(15)?,
    })
}

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

/// The app's prizes in catalog order; deleted ones (status 30) never, off-shelf ones only when
/// `with_off_shelf`.
async fn prizes_of(
    state: &AppState,
    app_id: &str,
    with_off_shelf: bool,
) -> Result<Vec<Prize>, AppError> {
    let statuses = if with_off_shelf {
        "('10', '20')"
    } else {
        "('10')"
    };
    let sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND status IN {statuses} \
         ORDER BY sort, id LIMIT {SHOP_PRIZES_MAX}"
    );
    let rows = sqlx::query(&sql)
        .bind(app_id)
        .fetch_all(&state.stores.db.read)
        .await?;
    Ok(rows.iter().map(prize_from_row).collect::<Result<_, _>>()?)
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
    let db = &state.stores.db.read;
    let by_id_sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND id = $2 AND status <> '30'"
    );
    let by_key_sql = format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE app_id = $1 AND prize_key = $2 \
         AND status <> '30'"
    );
    if let Some(id) = first_id {
        if let Some(row) = sqlx::query(&by_id_sql)
            .bind(app_id)
            .bind(id)
            .fetch_optional(db)
            .await?
        {
            return Ok(Some(prize_from_row(&row)?));
        }
    }
    if let Some(row) = sqlx::query(&by_key_sql)
        .bind(app_id)
        .bind(key)
        .fetch_optional(db)
        .await?
    {
        return Ok(Some(prize_from_row(&row)?));
    }
    if let (PrizeRef::Key(_), Some(id)) = (r, by_id(key)) {
        if let Some(row) = sqlx::query(&by_id_sql)
            .bind(app_id)
            .bind(id)
            .fetch_optional(db)
            .await?
        {
            return Ok(Some(prize_from_row(&row)?));
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
    let saved: Option<String> =
        sqlx::query_scalar("SELECT rule_detail FROM shop_rules WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&state.stores.db.read)
            .await?;
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

// ---------------------------------------------------------------------------------------------
// Validation

fn app_of(raw: Option<String>) -> String {
    raw.map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "default".into())
}

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

/// A phone number: digits with optional `+` in front and spaces or dashes between.
fn phone(raw: &str) -> Result<String, AppError> {
    let raw = raw.trim();
    let body = raw.strip_prefix('+').unwrap_or(raw);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let shape = body
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
    if !shape || !(SHOP_PHONE_DIGITS_MIN..=SHOP_PHONE_DIGITS_MAX).contains(&digits) {
        return Err(AppError::invalid(format!(
            "telNumber must be a phone number of {SHOP_PHONE_DIGITS_MIN}-{SHOP_PHONE_DIGITS_MAX} digits"
        )));
    }
    Ok(raw.to_string())
}

fn postal_code(raw: &str) -> Result<String, AppError> {
    let raw = raw.trim();
    if raw.len() != SHOP_POSTAL_CODE_DIGITS || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::invalid(format!(
            "postalCode must be {SHOP_POSTAL_CODE_DIGITS} digits"
        )));
    }
    Ok(raw.to_string())
}

/// Who receives an exchanged prize, checked.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Contact {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tel_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal_code: Option<String>,
}

/// Checks the contact fields: goods need address, name and phone (postal code optional); other
/// types take what they are given, checked the same way.
fn contact(p: &ExchangeReq, prize_type: &str) -> Result<Contact, AppError> {
    let goods = prize_type == PRIZE_GOODS;
    let need = |v: Option<String>, field: &str| -> Result<Option<String>, AppError> {
        match v {
            None if goods => Err(AppError::missing(field)),
            v => Ok(v),
        }
    };
    let address = need(
        text(p.address.clone(), "address", SHOP_ADDRESS_CHARS_MAX)?,
        "address",
    )?;
    if let Some(a) = &address {
        if a.chars().count() < SHOP_ADDRESS_CHARS_MIN {
            return Err(AppError::invalid(format!(
                "address must be at least {SHOP_ADDRESS_CHARS_MIN} characters"
            )));
        }
    }
    let user_name = need(
        text(p.user_name.clone(), "userName", SHOP_NAME_CHARS_MAX)?,
        "userName",
    )?;
    let tel_number = need(
        text(p.tel_number.clone(), "telNumber", SHOP_NAME_CHARS_MAX)?,
        "telNumber",
    )?
    .map(|t| phone(&t))
    .transpose()?;
    let postal_code = text(p.postal_code.clone(), "postalCode", SHOP_NAME_CHARS_MAX)?
        .map(|c| postal_code(&c))
        .transpose()?;
    Ok(Contact {
        user_name,
        tel_number,
        address,
        postal_code,
    })
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
        .unwrap_or_else(|| "10".into());
    let status = one_of(status, "status", &["10", "20", "30"])?;
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Creates or updates a prize; answers it as stored.
async fn save_prize_row(state: &AppState, p: SavePrizeReq) -> Result<PrizeView, AppError> {
    let app_id = app_of(p.app_id.clone());
    crate::auth::app(state, &app_id).await?;
    let old = match (&p.id, &p.prize_id) {
        (Some(id), _) => Some(require_prize(state, &app_id, PrizeRef::Id(id)).await?),
        (None, Some(key)) => find_prize(state, &app_id, PrizeRef::Key(key)).await?,
        (None, None) => None,
    };
    let input = merge(p, old.as_ref())?;
    let now = now_ms();
    let db = &state.stores.db.write;
    let result = match &old {
        Some(old) => sqlx::query(
            "UPDATE shop_prizes SET prize_key = $1, title = $2, description = $3, icon = $4, \
                 face_value = $5, total = $6, prize_type = $7, exchange_limit = $8, \
                 limit_count = $9, points = $10, sort = $11, status = $12, updated_at = $13 \
                 WHERE id = $14",
        )
        .bind(input.key.clone().unwrap_or_else(|| old.key.clone()))
        .bind(&input.title)
        .bind(&input.desc)
        .bind(&input.icon)
        .bind(input.face_value)
        .bind(input.total)
        .bind(&input.kind)
        .bind(&input.limit)
        .bind(input.limit_count)
        .bind(input.points)
        .bind(input.sort)
        .bind(&input.status)
        .bind(now)
        .bind(old.id)
        .execute(db)
        .await
        .map(|_| old.id),
        None => {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM shop_prizes WHERE app_id = $1 AND status <> '30'",
            )
            .bind(&app_id)
            .fetch_one(db)
            .await?;
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
            sqlx::query_scalar(
                "INSERT INTO shop_prizes (app_id, prize_key, title, description, icon, \
                 face_value, total, prize_type, exchange_limit, limit_count, points, sort, \
                 status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                 RETURNING id",
            )
            .bind(&app_id)
            .bind(key)
            .bind(&input.title)
            .bind(&input.desc)
            .bind(&input.icon)
            .bind(input.face_value)
            .bind(input.total)
            .bind(&input.kind)
            .bind(&input.limit)
            .bind(input.limit_count)
            .bind(input.points)
            .bind(input.sort)
            .bind(&input.status)
            .bind(now)
            .fetch_one(db)
            .await
        }
    };
    let id: i64 = match result {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(AppError::Conflict(
                "prizeId is already used by another prize of the app".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // Read back from the writer (a prize just saved as deleted included), so the answer is
    // what was stored.
    let row = sqlx::query(&format!(
        "SELECT {PRIZE_COLUMNS} FROM shop_prizes WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(db)
    .await?;
    let prize = prize_from_row(&row)?;
    view_of(state, prize).await
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

/// A prize as the 001 client lists it for the caller.
#[derive(Serialize, ToSchema)]
pub struct PrizeItem {
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
    pub total: i64,
    #[serde(rename = "totalRemaining")]
    pub total_remaining: i64,
    /// `goods`, `virtualGoods` or `integral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `day`, `week`, `month` or `once`.
    #[serde(rename = "exchangeLimit")]
    pub exchange_limit: String,
    /// Exchanges allowed per user per period.
    #[serde(rename = "limitCount")]
    pub limit_count: i64,
    /// The caller's exchanges of it in the current period.
    #[serde(rename = "exchangedCount")]
    pub exchanged_count: i64,
    /// Points an `integral` prize credits.
    pub points: i64,
    /// 0 can exchange, 1 exchanged (the period's allowance is used up).
    pub status: i64,
}

// ---------------------------------------------------------------------------------------------
// 001 C-end ops

async fn prize_list(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let app_id = &caller.session.app_id;
    let user_id = caller.session.user_id;
    let prizes = prizes_of(&state, app_id, false).await?;
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
    let counts = counter_values(&state, &keys).await?;
    let balance = state.stores.ledger.balance(user_id).await?;
    let mut items: Vec<(bool, PrizeItem)> = prizes
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
            let item = PrizeItem {
                id: p.id.to_string(),
                prize_id: p.key,
                title: p.title,
                desc: p.desc,
                icon: p.icon,
                face_value: p.face_value,
                total: p.total,
                total_remaining: remaining,
                kind: p.kind,
                exchange_limit: p.limit,
                limit_count: p.limit_count,
                exchanged_count: mine,
                points: p.points,
                status: i64::from(exchanged),
            };
            (last, item)
        })
        .collect();
    // Stable: within each group the catalog order (sort, id) stays.
    items.sort_by_key(|(last, _)| *last);
    let items: Vec<PrizeItem> = items.into_iter().map(|(_, i)| i).collect();
    Ok(center::ok(json!(items)))
}

/// `exchangePrize` fields: the client's `{id, address, userName, telNumber, postalCode}`, or
/// the seed's `prizeId`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeReq {
    /// The prize's `_id`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// The prize's `prizeId` (used when `id` is absent).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub prize_id: Option<String>,
    /// Shipping address; required for goods.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    /// Recipient; required for goods.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_name: Option<String>,
    /// Recipient's phone; required for goods.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub tel_number: Option<String>,
    /// Six digits; optional.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub postal_code: Option<String>,
    /// Optional idempotency key (also read from the `Idempotency-Key` header).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub transaction_id: Option<String>,
}

/// What an exchange answers.
#[derive(Serialize, ToSchema)]
pub struct ExchangeResult {
    /// The caller's balance after the exchange.
    pub points: i64,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "prizeId")]
    pub prize_id: String,
    /// The exchange's ledger entry (the same for a replay).
    #[serde(rename = "recordId")]
    pub record_id: i64,
}

fn sold_out() -> AppError {
    AppError::Refused(Refusal::Other {
        en: "the prize is sold out".into(),
        zh: "奖品已兑完".into(),
    })
}

fn limit_reached(limit: &str) -> AppError {
    let (en, zh) = match limit {
        "day" => (
            "today's exchanges of this prize are used up",
            "今日兑换次数已用完",
        ),
        "week" => (
            "this week's exchanges of this prize are used up",
            "本周兑换次数已用完",
        ),
        "month" => (
            "this month's exchanges of this prize are used up",
            "本月兑换次数已用完",
        ),
        _ => ("this prize was already exchanged", "您已兑换过该奖品"),
    };
    AppError::Refused(Refusal::Other {
        en: en.into(),
        zh: zh.into(),
    })
}

fn off_shelf() -> AppError {
    AppError::Refused(Refusal::Other {
        en: "the prize is off shelf".into(),
        zh: "奖品已下架".into(),
    })
}

/// The client's idempotency key (body field or header), checked and namespaced. `#` is
/// refused: the ledger names an exchange's extra entries `<key>#<n>`.
fn client_key(req: &HttpRequest, body: Option<String>) -> Result<Option<String>, AppError> {
    let header = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(raw) = body.or(header) else {
        return Ok(None);
    };
    if raw.contains('#') {
        return Err(AppError::invalid("idempotency key must not contain '#'"));
    }
    points::idem_key("shop", &raw).map(Some)
}

/// Turns the ledger's `LimitReached` into the refusal it stands for: stock or allowance.
async fn explain_limit(state: &AppState, prize: &Prize, stock_key: String) -> AppError {
    match counter_values(state, &[stock_key]).await {
        Ok(c) if c.first().copied().unwrap_or(0) >= prize.total => sold_out(),
        _ => limit_reached(&prize.limit),
    }
}

async fn exchange_prize(
    state: web::Data<AppState>,
    caller: Caller<Center>,
    req: HttpRequest,
    p: Params<ExchangeReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let app_id = caller.session.app_id.clone();
    let user_id = caller.session.user_id;
    let which = match (&p.id, &p.prize_id) {
        (Some(id), _) => PrizeRef::Id(id),
        (None, Some(key)) => PrizeRef::Key(key),
        (None, None) => return Err(AppError::missing("id").into()),
    };
    let key = client_key(&req, p.transaction_id.clone())?;
    let prize = require_prize(&state, &app_id, which).await?;
    let who = contact(&p, &prize.kind)?;
    if prize.status != "10" {
        return Err(off_shelf().into());
    }

    let now = now_ms();
    let period = period(&state.clock, &prize.limit, now);
    let stock_key = prize.stock_key();
    let user_key = prize.user_key(user_id, &period);
    let counts = counter_values(&state, &[stock_key.clone(), user_key.clone()]).await?;
    let (taken, mine) = (
        counts.first().copied().unwrap_or(0),
        counts.get(1).copied().unwrap_or(0),
    );
    // A fast refusal for the common cases; the ledger checks both counters again in the commit.
    // Not with a client key: a retry of a committed exchange must get its original answer,
    // which the ledger gives before it looks at the counters.
    if key.is_none() && taken >= prize.total {
        return Err(sold_out().into());
    }
    if key.is_none() && mine >= prize.limit_count {
        return Err(limit_reached(&prize.limit).into());
    }
    // Without a client key, the key names the user's next exchange of the period: two requests
    // that saw the same count (a double tap) are one exchange and both get its answer. The
    // counters, not the key, keep stock and allowance.
    let idem_key = key.unwrap_or_else(|| {
        format!(
            "exchange:{app_id}:{}:{user_id}:{period}:{}",
            prize.id,
            mine + 1
        )
    });
    let description = format!("兑换{}", prize.title);
    let limits = vec![
        Limit {
            key: stock_key.clone(),
            max: prize.total,
        },
        Limit {
            key: user_key,
            max: prize.limit_count,
        },
    ];
    let mut detail = json!({
        "_id": prize.id.to_string(), "prizeId": prize.key, "title": prize.title,
        "type": prize.kind, "openId": caller.session.platform_uid,
    });
    if let (Value::Object(d), Ok(Value::Object(c))) = (&mut detail, serde_json::to_value(&who)) {
        d.extend(c);
    }
    let change = match prize.kind.as_str() {
        PRIZE_INTEGRAL => Change {
            app_id: app_id.clone(),
            user_id,
            amount: prize.points,
            kind: SHOP_EXCHANGE_KIND.into(),
            idem_key,
            reference: prize.reference(),
            description: format!("{description}获得积分"),
            expires_at: points::default_expiry(&state, &app_id).await?,
            limits,
            // The cost is applied first, so the prize's own points cannot pay for it.
            legs: (prize.face_value > 0)
                .then(|| Leg {
                    amount: -prize.face_value,
                    kind: SHOP_EXCHANGE_KIND.into(),
                    description: description.clone(),
                })
                .into_iter()
                .collect(),
            order: None,
        },
        kind => Change {
            app_id: app_id.clone(),
            user_id,
            amount: -prize.face_value,
            kind: SHOP_EXCHANGE_KIND.into(),
            idem_key,
            reference: prize.reference(),
            description,
            expires_at: None,
            limits,
            legs: Vec::new(),
            order: Some(OrderSpec {
                reward_type: if kind == PRIZE_GOODS {
                    REWARD_GOODS
                } else {
                    REWARD_VIRTUAL
                }
                .into(),
                amount: 1,
                detail: detail.to_string(),
            }),
        },
    };
    let outcome = match state.ledger.send(Submit(change)).await? {
        Ok(o) => o,
        Err(LedgerError::LimitReached) => {
            return Err(explain_limit(&state, &prize, stock_key).await.into())
        }
        Err(e) => return Err(AppError::from(e).into()),
    };
    Ok(center::ok(json!(ExchangeResult {
        points: outcome.balance_after,
        id: prize.id.to_string(),
        prize_id: prize.key,
        record_id: outcome.entry_id,
    })))
}

/// The points rule.
#[derive(Serialize, ToSchema)]
pub struct RuleView {
    #[serde(rename = "ruleDetail")]
    pub rule_detail: String,
}

async fn get_rule(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let rule_detail = rule_text(&state, &caller.session.app_id).await?;
    Ok(center::ok(json!(RuleView { rule_detail })))
}

// ---------------------------------------------------------------------------------------------
// 001 server and custom ops

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

async fn save_prize(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<SavePrizeReq, Center>,
) -> CenterReply {
    let view = save_prize_row(&state, p.into_inner()).await?;
    Ok(center::ok(json!(view)))
}

/// Names one prize of an app.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrizeQuery {
    /// Default `default`.
    #[serde(
        default,
        rename = "app_id",
        alias = "appId",
        deserialize_with = "lenient::opt_string"
    )]
    pub app_id: Option<String>,
    /// The prize's `_id` (or its `prizeId`).
    #[serde(default, alias = "_id", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// The prize's `prizeId`, when `id` is absent.
    #[serde(default, alias = "prize_id", deserialize_with = "lenient::opt_string")]
    pub prize_id: Option<String>,
}

impl PrizeQuery {
    fn prize_ref(&self) -> Result<PrizeRef<'_>, AppError> {
        match (&self.id, &self.prize_id) {
            (Some(id), _) => Ok(PrizeRef::Id(id)),
            (None, Some(key)) => Ok(PrizeRef::Key(key)),
            (None, None) => Err(AppError::missing("id")),
        }
    }
}

async fn get_prize(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<PrizeQuery, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id.clone());
    let prize = require_prize(&state, &app_id, p.prize_ref()?).await?;
    Ok(center::ok(json!(view_of(&state, prize).await?)))
}

/// The points rule text to save.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaveRuleReq {
    /// Default `default`.
    #[serde(
        default,
        rename = "app_id",
        alias = "appId",
        deserialize_with = "lenient::opt_string"
    )]
    pub app_id: Option<String>,
    /// 1-10000 characters.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub rule_detail: Option<String>,
}

async fn save_rule(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<SaveRuleReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let rule = p
        .rule_detail
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
        ))
        .into());
    }
    crate::auth::app(&state, &app_id).await?;
    sqlx::query(
        "INSERT INTO shop_rules (app_id, rule_detail, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id) DO UPDATE SET rule_detail = excluded.rule_detail, \
         updated_at = excluded.updated_at",
    )
    .bind(&app_id)
    .bind(&rule)
    .bind(now_ms())
    .execute(&state.stores.db.write)
    .await?;
    Ok(center::ok(json!(RuleView { rule_detail: rule })))
}

/// `send_prize` fields.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendPrizeReq {
    /// Default `default`.
    #[serde(
        default,
        rename = "app_id",
        alias = "appId",
        deserialize_with = "lenient::opt_string"
    )]
    pub app_id: Option<String>,
    /// Points to deduct from the user for it, 0 or more (0 sends it free).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub face_value: Option<i64>,
    /// The prize's `prizeId` (or `_id`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub prize_id: Option<String>,
    /// The user's platform id.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub open_id: Option<String>,
    /// Optional idempotency key (also read from the `Idempotency-Key` header).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub transaction_id: Option<String>,
}

/// What `send_prize` answers.
#[derive(Serialize, ToSchema)]
pub struct SendPrizeResult {
    /// The user's balance afterwards.
    pub points: i64,
    #[serde(rename = "recordId")]
    pub record_id: i64,
}

async fn send_prize(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    req: HttpRequest,
    p: Params<SendPrizeReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let face_value = p.face_value.ok_or_else(|| AppError::missing("faceValue"))?;
    let face_value = ranged(face_value, "faceValue", 0, SHOP_POINTS_MAX)?;
    let key_raw = p.prize_id.ok_or_else(|| AppError::missing("prizeId"))?;
    let open_id = p.open_id.ok_or_else(|| AppError::missing("openId"))?;
    let key = client_key(&req, p.transaction_id)?;
    let prize = require_prize(&state, &app_id, PrizeRef::Key(&key_raw)).await?;
    if prize.kind != PRIZE_VIRTUAL {
        return Err(AppError::invalid(
            "send_prize delivers virtualGoods prizes only (goods need an address: exchangePrize)",
        )
        .into());
    }
    let user = points::user(&state, &app_id, &open_id).await?;
    let stock_key = prize.stock_key();
    let detail = json!({
        "_id": prize.id.to_string(), "prizeId": prize.key, "title": prize.title,
        "type": prize.kind, "openId": open_id, "via": "send_prize",
    });
    let change = Change {
        app_id: app_id.clone(),
        user_id: user.id,
        amount: -face_value,
        kind: SHOP_EXCHANGE_KIND.into(),
        // A server call without a key is a new delivery each time.
        idem_key: key.unwrap_or_else(|| format!("send_prize:{}", uuid::Uuid::new_v4())),
        reference: prize.reference(),
        description: format!("发放{}", prize.title),
        expires_at: None,
        limits: vec![Limit {
            key: stock_key.clone(),
            max: prize.total,
        }],
        legs: Vec::new(),
        order: Some(OrderSpec {
            reward_type: REWARD_VIRTUAL.into(),
            amount: 1,
            detail: detail.to_string(),
        }),
    };
    let outcome = match state.ledger.send(Submit(change)).await? {
        Ok(o) => o,
        Err(LedgerError::LimitReached) => return Err(sold_out().into()),
        Err(e) => return Err(AppError::from(e).into()),
    };
    Ok(center::ok(json!(SendPrizeResult {
        points: outcome.balance_after,
        record_id: outcome.entry_id,
    })))
}

// ---------------------------------------------------------------------------------------------
// Admin routes (000 envelope)

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct ShopAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

async fn admin_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<SavePrizeReq, Gift>,
) -> giftpoint::Reply {
    let view = save_prize_row(&state, p.into_inner()).await?;
    Ok(giftpoint::ok(json!(view)))
}

async fn admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<ShopAppQuery, Gift>,
) -> giftpoint::Reply {
    let app_id = app_of(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    let prizes = prizes_of(&state, &app_id, true).await?;
    let keys: Vec<String> = prizes.iter().map(Prize::stock_key).collect();
    let counts = counter_values(&state, &keys).await?;
    let views: Vec<PrizeView> = prizes
        .into_iter()
        .zip(counts)
        .map(|(p, c)| view(&state, p, c))
        .collect();
    Ok(giftpoint::ok(json!(views)))
}

/// A prize's new shelf status.
#[derive(Deserialize, ToSchema)]
pub struct PrizeStatusReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// The prize's `_id`.
    #[serde(default, alias = "_id", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// `10` on shelf, `20` off shelf, `30` deleted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

async fn admin_status(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<PrizeStatusReq, Gift>,
) -> giftpoint::Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    let status = p.status.ok_or_else(|| AppError::missing("status"))?;
    let status = one_of(status, "status", &["10", "20", "30"])?;
    let prize = require_prize(&state, &app_id, PrizeRef::Id(&id)).await?;
    sqlx::query("UPDATE shop_prizes SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(&status)
        .bind(now_ms())
        .bind(prize.id)
        .execute(&state.stores.db.write)
        .await?;
    let mut view = view_of(&state, prize).await?;
    view.status = status;
    Ok(giftpoint::ok(json!(view)))
}

/// Which exchange records to list.
#[derive(Deserialize, ToSchema)]
pub struct ExchangeQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Only this prize's (`_id`); all prizes when absent.
    #[serde(default, alias = "_id", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// From 1.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub page: Option<i64>,
    /// 1-100, default 20.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// One exchange, read from the ledger with its fulfilment order.
#[derive(Serialize, ToSchema)]
pub struct ExchangeRecord {
    /// The exchange's ledger entry.
    pub record_id: i64,
    /// The prize's `_id`.
    pub prize: String,
    pub open_id: String,
    /// Points paid.
    pub cost: i64,
    /// Points credited (integral prizes).
    pub credited: i64,
    pub description: String,
    pub created_at: String,
    /// The fulfilment order (goods and virtual goods): id, reward type, status, detail with the
    /// contact the user gave.
    pub order: Option<Value>,
}

async fn admin_exchanges(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<ExchangeQuery, Gift>,
) -> giftpoint::Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let page = Page::parse(p.page, p.size, 1, 20)?;
    crate::auth::app(&state, &app_id).await?;
    let reference = match p.id {
        Some(id) => {
            let prize = require_prize(&state, &app_id, PrizeRef::Id(&id)).await?;
            Some(prize.reference())
        }
        None => None,
    };
    // Main entries only: a leg's key is `<key>#<n>`, and shop keys never contain `#`.
    let filter = if reference.is_some() {
        "e.reference = $2"
    } else {
        "e.reference LIKE $2"
    };
    let sql = format!(
        "SELECT e.id, e.reference, u.platform_uid, e.amount, COALESCE(l.amount, 0), \
         e.description, e.created_at, o.id, o.reward_type, o.status, o.detail \
         FROM ledger_entries e JOIN users u ON u.id = e.user_id \
         LEFT JOIN ledger_entries l ON l.app_id = e.app_id AND l.idem_key = e.idem_key || '#0' \
         LEFT JOIN fulfilment_orders o ON o.app_id = e.app_id AND o.idem_key = e.idem_key \
         WHERE e.app_id = $1 AND e.kind = '{SHOP_EXCHANGE_KIND}' AND {filter} \
         AND e.idem_key NOT LIKE '%#%' ORDER BY e.id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query(&sql)
        .bind(&app_id)
        .bind(reference.unwrap_or_else(|| "shop:%".into()))
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&state.stores.db.read)
        .await?;
    let mut records = Vec::with_capacity(rows.len());
    for r in &rows {
        let main: i64 = r.try_get(3)?;
        let leg: i64 = r.try_get(4)?;
        let reference: String = r.try_get(1)?;
        let order_id: Option<i64> = r.try_get(7)?;
        let order = match order_id {
            Some(id) => {
                let detail: String = r.try_get(10)?;
                Some(json!({
                    "id": id,
                    "reward_type": r.try_get::<String, _>(8)?,
                    "status": r.try_get::<String, _>(9)?,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::String(detail)),
                }))
            }
            None => None,
        };
        records.push(ExchangeRecord {
            record_id: r.try_get(0)?,
            prize: reference.trim_start_matches("shop:").to_string(),
            open_id: r.try_get(2)?,
            cost: (-main).max(0) - leg,
            credited: main.max(0),
            description: r.try_get(5)?,
            created_at: state.clock.format_datetime(r.try_get(6)?),
            order,
        });
    }
    Ok(giftpoint::ok(json!(records)))
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the shop's 001 ops and admin routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "001 prize shop";
    r.add::<crate::http::Empty, Vec<PrizeItem>, _, _>(
        RouteDoc {
            path: "/center/api/getPrizedsList",
            methods: GET_POST,
            tag,
            summary: "获取当前兑换奖励列表: the caller's app's prizes on shelf",
            description: "Bearer token. Items `{_id, prizeId, title, desc, icon, faceValue, total, totalRemaining, type, exchangeLimit, limitCount, exchangedCount, points, status}`: `type` goods/virtualGoods/integral; `exchangeLimit` day/week/month/once (periods in business time, weeks ISO starting Monday) with `limitCount` exchanges per period; `status` 0 can exchange, 1 exchanged (the caller's allowance for the current period is used up). Prizes already exchanged, sold out (`totalRemaining` 0) or costing more than the caller's balance come last; otherwise catalog order (`sort`, then `_id`).",
        },
        prize_list,
    );
    r.add::<ExchangeReq, ExchangeResult, _, _>(
        RouteDoc {
            path: "/center/api/exchangePrize",
            methods: POST,
            tag,
            summary: "兑换奖励: exchange points for a prize",
            description: "Bearer token. `id` is the prize's `_id` (or send `prizeId`). Goods need `address` (4-200 characters), `userName` (1-50) and `telNumber` (6-15 digits, optional leading `+`, spaces or dashes); `postalCode` (6 digits) is optional; other types take `userName` alone. Debits `faceValue`, takes one unit of stock and one of the caller's allowance for the period in one commit; goods and virtual goods become a fulfilment order (实物 / 电子权益) carrying the contact; an `integral` prize credits its `points` (the cost is paid first, from the balance alone). Codes: 300013 not enough points, 40910 sold out, allowance used up or off shelf, 40400 no such prize, 40000 bad or missing field — nothing changed. Without `transactionId` (or `Idempotency-Key`) the key is the caller's next exchange of the period, so a double tap is one exchange and both get its answer. `result`: `{points (new balance), _id, prizeId, recordId}`.",
        },
        exchange_prize,
    );
    for path in ["/center/api/getPointsRule", "/center/api/getRule"] {
        r.add::<crate::http::Empty, RuleView, _, _>(
            RouteDoc {
                path,
                methods: GET_POST,
                tag,
                summary: "获取积分规则: the app's points rule text",
                description: "Bearer token. `getRule` is the client's spelling of `getPointsRule`; both answer `{ruleDetail}`: the text saved by `savePointsRule`, or, before one is saved, a sentence stating the app's points life.",
            },
            get_rule,
        );
    }
    r.add::<SaveRuleReq, RuleView, _, _>(
        RouteDoc {
            path: "/center/admin/savePointsRule",
            methods: POST,
            tag,
            summary: "添加积分规则: save the app's points rule text (server op)",
            description: "`X-Admin-Key`. `ruleDetail` 1-10000 characters (newlines kept); `app_id` defaults to `default`. Replaces the previous text.",
        },
        save_rule,
    );
    r.add::<SavePrizeReq, PrizeView, _, _>(
        RouteDoc {
            path: "/center/admin/savePrize",
            methods: POST,
            tag,
            summary: "添加兑换奖励: create or update a prize (server op)",
            description: "`X-Admin-Key`. Creates a prize, or updates the one named by `_id` (or by an existing `prizeId`); omitted fields keep their stored value. New prizes need `title` (1-64), `faceValue` (0-100000000 points), `total` (0-1000000000 units over the prize's life, exchanged units count against it) and `type` (goods/virtualGoods/integral); `exchangeLimit` day/week/month/once (default once), `limitCount` 1-1000 per period (default 1), `points` credited by an integral prize (required for it), `desc`, `icon`, `sort`, `status` 10/20/30. A `prizeId` another prize uses answers 40900. `result` is the stored prize with `exchanged` and `totalRemaining`.",
        },
        save_prize,
    );
    r.add::<PrizeQuery, PrizeView, _, _>(
        RouteDoc {
            path: "/center/admin/getPrizeById",
            methods: GET_POST,
            tag,
            summary: "获取奖励详情: one prize with its stock (server op)",
            description: "`X-Admin-Key`. `id` the prize's `_id` (a `prizeId` is accepted too); `app_id` defaults to `default`. 40400 when absent or deleted.",
        },
        get_prize,
    );
    r.add::<SendPrizeReq, SendPrizeResult, _, _>(
        RouteDoc {
            path: "/center/custom/send_prize",
            methods: POST,
            tag,
            summary: "发送虚拟奖品: deliver a virtual prize to a user (custom op)",
            description: "`X-Admin-Key`. `prizeId` (or `_id`) of a `virtualGoods` prize, `openId` the user's platform id, `faceValue` points to deduct (0 sends it free); `app_id` defaults to `default`. Takes one unit of the prize's stock (the per-user allowance is not applied: the server decides), deducts the points and stores a 电子权益 fulfilment order that the outbox delivers — in one commit. `transactionId` (or `Idempotency-Key`) makes the call safe to retry; without it each call is a new delivery. Codes: 300013 not enough points, 40910 sold out, 40400 unknown prize or user, 40000 bad field or not a virtual prize. `result`: `{points, recordId}`.",
        },
        send_prize,
    );

    let tag = "admin shop";
    r.add::<SavePrizeReq, PrizeView, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes",
            methods: POST,
            tag,
            summary: "Create or update a prize",
            description: "`X-Admin-Key`. Same fields and rules as 001 `savePrize` (snake_case names such as `face_value`, `exchange_limit`, `limit_count`, `prize_id` are accepted too). 400 on any invalid field, 409 for a `prizeId` in use; nothing changed.",
        },
        admin_save,
    );
    r.add::<ShopAppQuery, Vec<PrizeView>, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes",
            methods: GET,
            tag,
            summary: "An app's prizes, on and off shelf, with stock",
            description:
                "`X-Admin-Key`; `app_id` defaults to `default`. Deleted prizes are not listed.",
        },
        admin_list,
    );
    r.add::<PrizeStatusReq, PrizeView, _, _>(
        RouteDoc {
            path: "/admin/shop/prizes/status",
            methods: POST,
            tag,
            summary: "Put a prize on shelf, off shelf, or delete it",
            description: "`X-Admin-Key`. `id` the prize's `_id`, `status` 10 on shelf, 20 off shelf (listed to operators, not exchangeable), 30 deleted. Exchanges already made and their orders stay.",
        },
        admin_status,
    );
    r.add::<ExchangeQuery, Vec<ExchangeRecord>, _, _>(
        RouteDoc {
            path: "/admin/shop/exchanges",
            methods: GET,
            tag,
            summary: "Exchange records, newest first",
            description: "`X-Admin-Key`; `app_id` defaults to `default`; `id` narrows to one prize; `page` from 1, `size` 1-100. Read from the ledger (entries of kind `exchange` of shop prizes, `send_prize` included) with each one's fulfilment order, whose `detail` carries the address, name, phone and postal code to ship goods to.",
        },
        admin_exchanges,
    );
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

    #[test]
    fn phones_and_postal_codes() {
        for ok in ["13800138000", "+86 138-0013-8000", "010-62345678"] {
            assert!(phone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "12345",
            "1380013800012345678",
            "138x0013800",
            "++86138",
        ] {
            assert!(phone(bad).is_err(), "{bad}");
        }
        assert!(postal_code("100000").is_ok());
        assert!(postal_code("10000").is_err());
        assert!(postal_code("1000a0").is_err());
    }
}
