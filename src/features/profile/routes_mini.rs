//! The 003 dialect's profile routes: update the profile, bind the WeChat phone number, and the
//! authorisation flags.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{mini_auth_status, mini_update, mini_wx_phone, AuthStatus, WxPhoneData};
use crate::dialect::mini::{self, own_openid, Mini};
use crate::dialect::{GET_POST, POST};
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Empty, Params, RouteDoc, Routes};
use crate::state::AppState;

type MiniReply = Result<HttpResponse, Failure<Mini>>;

/// 003 `/api/update/`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub nickname: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub sex: Option<Value>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub avatar: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub province: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub language: Option<String>,
    /// Accepted and not used: the plain fields are what is stored.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub iv: Option<String>,
    /// Accepted and not used: the plain fields are what is stored.
    #[serde(
        default,
        rename = "encryptedData",
        deserialize_with = "lenient::opt_string"
    )]
    pub encrypted_data: Option<String>,
}

/// 003 `/api/wx_phone/`.
#[derive(Deserialize, ToSchema)]
pub struct WxPhoneReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    /// Also read as `encryptedData`, the original server's spelling.
    #[serde(
        default,
        alias = "encryptedData",
        deserialize_with = "lenient::opt_string"
    )]
    pub encrypted_data: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub iv: Option<String>,
}

/// A 003 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// Registers the 003 profile routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<UpdateReq, Empty, _, _>(
        RouteDoc {
            path: "/api/update/",
            methods: POST,
            tag,
            summary: "更新用户信息",
            description: "Bearer token; `openid` must be the token's user. Stores `nickname` (at most 64 characters), `avatar` (at most 1000), `sex` (0 unknown, 1 male, 2 female) and `country`/`province`/`city`/`language` (at most 64 each); absent fields keep their value, at least one must be given. `iv`/`encryptedData` are accepted and not used. Login status rises to 20 as with 000 auth info. Codes: 0 ok, -1 empty parameter (no openid, or nothing to update), -2 wrong gender, -3 wrong openid, -4 update failed (a value too long, or storage unavailable; nothing changed).",
        },
        update,
    );
    r.add::<WxPhoneReq, WxPhoneData, _, _>(
        RouteDoc {
            path: "/api/wx_phone/",
            methods: POST,
            tag,
            summary: "手机认证",
            description: "Bearer token; `openid` must be the token's user. `encrypted_data` (or `encryptedData`) and `iv` from `wx.getPhoneNumber`, decrypted with the session key of the user's WeChat login; the watermark appid must be the app's WeChat appid. Binds the number once only (login status 30) and credits the app's one-time phone reward (`phone_reward`, `/admin/profile/config`, default 0) under the ledger key `wx_phone:<app>:<user>`. `data`: `phone`, `reward`. Codes: 0 ok, -1 empty parameter, -2 WeChat not configured, -3 a number is already bound, -4 no valid session key (log in with WeChat again), -5 wrong openid, -6 no phone number in the data, -7 decryption or parsing failed (also: a wrong session key, or the watermark of another mini-program).",
        },
        wx_phone,
    );
    r.add::<OpenidReq, AuthStatus, _, _>(
        RouteDoc {
            path: "/api/auth_status/",
            methods: GET_POST,
            tag,
            summary: "查询认证状态",
            description: "Bearer token; `openid` must be the token's user. `is_phone`: a number is bound; `is_wx_run`: WeRun data was reported; `is_email`, `is_real_name`, `is_face`, `is_mp`: always false (no e-mail, real-name, face or official-account verification is offered); `eye_status` the user's latest fundus-photo submission (`/api/apply_audit/`): `audit` in review, `success` approved (and `is_eye` true), `failed` rejected, `need` nothing submitted. Codes: 0 ok, -1 empty parameter, -2 wrong openid.",
        },
        auth_status,
    );
}

async fn update(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<UpdateReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -3)?;
    mini_update(&state, &caller.session, p).await?;
    Ok(mini::ok(json!({})))
}

async fn wx_phone(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<WxPhoneReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -5)?;
    let data = p
        .encrypted_data
        .ok_or_else(|| AppError::missing("encrypted_data"))?;
    let iv = p.iv.ok_or_else(|| AppError::missing("iv"))?;
    let answer = mini_wx_phone(&state, &caller.session, &data, &iv).await?;
    Ok(mini::ok(json!(answer)))
}

async fn auth_status(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let status = mini_auth_status(&state, &caller.session).await?;
    Ok(mini::ok(json!(status)))
}
