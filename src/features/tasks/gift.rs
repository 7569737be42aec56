//! 000 task logic: the shapes of `v2/task/*` tasks, finishes (with their per-user locks), clicks
//! and saving.

use points_actors::activity::Refusal;
use points_actors::ledger::CHANGE_AMOUNT_ABS_MAX;
use points_actors::ledger::{REWARD_POINTS, REWARD_TYPES};
use points_actors::{Change, LedgerError, Limit, OrderSpec, Submit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::store::{self, GiftTask};
use super::{
    config_status, ranged, required_text, text, STATUS_ON, TASKS_PER_APP_MAX, TASK_BUTTONS_MAX,
    TASK_BUTTON_CHARS_MAX, TASK_NAME_CHARS_MAX, TASK_REPEAT_MAX, TASK_SORT_ABS_MAX,
    TASK_TEXT_CHARS_MAX, TASK_URL_CHARS_MAX,
};
use crate::activities::blindbox::TASK_KIND;
use crate::clock::Moment;
use crate::clock::{now_ms, BizClock};
use crate::dialect::AppId;
use crate::error::AppError;
use crate::http::lenient;
use crate::points;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------------
// Per-user serialization of 000 finishes

pub use crate::runtime::{KeyGuard as FinishGuard, KeyLocks as FinishLocks};

// ---------------------------------------------------------------------------------------------
// Storage helpers

/// An on-shelf 000 task, or 404.
async fn live_gift_task(state: &AppState, app_id: &str, id: i64) -> Result<GiftTask, AppError> {
    store::gift_task(&state.stores.db, app_id, id)
        .await?
        .filter(|t| t.status == STATUS_ON)
        .ok_or_else(|| AppError::NotFound(format!("task {id}")))
}

/// Refusal of a 000 finish past `repeat` today.
fn repeat_used_up() -> AppError {
    AppError::Refused(Refusal::Other {
        en: "this task is already finished as often as allowed today".into(),
        zh: "今日该任务已完成".into(),
    })
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
    Ok(crate::store::ledger::counter_values(&state.stores.db, &keys).await?)
}

// ---------------------------------------------------------------------------------------------
// Shapes

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
    let Some(task) = store::gift_task(&state.stores.db, app_id, task_id)
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
// Operations

/// The app's on-shelf 000 tasks with `user_id`'s state today; `want_done` keeps only those
/// finished (`Some(true)`) or not (`Some(false)`).
pub(super) async fn list(
    state: &AppState,
    app_id: &str,
    user_id: i64,
    want_done: Option<bool>,
) -> Result<Vec<GiftTaskItem>, AppError> {
    let tasks = store::gift_tasks(&state.stores.db, app_id, true).await?;
    let day = Moment::now(&state.clock).day;
    let done = finishes_on(state, &tasks, user_id, &day).await?;
    Ok(tasks
        .into_iter()
        .zip(done)
        .map(|(t, d)| gift_item(&state.clock, t, d))
        .filter(|item| want_done.is_none_or(|want| item.is_done == want))
        .collect())
}

/// Counts a click of `user_id` on the on-shelf task `id`'s button.
pub(super) async fn click(
    state: &AppState,
    app_id: &str,
    user_id: i64,
    id: i64,
) -> Result<(), AppError> {
    let task = live_gift_task(state, app_id, id).await?;
    let now = now_ms();
    store::add_click(
        &state.stores.db,
        task.id,
        user_id,
        Moment::at(&state.clock, now).day,
        now,
    )
    .await?;
    Ok(())
}

/// Finishes the on-shelf task `id` for `user_id`: one ledger change, at most `repeat` a day.
pub(super) async fn finish(
    state: &AppState,
    app_id: &str,
    user_id: i64,
    id: i64,
) -> Result<(), AppError> {
    let app_id = app_id.to_string();
    let task = live_gift_task(state, &app_id, id).await?;
    let is_points = task.reward_type == REWARD_POINTS;
    let expires_at = if is_points && task.amount > 0 {
        points::default_expiry(state, &app_id).await?
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
    let done =
        crate::store::ledger::counter_values(&state.stores.db, std::slice::from_ref(&counter))
            .await?
            .first()
            .copied()
            .unwrap_or(0);
    if done >= task.repeat {
        return Err(repeat_used_up());
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
        expire_lot: None,
        fence: None,
    };
    match state.ledger.send(Submit(change)).await? {
        Ok(_) => {}
        // Another process finished the same task for this user at the same moment.
        Err(LedgerError::LimitReached { .. }) => return Err(repeat_used_up()),
        Err(e) => return Err(AppError::from(e)),
    }
    if !is_points {
        state.fulfilment_wake.notify_one();
    }
    Ok(())
}

/// Creates or changes a 000 task; answers it as operators see it.
pub(super) async fn save(
    state: &AppState,
    p: GiftTaskSaveReq,
) -> Result<GiftTaskAdminView, AppError> {
    let mut p = p;
    let app_id = AppId::text(p.app_id.take());
    crate::auth::app(state, &app_id).await?;
    let db = &state.stores.db;
    let now = now_ms();
    let stored = match p.id {
        Some(id) => Some(
            store::gift_task(db, &app_id, id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("task {id}")))?,
        ),
        None => None,
    };
    let creating = stored.is_none();
    let task = merge_gift_task(p, &app_id, stored, now)?;
    let buttons = serde_json::to_string(&task.btn_desc).unwrap_or_else(|_| "[]".into());
    let id = if creating {
        let live = store::live_gift_task_count(db, &app_id).await?;
        if live >= TASKS_PER_APP_MAX {
            return Err(AppError::invalid(format!(
                "an app keeps at most {TASKS_PER_APP_MAX} tasks; delete one first (status \"30\")"
            )));
        }
        store::insert_gift_task(db, &app_id, &task, &buttons, now).await?
    } else {
        store::update_gift_task(db, &app_id, &task, &buttons, now).await?;
        task.id
    };
    let saved = store::gift_task(db, &app_id, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {id}")))?;
    let clicks = store::clicks_of(db, &app_id)
        .await?
        .get(&id)
        .copied()
        .unwrap_or(0);
    Ok(gift_admin_view(&state.clock, saved, clicks))
}

/// Every 000 task of the app (`app_id` defaulting to `default`) with its clicks, for operators.
pub(super) async fn admin_list(
    state: &AppState,
    app_id: Option<String>,
) -> Result<Vec<GiftTaskAdminView>, AppError> {
    let app_id = AppId::text(app_id);
    crate::auth::app(state, &app_id).await?;
    let db = &state.stores.db;
    let clicks = store::clicks_of(db, &app_id).await?;
    Ok(store::gift_tasks(db, &app_id, false)
        .await?
        .into_iter()
        .map(|t| {
            let c = clicks.get(&t.id).copied().unwrap_or(0);
            gift_admin_view(&state.clock, t, c)
        })
        .collect())
}
