//! The ledger changes of the shop: a user's exchange of a prize and a server's delivery of a
//! virtual prize, with the checks of the contact an exchange carries and the refusals both give.

use points_actors::activity::Refusal;
use points_actors::{Change, LedgerError, Leg, Limit, OrderSpec, Outcome, Submit};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    period, require_prize, text, Prize, PrizeRef, PRIZE_GOODS, PRIZE_INTEGRAL, PRIZE_VIRTUAL,
    REWARD_GOODS, REWARD_VIRTUAL, SHOP_ADDRESS_CHARS_MAX, SHOP_ADDRESS_CHARS_MIN,
    SHOP_EXCHANGE_KIND, SHOP_NAME_CHARS_MAX, SHOP_PHONE_DIGITS_MAX, SHOP_PHONE_DIGITS_MIN,
    SHOP_POSTAL_CODE_DIGITS,
};
use crate::clock::now_ms;
use crate::dialect::{IdempotencyKey, Status};
use crate::error::AppError;
use crate::points;
use crate::points::counter_values;
use crate::state::AppState;

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

/// The contact fields of an exchange request, as given.
pub(super) struct ContactFields {
    pub(super) address: Option<String>,
    pub(super) user_name: Option<String>,
    pub(super) tel_number: Option<String>,
    pub(super) postal_code: Option<String>,
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
fn contact(p: &ContactFields, prize_type: &str) -> Result<Contact, AppError> {
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

/// Turns the ledger's `LimitReached` into the refusal it stands for: the stock counter, or the
/// caller's allowance.
fn explain_limit(prize: &Prize, stock_key: &str, refused_key: &str) -> AppError {
    if refused_key == stock_key {
        sold_out()
    } else {
        limit_reached(&prize.limit)
    }
}

/// Exchanges the prize named by `which` for the caller: checks the contact and the shelf, then
/// submits the one ledger change that pays, takes stock and allowance, and stores the order (or
/// credits an integral prize's points). `key` is the client's idempotency key, if it gave one.
pub(super) async fn exchange(
    state: &AppState,
    app_id: String,
    user_id: i64,
    platform_uid: &str,
    which: PrizeRef<'_>,
    key: Option<String>,
    fields: &ContactFields,
) -> Result<(Prize, Outcome), AppError> {
    let prize = require_prize(state, &app_id, which).await?;
    let who = contact(fields, &prize.kind)?;
    if prize.status != Status::On.code() {
        return Err(off_shelf());
    }

    let now = now_ms();
    let period = period(&state.clock, &prize.limit, now);
    let stock_key = prize.stock_key();
    let user_key = prize.user_key(user_id, &period);
    let counts = counter_values(state, &[stock_key.clone(), user_key.clone()]).await?;
    let (taken, mine) = (
        counts.first().copied().unwrap_or(0),
        counts.get(1).copied().unwrap_or(0),
    );
    // A fast refusal for the common cases; the ledger checks both counters again in the commit.
    // Not with a client key: a retry of a committed exchange must get its original answer,
    // which the ledger gives before it looks at the counters.
    if key.is_none() && taken >= prize.total {
        return Err(sold_out());
    }
    if key.is_none() && mine >= prize.limit_count {
        return Err(limit_reached(&prize.limit));
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
        "type": prize.kind, "openId": platform_uid,
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
            expires_at: points::default_expiry(state, &app_id).await?,
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
            expire_lot: None,
            fence: None,
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
            expire_lot: None,
            fence: None,
        },
    };
    let outcome = match state.ledger.send(Submit(change)).await? {
        Ok(o) => o,
        Err(LedgerError::LimitReached { key }) => {
            return Err(explain_limit(&prize, &stock_key, &key));
        }
        Err(e) => return Err(AppError::from(e)),
    };
    Ok((prize, outcome))
}

/// Delivers the virtual prize `key_raw` (a `prizeId` or `_id`) to the user `open_id` for
/// `face_value` points: one unit of stock, no allowance. `key` is the client's idempotency key.
pub(super) async fn send(
    state: &AppState,
    app_id: &str,
    face_value: i64,
    key_raw: &str,
    open_id: String,
    key: Option<IdempotencyKey>,
) -> Result<Outcome, AppError> {
    let prize = require_prize(state, app_id, PrizeRef::Key(key_raw)).await?;
    if prize.kind != PRIZE_VIRTUAL {
        return Err(AppError::invalid(
            "send_prize delivers virtualGoods prizes only (goods need an address: exchangePrize)",
        ));
    }
    let user = points::user(state, app_id, &open_id).await?;
    let stock_key = prize.stock_key();
    let detail = json!({
        "_id": prize.id.to_string(), "prizeId": prize.key, "title": prize.title,
        "type": prize.kind, "openId": open_id, "via": "send_prize",
    });
    let change = Change {
        app_id: app_id.to_string(),
        user_id: user.id,
        amount: -face_value,
        kind: SHOP_EXCHANGE_KIND.into(),
        // A server call without a key is a new delivery each time.
        idem_key: key.map_or_else(
            || format!("send_prize:{}", uuid::Uuid::new_v4()),
            |k| k.for_user(user.id).into_string(),
        ),
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
        expire_lot: None,
        fence: None,
    };
    let outcome = match state.ledger.send(Submit(change)).await? {
        Ok(o) => o,
        Err(LedgerError::LimitReached { .. }) => return Err(sold_out()),
        Err(e) => return Err(AppError::from(e)),
    };
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

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
