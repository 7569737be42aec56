//! 001 task logic: cycles, the shapes of `/center/*` tasks, listing, claiming, progress and saving.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate};
use points_actors::activity::Refusal;
use points_actors::ledger::CHANGE_AMOUNT_ABS_MAX;
use points_actors::{Change, Submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{self, CenterTask};
use super::{
    config_status, ranged, required_text, text, STATUS_DELETED, STATUS_ON, TASKS_PER_APP_MAX,
    TASK_ID_CHARS_MAX, TASK_NAME_CHARS_MAX, TASK_SORT_ABS_MAX, TASK_TEXT_CHARS_MAX, TASK_TOTAL_MAX,
    TASK_URL_CHARS_MAX,
};
use crate::activities::blindbox::TASK_KIND;
use crate::clock::{now_ms, BizClock};
use crate::dialect::AppId;
use crate::error::AppError;
use crate::http::lenient;
use crate::points;
use crate::state::AppState;

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

/// A cyclic task's cycle: it refreshes at 00:00 business time every day (`Day`), on weekday
/// `day` (`Week`: 1 Monday - 7 Sunday) or on day `day` of each month (`Month`: 1-31, clamped to
/// the month's last day) — the seed's 循环日期.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub unit: CycleUnit,
    /// The refresh day: ignored (1) for `Day`, 1-7 for `Week`, 1-31 for `Month`.
    pub day: i64,
}

/// The days of the month `year`-`month`.
fn month_days(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

impl Cycle {
    /// Checks a saved cycle's refresh day for its unit.
    pub fn new(unit: CycleUnit, day: i64) -> Result<Cycle, String> {
        let (min, max) = match unit {
            CycleUnit::Day => return Ok(Cycle { unit, day: 1 }),
            CycleUnit::Week => (1, 7),
            CycleUnit::Month => (1, 31),
        };
        if !(min..=max).contains(&day) {
            return Err(format!(
                "cycle.day must be {min}-{max} for a {} cycle (the day it refreshes)",
                unit.as_str()
            ));
        }
        Ok(Cycle { unit, day })
    }

    /// The refresh day in the month `year`-`month`.
    fn day_in(&self, year: i32, month: u32) -> Option<NaiveDate> {
        let day = u32::try_from(self.day.clamp(1, 31)).unwrap_or(1);
        NaiveDate::from_ymd_opt(year, month, day.min(month_days(year, month)))
    }

    /// The first business date of the cycle that holds `date`: the latest refresh day on or
    /// before it.
    pub fn start_of(&self, date: NaiveDate) -> NaiveDate {
        match self.unit {
            CycleUnit::Day => date,
            CycleUnit::Week => {
                let weekday = i64::from(date.weekday().number_from_monday());
                let back = (weekday - self.day.clamp(1, 7)).rem_euclid(7);
                date.checked_sub_signed(chrono::Duration::days(back))
                    .unwrap_or(date)
            }
            CycleUnit::Month => {
                let this = self.day_in(date.year(), date.month());
                match this {
                    Some(d) if d <= date => d,
                    _ => {
                        let (y, m) = if date.month() == 1 {
                            (date.year() - 1, 12)
                        } else {
                            (date.year(), date.month() - 1)
                        };
                        self.day_in(y, m).unwrap_or(date)
                    }
                }
            }
        }
    }

    /// The first business date of the cycle after the one that starts on `start`.
    pub fn next_start(&self, start: NaiveDate) -> NaiveDate {
        let next = match self.unit {
            CycleUnit::Day => start.succ_opt(),
            CycleUnit::Week => start.checked_add_signed(chrono::Duration::days(7)),
            CycleUnit::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                self.day_in(y, m)
            }
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

// ---------------------------------------------------------------------------------------------
// Shapes

/// A cyclic task's period, as saved.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CenterCycle {
    /// `day`, `week` or `month`.
    #[serde(rename = "type", default, deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    /// The day the cycle refreshes (循环日期): weekday 1-7 (Monday-Sunday) for `week`, day of
    /// the month 1-31 (clamped to the month's last day) for `month`; ignored for `day`.
    /// Default 1.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub day: Option<i64>,
}

fn cycle_view(c: Option<Cycle>) -> Option<CenterCycle> {
    c.map(|c| CenterCycle {
        kind: Some(c.unit.as_str().into()),
        day: Some(c.day),
    })
}

/// What the 001 client reads under `taskInfo`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CenterTaskInfo {
    /// The text of an unfinished task's button.
    pub btn_title: String,
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
    /// The same count, under the name the client's templates read ("已完成x/y").
    pub complete_num: i64,
    /// `progress` (a target above one: the page shows "已完成<completeNum>/<total>") or
    /// `standard` (the page shows `desc`).
    pub task_model: String,
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

/// A group of `getTaskList`: the page shows `title`, then each task of `item`.
#[derive(Serialize, ToSchema)]
pub struct CenterTaskGroup {
    pub title: String,
    pub item: Vec<CenterTaskItem>,
}

/// Group titles of `getTaskList`, as the seed names the two lists.
const CYCLIC_TITLE: &str = "循环任务";
const PERMANENT_TITLE: &str = "成长任务";

/// `getTaskList`'s `result`: the groups, in the order the page shows them.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
pub struct CenterTaskGroups(pub Vec<CenterTaskGroup>);

impl CenterTaskList {
    /// The lists as the client's `getTaskList` reads them: a group per kind that has tasks,
    /// cyclic first (an empty list shows the page's "暂无新任务").
    pub fn into_groups(self) -> CenterTaskGroups {
        CenterTaskGroups(
            [
                (CYCLIC_TITLE, self.cyclic_task),
                (PERMANENT_TITLE, self.permanent_task),
            ]
            .into_iter()
            .filter(|(_, item)| !item.is_empty())
            .map(|(title, item)| CenterTaskGroup {
                title: title.into(),
                item,
            })
            .collect(),
        )
    }
}

/// What a claim answers.
#[derive(Serialize, ToSchema)]
pub struct CenterClaimResult {
    /// The caller's balance after the reward.
    pub points: i64,
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
    /// `permanent` (growth) or `cyclic` (also `permanentTask`, `cyclicTask`).
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

// ---------------------------------------------------------------------------------------------
// Saving

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
    // The seed writes `permanent` / `cyclic`; the vendor's integration guide `...Task`.
    let cycle = match p.kind.as_deref().map(str::trim) {
        Some("permanent" | "permanentTask") => None,
        Some("cyclic" | "cyclicTask") => {
            let c = p.cycle.ok_or_else(|| AppError::missing("cycle"))?;
            let unit = c
                .kind
                .as_deref()
                .map(str::trim)
                .ok_or_else(|| AppError::missing("cycle.type"))?;
            let unit = CycleUnit::parse(unit).ok_or_else(|| {
                AppError::invalid("cycle.type must be \"day\", \"week\" or \"month\"")
            })?;
            Some(Cycle::new(unit, c.day.unwrap_or(1)).map_err(AppError::invalid)?)
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
pub(super) async fn save_center_task(
    state: &AppState,
    p: CenterTaskSaveReq,
) -> Result<CenterTaskView, AppError> {
    let mut p = p;
    let app_id = AppId::text(p.app_id.take());
    let task = parse_center_task(p, &app_id, now_ms())?;
    crate::auth::app(state, &app_id).await?;
    let db = &state.stores.db;
    let exists = store::center_task(db, &app_id, &task.task_id)
        .await?
        .is_some();
    if !exists {
        let live = store::live_center_task_count(db, &app_id).await?;
        if live >= TASKS_PER_APP_MAX {
            return Err(AppError::invalid(format!(
                "an app keeps at most {TASKS_PER_APP_MAX} tasks; delete one first (status \"30\")"
            )));
        }
    }
    let (cycle_type, cycle_days) = task
        .cycle
        .map(|c| (c.unit.as_str(), c.day))
        .unwrap_or(("", 0));
    store::upsert_center_task(db, &app_id, &task, task.kind(), cycle_type, cycle_days).await?;
    let saved = store::center_task(db, &app_id, &task.task_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {:?}", task.task_id)))?;
    Ok(center_view(&state.clock, saved))
}

/// One 001 task of the app (`app_id` defaulting to `default`), whatever its status, or 404.
pub(super) async fn task_by_id(
    state: &AppState,
    app_id: Option<String>,
    id: &str,
) -> Result<CenterTaskView, AppError> {
    let app_id = AppId::text(app_id);
    let task = store::center_task(&state.stores.db, &app_id, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {id:?}")))?;
    Ok(center_view(&state.clock, task))
}

/// Every 001 task of the app (`app_id` defaulting to `default`), for operators.
pub(super) async fn admin_list(
    state: &AppState,
    app_id: Option<String>,
) -> Result<Vec<CenterTaskView>, AppError> {
    let app_id = AppId::text(app_id);
    crate::auth::app(state, &app_id).await?;
    Ok(store::center_tasks(&state.stores.db, &app_id, false)
        .await?
        .into_iter()
        .map(|t| center_view(&state.clock, t))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Progress and claims

/// The app's on-shelf 001 tasks with the user's progress in their current cycles.
pub(super) async fn list(
    state: &AppState,
    app_id: &str,
    user_id: i64,
) -> Result<CenterTaskList, AppError> {
    let db = &state.stores.db;
    let now = now_ms();
    let tasks = store::center_tasks(db, app_id, true).await?;
    let cycles: Vec<String> = tasks
        .iter()
        .map(|t| cycle_key(&state.clock, t.cycle, now))
        .collect();
    let keys: Vec<String> = tasks
        .iter()
        .zip(&cycles)
        .map(|(t, c)| t.claim_key(c, user_id))
        .collect();
    let claimed = crate::store::ledger::tasks::claimed_keys(db, app_id, &keys).await?;
    // Only the current cycles' rows: past cycles stay stored but are no longer read.
    let current: Vec<&String> = cycles.iter().collect::<HashSet<_>>().into_iter().collect();
    let progress = store::progress_in_cycles(db, app_id, user_id, &current).await?;
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
                btn_title: t.btn_title.clone(),
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
            complete_num: current_total,
            task_model: if t.total > 1 { "progress" } else { "standard" }.into(),
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
    Ok(list)
}

/// Pays the user's reward of the on-shelf task `task_id` for the current cycle.
pub(super) async fn claim(
    state: &AppState,
    app_id: &str,
    user_id: i64,
    task_id: &str,
) -> Result<CenterClaimResult, AppError> {
    let db = &state.stores.db;
    let task = store::center_task(db, app_id, task_id)
        .await?
        .filter(|t| t.status == STATUS_ON)
        .ok_or_else(|| AppError::NotFound(format!("task {task_id:?}")))?;
    let cycle = cycle_key(&state.clock, task.cycle, now_ms());
    let key = task.claim_key(&cycle, user_id);
    // Already paid this cycle. The progress row is left alone: only a claim that submitted the
    // payment moves it to "done" (below), so exactly one of concurrent claims answers success;
    // a paid cycle whose row still says 1 (cut off before the update) reads as done anyway,
    // because lists take the ledger's word.
    if !crate::store::ledger::tasks::claimed_keys(db, app_id, std::slice::from_ref(&key))
        .await?
        .is_empty()
    {
        return Err(AppError::Refused(Refusal::AlreadyDone));
    }
    match store::progress_of(db, app_id, task_id, user_id, &cycle).await? {
        Some((_, TO_CLAIM)) => {}
        Some((_, DONE)) => return Err(AppError::Refused(Refusal::AlreadyDone)),
        _ => {
            return Err(AppError::Refused(Refusal::Other {
                en: "the task is not finished yet".into(),
                zh: "任务尚未完成".into(),
            }))
        }
    }
    let expires_at = points::default_expiry(state, app_id).await?;
    let change = Change {
        app_id: app_id.to_string(),
        user_id,
        amount: task.face_value,
        kind: TASK_KIND.into(),
        idem_key: key,
        reference: task_id.to_string(),
        description: format!("任务奖励: {}", task.title),
        expires_at,
        limits: Vec::new(),
        legs: Vec::new(),
        order: None,
        expire_lot: None,
        fence: None,
    };
    let outcome = state.ledger.send(Submit(change)).await??;
    // Concurrent claims of one cycle share the ledger key, so one reward is paid and each of
    // them sees its outcome; the one that moves the progress to "done" answers success and the
    // others answer "already claimed", as they would have a moment later.
    if store::mark_claimed(db, app_id, task_id, user_id, &cycle, now_ms()).await? == 0 {
        return Err(AppError::Refused(Refusal::AlreadyDone));
    }
    Ok(CenterClaimResult {
        points: outcome.balance_after,
    })
}

/// Sets the progress of the platform user `open_id` on a task (not deleted) in its current
/// cycle, as the operator's server reports it.
pub(super) async fn set_status(
    state: &AppState,
    app_id: Option<String>,
    task_id: &str,
    open_id: &str,
    complete_num: i64,
    status: i64,
) -> Result<(), AppError> {
    if ![TO_CLAIM, UNFINISHED, DONE].contains(&status) {
        return Err(AppError::invalid(
            "status must be 1 (to claim), 2 (unfinished) or 3 (done)",
        ));
    }
    let app_id = AppId::text(app_id);
    let db = &state.stores.db;
    let task = store::center_task(db, &app_id, task_id)
        .await?
        .filter(|t| t.status != STATUS_DELETED)
        .ok_or_else(|| AppError::NotFound(format!("task {task_id:?}")))?;
    if !(0..=task.total).contains(&complete_num) {
        return Err(AppError::invalid(format!(
            "completeNum must be between 0 and the task's total {}",
            task.total
        )));
    }
    if status != UNFINISHED && complete_num != task.total {
        return Err(AppError::invalid(format!(
            "status 1 or 3 needs completeNum equal to the task's total {}",
            task.total
        )));
    }
    let user = points::user(state, &app_id, open_id).await?;
    let now = now_ms();
    store::set_progress(
        db,
        &app_id,
        task_id,
        user.id,
        cycle_key(&state.clock, task.cycle, now),
        complete_num,
        status,
        now,
    )
    .await?;
    Ok(())
}
