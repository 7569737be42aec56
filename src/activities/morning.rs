//! Morning check-in rounds (早起打卡): per-app rules, the round actors' loader, settlement, the
//! 000 `v2/pick/*` routes and the admin routes.
//!
//! # Rounds
//! A round is named by its period `YYYYMMDD`: the business day on which its members check in.
//! On day D a user signs up for round D+1 by paying the app's ticket (`v2/pick/sign.json`); on
//! D+1 they check in inside the app's window (`v2/pick/pick.json`). Each round has one
//! [`MorningActor`] (found through [`Morning::rounds`]), rebuilt from the round's ledger entries
//! (`pick_sign`, `pick_check`, `pick_pay`, reference `pick:<period>`) when it starts.
//!
//! # Settlement
//! Once the window of a round's day has closed, the round is settled — by the periodic job
//! ([`settle_due`], every minute, oldest round first so streaks chain) or by
//! `POST /admin/morning/settle`. Settling closes the actor (no sign-up or check-in after it),
//! reads the round's facts from the ledger, decides every payout and stores that plan in
//! `morning_results` in one transaction guarded by `morning_rounds.planned_at` (so only one
//! plan is ever stored, whoever settles), then pays the plan, each payout a ledger change with
//! the key `pick:<app>:<period>:pay:<user>`, and marks the round settled. A settlement that runs
//! again, late, or after a crash in the middle reads the same plan and replays the same keys: it
//! pays nothing extra.
//! - mode `random`: each user who checked in gets a CSPRNG draw in `[min, max]`, multiplied by a
//!   draw in `[inflation_min, inflation_max]` (whole numbers) when their streak of consecutive
//!   check-ins reaches a multiple of seven days (the 7th, 14th, ... day in a row). The streak is
//!   chained through the settled results of the day before.
//! - mode `split`: the stakes of everyone signed up (T) go to the k users who checked in: T / k
//!   each, and the remainder one point each to the earliest check-ins; when nobody checked in,
//!   every stake is refunded. Payouts always add up to the stakes exactly.
//!
//! # Decisions
//! - `show`: `period` is the round the user should act on now: today's round while the user is
//!   signed up for it and the window is open (`btn_callback` `PICK`, `btn_click` until they have
//!   checked in), otherwise tomorrow's round (`SIGN`, `btn_click` until they have signed up).
//!   `pool` = stakes of that round × the app's `coefficient` (rounded down), `pick_sum` = its
//!   sign-ups, `diff_sum` = sign-ups not yet checked in, `is_pop` = the user's latest settled
//!   round has a result they have not opened with `pop` yet.
//! - `pop`: the result of the user's latest settled round, marked as seen. Checked in:
//!   `{is_combo_pick, pub_points}` (`is_combo_pick` = the payout was a streak day that inflates).
//!   Signed up but missed (also when the stake was refunded because nobody checked in):
//!   `status:false`, code 410, with a sentence saying so. No settled round: code 410 too.
//! - `rank`: `lark` = earliest check-in of today's round; `lucky` = top payout of the latest
//!   settled round (ties to the earliest check-in); `diligent` = longest streak among the users
//!   who checked in in the latest settled round (streaks still alive; ties to the earliest).
//! - Tests and operators create a round for today with `POST /admin/morning/signups`, which
//!   charges the ticket exactly as a user sign-up does (also useful to migrate sign-ups); the
//!   window is configurable per app, so a test opens it around "now" and closes it again before
//!   settling. No clock override exists.
//! - The websocket topic `morning:<app_id>` carries the state of the app's latest changed round
//!   (`period`, `pick_sum`, `checked_sum`, `diff_sum`, `stakes`, `settled`, `payouts`) after every
//!   check-in and settlement.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::web;
use chrono::NaiveDate;
use points_actors::activity::{ActivityError, Refusal, Registry};
use points_actors::morning::{
    check_key, random_payout, split_payouts, CheckIn, CheckRecord, Close, MorningActor, Pay,
    Payout, RoundEntry, RoundSink, RoundState, RoundView, SignUp, ViewRound,
    MORNING_STREAK_CYCLE_DAYS, PICK_CHECK_KIND, PICK_PAY_KIND, PICK_SIGN_KIND,
};
use points_actors::{LedgerError, Outcome};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::{parse_time_of_day, Moment};
use crate::clock::now_ms;
use crate::db::{Col, Db};
use crate::error::AppError;
use crate::facades::giftpoint::{ok, own_user, Gift, Reply};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::{AppState, TtlCache};
use crate::ws::hub::Hub;

/// Largest ticket (stake) a round may ask, in points.
pub const MORNING_TICKET_MAX: i64 = 1_000_000;
/// Largest `max` of a random payout, in points (before inflation).
pub const MORNING_PAYOUT_MAX: i64 = 1_000_000;
/// Largest inflation factor.
pub const MORNING_INFLATION_MAX: i64 = 100;
/// Largest shown-pool coefficient.
pub const MORNING_COEFFICIENT_MAX: f64 = 1_000.0;
/// How far ahead an operator may sign a user up, in days.
pub const MORNING_SIGNUP_AHEAD_DAYS_MAX: u64 = 31;
/// Rounds one job run settles at most; the next run continues.
pub const MORNING_SETTLE_ROUNDS_MAX: i64 = 1_000;
/// How long settlement waits for check-ins decided before the close to commit.
pub const MORNING_CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Pause between two close attempts while changes are still committing.
const MORNING_CLOSE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Configs change rarely; a change made through this process applies at once (the admin route
/// invalidates it), one made through another process within this time.
pub const MORNING_CONFIG_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most app configs cached.
const MORNING_CONFIG_CACHE_ENTRIES_MAX: usize = 10_000;

/// How a round pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each successful user gets a random amount (000's rule).
    Random,
    /// The stakes are shared among the successful users, exactly.
    Split,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Random => "random",
            Mode::Split => "split",
        }
    }

    pub fn parse(raw: &str) -> Option<Mode> {
        match raw.trim() {
            "random" => Some(Mode::Random),
            "split" => Some(Mode::Split),
            _ => None,
        }
    }
}

/// An app's rules for its rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct MorningConfig {
    /// Points a user stakes to sign up.
    pub ticket: i64,
    /// Shown pool = stakes × coefficient.
    pub coefficient: f64,
    /// Check-in window, seconds of the business day: inclusive start, exclusive end.
    pub start: u32,
    pub end: u32,
    pub mode: Mode,
    /// Random payout bounds (mode `random`).
    pub min: i64,
    pub max: i64,
    /// Multiplier bounds on a streak day (mode `random`).
    pub inflation_min: i64,
    pub inflation_max: i64,
}

impl Default for MorningConfig {
    /// The rules of a fresh app: ticket 10, 05:30-08:30, random 10-100, inflation 1-3.
    fn default() -> Self {
        MorningConfig {
            ticket: 10,
            coefficient: 1.0,
            start: 5 * 3600 + 30 * 60,
            end: 8 * 3600 + 30 * 60,
            mode: Mode::Random,
            min: 10,
            max: 100,
            inflation_min: 1,
            inflation_max: 3,
        }
    }
}

impl MorningConfig {
    /// Checks every rule; the message names the first broken one.
    pub fn validate(&self) -> Result<(), AppError> {
        if !(0..=MORNING_TICKET_MAX).contains(&self.ticket) {
            return Err(AppError::invalid(format!(
                "ticket must be 0-{MORNING_TICKET_MAX}"
            )));
        }
        if !self.coefficient.is_finite()
            || !(0.0..=MORNING_COEFFICIENT_MAX).contains(&self.coefficient)
        {
            return Err(AppError::invalid(format!(
                "coefficient must be 0-{MORNING_COEFFICIENT_MAX}"
            )));
        }
        if self.start >= self.end {
            return Err(AppError::invalid("start_time must be before end_time"));
        }
        if self.min < 0 || self.max > MORNING_PAYOUT_MAX || self.min > self.max {
            return Err(AppError::invalid(format!(
                "min and max must satisfy 0 <= min <= max <= {MORNING_PAYOUT_MAX}"
            )));
        }
        if self.inflation_min < 1
            || self.inflation_max > MORNING_INFLATION_MAX
            || self.inflation_min > self.inflation_max
        {
            return Err(AppError::invalid(format!(
                "inflation must satisfy 1 <= inflation_min <= inflation_max <= {MORNING_INFLATION_MAX}"
            )));
        }
        Ok(())
    }

    /// The shown pool of a round holding `stakes` points.
    pub fn pool(&self, stakes: i64) -> i64 {
        // Both factors are bounded (stakes by the ledger, coefficient by validate): no overflow.
        (stakes as f64 * self.coefficient).floor() as i64
    }

    fn view(&self, app_id: &str) -> MorningConfigView {
        MorningConfigView {
            app_id: app_id.to_string(),
            ticket: self.ticket,
            coefficient: self.coefficient,
            start_time: time_of_day(self.start),
            end_time: time_of_day(self.end),
            mode: self.mode.as_str().to_string(),
            min: self.min,
            max: self.max,
            inflation_min: self.inflation_min,
            inflation_max: self.inflation_max,
        }
    }

    /// `HH:MM-HH:MM`, for sentences.
    fn window_text(&self) -> String {
        let short = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        format!("{}-{}", short(self.start), short(self.end))
    }
}

/// `HH:MM:SS` of a second of the day (`24:00:00` for the end of the day).
fn time_of_day(s: u32) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// The running round actors and the cached app rules.
pub struct Morning {
    /// One actor per (app, period).
    pub rounds: Registry<(String, String), MorningActor>,
    configs: TtlCache<MorningConfig>,
}

impl Default for Morning {
    fn default() -> Self {
        Morning {
            rounds: Registry::default(),
            configs: TtlCache::new(MORNING_CONFIG_CACHE_TTL, MORNING_CONFIG_CACHE_ENTRIES_MAX),
        }
    }
}

// ----- storage -----

async fn load_config(db: &Db, app_id: &str) -> Result<Option<MorningConfig>, sqlx::Error> {
    let row = sqlx::query(
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
    let start: String = row.try_get(2)?;
    let end: String = row.try_get(3)?;
    let mode: String = row.try_get(4)?;
    Ok(Some(MorningConfig {
        ticket: row.try_get(0)?,
        coefficient: row.try_get(1)?,
        start: parse_time_of_day(&start).unwrap_or(defaults.start),
        end: parse_time_of_day(&end).unwrap_or(defaults.end),
        mode: Mode::parse(&mode).unwrap_or(defaults.mode),
        min: row.try_get(5)?,
        max: row.try_get(6)?,
        inflation_min: row.try_get(7)?,
        inflation_max: row.try_get(8)?,
    }))
}

async fn save_config(db: &Db, app_id: &str, c: &MorningConfig) -> Result<(), sqlx::Error> {
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

/// The committed entries of a round, in commit order.
async fn round_entries(db: &Db, app_id: &str, period: &str) -> Result<Vec<RoundEntry>, AppError> {
    let rows = sqlx::query(
        "SELECT user_id, kind, amount, id, created_at FROM ledger_entries \
         WHERE app_id = $1 AND reference = $2 AND kind IN ($3, $4, $5) ORDER BY id",
    )
    .bind(app_id)
    .bind(points_actors::morning::round_reference(period))
    .bind(PICK_SIGN_KIND)
    .bind(PICK_CHECK_KIND)
    .bind(PICK_PAY_KIND)
    .fetch_all(&db.read)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(RoundEntry {
                user_id: row.try_get(0)?,
                kind: row.try_get(1)?,
                amount: row.try_get(2)?,
                entry_id: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// A round's settled totals, if it is settled.
async fn settled_report(
    db: &Db,
    app_id: &str,
    period: &str,
) -> Result<Option<MorningSettleReport>, AppError> {
    let row = sqlx::query(
        "SELECT mode, signups, checkins, stakes, payouts FROM morning_rounds \
         WHERE app_id = $1 AND period = $2 AND settled_at IS NOT NULL",
    )
    .bind(app_id)
    .bind(period)
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(MorningSettleReport {
        app_id: app_id.to_string(),
        period: period.to_string(),
        mode: row.try_get(0)?,
        signups: row.try_get(1)?,
        checkins: row.try_get(2)?,
        stakes: row.try_get(3)?,
        payouts: row.try_get(4)?,
        already_settled: true,
    }))
}

/// One user's stored result of a settled round.
struct ResultRow {
    period: String,
    user_id: i64,
    stake: i64,
    checked_in: bool,
    checked_at: Option<i64>,
    streak: i64,
    payout: i64,
    seen_at: Option<i64>,
}

const RESULT_COLUMNS: &str =
    "r.period, r.user_id, r.stake, r.checked_in, r.checked_at, r.streak, r.payout, r.seen_at";

fn result_row(row: &sqlx::any::AnyRow) -> Result<ResultRow, sqlx::Error> {
    Ok(ResultRow {
        period: row.try_get(0)?,
        user_id: row.try_get(1)?,
        stake: row.try_get(2)?,
        checked_in: row.try_get::<i64, _>(3)? != 0,
        checked_at: row.try_get(4)?,
        streak: row.try_get(5)?,
        payout: row.try_get(6)?,
        seen_at: row.try_get(7)?,
    })
}

/// The plan of a round: one row per signed-up user.
async fn round_results(db: &Db, app_id: &str, period: &str) -> Result<Vec<ResultRow>, AppError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESULT_COLUMNS} FROM morning_results r WHERE r.app_id = $1 AND r.period = $2 \
         ORDER BY r.user_id"
    ))
    .bind(app_id)
    .bind(period)
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(result_row)
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}

/// The user's result of their latest settled round.
async fn latest_result(db: &Db, app_id: &str, user_id: i64) -> Result<Option<ResultRow>, AppError> {
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
    Ok(row.as_ref().map(result_row).transpose()?)
}

/// The latest settled period of an app.
async fn latest_settled_period(db: &Db, app_id: &str) -> Result<Option<String>, AppError> {
    Ok(sqlx::query_scalar::<_, String>(
        "SELECT period FROM morning_rounds WHERE app_id = $1 AND settled_at IS NOT NULL \
         ORDER BY period DESC LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await?)
}

// ----- periods, rules, actors -----

/// The period of the business day `offset_days` after the one holding `ms`.
fn period_at(state: &AppState, ms: i64, offset_days: u64) -> String {
    let date = state.clock.date(ms);
    date.checked_add_days(chrono::Days::new(offset_days))
        .unwrap_or(date)
        .format("%Y%m%d")
        .to_string()
}

/// Parses a period `YYYYMMDD` (a real date).
fn parse_period(raw: &str) -> Result<NaiveDate, AppError> {
    let raw = raw.trim();
    let date = (raw.len() == 8 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| NaiveDate::parse_from_str(raw, "%Y%m%d").ok())
        .flatten();
    date.ok_or_else(|| AppError::invalid("period must be a date written YYYYMMDD"))
}

/// The rules of `app_id` (the defaults until an admin saves some); unknown apps are refused.
pub async fn config(state: &AppState, app_id: &str) -> Result<MorningConfig, AppError> {
    crate::auth::app(state, app_id).await?;
    let db = &state.stores.db;
    state
        .activities
        .morning
        .configs
        .get_or_load(app_id, || load_config(db, app_id))
        .await?
        .ok_or_else(|| AppError::Unavailable("morning config missing".into()))
}

/// Publishes a round's state on the app's websocket topic.
fn publish(hub: &Hub, view: &RoundView, payouts: Option<i64>) {
    hub.state(
        &format!("morning:{}", view.app_id),
        json!({
            "period": view.period,
            "pick_sum": view.signups,
            "checked_sum": view.checkins,
            "diff_sum": view.signups - view.checkins,
            "stakes": view.stakes,
            "settled": payouts.is_some(),
            "payouts": payouts.unwrap_or(0),
        }),
    );
}

/// The actor of round `(app_id, period)`, started from the round's ledger entries if needed.
pub async fn round(
    state: &AppState,
    app_id: &str,
    period: &str,
) -> Result<Addr<MorningActor>, AppError> {
    let key = (app_id.to_string(), period.to_string());
    state
        .activities
        .morning
        .rounds
        .get_or_start(&key, || async {
            let db = &state.stores.db;
            // The round's row is how the job finds rounds to settle.
            sqlx::query(
                "INSERT INTO morning_rounds (app_id, period, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (app_id, period) DO NOTHING",
            )
            .bind(app_id)
            .bind(period)
            .bind(now_ms())
            .execute(&db.write)
            .await?;
            let planned: Option<i64> = sqlx::query_scalar(
                "SELECT planned_at FROM morning_rounds WHERE app_id = $1 AND period = $2",
            )
            .bind(app_id)
            .bind(period)
            .fetch_one(&db.read)
            .await?;
            let entries = round_entries(db, app_id, period).await?;
            let hub = Arc::clone(&state.hub);
            let sink: RoundSink = Arc::new(move |view: &RoundView| publish(&hub, view, None));
            Ok::<_, AppError>(MorningActor::new(
                app_id,
                period,
                RoundState::from_entries(entries, planned.is_some()),
                state.ledger.clone(),
                sink,
            ))
        })
        .await
}

/// Sends a sign-up or check-in to the round actor and waits for its committed answer.
async fn decide<M>(actor: &Addr<MorningActor>, msg: M) -> Result<Outcome, AppError>
where
    M: actix::Message<Result = Result<Outcome, ActivityError>> + Send + 'static,
    MorningActor: actix::Handler<M>,
{
    actor
        .send(msg)
        .await
        .map_err(|_| AppError::Busy)?
        .map_err(AppError::from)
}

async fn view_round(
    state: &AppState,
    app_id: &str,
    period: &str,
    user_id: Option<i64>,
) -> Result<RoundView, AppError> {
    let actor = round(state, app_id, period).await?;
    actor
        .send(ViewRound { user_id })
        .await
        .map_err(|_| AppError::Busy)
}

/// Signs `user_id` up for `period`, charging the app's ticket.
async fn sign_up(
    state: &AppState,
    app_id: &str,
    period: &str,
    user_id: i64,
) -> Result<(i64, Outcome), AppError> {
    let cfg = config(state, app_id).await?;
    let actor = round(state, app_id, period).await?;
    let outcome = decide(
        &actor,
        SignUp {
            user_id,
            ticket: cfg.ticket,
        },
    )
    .await?;
    Ok((cfg.ticket, outcome))
}

// ----- settlement -----

/// What a settlement did (or found done).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MorningSettleReport {
    pub app_id: String,
    pub period: String,
    /// `random` or `split`: the mode the round was planned with (empty for an empty round).
    pub mode: String,
    pub signups: i64,
    pub checkins: i64,
    /// Points staked by everyone signed up.
    pub stakes: i64,
    /// Points paid out (wins and refunds).
    pub payouts: i64,
    /// The round was settled before this call; nothing was paid now.
    pub already_settled: bool,
}

fn refusal(en: &str, zh: &str) -> AppError {
    AppError::Refused(Refusal::Other {
        en: en.into(),
        zh: zh.into(),
    })
}

/// Decides the payouts of a round from its committed facts and stores them, unless a plan is
/// stored already. One transaction claims the round (`planned_at`), seals it, reads its facts
/// and inserts every result, so two settlements never mix two plans and nothing lands between
/// the facts and the plan.
///
/// Sealing sets every signer's check-in counter (`pick:<app>:<period>:check:<user>`, ceiling 1)
/// to its ceiling: a late check-in from a process whose clock or cached window disagrees is then
/// refused by the database, and one already committing is waited for (its counter row is
/// locked) and so is part of the facts read after the seal.
async fn plan_round(
    state: &AppState,
    app_id: &str,
    period: &str,
    date: NaiveDate,
    cfg: &MorningConfig,
) -> Result<(), AppError> {
    let db = &state.stores.db;
    let previous = date
        .pred_opt()
        .map(|d| d.format("%Y%m%d").to_string())
        .unwrap_or_default();
    let streaks: HashMap<i64, i64> = sqlx::query(
        "SELECT user_id, streak FROM morning_results \
         WHERE app_id = $1 AND period = $2 AND checked_in = 1",
    )
    .bind(app_id)
    .bind(&previous)
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;

    let mut tx = db.write.begin().await?;
    let claimed = sqlx::query(
        "UPDATE morning_rounds SET planned_at = $3, mode = $4 \
         WHERE app_id = $1 AND period = $2 AND planned_at IS NULL",
    )
    .bind(app_id)
    .bind(period)
    .bind(now_ms())
    .bind(cfg.mode.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        // Planned before (by another settlement): that plan stands.
        tx.rollback().await?;
        return Ok(());
    }
    let entries_sql = "SELECT user_id, kind, amount, id, created_at FROM ledger_entries \
         WHERE app_id = $1 AND reference = $2 AND kind IN ($3, $4) ORDER BY id";
    let read_facts = |rows: Vec<sqlx::any::AnyRow>| -> Result<RoundState, sqlx::Error> {
        let entries = rows
            .iter()
            .map(|row| {
                Ok(RoundEntry {
                    user_id: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    amount: row.try_get(2)?,
                    entry_id: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(RoundState::from_entries(entries, true))
    };
    let reference = points_actors::morning::round_reference(period);
    let rows = sqlx::query(entries_sql)
        .bind(app_id)
        .bind(&reference)
        .bind(PICK_SIGN_KIND)
        .bind(PICK_CHECK_KIND)
        .fetch_all(&mut *tx)
        .await?;
    let signers = read_facts(rows)?;
    if !signers.signed.is_empty() {
        let keys: Vec<String> = signers
            .signed
            .keys()
            .map(|u| check_key(app_id, period, *u))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO ledger_counters (counter_key, count, updated_at) \
             SELECT r.value, 1, $2 FROM {} r WHERE true ON CONFLICT (counter_key) DO UPDATE \
             SET count = CASE WHEN ledger_counters.count < 1 THEN 1 \
             ELSE ledger_counters.count END, updated_at = excluded.updated_at",
            db.json_texts("$1")
        ))
        .bind(json!(keys).to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    let rows = sqlx::query(entries_sql)
        .bind(app_id)
        .bind(&reference)
        .bind(PICK_SIGN_KIND)
        .bind(PICK_CHECK_KIND)
        .fetch_all(&mut *tx)
        .await?;
    let facts = read_facts(rows)?;

    // Winners, earliest check-in first.
    let mut checks: Vec<(i64, CheckRecord)> = facts.checked.iter().map(|(u, c)| (*u, *c)).collect();
    checks.sort_by_key(|(u, c)| (c.at, c.entry_id, *u));
    let winners: Vec<i64> = checks.iter().map(|(u, _)| *u).collect();
    let total: i64 = facts.signed.values().sum();
    let mut payouts: HashMap<i64, (i64, i64)> = HashMap::new();
    match cfg.mode {
        Mode::Split if winners.is_empty() => {
            for (user, stake) in &facts.signed {
                payouts.insert(*user, (*stake, 1));
            }
        }
        Mode::Split => {
            for (user, share) in split_payouts(total, &winners) {
                payouts.insert(user, (share, 1));
            }
        }
        Mode::Random => {
            // ThreadRng is a CSPRNG (ChaCha, seeded from the OS): payouts are not predictable.
            let mut rng = rand::rng();
            for user in &winners {
                let streak = streaks.get(user).copied().unwrap_or(0) + 1;
                let (payout, factor) = random_payout(
                    cfg.min,
                    cfg.max,
                    (cfg.inflation_min, cfg.inflation_max),
                    streak,
                    &mut rng,
                );
                payouts.insert(*user, (payout, factor));
            }
        }
    }
    let mut users: Vec<i64> = facts.signed.keys().copied().collect();
    users.extend(winners.iter().filter(|u| !facts.signed.contains_key(u)));
    users.sort_unstable();
    let records: Vec<Value> = users
        .iter()
        .map(|user| {
            let check = facts.checked.get(user);
            let (payout, inflation) = payouts.get(user).copied().unwrap_or((0, 1));
            let streak = match check {
                Some(_) => streaks.get(user).copied().unwrap_or(0) + 1,
                None => 0,
            };
            json!({
                "user_id": user,
                "stake": facts.signed.get(user).copied().unwrap_or(0),
                "checked_in": i64::from(check.is_some()),
                "checked_at": check.map(|c| c.at),
                "streak": streak,
                "inflation": inflation,
                "payout": payout,
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

/// Settles round `(app_id, period)`: closes it, plans the payouts once, pays the plan and marks
/// the round settled. Idempotent: a settled round answers its totals; an interrupted settlement
/// pays the stored plan's remaining payouts and nothing else. Refused while the round's window
/// has not closed.
pub async fn settle_round(
    state: &AppState,
    app_id: &str,
    period: &str,
) -> Result<MorningSettleReport, AppError> {
    let date = parse_period(period)?;
    let cfg = config(state, app_id).await?;
    let db = &state.stores.db;
    // A settled round answers its totals, whatever this process's window says.
    if let Some(report) = settled_report(db, app_id, period).await? {
        return Ok(report);
    }
    let now = Moment::now(&state.clock);
    let today = period_at(state, now.ms, 0);
    if period > today.as_str() || (period == today && now.second_of_day < cfg.end) {
        return Err(refusal(
            "the round's check-in window has not closed yet",
            "本期打卡尚未结束",
        ));
    }
    let actor = round(state, app_id, period).await?;
    let deadline = Instant::now() + MORNING_CLOSE_WAIT;
    loop {
        match actor.send(Close).await.map_err(|_| AppError::Busy)? {
            Ok(()) => break,
            Err(ActivityError::Busy) if Instant::now() < deadline => {
                tokio::time::sleep(MORNING_CLOSE_POLL_INTERVAL).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The commit is the truth: the plan is made from the ledger, not from the actor's memory.
    plan_round(state, app_id, period, date, &cfg).await?;
    let results = round_results(db, app_id, period).await?;
    let payouts: Vec<Payout> = results
        .iter()
        .filter(|r| r.payout > 0)
        .map(|r| Payout {
            user_id: r.user_id,
            amount: r.payout,
            description: if r.checked_in {
                "早起打卡奖励".into()
            } else {
                "早起打卡无人成功，退还报名积分".into()
            },
        })
        .collect();
    if !payouts.is_empty() {
        let expires_at = crate::points::default_expiry(state, app_id).await?;
        let answers = actor
            .send(Pay {
                payouts,
                expires_at,
            })
            .await
            .map_err(|_| AppError::Busy)?;
        for (user_id, answer) in answers {
            match answer {
                Ok(_) => {}
                Err(LedgerError::Conflict) => {
                    // The key was used with another amount: never pay twice, say so loudly.
                    tracing::error!(app_id, period, user_id, "morning payout key conflict");
                }
                // The round stays unsettled; the next run pays what is missing.
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mode = sqlx::query_scalar::<_, String>(
        "SELECT mode FROM morning_rounds WHERE app_id = $1 AND period = $2",
    )
    .bind(app_id)
    .bind(period)
    .fetch_one(&db.read)
    .await?;
    let report = MorningSettleReport {
        app_id: app_id.to_string(),
        period: period.to_string(),
        mode,
        signups: results.len() as i64,
        checkins: results.iter().filter(|r| r.checked_in).count() as i64,
        stakes: results.iter().map(|r| r.stake).sum(),
        payouts: results.iter().map(|r| r.payout).sum(),
        already_settled: false,
    };
    let marked = sqlx::query(
        "UPDATE morning_rounds SET settled_at = $3, signups = $4, checkins = $5, stakes = $6, \
         payouts = $7 WHERE app_id = $1 AND period = $2 AND settled_at IS NULL",
    )
    .bind(app_id)
    .bind(period)
    .bind(now_ms())
    .bind(report.signups)
    .bind(report.checkins)
    .bind(report.stakes)
    .bind(report.payouts)
    .execute(&db.write)
    .await?
    .rows_affected();
    if marked == 0 {
        // Another settlement finished first; its totals are the same plan's.
        if let Some(done) = settled_report(db, app_id, period).await? {
            return Ok(done);
        }
    }
    let view = RoundView {
        app_id: app_id.to_string(),
        period: period.to_string(),
        signups: report.signups,
        checkins: report.checkins,
        stakes: report.stakes,
        closed: true,
        ..Default::default()
    };
    publish(&state.hub, &view, Some(report.payouts));
    tracing::info!(
        app_id,
        period,
        payouts = report.payouts,
        "morning round settled"
    );
    Ok(report)
}

/// Settles, oldest first, every unsettled round whose window has closed: rounds of days before
/// today, and today's once its window is over. Errors of one round are logged and retried on
/// the next run. Returns how many rounds were settled now.
pub async fn settle_due(state: &AppState) -> Result<u64, AppError> {
    let now = Moment::now(&state.clock);
    let today = period_at(state, now.ms, 0);
    let due: Vec<(String, String)> = sqlx::query(
        "SELECT app_id, period FROM morning_rounds WHERE settled_at IS NULL AND period <= $1 \
         ORDER BY period, app_id LIMIT $2",
    )
    .bind(&today)
    .bind(MORNING_SETTLE_ROUNDS_MAX)
    .fetch_all(&state.stores.db.read)
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let mut settled = 0;
    for (app_id, period) in due {
        if period == today {
            match config(state, &app_id).await {
                Ok(cfg) if now.second_of_day >= cfg.end => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(app_id, error = %e, "morning config unreadable; round skipped");
                    continue;
                }
            }
        }
        match settle_round(state, &app_id, &period).await {
            Ok(report) => settled += u64::from(!report.already_settled),
            Err(e) => {
                tracing::warn!(app_id, period, error = %e, "morning settlement failed; will retry");
            }
        }
    }
    Ok(settled)
}

// ----- routes -----

pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 morning check-in";
    r.add::<PickReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/v2/pick/sign.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡报名: sign up for tomorrow's round",
            description: "Bearer token; `user_id` must be the caller. Pays the app's `ticket` for the round of the next business day (period `YYYYMMDD`), once per round. Answers `[]` after the commit. 402 ticket not affordable; 410 already signed up (or the round is closed); 429 busy.",
        },
        sign,
    );
    r.add::<PickReq, PickShow, _, _>(
        RouteDoc {
            path: "/v2/pick/show.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡首页: the round the caller should act on",
            description: "Bearer token; `user_id` must be the caller, `app_id` optional. `period`: today's round while the caller is signed up for it and the window is open (`btn_callback` `PICK`, `btn_click` until checked in), otherwise tomorrow's (`SIGN`, `btn_click` until signed up). `pool` = stakes × the app's coefficient, `pick_sum` = sign-ups, `diff_sum` = sign-ups not yet checked in, `is_pop` = an unseen settled result waits for `pop.json`.",
        },
        show,
    );
    r.add::<PickReq, crate::http::Empty, _, _>(
        RouteDoc {
            path: "/v2/pick/pick.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡: check in to today's round",
            description: "Bearer token; `user_id` must be the caller. Inside the app's window (default 05:30-08:30 business time), once. Refusals (`status:false`, code 410): before the window (not started), after it (ended), not signed up, already checked in. Answers `[]` after the commit.",
        },
        pick,
    );
    r.add::<PickReq, PickPop, _, _>(
        RouteDoc {
            path: "/v2/pick/pop.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡结果弹窗: the caller's latest settled result",
            description: "Bearer token; `user_id` must be the caller. Checked in: `{is_combo_pick, pub_points}` (`is_combo_pick`: the payout fell on a streak day, every 7th consecutive check-in). Signed up but missed: `status:false`, code 410, with a sentence. Marks the result as seen (`show`'s `is_pop` turns false). No settled round yet: code 410.",
        },
        pop,
    );
    r.add::<PickRankReq, PickRank, _, _>(
        RouteDoc {
            path: "/v2/pick/rank.json",
            methods: GET_POST,
            tag,
            summary: "早起打卡榜: lark, lucky and diligent",
            description: "Bearer token; `app_id` optional (the caller's app). `lark`: earliest check-in of today's round; `lucky`: top payout of the latest settled round; `diligent`: longest running streak (users who checked in in the latest settled round); ties go to the earliest check-in. Each `{nick, avatar, desc}`; empty nick and avatar when nobody qualifies. Live state on websocket topic `morning:<app_id>`.",
        },
        rank,
    );

    let tag = "admin";
    r.add::<MorningAppQuery, MorningConfigView, _, _>(
        RouteDoc {
            path: "/admin/morning/config",
            methods: GET,
            tag,
            summary: "Morning check-in rules of an app",
            description: "`app_id` defaults to `default`. A fresh app: ticket 10, coefficient 1, 05:30:00-08:30:00, mode random 10-100, inflation 1-3.",
        },
        get_config,
    );
    r.add::<MorningConfigReq, MorningConfigView, _, _>(
        RouteDoc {
            path: "/admin/morning/config",
            methods: POST,
            tag,
            summary: "Set the morning check-in rules of an app",
            description: "Omitted fields keep their value. `ticket` 0-1000000; `coefficient` 0-1000 (shown pool = stakes × coefficient); `start_time` < `end_time`, `HH:MM[:SS]` business time (`24:00:00` = end of day); `mode` `random` (each successful user gets `min`-`max`, times `inflation_min`-`inflation_max` on every 7th consecutive check-in) or `split` (the stakes are shared exactly among the successful users, refunded if nobody checks in); 0 <= `min` <= `max` <= 1000000; 1 <= `inflation_min` <= `inflation_max` <= 100. Rounds already planned keep their payouts.",
        },
        set_config,
    );
    r.add::<MorningSettleReq, MorningSettleReport, _, _>(
        RouteDoc {
            path: "/admin/morning/settle",
            methods: POST,
            tag,
            summary: "Settle a morning round now",
            description: "`period` `YYYYMMDD`. Refused (410) while the round's window has not closed. Settles unsettled earlier rounds of the app first (streaks chain through them). Idempotent: a settled round answers its totals with `already_settled: true` and pays nothing. The periodic job does the same every minute.",
        },
        settle,
    );
    r.add::<MorningSignupReq, MorningSignupView, _, _>(
        RouteDoc {
            path: "/admin/morning/signups",
            methods: POST,
            tag,
            summary: "Sign a user up for a round",
            description: "Charges the app's ticket exactly like `v2/pick/sign.json`, for any `period` from today up to 31 days ahead (operators migrating sign-ups; tests opening a round for today). 410 already signed up or round closed; 402 not affordable; 404 unknown user.",
        },
        admin_signup,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct PickReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PickRankReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PickShow {
    /// The round to act on, `YYYYMMDD`.
    pub period: String,
    pub pool: i64,
    pub pick_sum: i64,
    pub diff_sum: i64,
    pub btn_desc: String,
    /// `SIGN` or `PICK`.
    pub btn_callback: String,
    pub btn_click: bool,
    pub desc: String,
    pub is_pop: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PickPop {
    pub is_combo_pick: bool,
    pub pub_points: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PickRankItem {
    pub nick: String,
    pub avatar: String,
    pub desc: String,
}

#[derive(Serialize, ToSchema)]
pub struct PickRank {
    pub lark: PickRankItem,
    pub lucky: PickRankItem,
    pub diligent: PickRankItem,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub ticket: Option<i64>,
    #[serde(default, deserialize_with = "opt_f64")]
    pub coefficient: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub end_time: Option<String>,
    /// `random` or `split`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub min: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub max: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub inflation_min: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub inflation_max: Option<i64>,
}

/// A number, also written as a string; empty counts as absent.
fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let parsed = match Value::deserialize(d)? {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(
            s.trim()
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))?,
        ),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a number, got {other}"
            )))
        }
    };
    match parsed {
        Some(x) if !x.is_finite() => Err(serde::de::Error::custom("expected a finite number")),
        other => Ok(other),
    }
}

#[derive(Serialize, ToSchema)]
pub struct MorningConfigView {
    pub app_id: String,
    pub ticket: i64,
    pub coefficient: f64,
    pub start_time: String,
    pub end_time: String,
    pub mode: String,
    pub min: i64,
    pub max: i64,
    pub inflation_min: i64,
    pub inflation_max: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningSettleReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct MorningSignupReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub period: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MorningSignupView {
    pub app_id: String,
    pub period: String,
    pub user_id: String,
    /// Points charged.
    pub stake: i64,
    pub balance_after: i64,
}

fn app_of(raw: Option<String>) -> String {
    raw.unwrap_or_else(|| "default".into())
}

async fn sign(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let period = period_at(&state, now_ms(), 1);
    sign_up(&state, &s.app_id, &period, s.user_id).await?;
    Ok(ok(json!([])))
}

async fn pick(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let cfg = config(&state, &s.app_id).await?;
    let now = Moment::now(&state.clock);
    let period = period_at(&state, now.ms, 0);
    let actor = round(&state, &s.app_id, &period).await?;
    decide(
        &actor,
        CheckIn {
            user_id: s.user_id,
            second_of_day: now.second_of_day,
            window: (cfg.start, cfg.end),
        },
    )
    .await?;
    Ok(ok(json!([])))
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let cfg = config(&state, &s.app_id).await?;
    let now = Moment::now(&state.clock);
    let today = period_at(&state, now.ms, 0);
    let today_view = view_round(&state, &s.app_id, &today, Some(s.user_id)).await?;
    let in_window = (cfg.start..cfg.end).contains(&now.second_of_day);
    let window = cfg.window_text();
    let (view, callback, click, btn_desc) = if today_view.signed && in_window && !today_view.closed
    {
        let desc = if today_view.checked {
            "今日已打卡".to_string()
        } else {
            "立即打卡".to_string()
        };
        let click = !today_view.checked;
        (today_view, "PICK", click, desc)
    } else {
        let tomorrow = period_at(&state, now.ms, 1);
        let view = view_round(&state, &s.app_id, &tomorrow, Some(s.user_id)).await?;
        let desc = if view.signed {
            format!("已报名，明日{window}打卡")
        } else {
            format!("支付{}积分报名", cfg.ticket)
        };
        let click = !view.signed && !view.closed;
        (view, "SIGN", click, desc)
    };
    let desc = match cfg.mode {
        Mode::Random => format!(
            "今日报名，明日{window}打卡，打卡成功可得{}-{}积分，连续{MORNING_STREAK_CYCLE_DAYS}天奖励翻倍",
            cfg.min, cfg.max
        ),
        Mode::Split => format!("今日报名，明日{window}打卡，打卡成功瓜分全部报名积分"),
    };
    let is_pop = latest_result(&state.stores.db, &s.app_id, s.user_id)
        .await?
        .is_some_and(|r| r.seen_at.is_none());
    Ok(ok(json!(PickShow {
        period: view.period.clone(),
        pool: cfg.pool(view.stakes),
        pick_sum: view.signups,
        diff_sum: view.signups - view.checkins,
        btn_desc,
        btn_callback: callback.into(),
        btn_click: click,
        desc,
        is_pop,
    })))
}

async fn pop(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<PickReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let db = &state.stores.db;
    let result = latest_result(db, &s.app_id, s.user_id)
        .await?
        .ok_or_else(|| refusal("no settled round to show", "暂无打卡结果"))?;
    if result.seen_at.is_none() {
        sqlx::query(
            "UPDATE morning_results SET seen_at = $4 \
             WHERE app_id = $1 AND period = $2 AND user_id = $3 AND seen_at IS NULL",
        )
        .bind(&s.app_id)
        .bind(&result.period)
        .bind(s.user_id)
        .bind(now_ms())
        .execute(&db.write)
        .await?;
    }
    if !result.checked_in {
        return Err(if result.payout > 0 {
            refusal(
                "nobody checked in; your stake was refunded",
                "本期无人打卡成功，报名积分已退还",
            )
        } else {
            refusal(
                "you signed up but did not check in",
                "很遗憾，您未在规定时间内打卡",
            )
        }
        .into());
    }
    Ok(ok(json!(PickPop {
        is_combo_pick: result.streak > 0 && result.streak % MORNING_STREAK_CYCLE_DAYS == 0,
        pub_points: result.payout,
    })))
}

/// A rank entry for `user_id` (empty when nobody qualifies).
async fn rank_item(
    state: &AppState,
    user_id: Option<i64>,
    desc: String,
) -> Result<PickRankItem, AppError> {
    let user = match user_id {
        Some(id) => state.stores.accounts.user_by_id(id).await?,
        None => None,
    };
    Ok(match user {
        Some(u) => PickRankItem {
            nick: u.nick,
            avatar: u.avatar,
            desc,
        },
        None => PickRankItem {
            nick: String::new(),
            avatar: String::new(),
            desc: "虚位以待".into(),
        },
    })
}

async fn rank(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PickRankReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = caller.session.app_id.clone();
    if p.app_id.is_some_and(|a| a != app_id) {
        return Err(AppError::WrongUser.into());
    }
    let db = &state.stores.db;
    let now = Moment::now(&state.clock);
    let today = view_round(&state, &app_id, &period_at(&state, now.ms, 0), None).await?;
    let lark = match today.first_check {
        Some((user, check)) => {
            let at = state.clock.local(check.at).format("%H:%M:%S");
            rank_item(&state, Some(user), format!("{at} 打卡")).await?
        }
        None => rank_item(&state, None, String::new()).await?,
    };
    let (mut lucky, mut diligent) = (None, None);
    if let Some(period) = latest_settled_period(db, &app_id).await? {
        let mut winners: Vec<ResultRow> = round_results(db, &app_id, &period)
            .await?
            .into_iter()
            .filter(|r| r.checked_in)
            .collect();
        let at = |r: &ResultRow| r.checked_at.unwrap_or(i64::MAX);
        winners.sort_by_key(|r| (std::cmp::Reverse(r.payout), at(r), r.user_id));
        lucky = winners.first().map(|r| (r.user_id, r.payout));
        winners.sort_by_key(|r| (std::cmp::Reverse(r.streak), at(r), r.user_id));
        diligent = winners.first().map(|r| (r.user_id, r.streak));
    }
    let lucky = rank_item(
        &state,
        lucky.map(|l| l.0),
        format!("获得{}积分", lucky.map_or(0, |l| l.1)),
    )
    .await?;
    let diligent = rank_item(
        &state,
        diligent.map(|d| d.0),
        format!("连续打卡{}天", diligent.map_or(0, |d| d.1)),
    )
    .await?;
    Ok(ok(json!(PickRank {
        lark,
        lucky,
        diligent,
    })))
}

async fn get_config(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningAppQuery, Gift>,
) -> Reply {
    let app_id = app_of(p.into_inner().app_id);
    let cfg = config(&state, &app_id).await?;
    Ok(ok(json!(cfg.view(&app_id))))
}

async fn set_config(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningConfigReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    // Read fresh, not cached: the update starts from what is stored.
    crate::auth::app(&state, &app_id).await?;
    let db = &state.stores.db;
    let old = load_config(db, &app_id).await?.unwrap_or_default();
    let time = |field: &str, raw: Option<String>, old: u32| -> Result<u32, AppError> {
        match raw {
            None => Ok(old),
            Some(raw) => parse_time_of_day(&raw).ok_or_else(|| {
                AppError::invalid(format!("{field} must be HH:MM or HH:MM:SS (00:00-24:00)"))
            }),
        }
    };
    let mode = match p.mode {
        None => old.mode,
        Some(raw) => Mode::parse(&raw)
            .ok_or_else(|| AppError::invalid("mode must be \"random\" or \"split\""))?,
    };
    let new = MorningConfig {
        ticket: p.ticket.unwrap_or(old.ticket),
        coefficient: p.coefficient.unwrap_or(old.coefficient),
        start: time("start_time", p.start_time, old.start)?,
        end: time("end_time", p.end_time, old.end)?,
        mode,
        min: p.min.unwrap_or(old.min),
        max: p.max.unwrap_or(old.max),
        inflation_min: p.inflation_min.unwrap_or(old.inflation_min),
        inflation_max: p.inflation_max.unwrap_or(old.inflation_max),
    };
    new.validate()?;
    save_config(db, &app_id, &new).await?;
    state.activities.morning.configs.invalidate(&app_id);
    Ok(ok(json!(new.view(&app_id))))
}

async fn settle(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningSettleReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let period = p.period.ok_or_else(|| AppError::missing("period"))?;
    parse_period(&period)?;
    let period = period.trim().to_string();
    config(&state, &app_id).await?;
    // Earlier rounds first: the streaks of this one chain through their results.
    let earlier: Vec<String> = sqlx::query_scalar(
        "SELECT period FROM morning_rounds WHERE app_id = $1 AND settled_at IS NULL \
         AND period < $2 ORDER BY period LIMIT $3",
    )
    .bind(&app_id)
    .bind(&period)
    .bind(MORNING_SETTLE_ROUNDS_MAX)
    .fetch_all(&state.stores.db.read)
    .await?;
    for earlier in earlier {
        if let Err(e) = settle_round(&state, &app_id, &earlier).await {
            tracing::warn!(app_id, period = earlier, error = %e, "earlier morning round not settled");
        }
    }
    let report = settle_round(&state, &app_id, &period).await?;
    Ok(ok(json!(report)))
}

async fn admin_signup(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<MorningSignupReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let raw = p.period.ok_or_else(|| AppError::missing("period"))?;
    let uid = p.user_id.ok_or_else(|| AppError::missing("user_id"))?;
    let date = parse_period(&raw)?;
    let period = raw.trim().to_string();
    let now = Moment::now(&state.clock);
    let today = state.clock.date(now.ms);
    let last = today
        .checked_add_days(chrono::Days::new(MORNING_SIGNUP_AHEAD_DAYS_MAX))
        .unwrap_or(today);
    if date < today || date > last {
        return Err(AppError::invalid(format!(
            "period must be between today and {MORNING_SIGNUP_AHEAD_DAYS_MAX} days ahead"
        ))
        .into());
    }
    let cfg = config(&state, &app_id).await?;
    let user = crate::points::user(&state, &app_id, &uid).await?;
    if date == today && now.second_of_day >= cfg.end {
        return Err(AppError::Refused(Refusal::Ended).into());
    }
    let (stake, outcome) = sign_up(&state, &app_id, &period, user.id).await?;
    Ok(ok(json!(MorningSignupView {
        app_id,
        period,
        user_id: uid,
        stake,
        balance_after: outcome.balance_after,
    })))
}
