//! The lottery board actor: one per app.
//!
//! A draw is decided in memory — the user has chances left today, a prize is picked with a
//! CSPRNG by its rate, the prize still has stock — and then committed as ONE ledger [`Change`]:
//! the ticket debit, the prize (points, or a fulfilment order for rewards paid outside), the
//! user's daily draw counter and, for a won prize, the prize's stock counter. The database
//! refuses the whole draw if any part fails, so even two processes drawing on one board cannot
//! oversell a prize or exceed a user's daily limit. The actor's memory only spares the database
//! the draws it would refuse anyway.

use std::collections::HashMap;

use actix::prelude::*;

use crate::activity::{start_lifecycle, ActivityError, Lifecycle, Refusal, ACTIVITY_PENDING_MAX};
use crate::activity_actor;
use crate::ledger::REWARD_POINTS;
use crate::ledger::{
    Change, Fence, LedgerActor, LedgerError, Leg, Limit, OrderSpec, Outcome, Submit,
};

/// Rates are stored as integer parts of this whole, so "the rates add up to exactly 1" is an
/// exact integer comparison instead of a floating-point one.
pub const LOTTERY_RATE_SCALE: u32 = 1_000_000;
/// Most prizes one board holds.
pub const LOTTERY_PRIZES_MAX: usize = 32;
/// Most draws a board may allow one user per day.
pub const LOTTERY_DAILY_LIMIT_MAX: i64 = 1_000;
/// Entry kind of every draw's result (won or not).
pub const LOTTERY_KIND: &str = "lottery";
/// Entry kind of the ticket leg of a won draw.
pub const LOTTERY_TICKET_KIND: &str = "lottery_ticket";

/// One prize of a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prize {
    /// Unique on the board; names the prize's stock counter.
    pub level: i64,
    /// The prize's level as the operator named it (`一等奖`), shown to players.
    pub label: String,
    pub name: String,
    /// `积分` credits points; every other type becomes a fulfilment order.
    pub reward_type: String,
    pub icon: String,
    /// Total stock over the board's life (granted + remaining).
    pub stock: i64,
    /// Points, or units of the outside reward.
    pub amount: i64,
    /// Chance of being drawn, in parts of [`LOTTERY_RATE_SCALE`].
    pub rate: u32,
}

/// A board as the actor needs it.
#[derive(Debug, Clone)]
pub struct LotteryConfig {
    pub app_id: String,
    /// Points paid per draw.
    pub ticket: i64,
    /// Draws per user per business day.
    pub daily_limit: i64,
    /// On shelf.
    pub open: bool,
    pub prizes: Vec<Prize>,
    /// The lease this actor serves the board under, when several nodes share the database.
    pub fence: Option<Fence>,
}

/// One user's draws on the current day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserDraws {
    /// Draws committed or waiting for their commit.
    pub used: i64,
    /// Highest draw number used today, committed or not. Numbers are never reused, so a draw
    /// refused by the ledger never lends its idempotency key to a later draw.
    pub last_number: i64,
}

/// The board's state when the actor starts, read from the database.
#[derive(Debug, Clone, Default)]
pub struct LotteryState {
    /// Today in business time (`YYYY-MM-DD`).
    pub day: String,
    /// Today's draws per user.
    pub users: HashMap<i64, UserDraws>,
    /// Units granted per prize, in the order of [`LotteryConfig::prizes`].
    pub granted: Vec<i64>,
}

/// The result of one committed draw.
#[derive(Debug, Clone)]
pub struct DrawResult {
    /// The prize won; `None` is a draw without reward.
    pub prize: Option<Prize>,
    /// The user's draw number today.
    pub number: i64,
    pub outcome: Outcome,
}

/// Draws once for a user.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<DrawResult, ActivityError>")]
pub struct Draw {
    pub user_id: i64,
    /// Today in business time (`YYYY-MM-DD`).
    pub day: String,
    /// Expiry of credited points (epoch ms), the app's default.
    pub expires_at: Option<i64>,
}

/// What `show` needs: the board, the user's draws left today and each prize's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotteryView {
    /// Points paid per draw.
    pub ticket: i64,
    /// On shelf.
    pub open: bool,
    pub left_times: i64,
    pub prizes: Vec<Prize>,
    /// Units left per prize, in the order of `prizes` (reserved draws count as taken).
    pub remaining: Vec<i64>,
}

/// Reads the board's live state.
#[derive(Message, Debug, Clone)]
#[rtype(result = "LotteryView")]
pub struct ShowLottery {
    /// Whose draws to count; `None` answers `left_times` 0.
    pub user_id: Option<i64>,
    pub day: String,
}

/// Picks the prize whose cumulative rate range holds `roll` (in `0..LOTTERY_RATE_SCALE`).
pub fn pick_prize(prizes: &[Prize], roll: u32) -> Option<usize> {
    let mut upper: u64 = 0;
    for (i, p) in prizes.iter().enumerate() {
        upper += u64::from(p.rate);
        if u64::from(roll) < upper {
            return Some(i);
        }
    }
    None
}

/// The actor of one app's lottery board.
pub struct LotteryActor {
    config: LotteryConfig,
    state: LotteryState,
    life: Lifecycle,
    ledger: Addr<LedgerActor>,
}

impl LotteryActor {
    /// A board actor continuing from `state`, read from the database.
    pub fn new(config: LotteryConfig, mut state: LotteryState, ledger: Addr<LedgerActor>) -> Self {
        state.granted.resize(config.prizes.len(), 0);
        Self {
            config,
            state,
            life: Lifecycle::new(),
            ledger,
        }
    }

    /// The idempotency key of a user's `number`th draw on `day`.
    pub fn draw_key(app_id: &str, day: &str, user_id: i64, number: i64) -> String {
        format!("lottery:{app_id}:{day}:{user_id}:{number}")
    }

    /// The draw number a [`LotteryActor::draw_key`] ends with.
    pub fn number_of_draw_key(key: &str) -> Option<i64> {
        key.rsplit(':').next()?.parse().ok()
    }

    /// The reference every draw result of `day` carries (how recovery finds them).
    pub fn day_reference(day: &str) -> String {
        format!("lottery:{day}")
    }

    /// The counter of a user's draws on `day`, with the daily limit as ceiling.
    pub fn daily_counter(app_id: &str, user_id: i64, day: &str) -> String {
        format!("lottery:{app_id}:{user_id}:{day}")
    }

    /// The counter of a prize's granted units, with its stock as ceiling.
    pub fn stock_counter(app_id: &str, level: i64) -> String {
        format!("lottery:{app_id}:prize:{level}")
    }

    /// Moves to `day` if it is later than the current one: every user has a fresh allowance.
    /// An older day (a request computed just before midnight) counts towards the current one.
    fn roll(&mut self, day: &str) {
        if day > self.state.day.as_str() {
            self.state.day = day.to_string();
            self.state.users.clear();
        }
    }

    fn left_times(&self, user_id: i64) -> i64 {
        let used = self.state.users.get(&user_id).map_or(0, |u| u.used);
        (self.config.daily_limit - used).max(0)
    }

    /// The ledger change of a draw: one all-or-nothing record of the ticket and the result.
    fn change(&self, msg: &Draw, number: i64, prize: Option<&Prize>) -> Change {
        let c = &self.config;
        let day = &self.state.day;
        let mut limits = vec![Limit {
            key: Self::daily_counter(&c.app_id, msg.user_id, day),
            max: c.daily_limit,
        }];
        let mut change = Change {
            app_id: c.app_id.clone(),
            user_id: msg.user_id,
            amount: -c.ticket,
            kind: LOTTERY_KIND.into(),
            idem_key: Self::draw_key(&c.app_id, day, msg.user_id, number),
            reference: Self::day_reference(day),
            description: "抽奖未中奖".into(),
            expires_at: None,
            limits: Vec::new(),
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: self.config.fence.clone(),
        };
        if let Some(p) = prize {
            let points = p.reward_type == REWARD_POINTS;
            limits.push(Limit {
                key: Self::stock_counter(&c.app_id, p.level),
                max: p.stock,
            });
            if c.ticket > 0 {
                change.legs.push(Leg {
                    amount: -c.ticket,
                    kind: LOTTERY_TICKET_KIND.into(),
                    description: "抽奖消耗".into(),
                });
            }
            change.amount = if points { p.amount } else { 0 };
            change.description = format!("抽奖获得 {} {}{}", p.name, p.amount, p.reward_type);
            change.expires_at = msg.expires_at;
            change.order = (!points).then(|| OrderSpec {
                reward_type: p.reward_type.clone(),
                amount: p.amount,
                detail: serde_json::json!({
                    "lottery": c.app_id, "level": p.level, "name": p.name, "day": day,
                })
                .to_string(),
            });
        }
        change.limits = limits;
        change
    }
}

impl Actor for LotteryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        start_lifecycle(ctx);
    }
}

impl Handler<Draw> for LotteryActor {
    type Result = ResponseActFuture<Self, Result<DrawResult, ActivityError>>;

    /// Checks the allowance, picks a prize, reserves the draw (and the prize's unit) and
    /// answers after the ledger commit; a refused commit gives both back.
    fn handle(&mut self, msg: Draw, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.roll(&msg.day);
        let refused = if self.life.retiring || self.life.pending >= ACTIVITY_PENDING_MAX {
            Some(ActivityError::Busy)
        } else if !self.config.open {
            Some(Refusal::Closed.into())
        } else if self.left_times(msg.user_id) == 0 {
            Some(Refusal::NoChancesLeft.into())
        } else {
            None
        };
        if let Some(e) = refused {
            return Box::pin(fut::ready(Err(e)));
        }
        // rand::rng() is a ChaCha-based CSPRNG reseeded from the OS: draws cannot be predicted
        // from earlier ones.
        let roll = rand::RngExt::random_range(&mut rand::rng(), 0..LOTTERY_RATE_SCALE);
        let won = pick_prize(&self.config.prizes, roll).filter(|&i| {
            let p = &self.config.prizes[i];
            p.amount > 0 && self.state.granted[i] < p.stock
        });
        let user = self.state.users.entry(msg.user_id).or_default();
        user.used += 1;
        user.last_number += 1;
        let number = user.last_number;
        if let Some(i) = won {
            self.state.granted[i] += 1;
        }
        self.life.pending += 1;
        let prize = won.map(|i| self.config.prizes[i].clone());
        let change = self.change(&msg, number, prize.as_ref());
        let day = self.state.day.clone();
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            let result = result
                .map_err(ActivityError::from)
                .and_then(|r| r.map_err(ActivityError::from));
            match result {
                Ok(outcome) => Ok(DrawResult {
                    prize,
                    number,
                    outcome,
                }),
                Err(e) => {
                    if actor.state.day == day {
                        if let Some(u) = actor.state.users.get_mut(&msg.user_id) {
                            u.used -= 1;
                        }
                    }
                    if let Some(i) = won {
                        actor.state.granted[i] -= 1;
                    }
                    Err(match e {
                        // The daily counter refused: another process used the user's
                        // allowance, and the database's count wins.
                        ActivityError::Ledger(LedgerError::LimitReached { key })
                            if key
                                == Self::daily_counter(&actor.config.app_id, msg.user_id, &day) =>
                        {
                            let limit = actor.config.daily_limit;
                            if actor.state.day == day {
                                if let Some(u) = actor.state.users.get_mut(&msg.user_id) {
                                    u.used = u.used.max(limit);
                                }
                            }
                            Refusal::NoChancesLeft.into()
                        }
                        // The prize's stock refused, taken by another process: stop offering
                        // the prize here (the next start reads the true count) and let the
                        // user draw again.
                        ActivityError::Ledger(LedgerError::LimitReached { .. }) => {
                            if let Some(i) = won {
                                actor.state.granted[i] = actor.config.prizes[i].stock;
                            }
                            ActivityError::Busy
                        }
                        other => other,
                    })
                }
            }
        }))
    }
}

impl Handler<ShowLottery> for LotteryActor {
    type Result = MessageResult<ShowLottery>;

    /// Draws left today for the user and units left per prize.
    fn handle(&mut self, msg: ShowLottery, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.roll(&msg.day);
        let left_times = msg.user_id.map_or(0, |u| self.left_times(u));
        let remaining = self
            .config
            .prizes
            .iter()
            .zip(&self.state.granted)
            .map(|(p, g)| (p.stock - g).max(0))
            .collect();
        MessageResult(LotteryView {
            ticket: self.config.ticket,
            open: self.config.open,
            left_times,
            prizes: self.config.prizes.clone(),
            remaining,
        })
    }
}

activity_actor!(LotteryActor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_numbers_parse_back() {
        let key = LotteryActor::draw_key("wx:1", "2026-12-01", 5, 12);
        assert_eq!(LotteryActor::number_of_draw_key(&key), Some(12));
    }

    fn prize(level: i64, rate: u32) -> Prize {
        Prize {
            level,
            label: format!("{level}等奖"),
            name: format!("p{level}"),
            reward_type: REWARD_POINTS.into(),
            icon: String::new(),
            stock: 10,
            amount: 1,
            rate,
        }
    }

    #[test]
    fn picks_by_cumulative_rate() {
        let prizes = [prize(1, 100_000), prize(2, 0), prize(3, 900_000)];
        assert_eq!(pick_prize(&prizes, 0), Some(0));
        assert_eq!(pick_prize(&prizes, 99_999), Some(0));
        assert_eq!(pick_prize(&prizes, 100_000), Some(2));
        assert_eq!(pick_prize(&prizes, 999_999), Some(2));
        // A zero-rate prize is never drawn; a roll past the whole is no prize.
        assert_eq!(pick_prize(&prizes, LOTTERY_RATE_SCALE), None);
    }

    #[test]
    fn draws_follow_the_rates() {
        let prizes = [prize(1, 250_000), prize(2, 750_000)];
        let mut rng = rand::rng();
        let mut first = 0;
        let draws = 40_000;
        for _ in 0..draws {
            let roll = rand::RngExt::random_range(&mut rng, 0..LOTTERY_RATE_SCALE);
            if pick_prize(&prizes, roll) == Some(0) {
                first += 1;
            }
        }
        // 25% expected; six standard deviations (~1.3%) either side.
        assert!((9_000..11_000).contains(&first), "{first}");
    }
}
