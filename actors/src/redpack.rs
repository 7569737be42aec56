//! Red-packet actors: one per card (000's daily cards inside sessions) and one per pool (N
//! packets summing to T points, split at creation).
//!
//! Both decide a grab in memory — the user has not grabbed yet, something is left — reserve it,
//! send one [`Change`] to the ledger and answer after its commit. The change carries everything
//! that must hold together: the ticket (a leg), the packet (points, or a fulfilment order for
//! rewards paid outside), a stock counter with the card's daily stock as ceiling (or one counter
//! per pool packet), and an idempotency key of card+day+user (pool+user), so the database refuses
//! an over-grab or a second grab even if two processes run the same card.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use rand::RngExt;

use crate::activity::{start_lifecycle, ActivityError, Lifecycle, Refusal, ACTIVITY_PENDING_MAX};
use crate::activity_actor;
use crate::ledger::{Change, Fence, LedgerActor, Leg, Limit, OrderSpec, Outcome, Submit};

pub use crate::ledger::REWARD_POINTS;

/// A card as the actor (and the routes that check a grab before asking it) need it.
#[derive(Debug, Clone)]
pub struct CardConfig {
    pub card_id: i64,
    pub app_id: String,
    /// The session (batch) the card belongs to.
    pub batch_id: i64,
    pub reward_type: String,
    /// Packets per day.
    pub daily_stock: i64,
    /// Value of one packet.
    pub unit: i64,
    /// Points paid per grab.
    pub ticket: i64,
    /// The grab window, seconds of the business day, inclusive start, exclusive end.
    pub window: (u32, u32),
    /// On shelf.
    pub open: bool,
    /// The lease this actor serves the card under, when several nodes share the database.
    pub fence: Option<Fence>,
}

/// What the card's state was when the actor started: today's grabs already committed.
#[derive(Debug, Clone, Default)]
pub struct CardDay {
    pub day: String,
    pub taken: i64,
    pub grabbed: HashSet<i64>,
}

/// One won packet, told to the caller and to the radio.
#[derive(Debug, Clone)]
pub struct CardWin {
    pub card_id: i64,
    pub user_id: i64,
    /// Platform user id, as the front-end knows the user.
    pub uid: String,
    pub nick: String,
    pub reward_type: String,
    pub unit: i64,
    pub outcome: Outcome,
}

/// Grabs one packet of the card for a user.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CardWin, ActivityError>")]
pub struct GrabCard {
    pub user_id: i64,
    /// Platform user id, as the front-end knows the user.
    pub uid: String,
    pub nick: String,
    /// Today in business time (`YYYY-MM-DD`).
    pub day: String,
    /// Seconds since the start of today in business time.
    pub second_of_day: u32,
    /// Expiry of credited points (epoch ms), the app's default.
    pub expires_at: Option<i64>,
}

/// How many packets are left today (for `show`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "i64")]
pub struct CardRemaining {
    pub day: String,
}

/// Called with every committed win (the radio, websocket topics).
pub type WinSink<W> = Arc<dyn Fn(&W) + Send + Sync>;

/// The actor of one red-packet card.
pub struct CardActor {
    config: CardConfig,
    state: CardDay,
    life: Lifecycle,
    ledger: Addr<LedgerActor>,
    on_win: WinSink<CardWin>,
}

impl CardActor {
    /// A card actor continuing from `state`, read from the database.
    pub fn new(
        config: CardConfig,
        state: CardDay,
        ledger: Addr<LedgerActor>,
        on_win: WinSink<CardWin>,
    ) -> Self {
        Self {
            config,
            state,
            life: Lifecycle::new(),
            ledger,
            on_win,
        }
    }

    /// The idempotency key of a user's grab of this card on `day`.
    pub fn grab_key(card_id: i64, day: &str, user_id: i64) -> String {
        format!("redpack:{card_id}:{day}:{user_id}")
    }

    /// The reference every grab of this card on `day` carries (how recovery finds them).
    pub fn day_reference(card_id: i64, day: &str) -> String {
        format!("card:{card_id}:{day}")
    }

    /// The card a [`CardActor::day_reference`] names.
    pub fn card_of_reference(reference: &str) -> Option<i64> {
        reference
            .strip_prefix("card:")?
            .split(':')
            .next()?
            .parse()
            .ok()
    }

    /// The counter holding the card's grabs on `day`.
    pub fn stock_counter(app_id: &str, card_id: i64, day: &str) -> String {
        format!("redpack:{app_id}:card:{card_id}:{day}")
    }

    /// Moves to `day` if the business day changed: the stock is full again.
    fn roll(&mut self, day: &str) {
        if self.state.day != day {
            self.state = CardDay {
                day: day.to_string(),
                taken: 0,
                grabbed: HashSet::new(),
            };
        }
    }

    fn change(&self, msg: &GrabCard) -> Change {
        let c = &self.config;
        let points = c.reward_type == REWARD_POINTS;
        let legs = if c.ticket > 0 {
            vec![Leg {
                amount: -c.ticket,
                kind: "redpack_ticket".into(),
                description: "抢红包门票".into(),
            }]
        } else {
            Vec::new()
        };
        Change {
            app_id: c.app_id.clone(),
            user_id: msg.user_id,
            amount: if points { c.unit } else { 0 },
            kind: "redpack".into(),
            idem_key: Self::grab_key(c.card_id, &msg.day, msg.user_id),
            reference: Self::day_reference(c.card_id, &msg.day),
            description: format!("抢红包 {}{}", c.unit, c.reward_type),
            expires_at: msg.expires_at,
            limits: vec![Limit {
                key: Self::stock_counter(&c.app_id, c.card_id, &msg.day),
                max: c.daily_stock,
            }],
            legs,
            order: (!points).then(|| OrderSpec {
                reward_type: c.reward_type.clone(),
                amount: c.unit,
                detail: serde_json::json!({"card_id": c.card_id, "day": msg.day}).to_string(),
            }),
            expire_lot: None,
            fence: c.fence.clone(),
        }
    }
}

impl Actor for CardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        start_lifecycle(ctx);
    }
}

impl Handler<GrabCard> for CardActor {
    type Result = ResponseActFuture<Self, Result<CardWin, ActivityError>>;

    /// Decides the grab in memory, reserves the packet and answers after the ledger commit;
    /// a refused commit gives the packet back.
    fn handle(&mut self, msg: GrabCard, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.roll(&msg.day);
        let decided = (|| {
            if self.life.retiring {
                return Err(ActivityError::Busy);
            }
            if !self.config.open {
                return Err(Refusal::Closed.into());
            }
            let (start, end) = self.config.window;
            if msg.second_of_day < start {
                return Err(Refusal::NotStarted.into());
            }
            if msg.second_of_day >= end {
                return Err(Refusal::Ended.into());
            }
            if self.state.grabbed.contains(&msg.user_id) {
                return Err(Refusal::AlreadyDone.into());
            }
            if self.state.taken >= self.config.daily_stock {
                return Err(Refusal::SoldOut.into());
            }
            if self.life.pending >= ACTIVITY_PENDING_MAX {
                return Err(ActivityError::Busy);
            }
            Ok(())
        })();
        if let Err(e) = decided {
            return Box::pin(fut::ready(Err(e)));
        }
        self.state.taken += 1;
        self.state.grabbed.insert(msg.user_id);
        self.life.pending += 1;
        let change = self.change(&msg);
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            let same_day = actor.state.day == msg.day;
            match result
                .map_err(ActivityError::from)
                .and_then(|r| r.map_err(Into::into))
            {
                Ok(outcome) => {
                    let win = CardWin {
                        card_id: actor.config.card_id,
                        user_id: msg.user_id,
                        uid: msg.uid,
                        nick: msg.nick,
                        reward_type: actor.config.reward_type.clone(),
                        unit: actor.config.unit,
                        outcome,
                    };
                    (actor.on_win)(&win);
                    Ok(win)
                }
                Err(ActivityError::Ledger(crate::LedgerError::LimitReached { .. })) => {
                    // Another process took the last packets: the database's count wins.
                    if same_day {
                        actor.state.taken = actor.config.daily_stock;
                        actor.state.grabbed.remove(&msg.user_id);
                    }
                    Err(Refusal::SoldOut.into())
                }
                Err(e) => {
                    if same_day {
                        actor.state.taken -= 1;
                        actor.state.grabbed.remove(&msg.user_id);
                    }
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<CardRemaining> for CardActor {
    type Result = i64;

    /// Packets left today, counting reserved ones as taken.
    fn handle(&mut self, msg: CardRemaining, _ctx: &mut Self::Context) -> i64 {
        self.roll(&msg.day);
        (self.config.daily_stock - self.state.taken).max(0)
    }
}

activity_actor!(CardActor);

// ---------------------------------------------------------------------------------------------
// Pools

/// A pool as the actor needs it.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub pool_id: i64,
    pub app_id: String,
    pub title: String,
    /// Packet amounts by sequence number, as split at creation.
    pub packets: Vec<i64>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub open: bool,
    /// The lease this actor serves the pool under, when several nodes share the database.
    pub fence: Option<Fence>,
}

/// One committed grab of a pool packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGrab {
    pub user_id: i64,
    /// Platform user id, as the front-end knows the user.
    pub uid: String,
    pub seq: usize,
    pub amount: i64,
    pub at: i64,
}

/// Grabs one packet of the pool.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PoolGrab, ActivityError>")]
pub struct GrabPool {
    pub user_id: i64,
    pub uid: String,
    pub now_ms: i64,
    pub expires_at: Option<i64>,
}

/// The pool as `show` presents it.
#[derive(Debug, Clone)]
pub struct PoolView {
    pub remaining_count: i64,
    pub remaining_points: i64,
    pub grabs: Vec<PoolGrab>,
}

/// Reads the pool's committed state.
#[derive(Message, Debug, Clone)]
#[rtype(result = "PoolView")]
pub struct ShowPool;

/// The actor of one red-packet pool.
pub struct PoolActor {
    config: PoolConfig,
    /// Sequence numbers not yet given out, next first.
    free: Vec<usize>,
    /// Users holding or reserving a packet.
    grabbed: HashSet<i64>,
    /// Committed grabs in commit order.
    grabs: Vec<PoolGrab>,
    life: Lifecycle,
    ledger: Addr<LedgerActor>,
    on_grab: WinSink<(i64, PoolGrab)>,
}

impl PoolActor {
    /// A pool actor continuing from the committed `grabs`.
    pub fn new(
        config: PoolConfig,
        grabs: Vec<PoolGrab>,
        ledger: Addr<LedgerActor>,
        on_grab: WinSink<(i64, PoolGrab)>,
    ) -> Self {
        let taken: HashSet<usize> = grabs.iter().map(|g| g.seq).collect();
        // Give packets out from the lowest sequence number up: `free` is a stack.
        let free: Vec<usize> = (0..config.packets.len())
            .rev()
            .filter(|s| !taken.contains(s))
            .collect();
        Self {
            grabbed: grabs.iter().map(|g| g.user_id).collect(),
            config,
            free,
            grabs,
            life: Lifecycle::new(),
            ledger,
            on_grab,
        }
    }

    /// Closes the pool to new grabs (on retiring: an admin change follows).
    fn close(&mut self) {
        self.config.open = false;
    }

    /// The idempotency key of a user's grab in a pool.
    pub fn grab_key(pool_id: i64, user_id: i64) -> String {
        format!("pool:{pool_id}:user:{user_id}")
    }

    /// The reference of a grab: `pool:<id>:<seq>`; recovery parses the sequence number back.
    pub fn reference(pool_id: i64, seq: usize) -> String {
        format!("pool:{pool_id}:{seq}")
    }

    /// The `[from, to)` range holding every [`PoolActor::reference`] of a pool (`;` sorts just
    /// after `:`).
    pub fn reference_range(pool_id: i64) -> (String, String) {
        (format!("pool:{pool_id}:"), format!("pool:{pool_id};"))
    }

    /// The packet a [`PoolActor::reference`] of `pool_id` names.
    pub fn seq_of_reference(pool_id: i64, reference: &str) -> Option<usize> {
        reference
            .strip_prefix(&format!("pool:{pool_id}:"))?
            .parse()
            .ok()
    }

    /// The counter that lets each packet be granted once.
    pub fn packet_counter(app_id: &str, pool_id: i64, seq: usize) -> String {
        format!("redpack:{app_id}:pool:{pool_id}:{seq}")
    }
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        start_lifecycle(ctx);
    }
}

impl Handler<GrabPool> for PoolActor {
    type Result = ResponseActFuture<Self, Result<PoolGrab, ActivityError>>;

    /// Assigns the next free packet, commits it with the pool+user key and answers after the
    /// commit; a refused commit puts the packet back.
    fn handle(&mut self, msg: GrabPool, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        let c = &self.config;
        let refused = if !c.open {
            Some(ActivityError::from(Refusal::Closed))
        } else if c.starts_at.is_some_and(|s| msg.now_ms < s) {
            Some(Refusal::NotStarted.into())
        } else if c.ends_at.is_some_and(|e| msg.now_ms >= e) {
            Some(Refusal::Ended.into())
        } else if self.grabbed.contains(&msg.user_id) {
            Some(Refusal::AlreadyDone.into())
        } else if self.free.is_empty() {
            Some(Refusal::SoldOut.into())
        } else if self.life.pending >= ACTIVITY_PENDING_MAX {
            Some(ActivityError::Busy)
        } else {
            None
        };
        if let Some(e) = refused {
            return Box::pin(fut::ready(Err(e)));
        }
        let Some(seq) = self.free.pop() else {
            return Box::pin(fut::ready(Err(Refusal::SoldOut.into())));
        };
        let c = &self.config;
        let amount = c.packets[seq];
        let change = Change {
            app_id: c.app_id.clone(),
            user_id: msg.user_id,
            amount,
            kind: "redpack_pool".into(),
            idem_key: Self::grab_key(c.pool_id, msg.user_id),
            reference: Self::reference(c.pool_id, seq),
            description: format!("红包池 {}", c.title),
            expires_at: msg.expires_at,
            limits: vec![Limit {
                key: Self::packet_counter(&c.app_id, c.pool_id, seq),
                max: 1,
            }],
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: c.fence.clone(),
        };
        self.grabbed.insert(msg.user_id);
        self.life.pending += 1;
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            match result
                .map_err(ActivityError::from)
                .and_then(|r| r.map_err(Into::into))
            {
                Ok(outcome) => {
                    let grab = PoolGrab {
                        user_id: msg.user_id,
                        uid: msg.uid,
                        seq,
                        amount: outcome.amount,
                        at: outcome.created_at,
                    };
                    actor.grabs.push(grab.clone());
                    (actor.on_grab)(&(actor.config.pool_id, grab.clone()));
                    Ok(grab)
                }
                Err(ActivityError::Ledger(crate::LedgerError::LimitReached { .. })) => {
                    // Another process granted this packet: it stays taken here too.
                    actor.grabbed.remove(&msg.user_id);
                    Err(ActivityError::Busy)
                }
                Err(e) => {
                    actor.grabbed.remove(&msg.user_id);
                    actor.free.push(seq);
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<ShowPool> for PoolActor {
    type Result = MessageResult<ShowPool>;

    /// The committed grabs and what is left (reserved packets count as left until committed).
    fn handle(&mut self, _msg: ShowPool, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        let granted: i64 = self.grabs.iter().map(|g| g.amount).sum();
        let total: i64 = self.config.packets.iter().sum();
        MessageResult(PoolView {
            remaining_count: self.config.packets.len() as i64 - self.grabs.len() as i64,
            remaining_points: total - granted,
            grabs: self.grabs.clone(),
        })
    }
}

activity_actor!(PoolActor, on_retire = close);

/// Splits `total` points into `count` packets of at least one point each.
///
/// `random` is WeChat's "double mean": each packet is uniform in `[1, 2 * mean of what is
/// left]`, the last one takes the rest, so every packet is at least 1 and the sum is exact.
/// `even` gives `total / count` to each and the remainder, one point each, to the first ones.
pub fn split_pool(
    total: i64,
    count: i64,
    random: bool,
    rng: &mut impl rand::Rng,
) -> Option<Vec<i64>> {
    if count <= 0 || total < count {
        return None;
    }
    let n = usize::try_from(count).ok()?;
    if !random {
        let base = total / count;
        let extra = usize::try_from(total % count).ok()?;
        return Some((0..n).map(|i| base + i64::from(i < extra)).collect());
    }
    let mut left = total;
    let mut packets = Vec::with_capacity(n);
    for i in 0..n {
        let remaining_count = (n - i) as i64;
        if remaining_count == 1 {
            packets.push(left);
            break;
        }
        // Leave at least one point for every packet still to come.
        let max = (2 * left / remaining_count)
            .min(left - (remaining_count - 1))
            .max(1);
        let amount = rng.random_range(1..=max);
        packets.push(amount);
        left -= amount;
    }
    Some(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_back() {
        let r = CardActor::day_reference(42, "2026-12-01");
        assert_eq!(CardActor::card_of_reference(&r), Some(42));
        assert_eq!(CardActor::card_of_reference("pool:42:1"), None);
        let (from, to) = PoolActor::reference_range(7);
        for seq in [0, 9, 10, 123] {
            let r = PoolActor::reference(7, seq);
            assert!(from <= r && r < to, "{r}");
            assert_eq!(PoolActor::seq_of_reference(7, &r), Some(seq));
        }
        assert_eq!(PoolActor::seq_of_reference(7, "pool:70:1"), None);
        let other = PoolActor::reference(70, 1);
        assert!(!(from <= other && other < to), "{other}");
    }

    #[test]
    fn splits_are_exact_and_at_least_one() {
        let mut rng = rand::rng();
        for (total, count) in [(100, 10), (10, 10), (1_000_000, 500), (501, 500), (7, 3)] {
            for random in [true, false] {
                let packets = split_pool(total, count, random, &mut rng).expect("valid split");
                assert_eq!(packets.len() as i64, count);
                assert_eq!(packets.iter().sum::<i64>(), total);
                assert!(packets.iter().all(|&p| p >= 1), "{packets:?}");
            }
        }
        assert!(split_pool(5, 6, true, &mut rng).is_none());
        assert!(split_pool(5, 0, false, &mut rng).is_none());
    }
}
