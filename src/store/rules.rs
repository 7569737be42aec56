//! Earning rules: which reported event earns how many points, capped per user per day.

use serde::Serialize;
use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Db;

/// One earning rule of an app.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EarningRule {
    pub app_id: String,
    /// The reported `type`, e.g. `VIEW_STUDIO`.
    pub event_type: String,
    /// Points per rewarded report.
    pub points: i64,
    /// Most rewarded reports per user per business day; 0 = no cap.
    pub daily_cap: i64,
    pub description: String,
    pub enabled: bool,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct RulesDb {
    pub db: Db,
}

fn rule_from_row(r: &sqlx::any::AnyRow) -> Result<EarningRule, sqlx::Error> {
    Ok(EarningRule {
        app_id: r.try_get(0)?,
        event_type: r.try_get(1)?,
        points: r.try_get(2)?,
        daily_cap: r.try_get(3)?,
        description: r.try_get(4)?,
        enabled: r.try_get::<i64, _>(5)? != 0,
        updated_at: r.try_get(6)?,
    })
}

const RULE_COLUMNS: &str =
    "app_id, event_type, points, daily_cap, description, enabled, updated_at";

impl RulesDb {
    pub async fn get(
        &self,
        app_id: &str,
        event_type: &str,
    ) -> Result<Option<EarningRule>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM earning_rules WHERE app_id = $1 AND event_type = $2"
        ))
        .bind(app_id)
        .bind(event_type)
        .fetch_optional(&self.db.read)
        .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    pub async fn list(&self, app_id: &str) -> Result<Vec<EarningRule>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM earning_rules WHERE app_id = $1 ORDER BY event_type"
        ))
        .bind(app_id)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Creates or replaces the rule for `(app, event type)`.
    pub async fn upsert(&self, rule: &EarningRule) -> Result<(), sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO earning_rules (app_id, event_type, points, daily_cap, description, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (app_id, event_type) DO UPDATE SET points = excluded.points, \
             daily_cap = excluded.daily_cap, description = excluded.description, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(rule.app_id.as_str())
        .bind(rule.event_type.as_str())
        .bind(rule.points)
        .bind(rule.daily_cap)
        .bind(rule.description.as_str())
        .bind(i64::from(rule.enabled))
        .bind(now)
        .execute(&self.db.write)
        .await?;
        Ok(())
    }

    /// Deletes a rule; returns whether it existed.
    pub async fn delete(&self, app_id: &str, event_type: &str) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM earning_rules WHERE app_id = $1 AND event_type = $2")
                .bind(app_id)
                .bind(event_type)
                .execute(&self.db.write)
                .await?
                .rows_affected()
                == 1,
        )
    }
}
