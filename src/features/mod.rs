//! Everyday features: sign-in, tasks, the prize shop. Each module holds its SQL, its routes in
//! every dialect that serves it (000, 001, 003) and its admin routes.

use crate::http::ApiDoc;

/// Registers every feature route, recording each in `doc`.
pub fn routes(_cfg: &mut actix_web::web::ServiceConfig, _doc: &mut ApiDoc) {}
