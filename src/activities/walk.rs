//! Walk: WeRun steps per user per business day, the daily steps rank, and exchanging a day's
//! steps for points once a day; also the per-app cover images (000 `v2/kingkong/cover_img.json`).
//!
//! Steps arrive encrypted by the platform: AES-128-CBC with PKCS#7 padding, the key being the
//! user's WeChat `session_key` (stored at login, base64 of 16 bytes), the IV sent with the data.
//! The plaintext is `{"stepInfoList":[{"timestamp","step"}...],"watermark":{"appid",...}}`; the
//! watermark's appid must be the app's own WeChat appid, so data encrypted for another
//! mini-program is refused. Only today's entry (business time) is used: a day keeps the most
//! steps reported for it and the time that maximum was first reported, which breaks ties on the
//! daily rank.
//!
//! Exchange: `points = steps / rate` (rate per app, default [`WALK_RATE_DEFAULT`] steps per
//! point), once per user per business day under the ledger key `walk:<app>:<day>:<user>`, so
//! the database refuses a second credit whatever happens. Within one process a second exchange
//! while the first is committing, or after it, is refused as already done.
//!
//! Routes: 000 `v2/walk/get.json`, `v2/walk/rank.json`, `v2/walk/exchange.json`,
//! `v2/kingkong/cover_img.json`; 003 `/api/wx_run/`; admin `/admin/walk/config`,
//! `/admin/covers`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::Engine;
use points_actors::activity::Refusal;
use points_actors::leaderboard::{BoardKey, ReportSteps};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::leaderboard::{profiles, standings};
use crate::activities::Moment;
use crate::auth;
use crate::clock::BizClock;
use crate::db::Db;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{ok, ok_with, own_user, Gift};
use crate::facades::miniapp::{self, own_openid, Mini};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::SessionUser;

/// Steps per point of a fresh app.
pub const WALK_RATE_DEFAULT: i64 = 300;
/// Largest configurable rate.
pub const WALK_RATE_MAX: i64 = 1_000_000;
/// Largest one-time reward for authorising WeRun.
pub const WALK_AUTH_REWARD_MAX: i64 = 1_000_000;
/// Most steps a day may count; WeRun itself stops near 100k, more is forged or broken data.
pub const WALK_DAY_STEPS_MAX: i64 = 200_000;
/// Largest encrypted payload accepted (WeRun's 31 days take about 2 KiB).
pub const WALK_ENCRYPTED_BYTES_MAX: usize = 16 * 1024;
/// Entries of `v2/walk/rank.json`.
pub const WALK_RANK_TOP: usize = 50;
/// Longest cover image URL.
pub const COVER_URL_CHARS_MAX: usize = 1024;

type GiftReply = Result<HttpResponse, Failure<Gift>>;
type MiniReply = Result<HttpResponse, Failure<Mini>>;

/// Exchanges being committed in this process, by ledger key: a second request for the same
/// user and day is refused at once instead of racing the first to the ledger.
pub type Walk = crate::activities::InFlightKeys;

// ----- decryption -----

/// Why encrypted platform data could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// The session key is absent or not base64 of 16 bytes.
    BadKey,
    /// The data, IV, padding or plaintext is wrong (also: a wrong key, which shows as padding).
    BadData(String),
}

fn b64(raw: &str) -> Option<Vec<u8>> {
    // A form body that did not escape `+` turns it into a space; base64 never holds spaces.
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .ok()
}

/// Decrypts WeChat's `encryptedData` with the user's `session_key` and the `iv` (all base64):
/// AES-128-CBC, PKCS#7 padding.
pub fn decrypt_wechat(session_key: &str, data: &str, iv: &str) -> Result<Vec<u8>, DecryptError> {
    let key = b64(session_key)
        .filter(|k| k.len() == 16)
        .ok_or(DecryptError::BadKey)?;
    if data.len() > WALK_ENCRYPTED_BYTES_MAX {
        return Err(DecryptError::BadData("encryptedData too large".into()));
    }
    let iv = b64(iv)
        .filter(|v| v.len() == 16)
        .ok_or_else(|| DecryptError::BadData("iv must be base64 of 16 bytes".into()))?;
    let data = b64(data)
        .filter(|d| !d.is_empty() && d.len() % 16 == 0)
        .ok_or_else(|| DecryptError::BadData("encryptedData is not AES-CBC ciphertext".into()))?;
    cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .map_err(|_| DecryptError::BadKey)?
        .decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|_| DecryptError::BadData("decryption failed (wrong key or data)".into()))
}

#[derive(Deserialize)]
struct WeRun {
    #[serde(rename = "stepInfoList")]
    step_info_list: Vec<StepInfo>,
    watermark: Watermark,
}

#[derive(Deserialize)]
struct StepInfo {
    /// Epoch seconds of the day's start.
    timestamp: i64,
    step: i64,
}

#[derive(Deserialize)]
struct Watermark {
    appid: String,
}

/// Today's steps in decrypted WeRun data (0 when today is not listed), after checking the
/// watermark's appid and every entry's range.
pub fn today_steps(
    plaintext: &[u8],
    appid: &str,
    clock: &BizClock,
    today: &str,
) -> Result<i64, DecryptError> {
    let run: WeRun = serde_json::from_slice(plaintext)
        .map_err(|e| DecryptError::BadData(format!("not WeRun data: {e}")))?;
    if run.watermark.appid != appid {
        return Err(DecryptError::BadData(
            "the data was encrypted for another mini-program (watermark appid)".into(),
        ));
    }
    let mut steps = 0;
    for info in &run.step_info_list {
        if !(0..=WALK_DAY_STEPS_MAX).contains(&info.step) {
            return Err(DecryptError::BadData(format!(
                "step count {} out of range",
                info.step
            )));
        }
        let day = clock.format_date(info.timestamp.saturating_mul(1000));
        if day == today {
            steps = steps.max(info.step);
        }
    }
    Ok(steps)
}

// ----- storage -----

/// Per-app walk settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalkConfig {
    pub app_id: String,
    /// Steps per point.
    pub rate: i64,
    /// Points granted once for authorising WeRun through 003 `/api/wx_run/` (0: none).
    pub auth_reward: i64,
}

async fn config(db: &Db, app_id: &str) -> Result<WalkConfig, sqlx::Error> {
    let row = sqlx::query("SELECT rate, auth_reward FROM walk_settings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.read)
        .await?;
    Ok(match row {
        Some(r) => WalkConfig {
            app_id: app_id.to_string(),
            rate: r.try_get(0)?,
            auth_reward: r.try_get(1)?,
        },
        None => WalkConfig {
            app_id: app_id.to_string(),
            rate: WALK_RATE_DEFAULT,
            auth_reward: 0,
        },
    })
}

/// Stores `steps` for the user's `day` unless more were stored already; returns the day's
/// maximum and when it was first reported.
async fn record_steps(
    db: &Db,
    session: &SessionUser,
    day: &str,
    steps: i64,
    now: i64,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query(
        "INSERT INTO walk_steps (user_id, day, app_id, steps, reached_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id, day) DO UPDATE \
         SET steps = excluded.steps, reached_at = excluded.reached_at, updated_at = excluded.updated_at \
         WHERE excluded.steps > walk_steps.steps",
    )
    .bind(session.user_id)
    .bind(day)
    .bind(session.app_id.as_str())
    .bind(steps)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(day_steps(db, session.user_id, day)
        .await?
        .unwrap_or((steps, now)))
}

/// The user's stored steps of `day` and when they were reached.
async fn day_steps(db: &Db, user_id: i64, day: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT steps, reached_at FROM walk_steps WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(day)
            .fetch_optional(&db.read)
            .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

async fn session_key(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    let key: Option<Option<String>> =
        sqlx::query_scalar("SELECT session_key FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(key.flatten().filter(|k| !k.is_empty()))
}

async fn entry_exists(db: &Db, app_id: &str, idem_key: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM ledger_entries WHERE app_id = $1 AND idem_key = $2")
            .bind(app_id)
            .bind(idem_key)
            .fetch_optional(&db.read)
            .await?;
    Ok(found.is_some())
}

/// The ledger key of a user's exchange of `day`.
pub fn exchange_key(app_id: &str, day: &str, user_id: i64) -> String {
    format!("walk:{app_id}:{day}:{user_id}")
}

// ----- ingestion -----

/// Why reported steps were refused; each dialect has its own code for each.
enum IngestError {
    /// The app has no WeChat appid to check the watermark against.
    NoWechat,
    /// No usable session key (log in with WeChat again).
    BadSessionKey,
    /// The data does not decrypt or parse, or belongs to another mini-program.
    Undecryptable(String),
    Other(AppError),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        IngestError::Other(e.into())
    }
}

impl From<AppError> for IngestError {
    fn from(e: AppError) -> Self {
        IngestError::Other(e)
    }
}

/// Decrypts the caller's WeRun data, stores today's steps (keeping the day's maximum) and
/// tells the leaderboard. Returns today's steps as stored.
async fn ingest(
    state: &AppState,
    session: &SessionUser,
    data: &str,
    iv: &str,
) -> Result<i64, IngestError> {
    let app = auth::app(state, &session.app_id).await?;
    let (appid, _) = auth::wechat_credentials(state, &app).ok_or(IngestError::NoWechat)?;
    let key = session_key(&state.stores.db, session.user_id)
        .await?
        .ok_or(IngestError::BadSessionKey)?;
    let now = Moment::now(&state.clock);
    let steps = decrypt_wechat(&key, data, iv)
        .and_then(|plain| today_steps(&plain, &appid, &state.clock, &now.day))
        .map_err(|e| match e {
            DecryptError::BadKey => IngestError::BadSessionKey,
            DecryptError::BadData(m) => IngestError::Undecryptable(m),
        })?;
    if steps == 0 {
        let stored = day_steps(&state.stores.db, session.user_id, &now.day).await?;
        return Ok(stored.map_or(0, |(s, _)| s));
    }
    let (steps, reached_at) =
        record_steps(&state.stores.db, session, &now.day, steps, now.ms).await?;
    state.leaderboard.do_send(ReportSteps {
        app_id: session.app_id.clone(),
        day: now.day,
        user_id: session.user_id,
        steps,
        reached_at,
    });
    Ok(steps)
}

// ----- routes -----

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<WalkGetReq, StepCount, _, _>(
        RouteDoc {
            path: "/v2/walk/get.json",
            methods: GET_POST,
            tag,
            summary: "上传微信运动步数: report today's steps",
            description: "Bearer token; `user_id` must be the token's user. `encryption` is WeChat's `wx.getWeRunData` result, as a JSON object `{\"encryptedData\",\"iv\"}` or that object as a JSON string. It is decrypted with the session key of the user's WeChat login (AES-128-CBC) and its watermark appid must be the app's WeChat appid. `data.count`: today's steps (the most reported today), entered into today's rank. Codes: 400 missing or undecryptable data, or no WeChat session key (log in with WeChat again); 501 WeChat not configured for the app.",
        },
        walk_get,
    );
    r.add::<UserReq, Vec<RankItem>, _, _>(
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

    r.add::<WxRunReq, StepCount, _, _>(
        RouteDoc {
            path: "/api/wx_run/",
            methods: GET_POST,
            tag: "003 mini-program",
            summary: "微信运动授权",
            description: "Bearer token; `openid` must be the token's user. `encryptedData` and `iv` from `wx.getWeRunData`, decrypted with the session key of the user's WeChat login. Stores today's steps (entering today's rank) and, the first time, grants the app's WeRun authorisation reward (`auth_reward`, see `/admin/walk/config`). `data.count`: today's steps. Codes: 0 ok, -1 empty parameter, -2 WeChat not configured, -3 no valid session key, -4 wrong openid, -5 decryption or parsing failed (also: watermark of another mini-program).",
        },
        wx_run,
    );

    let tag = "admin";
    r.add::<AppReq, WalkConfig, _, _>(
        RouteDoc {
            path: "/admin/walk/config",
            methods: GET,
            tag,
            summary: "Walk settings of an app",
            description: "`app_id` (default `default`). `rate`: steps per point (default 300); `auth_reward`: points granted once for authorising WeRun (default 0).",
        },
        get_config,
    );
    r.add::<ConfigReq, WalkConfig, _, _>(
        RouteDoc {
            path: "/admin/walk/config",
            methods: POST,
            tag,
            summary: "Set the walk settings of an app",
            description: "`app_id` (default `default`), `rate` 1-1000000, `auth_reward` 0-1000000; an omitted field keeps its value. A new rate applies to exchanges from now on.",
        },
        save_config,
    );
    r.add::<AppReq, CoversView, _, _>(
        RouteDoc {
            path: "/admin/covers",
            methods: GET,
            tag,
            summary: "Cover images of an app",
            description: "`app_id` (default `default`).",
        },
        get_covers,
    );
    r.add::<CoversReq, CoversView, _, _>(
        RouteDoc {
            path: "/admin/covers",
            methods: POST,
            tag,
            summary: "Set the cover images of an app",
            description: "`app_id` (default `default`); `lottery_cover_img`, `walk_cover_img`, `pickup_cover_img` URLs of at most 1024 characters (an empty string clears one, an omitted field keeps its value).",
        },
        save_covers,
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
pub struct WxRunReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    #[serde(
        default,
        rename = "encryptedData",
        deserialize_with = "lenient::opt_string"
    )]
    pub encrypted_data: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub iv: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub auth_reward: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct CoversReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Absent keeps the stored value; `""` clears it.
    #[serde(default)]
    pub lottery_cover_img: Option<String>,
    #[serde(default)]
    pub walk_cover_img: Option<String>,
    #[serde(default)]
    pub pickup_cover_img: Option<String>,
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

#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Covers {
    pub lottery_cover_img: String,
    pub walk_cover_img: String,
    pub pickup_cover_img: String,
}

#[derive(Serialize, ToSchema)]
pub struct CoversView {
    pub app_id: String,
    #[serde(flatten)]
    pub covers: Covers,
}

fn app_or_default(app: &Option<String>) -> String {
    app.clone().unwrap_or_else(|| "default".into())
}

/// `encryption` as `(encryptedData, iv)`.
fn encryption_fields(raw: Option<Value>) -> Result<(String, String), AppError> {
    let value = match raw {
        None | Some(Value::Null) => return Err(AppError::missing("encryption")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(AppError::missing("encryption"))
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
            "encryption must be a JSON object {\"encryptedData\",\"iv\"}",
        ));
    }
    Ok((field("encryptedData")?, field("iv")?))
}

async fn walk_get(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<WalkGetReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let (data, iv) = encryption_fields(p.encryption)?;
    let count = ingest(&state, &caller.session, &data, &iv)
        .await
        .map_err(|e| match e {
            IngestError::NoWechat => {
                AppError::NotConfigured("WeChat is not configured for this app".into())
            }
            IngestError::BadSessionKey => AppError::invalid(
                "no valid WeChat session key for this user: log in with WeChat again",
            ),
            IngestError::Undecryptable(m) => AppError::invalid(m),
            IngestError::Other(e) => e,
        })?;
    Ok(ok(json!(StepCount { count })))
}

async fn walk_rank(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let now = Moment::now(&state.clock);
    let board = standings(
        &state,
        &s.app_id,
        BoardKey::Steps(now.day.clone()),
        WALK_RANK_TOP,
        Some(s.user_id),
    )
    .await?;
    let mut ids: Vec<i64> = board.top.iter().map(|r| r.user_id).collect();
    ids.push(s.user_id);
    let profiles = profiles(&state.stores.db, &ids).await?;
    let items: Vec<RankItem> = board
        .top
        .iter()
        .map(|r| {
            let p = profiles.get(&r.user_id).cloned().unwrap_or_default();
            RankItem {
                nick: p.nick,
                avatar: p.avatar,
                count: r.score.value,
            }
        })
        .collect();
    let me = profiles.get(&s.user_id).cloned().unwrap_or_default();
    let config = config(&state.stores.db, &s.app_id).await?;
    let exchanged = entry_exists(
        &state.stores.db,
        &s.app_id,
        &exchange_key(&s.app_id, &now.day, s.user_id),
    )
    .await?;
    Ok(ok_with(
        json!(items),
        &[
            ("my_count", json!(board.mine.map_or(0, |m| m.score.value))),
            ("my_rank", json!(board.mine.map_or(0, |m| m.rank))),
            ("my_nick", json!(me.nick)),
            ("my_avatar", json!(me.avatar)),
            ("rate", json!(config.rate)),
            ("is_exchanged", json!(exchanged)),
        ],
    ))
}

async fn walk_exchange(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let now = Moment::now(&state.clock);
    let key = exchange_key(&s.app_id, &now.day, s.user_id);
    let Some(_guard) = state.activities.walk.begin(&key) else {
        return Err(AppError::Refused(Refusal::AlreadyDone).into());
    };
    if entry_exists(&state.stores.db, &s.app_id, &key).await? {
        return Err(AppError::Refused(Refusal::AlreadyDone).into());
    }
    let config = config(&state.stores.db, &s.app_id).await?;
    let steps = day_steps(&state.stores.db, s.user_id, &now.day)
        .await?
        .map_or(0, |(steps, _)| steps);
    let amount = steps / config.rate;
    if amount < 1 {
        return Err(AppError::Refused(Refusal::Other {
            en: format!(
                "not enough steps: {} steps buy one point, {steps} walked today",
                config.rate
            ),
            zh: format!("步数不足，满{}步才能兑换1积分", config.rate),
        })
        .into());
    }
    let user = points::user(&state, &s.app_id, &s.platform_uid).await?;
    let description = format!("步数兑换: {steps}步");
    let reference = format!("walk:{}", now.day);
    let result = points::apply(
        &state,
        ChangeRequest {
            user: &user,
            amount,
            kind: "walk",
            idem_key: Some(key),
            reference: &reference,
            description: &description,
            expires_at: None,
            limits: Vec::new(),
        },
    )
    .await;
    match result {
        Ok(_) => Ok(ok(json!([]))),
        // The key was used today with another amount (another process exchanged first).
        Err(AppError::Conflict(_)) => Err(AppError::Refused(Refusal::AlreadyDone).into()),
        Err(e) => Err(e.into()),
    }
}

async fn cover_img(state: web::Data<AppState>, p: Params<AppReq, Gift>) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(covers(&state.stores.db, &app.id).await?)))
}

async fn wx_run(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<WxRunReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    let (Some(_), Some(data), Some(iv)) = (&p.openid, &p.encrypted_data, &p.iv) else {
        return Err(AppError::Coded(-1, "参数字段不能为空".into()).into());
    };
    own_openid(&caller, &p.openid, -4)?;
    let s = &caller.session;
    let count = ingest(&state, s, data, iv).await.map_err(|e| match e {
        IngestError::NoWechat => AppError::Coded(-2, "微信配置为空".into()),
        IngestError::BadSessionKey => AppError::Coded(-3, "错误的session key".into()),
        IngestError::Undecryptable(m) => AppError::Coded(-5, format!("解析失败: {m}")),
        IngestError::Other(e) => e,
    })?;
    let config = config(&state.stores.db, &s.app_id).await?;
    if config.auth_reward > 0 {
        let user = points::user(&state, &s.app_id, &s.platform_uid).await?;
        let granted = points::apply(
            &state,
            ChangeRequest {
                user: &user,
                amount: config.auth_reward,
                kind: "walk_auth",
                idem_key: Some(format!("walk_auth:{}:{}", s.app_id, s.user_id)),
                reference: "wx_run",
                description: "微信运动授权奖励",
                expires_at: None,
                limits: Vec::new(),
            },
        )
        .await;
        match granted {
            // Conflict: rewarded before, under another configured amount.
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(miniapp::ok(json!(StepCount { count })))
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state.stores.db, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    if p.rate.is_some_and(|r| !(1..=WALK_RATE_MAX).contains(&r)) {
        return Err(AppError::invalid(format!("rate must be 1-{WALK_RATE_MAX}")).into());
    }
    if p.auth_reward
        .is_some_and(|r| !(0..=WALK_AUTH_REWARD_MAX).contains(&r))
    {
        return Err(
            AppError::invalid(format!("auth_reward must be 0-{WALK_AUTH_REWARD_MAX}")).into(),
        );
    }
    let old = config(&state.stores.db, &app.id).await?;
    let new = WalkConfig {
        app_id: app.id.clone(),
        rate: p.rate.unwrap_or(old.rate),
        auth_reward: p.auth_reward.unwrap_or(old.auth_reward),
    };
    sqlx::query(
        "INSERT INTO walk_settings (app_id, rate, auth_reward, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id) DO UPDATE SET rate = excluded.rate, auth_reward = excluded.auth_reward, \
         updated_at = excluded.updated_at",
    )
    .bind(app.id.as_str())
    .bind(new.rate)
    .bind(new.auth_reward)
    .bind(crate::clock::now_ms())
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!(new)))
}

async fn covers(db: &Db, app_id: &str) -> Result<Covers, sqlx::Error> {
    let row = sqlx::query(
        "SELECT lottery_cover_img, walk_cover_img, pickup_cover_img FROM cover_images WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await?;
    row.map(|r| {
        Ok(Covers {
            lottery_cover_img: r.try_get(0)?,
            walk_cover_img: r.try_get(1)?,
            pickup_cover_img: r.try_get(2)?,
        })
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

async fn get_covers(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    let covers = covers(&state.stores.db, &app.id).await?;
    Ok(ok(json!(CoversView {
        app_id: app.id,
        covers,
    })))
}

async fn save_covers(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<CoversReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    let fields: HashMap<&str, &Option<String>> = HashMap::from([
        ("lottery_cover_img", &p.lottery_cover_img),
        ("walk_cover_img", &p.walk_cover_img),
        ("pickup_cover_img", &p.pickup_cover_img),
    ]);
    for (name, value) in &fields {
        if value.as_ref().is_some_and(|v| {
            v.chars().count() > COVER_URL_CHARS_MAX || v.chars().any(char::is_control)
        }) {
            return Err(AppError::invalid(format!(
                "{name} must be a URL of at most {COVER_URL_CHARS_MAX} printable characters"
            ))
            .into());
        }
    }
    let old = covers(&state.stores.db, &app.id).await?;
    let pick =
        |new: &Option<String>, old: String| new.as_ref().map_or(old, |v| v.trim().to_string());
    let new = Covers {
        lottery_cover_img: pick(&p.lottery_cover_img, old.lottery_cover_img),
        walk_cover_img: pick(&p.walk_cover_img, old.walk_cover_img),
        pickup_cover_img: pick(&p.pickup_cover_img, old.pickup_cover_img),
    };
    sqlx::query(
        "INSERT INTO cover_images (app_id, lottery_cover_img, walk_cover_img, pickup_cover_img, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id) DO UPDATE SET \
         lottery_cover_img = excluded.lottery_cover_img, walk_cover_img = excluded.walk_cover_img, \
         pickup_cover_img = excluded.pickup_cover_img, updated_at = excluded.updated_at",
    )
    .bind(app.id.as_str())
    .bind(new.lottery_cover_img.as_str())
    .bind(new.walk_cover_img.as_str())
    .bind(new.pickup_cover_img.as_str())
    .bind(crate::clock::now_ms())
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!(CoversView {
        app_id: app.id,
        covers: new,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    const KEY: [u8; 16] = *b"0123456789abcdef";
    const IV: [u8; 16] = *b"fedcba9876543210";

    fn encrypt(key: &[u8; 16], plain: &str) -> String {
        let ct = cbc::Encryptor::<aes::Aes128>::new(key.into(), &IV.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(ct)
    }

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn decrypts_with_the_right_key_only() {
        let plain = r#"{"stepInfoList":[],"watermark":{"appid":"wx1"}}"#;
        let data = encrypt(&KEY, plain);
        let out = decrypt_wechat(&enc(&KEY), &data, &enc(&IV)).expect("decrypts");
        assert_eq!(out, plain.as_bytes());
        let wrong = decrypt_wechat(&enc(b"another-key-16by"), &data, &enc(&IV));
        assert!(matches!(wrong, Err(DecryptError::BadData(_))), "{wrong:?}");
        assert_eq!(
            decrypt_wechat("not base64!", &data, &enc(&IV)),
            Err(DecryptError::BadKey)
        );
        assert_eq!(
            decrypt_wechat(&enc(b"short"), &data, &enc(&IV)),
            Err(DecryptError::BadKey)
        );
        assert!(matches!(
            decrypt_wechat(&enc(&KEY), &data, &enc(b"short")),
            Err(DecryptError::BadData(_))
        ));
        // A form body that did not escape '+' still decodes.
        let spaced = data.replace('+', " ");
        assert!(decrypt_wechat(&enc(&KEY), &spaced, &enc(&IV)).is_ok());
    }

    #[test]
    fn todays_entry_counts_and_the_watermark_must_match() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        // 2026-01-02 00:00 in Shanghai is 2026-01-01 16:00 UTC.
        let today = 1_767_283_200_i64;
        let plain = format!(
            r#"{{"stepInfoList":[{{"timestamp":{},"step":900}},{{"timestamp":{today},"step":4321}}],"watermark":{{"appid":"wx1","timestamp":1}}}}"#,
            today - 86_400
        );
        assert_eq!(
            today_steps(plain.as_bytes(), "wx1", &clock, "2026-01-02"),
            Ok(4321)
        );
        assert_eq!(
            today_steps(plain.as_bytes(), "wx1", &clock, "2026-01-03"),
            Ok(0)
        );
        assert!(matches!(
            today_steps(plain.as_bytes(), "wx-other", &clock, "2026-01-02"),
            Err(DecryptError::BadData(_))
        ));
        let huge =
            r#"{"stepInfoList":[{"timestamp":1,"step":99999999}],"watermark":{"appid":"wx1"}}"#;
        assert!(today_steps(huge.as_bytes(), "wx1", &clock, "2026-01-02").is_err());
        assert!(today_steps(b"not json", "wx1", &clock, "2026-01-02").is_err());
    }

    #[test]
    fn encryption_comes_as_object_or_string() {
        let obj = json!({"encryptedData": "a", "iv": "b"});
        assert_eq!(
            encryption_fields(Some(obj.clone())),
            Ok(("a".into(), "b".into()))
        );
        assert_eq!(
            encryption_fields(Some(Value::String(obj.to_string()))),
            Ok(("a".into(), "b".into()))
        );
        assert!(matches!(encryption_fields(None), Err(AppError::Missing(_))));
        assert!(matches!(
            encryption_fields(Some(json!({"iv": "b"}))),
            Err(AppError::Missing(_))
        ));
        assert!(matches!(
            encryption_fields(Some(json!("not json"))),
            Err(AppError::Invalid(_))
        ));
        assert!(matches!(
            encryption_fields(Some(json!([1]))),
            Err(AppError::Invalid(_))
        ));
    }
}
