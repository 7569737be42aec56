//! Daily sign-in: once per calendar day in business time, consecutive-day streaks, milestone
//! bonuses, the month view of 000, 003's sign status, and the follow/favourite pop with a
//! one-time reward each.
//!
//! **Once per day.** A sign-in is ONE ledger change (kind `sign`) under the key
//! `sign:<app>:<day>:<user>`, `<day>` being the business date (`POINTS_TIMEZONE`). The unique
//! key is what guards the reward: however many requests race, across processes too, the day's
//! points are credited once. A milestone bonus rides in the same change as a leg (kind
//! `sign_bonus`, stored under `<key>#0`), so the bonus and the day's points commit together or
//! not at all. Within one process a second request while the first is committing, or after it,
//! is refused as already done (000 code 410, 003 code -2); a request that loses the race in
//! another process is refused the same way when its parameters differ, or answered as a replay.
//!
//! **Streaks.** After the ledger commit a row `(app, user, day)` is written to `signins` with the
//! streak reached that day: yesterday's streak plus one, or 1 after a gap ([`streak_after`]).
//! Should a process die between the commit and that row, the next sign-in attempt of the day
//! finds the committed entry, restores the row and answers "already done".
//!
//! **Milestones.** Per app, `{"<streak day>": <bonus>}` (a fresh app: `{"7":2,"14":4,"21":7,
//! "30":11}` on top of 5 points a day). With `milestones_repeat` (the default) the milestones
//! come round again after the largest one: the streak keeps counting (`combo_sum` 37), and day
//! 37 is day 7 of the second round, paying the "7" bonus again. Without it, a milestone pays
//! only on the streak day it names, once per streak.
//!
//! **Pop.** Following (`FOCUS`) and adding to favourites (`COLLECT`) pay a one-time reward each
//! (per app, default [`SIGNIN_POP_REWARD_DEFAULT`] points) under the ledger key
//! `signpop:<app>:<action>:<user>`; the pop info reads those entries.
//!
//! Routes: 000 `v2/sign/do.json`, `v2/sign/detail.json`, `v2/sign/pop/info.json`,
//! `v2/sign/pop.json`; 003 `/api/sign/`, `/api/sign_status/`; admin `/admin/signin/config`.
//!
//! Files: `rules.rs` the pure rules and the month view, `store.rs` the slice's own SQL (the ledger
//! entry reads are in `crate::store::ledger::signin`), `routes_gift.rs` the 000 routes,
//! `routes_mini.rs` the 003 routes, `routes_admin.rs` the admin routes.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::NaiveDate;
use points_actors::activity::Refusal;
use points_actors::{Change, LedgerError, Leg, Limit, Submit};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::Db;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points;
use crate::state::AppState;
use crate::store::SessionUser;

mod routes_admin;
mod routes_gift;
mod routes_mini;
mod rules;
mod store;

pub use routes_admin::{AppReq, ConfigReq};
pub use routes_gift::{PopInfo, PopReq, UserReq};
pub use routes_mini::{OpenidReq, SignStatus};
use rules::{date_text, month_bounds};
pub use rules::{detail, streak_after, LastSignin, Rules, SignDetail};

/// Points a day of a fresh app.
pub const SIGNIN_DAILY_POINTS_DEFAULT: i64 = 5;
/// Milestones of a fresh app: (streak day, bonus points).
pub const SIGNIN_MILESTONES_DEFAULT: &[(i64, i64)] = &[(7, 2), (14, 4), (21, 7), (30, 11)];
/// One-time reward for following, and for adding to favourites, of a fresh app.
pub const SIGNIN_POP_REWARD_DEFAULT: i64 = 5;
/// Largest configurable reward of any kind (daily points, a milestone, a pop), in points.
pub const SIGNIN_POINTS_MAX: i64 = 1_000_000;
/// Largest streak day a milestone may name (a year and a day).
pub const SIGNIN_MILESTONE_DAY_MAX: i64 = 366;
/// Most milestones per app.
pub const SIGNIN_MILESTONES_MAX: usize = 64;

// ----- keys and in-flight requests -----

/// The ledger key of a user's sign-in on `day`.
pub fn sign_key(app_id: &str, day: &str, user_id: i64) -> String {
    format!("sign:{app_id}:{day}:{user_id}")
}

/// The ledger key of a user's one-time pop reward for `action`.
pub fn pop_key(app_id: &str, action: PopAction, user_id: i64) -> String {
    format!("signpop:{app_id}:{}:{user_id}", action.as_str())
}

/// Sign-ins and pop rewards being committed in this process, by ledger key: a second request
/// for the same key is refused at once instead of racing the first to the ledger (where it
/// would be answered as a replay, indistinguishable from the first).
pub type Signing = crate::runtime::InFlightKeys;

// ----- storage -----

/// Per-app sign-in settings, as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SigninConfig {
    pub app_id: String,
    /// Points every sign-in pays.
    pub daily_points: i64,
    /// `{"<streak day>": <bonus points>}` paid on top of the day's points on reaching that
    /// streak day.
    #[schema(value_type = Object)]
    pub milestones: BTreeMap<i64, i64>,
    /// Whether the milestones come round again after the largest one (day 37 pays like day 7
    /// when the largest milestone is 30).
    pub milestones_repeat: bool,
    /// One-time reward for following (`FOCUS`).
    pub focus_reward: i64,
    /// One-time reward for adding to favourites (`COLLECT`).
    pub collect_reward: i64,
}

impl SigninConfig {
    fn defaults(app_id: &str) -> Self {
        let rules = Rules::default();
        SigninConfig {
            app_id: app_id.to_string(),
            daily_points: rules.daily_points,
            milestones: rules.milestones,
            milestones_repeat: rules.repeat,
            focus_reward: SIGNIN_POP_REWARD_DEFAULT,
            collect_reward: SIGNIN_POP_REWARD_DEFAULT,
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            daily_points: self.daily_points,
            milestones: self.milestones.clone(),
            repeat: self.milestones_repeat,
        }
    }

    fn pop_reward(&self, action: PopAction) -> i64 {
        match action {
            PopAction::Focus => self.focus_reward,
            PopAction::Collect => self.collect_reward,
        }
    }
}

async fn config(db: &Db, app_id: &str) -> Result<SigninConfig, AppError> {
    let row = store::settings(db, app_id).await?;
    let Some(r) = row else {
        return Ok(SigninConfig::defaults(app_id));
    };
    let raw: String = r.milestones;
    // Written only by `save_config` after validation; a row edited by hand into something
    // unreadable is a storage fault, not the caller's.
    let milestones = parse_milestones(&Value::String(raw)).map_err(|e| {
        tracing::error!(app_id, error = %e.message(), "stored sign-in milestones unreadable");
        AppError::Unavailable("stored sign-in milestones unreadable".into())
    })?;
    Ok(SigninConfig {
        app_id: app_id.to_string(),
        daily_points: r.daily_points,
        milestones,
        milestones_repeat: r.milestones_repeat != 0,
        focus_reward: r.focus_reward,
        collect_reward: r.collect_reward,
    })
}

/// The user's latest sign-in on or before `today`.
async fn last_signin(
    db: &Db,
    app_id: &str,
    user_id: i64,
    today: NaiveDate,
) -> Result<Option<LastSignin>, AppError> {
    let row = store::last_signin(db, app_id, user_id, date_text(today)).await?;
    let Some(r) = row else { return Ok(None) };
    let day: String = r.day;
    let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .map_err(|_| AppError::Unavailable(format!("stored sign-in day {day:?} unreadable")))?;
    Ok(Some(LastSignin {
        day,
        streak: r.streak,
        points: r.points + r.bonus,
    }))
}

/// The user's signed days between `from` and `to` (inclusive), ascending.
async fn signed_days(
    db: &Db,
    app_id: &str,
    user_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>, AppError> {
    let days: Vec<String> =
        store::signed_days(db, app_id, user_id, date_text(from), date_text(to)).await?;
    Ok(days
        .iter()
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect())
}

/// Records a committed sign-in; a second write of the same day keeps the first.
async fn record_signin(
    db: &Db,
    session: &SessionUser,
    day: &str,
    streak: i64,
    points: i64,
    bonus: i64,
) -> Result<(), sqlx::Error> {
    store::record_signin(
        db,
        session.app_id.as_str(),
        session.user_id,
        day,
        streak,
        points,
        bonus,
        now_ms(),
    )
    .await
}

/// The ledger keys among `keys` that have a committed entry in `app_id`, with their amounts.
async fn committed(
    db: &Db,
    app_id: &str,
    keys: &[&str],
) -> Result<BTreeMap<String, i64>, AppError> {
    let mut found = BTreeMap::new();
    for key in keys {
        let amount: Option<i64> =
            crate::store::ledger::signin::entry_amount(db, app_id, key).await?;
        if let Some(amount) = amount {
            found.insert((*key).to_string(), amount);
        }
    }
    Ok(found)
}

// ----- actions -----

/// What a sign-in paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Signed {
    /// Points credited, milestone bonus included.
    pub reward: i64,
    /// The streak reached today.
    pub combo_sum: i64,
}

/// Signs the caller in for today (business time): one ledger change paying the day's points
/// plus the milestone bonus of the streak reached, then the `signins` row. Refused as already
/// done when today is signed.
pub async fn sign(state: &AppState, session: &SessionUser) -> Result<Signed, AppError> {
    let db = &state.stores.db;
    let today = state.clock.date(now_ms());
    let day = date_text(today);
    let key = sign_key(&session.app_id, &day, session.user_id);
    let Some(_guard) = state.activities.signin.begin(&key) else {
        return Err(Refusal::AlreadyDone.into());
    };
    let last = last_signin(db, &session.app_id, session.user_id, today).await?;
    let Some(streak) = streak_after(last.map(|l| (l.day, l.streak)), today) else {
        return Err(Refusal::AlreadyDone.into());
    };
    let rules = config(db, &session.app_id).await?.rules();
    let points = rules.daily_points;
    let bonus = rules.bonus(streak);

    let bonus_key = format!("{key}#0");
    let stored = committed(db, &session.app_id, &[&key, &bonus_key]).await?;
    if let Some(&paid) = stored.get(&key) {
        // Committed by another process, or by this one before it died ahead of the row: restore
        // the row from what the ledger holds.
        let paid_bonus = stored.get(&bonus_key).copied().unwrap_or(0);
        record_signin(db, session, &day, streak, paid, paid_bonus).await?;
        return Err(Refusal::AlreadyDone.into());
    }

    let expires_at = if points + bonus > 0 {
        points::default_expiry(state, &session.app_id).await?
    } else {
        None
    };
    let mut change = Change {
        app_id: session.app_id.clone(),
        user_id: session.user_id,
        amount: points,
        kind: "sign".into(),
        idem_key: key.clone(),
        reference: format!("sign:{day}"),
        description: format!("每日签到 (连续{streak}天)"),
        expires_at,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
        expire_lot: None,
        fence: None,
    };
    if bonus > 0 {
        change.legs.push(Leg {
            amount: bonus,
            kind: "sign_bonus".into(),
            description: format!("连续签到{streak}天奖励"),
        });
    }
    if points == 0 && bonus == 0 {
        // A sign-in that pays nothing is still recorded: the counter makes the zero entry valid.
        change.limits.push(Limit {
            key: key.clone(),
            max: 1,
        });
    }
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => {}
        // Another process signed this user in today with other parameters (a config change in
        // between): the day is taken.
        Err(LedgerError::Conflict | LedgerError::LimitReached { .. }) => {
            return Err(Refusal::AlreadyDone.into())
        }
        Err(e) => return Err(e.into()),
    }
    // The reward is committed: a failed row write must not turn it into an error. The next
    // attempt today restores the row from the ledger.
    if let Err(e) = record_signin(db, session, &day, streak, points, bonus).await {
        tracing::warn!(error = %e, key, "sign-in committed but its row was not written");
    }
    Ok(Signed {
        reward: points + bonus,
        combo_sum: streak,
    })
}

/// Follow or favourite, the two pop actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopAction {
    /// `FOCUS`: followed the mini-program.
    Focus,
    /// `COLLECT`: added it to favourites.
    Collect,
}

impl PopAction {
    /// `FOCUS` or `COLLECT` (any case, surrounding blanks ignored).
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "FOCUS" => Ok(PopAction::Focus),
            "COLLECT" => Ok(PopAction::Collect),
            _ => Err(AppError::invalid(
                "action must be \"FOCUS\" (follow) or \"COLLECT\" (favourite)",
            )),
        }
    }

    /// The action as the client sends it and the ledger key holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            PopAction::Focus => "FOCUS",
            PopAction::Collect => "COLLECT",
        }
    }

    fn description(self) -> &'static str {
        match self {
            PopAction::Focus => "关注奖励",
            PopAction::Collect => "收藏奖励",
        }
    }
}

/// Pays the one-time reward of `action`; refused as already done the second time.
async fn pop(state: &AppState, session: &SessionUser, action: PopAction) -> Result<(), AppError> {
    let db = &state.stores.db;
    let key = pop_key(&session.app_id, action, session.user_id);
    let Some(_guard) = state.activities.signin.begin(&key) else {
        return Err(Refusal::AlreadyDone.into());
    };
    if !committed(db, &session.app_id, &[&key]).await?.is_empty() {
        return Err(Refusal::AlreadyDone.into());
    }
    let reward = config(db, &session.app_id).await?.pop_reward(action);
    let expires_at = if reward > 0 {
        points::default_expiry(state, &session.app_id).await?
    } else {
        None
    };
    let mut change = Change {
        app_id: session.app_id.clone(),
        user_id: session.user_id,
        amount: reward,
        kind: "signpop".into(),
        idem_key: key.clone(),
        reference: action.as_str().into(),
        description: action.description().into(),
        expires_at,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
        expire_lot: None,
        fence: None,
    };
    if reward == 0 {
        // A reward of nothing still records that the user did it.
        change.limits.push(Limit { key, max: 1 });
    }
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => Ok(()),
        Err(LedgerError::Conflict | LedgerError::LimitReached { .. }) => {
            Err(Refusal::AlreadyDone.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The caller's month view (000 `v2/sign/detail.json`), in business time.
async fn month_detail(state: &AppState, s: &SessionUser) -> Result<SignDetail, AppError> {
    let db = &state.stores.db;
    let today = state.clock.date(now_ms());
    let rules = config(db, &s.app_id).await?.rules();
    let last = last_signin(db, &s.app_id, s.user_id, today).await?;
    let (first, _) = month_bounds(today);
    let days = signed_days(db, &s.app_id, s.user_id, first, today).await?;
    Ok(detail(&rules, last, &days, today))
}

/// Whether the caller signed in today (business time).
async fn signed_today(state: &AppState, s: &SessionUser) -> Result<bool, AppError> {
    let today = state.clock.date(now_ms());
    let last = last_signin(&state.stores.db, &s.app_id, s.user_id, today).await?;
    Ok(last.is_some_and(|l| l.day == today))
}

/// A change of an app's sign-in settings, every field already checked; `None` keeps the value.
struct ConfigChange {
    daily_points: Option<i64>,
    milestones: Option<BTreeMap<i64, i64>>,
    milestones_repeat: Option<bool>,
    focus_reward: Option<i64>,
    collect_reward: Option<i64>,
}

/// Applies `change` to the sign-in settings of `app_id` and stores the result.
async fn save_config(
    db: &Db,
    app_id: &str,
    change: ConfigChange,
) -> Result<SigninConfig, AppError> {
    let old = config(db, app_id).await?;
    let new = SigninConfig {
        app_id: app_id.to_string(),
        daily_points: change.daily_points.unwrap_or(old.daily_points),
        milestones: change.milestones.unwrap_or(old.milestones),
        milestones_repeat: change.milestones_repeat.unwrap_or(old.milestones_repeat),
        focus_reward: change.focus_reward.unwrap_or(old.focus_reward),
        collect_reward: change.collect_reward.unwrap_or(old.collect_reward),
    };
    let milestones_json = serde_json::to_string(&new.milestones)
        .map_err(|e| AppError::invalid(format!("milestones: {e}")))?;
    store::save_settings(
        db,
        app_id,
        new.daily_points,
        milestones_json,
        i64::from(new.milestones_repeat),
        new.focus_reward,
        new.collect_reward,
        now_ms(),
    )
    .await?;
    Ok(new)
}

/// Parses and checks a milestones object: `{"<day>": <bonus>}`, or that object as a JSON string.
pub fn parse_milestones(raw: &Value) -> Result<BTreeMap<i64, i64>, AppError> {
    let parsed;
    let value = match raw {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                AppError::invalid("milestones must be a JSON object {\"<day>\": <points>}")
            })?;
            &parsed
        }
        other => other,
    };
    let Value::Object(map) = value else {
        return Err(AppError::invalid(
            "milestones must be a JSON object {\"<day>\": <points>}",
        ));
    };
    if map.len() > SIGNIN_MILESTONES_MAX {
        return Err(AppError::invalid(format!(
            "at most {SIGNIN_MILESTONES_MAX} milestones"
        )));
    }
    let mut out = BTreeMap::new();
    for (day, points) in map {
        let day: i64 = day
            .trim()
            .parse()
            .ok()
            .filter(|d| (1..=SIGNIN_MILESTONE_DAY_MAX).contains(d))
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "milestone day {day:?} must be a whole number 1-{SIGNIN_MILESTONE_DAY_MAX}"
                ))
            })?;
        let points = points
            .as_i64()
            .filter(|p| (0..=SIGNIN_POINTS_MAX).contains(p))
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "milestone {day}'s points must be a whole number 0-{SIGNIN_POINTS_MAX}"
                ))
            })?;
        if out.insert(day, points).is_some() {
            return Err(AppError::invalid(format!(
                "milestone day {day} given twice"
            )));
        }
    }
    Ok(out)
}

/// Registers the sign-in routes (000, 003, admin), recording each in `doc`.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_mini::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn milestones_are_checked() {
        let ok = parse_milestones(&json!({"7": 2, "14": 4})).expect("valid");
        assert_eq!(ok, BTreeMap::from([(7, 2), (14, 4)]));
        assert_eq!(
            parse_milestones(&json!("{\"30\":11}")).expect("as a string"),
            BTreeMap::from([(30, 11)])
        );
        assert!(parse_milestones(&json!({})).expect("empty").is_empty());
        for bad in [
            json!({"0": 1}),
            json!({"-3": 1}),
            json!({"367": 1}),
            json!({"seven": 1}),
            json!({"7": -1}),
            json!({"7": 1.5}),
            json!({"7": "2"}),
            json!({"7": 1_000_001}),
            json!([7, 2]),
            json!("not json"),
            json!(7),
        ] {
            assert!(
                matches!(parse_milestones(&bad), Err(AppError::Invalid(_))),
                "{bad}"
            );
        }
        let many: serde_json::Map<String, Value> =
            (1..=65).map(|n| (n.to_string(), json!(1))).collect();
        assert!(parse_milestones(&Value::Object(many)).is_err());
    }

    #[test]
    fn pop_actions_parse() {
        assert_eq!(PopAction::parse("FOCUS").ok(), Some(PopAction::Focus));
        assert_eq!(PopAction::parse(" collect ").ok(), Some(PopAction::Collect));
        assert!(PopAction::parse("LIKE").is_err());
        assert!(PopAction::parse("").is_err());
    }
}
