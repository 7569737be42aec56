//! Blind boxes: the 000 routes `v2/box/show.json` and `v2/box/get.json`, the admin routes that
//! configure an app's boxes, the loader that starts the app's [`BoxActor`], and the count of
//! tasks a user finished today that unlocks the boxes.
//!
//! The actor's state is rebuilt here from the database: each box's external payouts (the
//! `box:<app>:<name>:alipay` counter) and today's openings (`ledger_entries` of kind `box` with
//! today's per-box reference).
//!
//! This file holds the boxes' logic; `store.rs` their SQL, `routes_gift.rs` the 000 routes and
//! `routes_admin.rs` the admin routes.

mod routes_admin;
mod routes_gift;
mod store;

use std::collections::{HashMap, HashSet};

use actix::Addr;
use actix_web::web;
use points_actors::activity::Retire;
use points_actors::blindbox::{BoxActor, BoxConfig, BoxSpec, BoxState, BOX_KIND};

use crate::clock::now_ms;
use crate::clock::Moment;
use crate::error::AppError;
use crate::http::ApiDoc;
use crate::points::counter_values;
use crate::state::AppState;

pub use routes_admin::{BoxAdminView, BoxReq, BoxesQuery, BoxesReq};
pub use routes_gift::{BoxGetData, BoxGetReq, BoxItem};

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
    let count = crate::store::ledger::blindbox::entries_between(
        &state.stores.db,
        user_id,
        TASK_KIND,
        start,
        end,
    )
    .await?;
    Ok(count)
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
    let keys: Vec<&String> = references.keys().collect();
    let rows =
        crate::store::ledger::blindbox::openings(&state.stores.db, app_id, BOX_KIND, &keys).await?;
    let mut opened = HashSet::new();
    for r in &rows {
        let user_id = r.user_id;
        let reference = &r.reference;
        if let Some(&i) = references.get(reference) {
            opened.insert((i, user_id));
        }
    }
    Ok(opened)
}

/// The lease name of an app's blind boxes.
pub fn set_activity(app_id: &str) -> String {
    format!("blindbox:{app_id}")
}

/// Stops the app's box actor on this node; the next use starts one from the database.
pub(crate) fn retire_set(state: &AppState, app_id: &str) {
    if let Some(old) = state.activities.boxes.forget(&app_id.to_string()) {
        old.do_send(Retire);
    }
}

/// The app's box actor on the node that owns the boxes, started from the database on first use,
/// and the lease epoch it serves under; on another node, [`AppError::Elsewhere`].
async fn box_actor(state: &AppState, app_id: &str) -> Result<(Addr<BoxActor>, i64), AppError> {
    let activity = set_activity(app_id);
    let epoch = state.cluster.serve(&activity).await?;
    if state.activities.epochs.is_stale(&activity, epoch) {
        retire_set(state, app_id);
    }
    let actor = state
        .activities
        .boxes
        .get_or_start(&app_id.to_string(), || async {
            let boxes = store::boxes_of(&state.stores.db, app_id).await?;
            let day = Moment::now(&state.clock).day;
            let today = BoxState {
                opened: opened_on(state, app_id, &boxes, &day).await?,
                external_paid: external_paid(state, app_id, &boxes).await?,
                day,
            };
            let config = BoxConfig {
                app_id: app_id.to_string(),
                boxes,
                fence: state.cluster.fence(&activity, epoch),
            };
            state.activities.epochs.record(&activity, epoch);
            Ok::<_, AppError>(BoxActor::new(config, today, state.ledger.clone()))
        })
        .await?;
    Ok((actor, epoch))
}

/// Stores the app's new list of boxes, then retires the running actor so the next request starts
/// one from the new list.
async fn replace_boxes(state: &AppState, app_id: &str, boxes: &[BoxSpec]) -> Result<(), AppError> {
    let now = now_ms();
    store::save_boxes(&state.stores.db, app_id, boxes, now).await?;
    // The running actor holds the old list: stop it once its pending openings are answered, so
    // the next request starts one from the new list; on another node, end its lease.
    state.cluster.revoke(&set_activity(app_id)).await?;
    if let Some(old) = state.activities.boxes.forget(&app_id.to_string()) {
        // An error only means the actor already stopped.
        let _ = old.send(Retire).await;
    }
    Ok(())
}

/// Registers the blind-box routes.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    routes_gift::routes(cfg, doc);
    routes_admin::routes(cfg, doc);
}
