//! Login: WeChat `jscode2session`, Alipay `alipay.system.oauth.token` (RSA2-signed), and dev
//! login; then our own session token.
//!
//! The provider's `session_key` is stored on the user row and used only on the server (to
//! decrypt the platform's encrypted data); it never appears in an answer or a log line. Session
//! tokens are random and stored only as their SHA-256.

use std::time::Duration;

use base64::Engine;
use rand::Rng;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::Deserialize;

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
/// Alipay console hands it out. Signing runs in ring, whose RSA is constant-time.
fn private_key(text: &str) -> Result<RsaKeyPair, AppError> {
    let text = text.trim();
    let bad = |e: String| {
        AppError::NotConfigured(format!("the app's Alipay private key does not parse: {e}"))
    };
    let rejected = |e: ring::error::KeyRejected| bad(e.to_string());
    if text.starts_with("-----BEGIN RSA") {
        let der =
            PrivatePkcs1KeyDer::from_pem_slice(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        return RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(rejected);
    }
    if text.starts_with("-----BEGIN") {
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        return RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(rejected);
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|e| bad(e.to_string()))?;
    RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .map_err(rejected)
}

/// Reads the Alipay platform's public key (X.509 SubjectPublicKeyInfo, as PEM or bare base64
/// DER) and returns the PKCS#1 `RSAPublicKey` inside it, the form ring verifies with.
fn public_key(text: &str) -> Result<Vec<u8>, AppError> {
    let text = text.trim();
    let bad = |e: String| {
        AppError::NotConfigured(format!("the app's Alipay public key does not parse: {e}"))
    };
    let der = if text.starts_with("-----BEGIN") {
        SubjectPublicKeyInfoDer::from_pem_slice(text.as_bytes())
            .map_err(|e| bad(e.to_string()))?
            .to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text.split_whitespace().collect::<String>())
            .map_err(|e| bad(e.to_string()))?
    };
    let info =
        spki::SubjectPublicKeyInfoRef::try_from(der.as_slice()).map_err(|e| bad(e.to_string()))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(bad(format!("not an RSA key ({})", info.algorithm.oid)));
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad("the key's bit string is not whole bytes".into()))
}

/// `rsaEncryption`, the algorithm of an RSA SubjectPublicKeyInfo (RFC 8017 A.1).
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

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
pub fn rsa2_sign(key: &RsaKeyPair, content: &str) -> Result<String, AppError> {
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        content.as_bytes(),
        &mut signature,
    )
    .map_err(|_| AppError::NotConfigured("the app's Alipay private key cannot sign".into()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(signature))
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
    let sign = rsa2_sign(&key, &alipay_sign_content(&params))?;
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
            .ok_or_else(|| AppError::Provider("Alipay answer is not signed".into()))?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
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

    const APP_PRIVATE_PEM: &str = include_str!("../tests/fixtures/alipay_app_private.pem");
    const APP_PRIVATE_PKCS1_PEM: &str =
        include_str!("../tests/fixtures/alipay_app_private_pkcs1.pem");
    const APP_PUBLIC_PEM: &str = include_str!("../tests/fixtures/alipay_app_public.pem");

    /// The base64 body of a PEM text, as the Alipay console shows keys.
    fn bare(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn keys_parse_in_every_form_and_signatures_verify() {
        let public = public_key(APP_PUBLIC_PEM).expect("PEM public key");
        assert_eq!(
            public_key(&bare(APP_PUBLIC_PEM)).expect("bare public key"),
            public
        );
        for text in [
            APP_PRIVATE_PEM.to_string(),
            APP_PRIVATE_PKCS1_PEM.to_string(),
            bare(APP_PRIVATE_PEM),
            bare(APP_PRIVATE_PKCS1_PEM),
        ] {
            let key = private_key(&text).expect("private key");
            let sign = rsa2_sign(&key, "a=1&b=2").expect("sign");
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sign)
                .expect("base64");
            let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public);
            assert!(verifier.verify(b"a=1&b=2", &sig).is_ok());
            assert!(verifier.verify(b"a=1&b=3", &sig).is_err());
        }
    }

    #[test]
    fn keys_that_do_not_parse_are_named() {
        for text in [
            "",
            "not base64 !",
            "AAAA",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let Err(AppError::NotConfigured(message)) = private_key(text) else {
                panic!("{text:?} parsed as a private key");
            };
            assert!(message.contains("private key does not parse"), "{message}");
        }
        let Err(AppError::NotConfigured(message)) = public_key(&bare(APP_PRIVATE_PEM)) else {
            panic!("a private key parsed as a public key");
        };
        assert!(message.contains("public key does not parse"), "{message}");
    }
}
