//! Blind boxes: the 000 routes `v2/box/show.json` and `v2/box/get.json`, the admin routes that
//! configure an app's boxes, the loader that starts the app's [`BoxActor`], and the count of
//! tasks a user finished today that unlocks the boxes.
//!
//! The actor's state is rebuilt here from the database: each box's external payouts (the
//! `box:<app>:<name>:alipay` counter) and today's openings (`ledger_entries` of kind `box` with
//! today's per-box reference).

use std::collections::{HashMap, HashSet};

use actix::Addr;
use actix_web::web;
use points_actors::activity::{ActivityError, Refusal, Retire};
use points_actors::blindbox::{
    BoxActor, BoxConfig, BoxPayout, BoxSpec, BoxState, OpenBox, ShowBoxes, BOXES_MAX, BOX_KIND,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use utoipa::ToSchema;

use crate::activities::lottery::counter_values;
use crate::activities::Moment;
use crate::clock::now_ms;
use crate::error::AppError;
use crate::facades::giftpoint::{ok, ok_with, own_user, Gift, Reply, UserReq};
use crate::facades::{GET, GET_POST, POST};
use crate::http::{lenient, AdminKey, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::points;
use crate::state::AppState;

/// Entry kind of task rewards: what counts as a finished task.
pub const TASK_KIND: &str = "task";
/// Longest box name.
pub const BOX_NAME_CHARS_MAX: usize = 64;
/// Most tasks a box may require.
pub const BOX_TASK_SUM_MAX: i64 = 1_000;
/// Most units (集分宝 or points) one opening may pay, and most external payouts of a box.
pub const BOX_AMOUNT_MAX: i64 = 1_000_000_000;

/// How many tasks the user finished today (business day): their ledger entries of kind `task`
/// created since today's midnight, business time.
pub async fn finished_tasks_today(state: &AppState, user_id: i64) -> Result<i64, AppError> {
    let (start, end) = state.clock.day_bounds(state.clock.date(now_ms()));
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ledger_entries \
         WHERE user_id = $1 AND kind = $2 AND created_at >= $3 AND created_at < $4",
    )
    .bind(user_id)
    .bind(TASK_KIND)
    .bind(start)
    .bind(end)
    .fetch_one(&state.stores.db.read)
    .await?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Storage

/// The app's boxes, in their configured order.
async fn boxes_of(state: &AppState, app_id: &str) -> Result<Vec<BoxSpec>, sqlx::Error> {
    sqlx::query(
        "SELECT name, task_sum, alipay_point_valve, alipay_point_unit, points_unit \
         FROM blind_boxes WHERE app_id = $1 ORDER BY sort, name",
    )
    .bind(app_id)
    .fetch_all(&state.stores.db.read)
    .await?
    .iter()
    .map(|r| {
        Ok(BoxSpec {
            name: r.try_get(0)?,
            task_sum: r.try_get(1)?,
            alipay_point_valve: r.try_get(2)?,
            alipay_point_unit: r.try_get(3)?,
            points_unit: r.try_get(4)?,
        })
    })
    .collect()
}

/// External payouts so far of each box: its counter.
async fn external_paid(
    state: &AppState,
    app_id: &str,
    boxes: &[BoxSpec],
) -> Result<Vec<i64>, AppError> {
    let keys: Vec<String> = boxes
        .iter()
        .map(|b| BoxActor::external_counter(app_id, &b.name))
        .collect();
    counter_values(state, &keys).await
}

/// Today's committed openings: (box index, user) pairs.
async fn opened_on(
    state: &AppState,
    app_id: &str,
    boxes: &[BoxSpec],
    day: &str,
) -> Result<HashSet<(usize, i64)>, AppError> {
    if boxes.is_empty() {
        return Ok(HashSet::new());
    }
    let references: HashMap<String, usize> = boxes
        .iter()
        .enumerate()
        .map(|(i, b)| (BoxActor::reference(day, &b.name), i))
        .collect();
    let placeholders: Vec<String> = (3..3 + references.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT user_id, reference FROM ledger_entries \
         WHERE app_id = $1 AND kind = $2 AND reference IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(app_id).bind(BOX_KIND);
    for reference in references.keys() {
        query = query.bind(reference);
    }
    let rows = query.fetch_all(&state.stores.db.read).await?;
    let mut opened = HashSet::new();
    for r in &rows {
        let user_id: i64 = r.try_get(0)?;
        let reference: String = r.try_get(1)?;
        if let Some(&i) = references.get(&reference) {
            opened.insert((i, user_id));
        }
    }
    Ok(opened)
}

/// The app's box actor, started from the database on first use.
async fn box_actor(state: &AppState, app_id: &str) -> Result<Addr<BoxActor>, AppError> {
    state
        .activities
        .boxes
        .get_or_start(&app_id.to_string(), || async {
            let boxes = boxes_of(state, app_id).await?;
            let day = Moment::now(&state.clock).day;
            let today = BoxState {
                opened: opened_on(state, app_id, &boxes, &day).await?,
                external_paid: external_paid(state, app_id, &boxes).await?,
                day,
            };
            let config = BoxConfig {
                app_id: app_id.to_string(),
                boxes,
            };
            Ok::<_, AppError>(BoxActor::new(config, today, state.ledger.clone()))
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// 000 routes

/// One box as `show` presents it.
#[derive(Serialize, ToSchema)]
pub struct BoxItem {
    pub box_name: String,
    /// Tasks to finish today before the box opens.
    pub task_sum: i64,
    /// 集分宝 paid while the external stock lasts.
    pub alipay_point_unit: i64,
    /// Points paid after.
    pub point_unit: i64,
    /// Opened by the caller today.
    pub is_get: bool,
}

/// A box's request.
#[derive(Deserialize, ToSchema)]
pub struct BoxGetReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub box_name: Option<String>,
}

/// What an opening paid.
#[derive(Serialize, ToSchema)]
pub struct BoxGetData {
    /// `alipay_point` (集分宝, delivered outside) or `point`.
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
}

async fn show(state: web::Data<AppState>, caller: Caller<Gift>, p: Params<UserReq, Gift>) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let actor = box_actor(&state, &caller.session.app_id).await?;
    let done = finished_tasks_today(&state, caller.session.user_id).await?;
    let boxes = actor
        .send(ShowBoxes {
            user_id: Some(caller.session.user_id),
            day: Moment::now(&state.clock).day,
        })
        .await?;
    // The next box not yet reachable: the fewest tasks still missing for any locked box.
    let diff = boxes
        .iter()
        .map(|b| b.spec.task_sum - done)
        .filter(|&d| d > 0)
        .min()
        .unwrap_or(0);
    let items: Vec<BoxItem> = boxes
        .into_iter()
        .map(|b| BoxItem {
            box_name: b.spec.name,
            task_sum: b.spec.task_sum,
            alipay_point_unit: b.spec.alipay_point_unit,
            point_unit: b.spec.points_unit,
            is_get: b.opened,
        })
        .collect();
    Ok(ok_with(
        json!(items),
        &[("done_tasks_sum", json!(done)), ("diff", json!(diff))],
    ))
}

async fn get(
    state: web::Data<AppState>,
    caller: Caller<Gift>,
    p: Params<BoxGetReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    own_user(&caller, &p.user_id, &p.app_id)?;
    let box_name = p
        .box_name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::missing("box_name"))?;
    let app_id = caller.session.app_id.clone();
    let actor = box_actor(&state, &app_id).await?;
    let done = finished_tasks_today(&state, caller.session.user_id).await?;
    let expires_at = points::default_expiry(&state, &app_id).await?;
    let opened = actor
        .send(OpenBox {
            user_id: caller.session.user_id,
            box_name: box_name.clone(),
            day: Moment::now(&state.clock).day,
            done_tasks: done,
            expires_at,
        })
        .await?
        .map_err(|e| match e {
            ActivityError::Refused(Refusal::Other { .. }) => {
                AppError::NotFound(format!("blind box {box_name:?}"))
            }
            other => other.into(),
        })?;
    let (kind, amount) = match opened.payout {
        BoxPayout::External(units) => ("alipay_point", units),
        BoxPayout::Points(points) => ("point", points),
    };
    Ok(ok(json!(BoxGetData {
        kind: kind.into(),
        amount,
    })))
}

// ---------------------------------------------------------------------------------------------
// Admin routes

/// An app's whole list of boxes.
#[derive(Deserialize, ToSchema)]
pub struct BoxesReq {
    /// Default `default`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    pub boxes: Option<Vec<BoxReq>>,
}

/// One box of the list.
#[derive(Deserialize, ToSchema)]
pub struct BoxReq {
    /// Unique among the app's boxes.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// Tasks to finish today, 0-1000.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub task_sum: Option<i64>,
    /// External stock: how many openings are paid in 集分宝, over the box's life.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub alipay_point_valve: Option<i64>,
    /// 集分宝 per opening while the external stock lasts.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub alipay_point_unit: Option<i64>,
    /// Points per opening after.
    #[serde(default, alias = "point_unit", deserialize_with = "lenient::opt_i64")]
    pub points_unit: Option<i64>,
}

/// `app_id` of an admin read.
#[derive(Deserialize, ToSchema)]
pub struct BoxesQuery {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
}

/// A stored box with its external stock.
#[derive(Serialize, ToSchema)]
pub struct BoxAdminView {
    pub name: String,
    pub task_sum: i64,
    pub alipay_point_valve: i64,
    pub alipay_point_unit: i64,
    pub points_unit: i64,
    /// External payouts committed.
    pub alipay_paid: i64,
    /// External payouts left.
    pub alipay_left: i64,
}

fn ranged(v: Option<i64>, field: &str, max: i64) -> Result<i64, AppError> {
    let v = v.unwrap_or(0);
    if !(0..=max).contains(&v) {
        return Err(AppError::invalid(format!(
            "{field} must be between 0 and {max}"
        )));
    }
    Ok(v)
}

/// Checks a whole list of boxes.
fn parse_boxes(raw: Vec<BoxReq>) -> Result<Vec<BoxSpec>, AppError> {
    if raw.len() > BOXES_MAX {
        return Err(AppError::invalid(format!(
            "boxes must hold at most {BOXES_MAX} boxes"
        )));
    }
    let mut names = HashSet::new();
    let mut boxes = Vec::with_capacity(raw.len());
    for (i, b) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("boxes[{i}].{field}");
        let name = b
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| AppError::missing(&at("name")))?;
        if name.chars().count() > BOX_NAME_CHARS_MAX || name.chars().any(char::is_control) {
            return Err(AppError::invalid(format!(
                "{} must be 1-{BOX_NAME_CHARS_MAX} printable characters",
                at("name")
            )));
        }
        if !names.insert(name.clone()) {
            return Err(AppError::invalid(format!("box {name:?} appears twice")));
        }
        let spec = BoxSpec {
            task_sum: ranged(b.task_sum, &at("task_sum"), BOX_TASK_SUM_MAX)?,
            alipay_point_valve: ranged(
                b.alipay_point_valve,
                &at("alipay_point_valve"),
                BOX_AMOUNT_MAX,
            )?,
            alipay_point_unit: ranged(
                b.alipay_point_unit,
                &at("alipay_point_unit"),
                BOX_AMOUNT_MAX,
            )?,
            points_unit: ranged(b.points_unit, &at("points_unit"), BOX_AMOUNT_MAX)?,
            name,
        };
        let pays_external = spec.alipay_point_unit > 0 && spec.alipay_point_valve > 0;
        if !pays_external && spec.points_unit == 0 {
            return Err(AppError::invalid(format!(
                "boxes[{i}] pays nothing: give it points_unit, or alipay_point_unit with an alipay_point_valve"
            )));
        }
        boxes.push(spec);
    }
    Ok(boxes)
}

fn app_of(raw: Option<String>) -> String {
    raw.filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The stored boxes with their committed external payouts, for operators.
async fn admin_view(state: &AppState, app_id: &str) -> Result<Vec<BoxAdminView>, AppError> {
    let boxes = boxes_of(state, app_id).await?;
    let paid = external_paid(state, app_id, &boxes).await?;
    Ok(boxes
        .into_iter()
        .zip(paid)
        .map(|(b, paid)| BoxAdminView {
            alipay_left: (b.alipay_point_valve - paid).max(0),
            alipay_paid: paid,
            name: b.name,
            task_sum: b.task_sum,
            alipay_point_valve: b.alipay_point_valve,
            alipay_point_unit: b.alipay_point_unit,
            points_unit: b.points_unit,
        })
        .collect())
}

async fn save_boxes(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<BoxesReq, Gift>,
) -> Reply {
    let p = p.into_inner();
    let app_id = app_of(p.app_id);
    let boxes = parse_boxes(p.boxes.ok_or_else(|| AppError::missing("boxes"))?)?;
    crate::auth::app(&state, &app_id).await?;
    let now = now_ms();
    let mut tx = state.stores.db.write.begin().await?;
    sqlx::query("DELETE FROM blind_boxes WHERE app_id = $1")
        .bind(&app_id)
        .execute(&mut *tx)
        .await?;
    for (sort, b) in boxes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO blind_boxes (app_id, name, task_sum, alipay_point_valve, \
             alipay_point_unit, points_unit, sort, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&app_id)
        .bind(&b.name)
        .bind(b.task_sum)
        .bind(b.alipay_point_valve)
        .bind(b.alipay_point_unit)
        .bind(b.points_unit)
        .bind(sort as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // The running actor holds the old list: stop it once its pending openings are answered, so
    // the next request starts one from the new list.
    if let Some(old) = state.activities.boxes.forget(&app_id) {
        // An error only means the actor already stopped.
        let _ = old.send(Retire).await;
    }
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

async fn get_boxes(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<BoxesQuery, Gift>,
) -> Reply {
    let app_id = app_of(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

/// Registers the blind-box routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "000 blind boxes";
    r.add::<UserReq, Vec<BoxItem>, _, _>(
        RouteDoc {
            path: "/v2/box/show.json",
            methods: GET_POST,
            tag,
            summary: "盲盒列表: the app's blind boxes",
            description: "Bearer token required; `user_id` must be the token's user (403 otherwise, 401 without a valid token). `data`: `[{box_name, task_sum, alipay_point_unit, point_unit, is_get}]` (`is_get`: opened by the caller today). Beside `data`: `done_tasks_sum` (tasks the caller finished today, business day) and `diff` (tasks still needed for the next box not yet reachable; 0 when every box is reachable).",
        },
        show,
    );
    r.add::<BoxGetReq, BoxGetData, _, _>(
        RouteDoc {
            path: "/v2/box/get.json",
            methods: GET_POST,
            tag,
            summary: "开盲盒: open a box",
            description: "Opens `box_name` once today's finished tasks reach its `task_sum`, once per box per user per business day. Pays `alipay_point_unit` 集分宝 (`type: \"alipay_point\"`, recorded as a fulfilment order) while the box's external stock (`alipay_point_valve`) lasts, then `point_unit` points (`type: \"point\"`). Refusals (nothing changed): 410 not enough tasks finished today (the message says how many more) or already opened today, 404 no such box, 429 busy, 400 missing `box_name`, 401/403 token or user mismatch.",
        },
        get,
    );
    let tag = "admin blind boxes";
    r.add::<BoxesReq, Vec<BoxAdminView>, _, _>(
        RouteDoc {
            path: "/admin/boxes",
            methods: POST,
            tag,
            summary: "Replace an app's blind boxes",
            description: "`X-Admin-Key` required. `boxes`: 0-20 of `{name, task_sum, alipay_point_valve, alipay_point_unit, points_unit}` in display order; `name` unique (1-64 characters), `task_sum` 0-1000, the others 0-1000000000, and every box must pay something. `alipay_point_valve` is the external stock over the box's life: openings already paid in 集分宝 count against it. Any violation answers 400 and changes nothing. The running boxes pick the new list up at once.",
        },
        save_boxes,
    );
    r.add::<BoxesQuery, Vec<BoxAdminView>, _, _>(
        RouteDoc {
            path: "/admin/boxes",
            methods: GET,
            tag,
            summary: "An app's blind boxes with their external stock",
            description: "`X-Admin-Key` required; `app_id` defaults to `default`. Each box shows `alipay_paid` (committed external payouts) and `alipay_left`.",
        },
        get_boxes,
    );
}
