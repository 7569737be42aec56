//! The blind boxes' admin routes: `GET`/`POST /admin/boxes`, with the list's validation.

use std::collections::HashSet;

use actix_web::web;
use points_actors::blindbox::{BoxSpec, BOXES_MAX};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{
    external_paid, replace_boxes, store, BOX_AMOUNT_MAX, BOX_NAME_CHARS_MAX, BOX_TASK_SUM_MAX,
};
use crate::dialect::gift::{ok, Gift, Reply};
use crate::dialect::AppId;
use crate::dialect::{GET, POST};
use crate::error::AppError;
use crate::http::{lenient, AdminKey, ApiDoc, Params, RouteDoc, Routes};
use crate::state::AppState;

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

/// The stored boxes with their committed external payouts, for operators.
async fn admin_view(state: &AppState, app_id: &str) -> Result<Vec<BoxAdminView>, AppError> {
    let boxes = store::boxes_of(&state.stores.db, app_id).await?;
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
    let app_id = AppId::text(p.app_id);
    let boxes = parse_boxes(p.boxes.ok_or_else(|| AppError::missing("boxes"))?)?;
    crate::auth::app(&state, &app_id).await?;
    replace_boxes(&state, &app_id, &boxes).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

async fn get_boxes(
    state: web::Data<AppState>,
    _a: AdminKey<Gift>,
    p: Params<BoxesQuery, Gift>,
) -> Reply {
    let app_id = AppId::text(p.into_inner().app_id);
    crate::auth::app(&state, &app_id).await?;
    Ok(ok(json!(admin_view(&state, &app_id).await?)))
}

/// Registers the blind boxes' admin routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
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
