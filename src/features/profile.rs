//! The user's profile and authorisations: nickname, avatar, gender and phone number, the login
//! status that 000 reports (10 logged in, 20 profile authorised, 30 phone bound) and 003's
//! authorisation flags.
//!
//! **Login status** only rises: a profile update lifts 10 to 20, a bound phone sets 30, and a
//! later profile update leaves 30 alone (`CASE` in the same `UPDATE`, so a race cannot lower it).
//!
//! **000 phone** (`v2/user/auth/phone.json`): `encrypted` is Alipay's `my.getPhoneNumber`
//! response, AES-128-CBC with PKCS#7 padding and a zero IV under the app's AES key
//! (`settings.aes_key`, base64 of 16 bytes, as configured in the Alipay console). The plaintext
//! is Alipay's JSON `{"code":"10000","msg":"Success","mobile":"..."}`. Binding again replaces
//! the number (people change phones); the status stays 30.
//!
//! **003 phone** (`/api/wx_phone/`): WeChat's `encrypted_data`/`iv` decrypted with the session
//! key of the user's WeChat login, watermark appid checked. A number binds once only: the
//! `UPDATE ... WHERE phone IS NULL` decides, so two racing requests bind one number. The app's
//! one-time phone reward (`/admin/profile/config`, default 0) is credited through the ledger under
//! the key `wx_phone:<app>:<user>`, so it is paid at most once per user however requests race.
//!
//! Changed users are dropped from the user cache (`state.caches.users`).
//!
//! Routes: 000 `v2/user/auth/info.json`, `v2/user/auth/phone.json`; 003 `/api/update/`,
//! `/api/wx_phone/`, `/api/auth_status/`; admin `/admin/profile/config`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::activities::walk::{decrypt_wechat, DecryptError};
use crate::auth;
use crate::clock::now_ms;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{ok, own_user, Gift};
use crate::facades::miniapp::{self, own_openid, Mini};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Empty, Params, RouteDoc, Routes};
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::SessionUser;

/// Longest nickname, in characters.
pub const PROFILE_NICK_CHARS_MAX: usize = 64;
/// Longest avatar link, in characters.
pub const PROFILE_AVATAR_CHARS_MAX: usize = 1000;
/// Longest country, province, city or language, in characters.
pub const PROFILE_PLACE_CHARS_MAX: usize = 64;
/// Largest one-time phone reward, in points.
pub const PROFILE_PHONE_REWARD_MAX: i64 = 1_000_000;
/// Login status: logged in.
pub const LOGIN_STATUS_LOGGED_IN: i64 = 10;
/// Login status: profile authorised.
pub const LOGIN_STATUS_PROFILE: i64 = 20;
/// Login status: phone bound.
pub const LOGIN_STATUS_PHONE: i64 = 30;

/// Base64 of the 16 zero bytes Alipay uses as the IV of its encrypted responses.
const ZERO_IV_B64: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

type GiftReply = Result<HttpResponse, Failure<Gift>>;
type MiniReply = Result<HttpResponse, Failure<Mini>>;

// ----- rules (pure) -----

/// 000 gender `M`/`F` as stored (1 male, 2 female; 0 unknown when absent).
pub fn gift_gender(raw: Option<&str>) -> Result<i64, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(0),
        Some("M") | Some("m") => Ok(1),
        Some("F") | Some("f") => Ok(2),
        Some(_) => Err(AppError::invalid("gender must be M or F")),
    }
}

/// A phone number as stored: 5-20 characters of digits, with an optional leading `+`.
pub fn valid_phone(raw: &str) -> Option<String> {
    let p = raw.trim();
    let digits = p.strip_prefix('+').unwrap_or(p);
    (p.len() <= 20 && digits.len() >= 5 && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| p.to_string())
}

/// The mobile number in Alipay's decrypted `getPhoneNumber` response.
pub fn alipay_mobile(plain: &[u8]) -> Result<String, AppError> {
    let v: Value = serde_json::from_slice(plain)
        .map_err(|_| AppError::invalid("decrypted data is not JSON"))?;
    if let Some(code) = v.get("code").and_then(Value::as_str) {
        if code != "10000" {
            return Err(AppError::invalid(format!("Alipay answered code {code}")));
        }
    }
    v.get("mobile")
        .and_then(Value::as_str)
        .and_then(valid_phone)
        .ok_or_else(|| AppError::invalid("no valid mobile number in the data"))
}

fn check_len(field: &str, v: &Option<String>, max: usize) -> Result<(), AppError> {
    match v {
        Some(s) if s.chars().count() > max => Err(AppError::invalid(format!(
            "{field} is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

// ----- storage -----

/// The fields one profile update sets; `None` keeps the stored value.
#[derive(Default)]
struct ProfileUpdate {
    nick: Option<String>,
    avatar: Option<String>,
    gender: Option<i64>,
    places: Vec<(&'static str, String)>,
}

/// Writes `u` and lifts the login status to at least 20, in one statement per user row.
async fn update_profile(
    state: &AppState,
    s: &SessionUser,
    u: ProfileUpdate,
) -> Result<(), AppError> {
    let db = &state.stores.db;
    let profile = if u.places.is_empty() {
        None
    } else {
        let raw: String = sqlx::query_scalar("SELECT profile FROM users WHERE id = $1")
            .bind(s.user_id)
            .fetch_one(&db.write)
            .await?;
        let mut map: Map<String, Value> = serde_json::from_str(&raw).unwrap_or_default();
        for (k, v) in u.places {
            map.insert(k.into(), Value::String(v));
        }
        Some(Value::Object(map).to_string())
    };
    sqlx::query(
        "UPDATE users SET nick = COALESCE($1, nick), avatar = COALESCE($2, avatar), \
         gender = COALESCE($3, gender), profile = COALESCE($4, profile), \
         login_status = CASE WHEN login_status < $5 THEN $5 ELSE login_status END, \
         updated_at = $6 WHERE id = $7",
    )
    .bind(u.nick)
    .bind(u.avatar)
    .bind(u.gender)
    .bind(profile)
    .bind(LOGIN_STATUS_PROFILE)
    .bind(now_ms())
    .bind(s.user_id)
    .execute(&db.write)
    .await?;
    forget_user(state, s);
    Ok(())
}

fn forget_user(state: &AppState, s: &SessionUser) {
    // Same key as `points::user`.
    state
        .caches
        .users
        .invalidate(&format!("{}\u{0}{}", s.app_id, s.platform_uid));
}

/// Binds `phone` and sets status 30; with `once`, only if no number is bound yet.
/// Returns whether the row changed.
async fn bind_phone(
    state: &AppState,
    s: &SessionUser,
    phone: &str,
    once: bool,
) -> Result<bool, AppError> {
    let guard = if once { " AND phone IS NULL" } else { "" };
    let done = sqlx::query(&format!(
        "UPDATE users SET phone = $1, login_status = $2, updated_at = $3 WHERE id = $4{guard}"
    ))
    .bind(phone)
    .bind(LOGIN_STATUS_PHONE)
    .bind(now_ms())
    .bind(s.user_id)
    .execute(&state.stores.db.write)
    .await?
    .rows_affected()
        > 0;
    forget_user(state, s);
    Ok(done)
}

async fn phone_of(state: &AppState, user_id: i64) -> Result<Option<String>, AppError> {
    let phone: Option<String> = sqlx::query_scalar("SELECT phone FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&state.stores.db.write)
        .await?;
    Ok(phone.filter(|p| !p.is_empty()))
}

/// Per-app profile settings.
#[derive(Serialize, ToSchema)]
pub struct ProfileConfig {
    pub app_id: String,
    /// Points credited once for binding a phone number through 003 `/api/wx_phone/`.
    pub phone_reward: i64,
}

async fn config(state: &AppState, app_id: &str) -> Result<ProfileConfig, AppError> {
    let reward: Option<i64> =
        sqlx::query_scalar("SELECT phone_reward FROM profile_settings WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&state.stores.db.read)
            .await?;
    Ok(ProfileConfig {
        app_id: app_id.into(),
        phone_reward: reward.unwrap_or(0),
    })
}

// ----- shapes -----

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
    #[serde(default, deserialize_with = "lenient::opt_string")]
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

/// An admin request of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `POST /admin/profile/config`.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub phone_reward: Option<i64>,
}

/// 003 `/api/auth_status/` flags; `true` means done.
#[derive(Serialize, ToSchema)]
pub struct AuthStatus {
    pub is_phone: bool,
    pub is_email: bool,
    pub is_real_name: bool,
    pub is_face: bool,
    pub is_wx_run: bool,
    pub is_mp: bool,
    pub is_eye: bool,
    /// `success`, `audit`, `failed` or `need`.
    pub eye_status: String,
}

/// 003 `/api/wx_phone/` answer.
#[derive(Serialize, ToSchema)]
pub struct WxPhoneData {
    /// The bound number.
    pub phone: String,
    /// Points credited for binding (0 when the app grants none).
    pub reward: i64,
}

// ----- routes -----

/// Registers the profile routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
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

    let tag = "003 mini-program";
    r.add::<UpdateReq, Empty, _, _>(
        RouteDoc {
            path: "/api/update/",
            methods: POST,
            tag,
            summary: "更新用户信息",
            description: "Bearer token; `openid` must be the token's user. Stores `nickname` (at most 64 characters), `avatar` (at most 1000), `sex` (0 unknown, 1 male, 2 female) and `country`/`province`/`city`/`language` (at most 64 each); absent fields keep their value, at least one must be given. `iv`/`encryptedData` are accepted and not used. Login status rises to 20 as with 000 auth info. Codes: 0 ok, -1 empty parameter (no openid, or nothing to update), -2 wrong gender, -3 wrong openid, -4 update failed (a value too long, or storage unavailable; nothing changed).",
        },
        mini_update,
    );
    r.add::<WxPhoneReq, WxPhoneData, _, _>(
        RouteDoc {
            path: "/api/wx_phone/",
            methods: POST,
            tag,
            summary: "手机认证",
            description: "Bearer token; `openid` must be the token's user. `encrypted_data` and `iv` from `wx.getPhoneNumber`, decrypted with the session key of the user's WeChat login; the watermark appid must be the app's WeChat appid. Binds the number once only (login status 30) and credits the app's one-time phone reward (`phone_reward`, `/admin/profile/config`, default 0) under the ledger key `wx_phone:<app>:<user>`. `data`: `phone`, `reward`. Codes: 0 ok, -1 empty parameter, -2 WeChat not configured, -3 a number is already bound, -4 no valid session key (log in with WeChat again), -5 wrong openid, -6 no phone number in the data, -7 decryption or parsing failed (also: a wrong session key, or the watermark of another mini-program).",
        },
        mini_wx_phone,
    );
    r.add::<OpenidReq, AuthStatus, _, _>(
        RouteDoc {
            path: "/api/auth_status/",
            methods: GET_POST,
            tag,
            summary: "查询认证状态",
            description: "Bearer token; `openid` must be the token's user. `is_phone`: a number is bound; `is_wx_run`: WeRun data was reported; `is_email`, `is_real_name`, `is_face`, `is_mp`: always false (no e-mail, real-name, face or official-account verification is offered); `is_eye` false and `eye_status` `need` (the fundus-photo task is not offered). Codes: 0 ok, -1 empty parameter, -2 wrong openid.",
        },
        mini_auth_status,
    );

    let tag = "admin";
    r.add::<AppReq, ProfileConfig, _, _>(
        RouteDoc {
            path: "/admin/profile/config",
            methods: GET,
            tag,
            summary: "Profile settings of an app",
            description: "`app_id` (default `default`). `phone_reward`: points credited once for binding a phone through 003 `/api/wx_phone/` (default 0).",
        },
        get_config,
    );
    r.add::<ConfigReq, ProfileConfig, _, _>(
        RouteDoc {
            path: "/admin/profile/config",
            methods: POST,
            tag,
            summary: "Set the profile settings of an app",
            description: "`app_id` (default `default`), `phone_reward` 0-1000000 (required). A bad value answers 400 and changes nothing.",
        },
        save_config,
    );
}

fn app_or_default(app: &Option<String>) -> String {
    app.clone().unwrap_or_else(|| "default".into())
}

async fn auth_info(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<AuthInfoReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let info = match p.info {
        None | Some(Value::Null) => return Err(AppError::missing("info").into()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(&s)
            .map_err(|_| AppError::invalid("info must be a JSON object"))?,
        Some(v) => v,
    };
    let Value::Object(info) = info else {
        return Err(AppError::invalid("info must be an object").into());
    };
    let field = |k: &str| -> Result<Option<String>, AppError> {
        match info.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(AppError::invalid(format!("info.{k} must be a string"))),
        }
    };
    let nick = field("nick")?;
    let avatar = field("avatar")?;
    let gender = field("gender")?;
    check_len("nick", &nick, PROFILE_NICK_CHARS_MAX)?;
    check_len("avatar", &avatar, PROFILE_AVATAR_CHARS_MAX)?;
    let gender = gender
        .as_deref()
        .map(|g| gift_gender(Some(g)))
        .transpose()?;
    update_profile(
        &state,
        &caller.session,
        ProfileUpdate {
            nick,
            avatar,
            gender,
            places: Vec::new(),
        },
    )
    .await?;
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
    let app = auth::app(&state, &caller.session.app_id).await?;
    let key = app
        .settings
        .aes_key
        .ok_or_else(|| AppError::NotConfigured("no AES key configured for the app".into()))?;
    let plain = decrypt_wechat(&key, &encrypted, ZERO_IV_B64).map_err(|e| match e {
        DecryptError::BadKey => {
            AppError::NotConfigured("the app's AES key is not base64 of 16 bytes".into())
        }
        DecryptError::BadData(m) => AppError::invalid(m),
    })?;
    let phone = alipay_mobile(&plain)?;
    bind_phone(&state, &caller.session, &phone, false).await?;
    Ok(ok(json!([])))
}

async fn mini_update(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<UpdateReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -3)?;
    let gender = match &p.sex {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(g @ 0..=2) => Some(g),
                _ if matches!(v, Value::String(s) if s.trim().is_empty()) => None,
                _ => return Err(AppError::Coded(-2, "错误的性别".into()).into()),
            }
        }
    };
    let too_long = |e: AppError| AppError::Coded(-4, format!("更新失败: {}", e.message()));
    check_len("nickname", &p.nickname, PROFILE_NICK_CHARS_MAX).map_err(too_long)?;
    check_len("avatar", &p.avatar, PROFILE_AVATAR_CHARS_MAX).map_err(too_long)?;
    let mut places = Vec::new();
    for (k, v) in [
        ("country", &p.country),
        ("province", &p.province),
        ("city", &p.city),
        ("language", &p.language),
    ] {
        check_len(k, v, PROFILE_PLACE_CHARS_MAX).map_err(too_long)?;
        if let Some(v) = v {
            places.push((k, v.trim().to_string()));
        }
    }
    if p.nickname.is_none() && p.avatar.is_none() && gender.is_none() && places.is_empty() {
        return Err(AppError::missing("nickname").into());
    }
    update_profile(
        &state,
        &caller.session,
        ProfileUpdate {
            nick: p.nickname.map(|s| s.trim().to_string()),
            avatar: p.avatar.map(|s| s.trim().to_string()),
            gender,
            places,
        },
    )
    .await
    .map_err(|e| match e {
        AppError::Unavailable(_) => AppError::Coded(-4, "更新失败".into()),
        other => other,
    })?;
    Ok(miniapp::ok(json!({})))
}

async fn mini_wx_phone(
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
    let s = &caller.session;
    let app = auth::app(&state, &s.app_id).await?;
    let (appid, _) = auth::wechat_credentials(&state, &app)
        .ok_or_else(|| AppError::Coded(-2, "微信配置不存在".into()))?;
    if phone_of(&state, s.user_id).await?.is_some() {
        return Err(AppError::Coded(-3, "仅能认证一次".into()).into());
    }
    let key: Option<String> = sqlx::query_scalar("SELECT session_key FROM users WHERE id = $1")
        .bind(s.user_id)
        .fetch_one(&state.stores.db.write)
        .await?;
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AppError::Coded(-4, "错误的session key".into()))?;
    let plain = decrypt_wechat(&key, &data, &iv).map_err(|e| match e {
        DecryptError::BadKey => AppError::Coded(-4, "错误的session key".into()),
        DecryptError::BadData(m) => AppError::Coded(-7, format!("解析数据失败: {m}")),
    })?;
    let parsed: Value =
        serde_json::from_slice(&plain).map_err(|_| AppError::Coded(-7, "解析数据失败".into()))?;
    if parsed["watermark"]["appid"].as_str() != Some(appid.as_str()) {
        return Err(AppError::Coded(-7, "解析数据失败: 水印不属于本小程序".into()).into());
    }
    let raw = parsed["phoneNumber"]
        .as_str()
        .or_else(|| parsed["purePhoneNumber"].as_str())
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| AppError::Coded(-6, "微信用户没有手机号码".into()))?;
    let phone =
        valid_phone(raw).ok_or_else(|| AppError::Coded(-7, "解析数据失败: 手机号码无效".into()))?;
    // The reward first, under its idempotency key: a repeat is a replay, so a request that then
    // loses the binding race below pays nothing extra.
    let reward = config(&state, &s.app_id).await?.phone_reward;
    if reward > 0 {
        let user = points::user(&state, &s.app_id, &s.platform_uid).await?;
        let granted = points::apply(
            &state,
            ChangeRequest {
                user: &user,
                amount: reward,
                kind: "wx_phone",
                idem_key: Some(format!("wx_phone:{}:{}", s.app_id, s.user_id)),
                reference: "wx_phone",
                description: "手机认证奖励",
                expires_at: None,
                limits: Vec::new(),
            },
        )
        .await;
        match granted {
            // Conflict: paid before under another configured amount.
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !bind_phone(&state, s, &phone, true).await? {
        return Err(AppError::Coded(-3, "仅能认证一次".into()).into());
    }
    Ok(miniapp::ok(json!(WxPhoneData { phone, reward })))
}

async fn mini_auth_status(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let s = &caller.session;
    let is_phone = phone_of(&state, s.user_id).await?.is_some();
    let wx_run: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM walk_steps WHERE user_id = $1 AND app_id = $2 LIMIT 1")
            .bind(s.user_id)
            .bind(&s.app_id)
            .fetch_optional(&state.stores.db.read)
            .await?;
    Ok(miniapp::ok(json!(AuthStatus {
        is_phone,
        is_email: false,
        is_real_name: false,
        is_face: false,
        is_wx_run: wx_run.is_some(),
        is_mp: false,
        is_eye: false,
        eye_status: "need".into(),
    })))
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    let reward = p
        .phone_reward
        .ok_or_else(|| AppError::missing("phone_reward"))?;
    if !(0..=PROFILE_PHONE_REWARD_MAX).contains(&reward) {
        return Err(AppError::invalid(format!(
            "phone_reward must be 0-{PROFILE_PHONE_REWARD_MAX}"
        ))
        .into());
    }
    sqlx::query(
        "INSERT INTO profile_settings (app_id, phone_reward) VALUES ($1, $2) \
         ON CONFLICT (app_id) DO UPDATE SET phone_reward = excluded.phone_reward",
    )
    .bind(&app.id)
    .bind(reward)
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!(config(&state, &app.id).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gender_and_phone_rules() {
        assert_eq!(gift_gender(Some("M")).expect("M"), 1);
        assert_eq!(gift_gender(Some("F")).expect("F"), 2);
        assert_eq!(gift_gender(None).expect("absent"), 0);
        assert!(gift_gender(Some("X")).is_err());
        assert_eq!(
            valid_phone("+8613800000000").as_deref(),
            Some("+8613800000000")
        );
        assert!(valid_phone("12a45").is_none());
        assert!(valid_phone("123").is_none());
        assert_eq!(
            alipay_mobile(br#"{"code":"10000","msg":"Success","mobile":"13800000000"}"#)
                .expect("mobile"),
            "13800000000"
        );
        assert!(alipay_mobile(br#"{"code":"40004","mobile":"13800000000"}"#).is_err());
    }
}
