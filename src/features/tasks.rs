//! Tasks: 000 gift tasks and 001 center tasks, with their admin routes.
//!
//! **000 tasks** (`v2/task/*`) are finished by the client up to `repeat` times per business day.
//! Every finish is ONE ledger change of kind `task` (what the blind boxes count), keyed
//! `task:<app>:<id>:<day>:<user>:<n>` and counted against the ledger counter
//! `task:<app>:<id>:<user>:<day>` whose ceiling is `repeat`: the ledger commit, not this code,
//! refuses a finish past `repeat`, also across processes. A `积分` task credits its `amount`; any
//! other reward type is a zero-point finish carrying a fulfilment order, delivered outside.
//!
//! **001 tasks** (`/center/*`) are permanent (growth) or cyclic (`cycle.type` day/week/month,
//! `cycle.day` units per cycle). The operator's server reports progress with
//! `setUserTaskStatus`; the user claims the reward once per cycle with `receiveTaskAward`,
//! a ledger change keyed `ctask:<app>:<task>:<cycle-start>:<user>`, so a claim sent twice (or
//! twenty times at once) pays once. Cycles are computed from the business date (see
//! [`Cycle::start_of`]), so they roll over at 00:00 business time without any job.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::web;
use chrono::{Datelike, NaiveDate};
use points_actors::activity::Refusal;
use points_actors::ledger::CHANGE_AMOUNT_ABS_MAX;
use points_actors::redpack::REWARD_POINTS;
use points_actors::{Change, LedgerError, Limit, OrderSpec, Submit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::blindbox::TASK_KIND;
use crate::activities::lottery::counter_values;
use crate::activities::redpack::REWARD_TYPES;
use crate::activities::Moment;
use crate::clock::{now_ms, BizClock};
use crate::error::{AppError, Failure};
use crate::facades::center::{self, Center};
use crate::facades::giftpoint::{ok, own_user, Gift, Reply};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// Most tasks of one kind (000 or 001) an app may keep, deleted ones excluded.
pub const TASKS_PER_APP_MAX: i64 = 200;
/// Most finishes per day a 000 task may allow.
pub const TASK_REPEAT_MAX: i64 = 100;
/// Longest task name or title.
pub const TASK_NAME_CHARS_MAX: usize = 64;
/// Longest free text (remark, reward description, 001 desc, button title, flag, target type).
pub const TASK_TEXT_CHARS_MAX: usize = 200;
/// Longest link (icon, image, target, path).
pub const TASK_URL_CHARS_MAX: usize = 1_000;
/// Most button texts of a 000 task.
pub const TASK_BUTTONS_MAX: usize = 8;
/// Longest button text of a 000 task.
pub const TASK_BUTTON_CHARS_MAX: usize = 32;
/// Longest 001 `taskId`.
pub const TASK_ID_CHARS_MAX: usize = 64;
/// Largest 001 `total` (target count).
pub const TASK_TOTAL_MAX: i64 = 1_000_000_000;
/// Most units (days, weeks, months) in one 001 cycle.
pub const CYCLE_UNITS_MAX: i64 = 366;
/// Largest magnitude of a `sort` value.
pub const TASK_SORT_ABS_MAX: i64 = 1_000_000;

/// Config status: on shelf.
const STATUS_ON: &str = "10";
/// Config status: deleted.
const STATUS_DELETED: &str = "30";
const STATUSES: &[&str] = &["10", "20", "30"];
/// 001 button types, as its client knows them.
const BTN_TYPES: &[&str] = &["qrCode", "route", "customize"];
/// The cycle key of a permanent (growth) 001 task: one cycle forever.
const PERMANENT_CYCLE: &str = "permanent";
/// 001 progress states.
const TO_CLAIM: i64 = 1;
const UNFINISHED: i64 = 2;
const DONE: i64 = 3;

// ---------------------------------------------------------------------------------------------
// Cycles

/// The unit of a cyclic 001 task's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleUnit {
    Day,
    Week,
    Month,
}

impl CycleUnit {
    /// `day`, `week` or `month`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(CycleUnit::Day),
            "week" => Some(CycleUnit::Week),
            "month" => Some(CycleUnit::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CycleUnit::Day => "day",
            CycleUnit::Week => "week",
            CycleUnit::Month => "month",
        }
    }
}

/// A cyclic task's period: `length` units of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub unit: CycleUnit,
    /// Units per cycle, 1-[`CYCLE_UNITS_MAX`].
    pub length: i64,
}

/// Where multi-unit cycles are counted from: Monday 2024-01-01, the first day of a week, of a
/// month and of a year, so one-unit cycles are plain calendar days, ISO weeks (Monday first)
/// and calendar months, and an N-unit cycle is the N-unit block since this day that holds the
/// date (a 2-week cycle starts on Mondays 2024-01-01, 2024-01-15, ...; a 3-month cycle on
/// January, April, July, October 1st).
pub const CYCLE_EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2024, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

impl Cycle {
    /// The first business date of the cycle that holds `date`.
    pub fn start_of(&self, date: NaiveDate) -> NaiveDate {
        let n = self.length.max(1);
        let days = (date - CYCLE_EPOCH).num_days();
        let from_epoch = |days: i64| {
            CYCLE_EPOCH
                .checked_add_signed(chrono::Duration::days(days))
                .unwrap_or(date)
        };
        match self.unit {
            CycleUnit::Day => from_epoch(days - days.rem_euclid(n)),
            CycleUnit::Week => {
                let weeks = days.div_euclid(7);
                from_epoch((weeks - weeks.rem_euclid(n)) * 7)
            }
            CycleUnit::Month => {
                let months =
                    i64::from(date.year() - CYCLE_EPOCH.year()) * 12 + i64::from(date.month0());
                let start = months - months.rem_euclid(n);
                let year = i64::from(CYCLE_EPOCH.year()) + start.div_euclid(12);
                let month = start.rem_euclid(12) + 1;
                i32::try_from(year)
                    .ok()
                    .and_then(|y| NaiveDate::from_ymd_opt(y, month as u32, 1))
                    .unwrap_or(date)
            }
        }
    }

    /// The first business date of the cycle after the one that starts on `start`.
    pub fn next_start(&self, start: NaiveDate) -> NaiveDate {
        let n = self.length.max(1);
        let next = match self.unit {
            CycleUnit::Day => start.checked_add_signed(chrono::Duration::days(n)),
            CycleUnit::Week => start.checked_add_signed(chrono::Duration::days(n * 7)),
            CycleUnit::Month => u32::try_from(n)
                .ok()
                .and_then(|n| start.checked_add_months(chrono::Months::new(n))),
        };
        next.unwrap_or(start)
    }
}

/// The key of the cycle that holds the instant `at_ms`: `permanent` for a growth task (`None`),
/// otherwise the cycle's first business date, `YYYY-MM-DD`.
pub fn cycle_key(clock: &BizClock, cycle: Option<Cycle>, at_ms: i64) -> String {
    match cycle {
        None => PERMANENT_CYCLE.to_string(),
        Some(c) => c.start_of(clock.date(at_ms)).format("%Y-%m-%d").to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-user serialization of 000 finishes

/// One async lock per (app, task, user), held while a 000 finish picks its number `n` and
/// commits, so concurrent finishes of one user in this process take consecutive numbers and
/// every one of them up to `repeat` is paid. The ledger counter remains the guard: two
/// processes racing for the same `n` collide on its idempotency key and pay once.
#[derive(Default)]
pub struct FinishLocks {
    // A std Mutex: the critical section is a map lookup and never awaits.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held [`FinishLocks`] lock; dropping it frees the lock and forgets it when unused.
pub struct FinishGuard<'a> {
    owner: &'a FinishLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl FinishLocks {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: String) -> FinishGuard<'_> {
        let lock = match self.locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(key.clone()).or_default()),
            // A poisoned map only means a panic elsewhere; the ledger counter still guards.
            Err(_) => Arc::default(),
        };
        FinishGuard {
            owner: self,
            key,
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut locks) = self.owner.locks.lock() {
            // Only the map holds it: nobody waits, so the entry can go and the map stays small.
            if locks
                .get(&self.key)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                locks.remove(&self.key);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared validation

fn app_of(raw: Option<String>) -> String {
    raw.map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// A trimmed text of at most `max` characters without control characters; absent is empty.
fn text(field: &str, raw: Option<String>, max: usize) -> Result<String, AppError> {
    let value = raw.map(|v| v.trim().to_string()).unwrap_or_default();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(value)
}

/// A required, non-empty [`text`].
fn required_text(field: &str, raw: Option<String>, max: usize) -> Result<String, AppError> {
    let value = text(field, raw, max)?;
    if value.is_empty() {
        return Err(AppError::missing(field));
    }
    Ok(value)
}

fn ranged(field: &str, v: i64, min: i64, max: i64) -> Result<i64, AppError> {
    if !(min..=max).contains(&v) {
        return Err(AppError::invalid(format!(
            "{field} must be between {min} and {max}"
        )));
    }
    Ok(v)
}

fn config_status(raw: Option<String>) -> Result<Option<String>, AppError> {
    raw.map(|s| {
        let s = s.trim().to_string();
        if STATUSES.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(AppError::invalid(
                "status must be \"10\" (on shelf), \"20\" (off shelf) or \"30\" (deleted)",
            ))
        }
    })
    .transpose()
}

fn to_json<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Refusal of a 000 finish past `repeat` today.
fn repeat_used_up() -> AppError {
    AppError::Refused(Refusal::Other {
        en: "this task is already finished as often as allowed today".into(),
        zh: "今日该任务已完成".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// 000 tasks: storage

/// A stored 000 task.
#[derive(Debug, Clone)]
struct GiftTask {
    id: i64,
    app_id: String,
    icon: String,
    name: String,
    flag: String,
    remark: String,
    reward_desc: String,
    reward_type: String,
    amount: i64,
    btn_desc: Vec<String>,
    target_type: String,
    target: String,
    repeat: i64,
    sort: i64,
    status: String,
    created_at: i64,
    updated_at: i64,
}

const GIFT_COLUMNS: &str =
    "id, app_id, icon, name, flag, remark, reward_desc, reward_type, amount, \
     btn_desc, target_type, target, repeat_per_day, sort, status, created_at, updated_at";

fn gift_task_from(r: &sqlx::any::AnyRow) -> Result<GiftTask, sqlx::Error> {
    let buttons: String = r.try_get(9)?;
    Ok(GiftTask {
        id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        icon: r.try_get(2)?,
        name: r.try_get(3)?,
        flag: r.try_get(4)?,
        remark: r.try_get(5)?,
        reward_desc: r.try_get(6)?,
        reward_type: r.try_get(7)?,
        amount: r.try_get(8)?,
        // Written by this module as a JSON array; anything else reads as no buttons.
        btn_desc: serde_json::from_str(&buttons).unwrap_or_default(),
        target_type: r.try_get(10)?,
        target: r.try_get(11)?,
        repeat: r.try_get(12)?,
        sort: r.try_get(13)?,
        status: r.try_get(14)?,
        created_at: r.try_get(15)?,
        updated_at: r.try_get(16)?,
    })
}

/// The app's 000 tasks: on shelf only, or every one (deleted included) for operators.
async fn gift_tasks(
    state: &AppState,
    app_id: &str,
    on_shelf_only: bool,
) -> Result<Vec<GiftTask>, AppError> {
    let filter = if on_shelf_only {
        " AND status = '10'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {GIFT_COLUMNS} FROM gift_tasks WHERE app_id = $1{filter} ORDER BY sort, id"
    );
    let rows = sqlx::query(&sql)
        .bind(app_id)
        .fetch_all(&state.stores.db.read)
        .await?;
    Ok(rows.iter().map(gift_task_from).collect::<Result<_, _>>()?)
}

/// One 000 task of the app, whatever its status.
async fn gift_task(state: &AppState, app_id: &str, id: i64) -> Result<Option<GiftTask>, AppError> {
    let sql = format!("SELECT {GIFT_COLUMNS} FROM gift_tasks WHERE app_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(app_id)
        .bind(id)
        .fetch_optional(&state.stores.db.read)
        .await?;
    Ok(row.as_ref().map(gift_task_from).transpose()?)
}

/// An on-shelf 000 task, or 404.
async fn live_gift_task(state: &AppState, app_id: &str, id: i64) -> Result<GiftTask, AppError> {
    gift_task(state, app_id, id)
        .await?
        .filter(|t| t.status == STATUS_ON)
        .ok_or_else(|| AppError::NotFound(format!("task {id}")))
}

/// The ledger counter of a user's finishes of a 000 task on a business day.
fn finish_counter(app_id: &str, task_id: i64, user_id: i64, day: &str) -> String {
    format!("task:{app_id}:{task_id}:{user_id}:{day}")
}

/// How many times `user_id` finished each task on `day`, in the order of `tasks`.
async fn finishes_on(
    state: &AppState,
    tasks: &[GiftTask],
    user_id: i64,
    day: &str,
) -> Result<Vec<i64>, AppError> {
    let keys: Vec<String> = tasks
        .iter()
        .map(|t| finish_counter(&t.app_id, t.id, user_id, day))
        .collect();
    counter_values(state, &keys).await
}

// ---------------------------------------------------------------------------------------------
// 000 tasks: shapes

/// A 000 task as `v2/task/list.json` shows it.
#[derive(Serialize, ToSchema, Clone)]
pub struct GiftTaskItem {
    pub id: i64,
    pub icon: String,
    pub name: String,
    /// The task's own tag, chosen by the operator (what the front-end does with it).
    pub flag: String,
    pub remark: String,
    pub reward_desc: String,
    /// `积分`, `集分宝`, `现金红包`, `电子权益` or `实物`.
    pub reward_type: String,
    pub amount: i64,
    pub btn_desc: Vec<String>,
    pub target_type: String,
    pub target: String,
    /// Finishes rewarded per user per business day.
    pub repeat: i64,
    pub sort: i64,
    /// "10" on shelf, "20" off shelf, "30" deleted.
    pub status: String,
    pub create_time: String,
    pub modify_time: String,
    /// Finished `repeat` times today by the caller.
    pub is_done: bool,
}

fn gift_item(clock: &BizClock, t: GiftTask, done_today: i64) -> GiftTaskItem {
    GiftTaskItem {
        is_done: done_today >= t.repeat,
        id: t.id,
        icon: t.icon,
        name: t.name,
        flag: t.flag,
        remark: t.remark,
        reward_desc: t.reward_desc,
        reward_type: t.reward_type,
        amount: t.amount,
        btn_desc: t.btn_desc,
        target_type: t.target_type,
        target: t.target,
        repeat: t.repeat,
        sort: t.sort,
        status: t.status,
        create_time: clock.format_datetime(t.created_at),
        modify_time: clock.format_datetime(t.updated_at),
    }
}

/// An on-shelf 000 task as list items show it (`is_done` for `user_id`, false without one):
/// what a task-linked banner embeds as its `task_info`. `None` when the task is not on shelf.
pub async fn gift_task_item(
    state: &AppState,
    app_id: &str,
    task_id: i64,
    user_id: Option<i64>,
) -> Result<Option<GiftTaskItem>, AppError> {
    let Some(task) = gift_task(state, app_id, task_id)
        .await?
        .filter(|t| t.status == STATUS_ON)
    else {
        return Ok(None);
    };
    let done = match user_id {
        Some(user) => {
            let day = Moment::now(&state.clock).day;
            finishes_on(state, std::slice::from_ref(&task), user, &day)
                .await?
                .first()
                .copied()
                .unwrap_or(0)
        }
        None => 0,
    };
    Ok(Some(gift_item(&state.clock, task, done)))
}

/// `v2/task/list.json`.
#[derive(Deserialize, ToSchema)]
pub struct GiftTaskListReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// `index` (default) every task, `finished` those done today, `unfinished` the others.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub flag: Option<String>,
}

/// `v2/task/click.json` and `v2/task/finish.json`.
#[derive(Deserialize, ToSchema)]
pub struct GiftTaskIdReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    /// The task's `id`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
}

/// `POST /admin/tasks`: create a 000 task, or change one (`id` given; absent fields keep their
/// stored value).
#[derive(Deserialize, ToSchema)]
pub struct GiftTaskSaveReq {
    /// Default `default`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// Absent: create.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub icon: Option<String>,
    /// Required to create; 1-64 characters.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub flag: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub remark: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub reward_desc: Option<String>,
    /// Required to create: `积分`, `集分宝`, `现金红包`, `电子权益` or `实物`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub reward_type: Option<String>,
    /// Required to create: points (`积分`, 0 allowed) or units of the outside reward (1 or more).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub amount: Option<i64>,
    /// Up to 8 button texts.
    #[serde(default)]
    pub btn_desc: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub target: Option<String>,
    /// Finishes rewarded per user per day, 1-100 (default 1).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub repeat: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    /// "10" (default), "20" or "30".
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct TaskAppQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// A 000 task as operators see it.
#[derive(Serialize, ToSchema)]
pub struct GiftTaskAdminView {
    pub id: i64,
    pub app_id: String,
    pub icon: String,
    pub name: String,
    pub flag: String,
    pub remark: String,
    pub reward_desc: String,
    pub reward_type: String,
    pub amount: i64,
    pub btn_desc: Vec<String>,
    pub target_type: String,
    pub target: String,
    pub repeat: i64,
    pub sort: i64,
    pub status: String,
    pub create_time: String,
    pub modify_time: String,
    /// Button clicks by all users, all days.
    pub clicks: i64,
}

fn gift_admin_view(clock: &BizClock, t: GiftTask, clicks: i64) -> GiftTaskAdminView {
    GiftTaskAdminView {
        id: t.id,
        app_id: t.app_id,
        icon: t.icon,
        name: t.name,
        flag: t.flag,
        remark: t.remark,
        reward_desc: t.reward_desc,
        reward_type: t.reward_type,
        amount: t.amount,
        btn_desc: t.btn_desc,
        target_type: t.target_type,
        target: t.target,
        repeat: t.repeat,
        sort: t.sort,
        status: t.status,
        create_time: clock.format_datetime(t.created_at),
        modify_time: clock.format_datetime(t.updated_at),
        clicks,
    }
}

/// Total clicks per task of the app.
async fn clicks_of(state: &AppState, app_id: &str) -> Result<HashMap<i64, i64>, AppError> {
    let rows = sqlx::query(
        "SELECT c.task_id, CAST(SUM(c.clicks) AS BIGINT) FROM gift_task_clicks c \
         JOIN gift_tasks t ON t.id = c.task_id WHERE t.app_id = $1 GROUP BY c.task_id",
    )
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        out.insert(r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?);
    }
    Ok(out)
}

/// Checks a save request against the stored task (`None` to create): the task to store.
fn merge_gift_task(
    p: GiftTaskSaveReq,
    app_id: &str,
    stored: Option<GiftTask>,
    now: i64,
) -> Result<GiftTask, AppError> {
    let creating = stored.is_none();
    let mut t = stored.unwrap_or(GiftTask {
        id: 0,
        app_id: app_id.to_string(),
        icon: String::new(),
        name: String::new(),
        flag: String::new(),
        remark: String::new(),
        reward_desc: String::new(),
        reward_type: String::new(),
        amount: 0,
        btn_desc: Vec::new(),
        target_type: String::new(),
        target: String::new(),
        repeat: 1,
        sort: 0,
        status: STATUS_ON.into(),
        created_at: now,
        updated_at: now,
    });
    if creating || p.name.is_some() {
        t.name = required_text("name", p.name, TASK_NAME_CHARS_MAX)?;
    }
    if let Some(v) = p.icon {
        t.icon = text("icon", Some(v), TASK_URL_CHARS_MAX)?;
    }
    if let Some(v) = p.flag {
        t.flag = text("flag", Some(v), TASK_TEXT_CHARS_MAX)?;
    }
    if let Some(v) = p.remark {
        t.remark = text("remark", Some(v), TASK_TEXT_CHARS_MAX)?;
    }
    if let Some(v) = p.reward_desc {
        t.reward_desc = text("reward_desc", Some(v), TASK_TEXT_CHARS_MAX)?;
    }
    if let Some(v) = p.target_type {
        t.target_type = text("target_type", Some(v), TASK_TEXT_CHARS_MAX)?;
    }
    if let Some(v) = p.target {
        t.target = text("target", Some(v), TASK_URL_CHARS_MAX)?;
    }
    if creating || p.reward_type.is_some() {
        let reward_type = p
            .reward_type
            .map(|r| r.trim().to_string())
            .ok_or_else(|| AppError::missing("reward_type"))?;
        if !REWARD_TYPES.contains(&reward_type.as_str()) {
            return Err(AppError::invalid(format!(
                "reward_type must be one of {}",
                REWARD_TYPES.join(", ")
            )));
        }
        t.reward_type = reward_type;
    }
    if creating && p.amount.is_none() {
        return Err(AppError::missing("amount"));
    }
    if let Some(amount) = p.amount {
        t.amount = amount;
    }
    // Points may be 0 (a finish that only counts, e.g. for the blind boxes); an outside reward
    // of nothing would be an order for nothing.
    let least = if t.reward_type == REWARD_POINTS { 0 } else { 1 };
    ranged("amount", t.amount, least, CHANGE_AMOUNT_ABS_MAX)?;
    if let Some(buttons) = p.btn_desc {
        if buttons.len() > TASK_BUTTONS_MAX {
            return Err(AppError::invalid(format!(
                "btn_desc holds at most {TASK_BUTTONS_MAX} texts"
            )));
        }
        t.btn_desc = buttons
            .into_iter()
            .enumerate()
            .map(|(i, b)| match b {
                Value::String(s) => text(&format!("btn_desc[{i}]"), Some(s), TASK_BUTTON_CHARS_MAX),
                _ => Err(AppError::invalid(format!("btn_desc[{i}] must be a string"))),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(repeat) = p.repeat {
        t.repeat = ranged("repeat", repeat, 1, TASK_REPEAT_MAX)?;
    }
    if let Some(sort) = p.sort {
        t.sort = ranged("sort", sort, -TASK_SORT_ABS_MAX, TASK_SORT_ABS_MAX)?;
    }
    if let Some(status) = config_status(p.status)? {
        t.status = status;
    }
    t.updated_at = now;
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// 000 tasks: handlers

async fn gift_list(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskListReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let want_done = match p.flag.as_deref().map(str::trim) {
        None | Some("index") => None,
        Some("finished") => Some(true),
        Some("unfinished") => Some(false),
        Some(other) => {
            return Err(AppError::invalid(format!(
                "flag must be \"index\", \"finished\" or \"unfinished\", got {other:?}"
            ))
            .into())
        }
    };
    let tasks = gift_tasks(&state, &caller.session.app_id, true).await?;
    let day = Moment::now(&state.clock).day;
    let done = finishes_on(&state, &tasks, caller.session.user_id, &day).await?;
    let items: Vec<GiftTaskItem> = tasks
        .into_iter()
        .zip(done)
        .map(|(t, d)| gift_item(&state.clock, t, d))
        .filter(|item| want_done.is_none_or(|want| item.is_done == want))
        .collect();
    Ok(ok(to_json(items)))
}

async fn gift_click(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskIdReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    let task = live_gift_task(&state, &caller.session.app_id, id).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO gift_task_clicks (task_id, user_id, day, clicks, updated_at) \
         VALUES ($1, $2, $3, 1, $4) ON CONFLICT (task_id, user_id, day) DO UPDATE \
         SET clicks = gift_task_clicks.clicks + 1, updated_at = excluded.updated_at",
    )
    .bind(task.id)
    .bind(caller.session.user_id)
    .bind(Moment::at(&state.clock, now).day)
    .bind(now)
    .execute(&state.stores.db.write)
    .await?;
    Ok(ok(json!([])))
}

async fn gift_finish(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<GiftTaskIdReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let id = p.id.ok_or_else(|| AppError::missing("id"))?;
    let app_id = caller.session.app_id.clone();
    let user_id = caller.session.user_id;
    let task = live_gift_task(&state, &app_id, id).await?;
    let is_points = task.reward_type == REWARD_POINTS;
    let expires_at = if is_points && task.amount > 0 {
        points::default_expiry(&state, &app_id).await?
    } else {
        None
    };
    let _turn = state
        .activities
        .task_finishes
        .lock(format!("{app_id}\u{0}{id}\u{0}{user_id}"))
        .await;
    let day = Moment::now(&state.clock).day;
    let counter = finish_counter(&app_id, id, user_id, &day);
    let done = counter_values(&state, std::slice::from_ref(&counter))
        .await?
        .first()
        .copied()
        .unwrap_or(0);
    if done >= task.repeat {
        return Err(repeat_used_up().into());
    }
    let n = done + 1;
    let change = Change {
        app_id: app_id.clone(),
        user_id,
        amount: if is_points { task.amount } else { 0 },
        kind: TASK_KIND.into(),
        idem_key: format!("task:{app_id}:{id}:{day}:{user_id}:{n}"),
        reference: id.to_string(),
        description: format!("完成任务: {}", task.name),
        expires_at,
        limits: vec![Limit {
            key: counter,
            max: task.repeat,
        }],
        legs: Vec::new(),
        order: (!is_points).then(|| OrderSpec {
            reward_type: task.reward_type.clone(),
            amount: task.amount,
            detail: json!({"task_id": id, "name": task.name, "day": day, "n": n}).to_string(),
        }),
    };
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => {}
        // Another process finished the same task for this user at the same moment.
        Err(LedgerError::LimitReached) => return Err(repeat_used_up().into()),
        Err(e) => return Err(AppError::from(e).into()),
    }
    if !is_points {
        state.fulfilment_wake.notify_one();
    }
    Ok(ok(json!([])))
}

async fn gift_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<GiftTaskSaveReq, Gift>,
) -> Reply {
    let mut p = p.into_inner();
    let app_id = app_of(p.app_id.take());
    crate::auth::app(&state, &app_id).await?;
    let now = now_ms();
    let stored = match p.id {
        Some(id) => Some(
            gift_task(&state, &app_id, id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("task {id}")))?,
        ),
        None => None,
    };
    let creating = stored.is_none();
    let task = merge_gift_task(p, &app_id, stored, now)?;
    let buttons = serde_json::to_string(&task.btn_desc).unwrap_or_else(|_| "[]".into());
    let id = if creating {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gift_tasks WHERE app_id = $1 AND status <> '30'",
        )
        .bind(&app_id)
        .fetch_one(&state.stores.db.read)
        .await?;
        if live >= TASKS_PER_APP_MAX {
            return Err(AppError::invalid(format!(
                "an app keeps at most {TASKS_PER_APP_MAX} tasks; delete one first (status \"30\")"
            ))
            .into());
        }
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO gift_tasks (app_id, icon, name, flag, remark, reward_desc, reward_type, \
             amount, btn_desc, target_type, target, repeat_per_day, sort, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $15) RETURNING id",
        )
        .bind(&app_id)
        .bind(&task.icon)
        .bind(&task.name)
        .bind(&task.flag)
        .bind(&task.remark)
        .bind(&task.reward_desc)
        .bind(&task.reward_type)
        .bind(task.amount)
        .bind(&buttons)
        .bind(&task.target_type)
        .bind(&task.target)
        .bind(task.repeat)
        .bind(task.sort)
        .bind(&task.status)
        .bind(now)
        .fetch_one(&state.stores.db.write)
        .await?
    } else {
        sqlx::query(
            "UPDATE gift_tasks SET icon = $3, name = $4, flag = $5, remark = $6, reward_desc = $7, \
             reward_type = $8, amount = $9, btn_desc = $10, target_type = $11, target = $12, \
             repeat_per_day = $13, sort = $14, status = $15, updated_at = $16 \
             WHERE app_id = $1 AND id = $2",
        )
        .bind(&app_id)
        .bind(task.id)
        .bind(&task.icon)
        .bind(&task.name)
        .bind(&task.flag)
        .bind(&task.remark)
        .bind(&task.reward_desc)
        .bind(&task.reward_type)
        .bind(task.amount)
        .bind(&buttons)
        .bind(&task.target_type)
        .bind(&task.target)
        .bind(task.repeat)
        .bind(task.sort)
        .bind(&task.status)
        .bind(now)
        .execute(&state.stores.db.write)
        .await?;
        task.id
    };
    let saved = gift_task(&state, &app_id, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {id}")))?;
    let clicks = clicks_of(&state, &app_id)
        .await?
        .get(&id)
        .copied()
        .unwrap_or(0);
    Ok(ok(to_json(gift_admin_view(&state.clock, saved, clicks))))
}

async fn gift_admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<TaskAppQuery, Gift>,
) -> Reply {
    let app_id = app_of(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    let clicks = clicks_of(&state, &app_id).await?;
    let items: Vec<GiftTaskAdminView> = gift_tasks(&state, &app_id, false)
        .await?
        .into_iter()
        .map(|t| {
            let c = clicks.get(&t.id).copied().unwrap_or(0);
            gift_admin_view(&state.clock, t, c)
        })
        .collect();
    Ok(ok(to_json(items)))
}

// ---------------------------------------------------------------------------------------------
// 001 tasks: storage

/// A stored 001 task.
#[derive(Debug, Clone)]
struct CenterTask {
    app_id: String,
    task_id: String,
    cycle: Option<Cycle>,
    title: String,
    description: String,
    btn_title: String,
    btn_type: String,
    path: String,
    img_url: String,
    icon: String,
    face_value: i64,
    total: i64,
    sort: i64,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl CenterTask {
    fn kind(&self) -> &'static str {
        if self.cycle.is_some() {
            "cyclic"
        } else {
            PERMANENT_CYCLE
        }
    }

    /// The ledger key of the user's claim in the cycle `cycle`.
    fn claim_key(&self, cycle: &str, user_id: i64) -> String {
        format!("ctask:{}:{}:{cycle}:{user_id}", self.app_id, self.task_id)
    }
}

const CENTER_COLUMNS: &str = "app_id, task_id, kind, cycle_type, cycle_days, title, description, \
     btn_title, btn_type, path, img_url, icon, face_value, total, sort, status, created_at, \
     updated_at";

fn center_task_from(r: &sqlx::any::AnyRow) -> Result<CenterTask, sqlx::Error> {
    let kind: String = r.try_get(2)?;
    let cycle_type: String = r.try_get(3)?;
    let cycle = match (kind.as_str(), CycleUnit::parse(&cycle_type)) {
        ("cyclic", Some(unit)) => Some(Cycle {
            unit,
            length: r.try_get(4)?,
        }),
        _ => None,
    };
    Ok(CenterTask {
        app_id: r.try_get(0)?,
        task_id: r.try_get(1)?,
        cycle,
        title: r.try_get(5)?,
        description: r.try_get(6)?,
        btn_title: r.try_get(7)?,
        btn_type: r.try_get(8)?,
        path: r.try_get(9)?,
        img_url: r.try_get(10)?,
        icon: r.try_get(11)?,
        face_value: r.try_get(12)?,
        total: r.try_get(13)?,
        sort: r.try_get(14)?,
        status: r.try_get(15)?,
        created_at: r.try_get(16)?,
        updated_at: r.try_get(17)?,
    })
}

async fn center_tasks(
    state: &AppState,
    app_id: &str,
    on_shelf_only: bool,
) -> Result<Vec<CenterTask>, AppError> {
    let filter = if on_shelf_only {
        " AND status = '10'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {CENTER_COLUMNS} FROM center_tasks WHERE app_id = $1{filter} \
         ORDER BY sort, created_at, task_id"
    );
    let rows = sqlx::query(&sql)
        .bind(app_id)
        .fetch_all(&state.stores.db.read)
        .await?;
    Ok(rows
        .iter()
        .map(center_task_from)
        .collect::<Result<_, _>>()?)
}

async fn center_task(
    state: &AppState,
    app_id: &str,
    task_id: &str,
) -> Result<Option<CenterTask>, AppError> {
    let sql =
        format!("SELECT {CENTER_COLUMNS} FROM center_tasks WHERE app_id = $1 AND task_id = $2");
    let row = sqlx::query(&sql)
        .bind(app_id)
        .bind(task_id)
        .fetch_optional(&state.stores.db.read)
        .await?;
    Ok(row.as_ref().map(center_task_from).transpose()?)
}

/// A user's progress on one task in one cycle: (completeNum, status).
async fn progress_of(
    state: &AppState,
    app_id: &str,
    task_id: &str,
    user_id: i64,
    cycle: &str,
) -> Result<Option<(i64, i64)>, AppError> {
    let row = sqlx::query(
        "SELECT complete_num, status FROM center_task_progress \
         WHERE app_id = $1 AND task_id = $2 AND user_id = $3 AND cycle_start = $4",
    )
    .bind(app_id)
    .bind(task_id)
    .bind(user_id)
    .bind(cycle)
    .fetch_optional(&state.stores.db.read)
    .await?;
    Ok(row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?)
}

/// The idempotency keys among `keys` that the ledger holds for the app: claims already paid.
async fn claimed_keys(
    state: &AppState,
    app_id: &str,
    keys: &[String],
) -> Result<HashSet<String>, AppError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders: Vec<String> = (2..2 + keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT idem_key FROM ledger_entries WHERE app_id = $1 AND idem_key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql).bind(app_id);
    for k in keys {
        query = query.bind(k);
    }
    Ok(query
        .fetch_all(&state.stores.db.read)
        .await?
        .into_iter()
        .collect())
}

// ---------------------------------------------------------------------------------------------
// 001 tasks: shapes

/// A cyclic task's period, as saved.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CenterCycle {
    /// `day`, `week` or `month`.
    #[serde(rename = "type", default, deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    /// Units per cycle, 1-366 (default 1).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub day: Option<i64>,
}

fn cycle_view(c: Option<Cycle>) -> Option<CenterCycle> {
    c.map(|c| CenterCycle {
        kind: Some(c.unit.as_str().into()),
        day: Some(c.length),
    })
}

/// What the 001 client reads under `taskInfo`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskInfo {
    /// `qrCode`, `route` or `customize`.
    pub btn_type: String,
    pub path: String,
    pub img_url: String,
}

/// A 001 task with the caller's progress in the current cycle.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskItem {
    pub task_id: String,
    /// `permanent` or `cyclic`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub desc: String,
    pub btn_title: String,
    pub btn_type: String,
    pub path: String,
    pub img_url: String,
    pub icon: String,
    /// Points the reward pays.
    pub face_value: i64,
    /// Target count.
    pub total: i64,
    /// The caller's count in the current cycle.
    pub current_total: i64,
    /// The caller's state in the current cycle: 1 reward to claim, 2 unfinished, 3 done.
    pub status: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CenterCycle>,
    /// First business day of the current cycle; empty for a permanent task.
    pub cycle_start: String,
    /// Last business day of the current cycle; empty for a permanent task.
    pub cycle_end: String,
    pub task_info: CenterTaskInfo,
}

/// `getTasksList` / `getTaskList`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskList {
    pub permanent_task: Vec<CenterTaskItem>,
    pub cyclic_task: Vec<CenterTaskItem>,
}

/// `receiveTaskAward`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterClaimReq {
    #[serde(default, alias = "id", deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
}

/// What a claim answers.
#[derive(Serialize, ToSchema)]
pub struct CenterClaimResult {
    /// The caller's balance after the reward.
    pub points: i64,
}

/// `setUserTaskStatus`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskStatusReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
    /// The user's total count so far, 0..=`total`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub complete_num: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub open_id: Option<String>,
    /// 1 to claim, 2 unfinished, 3 done; 1 and 3 only when `completeNum` equals `total`.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    /// Default `default`.
    #[serde(default, rename = "app_id", deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `getTaskById`.
#[derive(Deserialize, ToSchema)]
pub struct CenterTaskByIdReq {
    #[serde(default, alias = "taskId", deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// Default `default`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// `saveTask` and `POST /admin/center-tasks`: create or replace the task `taskId`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskSaveReq {
    /// Default `default`.
    #[serde(default, rename = "app_id", deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    /// 1-64 of `A-Z a-z 0-9 _ -`; absent: a new id is chosen.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub task_id: Option<String>,
    /// `permanent` (growth) or `cyclic`.
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    /// Required for `cyclic`.
    #[serde(default)]
    pub cycle: Option<CenterCycle>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub desc: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub btn_title: Option<String>,
    /// `qrCode`, `route` or `customize` (default).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub btn_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub img_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub icon: Option<String>,
    /// Points of the reward, 1-1000000000.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub face_value: Option<i64>,
    /// Target count, 1-1000000000 (default 1).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub total: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub sort: Option<i64>,
    /// "10" (default), "20" or "30".
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

/// A stored 001 task, as operators see it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskView {
    #[serde(rename = "app_id")]
    pub app_id: String,
    pub task_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CenterCycle>,
    pub title: String,
    pub desc: String,
    pub btn_title: String,
    pub btn_type: String,
    pub path: String,
    pub img_url: String,
    pub icon: String,
    pub face_value: i64,
    pub total: i64,
    pub sort: i64,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

fn center_view(clock: &BizClock, t: CenterTask) -> CenterTaskView {
    CenterTaskView {
        kind: t.kind().into(),
        cycle: cycle_view(t.cycle),
        app_id: t.app_id,
        task_id: t.task_id,
        title: t.title,
        desc: t.description,
        btn_title: t.btn_title,
        btn_type: t.btn_type,
        path: t.path,
        img_url: t.img_url,
        icon: t.icon,
        face_value: t.face_value,
        total: t.total,
        sort: t.sort,
        status: t.status,
        created_at: clock.format_datetime(t.created_at),
        updated_at: clock.format_datetime(t.updated_at),
    }
}

fn valid_task_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= TASK_ID_CHARS_MAX
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a save request: the task to store (its app, id and times are set by the caller).
fn parse_center_task(p: CenterTaskSaveReq, app_id: &str, now: i64) -> Result<CenterTask, AppError> {
    let task_id = match p.task_id.map(|t| t.trim().to_string()) {
        Some(t) if valid_task_id(&t) => t,
        Some(_) => {
            return Err(AppError::invalid(format!(
                "taskId must be 1-{TASK_ID_CHARS_MAX} of A-Z a-z 0-9 _ -"
            )))
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let cycle = match p.kind.as_deref().map(str::trim) {
        Some("permanent") => None,
        Some("cyclic") => {
            let c = p.cycle.ok_or_else(|| AppError::missing("cycle"))?;
            let unit = c
                .kind
                .as_deref()
                .map(str::trim)
                .ok_or_else(|| AppError::missing("cycle.type"))?;
            let unit = CycleUnit::parse(unit).ok_or_else(|| {
                AppError::invalid("cycle.type must be \"day\", \"week\" or \"month\"")
            })?;
            let length = ranged("cycle.day", c.day.unwrap_or(1), 1, CYCLE_UNITS_MAX)?;
            Some(Cycle { unit, length })
        }
        Some(_) => {
            return Err(AppError::invalid(
                "type must be \"permanent\" or \"cyclic\"",
            ))
        }
        None => return Err(AppError::missing("type")),
    };
    let btn_type = p
        .btn_type
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|| "customize".into());
    if !BTN_TYPES.contains(&btn_type.as_str()) {
        return Err(AppError::invalid(
            "btnType must be \"qrCode\", \"route\" or \"customize\"",
        ));
    }
    let face_value = p.face_value.ok_or_else(|| AppError::missing("faceValue"))?;
    Ok(CenterTask {
        app_id: app_id.to_string(),
        task_id,
        cycle,
        title: required_text("title", p.title, TASK_NAME_CHARS_MAX)?,
        description: text("desc", p.desc, TASK_TEXT_CHARS_MAX)?,
        btn_title: text("btnTitle", p.btn_title, TASK_TEXT_CHARS_MAX)?,
        btn_type,
        path: text("path", p.path, TASK_URL_CHARS_MAX)?,
        img_url: text("imgUrl", p.img_url, TASK_URL_CHARS_MAX)?,
        icon: text("icon", p.icon, TASK_URL_CHARS_MAX)?,
        face_value: ranged("faceValue", face_value, 1, CHANGE_AMOUNT_ABS_MAX)?,
        total: ranged("total", p.total.unwrap_or(1), 1, TASK_TOTAL_MAX)?,
        sort: ranged(
            "sort",
            p.sort.unwrap_or(0),
            -TASK_SORT_ABS_MAX,
            TASK_SORT_ABS_MAX,
        )?,
        status: config_status(p.status)?.unwrap_or_else(|| STATUS_ON.into()),
        created_at: now,
        updated_at: now,
    })
}

/// Validates and stores a 001 task (insert or replace by `taskId`); answers the stored task.
async fn save_center_task(
    state: &AppState,
    p: CenterTaskSaveReq,
) -> Result<CenterTaskView, AppError> {
    let mut p = p;
    let app_id = app_of(p.app_id.take());
    let task = parse_center_task(p, &app_id, now_ms())?;
    crate::auth::app(state, &app_id).await?;
    let exists = center_task(state, &app_id, &task.task_id).await?.is_some();
    if !exists {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM center_tasks WHERE app_id = $1 AND status <> '30'",
        )
        .bind(&app_id)
        .fetch_one(&state.stores.db.read)
        .await?;
        if live >= TASKS_PER_APP_MAX {
            return Err(AppError::invalid(format!(
                "an app keeps at most {TASKS_PER_APP_MAX} tasks; delete one first (status \"30\")"
            )));
        }
    }
    let (cycle_type, cycle_days) = task
        .cycle
        .map(|c| (c.unit.as_str(), c.length))
        .unwrap_or(("", 0));
    sqlx::query(
        "INSERT INTO center_tasks (app_id, task_id, kind, cycle_type, cycle_days, title, \
         description, btn_title, btn_type, path, img_url, icon, face_value, total, sort, status, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $17) ON CONFLICT (app_id, task_id) DO UPDATE SET \
         kind = excluded.kind, cycle_type = excluded.cycle_type, cycle_days = excluded.cycle_days, \
         title = excluded.title, description = excluded.description, \
         btn_title = excluded.btn_title, btn_type = excluded.btn_type, path = excluded.path, \
         img_url = excluded.img_url, icon = excluded.icon, face_value = excluded.face_value, \
         total = excluded.total, sort = excluded.sort, status = excluded.status, \
         updated_at = excluded.updated_at",
    )
    .bind(&app_id)
    .bind(&task.task_id)
    .bind(task.kind())
    .bind(cycle_type)
    .bind(cycle_days)
    .bind(&task.title)
    .bind(&task.description)
    .bind(&task.btn_title)
    .bind(&task.btn_type)
    .bind(&task.path)
    .bind(&task.img_url)
    .bind(&task.icon)
    .bind(task.face_value)
    .bind(task.total)
    .bind(task.sort)
    .bind(&task.status)
    .bind(task.updated_at)
    .execute(&state.stores.db.write)
    .await?;
    let saved = center_task(state, &app_id, &task.task_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {:?}", task.task_id)))?;
    Ok(center_view(&state.clock, saved))
}

// ---------------------------------------------------------------------------------------------
// 001 tasks: handlers

type CenterReply = Result<actix_web::HttpResponse, Failure<Center>>;

async fn center_list(state: web::Data<AppState>, caller: Caller<Center>) -> CenterReply {
    let app_id = caller.session.app_id.clone();
    let user_id = caller.session.user_id;
    let now = now_ms();
    let tasks = center_tasks(&state, &app_id, true).await?;
    let cycles: Vec<String> = tasks
        .iter()
        .map(|t| cycle_key(&state.clock, t.cycle, now))
        .collect();
    let keys: Vec<String> = tasks
        .iter()
        .zip(&cycles)
        .map(|(t, c)| t.claim_key(c, user_id))
        .collect();
    let claimed = claimed_keys(&state, &app_id, &keys).await?;
    // Only the current cycles' rows: past cycles stay stored but are no longer read.
    let current: Vec<&String> = cycles.iter().collect::<HashSet<_>>().into_iter().collect();
    let rows = if current.is_empty() {
        Vec::new()
    } else {
        let placeholders: Vec<String> = (3..3 + current.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT task_id, cycle_start, complete_num, status FROM center_task_progress \
             WHERE app_id = $1 AND user_id = $2 AND cycle_start IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&app_id).bind(user_id);
        for c in &current {
            query = query.bind(*c);
        }
        query.fetch_all(&state.stores.db.read).await?
    };
    let mut progress: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for r in &rows {
        progress.insert(
            (r.try_get(0)?, r.try_get(1)?),
            (r.try_get(2)?, r.try_get(3)?),
        );
    }
    let mut list = CenterTaskList {
        permanent_task: Vec::new(),
        cyclic_task: Vec::new(),
    };
    for ((t, cycle), key) in tasks.into_iter().zip(cycles).zip(keys) {
        let (current_total, mut status) = progress
            .get(&(t.task_id.clone(), cycle.clone()))
            .copied()
            .unwrap_or((0, UNFINISHED));
        // The ledger is the truth about the reward: a paid cycle is done whatever was reported.
        if claimed.contains(&key) {
            status = DONE;
        }
        let (cycle_start, cycle_end) = match t.cycle {
            Some(c) => {
                let start = c.start_of(state.clock.date(now));
                let end = c.next_start(start).pred_opt().unwrap_or(start);
                (cycle, end.format("%Y-%m-%d").to_string())
            }
            None => (String::new(), String::new()),
        };
        let item = CenterTaskItem {
            kind: t.kind().into(),
            cycle: cycle_view(t.cycle),
            task_info: CenterTaskInfo {
                btn_type: t.btn_type.clone(),
                path: t.path.clone(),
                img_url: t.img_url.clone(),
            },
            task_id: t.task_id,
            title: t.title,
            desc: t.description,
            btn_title: t.btn_title,
            btn_type: t.btn_type,
            path: t.path,
            img_url: t.img_url,
            icon: t.icon,
            face_value: t.face_value,
            total: t.total,
            current_total,
            status,
            cycle_start,
            cycle_end,
        };
        if t.cycle.is_some() {
            list.cyclic_task.push(item);
        } else {
            list.permanent_task.push(item);
        }
    }
    Ok(center::ok(to_json(list)))
}

async fn center_claim(
    state: web::Data<AppState>,
    caller: Caller<Center>,
    p: Params<CenterClaimReq, Center>,
) -> CenterReply {
    let task_id = p
        .into_inner()
        .task_id
        .map(|t| t.trim().to_string())
        .ok_or_else(|| AppError::missing("taskId"))?;
    let app_id = caller.session.app_id.clone();
    let user_id = caller.session.user_id;
    let task = center_task(&state, &app_id, &task_id)
        .await?
        .filter(|t| t.status == STATUS_ON)
        .ok_or_else(|| AppError::NotFound(format!("task {task_id:?}")))?;
    let cycle = cycle_key(&state.clock, task.cycle, now_ms());
    let key = task.claim_key(&cycle, user_id);
    let mark_done = || async {
        sqlx::query(
            "UPDATE center_task_progress SET status = 3, updated_at = $5 \
             WHERE app_id = $1 AND task_id = $2 AND user_id = $3 AND cycle_start = $4 \
             AND status = 1",
        )
        .bind(&app_id)
        .bind(&task_id)
        .bind(user_id)
        .bind(&cycle)
        .bind(now_ms())
        .execute(&state.stores.db.write)
        .await
    };
    // Already paid this cycle. The progress row is left alone: only a claim that submitted the
    // payment moves it to "done" (below), so exactly one of concurrent claims answers success;
    // a paid cycle whose row still says 1 (cut off before the update) reads as done anyway,
    // because lists take the ledger's word.
    if !claimed_keys(&state, &app_id, std::slice::from_ref(&key))
        .await?
        .is_empty()
    {
        return Err(AppError::Refused(Refusal::AlreadyDone).into());
    }
    match progress_of(&state, &app_id, &task_id, user_id, &cycle).await? {
        Some((_, TO_CLAIM)) => {}
        Some((_, DONE)) => return Err(AppError::Refused(Refusal::AlreadyDone).into()),
        _ => {
            return Err(AppError::Refused(Refusal::Other {
                en: "the task is not finished yet".into(),
                zh: "任务尚未完成".into(),
            })
            .into())
        }
    }
    let expires_at = points::default_expiry(&state, &app_id).await?;
    let change = Change {
        app_id: app_id.clone(),
        user_id,
        amount: task.face_value,
        kind: TASK_KIND.into(),
        idem_key: key,
        reference: task_id.clone(),
        description: format!("任务奖励: {}", task.title),
        expires_at,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
    };
    let outcome = state.ledger.send(Submit(change)).await??;
    // Concurrent claims of one cycle share the ledger key, so one reward is paid and each of
    // them sees its outcome; the one that moves the progress to "done" answers success and the
    // others answer "already claimed", as they would have a moment later.
    if mark_done().await?.rows_affected() == 0 {
        return Err(AppError::Refused(Refusal::AlreadyDone).into());
    }
    Ok(center::ok(to_json(CenterClaimResult {
        points: outcome.balance_after,
    })))
}

async fn center_set_status(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskStatusReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let task_id = p
        .task_id
        .map(|t| t.trim().to_string())
        .ok_or_else(|| AppError::missing("taskId"))?;
    let open_id = p.open_id.ok_or_else(|| AppError::missing("openId"))?;
    let complete_num = p
        .complete_num
        .ok_or_else(|| AppError::missing("completeNum"))?;
    let status = p.status.ok_or_else(|| AppError::missing("status"))?;
    if ![TO_CLAIM, UNFINISHED, DONE].contains(&status) {
        return Err(
            AppError::invalid("status must be 1 (to claim), 2 (unfinished) or 3 (done)").into(),
        );
    }
    let app_id = app_of(p.app_id);
    let task = center_task(&state, &app_id, &task_id)
        .await?
        .filter(|t| t.status != STATUS_DELETED)
        .ok_or_else(|| AppError::NotFound(format!("task {task_id:?}")))?;
    if !(0..=task.total).contains(&complete_num) {
        return Err(AppError::invalid(format!(
            "completeNum must be between 0 and the task's total {}",
            task.total
        ))
        .into());
    }
    if status != UNFINISHED && complete_num != task.total {
        return Err(AppError::invalid(format!(
            "status 1 or 3 needs completeNum equal to the task's total {}",
            task.total
        ))
        .into());
    }
    let user = points::user(&state, &app_id, &open_id).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO center_task_progress (app_id, task_id, user_id, cycle_start, complete_num, \
         status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (app_id, task_id, user_id, cycle_start) DO UPDATE SET \
         complete_num = excluded.complete_num, status = excluded.status, \
         updated_at = excluded.updated_at",
    )
    .bind(&app_id)
    .bind(&task_id)
    .bind(user.id)
    .bind(cycle_key(&state.clock, task.cycle, now))
    .bind(complete_num)
    .bind(status)
    .bind(now)
    .execute(&state.stores.db.write)
    .await?;
    Ok(center::ok(json!(true)))
}

async fn center_save(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskSaveReq, Center>,
) -> CenterReply {
    let view = save_center_task(&state, p.into_inner()).await?;
    Ok(center::ok(to_json(view)))
}

async fn center_by_id(
    state: web::Data<AppState>,
    _a: AdminKey<Center>,
    p: Params<CenterTaskByIdReq, Center>,
) -> CenterReply {
    let p = p.into_inner();
    let id =
        p.id.map(|t| t.trim().to_string())
            .ok_or_else(|| AppError::missing("id"))?;
    let app_id = app_of(p.app_id);
    let task = center_task(&state, &app_id, &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {id:?}")))?;
    Ok(center::ok(to_json(center_view(&state.clock, task))))
}

async fn center_admin_save(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<CenterTaskSaveReq, Gift>,
) -> Reply {
    let view = save_center_task(&state, p.into_inner()).await?;
    Ok(ok(to_json(view)))
}

async fn center_admin_list(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<TaskAppQuery, Gift>,
) -> Reply {
    let app_id = app_of(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    let items: Vec<CenterTaskView> = center_tasks(&state, &app_id, false)
        .await?
        .into_iter()
        .map(|t| center_view(&state.clock, t))
        .collect();
    Ok(ok(to_json(items)))
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the task routes: 000 `v2/task/*`, 001 task ops and the admin routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 tasks";
    r.add::<GiftTaskListReq, Vec<GiftTaskItem>, _, _>(
        RouteDoc {
            path: "/v2/task/list.json",
            methods: GET_POST,
            tag,
            summary: "任务列表: the app's tasks with the caller's state",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `flag`: `index` (default) every on-shelf task, `finished` those the caller finished `repeat` times today (business day), `unfinished` the others; any other value answers 400. Ordered by `sort` ascending, then `id`. `is_done`: finished `repeat` times today.",
        },
        gift_list,
    );
    r.add::<GiftTaskIdReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/task/click.json",
            methods: GET_POST,
            tag,
            summary: "任务点击: count a click on a task's button",
            description: "Counted per task, user and business day for statistics (`clicks` in `GET /admin/tasks`); grants nothing. 404 unknown or off-shelf task, 400 missing `id`, 401/403 token or user mismatch.",
        },
        gift_click,
    );
    r.add::<GiftTaskIdReq, Vec<crate::http::Empty>, _, _>(
        RouteDoc {
            path: "/v2/task/finish.json",
            methods: GET_POST,
            tag,
            summary: "完成任务: finish a task and receive its reward",
            description: "Grants the task's reward at most `repeat` times per user per business day (the day rolls at 00:00 business time). Each finish is one ledger entry of kind `task` (what the blind boxes count), keyed `task:<app>:<id>:<day>:<user>:<n>` and counted by the ledger counter `task:<app>:<id>:<user>:<day>` (ceiling `repeat`), so concurrent finishes never pay more than `repeat`. `积分` credits `amount` points (expiring by the app's rule); other reward types record a zero-point finish with a fulfilment order of `amount` units, delivered outside. Refusals (nothing changed): 410 already finished `repeat` times today, 404 unknown or off-shelf task, 400 missing `id`, 429 busy, 401/403 token or user mismatch.",
        },
        gift_finish,
    );

    let tag = "001 points center";
    let list_doc = "Bearer token. `result`: `{permanentTask:[...], cyclicTask:[...]}` of on-shelf tasks, each `{taskId, type, title, desc, btnTitle, btnType, path, imgUrl, icon, faceValue, total, currentTotal, status, cycle?, cycleStart, cycleEnd, taskInfo:{btnType, path, imgUrl}}`. `currentTotal` and `status` (1 reward to claim, 2 unfinished, 3 done) are the caller's in the current cycle: a cyclic task's cycle is `cycle.day` units of `cycle.type` in business time (day: calendar days; week: weeks starting Monday; month: calendar months; several units are counted in blocks from Monday 2024-01-01), so progress starts over at 00:00 business time of the cycle's first day. `cycleStart`/`cycleEnd` are the current cycle's first and last day (empty for permanent tasks).";
    r.add::<crate::http::Empty, CenterTaskList, _, _>(
        RouteDoc {
            path: "/center/api/getTasksList",
            methods: GET_POST,
            tag,
            summary: "获取当前任务列表: tasks with the caller's progress",
            description: list_doc,
        },
        center_list,
    );
    r.add::<crate::http::Empty, CenterTaskList, _, _>(
        RouteDoc {
            path: "/center/api/getTaskList",
            methods: GET_POST,
            tag,
            summary: "获取当前任务列表 (the client's spelling of getTasksList)",
            description: list_doc,
        },
        center_list,
    );
    r.add::<CenterClaimReq, CenterClaimResult, _, _>(
        RouteDoc {
            path: "/center/api/receiveTaskAward",
            methods: POST,
            tag,
            summary: "领取任务奖励: claim a finished task's points",
            description: "Bearer token; `taskId`. Pays `faceValue` points once per cycle (permanent tasks: once ever) when the caller's status in the current cycle is 1 (set by `setUserTaskStatus`); the status becomes 3. The payment is the ledger entry keyed `ctask:<app>:<taskId>:<cycle-start>:<user>` (kind `task`), so claims sent twice or at once pay once: one answers `result.points` (the new balance), the others 40910. Refusals (nothing changed): 40910 already claimed this cycle or not finished, 40400 unknown or off-shelf task, 40000 missing `taskId`, 42900 busy.",
        },
        center_claim,
    );
    r.add::<CenterTaskStatusReq, bool, _, _>(
        RouteDoc {
            path: "/center/admin/setUserTaskStatus",
            methods: POST,
            tag,
            summary: "设置用户任务状态: set a user's progress on a task (server op)",
            description: "`X-Admin-Key`. `taskId`, `openId` (platform id), `completeNum` (the user's total so far, 0..=the task's `total`), `status` 1 to claim / 2 unfinished / 3 done; 1 and 3 only when `completeNum` equals `total`. Sets the progress of the task's current cycle; a reward already claimed this cycle stays claimed. `app_id` defaults to `default`. 40000 bad or missing field, 40400 unknown task or user.",
        },
        center_set_status,
    );
    r.add::<CenterTaskSaveReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/center/admin/saveTask",
            methods: POST,
            tag,
            summary: "添加任务: create or replace a task (server op)",
            description: "`X-Admin-Key`. Same fields and rules as `POST /admin/center-tasks`; `result` is the stored task.",
        },
        center_save,
    );
    r.add::<CenterTaskByIdReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/center/admin/getTaskById",
            methods: GET_POST,
            tag,
            summary: "获取任务详情: one task (server op)",
            description: "`X-Admin-Key`; `id` the `taskId`; `app_id` defaults to `default`. 40400 when there is no such task.",
        },
        center_by_id,
    );

    let tag = "admin tasks";
    r.add::<GiftTaskSaveReq, GiftTaskAdminView, _, _>(
        RouteDoc {
            path: "/admin/tasks",
            methods: POST,
            tag,
            summary: "Create or change a 000 task",
            description: "`X-Admin-Key`. Without `id` creates a task (`name`, `reward_type`, `amount` required); with `id` changes that task of the app, absent fields keeping their value. `name` 1-64 characters; `reward_type` one of 积分/集分宝/现金红包/电子权益/实物; `amount` 0-1000000000 points for 积分, 1-1000000000 units otherwise; `btn_desc` up to 8 texts of at most 32 characters; `repeat` 1-100 finishes per user per day (default 1); `sort` within ±1000000; `status` \"10\" on shelf (default), \"20\" off shelf, \"30\" deleted; texts at most 200 characters, links at most 1000. An app keeps at most 200 tasks not deleted. Any violation answers 400 and changes nothing; 404 unknown app or task.",
        },
        gift_save,
    );
    r.add::<TaskAppQuery, Vec<GiftTaskAdminView>, _, _>(
        RouteDoc {
            path: "/admin/tasks",
            methods: GET,
            tag,
            summary: "An app's 000 tasks, every status, with click counts",
            description:
                "`X-Admin-Key`; `app_id` defaults to `default`. Ordered by `sort`, then `id`.",
        },
        gift_admin_list,
    );
    r.add::<CenterTaskSaveReq, CenterTaskView, _, _>(
        RouteDoc {
            path: "/admin/center-tasks",
            methods: POST,
            tag,
            summary: "Create or replace a 001 task",
            description: "`X-Admin-Key`. `taskId` (1-64 of A-Z a-z 0-9 _ -; absent: a new id), `type` `permanent` or `cyclic`, `cycle` `{type: day|week|month, day: units per cycle 1-366 (default 1)}` required for cyclic, `title` 1-64 characters, `desc`, `btnTitle` (at most 200), `btnType` qrCode/route/customize (default customize), `path`, `imgUrl`, `icon` (at most 1000), `faceValue` points 1-1000000000, `total` target 1-1000000000 (default 1), `sort`, `status` \"10\"/\"20\"/\"30\". Saving an existing `taskId` replaces it; progress and claims stay with their cycles. Any violation answers 400 and changes nothing.",
        },
        center_admin_save,
    );
    r.add::<TaskAppQuery, Vec<CenterTaskView>, _, _>(
        RouteDoc {
            path: "/admin/center-tasks",
            methods: GET,
            tag,
            summary: "An app's 001 tasks, every status",
            description: "`X-Admin-Key`; `app_id` defaults to `default`.",
        },
        center_admin_list,
    );
}
