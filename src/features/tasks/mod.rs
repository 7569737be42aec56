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
//! `cycle.day` the day the cycle refreshes: weekday 1-7 or day of the month 1-31, clamped to the
//! month's last day; ignored for daily tasks). The operator's server reports progress with
//! `setUserTaskStatus`; the user claims the reward once per cycle with `receiveTaskAward`,
//! a ledger change keyed `ctask:<app>:<task>:<cycle-start>:<user>`, so a claim sent twice (or
//! twenty times at once) pays once. Cycles are computed from the business date (see
//! [`Cycle::start_of`]), so they roll over at 00:00 business time without any job.
//!
//! Layout: [`gift`] holds the 000 logic, [`center`] the 001 logic and cycles, `store` the SQL;
//! `routes_gift`, `routes_center` and `routes_admin` the HTTP handlers and route docs.

use actix_web::web;
use serde::Serialize;
use serde_json::Value;

use crate::dialect::Status;
use crate::error::AppError;
use crate::http::{ApiDoc, Routes};

pub mod center;
pub mod gift;
mod routes_admin;
mod routes_center;
mod routes_gift;
mod store;

pub use center::{
    cycle_key, CenterClaimResult, CenterCycle, CenterTaskInfo, CenterTaskItem, CenterTaskList,
    CenterTaskSaveReq, CenterTaskView, Cycle, CycleUnit,
};
pub use gift::{
    gift_task_item, FinishGuard, FinishLocks, GiftTaskAdminView, GiftTaskItem, GiftTaskSaveReq,
};
pub use routes_admin::TaskAppQuery;
pub use routes_center::{CenterClaimReq, CenterTaskByIdReq, CenterTaskStatusReq};
pub use routes_gift::{GiftTaskIdReq, GiftTaskListReq};

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
/// Largest magnitude of a `sort` value.
pub const TASK_SORT_ABS_MAX: i64 = 1_000_000;

/// Config status: on shelf.
const STATUS_ON: &str = Status::On.code();
/// Config status: deleted.
const STATUS_DELETED: &str = Status::Deleted.code();
const STATUSES: &[&str] = &Status::CODES;

// ---------------------------------------------------------------------------------------------
// Shared validation

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

// ---------------------------------------------------------------------------------------------
// Routes

/// Registers the task routes: 000 `v2/task/*`, 001 task ops and the admin routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    routes_gift::register(&mut r);
    routes_center::register(&mut r);
    routes_admin::register(&mut r);
}
