//! The 000 dialect's profile routes: store the user's profile, bind the Alipay phone number.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{gift_auth_info, gift_auth_phone};
use crate::dialect::gift::{ok, own_user, Gift};
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Empty, Params, RouteDoc, Routes};
use crate::state::AppState;

type GiftReply = Result<HttpResponse, Failure<Gift>>;

/// 000 `v2/user/auth/info.json`.
#[derive(Deserialize, ToSchema)]
pub struct AuthInfoReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `{avatar, nick, gender "M"/"F"}`, or that object as a JSON string.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub info: Option<Value>,
}

/// 000 `v2/user/auth/phone.json`.
#[derive(Deserialize, ToSchema)]
pub struct AuthPhoneReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// Alipay's encrypted `getPhoneNumber` response (base64).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub encrypted: Option<String>,
}

/// Registers the 000 profile routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<AuthInfoReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/user/auth/info.json",
            methods: GET_POST,
            tag,
            summary: "授权用户信息: store the user's profile",
            description: "Bearer token; `user_id` must be the token's user. `info` `{avatar, nick, gender}` (or that object as a JSON string): `nick` at most 64 characters, `avatar` at most 1000, `gender` `M` or `F` (absent: unknown); absent fields keep their value. Login status becomes 20 (a status of 30, phone bound, is kept). `data`: `[]`. Missing `info`, or a bad value: code 400, nothing changed.",
        },
        auth_info,
    );
    r.add::<AuthPhoneReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/user/auth/phone.json",
            methods: GET_POST,
            tag,
            summary: "授权手机号: bind the user's phone number",
            description: "Bearer token; `user_id` must be the token's user. `encrypted`: Alipay's encrypted `my.getPhoneNumber` response (base64), decrypted with the app's AES key (`settings.aes_key`: base64 of 16 bytes; AES-128-CBC, PKCS#7, zero IV). Its JSON must hold `mobile` (and `code` \"10000\" when present). Binds the number, replacing an earlier one, and sets login status 30. `data`: `[]`. Codes: 400 missing or undecryptable data (also: a wrong key); 501 no AES key configured for the app.",
        },
        auth_phone,
    );
}

async fn auth_info(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<AuthInfoReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    gift_auth_info(&state, &caller.session, p.info).await?;
    Ok(ok(json!([])))
}

async fn auth_phone(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<AuthPhoneReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let encrypted = p.encrypted.ok_or_else(|| AppError::missing("encrypted"))?;
    gift_auth_phone(&state, &caller.session, &encrypted).await?;
    Ok(ok(json!([])))
}
