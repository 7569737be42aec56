//! The tasks slice's own SQL (`gift_tasks`, `gift_task_clicks`, `center_tasks`,
//! `center_task_progress`) and its row types.

use std::collections::HashMap;

use sqlx::Row;

use super::center::{Cycle, CycleUnit};
use crate::db::Db;

// ---------------------------------------------------------------------------------------------
// 000 tasks

/// A stored 000 task.
#[derive(Debug, Clone)]
pub(crate) struct GiftTask {
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
    pub created_at: i64,
    pub updated_at: i64,
}

const GIFT_COLUMNS: &str =
    "id, app_id, icon, name, flag, remark, reward_desc, reward_type, amount, \
     btn_desc, target_type, target, repeat_per_day, sort, status, created_at, updated_at";

fn gift_task_from(r: &sqlx::any::AnyRow) -> Result<GiftTask, sqlx::Error> {
    let buttons: String = r.try_get("btn_desc")?;
    Ok(GiftTask {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        icon: r.try_get("icon")?,
        name: r.try_get("name")?,
        flag: r.try_get("flag")?,
        remark: r.try_get("remark")?,
        reward_desc: r.try_get("reward_desc")?,
        reward_type: r.try_get("reward_type")?,
        amount: r.try_get("amount")?,
        // Written by this module as a JSON array; anything else reads as no buttons.
        btn_desc: serde_json::from_str(&buttons).unwrap_or_default(),
        target_type: r.try_get("target_type")?,
        target: r.try_get("target")?,
        repeat: r.try_get("repeat_per_day")?,
        sort: r.try_get("sort")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The app's 000 tasks: on shelf only, or every one (deleted included) for operators.
pub(crate) async fn gift_tasks(
    db: &Db,
    app_id: &str,
    on_shelf_only: bool,
) -> Result<Vec<GiftTask>, sqlx::Error> {
    let filter = if on_shelf_only {
        " AND status = '10'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {GIFT_COLUMNS} FROM gift_tasks WHERE app_id = $1{filter} ORDER BY sort, id"
    );
    let rows = sqlx::query(&sql).bind(app_id).fetch_all(&db.read).await?;
    rows.iter().map(gift_task_from).collect()
}

/// One 000 task of the app, whatever its status.
pub(crate) async fn gift_task(
    db: &Db,
    app_id: &str,
    id: i64,
) -> Result<Option<GiftTask>, sqlx::Error> {
    let sql = format!("SELECT {GIFT_COLUMNS} FROM gift_tasks WHERE app_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(app_id)
        .bind(id)
        .fetch_optional(&db.read)
        .await?;
    row.as_ref().map(gift_task_from).transpose()
}

/// Total clicks per task of the app.
pub(crate) async fn clicks_of(db: &Db, app_id: &str) -> Result<HashMap<i64, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.task_id, CAST(SUM(c.clicks) AS BIGINT) AS clicks FROM gift_task_clicks c \
         JOIN gift_tasks t ON t.id = c.task_id WHERE t.app_id = $1 GROUP BY c.task_id",
    )
    .bind(app_id)
    .fetch_all(&db.read)
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        out.insert(
            r.try_get::<i64, _>("task_id")?,
            r.try_get::<i64, _>("clicks")?,
        );
    }
    Ok(out)
}

/// Counts one click of `user_id` on the task's button on business day `day`.
pub(crate) async fn add_click(
    db: &Db,
    task_id: i64,
    user_id: i64,
    day: String,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO gift_task_clicks (task_id, user_id, day, clicks, updated_at) \
         VALUES ($1, $2, $3, 1, $4) ON CONFLICT (task_id, user_id, day) DO UPDATE \
         SET clicks = gift_task_clicks.clicks + 1, updated_at = excluded.updated_at",
    )
    .bind(task_id)
    .bind(user_id)
    .bind(day)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// How many 000 tasks of the app are not deleted.
pub(crate) async fn live_gift_task_count(db: &Db, app_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM gift_tasks WHERE app_id = $1 AND status <> '30'")
        .bind(app_id)
        .fetch_one(&db.read)
        .await
}

/// Stores a new 000 task of `app_id` (created and updated at `now`); answers its id.
pub(crate) async fn insert_gift_task(
    db: &Db,
    app_id: &str,
    task: &GiftTask,
    buttons: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "INSERT INTO gift_tasks (app_id, icon, name, flag, remark, reward_desc, reward_type, \
         amount, btn_desc, target_type, target, repeat_per_day, sort, status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $15) RETURNING id",
    )
    .bind(app_id)
    .bind(&task.icon)
    .bind(&task.name)
    .bind(&task.flag)
    .bind(&task.remark)
    .bind(&task.reward_desc)
    .bind(&task.reward_type)
    .bind(task.amount)
    .bind(buttons)
    .bind(&task.target_type)
    .bind(&task.target)
    .bind(task.repeat)
    .bind(task.sort)
    .bind(&task.status)
    .bind(now)
    .fetch_one(&db.write)
    .await
}

/// Rewrites the stored 000 task `task.id` of `app_id` (updated at `now`).
pub(crate) async fn update_gift_task(
    db: &Db,
    app_id: &str,
    task: &GiftTask,
    buttons: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE gift_tasks SET icon = $3, name = $4, flag = $5, remark = $6, reward_desc = $7, \
         reward_type = $8, amount = $9, btn_desc = $10, target_type = $11, target = $12, \
         repeat_per_day = $13, sort = $14, status = $15, updated_at = $16 \
         WHERE app_id = $1 AND id = $2",
    )
    .bind(app_id)
    .bind(task.id)
    .bind(&task.icon)
    .bind(&task.name)
    .bind(&task.flag)
    .bind(&task.remark)
    .bind(&task.reward_desc)
    .bind(&task.reward_type)
    .bind(task.amount)
    .bind(buttons)
    .bind(&task.target_type)
    .bind(&task.target)
    .bind(task.repeat)
    .bind(task.sort)
    .bind(&task.status)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 001 tasks

/// A stored 001 task.
#[derive(Debug, Clone)]
pub(crate) struct CenterTask {
    pub app_id: String,
    pub task_id: String,
    pub cycle: Option<Cycle>,
    pub title: String,
    pub description: String,
    pub btn_title: String,
    pub btn_type: String,
    pub path: String,
    pub img_url: String,
    pub icon: String,
    pub face_value: i64,
    pub total: i64,
    pub sort: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const CENTER_COLUMNS: &str = "app_id, task_id, kind, cycle_type, cycle_days, title, description, \
     btn_title, btn_type, path, img_url, icon, face_value, total, sort, status, created_at, \
     updated_at";

fn center_task_from(r: &sqlx::any::AnyRow) -> Result<CenterTask, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let cycle_type: String = r.try_get("cycle_type")?;
    let cycle = match (kind.as_str(), CycleUnit::parse(&cycle_type)) {
        ("cyclic", Some(unit)) => Some(Cycle {
            unit,
            day: r.try_get("cycle_days")?,
        }),
        _ => None,
    };
    Ok(CenterTask {
        app_id: r.try_get("app_id")?,
        task_id: r.try_get("task_id")?,
        cycle,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        btn_title: r.try_get("btn_title")?,
        btn_type: r.try_get("btn_type")?,
        path: r.try_get("path")?,
        img_url: r.try_get("img_url")?,
        icon: r.try_get("icon")?,
        face_value: r.try_get("face_value")?,
        total: r.try_get("total")?,
        sort: r.try_get("sort")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The app's 001 tasks: on shelf only, or every one (deleted included) for operators.
pub(crate) async fn center_tasks(
    db: &Db,
    app_id: &str,
    on_shelf_only: bool,
) -> Result<Vec<CenterTask>, sqlx::Error> {
    let filter = if on_shelf_only {
        " AND status = '10'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {CENTER_COLUMNS} FROM center_tasks WHERE app_id = $1{filter} \
         ORDER BY sort, created_at, task_id"
    );
    let rows = sqlx::query(&sql).bind(app_id).fetch_all(&db.read).await?;
    rows.iter().map(center_task_from).collect()
}

/// One 001 task of the app, whatever its status.
pub(crate) async fn center_task(
    db: &Db,
    app_id: &str,
    task_id: &str,
) -> Result<Option<CenterTask>, sqlx::Error> {
    let sql =
        format!("SELECT {CENTER_COLUMNS} FROM center_tasks WHERE app_id = $1 AND task_id = $2");
    let row = sqlx::query(&sql)
        .bind(app_id)
        .bind(task_id)
        .fetch_optional(&db.read)
        .await?;
    row.as_ref().map(center_task_from).transpose()
}

/// How many 001 tasks of the app are not deleted.
pub(crate) async fn live_center_task_count(db: &Db, app_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM center_tasks WHERE app_id = $1 AND status <> '30'")
        .bind(app_id)
        .fetch_one(&db.read)
        .await
}

/// Inserts the 001 task, or replaces the stored one of the same `taskId`.
pub(crate) async fn upsert_center_task(
    db: &Db,
    app_id: &str,
    task: &CenterTask,
    kind: &str,
    cycle_type: &str,
    cycle_days: i64,
) -> Result<(), sqlx::Error> {
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
    .bind(app_id)
    .bind(&task.task_id)
    .bind(kind)
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
    .execute(&db.write)
    .await?;
    Ok(())
}

/// A user's progress on one task in one cycle: (completeNum, status).
pub(crate) async fn progress_of(
    db: &Db,
    app_id: &str,
    task_id: &str,
    user_id: i64,
    cycle: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT complete_num, status FROM center_task_progress \
         WHERE app_id = $1 AND task_id = $2 AND user_id = $3 AND cycle_start = $4",
    )
    .bind(app_id)
    .bind(task_id)
    .bind(user_id)
    .bind(cycle)
    .fetch_optional(&db.read)
    .await?;
    row.map(|r| Ok((r.try_get("complete_num")?, r.try_get("status")?)))
        .transpose()
}

/// A user's progress rows in the cycles `cycles` (any task of the app):
/// (task_id, cycle_start) -> (completeNum, status).
pub(crate) async fn progress_in_cycles(
    db: &Db,
    app_id: &str,
    user_id: i64,
    cycles: &[&String],
) -> Result<HashMap<(String, String), (i64, i64)>, sqlx::Error> {
    let rows = if cycles.is_empty() {
        Vec::new()
    } else {
        let placeholders: Vec<String> = (3..3 + cycles.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT task_id, cycle_start, complete_num, status FROM center_task_progress \
             WHERE app_id = $1 AND user_id = $2 AND cycle_start IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(app_id).bind(user_id);
        for c in cycles {
            query = query.bind(*c);
        }
        query.fetch_all(&db.read).await?
    };
    let mut progress: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for r in &rows {
        progress.insert(
            (r.try_get("task_id")?, r.try_get("cycle_start")?),
            (r.try_get("complete_num")?, r.try_get("status")?),
        );
    }
    Ok(progress)
}

/// Moves the user's progress in `cycle` from 1 (to claim) to 3 (done); answers the rows moved.
pub(crate) async fn mark_claimed(
    db: &Db,
    app_id: &str,
    task_id: &str,
    user_id: i64,
    cycle: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE center_task_progress SET status = 3, updated_at = $5 \
         WHERE app_id = $1 AND task_id = $2 AND user_id = $3 AND cycle_start = $4 \
         AND status = 1",
    )
    .bind(app_id)
    .bind(task_id)
    .bind(user_id)
    .bind(cycle)
    .bind(now)
    .execute(&db.write)
    .await?
    .rows_affected())
}

/// Sets the user's progress on the task in the cycle `cycle`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_progress(
    db: &Db,
    app_id: &str,
    task_id: &str,
    user_id: i64,
    cycle: String,
    complete_num: i64,
    status: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO center_task_progress (app_id, task_id, user_id, cycle_start, complete_num, \
         status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (app_id, task_id, user_id, cycle_start) DO UPDATE SET \
         complete_num = excluded.complete_num, status = excluded.status, \
         updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(task_id)
    .bind(user_id)
    .bind(cycle)
    .bind(complete_num)
    .bind(status)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}
