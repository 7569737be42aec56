//! Live activities: red packets, lottery boards, blind boxes, morning check-in rounds, walk and
//! leaderboards. Each is a folder: `store.rs` with its SQL, `mod.rs` with its logic, and one
//! `routes_<dialect>.rs` per dialect that serves it (000, 003, admin); the per-instance actors
//! live in `points-actors` and are found through the registries of [`crate::runtime`].

pub mod blindbox;
pub mod leaderboard;
pub mod lottery;
pub mod morning;
pub mod redpack;
pub mod walk;

pub use crate::clock::{parse_time_of_day, Moment};
use crate::http::ApiDoc;

pub use crate::runtime::{Activities, InFlight, InFlightKeys};

/// Stops serving an activity whose lease this node lost (its keeper could not renew it, or a
/// commit found a newer owner): its actor stops, and the next request for it goes to the owner.
pub fn step_down(state: &crate::state::AppState, activity: &str) {
    if let Some(app_id) = activity.strip_prefix("lottery:") {
        lottery::retire_board(state, app_id);
    } else if let Some(app_id) = activity.strip_prefix("blindbox:") {
        blindbox::retire_set(state, app_id);
    } else if let Some(app_id) = activity.strip_prefix("morning:") {
        morning::retire_rounds(state, app_id);
    } else {
        redpack::step_down(state, activity);
    }
}

/// Registers every activity route (000, 003 and admin), recording each in `doc`.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig, doc: &mut ApiDoc) {
    redpack::routes(cfg, doc);
    lottery::routes(cfg, doc);
    blindbox::routes(cfg, doc);
    walk::routes(cfg, doc);
    leaderboard::routes(cfg, doc);
    morning::routes(cfg, doc);
}
