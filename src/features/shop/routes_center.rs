//! The shop's 001 routes (`/center/*`): the C-end ops, the server ops and `send_prize`, in the
//! 001 envelope.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::exchange::{self, ContactFields};
use super::{
    listing, ranged, require_prize, rule_text, save_prize_row, view_of, PrizeRef, PrizeView,
    SavePrizeReq, SHOP_POINTS_MAX,
};
use crate::dialect::center::{self, Center};
use crate::dialect::{AppId, IdempotencyKey};
use crate::dialect::{GET_POST, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type CenterReply = Result<HttpResponse, Failure<Center>>;

// ---------------------------------------------------------------------------------------------
// 001 C-end ops

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

async fn prize_list(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let app_id = &caller.session.app_id;
    let user_id = caller.session.user_id;
    let items: Vec<PrizeItem> = listing(&state, app_id, user_id)
        .await?
        .into_iter()
        .map(|l| {
            let p = l.prize;
            PrizeItem {
                id: p.id.to_string(),
                prize_id: p.key,
                title: p.title,
                desc: p.desc,
                icon: p.icon,
                face_value: p.face_value,
                total: p.total,
                total_remaining: l.remaining,
                kind: p.kind,
                exchange_limit: p.limit,
                limit_count: p.limit_count,
                exchanged_count: l.mine,
                points: p.points,
                status: i64::from(l.exchanged),
            }
        })
        .collect();
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
    let key = IdempotencyKey::from_request("shop", p.transaction_id.as_deref(), &req)?
        .map(|k| k.for_user(user_id).into_string());
    let fields = ContactFields {
        address: p.address.clone(),
        user_name: p.user_name.clone(),
        tel_number: p.tel_number.clone(),
        postal_code: p.postal_code.clone(),
    };
    let (prize, outcome) = exchange::exchange(
        &state,
        app_id,
        user_id,
        &caller.session.platform_uid,
        which,
        key,
        &fields,
    )
    .await?;
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

async fn get_points_rule(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let rule_detail = rule_text(&state, &caller.session.app_id).await?;
    Ok(center::ok(json!(RuleView { rule_detail })))
}

/// `getRule`, the client's op: the text itself, which the page hands to `<rich-text>`.
async fn get_rule(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let text = rule_text(&state, &caller.session.app_id).await?;
    Ok(center::ok(json!(text)))
}

// ---------------------------------------------------------------------------------------------
// 001 server and custom ops

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
    let app_id = AppId::text(p.app_id.clone());
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
    let app_id = AppId::text(p.app_id);
    let rule = super::save_rule(&state, &app_id, p.rule_detail).await?;
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
    let app_id = AppId::text(p.app_id);
    let face_value = p.face_value.ok_or_else(|| AppError::missing("faceValue"))?;
    let face_value = ranged(face_value, "faceValue", 0, SHOP_POINTS_MAX)?;
    let key_raw = p.prize_id.ok_or_else(|| AppError::missing("prizeId"))?;
    let open_id = p.open_id.ok_or_else(|| AppError::missing("openId"))?;
    let key = IdempotencyKey::from_request("shop", p.transaction_id.as_deref(), &req)?;
    let outcome = exchange::send(&state, &app_id, face_value, &key_raw, open_id, key).await?;
    Ok(center::ok(json!(SendPrizeResult {
        points: outcome.balance_after,
        record_id: outcome.entry_id,
    })))
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the shop's 001 ops.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
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
    r.add::<crate::http::Empty, RuleView, _, _>(
        RouteDoc {
            path: "/center/api/getPointsRule",
            methods: GET_POST,
            tag,
            summary: "获取积分规则: the app's points rule text (the seed's shape)",
            description: "Bearer token. `result`: `{ruleDetail}`, the text saved by `savePointsRule`, or, before one is saved, a sentence stating the app's points life.",
        },
        get_points_rule,
    );
    r.add::<crate::http::Empty, String, _, _>(
        RouteDoc {
            path: "/center/api/getRule",
            methods: GET_POST,
            tag,
            summary: "获取积分规则: the rule text itself, as the client's page reads it",
            description: "Bearer token. `result` is the rule text as a string (what `getPointsRule` answers as `ruleDetail`).",
        },
        get_rule,
    );
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
}
