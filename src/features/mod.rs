//! Everyday features: sign-in, tasks, the prize shop, invites, content, profile, uploads. Each is
//! a folder: `store.rs` with its SQL, `mod.rs` with its logic, and one `routes_<dialect>.rs` per
//! dialect that serves it (000, 001, 003, admin).

pub mod content;
pub mod invites;
pub mod profile;
pub mod shop;
pub mod signin;
pub mod tasks;
pub mod uploads;

use crate::http::ApiDoc;

/// Registers every feature route, recording each in `doc`.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig, doc: &mut ApiDoc) {
    invites::routes(cfg, doc);
    content::routes(cfg, doc);
    profile::routes(cfg, doc);
    shop::routes(cfg, doc);
    signin::routes(cfg, doc);
    tasks::routes(cfg, doc);
    uploads::routes(cfg, doc);
}
