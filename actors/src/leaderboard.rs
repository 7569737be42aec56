//! The leaderboard actor: every live board of every app, in memory, ranked.
//!
//! Boards:
//! - **points**, one per app: each user's balance. Fed by the ledger's committed batches
//!   ([`Committed`], registered with the ledger's `Listen`). A replayed change arrives again with
//!   its original entry id, so a user's score only moves for an entry id newer than the last one
//!   applied; a stale replay can never roll a score back.
//! - **steps**, one per app and business day: the most steps a user reported that day
//!   ([`ReportSteps`], sent by the walk routes after their write).
//! - **invites**, one per app and business day: how many `invite` ledger entries a user earned
//!   that day (fed by the same committed batches).
//!
//! Ties go to the earliest: the user who reached the score first ranks first (then the lower
//! user id, so the order is total). The actor holds no connection: the server crate reads the
//! boards from the database and sends them as [`Rebuild`] at start-up and periodically (which
//! also picks up changes committed by other processes' ledger actors); a rebuild merges by
//! entry id, so a snapshot read before a commit never undoes that commit.
//!
//! Publishing is pulled, not pushed: the server asks [`TakeChanged`] on a short interval, gets the
//! top of every board that changed since, and hands it to the websocket hub. The actor itself
//! never waits on I/O.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use crate::ledger::Committed;

/// The ledger entry kind counted by the invites boards.
pub const INVITE_KIND: &str = "invite";
/// Most entries one [`Standings`] or [`TakeChanged`] answer lists.
pub const LEADERBOARD_TOP_MAX: usize = 100;
/// Most messages queued in the actor's mailbox (committed batches, reports, queries).
pub const LEADERBOARD_MAILBOX_MAX: usize = 65_536;

/// Which board of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoardKey {
    /// Balances.
    Points,
    /// Steps of one business day (`YYYY-MM-DD`).
    Steps(String),
    /// Invites of one business day (`YYYY-MM-DD`).
    Invites(String),
}

impl BoardKey {
    /// The board's name: `points`, `steps` or `invites`.
    pub fn name(&self) -> &'static str {
        match self {
            BoardKey::Points => "points",
            BoardKey::Steps(_) => "steps",
            BoardKey::Invites(_) => "invites",
        }
    }

    /// The business day of a daily board.
    pub fn day(&self) -> Option<&str> {
        match self {
            BoardKey::Points => None,
            BoardKey::Steps(d) | BoardKey::Invites(d) => Some(d),
        }
    }
}

/// One user's score on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Points, steps or invites.
    pub value: i64,
    /// When the user reached `value` (epoch ms); earlier wins a tie.
    pub reached_at: i64,
    /// The newest ledger entry id applied (points, invites); 0 for steps.
    pub version: i64,
}

/// A user's place on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranked {
    /// 1-based.
    pub rank: usize,
    pub user_id: i64,
    pub score: Score,
}

/// One ranked board: scores by user and the ranking order. Users with a score of 0 or less are
/// remembered (their version matters) but not ranked.
#[derive(Debug, Default, Clone)]
pub struct Board {
    scores: HashMap<i64, Score>,
    // (higher value first, earlier first, lower user id first).
    order: BTreeSet<(Reverse<i64>, i64, i64)>,
}

impl Board {
    fn order_key(user_id: i64, s: &Score) -> (Reverse<i64>, i64, i64) {
        (Reverse(s.value), s.reached_at, user_id)
    }

    /// The user's score, ranked or not.
    pub fn get(&self, user_id: i64) -> Option<Score> {
        self.scores.get(&user_id).copied()
    }

    /// Sets the user's score.
    pub fn set(&mut self, user_id: i64, score: Score) {
        if let Some(old) = self.scores.insert(user_id, score) {
            self.order.remove(&Self::order_key(user_id, &old));
        }
        if score.value > 0 {
            self.order.insert(Self::order_key(user_id, &score));
        }
    }

    /// How many users are ranked.
    pub fn ranked(&self) -> usize {
        self.order.len()
    }

    /// The first `n` users.
    pub fn top(&self, n: usize) -> Vec<Ranked> {
        self.order
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, (_, _, user_id))| Ranked {
                rank: i + 1,
                user_id: *user_id,
                score: self.scores.get(user_id).copied().unwrap_or(Score {
                    value: 0,
                    reached_at: 0,
                    version: 0,
                }),
            })
            .collect()
    }

    /// The user's place, if ranked. Counting the users ahead walks the order, O(rank): cheap
    /// next to the request that asks, for boards of up to a few hundred thousand users.
    pub fn rank(&self, user_id: i64) -> Option<Ranked> {
        let score = self.scores.get(&user_id)?;
        if score.value <= 0 {
            return None;
        }
        let ahead = self.order.range(..Self::order_key(user_id, score)).count();
        Some(Ranked {
            rank: ahead + 1,
            user_id,
            score: *score,
        })
    }

    /// Merges a snapshot read from the database: for versioned boards (points, invites) a
    /// snapshot score wins unless memory already holds a newer entry; for steps the higher
    /// (then the earlier) score wins. Users only in memory stay: they changed after the read.
    fn merge(&mut self, snapshot: Vec<(i64, Score)>, versioned: bool) {
        for (user_id, fresh) in snapshot {
            let take = match self.scores.get(&user_id) {
                None => true,
                Some(old) if versioned => fresh.version >= old.version,
                Some(old) => {
                    fresh.value > old.value
                        || (fresh.value == old.value && fresh.reached_at < old.reached_at)
                }
            };
            if take {
                self.set(user_id, fresh);
            }
        }
    }
}

/// Turns an instant (epoch ms) into its business day, `YYYY-MM-DD`.
pub type DayOf = Arc<dyn Fn(i64) -> String + Send + Sync>;

/// The actor. See the module documentation.
pub struct LeaderboardActor {
    boards: HashMap<(String, BoardKey), Board>,
    changed: HashSet<(String, BoardKey)>,
    day_of: DayOf,
    /// The business day of the last [`TakeChanged`]: when it moves, every app's daily boards
    /// are published again (empty for the new day).
    today: String,
    /// Woken when a board changes, so the publisher sends it at once instead of on its next
    /// tick.
    on_change: Option<Arc<tokio::sync::Notify>>,
}

impl LeaderboardActor {
    /// An actor with empty boards; send it a [`Rebuild`] with what the database holds.
    pub fn new(day_of: DayOf) -> Self {
        Self {
            boards: HashMap::new(),
            changed: HashSet::new(),
            day_of,
            today: String::new(),
            on_change: None,
        }
    }

    /// Wakes `notify` whenever a board changes.
    pub fn notify_changes(mut self, notify: Arc<tokio::sync::Notify>) -> Self {
        self.on_change = Some(notify);
        self
    }

    fn board(&mut self, app_id: &str, key: BoardKey) -> &mut Board {
        self.boards.entry((app_id.to_string(), key)).or_default()
    }

    fn touch(&mut self, app_id: &str, key: BoardKey) {
        self.changed.insert((app_id.to_string(), key));
        if let Some(notify) = &self.on_change {
            notify.notify_one();
        }
    }
}

impl Actor for LeaderboardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(LEADERBOARD_MAILBOX_MAX);
    }
}

impl Handler<Committed> for LeaderboardActor {
    type Result = ();

    /// Applies a committed ledger batch: balances to the points boards, invite entries to the
    /// invites boards. Entries not newer than what a board already applied are replays.
    fn handle(&mut self, msg: Committed, _ctx: &mut Self::Context) {
        for c in msg.0.iter() {
            let o = &c.outcome;
            // Every change counts, zero amounts included: a claim's main entry is zero while its
            // ticket leg moved the balance, and `balance_after` is the balance after both.
            let board = self.board(&c.app_id, BoardKey::Points);
            let old = board.get(c.user_id);
            if old.is_none_or(|old| o.entry_id > old.version) {
                // A change that leaves the score where it was keeps the time it was reached.
                let reached_at = match old {
                    Some(old) if old.value == o.balance_after => old.reached_at,
                    _ => o.created_at,
                };
                board.set(
                    c.user_id,
                    Score {
                        value: o.balance_after,
                        reached_at,
                        version: o.entry_id,
                    },
                );
                if old.map(|s| s.value) != Some(o.balance_after) {
                    self.touch(&c.app_id, BoardKey::Points);
                }
            }
            if c.kind == INVITE_KIND {
                let key = BoardKey::Invites((self.day_of)(o.created_at));
                let board = self.board(&c.app_id, key.clone());
                let old = board.get(c.user_id);
                if old.is_none_or(|old| o.entry_id > old.version) {
                    board.set(
                        c.user_id,
                        Score {
                            value: old.map_or(0, |s| s.value) + 1,
                            reached_at: o.created_at,
                            version: o.entry_id,
                        },
                    );
                    self.touch(&c.app_id, key);
                }
            }
        }
    }
}

/// A user's steps of one day, after the walk route stored them.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ReportSteps {
    pub app_id: String,
    /// Business day, `YYYY-MM-DD`.
    pub day: String,
    pub user_id: i64,
    /// The day's most steps as stored (the maximum reported so far).
    pub steps: i64,
    /// When that maximum was first reported (epoch ms).
    pub reached_at: i64,
}

impl Handler<ReportSteps> for LeaderboardActor {
    type Result = ();

    /// Raises the user's steps of the day; a lower or equal report changes nothing.
    fn handle(&mut self, msg: ReportSteps, _ctx: &mut Self::Context) {
        let key = BoardKey::Steps(msg.day);
        let board = self.board(&msg.app_id, key.clone());
        let higher = board.get(msg.user_id).is_none_or(|s| msg.steps > s.value);
        if higher {
            board.set(
                msg.user_id,
                Score {
                    value: msg.steps,
                    reached_at: msg.reached_at,
                    version: 0,
                },
            );
            self.touch(&msg.app_id, key);
        }
    }
}

/// A board as the database holds it.
#[derive(Debug, Clone)]
pub struct BoardSnapshot {
    pub app_id: String,
    pub key: BoardKey,
    pub scores: Vec<(i64, Score)>,
}

/// Boards read from the database, merged into memory (see [`Board`]'s merge rules), and daily
/// boards of days before `keep_from` (`YYYY-MM-DD`) dropped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Rebuild {
    pub boards: Vec<BoardSnapshot>,
    pub keep_from: String,
}

impl Handler<Rebuild> for LeaderboardActor {
    type Result = ();

    /// Merges the snapshots, drops old daily boards and marks what changed for publishing.
    fn handle(&mut self, msg: Rebuild, _ctx: &mut Self::Context) {
        for snap in msg.boards {
            let versioned = !matches!(snap.key, BoardKey::Steps(_));
            let before = self.boards.get(&(snap.app_id.clone(), snap.key.clone()));
            let before = before.map(|b| b.top(LEADERBOARD_TOP_MAX));
            let board = self.board(&snap.app_id, snap.key.clone());
            board.merge(snap.scores, versioned);
            if before.as_ref() != Some(&board.top(LEADERBOARD_TOP_MAX)) {
                self.touch(&snap.app_id, snap.key);
            }
        }
        let keep_from = msg.keep_from;
        self.boards
            .retain(|(_, key), _| key.day().is_none_or(|d| d >= keep_from.as_str()));
        self.changed
            .retain(|(_, key)| key.day().is_none_or(|d| d >= keep_from.as_str()));
    }
}

/// The top of a board and, optionally, one user's place on it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Standings")]
pub struct GetStandings {
    pub app_id: String,
    pub key: BoardKey,
    /// How many to list, at most [`LEADERBOARD_TOP_MAX`].
    pub top: usize,
    /// Whose place to find.
    pub user_id: Option<i64>,
}

/// What [`GetStandings`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standings {
    pub top: Vec<Ranked>,
    /// The user's place; `None` when not ranked (no score).
    pub mine: Option<Ranked>,
    /// How many users are ranked.
    pub ranked: usize,
}

impl Handler<GetStandings> for LeaderboardActor {
    type Result = MessageResult<GetStandings>;

    /// Reads the board; an unknown board is empty.
    fn handle(&mut self, msg: GetStandings, _ctx: &mut Self::Context) -> Self::Result {
        let top = msg.top.min(LEADERBOARD_TOP_MAX);
        let standings = match self.boards.get(&(msg.app_id, msg.key)) {
            None => Standings::default(),
            Some(board) => Standings {
                top: board.top(top),
                mine: msg.user_id.and_then(|u| board.rank(u)),
                ranked: board.ranked(),
            },
        };
        MessageResult(standings)
    }
}

/// Marks a board as changed so the next [`TakeChanged`] publishes it (a new subscriber wants
/// the current state without waiting for the next change).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Touch {
    pub app_id: String,
    pub key: BoardKey,
}

impl Handler<Touch> for LeaderboardActor {
    type Result = ();

    /// Marks the board changed.
    fn handle(&mut self, msg: Touch, _ctx: &mut Self::Context) {
        self.touch(&msg.app_id, msg.key);
    }
}

/// The top of every board that changed since the last call. Daily boards of other days than
/// `today` are not published; when `today` moves, every app's daily boards of the new day are.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<ChangedBoard>")]
pub struct TakeChanged {
    /// Business day, `YYYY-MM-DD`.
    pub today: String,
    /// How many to list per board, at most [`LEADERBOARD_TOP_MAX`].
    pub top: usize,
}

/// One board to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedBoard {
    pub app_id: String,
    pub key: BoardKey,
    pub top: Vec<Ranked>,
    pub ranked: usize,
}

impl Handler<TakeChanged> for LeaderboardActor {
    type Result = MessageResult<TakeChanged>;

    /// Drains the changed set.
    fn handle(&mut self, msg: TakeChanged, _ctx: &mut Self::Context) -> Self::Result {
        if self.today != msg.today {
            let apps: HashSet<String> = self.boards.keys().map(|(a, _)| a.clone()).collect();
            for app in apps {
                self.touch(&app, BoardKey::Steps(msg.today.clone()));
                self.touch(&app, BoardKey::Invites(msg.today.clone()));
            }
            self.today = msg.today.clone();
        }
        let top = msg.top.min(LEADERBOARD_TOP_MAX);
        let empty = Board::default();
        let mut out: Vec<ChangedBoard> = self
            .changed
            .drain()
            .filter(|(_, key)| key.day().is_none_or(|d| d == msg.today))
            .map(|(app_id, key)| {
                let board = self
                    .boards
                    .get(&(app_id.clone(), key.clone()))
                    .unwrap_or(&empty);
                ChangedBoard {
                    top: board.top(top),
                    ranked: board.ranked(),
                    app_id,
                    key,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.app_id, &a.key).cmp(&(&b.app_id, &b.key)));
        MessageResult(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CommittedChange, Outcome};

    fn score(value: i64, reached_at: i64, version: i64) -> Score {
        Score {
            value,
            reached_at,
            version,
        }
    }

    #[test]
    fn ties_go_to_the_earliest_and_ranks_count_from_one() {
        let mut b = Board::default();
        b.set(1, score(50, 300, 0));
        b.set(2, score(80, 500, 0));
        b.set(3, score(50, 100, 0));
        b.set(4, score(0, 50, 0));
        let order: Vec<i64> = b.top(10).iter().map(|r| r.user_id).collect();
        assert_eq!(order, vec![2, 3, 1], "zero scores are not ranked");
        assert_eq!(b.rank(1).map(|r| r.rank), Some(3));
        assert_eq!(b.rank(3).map(|r| r.rank), Some(2));
        assert_eq!(b.rank(4), None);
        assert_eq!(b.ranked(), 3);
        // Moving a user re-sorts it.
        b.set(1, score(90, 900, 0));
        assert_eq!(b.rank(1).map(|r| r.rank), Some(1));
        assert_eq!(b.top(1)[0].score.value, 90);
    }

    #[test]
    fn merge_keeps_newer_memory() {
        let mut b = Board::default();
        b.set(1, score(30, 10, 7));
        b.set(2, score(5, 10, 3));
        b.merge(
            vec![
                (1, score(20, 5, 6)),
                (2, score(9, 12, 4)),
                (3, score(1, 1, 1)),
            ],
            true,
        );
        assert_eq!(b.get(1), Some(score(30, 10, 7)), "memory is newer");
        assert_eq!(b.get(2), Some(score(9, 12, 4)), "snapshot is newer");
        assert_eq!(b.get(3), Some(score(1, 1, 1)));
        let mut steps = Board::default();
        steps.set(1, score(100, 50, 0));
        steps.merge(vec![(1, score(100, 40, 0))], false);
        assert_eq!(steps.get(1).map(|s| s.reached_at), Some(40));
        steps.merge(vec![(1, score(90, 10, 0))], false);
        assert_eq!(steps.get(1).map(|s| s.value), Some(100));
    }

    fn committed(entries: &[(i64, i64, i64, &str, i64)]) -> Committed {
        Committed(Arc::new(
            entries
                .iter()
                .map(|&(user, entry_id, balance, kind, at)| CommittedChange {
                    app_id: "a".into(),
                    user_id: user,
                    kind: kind.into(),
                    reference: String::new(),
                    outcome: Outcome {
                        entry_id,
                        balance_after: balance,
                        amount: 1,
                        created_at: at,
                    },
                    has_order: false,
                })
                .collect(),
        ))
    }

    #[actix::test]
    async fn committed_batches_feed_points_and_invites_and_replays_are_ignored() {
        let day_of: DayOf = Arc::new(|ms| format!("d{}", ms / 1000));
        let addr = LeaderboardActor::new(day_of).start();
        addr.send(committed(&[
            (1, 10, 50, "grant", 100),
            (2, 11, 70, "invite", 200),
        ]))
        .await
        .expect("send");
        // A replay of entry 10 after entry 12 must not roll user 1 back.
        addr.send(committed(&[(1, 12, 90, "grant", 300)]))
            .await
            .expect("send");
        addr.send(committed(&[
            (1, 10, 50, "grant", 100),
            (2, 11, 70, "invite", 200),
        ]))
        .await
        .expect("send");
        let points = addr
            .send(GetStandings {
                app_id: "a".into(),
                key: BoardKey::Points,
                top: 10,
                user_id: Some(2),
            })
            .await
            .expect("send");
        let top: Vec<(i64, i64)> = points
            .top
            .iter()
            .map(|r| (r.user_id, r.score.value))
            .collect();
        assert_eq!(top, vec![(1, 90), (2, 70)]);
        assert_eq!(points.mine.map(|m| m.rank), Some(2));
        let invites = addr
            .send(GetStandings {
                app_id: "a".into(),
                key: BoardKey::Invites("d0".into()),
                top: 10,
                user_id: None,
            })
            .await
            .expect("send");
        assert_eq!(invites.top.len(), 1);
        assert_eq!(
            invites.top[0].score.value, 1,
            "the replayed invite counts once"
        );

        let changed = addr
            .send(TakeChanged {
                today: "d0".into(),
                top: 10,
            })
            .await
            .expect("send");
        let names: Vec<&str> = changed.iter().map(|c| c.key.name()).collect();
        assert_eq!(names, vec!["points", "steps", "invites"]);
        let again = addr
            .send(TakeChanged {
                today: "d0".into(),
                top: 10,
            })
            .await
            .expect("send");
        assert!(again.is_empty(), "nothing changed since");
    }

    #[actix::test]
    async fn steps_keep_the_maximum_and_old_days_are_dropped() {
        let addr = LeaderboardActor::new(Arc::new(|_| String::new())).start();
        let report = |user: i64, steps: i64, at: i64, day: &str| ReportSteps {
            app_id: "a".into(),
            day: day.into(),
            user_id: user,
            steps,
            reached_at: at,
        };
        for msg in [
            report(1, 5000, 10, "2026-01-02"),
            report(1, 3000, 20, "2026-01-02"),
            report(2, 5000, 5, "2026-01-02"),
            report(3, 100, 5, "2026-01-01"),
        ] {
            addr.send(msg).await.expect("send");
        }
        let get = |day: &str| GetStandings {
            app_id: "a".into(),
            key: BoardKey::Steps(day.into()),
            top: 10,
            user_id: Some(1),
        };
        let s = addr.send(get("2026-01-02")).await.expect("send");
        let top: Vec<(i64, i64)> = s.top.iter().map(|r| (r.user_id, r.score.value)).collect();
        assert_eq!(
            top,
            vec![(2, 5000), (1, 5000)],
            "the earlier 5000 ranks first"
        );
        assert_eq!(s.mine.map(|m| m.rank), Some(2));
        addr.send(Rebuild {
            boards: Vec::new(),
            keep_from: "2026-01-02".into(),
        })
        .await
        .expect("send");
        let old = addr.send(get("2026-01-01")).await.expect("send");
        assert_eq!(old.ranked, 0);
        let kept = addr.send(get("2026-01-02")).await.expect("send");
        assert_eq!(kept.ranked, 2);
    }
}
