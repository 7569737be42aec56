//! The red-packet handles every grab route reads: who owns a card or pool (so a grab reads no
//! row), and the radio of recent winners.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use points_actors::redpack::CardConfig;

/// Most radio lines kept per app.
pub const RADIO_ENTRIES_MAX: usize = 20;

/// What a grab route checks before it asks the actor: the card's configuration (app, session,
/// reward type) or the pool's app, remembered when the actor is loaded so a grab reads no row.
#[derive(Default)]
pub struct Owners {
    // std Mutex: lookups and inserts only.
    pub cards: Mutex<HashMap<i64, CardConfig>>,
    /// A pool's app and the lease epoch its actor was started under.
    pub pools: Mutex<HashMap<i64, (String, i64)>>,
}

impl Owners {
    /// The configuration the card's actor was started with.
    pub fn card(&self, id: i64) -> Option<CardConfig> {
        self.cards.lock().ok()?.get(&id).cloned()
    }

    /// The lease epoch the card's actor was started under (`Some(None)`: unfenced, a single
    /// node), if it was started.
    pub fn card_epoch(&self, id: i64) -> Option<Option<i64>> {
        let cards = self.cards.lock().ok()?;
        cards.get(&id).map(|c| c.fence.as_ref().map(|f| f.epoch))
    }

    /// The app of the pool's actor.
    pub fn pool(&self, id: i64) -> Option<String> {
        self.pools.lock().ok()?.get(&id).map(|(app, _)| app.clone())
    }

    /// The lease epoch the pool's actor was started under.
    pub fn pool_epoch(&self, id: i64) -> Option<i64> {
        self.pools.lock().ok()?.get(&id).map(|(_, epoch)| *epoch)
    }
}

/// Recent winners per app, newest first, loaded from the database on first read.
#[derive(Default)]
pub struct Radio {
    // std Mutex: pushes and copies only, never an await.
    entries: Mutex<HashMap<String, VecDeque<String>>>,
}

impl Radio {
    pub fn push(&self, app_id: &str, line: String) {
        if let Ok(mut entries) = self.entries.lock() {
            // Only apps already loaded keep a live list; others read the database on first use.
            if let Some(list) = entries.get_mut(app_id) {
                list.push_front(line);
                list.truncate(RADIO_ENTRIES_MAX);
            }
        }
    }

    pub fn get(&self, app_id: &str) -> Option<Vec<String>> {
        let entries = self.entries.lock().ok()?;
        entries.get(app_id).map(|l| l.iter().cloned().collect())
    }

    pub fn set(&self, app_id: &str, lines: Vec<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .entry(app_id.to_string())
                .or_insert_with(|| lines.into_iter().collect());
        }
    }
}
