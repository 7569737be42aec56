//! The morning slice's own SQL (`morning_configs`, `morning_rounds`, `morning_results`) and its
//! row types; the round's ledger entries and the seal are in `crate::store::ledger::morning`.

use std::collections::HashMap;

use points_actors::morning::{check_key, round_reference, RoundState};
use serde_json::{json, Value};
use sqlx::Row;

use super::{time_of_day, Mode, MorningConfig};
use crate::clock::now_ms;
use crate::clock::parse_time_of_day;
use crate::db::{Col, Db};
use crate::store::ledger::morning as ledger;

/// A stored `morning_configs` row.
#[derive(sqlx::FromRow)]
struct ConfigRow {
    ticket: i64,
    coefficient: f64,
    start_time: String,
    end_time: String,
    mode: String,
    min_points: i64,
    max_points: i64,
    inflation_min: i64,
    inflation_max: i64,
}

/// The stored rules of `app_id` (the defaults when none are stored; unreadable times and modes
/// fall back to the defaults too).
pub(super) async fn load_config(
    db: &Db,
    app_id: &str,
) -> Result<Option<MorningConfig>, sqlx::Error> {
    let row = sqlx::query_as::<_, ConfigRow>(
        "SELECT ticket, coefficient, start_time, end_time, mode, min_points, max_points, \
         inflation_min, inflation_max FROM morning_configs WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row else {
        return Ok(Some(MorningConfig::default()));
    };
    let defaults = MorningConfig::default();
    Ok(Some(MorningConfig {
        ticket: row.ticket,
        coefficient: row.coefficient,
        start: parse_time_of_day(&row.start_time).unwrap_or(defaults.start),
        end: parse_time_of_day(&row.end_time).unwrap_or(defaults.end),
        mode: Mode::parse(&row.mode).unwrap_or(defaults.mode),
        min: row.min_points,
        max: row.max_points,
        inflation_min: row.inflation_min,
        inflation_max: row.inflation_max,
    }))
}

/// Stores the rules of `app_id`, replacing any stored before.
pub(super) async fn save_config(
    db: &Db,
    app_id: &str,
    c: &MorningConfig,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO morning_configs (app_id, ticket, coefficient, start_time, end_time, mode, \
         min_points, max_points, inflation_min, inflation_max, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (app_id) DO UPDATE SET ticket = excluded.ticket, \
         coefficient = excluded.coefficient, start_time = excluded.start_time, \
         end_time = excluded.end_time, mode = excluded.mode, min_points = excluded.min_points, \
         max_points = excluded.max_points, inflation_min = excluded.inflation_min, \
         inflation_max = excluded.inflation_max, updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(c.ticket)
    .bind(c.coefficient)
    .bind(time_of_day(c.start))
    .bind(time_of_day(c.end))
    .bind(c.mode.as_str())
    .bind(c.min)
    .bind(c.max)
    .bind(c.inflation_min)
    .bind(c.inflation_max)
    .bind(now_ms())
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Creates the row of round `(app_id, period)` if missing (the job finds rounds to settle by
/// it) and answers when the round was planned, if it was.
pub(super) async fn ensure_round(
    db: &Db,
    app_id: &str,
    period: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO morning_rounds (app_id, period, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id, period) DO NOTHING",
    )
    .bind(app_id)
    .bind(period)
    .bind(now_ms())
    .execute(&db.write)
    .await?;
    sqlx::query_scalar("SELECT planned_at FROM morning_rounds WHERE app_id = $1 AND period = $2")
        .bind(app_id)
        .bind(period)
        .fetch_one(&db.read)
        .await
}

/// A settled round's stored totals.
#[derive(sqlx::FromRow)]
pub(super) struct RoundTotals {
    pub mode: String,
    pub signups: i64,
    pub checkins: i64,
    pub stakes: i64,
    pub payouts: i64,
}

/// The totals of round `(app_id, period)`, if it is settled.
pub(super) async fn settled_totals(
    db: &Db,
    app_id: &str,
    period: &str,
) -> Result<Option<RoundTotals>, sqlx::Error> {
    sqlx::query_as::<_, RoundTotals>(
        "SELECT mode, signups, checkins, stakes, payouts FROM morning_rounds \
         WHERE app_id = $1 AND period = $2 AND settled_at IS NOT NULL",
    )
    .bind(app_id)
    .bind(period)
    .fetch_optional(&db.read)
    .await
}

/// The mode round `(app_id, period)` was planned with.
pub(super) async fn round_mode(db: &Db, app_id: &str, period: &str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT mode FROM morning_rounds WHERE app_id = $1 AND period = $2",
    )
    .bind(app_id)
    .bind(period)
    .fetch_one(&db.read)
    .await
}

/// Marks round `(app_id, period)` settled with its totals, unless it is already; answers
/// whether this call marked it.
pub(super) async fn mark_settled(
    db: &Db,
    app_id: &str,
    period: &str,
    signups: i64,
    checkins: i64,
    stakes: i64,
    payouts: i64,
) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "UPDATE morning_rounds SET settled_at = $3, signups = $4, checkins = $5, stakes = $6, \
         payouts = $7 WHERE app_id = $1 AND period = $2 AND settled_at IS NULL",
    )
    .bind(app_id)
    .bind(period)
    .bind(now_ms())
    .bind(signups)
    .bind(checkins)
    .bind(stakes)
    .bind(payouts)
    .execute(&db.write)
    .await?
    .rows_affected();
    Ok(marked != 0)
}

/// Unsettled rounds of any app up to period `today`, oldest first: `(app_id, period)`.
pub(super) async fn due_rounds(
    db: &Db,
    today: &str,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query(
        "SELECT app_id, period FROM morning_rounds WHERE settled_at IS NULL AND period <= $1 \
         ORDER BY period, app_id LIMIT $2",
    )
    .bind(today)
    .bind(limit)
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("app_id")?, row.try_get("period")?)))
    .collect()
}

/// Unsettled rounds of `app_id` before `period`, oldest first.
pub(super) async fn unsettled_before(
    db: &Db,
    app_id: &str,
    period: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT period FROM morning_rounds WHERE app_id = $1 AND settled_at IS NULL \
         AND period < $2 ORDER BY period LIMIT $3",
    )
    .bind(app_id)
    .bind(period)
    .bind(limit)
    .fetch_all(&db.read)
    .await
}

/// The latest settled period of an app.
pub(super) async fn latest_settled_period(
    db: &Db,
    app_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT period FROM morning_rounds WHERE app_id = $1 AND settled_at IS NOT NULL \
         ORDER BY period DESC LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await
}

/// One user's stored result of a settled round.
pub(super) struct ResultRow {
    pub period: String,
    pub user_id: i64,
    pub stake: i64,
    pub checked_in: bool,
    pub checked_at: Option<i64>,
    pub streak: i64,
    pub payout: i64,
    pub seen_at: Option<i64>,
}

const RESULT_COLUMNS: &str =
    "r.period, r.user_id, r.stake, r.checked_in, r.checked_at, r.streak, r.payout, r.seen_at";

fn result_row(row: &sqlx::any::AnyRow) -> Result<ResultRow, sqlx::Error> {
    Ok(ResultRow {
        period: row.try_get("period")?,
        user_id: row.try_get("user_id")?,
        stake: row.try_get("stake")?,
        checked_in: row.try_get::<i64, _>("checked_in")? != 0,
        checked_at: row.try_get("checked_at")?,
        streak: row.try_get("streak")?,
        payout: row.try_get("payout")?,
        seen_at: row.try_get("seen_at")?,
    })
}

/// The plan of a round: one row per signed-up user.
pub(super) async fn round_results(
    db: &Db,
    app_id: &str,
    period: &str,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RESULT_COLUMNS} FROM morning_results r WHERE r.app_id = $1 AND r.period = $2 \
         ORDER BY r.user_id"
    ))
    .bind(app_id)
    .bind(period)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(result_row).collect()
}

/// The user's result of their latest settled round.
pub(super) async fn latest_result(
    db: &Db,
    app_id: &str,
    user_id: i64,
) -> Result<Option<ResultRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {RESULT_COLUMNS} FROM morning_results r JOIN morning_rounds m \
         ON m.app_id = r.app_id AND m.period = r.period \
         WHERE r.app_id = $1 AND r.user_id = $2 AND m.settled_at IS NOT NULL \
         ORDER BY r.period DESC LIMIT 1"
    ))
    .bind(app_id)
    .bind(user_id)
    .fetch_optional(&db.read)
    .await?;
    row.as_ref().map(result_row).transpose()
}

/// Marks the user's result of round `period` as seen (by `pop`).
pub(super) async fn mark_seen(
    db: &Db,
    app_id: &str,
    period: &str,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE morning_results SET seen_at = $4 \
         WHERE app_id = $1 AND period = $2 AND user_id = $3 AND seen_at IS NULL",
    )
    .bind(app_id)
    .bind(period)
    .bind(user_id)
    .bind(now_ms())
    .execute(&db.write)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StreakRow {
    user_id: i64,
    streak: i64,
}

/// The streaks of the users who checked in in round `period` of `app_id`.
pub(super) async fn checked_in_streaks(
    db: &Db,
    app_id: &str,
    period: &str,
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    Ok(sqlx::query_as::<_, StreakRow>(
        "SELECT user_id, streak FROM morning_results \
         WHERE app_id = $1 AND period = $2 AND checked_in = 1",
    )
    .bind(app_id)
    .bind(period)
    .fetch_all(&db.read)
    .await?
    .into_iter()
    .map(|row| (row.user_id, row.streak))
    .collect())
}

/// One user's planned result of a round, as `plan_round` stores it.
pub(super) struct PlanRecord {
    pub user_id: i64,
    pub stake: i64,
    pub checked_in: bool,
    pub checked_at: Option<i64>,
    pub streak: i64,
    pub inflation: i64,
    pub payout: i64,
}

/// Stores the plan of round `(app_id, period)` unless one is stored already. One transaction
/// claims the round (`planned_at`, with `mode`), seals it (every signer's check-in counter to
/// its ceiling), reads its facts from the ledger, lets `decide` make the plan from them, and
/// inserts every result.
pub(super) async fn plan_round(
    db: &Db,
    app_id: &str,
    period: &str,
    mode: &str,
    decide: impl FnOnce(&RoundState) -> Vec<PlanRecord>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let claimed = sqlx::query(
        "UPDATE morning_rounds SET planned_at = $3, mode = $4 \
         WHERE app_id = $1 AND period = $2 AND planned_at IS NULL",
    )
    .bind(app_id)
    .bind(period)
    .bind(now_ms())
    .bind(mode)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        // Planned before (by another settlement): that plan stands.
        tx.rollback().await?;
        return Ok(());
    }
    let reference = round_reference(period);
    let entries = ledger::round_sign_check_entries(&mut tx, app_id, &reference).await?;
    let signers = RoundState::from_entries(entries, true);
    if !signers.signed.is_empty() {
        let keys: Vec<String> = signers
            .signed
            .keys()
            .map(|u| check_key(app_id, period, *u))
            .collect();
        ledger::seal_check_ins(db, &mut tx, &keys).await?;
    }
    let entries = ledger::round_sign_check_entries(&mut tx, app_id, &reference).await?;
    let facts = RoundState::from_entries(entries, true);

    let records: Vec<Value> = decide(&facts)
        .iter()
        .map(|r| {
            json!({
                "user_id": r.user_id,
                "stake": r.stake,
                "checked_in": i64::from(r.checked_in),
                "checked_at": r.checked_at,
                "streak": r.streak,
                "inflation": r.inflation,
                "payout": r.payout,
            })
        })
        .collect();
    if !records.is_empty() {
        let source = db.json_records(
            "$3",
            &[
                ("user_id", Col::Int),
                ("stake", Col::Int),
                ("checked_in", Col::Int),
                ("checked_at", Col::Int),
                ("streak", Col::Int),
                ("inflation", Col::Int),
                ("payout", Col::Int),
            ],
        );
        sqlx::query(&format!(
            "INSERT INTO morning_results (app_id, period, user_id, stake, checked_in, checked_at, \
             streak, inflation, payout) \
             SELECT $1, $2, r.user_id, r.stake, r.checked_in, r.checked_at, r.streak, \
             r.inflation, r.payout FROM {source} r WHERE true \
             ON CONFLICT (app_id, period, user_id) DO NOTHING"
        ))
        .bind(app_id)
        .bind(period)
        .bind(Value::Array(records).to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
