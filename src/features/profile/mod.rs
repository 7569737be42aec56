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
//!
//! This file holds the rules and the flows; the SQL is in `store.rs`, the handlers in
//! `routes_gift.rs` (000), `routes_mini.rs` (003) and `routes_admin.rs`.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::activities::walk::{decrypt_wechat, DecryptError, ZERO_IV_B64};
use crate::auth;
use crate::clock::now_ms;
use crate::dialect::Points;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::SessionUser;

mod routes_admin;
mod routes_gift;
mod routes_mini;
pub(crate) mod store;

pub use routes_admin::{AppReq, ConfigReq};
pub use routes_gift::{AuthInfoReq, AuthPhoneReq};
pub use routes_mini::{OpenidReq, UpdateReq, WxPhoneReq};

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

/// Registers the profile routes.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

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
        let raw = store::profile_json(db, s.user_id).await?;
        let mut map: Map<String, Value> = serde_json::from_str(&raw).unwrap_or_default();
        for (k, v) in u.places {
            map.insert(k.into(), Value::String(v));
        }
        Some(Value::Object(map).to_string())
    };
    store::update_profile(
        db,
        s.user_id,
        u.nick,
        u.avatar,
        u.gender,
        profile,
        LOGIN_STATUS_PROFILE,
        now_ms(),
    )
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
    let done = store::bind_phone(
        &state.stores.db,
        s.user_id,
        phone,
        LOGIN_STATUS_PHONE,
        now_ms(),
        once,
    )
    .await?;
    forget_user(state, s);
    Ok(done)
}

async fn phone_of(state: &AppState, user_id: i64) -> Result<Option<String>, AppError> {
    let phone = store::phone(&state.stores.db, user_id).await?;
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
    let reward = store::phone_reward(&state.stores.db, app_id).await?;
    Ok(ProfileConfig {
        app_id: app_id.into(),
        phone_reward: reward.unwrap_or(0),
    })
}

/// Stores the app's one-time phone reward (required, 0 to the maximum); the new settings.
async fn save_config(
    state: &AppState,
    app_id: &str,
    phone_reward: Option<i64>,
) -> Result<ProfileConfig, AppError> {
    let reward = phone_reward.ok_or_else(|| AppError::missing("phone_reward"))?;
    if !(0..=PROFILE_PHONE_REWARD_MAX).contains(&reward) {
        return Err(AppError::invalid(format!(
            "phone_reward must be 0-{PROFILE_PHONE_REWARD_MAX}"
        )));
    }
    store::save_phone_reward(&state.stores.db, app_id, reward).await?;
    config(state, app_id).await
}

// ----- flows -----

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

/// 000 auth info: stores `info` (`{avatar, nick, gender}` or that object as a JSON string).
async fn gift_auth_info(
    state: &AppState,
    s: &SessionUser,
    info: Option<Value>,
) -> Result<(), AppError> {
    let info = match info {
        None | Some(Value::Null) => return Err(AppError::missing("info")),
        Some(Value::String(s)) => serde_json::from_str::<Value>(&s)
            .map_err(|_| AppError::invalid("info must be a JSON object"))?,
        Some(v) => v,
    };
    let Value::Object(info) = info else {
        return Err(AppError::invalid("info must be an object"));
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
        state,
        s,
        ProfileUpdate {
            nick,
            avatar,
            gender,
            places: Vec::new(),
        },
    )
    .await
}

/// 000 auth phone: decrypts Alipay's `encrypted` response and binds its number.
async fn gift_auth_phone(
    state: &AppState,
    s: &SessionUser,
    encrypted: &str,
) -> Result<(), AppError> {
    let app = auth::app(state, &s.app_id).await?;
    let key = app
        .settings
        .aes_key
        .ok_or_else(|| AppError::NotConfigured("no AES key configured for the app".into()))?;
    let plain = decrypt_wechat(&key, encrypted, ZERO_IV_B64).map_err(|e| match e {
        DecryptError::BadKey => {
            AppError::NotConfigured("the app's AES key is not base64 of 16 bytes".into())
        }
        DecryptError::BadData(m) => AppError::invalid(m),
    })?;
    let phone = alipay_mobile(&plain)?;
    bind_phone(state, s, &phone, false).await?;
    Ok(())
}

/// 003 update: checks and stores the plain profile fields of `p`.
async fn mini_update(state: &AppState, s: &SessionUser, p: UpdateReq) -> Result<(), AppError> {
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
                _ => return Err(AppError::Coded(-2, "错误的性别".into())),
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
        return Err(AppError::missing("nickname"));
    }
    update_profile(
        state,
        s,
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
    })
}

/// 003 wx_phone: decrypts WeChat's `data`/`iv`, pays the one-time reward and binds the number.
async fn mini_wx_phone(
    state: &AppState,
    s: &SessionUser,
    data: &str,
    iv: &str,
) -> Result<WxPhoneData, AppError> {
    let app = auth::app(state, &s.app_id).await?;
    let (appid, _) = auth::wechat_credentials(state, &app)
        .ok_or_else(|| AppError::Coded(-2, "微信配置不存在".into()))?;
    if phone_of(state, s.user_id).await?.is_some() {
        return Err(AppError::Coded(-3, "仅能认证一次".into()));
    }
    let key = store::session_key(&state.stores.db, s.user_id).await?;
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AppError::Coded(-4, "错误的session key".into()))?;
    let plain = decrypt_wechat(&key, data, iv).map_err(|e| match e {
        DecryptError::BadKey => AppError::Coded(-4, "错误的session key".into()),
        DecryptError::BadData(m) => AppError::Coded(-7, format!("解析数据失败: {m}")),
    })?;
    let parsed: Value =
        serde_json::from_slice(&plain).map_err(|_| AppError::Coded(-7, "解析数据失败".into()))?;
    if parsed["watermark"]["appid"].as_str() != Some(appid.as_str()) {
        return Err(AppError::Coded(
            -7,
            "解析数据失败: 水印不属于本小程序".into(),
        ));
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
    let reward = config(state, &s.app_id).await?.phone_reward;
    if reward > 0 {
        let user = points::user(state, &s.app_id, &s.platform_uid).await?;
        let granted = points::apply(
            state,
            ChangeRequest {
                user: &user,
                amount: Points::parse(reward)?,
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
            Err(e) => return Err(e),
        }
    }
    if !bind_phone(state, s, &phone, true).await? {
        return Err(AppError::Coded(-3, "仅能认证一次".into()));
    }
    Ok(WxPhoneData { phone, reward })
}

/// 003 auth status of the user.
async fn mini_auth_status(state: &AppState, s: &SessionUser) -> Result<AuthStatus, AppError> {
    let is_phone = phone_of(state, s.user_id).await?.is_some();
    let wx_run = store::has_walk_steps(&state.stores.db, s.user_id, &s.app_id).await?;
    // The fundus-photo review: the user's latest submission to `/api/apply_audit/`.
    let eye_status = crate::features::uploads::audit_status(state, s.user_id).await?;
    Ok(AuthStatus {
        is_phone,
        is_email: false,
        is_real_name: false,
        is_face: false,
        is_wx_run: wx_run,
        is_mp: false,
        is_eye: eye_status == "success",
        eye_status: eye_status.into(),
    })
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
