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

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use points_actors::activity::Refusal;
use points_actors::{Change, LedgerError, Leg, Limit, Submit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::auth;
use crate::clock::now_ms;
use crate::db::Db;
use crate::error::{AppError, Failure};
use crate::facades::giftpoint::{ok, own_user, Gift};
use crate::facades::miniapp::{self, own_openid, Mini};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Empty, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;
use crate::store::SessionUser;

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

type GiftReply = Result<HttpResponse, Failure<Gift>>;
type MiniReply = Result<HttpResponse, Failure<Mini>>;

// ----- rules (pure) -----

/// The sign-in rules of an app, as the pure functions below use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Points every sign-in pays.
    pub daily_points: i64,
    /// Streak day -> bonus points paid on reaching it.
    pub milestones: BTreeMap<i64, i64>,
    /// Whether the milestones come round again after the largest one.
    pub repeat: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            daily_points: SIGNIN_DAILY_POINTS_DEFAULT,
            milestones: SIGNIN_MILESTONES_DEFAULT.iter().copied().collect(),
            repeat: true,
        }
    }
}

impl Rules {
    /// The largest milestone day: the length of one round when milestones repeat.
    fn round_days(&self) -> Option<i64> {
        self.milestones.keys().next_back().copied()
    }

    /// The bonus paid on reaching `streak` consecutive days (0: none).
    pub fn bonus(&self, streak: i64) -> i64 {
        if streak < 1 {
            return 0;
        }
        let day = match (self.repeat, self.round_days()) {
            (true, Some(round)) => (streak - 1) % round + 1,
            _ => streak,
        };
        self.milestones.get(&day).copied().unwrap_or(0)
    }

    /// The next milestone after a streak of `streak` days: how many more daily sign-ins reach
    /// it and its bonus. `None` when no milestone with a positive bonus lies ahead.
    pub fn next_milestone(&self, streak: i64) -> Option<(i64, i64)> {
        // Within one round every milestone day comes up once, so looking that far is enough.
        let horizon = self.round_days()?;
        (1..=horizon)
            .map(|k| (k, self.bonus(streak.saturating_add(k))))
            .find(|(_, bonus)| *bonus > 0)
    }
}

/// The streak a sign-in on `today` reaches, given the user's latest sign-in before or on
/// `today` (its business date and streak): one more than yesterday's streak, 1 after a gap or
/// for a first sign-in. `None` when `today` is already signed.
pub fn streak_after(last: Option<(NaiveDate, i64)>, today: NaiveDate) -> Option<i64> {
    match last {
        Some((day, _)) if day >= today => None,
        Some((day, streak)) if day.succ_opt() == Some(today) => Some(streak.saturating_add(1)),
        _ => Some(1),
    }
}

/// The user's latest sign-in on or before today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSignin {
    pub day: NaiveDate,
    pub streak: i64,
    /// Points it paid, bonus included.
    pub points: i64,
}

/// 000 `v2/sign/detail.json`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignDetail {
    /// Consecutive days signed up to today (if signed today) or yesterday; 0 after a gap.
    pub combo_sum: i64,
    /// Points of today's sign-in, bonus included: what it paid when `is_sign`, what it would pay
    /// now otherwise.
    pub reward: i64,
    /// Signed dates of the current month (business time), `YYYY-MM-DD`, ascending.
    pub sign_days: Vec<String>,
    /// Dates of the rest of this month (today included while not signed) on which a milestone
    /// would pay if the user signs every day from now on: date -> bonus points.
    pub special_days: BTreeMap<String, i64>,
    /// Whether the user signed today.
    pub is_sign: bool,
    /// Daily sign-ins still needed (today's included while not signed) to reach the next
    /// milestone; 0 when none lies ahead.
    pub more_day: i64,
    /// The bonus of that milestone; 0 when none lies ahead.
    pub more_point: i64,
}

fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Builds the month view from the latest sign-in and the signed days of the month.
pub fn detail(
    rules: &Rules,
    last: Option<LastSignin>,
    month_days: &[NaiveDate],
    today: NaiveDate,
) -> SignDetail {
    let is_sign = last.is_some_and(|l| l.day == today);
    let combo_sum = match last {
        Some(l) if l.day == today || l.day.succ_opt() == Some(today) => l.streak,
        _ => 0,
    };
    let reward = match last {
        Some(l) if is_sign => l.points,
        _ => rules.daily_points + rules.bonus(combo_sum + 1),
    };
    let streak_today = if is_sign { combo_sum } else { combo_sum + 1 };
    let mut special_days = BTreeMap::new();
    let mut offset = i64::from(is_sign);
    while let Some(day) = today.checked_add_days(chrono::Days::new(offset.unsigned_abs())) {
        if day.month() != today.month() {
            break;
        }
        let bonus = rules.bonus(streak_today + offset);
        if bonus > 0 {
            special_days.insert(date_text(day), bonus);
        }
        offset += 1;
    }
    let (more_day, more_point) = rules.next_milestone(combo_sum).unwrap_or((0, 0));
    SignDetail {
        combo_sum,
        reward,
        sign_days: month_days.iter().copied().map(date_text).collect(),
        special_days,
        is_sign,
        more_day,
        more_point,
    }
}

/// The first and last day of `today`'s month.
fn month_bounds(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = today.with_day(1).unwrap_or(today);
    let last = first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(today);
    (first, last)
}

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
pub type Signing = crate::activities::InFlightKeys;

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
    let row = sqlx::query(
        "SELECT daily_points, milestones, milestones_repeat, focus_reward, collect_reward \
         FROM signin_settings WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_optional(&db.read)
    .await?;
    let Some(r) = row else {
        return Ok(SigninConfig::defaults(app_id));
    };
    let raw: String = r.try_get(1)?;
    // Written only by `save_config` after validation; a row edited by hand into something
    // unreadable is a storage fault, not the caller's.
    let milestones = parse_milestones(&Value::String(raw)).map_err(|e| {
        tracing::error!(app_id, error = %e.message(), "stored sign-in milestones unreadable");
        AppError::Unavailable("stored sign-in milestones unreadable".into())
    })?;
    Ok(SigninConfig {
        app_id: app_id.to_string(),
        daily_points: r.try_get(0)?,
        milestones,
        milestones_repeat: r.try_get::<i64, _>(2)? != 0,
        focus_reward: r.try_get(3)?,
        collect_reward: r.try_get(4)?,
    })
}

/// The user's latest sign-in on or before `today`.
async fn last_signin(
    db: &Db,
    app_id: &str,
    user_id: i64,
    today: NaiveDate,
) -> Result<Option<LastSignin>, AppError> {
    let row = sqlx::query(
        "SELECT day, streak, points, bonus FROM signins \
         WHERE app_id = $1 AND user_id = $2 AND day <= $3 ORDER BY day DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(date_text(today))
    .fetch_optional(&db.read)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let day: String = r.try_get(0)?;
    let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .map_err(|_| AppError::Unavailable(format!("stored sign-in day {day:?} unreadable")))?;
    Ok(Some(LastSignin {
        day,
        streak: r.try_get(1)?,
        points: r.try_get::<i64, _>(2)? + r.try_get::<i64, _>(3)?,
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
    let days: Vec<String> = sqlx::query_scalar(
        "SELECT day FROM signins WHERE app_id = $1 AND user_id = $2 AND day >= $3 AND day <= $4 \
         ORDER BY day",
    )
    .bind(app_id)
    .bind(user_id)
    .bind(date_text(from))
    .bind(date_text(to))
    .fetch_all(&db.read)
    .await?;
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
    sqlx::query(
        "INSERT INTO signins (app_id, user_id, day, streak, points, bonus, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, user_id, day) DO NOTHING",
    )
    .bind(session.app_id.as_str())
    .bind(session.user_id)
    .bind(day)
    .bind(streak)
    .bind(points)
    .bind(bonus)
    .bind(now_ms())
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The ledger keys among `keys` that have a committed entry in `app_id`, with their amounts.
async fn committed(
    db: &Db,
    app_id: &str,
    keys: &[&str],
) -> Result<BTreeMap<String, i64>, AppError> {
    let mut found = BTreeMap::new();
    for key in keys {
        let amount: Option<i64> = sqlx::query_scalar(
            "SELECT amount FROM ledger_entries WHERE app_id = $1 AND idem_key = $2",
        )
        .bind(app_id)
        .bind(*key)
        .fetch_optional(&db.read)
        .await?;
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
        Err(LedgerError::Conflict | LedgerError::LimitReached) => {
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
    };
    if reward == 0 {
        // A reward of nothing still records that the user did it.
        change.limits.push(Limit { key, max: 1 });
    }
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => Ok(()),
        Err(LedgerError::Conflict | LedgerError::LimitReached) => Err(Refusal::AlreadyDone.into()),
        Err(e) => Err(e.into()),
    }
}

// ----- routes -----

/// Registers the sign-in routes (000, 003, admin), recording each in `doc`.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 gift points";
    r.add::<UserReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/sign/do.json",
            methods: GET_POST,
            tag,
            summary: "签到: sign in for today",
            description: "Bearer token; `user_id` must be the token's user. Once per calendar day in business time (`POINTS_TIMEZONE`, default Asia/Shanghai): pays the app's daily points (fresh app: 5) plus, on reaching a milestone streak day, its bonus (fresh app: `{\"7\":2,\"14\":4,\"21\":7,\"30\":11}`; the milestones come round again after the largest one, so day 37 of a streak pays like day 7). Consecutive days make the streak; a missed day starts it again at 1. `data`: `[]`. Already signed today: `status:false`, code 410.",
        },
        sign_do,
    );
    r.add::<UserReq, SignDetail, _, _>(
        RouteDoc {
            path: "/v2/sign/detail.json",
            methods: GET_POST,
            tag,
            summary: "签到详情: this month's sign-in view",
            description: "Bearer token. `combo_sum`: consecutive days signed up to today (when signed today) or yesterday, 0 after a gap. `reward`: points of today's sign-in with its bonus (what it paid when `is_sign`, what it would pay now otherwise). `sign_days`: the signed dates of the current month, `YYYY-MM-DD`, ascending. `special_days`: `{date: bonus}` for the remaining dates of this month (today included while not signed) on which a milestone bonus would pay if the user signs every day from now on. `is_sign`: signed today. `more_day`: daily sign-ins still needed (today's included while not signed) to reach the next milestone, `more_point`: its bonus (both 0 when no milestone lies ahead). Days are business-time calendar days.",
        },
        sign_detail,
    );
    r.add::<UserReq, PopInfo, _, _>(
        RouteDoc {
            path: "/v2/sign/pop/info.json",
            methods: GET_POST,
            tag,
            summary: "关注、收藏情况: whether the follow and favourite rewards were taken",
            description: "Bearer token. `is_focus`: the follow (`FOCUS`) reward was paid; `is_collect`: the favourite (`COLLECT`) reward was paid.",
        },
        pop_info,
    );
    r.add::<PopReq, Vec<Empty>, _, _>(
        RouteDoc {
            path: "/v2/sign/pop.json",
            methods: GET_POST,
            tag,
            summary: "关注或者收藏: take the follow or favourite reward",
            description: "Bearer token. `action`: `FOCUS` (followed the mini-program) or `COLLECT` (added it to favourites). Pays the app's one-time reward for that action (fresh app: 5 points each), once per user and action. `data`: `[]`. The second time: code 410; any other action: code 400.",
        },
        pop_do,
    );

    let tag = "003 mini-program";
    r.add::<OpenidReq, Signed, _, _>(
        RouteDoc {
            path: "/api/sign/",
            methods: GET_POST,
            tag,
            summary: "每日签到",
            description: "Bearer token; `openid` must be the token's user. Signs in for today (business time) with the same rules as 000 `v2/sign/do.json`. `data` (beyond the seed's `code`/`msg`): `reward` points credited, bonus included, and `combo_sum` the streak reached. Codes: 0 ok, -1 empty parameter, -2 already signed today, -3 wrong openid, -4 sign-in failed (storage busy or unavailable; nothing was credited).",
        },
        mini_sign,
    );
    r.add::<OpenidReq, SignStatus, _, _>(
        RouteDoc {
            path: "/api/sign_status/",
            methods: GET_POST,
            tag,
            summary: "查询签到状态",
            description: "Bearer token; `openid` must be the token's user. `data.is_sign`: true when the user signed in today (business time). Codes: 0 ok, -1 empty parameter, -2 wrong openid.",
        },
        mini_sign_status,
    );

    let tag = "admin";
    r.add::<AppReq, SigninConfig, _, _>(
        RouteDoc {
            path: "/admin/signin/config",
            methods: GET,
            tag,
            summary: "Sign-in settings of an app",
            description: "`app_id` (default `default`). A fresh app: `daily_points` 5, `milestones` `{\"7\":2,\"14\":4,\"21\":7,\"30\":11}`, `milestones_repeat` true, `focus_reward` 5, `collect_reward` 5.",
        },
        get_config,
    );
    r.add::<ConfigReq, SigninConfig, _, _>(
        RouteDoc {
            path: "/admin/signin/config",
            methods: POST,
            tag,
            summary: "Set the sign-in settings of an app",
            description: "`app_id` (default `default`); an omitted field keeps its value. `daily_points` 0-1000000. `milestones`: an object (or that object as a JSON string) of at most 64 entries `{\"<streak day 1-366>\": <bonus 0-1000000>}`; `{}` removes every milestone. `milestones_repeat` true/false: whether the milestones come round again after the largest one. `focus_reward`, `collect_reward` 0-1000000: one-time rewards of the pop. New settings apply to sign-ins from now on; a bad value answers 400 and changes nothing.",
        },
        save_config,
    );
}

/// A 000 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct UserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

/// 000 `v2/sign/pop.json`.
#[derive(Deserialize, ToSchema)]
pub struct PopReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `FOCUS` or `COLLECT`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub action: Option<String>,
}

/// A 003 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// An admin read of one app.
#[derive(Deserialize, ToSchema)]
pub struct AppReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `POST /admin/signin/config`; an omitted field keeps its value.
#[derive(Deserialize, ToSchema)]
pub struct ConfigReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub daily_points: Option<i64>,
    /// `{"<streak day>": <bonus>}`, or that object as a JSON string.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub milestones: Option<Value>,
    /// `true`/`false` (also `1`/`0` or those as strings).
    #[serde(default)]
    #[schema(value_type = bool)]
    pub milestones_repeat: Option<Value>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub focus_reward: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub collect_reward: Option<i64>,
}

/// 000 `v2/sign/pop/info.json`: which one-time pop rewards were taken.
#[derive(Serialize, ToSchema)]
pub struct PopInfo {
    pub is_focus: bool,
    pub is_collect: bool,
}

/// 003 `/api/sign_status/`.
#[derive(Serialize, ToSchema)]
pub struct SignStatus {
    pub is_sign: bool,
}

fn app_or_default(app: &Option<String>) -> String {
    app.clone().unwrap_or_else(|| "default".into())
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

fn parse_bool(field: &str, raw: &Value) -> Result<bool, AppError> {
    match raw {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::String(s) => match s.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(AppError::invalid(format!("{field} must be true or false"))),
        },
        _ => Err(AppError::invalid(format!("{field} must be true or false"))),
    }
}

fn points_field(field: &str, value: Option<i64>) -> Result<Option<i64>, AppError> {
    match value {
        Some(v) if !(0..=SIGNIN_POINTS_MAX).contains(&v) => Err(AppError::invalid(format!(
            "{field} must be 0-{SIGNIN_POINTS_MAX}"
        ))),
        other => Ok(other),
    }
}

async fn sign_do(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    sign(&state, &caller.session).await?;
    Ok(ok(json!([])))
}

async fn sign_detail(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let db = &state.stores.db;
    let today = state.clock.date(now_ms());
    let rules = config(db, &s.app_id).await?.rules();
    let last = last_signin(db, &s.app_id, s.user_id, today).await?;
    let (first, _) = month_bounds(today);
    let days = signed_days(db, &s.app_id, s.user_id, first, today).await?;
    Ok(ok(json!(detail(&rules, last, &days, today))))
}

async fn pop_info(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<UserReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let s = &caller.session;
    let focus = pop_key(&s.app_id, PopAction::Focus, s.user_id);
    let collect = pop_key(&s.app_id, PopAction::Collect, s.user_id);
    let found = committed(&state.stores.db, &s.app_id, &[&focus, &collect]).await?;
    Ok(ok(json!(PopInfo {
        is_focus: found.contains_key(&focus),
        is_collect: found.contains_key(&collect),
    })))
}

async fn pop_do(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<PopReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let action = PopAction::parse(
        p.action
            .as_deref()
            .ok_or_else(|| AppError::missing("action"))?,
    )?;
    pop(&state, &caller.session, action).await?;
    Ok(ok(json!([])))
}

async fn mini_sign(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -3)?;
    let signed = sign(&state, &caller.session).await.map_err(|e| match e {
        AppError::Refused(_) => AppError::Coded(-2, "每天只能签到一次".into()),
        AppError::Unavailable(_)
        | AppError::Busy
        | AppError::Conflict(_)
        | AppError::LimitReached(_)
        | AppError::Insufficient { .. }
        | AppError::Invalid(_) => AppError::Coded(-4, "签到失败".into()),
        other => other,
    })?;
    Ok(miniapp::ok(json!(signed)))
}

async fn mini_sign_status(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    let s = &caller.session;
    let today = state.clock.date(now_ms());
    let last = last_signin(&state.stores.db, &s.app_id, s.user_id, today).await?;
    Ok(miniapp::ok(json!(SignStatus {
        is_sign: last.is_some_and(|l| l.day == today),
    })))
}

async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<AppReq, Gift>,
) -> GiftReply {
    let app = auth::app(&state, &app_or_default(&p.into_inner().app_id)).await?;
    Ok(ok(json!(config(&state.stores.db, &app.id).await?)))
}

async fn save_config(
    state: web::Data<AppState>,
    _admin: AdminKey<Gift>,
    p: Params<ConfigReq, Gift>,
) -> GiftReply {
    let p = p.into_inner();
    let app = auth::app(&state, &app_or_default(&p.app_id)).await?;
    // Every field is checked before anything is written.
    let daily_points = points_field("daily_points", p.daily_points)?;
    let focus_reward = points_field("focus_reward", p.focus_reward)?;
    let collect_reward = points_field("collect_reward", p.collect_reward)?;
    let milestones = p.milestones.as_ref().map(parse_milestones).transpose()?;
    let repeat = p
        .milestones_repeat
        .as_ref()
        .map(|v| parse_bool("milestones_repeat", v))
        .transpose()?;
    let old = config(&state.stores.db, &app.id).await?;
    let new = SigninConfig {
        app_id: app.id.clone(),
        daily_points: daily_points.unwrap_or(old.daily_points),
        milestones: milestones.unwrap_or(old.milestones),
        milestones_repeat: repeat.unwrap_or(old.milestones_repeat),
        focus_reward: focus_reward.unwrap_or(old.focus_reward),
        collect_reward: collect_reward.unwrap_or(old.collect_reward),
    };
    let milestones_json = serde_json::to_string(&new.milestones)
        .map_err(|e| AppError::invalid(format!("milestones: {e}")))?;
    sqlx::query(
        "INSERT INTO signin_settings (app_id, daily_points, milestones, milestones_repeat, \
         focus_reward, collect_reward, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (app_id) DO UPDATE SET daily_points = excluded.daily_points, \
         milestones = excluded.milestones, milestones_repeat = excluded.milestones_repeat, \
         focus_reward = excluded.focus_reward, collect_reward = excluded.collect_reward, \
         updated_at = excluded.updated_at",
    )
    .bind(app.id.as_str())
    .bind(new.daily_points)
    .bind(milestones_json)
    .bind(i64::from(new.milestones_repeat))
    .bind(new.focus_reward)
    .bind(new.collect_reward)
    .bind(now_ms())
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!(new)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BizClock;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn streaks_grow_on_consecutive_days_and_restart_after_a_gap() {
        let today = d("2026-03-10");
        assert_eq!(streak_after(None, today), Some(1));
        assert_eq!(streak_after(Some((d("2026-03-09"), 6)), today), Some(7));
        assert_eq!(streak_after(Some((d("2026-03-08"), 6)), today), Some(1));
        assert_eq!(streak_after(Some((d("2025-03-09"), 6)), today), Some(1));
        assert_eq!(streak_after(Some((today, 3)), today), None);
        // Across a month and a year boundary.
        assert_eq!(
            streak_after(Some((d("2026-02-28"), 2)), d("2026-03-01")),
            Some(3)
        );
        assert_eq!(
            streak_after(Some((d("2025-12-31"), 9)), d("2026-01-01")),
            Some(10)
        );
    }

    #[test]
    fn one_sign_in_per_business_day_around_midnight() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        // 2026-01-02 00:00:00 in Shanghai is 2026-01-01 16:00:00 UTC.
        let midnight = clock.parse("2026-01-02 00:00:00").expect("time");
        assert_eq!(midnight, 1_767_283_200_000);
        let before = clock.date(midnight - 1);
        let after = clock.date(midnight);
        assert_eq!(before, d("2026-01-01"));
        assert_eq!(after, d("2026-01-02"));
        // A sign-in just before midnight, then just after: two days, the streak goes on.
        let first = streak_after(None, before).expect("first sign-in");
        assert_eq!(streak_after(Some((before, first)), after), Some(2));
        // Twice within one business day (00:00:00 and 23:59:59): the second is refused.
        let late = clock.date(midnight + 86_400_000 - 1);
        assert_eq!(late, after);
        assert_eq!(streak_after(Some((after, 2)), late), None);
        // In UTC both instants are on 2026-01-01: the business timezone is what counts.
        let utc = BizClock::new(chrono_tz::UTC);
        assert_eq!(utc.date(midnight - 1), utc.date(midnight));
    }

    #[test]
    fn milestones_pay_on_their_day_and_come_round_again() {
        let rules = Rules::default();
        let bonuses: Vec<(i64, i64)> = (1..=61)
            .map(|n| (n, rules.bonus(n)))
            .filter(|(_, b)| *b > 0)
            .collect();
        assert_eq!(
            bonuses,
            vec![
                (7, 2),
                (14, 4),
                (21, 7),
                (30, 11),
                (37, 2),
                (44, 4),
                (51, 7),
                (60, 11)
            ]
        );
        assert_eq!(rules.bonus(0), 0);
        let once = Rules {
            repeat: false,
            ..Rules::default()
        };
        assert_eq!(once.bonus(30), 11);
        assert_eq!(once.bonus(37), 0);
        assert_eq!(once.next_milestone(30), None);
        assert_eq!(once.next_milestone(29), Some((1, 11)));
    }

    #[test]
    fn next_milestone_counts_the_sign_ins_still_needed() {
        let rules = Rules::default();
        assert_eq!(rules.next_milestone(0), Some((7, 2)));
        assert_eq!(rules.next_milestone(6), Some((1, 2)));
        assert_eq!(rules.next_milestone(7), Some((7, 4)));
        assert_eq!(rules.next_milestone(21), Some((9, 11)));
        assert_eq!(rules.next_milestone(30), Some((7, 2)));
        let none = Rules {
            milestones: BTreeMap::new(),
            ..Rules::default()
        };
        assert_eq!(none.next_milestone(3), None);
        assert_eq!(none.bonus(7), 0);
        // A zero-point milestone is no milestone to look forward to.
        let zero = Rules {
            milestones: BTreeMap::from([(3, 0), (5, 1)]),
            ..Rules::default()
        };
        assert_eq!(zero.next_milestone(0), Some((5, 1)));
    }

    #[test]
    fn month_view_before_and_after_signing() {
        let rules = Rules::default();
        let today = d("2026-03-10");
        // Signed the six days before today.
        let before: Vec<NaiveDate> = (4..=9).map(|n| d(&format!("2026-03-{n:02}"))).collect();
        let last = LastSignin {
            day: d("2026-03-09"),
            streak: 6,
            points: 5,
        };
        let v = detail(&rules, Some(last), &before, today);
        assert!(!v.is_sign);
        assert_eq!(v.combo_sum, 6);
        assert_eq!(v.reward, 7, "today would be day 7: 5 + 2");
        assert_eq!((v.more_day, v.more_point), (1, 2));
        assert_eq!(v.sign_days.len(), 6);
        assert_eq!(
            v.special_days,
            BTreeMap::from([
                ("2026-03-10".to_string(), 2),
                ("2026-03-17".to_string(), 4),
                ("2026-03-24".to_string(), 7),
            ])
        );

        let mut after = before.clone();
        after.push(today);
        let signed = LastSignin {
            day: today,
            streak: 7,
            points: 7,
        };
        let v = detail(&rules, Some(signed), &after, today);
        assert!(v.is_sign);
        assert_eq!(v.combo_sum, 7);
        assert_eq!(v.reward, 7);
        assert_eq!((v.more_day, v.more_point), (7, 4));
        assert_eq!(v.sign_days.last().map(String::as_str), Some("2026-03-10"));
        assert_eq!(
            v.special_days,
            BTreeMap::from([("2026-03-17".to_string(), 4), ("2026-03-24".to_string(), 7)])
        );

        // After a gap the streak is gone and a sign-in today would be day 1.
        let stale = LastSignin {
            day: d("2026-03-07"),
            streak: 4,
            points: 5,
        };
        let v = detail(&rules, Some(stale), &before[..4], today);
        assert_eq!((v.combo_sum, v.reward, v.is_sign), (0, 5, false));
        assert_eq!((v.more_day, v.more_point), (7, 2));
        assert_eq!(
            v.special_days,
            BTreeMap::from([
                ("2026-03-16".to_string(), 2),
                ("2026-03-23".to_string(), 4),
                ("2026-03-30".to_string(), 7),
            ])
        );
        // Day 30 of the streak falls on 2026-04-08: outside this month, not listed.
        assert!(!v.special_days.contains_key("2026-04-08"));
    }

    #[test]
    fn month_bounds_cover_the_calendar_month() {
        assert_eq!(
            month_bounds(d("2026-02-14")),
            (d("2026-02-01"), d("2026-02-28"))
        );
        assert_eq!(
            month_bounds(d("2026-12-31")),
            (d("2026-12-01"), d("2026-12-31"))
        );
    }

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
