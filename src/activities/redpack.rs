//! Red packets: 000 sessions and cards, pools, the radio of recent winners, click counting, and
//! the admin routes that create them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::http::ApiDoc;

/// Most recent winners the radio keeps per app.
pub const RADIO_ENTRIES_MAX: usize = 20;

/// Recent winners per app, newest first.
#[derive(Default)]
pub struct Radio {
    // std Mutex: pushes and copies only, never an await.
    pub entries: Mutex<HashMap<String, VecDeque<String>>>,
}

pub fn routes(_cfg: &mut actix_web::web::ServiceConfig, _doc: &mut ApiDoc) {}
