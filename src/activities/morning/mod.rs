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
use points_actors::activity::{ActivityError, Refusal, Registry, Retire};
use points_actors::morning::{
    random_payout, split_payouts, CheckRecord, Close, MorningActor, Pay, Payout, RoundSink,
    RoundState, RoundView, SignUp, ViewRound,
};
use points_actors::{LedgerError, Outcome};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::clock::Moment;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::runtime::hub::Hub;
use crate::state::{AppState, TtlCache};

mod routes_admin;
mod routes_gift;
mod store;

pub use routes_admin::{
    MorningAppQuery, MorningConfigReq, MorningConfigView, MorningSettleReq, MorningSignupReq,
    MorningSignupView,
};
pub use routes_gift::{PickPop, PickRank, PickRankItem, PickRankReq, PickReq, PickShow};

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
    pub(crate) configs: TtlCache<MorningConfig>,
}

impl Default for Morning {
    fn default() -> Self {
        Morning {
            rounds: Registry::default(),
            configs: TtlCache::new(MORNING_CONFIG_CACHE_TTL, MORNING_CONFIG_CACHE_ENTRIES_MAX),
        }
    }
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
        .slots
        .get::<Morning>()
        .configs
        .get_or_load(app_id, || store::load_config(db, app_id))
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

/// The lease name of an app's morning rounds: one node serves every round of the app.
pub fn round_activity(app_id: &str) -> String {
    format!("morning:{app_id}")
}

/// Stops the app's round actors on this node; the next use starts them from the database.
pub(crate) fn retire_rounds(state: &AppState, app_id: &str) {
    let rounds = state
        .activities
        .slots
        .get::<Morning>()
        .rounds
        .forget_where(|(app, _)| app == app_id);
    for old in rounds {
        old.do_send(Retire);
    }
}

/// The actor of round `(app_id, period)` on the node that owns the app's rounds, started from
/// the round's ledger entries if needed, and the lease epoch it serves under; on another node,
/// [`AppError::Elsewhere`].
async fn round(
    state: &AppState,
    app_id: &str,
    period: &str,
) -> Result<(Addr<MorningActor>, i64), AppError> {
    let activity = round_activity(app_id);
    let epoch = state.cluster.serve(&activity).await?;
    if state.activities.epochs.is_stale(&activity, epoch) {
        retire_rounds(state, app_id);
    }
    let key = (app_id.to_string(), period.to_string());
    let actor = state
        .activities
        .slots
        .get::<Morning>()
        .rounds
        .get_or_start(&key, || async {
            let db = &state.stores.db;
            // The round's row is how the job finds rounds to settle.
            let planned = store::ensure_round(db, app_id, period).await?;
            let reference = points_actors::morning::round_reference(period);
            let entries =
                crate::store::ledger::morning::round_entries(db, app_id, &reference).await?;
            let hub = Arc::clone(&state.hub);
            let sink: RoundSink = Arc::new(move |view: &RoundView| publish(&hub, view, None));
            state.activities.epochs.record(&activity, epoch);
            Ok::<_, AppError>(
                MorningActor::new(
                    app_id,
                    period,
                    RoundState::from_entries(entries, planned.is_some()),
                    state.ledger.clone(),
                    sink,
                )
                .fenced(state.cluster.fence(&activity, epoch)),
            )
        })
        .await?;
    Ok((actor, epoch))
}

/// Sends a sign-up or check-in (made by `msg`) to the round's actor and waits for its committed
/// answer. A commit fenced off because the app's rounds moved to another node while it was
/// decided wrote nothing: this node steps down and the request goes to the new owner, once.
async fn decide<M>(
    state: &AppState,
    app_id: &str,
    period: &str,
    msg: impl Fn() -> M,
) -> Result<Outcome, AppError>
where
    M: actix::Message<Result = Result<Outcome, ActivityError>> + Send + 'static,
    MorningActor: actix::Handler<M>,
{
    let (actor, epoch) = round(state, app_id, period).await?;
    match actor.send(msg()).await.map_err(|_| AppError::Busy)? {
        Err(ActivityError::Ledger(LedgerError::Fenced { .. })) => {
            state.cluster.count_fenced();
            state.cluster.step_down_from(&round_activity(app_id), epoch);
            retire_rounds(state, app_id);
            let (actor, _) = round(state, app_id, period).await?;
            actor
                .send(msg())
                .await
                .map_err(|_| AppError::Busy)?
                .map_err(AppError::from)
        }
        answer => answer.map_err(AppError::from),
    }
}

async fn view_round(
    state: &AppState,
    app_id: &str,
    period: &str,
    user_id: Option<i64>,
) -> Result<RoundView, AppError> {
    let (actor, _) = round(state, app_id, period).await?;
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
    let outcome = decide(state, app_id, period, || SignUp {
        user_id,
        ticket: cfg.ticket,
    })
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
    let streaks = store::checked_in_streaks(db, app_id, &previous).await?;
    store::plan_round(db, app_id, period, cfg.mode.as_str(), |facts| {
        plan(cfg, &streaks, facts)
    })
    .await?;
    Ok(())
}

/// The payouts of a round from its committed facts (`streaks`: those of the day before): one
/// record per signed-up user (and per winner not signed up).
fn plan(
    cfg: &MorningConfig,
    streaks: &HashMap<i64, i64>,
    facts: &RoundState,
) -> Vec<store::PlanRecord> {
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
    users
        .iter()
        .map(|user| {
            let check = facts.checked.get(user);
            let (payout, inflation) = payouts.get(user).copied().unwrap_or((0, 1));
            let streak = match check {
                Some(_) => streaks.get(user).copied().unwrap_or(0) + 1,
                None => 0,
            };
            store::PlanRecord {
                user_id: *user,
                stake: facts.signed.get(user).copied().unwrap_or(0),
                checked_in: check.is_some(),
                checked_at: check.map(|c| c.at),
                streak,
                inflation,
                payout,
            }
        })
        .collect()
}

/// A round's settled totals, if it is settled.
async fn settled_report(
    db: &crate::db::Db,
    app_id: &str,
    period: &str,
) -> Result<Option<MorningSettleReport>, AppError> {
    let Some(row) = store::settled_totals(db, app_id, period).await? else {
        return Ok(None);
    };
    Ok(Some(MorningSettleReport {
        app_id: app_id.to_string(),
        period: period.to_string(),
        mode: row.mode,
        signups: row.signups,
        checkins: row.checkins,
        stakes: row.stakes,
        payouts: row.payouts,
        already_settled: true,
    }))
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
    let (actor, _) = round(state, app_id, period).await?;
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
    let results = store::round_results(db, app_id, period).await?;
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
    let mode = store::round_mode(db, app_id, period).await?;
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
    let marked = store::mark_settled(
        db,
        app_id,
        period,
        report.signups,
        report.checkins,
        report.stakes,
        report.payouts,
    )
    .await?;
    if !marked {
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
    let due = store::due_rounds(&state.stores.db, &today, MORNING_SETTLE_ROUNDS_MAX).await?;
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
            // With several nodes, the node that owns the app's rounds settles them.
            Err(AppError::Elsewhere(_)) => {}
            Err(e) => {
                tracing::warn!(app_id, period, error = %e, "morning settlement failed; will retry");
            }
        }
    }
    Ok(settled)
}

// ----- routes -----

/// Registers the 000 `v2/pick/*` and the admin morning routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}
