//! Dev login through the 000 facade, shared by the load generator's binaries.

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Logs in `code` (the server runs with `POINTS_DEV_LOGIN=1`): (user id, session token).
pub async fn login(client: &reqwest::Client, url: &str, code: &str) -> Result<(String, String)> {
    let body: Value = client
        .post(format!("{url}/v2/user/login.json"))
        .json(&json!({ "auth_code": code }))
        .send()
        .await?
        .json()
        .await?;
    let token = body["data"]["token"]
        .as_str()
        .context("login (is POINTS_DEV_LOGIN=1 set?)")?;
    let user = body["data"]["user_id"].as_str().context("user_id")?;
    Ok((user.to_string(), token.to_string()))
}
