//! Login: WeChat `jscode2session`, Alipay `alipay.system.oauth.token` (RSA2-signed), and dev
//! login; then our own session token.
//!
//! The provider's `session_key` is stored on the user row and used only on the server (to
//! decrypt the platform's encrypted data); it never appears in an answer or a log line. Session
//! tokens are random and stored only as their SHA-256.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::now_ms;
use crate::error::AppError;
use crate::http::token_hash;
use crate::state::AppState;
use crate::store::{App, User};

/// How long a call to a login provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest login code accepted from a client.
const LOGIN_CODE_BYTES_MAX: usize = 256;

/// Which platform a login code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Wechat,
    Alipay,
}

/// A completed login.
pub struct Login {
    pub user: User,
    pub is_new: bool,
    /// The new session token (shown once, stored hashed).
    pub token: String,
}

/// Looks up an app; unknown apps are refused.
pub async fn app(state: &AppState, app_id: &str) -> Result<App, AppError> {
    state
        .caches
        .apps
        .get_or_load(app_id, || state.stores.accounts.app(app_id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("unknown app_id {app_id:?}")))
}

/// Exchanges a platform login code for a user and a fresh session token.
pub async fn login(
    state: &AppState,
    app_id: &str,
    provider: Provider,
    code: &str,
) -> Result<Login, AppError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(AppError::missing("code"));
    }
    if code.len() > LOGIN_CODE_BYTES_MAX {
        return Err(AppError::invalid("login code too long"));
    }
    let app = app(state, app_id).await?;
    let identity = match provider {
        Provider::Wechat => match wechat_credentials(state, &app) {
            Some((appid, secret)) => wechat_login(state, &appid, &secret, code).await?,
            None => dev_identity(state, code, "WeChat")?,
        },
        Provider::Alipay => match (
            app.settings.alipay_app_id.as_deref(),
            app.settings.alipay_private_key.as_deref(),
        ) {
            (Some(alipay_app), Some(key)) => {
                alipay_login(
                    state,
                    alipay_app,
                    key,
                    app.settings.alipay_public_key.as_deref(),
                    code,
                )
                .await?
            }
            _ => dev_identity(state, code, "Alipay")?,
        },
    };
    let (user, is_new) = state
        .stores
        .accounts
        .login_user(
            &app.id,
            &identity.uid,
            identity.provider,
            identity.session_key.as_deref(),
            identity.unionid.as_deref(),
        )
        .await?;
    let token = issue_session(state, &user).await?;
    tracing::info!(app = %app.id, user = user.id, provider = identity.provider, is_new, "login");
    Ok(Login {
        user,
        is_new,
        token,
    })
}

/// Creates a session for `user` and returns its token.
pub async fn issue_session(state: &AppState, user: &User) -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let ttl = i64::try_from(state.settings.session_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let revoked = state
        .stores
        .accounts
        .create_session(
            &token_hash(&token),
            user,
            now_ms().saturating_add(ttl),
            state.settings.bounds.sessions_per_user,
        )
        .await?;
    for hash in &revoked {
        state.caches.sessions.invalidate(hash);
    }
    Ok(token)
}

/// The WeChat credentials of an app; the default app falls back to `POINTS_WECHAT_*`.
pub fn wechat_credentials(state: &AppState, app: &App) -> Option<(String, String)> {
    match (&app.settings.wechat_appid, &app.settings.wechat_secret) {
        (Some(a), Some(s)) => Some((a.clone(), s.clone())),
        _ if app.id == "default" => {
            match (&state.settings.wechat_appid, &state.settings.wechat_secret) {
                (Some(a), Some(s)) => Some((a.clone(), s.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

struct Identity {
    uid: String,
    provider: &'static str,
    session_key: Option<String>,
    unionid: Option<String>,
}

fn dev_identity(state: &AppState, code: &str, platform: &str) -> Result<Identity, AppError> {
    if !state.settings.dev_login {
        return Err(AppError::NotConfigured(format!(
            "{platform} login is not configured for this app"
        )));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || code.len() > 64
    {
        return Err(AppError::invalid(
            "dev login code must be 1-64 letters, digits, '_' or '-'",
        ));
    }
    Ok(Identity {
        uid: format!("dev_{code}"),
        provider: "dev",
        session_key: None,
        unionid: None,
    })
}

#[derive(Deserialize)]
struct WechatSession {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

async fn wechat_login(
    state: &AppState,
    appid: &str,
    secret: &str,
    code: &str,
) -> Result<Identity, AppError> {
    let url = format!("{}/sns/jscode2session", state.settings.wechat_api_base);
    let answer = state
        .http
        .get(&url)
        .query(&[
            ("appid", appid),
            ("secret", secret),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ])
        .timeout(PROVIDER_TIMEOUT)
        .send()
        .await
        .map_err(|e| AppError::Provider(format!("WeChat unreachable: {}", e.without_url())))?;
    let body: WechatSession = answer.json().await.map_err(|e| {
        AppError::Provider(format!("WeChat answer unreadable: {}", e.without_url()))
    })?;
    if let Some(code) = body.errcode.filter(|c| *c != 0) {
        return Err(AppError::Provider(format!(
            "WeChat refused the code ({code}: {})",
            body.errmsg.unwrap_or_default()
        )));
    }
    let openid = body
        .openid
        .filter(|o| !o.is_empty())
        .ok_or_else(|| AppError::Provider("WeChat answered without openid".into()))?;
    Ok(Identity {
        uid: openid,
        provider: "wechat",
        session_key: body.session_key,
        unionid: body.unionid,
    })
}

/// Reads an RSA private key given as PEM (PKCS#8 or PKCS#1) or as bare base64 DER, the way the
/// Alipay console hands it out.
fn private_key(text: &str) -> Result<RsaPrivateKey, AppError> {
    let text = text.trim();
    let bad = |_| AppError::NotConfigured("the app's Alipay private key does not parse".into());
    if text.starts_with("-----BEGIN RSA") {
        return RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| bad(e.to_string()));
    }
    if text.starts_with("-----BEGIN") {
        return RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| bad(e.to_string()));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|e| bad(e.to_string()))?;
    RsaPrivateKey::from_pkcs8_der(&der)
        .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
        .map_err(|e| bad(e.to_string()))
}

fn public_key(text: &str) -> Result<RsaPublicKey, AppError> {
    let text = text.trim();
    let bad = |e: String| {
        AppError::NotConfigured(format!("the app's Alipay public key does not parse: {e}"))
    };
    if text.starts_with("-----BEGIN") {
        return RsaPublicKey::from_public_key_pem(text).map_err(|e| bad(e.to_string()));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|e| bad(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| bad(e.to_string()))
}

/// The string Alipay signs: every non-empty parameter but `sign`, sorted by name, `k=v` joined
/// with `&`.
pub fn alipay_sign_content(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params
        .iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RSA2 (SHA256withRSA, PKCS#1 v1.5) signature, base64.
pub fn rsa2_sign(key: &RsaPrivateKey, content: &str) -> String {
    let signer = SigningKey::<Sha256>::new(key.clone());
    base64::engine::general_purpose::STANDARD.encode(signer.sign(content.as_bytes()).to_bytes())
}

/// The raw text of the JSON object that follows `"name":` in `body`, as Alipay signs it.
fn raw_json_member<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("\"{name}\"");
    let start = body.find(&marker)? + marker.len();
    let rest = &body[start..];
    let open = rest.find('{')?;
    let bytes = rest.as_bytes();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[open..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

async fn alipay_login(
    state: &AppState,
    alipay_app_id: &str,
    private_key_text: &str,
    alipay_public_key: Option<&str>,
    code: &str,
) -> Result<Identity, AppError> {
    let key = private_key(private_key_text)?;
    let timestamp = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let mut params: Vec<(&str, String)> = vec![
        ("app_id", alipay_app_id.to_string()),
        ("method", "alipay.system.oauth.token".into()),
        ("format", "JSON".into()),
        ("charset", "utf-8".into()),
        ("sign_type", "RSA2".into()),
        ("timestamp", timestamp),
        ("version", "1.0".into()),
        ("grant_type", "authorization_code".into()),
        ("code", code.to_string()),
    ];
    let sign = rsa2_sign(&key, &alipay_sign_content(&params));
    params.push(("sign", sign));
    let answer = state
        .http
        .post(&state.settings.alipay_gateway)
        .form(&params)
        .timeout(PROVIDER_TIMEOUT)
        .send()
        .await
        .map_err(|e| AppError::Provider(format!("Alipay unreachable: {}", e.without_url())))?;
    let text = answer.text().await.map_err(|e| {
        AppError::Provider(format!("Alipay answer unreadable: {}", e.without_url()))
    })?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| AppError::Provider("Alipay answer is not JSON".into()))?;
    if let Some(err) = body.get("error_response") {
        return Err(AppError::Provider(format!(
            "Alipay refused the code ({} {})",
            err.get("code").and_then(|v| v.as_str()).unwrap_or_default(),
            err.get("sub_msg")
                .or_else(|| err.get("msg"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        )));
    }
    const NODE: &str = "alipay_system_oauth_token_response";
    let node = body
        .get(NODE)
        .ok_or_else(|| AppError::Provider("Alipay answer lacks the token response".into()))?;
    if let Some(pem) = alipay_public_key {
        let public = public_key(pem)?;
        let raw = raw_json_member(&text, NODE)
            .ok_or_else(|| AppError::Provider("Alipay answer lacks the token response".into()))?;
        let sig = body
            .get("sign")
            .and_then(|v| v.as_str())
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .and_then(|b| Signature::try_from(b.as_slice()).ok())
            .ok_or_else(|| AppError::Provider("Alipay answer is not signed".into()))?;
        VerifyingKey::<Sha256>::new(public)
            .verify(raw.as_bytes(), &sig)
            .map_err(|_| AppError::Provider("Alipay answer signature does not verify".into()))?;
    }
    let uid = node
        .get("user_id")
        .or_else(|| node.get("open_id"))
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::Provider("Alipay answered without user_id".into()))?;
    Ok(Identity {
        uid: uid.to_string(),
        provider: "alipay",
        session_key: None,
        unionid: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_content_sorts_and_skips_sign_and_empty() {
        let params = vec![
            ("method", "m".to_string()),
            ("app_id", "1".to_string()),
            ("sign", "x".to_string()),
            ("empty", String::new()),
        ];
        assert_eq!(alipay_sign_content(&params), "app_id=1&method=m");
    }

    #[test]
    fn raw_member_keeps_the_exact_text() {
        let body = r#"{"a_response":{"x":"}{\"","n":{"m":1}},"sign":"s"}"#;
        assert_eq!(
            raw_json_member(body, "a_response"),
            Some(r#"{"x":"}{\"","n":{"m":1}}"#)
        );
    }
}
