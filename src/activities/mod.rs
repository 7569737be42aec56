//! Live activities: red packets, lottery boards, blind boxes, morning check-in rounds, walk and
//! leaderboards. Each module holds its SQL, its 000/003 routes and its admin routes; the
//! per-instance actors live in `points-actors` and are found through the registries here.

pub mod blindbox;
pub mod leaderboard;
pub mod lottery;
pub mod morning;
pub mod redpack;
pub mod walk;

use chrono::Timelike;
use points_actors::activity::Registry;
use points_actors::redpack::{CardActor, PoolActor};

use crate::clock::{now_ms, BizClock};
use crate::http::ApiDoc;

/// The running activity actors, one registry per kind.
#[derive(Default)]
pub struct Activities {
    pub cards: Registry<i64, CardActor>,
    pub pools: Registry<i64, PoolActor>,
    pub radio: redpack::Radio,
    pub owners: redpack::Owners,
    /// Lottery boards, one per app id.
    pub lotteries: Registry<String, points_actors::lottery::LotteryActor>,
    /// Blind boxes, one actor per app id.
    pub boxes: Registry<String, points_actors::blindbox::BoxActor>,
    /// Walk exchanges being committed in this process.
    pub walk: walk::Walk,
    /// Morning check-in rounds (one actor per app and period) and the apps' rules.
    pub morning: morning::Morning,
    /// 000 task finishes in progress, one lock per (app, task, user).
    pub task_finishes: crate::features::tasks::FinishLocks,
    /// Sign-ins and sign-in pop rewards being committed in this process.
    pub signin: crate::features::signin::Signing,
}

/// Ledger keys being committed in this process: a second request for a key already on its way
/// to the ledger is refused at once instead of racing the first (where it would be answered as a
/// replay). The ledger's key stays the guard across processes.
#[derive(Default)]
pub struct InFlightKeys {
    // std Mutex: insert and remove only, never held across an await.
    keys: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Holds a key in [`InFlightKeys`] until dropped.
pub struct InFlight<'a> {
    owner: &'a InFlightKeys,
    key: String,
}

impl InFlightKeys {
    /// Takes `key`, or `None` while another request holds it.
    pub fn begin(&self, key: &str) -> Option<InFlight<'_>> {
        let mut keys = self.keys.lock().ok()?;
        keys.insert(key.to_string()).then(|| InFlight {
            owner: self,
            key: key.to_string(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.owner.keys.lock() {
            keys.remove(&self.key);
        }
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

/// The present moment as activities see it.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Epoch ms.
    pub ms: i64,
    /// The business day, `YYYY-MM-DD`.
    pub day: String,
    /// Seconds since the start of the business day (wall clock).
    pub second_of_day: u32,
}

impl Moment {
    pub fn now(clock: &BizClock) -> Self {
        Self::at(clock, now_ms())
    }

    pub fn at(clock: &BizClock, ms: i64) -> Self {
        let local = clock.local(ms);
        Moment {
            ms,
            day: local.format("%Y-%m-%d").to_string(),
            second_of_day: local.num_seconds_from_midnight(),
        }
    }
}

/// Parses `HH:MM` or `HH:MM:SS` into seconds of the day; `24:00:00` is the end of the day.
pub fn parse_time_of_day(raw: &str) -> Option<u32> {
    let parts: Vec<&str> = raw.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let n: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let seconds = n[0] * 3600 + n[1] * 60 + n.get(2).copied().unwrap_or(0);
    let valid = (n[0] < 24 && n[1] < 60 && n.get(2).is_none_or(|s| *s < 60)) || seconds == 86_400;
    valid.then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("08:00:00"), Some(28_800));
        assert_eq!(parse_time_of_day("05:30"), Some(19_800));
        assert_eq!(parse_time_of_day("24:00:00"), Some(86_400));
        for bad in [
            "",
            "8:00",
            "24:01",
            "12:60",
            "aa:bb",
            "12:00:00:00",
            "-1:00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
