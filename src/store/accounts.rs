//! Apps (tenants), users and session tokens.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Db;

/// Per-app settings, stored as JSON on the app row. Secrets are never sent back by the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AppSettings {
    /// WeChat mini-program appid and secret (`jscode2session`).
    pub wechat_appid: Option<String>,
    pub wechat_secret: Option<String>,
    /// Alipay open-platform app id, the app's RSA private key (PKCS#8 or PKCS#1 PEM) for RSA2
    /// signatures, and Alipay's public key to check answers (optional).
    pub alipay_app_id: Option<String>,
    pub alipay_private_key: Option<String>,
    pub alipay_public_key: Option<String>,
    /// AES key (base64) for the app's encrypted phone numbers (000 `auth/phone`).
    pub aes_key: Option<String>,
    /// Natural months after which earned points expire (default 12; 0 = never).
    pub expiry_months: Option<u32>,
}

/// Default life of earned points, in natural months.
pub const EXPIRY_MONTHS_DEFAULT: u32 = 12;

impl AppSettings {
    /// A copy safe to show: secrets replaced by a marker.
    pub fn redacted(&self) -> AppSettings {
        let mark = |v: &Option<String>| v.as_ref().map(|_| "<set>".to_string());
        AppSettings {
            wechat_secret: mark(&self.wechat_secret),
            alipay_private_key: mark(&self.alipay_private_key),
            aes_key: mark(&self.aes_key),
            ..self.clone()
        }
    }

    pub fn expiry_months(&self) -> u32 {
        self.expiry_months.unwrap_or(EXPIRY_MONTHS_DEFAULT)
    }
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub name: String,
    pub settings: AppSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user of one app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub app_id: String,
    pub platform_uid: String,
    pub provider: String,
    pub nick: String,
    pub avatar: String,
    pub login_status: i64,
    pub created_at: i64,
}

const USER_COLUMNS: &str =
    "id, app_id, platform_uid, provider, nick, avatar, login_status, created_at";

/// The user a session token belongs to.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: i64,
    pub app_id: String,
    pub platform_uid: String,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub struct AccountsDb {
    pub db: Db,
}

fn app_from_row(row: &sqlx::any::AnyRow) -> Result<App, sqlx::Error> {
    let settings: String = row.try_get(2)?;
    Ok(App {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        // A settings document that no longer parses is treated as empty rather than locking
        // the app out; the admin API always writes valid JSON.
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
    })
}

impl AccountsDb {
    pub async fn app(&self, id: &str) -> Result<Option<App>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, name, settings, created_at, updated_at FROM apps WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db.read)
        .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    pub async fn apps(&self) -> Result<Vec<App>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id, name, settings, created_at, updated_at FROM apps ORDER BY id")
                .fetch_all(&self.db.read)
                .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Creates the app or replaces its name and settings. Returns whether it was created.
    pub async fn upsert_app(
        &self,
        id: &str,
        name: &str,
        settings: &AppSettings,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let json = serde_json::to_string(settings).unwrap_or_else(|_| "{}".into());
        let created = sqlx::query(
            "INSERT INTO apps (id, name, settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(json.as_str())
        .bind(now)
        .execute(&self.db.write)
        .await?
        .rows_affected()
            == 1;
        if !created {
            sqlx::query("UPDATE apps SET name = $1, settings = $2, updated_at = $3 WHERE id = $4")
                .bind(name)
                .bind(json.as_str())
                .bind(now)
                .bind(id)
                .execute(&self.db.write)
                .await?;
        }
        Ok(created)
    }

    pub async fn user_by_uid(
        &self,
        app_id: &str,
        platform_uid: &str,
    ) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as::<_, User>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND platform_uid = $2"
        ))
        .bind(app_id)
        .bind(platform_uid)
        .fetch_optional(&self.db.read)
        .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as::<_, User>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.read)
            .await
    }

    /// Finds or creates the user `(app, platform uid)`, keeping the provider's latest session
    /// key on the server. Returns the user and whether it was created now.
    pub async fn login_user(
        &self,
        app_id: &str,
        platform_uid: &str,
        provider: &str,
        session_key: Option<&str>,
        unionid: Option<&str>,
    ) -> Result<(User, bool), sqlx::Error> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO users (app_id, platform_uid, provider, session_key, unionid, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (app_id, platform_uid) DO NOTHING",
        )
        .bind(app_id)
        .bind(platform_uid)
        .bind(provider)
        .bind(session_key)
        .bind(unionid)
        .bind(now)
        .execute(&self.db.write)
        .await?
        .rows_affected()
            == 1;
        if !inserted && session_key.is_some() {
            sqlx::query(
                "UPDATE users SET session_key = $1, updated_at = $2 WHERE app_id = $3 AND platform_uid = $4",
            )
            .bind(session_key)
            .bind(now)
            .bind(app_id)
            .bind(platform_uid)
            .execute(&self.db.write)
            .await?;
        }
        let user = sqlx::query_as::<_, User>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND platform_uid = $2"
        ))
        .bind(app_id)
        .bind(platform_uid)
        .fetch_one(&self.db.write)
        .await?;
        Ok((user, inserted))
    }

    /// Stores a session (only the token's hash is kept) and revokes the user's oldest sessions
    /// beyond the newest `keep`; answers the hashes of the revoked ones.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &User,
        expires_at: i64,
        keep: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, app_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.id)
        .bind(user.app_id.as_str())
        .bind(expires_at)
        .bind(now_ms())
        .execute(&self.db.write)
        .await?;
        // Everything from the (keep + 1)-th newest on; the index on (user_id, created_at) keeps
        // it to this user's rows.
        sqlx::query_scalar(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2 AND created_at <= \
             (SELECT created_at FROM sessions WHERE user_id = $1 \
              ORDER BY created_at DESC, token_hash DESC LIMIT 1 OFFSET $3) \
             RETURNING token_hash",
        )
        .bind(user.id)
        .bind(token_hash)
        .bind(keep.max(1))
        .fetch_all(&self.db.write)
        .await
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionUser>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.user_id, s.app_id, u.platform_uid, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.db.read)
        .await?;
        row.map(|r| {
            Ok(SessionUser {
                user_id: r.try_get(0)?,
                app_id: r.try_get(1)?,
                platform_uid: r.try_get(2)?,
                expires_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Deletes sessions that expired before `now`.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.db.write)
            .await?
            .rows_affected())
    }
}
