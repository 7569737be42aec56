//! The walk routes of seed 000: report steps, the steps rank, the exchange and the cover images.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{ingest, store, Covers, IngestError, StepData};
use crate::auth;
use crate::dialect::gift::{ok, ok_with, own_user, Gift};
use crate::dialect::AppId;
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<WalkGetReq, StepCount, _, _>(
        RouteDoc {
            path: "/v2/walk/get.json",
            methods: GET_POST,
            tag,
            summary: "上传微信运动步数: report today's steps",
            description: "Bearer token; `user_id` must be the token's user. `encryption` is Alipay's `my.getRunData` response as the string the mini-program gets (decrypted with the app's AES key like the phone number of `v2/user/auth/phone.json`; today's steps are its `count`, a number or a string of digits), or WeChat's `wx.getWeRunData` result as a JSON object `{\"encryptedData\",\"iv\"}` (or that object as a JSON string), decrypted with the session key of the user's WeChat login, its watermark appid the app's WeChat appid. `data.count`: today's steps (the most reported today), entered into today's rank. Codes: 400 missing or undecryptable data, or no WeChat session key (log in with WeChat again); 501 WeChat, or for Alipay data the AES key, not configured for the app.",
        },
        walk_get,
    );
    r.add_beside::<UserReq, Vec<RankItem>, RankBeside, _, _>(
        RouteDoc {
            path: "/v2/walk/rank.json",
            methods: GET_POST,
            tag,
            summary: "步数排行: today's steps rank",
            description: "Bearer token. `data`: today's top 50 `{nick, avatar, count}`, most steps first, ties to whoever reached the count first. Beside `data`: `my_count`, `my_rank` (0 while the caller has no steps today), `my_nick`, `my_avatar`, `rate` (steps per point), `is_exchanged` (today's steps already exchanged).",
        },
        walk_rank,
    );
    r.add::<UserReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/walk/exchange.json",
            methods: GET_POST,
            tag,
            summary: "步数兑换积分: exchange today's steps for points",
            description: "Bearer token. Credits `today's steps / rate` points (rounded down), once per day. Fewer steps than the rate: 410 with a message; a second exchange today: 410 (already done).",
        },
        walk_exchange,
    );
    r.add::<AppReq, Covers, _, _>(
        RouteDoc {
            path: "/v2/kingkong/cover_img.json",
            methods: GET_POST,
            tag,
            summary: "封面图: the app's cover images",
            description: "Public. `lottery_cover_img`, `walk_cover_img`, `pickup_cover_img` as configured through `/admin/covers`; empty strings when not set.",
        },
        cover_img,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct UserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct WalkGetReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `{"encryptedData","iv"}`, as an object or a JSON string.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub encryption: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StepCount {
    pub count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RankItem {
    pub nick: String,
    pub avatar: String,
    pub count: i64,
}

/// `encryption` in one of its two forms: WeChat's `{"encryptedData","iv"}` (an object, or that
/// object as a JSON string), or Alipay's encrypted `my.getRunData` response (any other string).
fn encryption_of(raw: Option<Value>) -> Result<Encryption, AppError> {
    let value = match raw {
        None | Some(Value::Null) => return Err(AppError::missing("encryption")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(AppError::missing("encryption"))
        }
        Some(Value::String(s)) if !s.trim_start().starts_with('{') => {
            return Ok(Encryption::Alipay(s.trim().to_string()))
        }
        Some(Value::String(s)) => serde_json::from_str::<Value>(&s).map_err(|_| {
            AppError::invalid("encryption must be a JSON object {\"encryptedData\",\"iv\"}")
        })?,
        Some(other) => other,
    };
    let field = |name: &str| -> Result<String, AppError> {
        match value.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(AppError::missing(&format!("encryption.{name}"))),
            Some(Value::String(_)) => Err(AppError::missing(&format!("encryption.{name}"))),
            Some(_) => Err(AppError::invalid(format!(
                "encryption.{name} must be a string"
            ))),
        }
    };
    if !value.is_object() {
        return Err(AppError::invalid(
            "encryption must be Alipay's encrypted string or WeChat's {\"encryptedData\",\"iv\"}",
        ));
    }
    Ok(Encryption::Wechat {
        data: field("encryptedData")?,
        iv: field("iv")?,
    })
}

/// `encryption`, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Encryption {
    Wechat { data: String, iv: String },
    Alipay(String),
}

async fn walk_get(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<WalkGetReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let encryption = encryption_of(p.encryption)?;
    let encrypted = match &encryption {
        Encryption::Wechat { data, iv } => StepData::Wechat { data, iv },
        Encryption::Alipay(response) => StepData::Alipay(response),
    };
    let count = ingest(&state, &caller.session, encrypted)
        .await
        .map_err(|e| match e {
            IngestError::NoWechat => {
                AppError::NotConfigured("WeChat is not configured for this app".into())
            }
            IngestError::NoAesKey => AppError::NotConfigured(
                "the app has no AES key (base64 of 16 bytes) to decrypt Alipay data with".into(),
            ),
            IngestError::BadSessionKey => AppError::invalid(
                "no valid WeChat session key for this user: log in with WeChat again",
            ),
            IngestError::Undecryptable(m) => AppError::invalid(m),
            IngestError::Other(e) => e,
        })?;
    Ok(ok(json!(StepCount { count })))
}

/// Beside the ranking: the caller's own standing.
#[derive(Serialize, ToSchema)]
pub struct RankBeside {
    pub my_count: i64,
    /// 0 when the caller has no steps today.
    pub my_rank: usize,
    pub my_nick: String,
    pub my_avatar: String,
    /// Steps per point.
    pub rate: i64,
    /// Today's steps already exchanged.
    pub is_exchanged: bool,
}

async fn walk_rank(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let rank = super::steps_rank(&state, &caller.session).await?;
    let items: Vec<RankItem> = rank
        .board
        .top
        .iter()
        .map(|r| {
            let p = rank.profiles.get(&r.user_id).cloned().unwrap_or_default();
            RankItem {
                nick: p.nick,
                avatar: p.avatar,
                count: r.score.value,
            }
        })
        .collect();
    let me = rank
        .profiles
        .get(&caller.session.user_id)
        .cloned()
        .unwrap_or_default();
    Ok(ok_with(
        json!(items),
        RankBeside {
            my_count: rank.board.mine.map_or(0, |m| m.score.value),
            my_rank: rank.board.mine.map_or(0, |m| m.rank),
            my_nick: me.nick,
            my_avatar: me.avatar,
            rate: rank.rate,
            is_exchanged: rank.exchanged,
        },
    ))
}

async fn walk_exchange(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    super::exchange(&state, &caller.session).await?;
    Ok(ok(json!([])))
}

async fn cover_img(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> GiftReply {
    let app = auth::app(&state, &AppId::text_of(&p.into_inner().app_id)).await?;
    Ok(ok(json!(store::covers(&state.stores.db, &app.id).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_comes_as_wechats_object_or_alipays_string() {
        let obj = json!({"encryptedData": "a", "iv": "b"});
        let wechat = Encryption::Wechat {
            data: "a".into(),
            iv: "b".into(),
        };
        assert_eq!(encryption_of(Some(obj.clone())), Ok(wechat));
        assert!(matches!(
            encryption_of(Some(Value::String(obj.to_string()))),
            Ok(Encryption::Wechat { .. })
        ));
        assert_eq!(
            encryption_of(Some(json!(" c2VjcmV0 "))),
            Ok(Encryption::Alipay("c2VjcmV0".into()))
        );
        assert!(matches!(encryption_of(None), Err(AppError::Missing(_))));
        assert!(matches!(
            encryption_of(Some(json!({"iv": "b"}))),
            Err(AppError::Missing(_))
        ));
        assert!(matches!(
            encryption_of(Some(json!("{not json"))),
            Err(AppError::Invalid(_))
        ));
        assert!(matches!(
            encryption_of(Some(json!([1]))),
            Err(AppError::Invalid(_))
        ));
    }
}
