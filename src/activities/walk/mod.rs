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
//!
//! Layout: this file holds the decryption and the walk logic; `store` its SQL (the ledger
//! lookup is in `crate::store::ledger::walk`); `routes_gift`, `routes_mini` and `routes_admin`
//! the handlers of 000, 003 and admin.

use std::collections::HashMap;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::Engine;
use points_actors::activity::Refusal;
use points_actors::leaderboard::{BoardKey, ReportSteps, Standings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::activities::leaderboard::{profiles, standings, Profile};
use crate::auth;
use crate::clock::BizClock;
use crate::clock::Moment;
use crate::dialect::Points;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::ledger::walk as ledger;
use crate::store::SessionUser;

mod routes_admin;
mod routes_gift;
mod routes_mini;
mod store;

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

/// Exchanges being committed in this process, by ledger key: a second request for the same
/// user and day is refused at once instead of racing the first to the ledger.
pub type Walk = crate::runtime::InFlightKeys;

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

// ----- walk -----

/// The IV of Alipay's encrypted responses (`my.getPhoneNumber`, `my.getRunData`): zero bytes,
/// base64.
pub const ZERO_IV_B64: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

/// Today's steps in decrypted Alipay run data (`my.getRunData`'s response decrypted with the
/// app's AES key): its `count`, a number or a string of digits, within the day's range.
pub fn alipay_steps(plaintext: &[u8]) -> Result<i64, DecryptError> {
    let value: serde_json::Value = serde_json::from_slice(plaintext)
        .map_err(|e| DecryptError::BadData(format!("not Alipay run data: {e}")))?;
    let count = match &value["count"] {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
    .ok_or_else(|| DecryptError::BadData("Alipay run data without a step `count`".into()))?;
    if !(0..=WALK_DAY_STEPS_MAX).contains(&count) {
        return Err(DecryptError::BadData(format!(
            "step count {count} out of range"
        )));
    }
    Ok(count)
}

/// Per-app walk settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalkConfig {
    pub app_id: String,
    /// Steps per point.
    pub rate: i64,
    /// Points granted once for authorising WeRun through 003 `/api/wx_run/` (0: none).
    pub auth_reward: i64,
}

/// An app's cover images.
#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Covers {
    pub lottery_cover_img: String,
    pub walk_cover_img: String,
    pub pickup_cover_img: String,
}

/// The ledger key of a user's exchange of `day`.
pub fn exchange_key(app_id: &str, day: &str, user_id: i64) -> String {
    format!("walk:{app_id}:{day}:{user_id}")
}

/// Why reported steps were refused; each dialect has its own code for each.
enum IngestError {
    /// The app has no WeChat appid to check the watermark against.
    NoWechat,
    /// The app has no AES key to decrypt Alipay data with.
    NoAesKey,
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

/// Encrypted steps as a platform sends them.
pub enum StepData<'a> {
    /// WeChat's `wx.getWeRunData`: `encryptedData` and `iv`, under the user's session key.
    Wechat { data: &'a str, iv: &'a str },
    /// Alipay's `my.getRunData` response, under the app's AES key.
    Alipay(&'a str),
}

/// Decrypts the caller's steps, stores today's (keeping the day's maximum) and tells the
/// leaderboard. Returns today's steps as stored.
async fn ingest(
    state: &AppState,
    session: &SessionUser,
    encrypted: StepData<'_>,
) -> Result<i64, IngestError> {
    let app = auth::app(state, &session.app_id).await?;
    let now = Moment::now(&state.clock);
    let steps = match encrypted {
        StepData::Wechat { data, iv } => {
            let (appid, _) = auth::wechat_credentials(state, &app).ok_or(IngestError::NoWechat)?;
            let key = store::session_key(&state.stores.db, session.user_id)
                .await?
                .ok_or(IngestError::BadSessionKey)?;
            decrypt_wechat(&key, data, iv)
                .and_then(|plain| today_steps(&plain, &appid, &state.clock, &now.day))
                .map_err(|e| match e {
                    DecryptError::BadKey => IngestError::BadSessionKey,
                    DecryptError::BadData(m) => IngestError::Undecryptable(m),
                })?
        }
        StepData::Alipay(response) => {
            let key = app.settings.aes_key.ok_or(IngestError::NoAesKey)?;
            decrypt_wechat(&key, response, ZERO_IV_B64)
                .and_then(|plain| alipay_steps(&plain))
                .map_err(|e| match e {
                    DecryptError::BadKey => IngestError::NoAesKey,
                    DecryptError::BadData(m) => IngestError::Undecryptable(m),
                })?
        }
    };
    if steps == 0 {
        let stored = store::day_steps(&state.stores.db, session.user_id, &now.day).await?;
        return Ok(stored.map_or(0, |(s, _)| s));
    }
    let (steps, reached_at) =
        store::record_steps(&state.stores.db, session, &now.day, steps, now.ms).await?;
    let report = ReportSteps {
        app_id: session.app_id.clone(),
        day: now.day,
        user_id: session.user_id,
        steps,
        reached_at,
    };
    if let Some(bus) = &state.bus {
        bus.share_steps(&report);
    }
    state.leaderboard.do_send(report);
    Ok(steps)
}

/// Today's steps rank of the caller's app, with what the caller sees beside it.
struct StepsRank {
    board: Standings,
    /// Profiles of the ranked users and of the caller.
    profiles: HashMap<i64, Profile>,
    /// Steps per point.
    rate: i64,
    /// Today's steps already exchanged.
    exchanged: bool,
}

async fn steps_rank(state: &AppState, s: &SessionUser) -> Result<StepsRank, AppError> {
    let now = Moment::now(&state.clock);
    let board = standings(
        state,
        &s.app_id,
        BoardKey::Steps(now.day.clone()),
        WALK_RANK_TOP,
        Some(s.user_id),
    )
    .await?;
    let mut ids: Vec<i64> = board.top.iter().map(|r| r.user_id).collect();
    ids.push(s.user_id);
    let profiles = profiles(&state.stores.db, &ids).await?;
    let config = store::config(&state.stores.db, &s.app_id).await?;
    let exchanged = ledger::entry_exists(
        &state.stores.db,
        &s.app_id,
        &exchange_key(&s.app_id, &now.day, s.user_id),
    )
    .await?;
    Ok(StepsRank {
        board,
        profiles,
        rate: config.rate,
        exchanged,
    })
}

/// Exchanges the caller's steps of today for points, once per day.
async fn exchange(state: &AppState, s: &SessionUser) -> Result<(), AppError> {
    let now = Moment::now(&state.clock);
    let key = exchange_key(&s.app_id, &now.day, s.user_id);
    let Some(_guard) = state.activities.walk.begin(&key) else {
        return Err(AppError::Refused(Refusal::AlreadyDone));
    };
    if ledger::entry_exists(&state.stores.db, &s.app_id, &key).await? {
        return Err(AppError::Refused(Refusal::AlreadyDone));
    }
    let config = store::config(&state.stores.db, &s.app_id).await?;
    let steps = store::day_steps(&state.stores.db, s.user_id, &now.day)
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
        }));
    }
    let user = points::user(state, &s.app_id, &s.platform_uid).await?;
    let description = format!("步数兑换: {steps}步");
    let reference = format!("walk:{}", now.day);
    let result = points::apply(
        state,
        ChangeRequest {
            user: &user,
            amount: Points::parse(amount)?,
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
        Ok(_) => Ok(()),
        // The key was used today with another amount (another process exchanged first).
        Err(AppError::Conflict(_)) => Err(AppError::Refused(Refusal::AlreadyDone)),
        Err(e) => Err(e),
    }
}

/// Grants the app's WeRun authorisation reward, once per user (nothing when it is 0).
async fn grant_auth_reward(state: &AppState, s: &SessionUser) -> Result<(), AppError> {
    let config = store::config(&state.stores.db, &s.app_id).await?;
    if config.auth_reward > 0 {
        let user = points::user(state, &s.app_id, &s.platform_uid).await?;
        let granted = points::apply(
            state,
            ChangeRequest {
                user: &user,
                amount: Points::parse(config.auth_reward)?,
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
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ----- routes -----

/// Registers the walk routes: 000, then 003, then admin.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
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
}
