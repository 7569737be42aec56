//! The blind-box actor: one per app, holding the app's boxes.
//!
//! A box opens once the user finished enough tasks today, once per box per user per day. It
//! pays an outside reward (集分宝, recorded as a fulfilment order) while the box's external stock
//! lasts, and points after. The actor decides in memory (unlocked, not opened today, which
//! payout), reserves the opening and sends one ledger [`Change`] keyed by box+day+user, with the
//! external stock as a counter when the outside reward is paid; the database refuses a second
//! opening or an over-payment even if two processes serve the same app.

use std::collections::HashSet;

use actix::prelude::*;

use crate::activity::{start_lifecycle, ActivityError, Lifecycle, Refusal, ACTIVITY_PENDING_MAX};
use crate::activity_actor;
use crate::ledger::{Change, Fence, LedgerActor, LedgerError, Limit, OrderSpec, Outcome, Submit};

/// Most boxes one app holds.
pub const BOXES_MAX: usize = 20;
/// Entry kind of every opening.
pub const BOX_KIND: &str = "box";
/// What the external payout of a box is.
pub const BOX_EXTERNAL_REWARD: &str = "集分宝";

/// One box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxSpec {
    /// Unique among the app's boxes.
    pub name: String,
    /// Tasks to finish today before the box opens.
    pub task_sum: i64,
    /// External stock: most openings paid with the outside reward, over the box's life.
    pub alipay_point_valve: i64,
    /// Outside reward (集分宝) per opening while the external stock lasts.
    pub alipay_point_unit: i64,
    /// Points per opening once the external stock is gone.
    pub points_unit: i64,
}

/// An app's boxes as the actor needs them.
#[derive(Debug, Clone)]
pub struct BoxConfig {
    pub app_id: String,
    pub boxes: Vec<BoxSpec>,
    /// The lease this actor serves the boxes under, when several nodes share the database.
    pub fence: Option<Fence>,
}

/// The boxes' state when the actor starts, read from the database.
#[derive(Debug, Clone, Default)]
pub struct BoxState {
    /// Today in business time (`YYYY-MM-DD`).
    pub day: String,
    /// (box index, user) pairs opened today, committed or waiting for their commit.
    pub opened: HashSet<(usize, i64)>,
    /// External payouts per box, in the order of [`BoxConfig::boxes`].
    pub external_paid: Vec<i64>,
}

/// What an opening paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxPayout {
    /// Units of the outside reward, delivered through a fulfilment order.
    External(i64),
    /// Points credited by the ledger.
    Points(i64),
}

/// The result of one committed opening.
#[derive(Debug, Clone)]
pub struct Opened {
    pub payout: BoxPayout,
    pub outcome: Outcome,
}

/// Opens a box for a user. A box name the app does not have answers [`Refusal::Other`], the
/// only `Other` this actor gives, which the routes report as not found.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Opened, ActivityError>")]
pub struct OpenBox {
    pub user_id: i64,
    pub box_name: String,
    /// Today in business time (`YYYY-MM-DD`).
    pub day: String,
    /// Tasks the user finished today, counted by the caller from the ledger.
    pub done_tasks: i64,
    /// Expiry of credited points (epoch ms), the app's default.
    pub expires_at: Option<i64>,
}

/// One box as `show` and the admin view present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxStatus {
    pub spec: BoxSpec,
    /// Opened by the user today (reserved openings count).
    pub opened: bool,
    /// External payouts left.
    pub external_left: i64,
}

/// Reads the boxes' live state for a user (or for the admin view, with `user_id` `None`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<BoxStatus>")]
pub struct ShowBoxes {
    pub user_id: Option<i64>,
    pub day: String,
}

/// The actor of one app's blind boxes.
pub struct BoxActor {
    config: BoxConfig,
    state: BoxState,
    life: Lifecycle,
    ledger: Addr<LedgerActor>,
}

impl BoxActor {
    /// A box actor continuing from `state`, read from the database.
    pub fn new(config: BoxConfig, mut state: BoxState, ledger: Addr<LedgerActor>) -> Self {
        state.external_paid.resize(config.boxes.len(), 0);
        Self {
            config,
            state,
            life: Lifecycle::new(),
            ledger,
        }
    }

    /// The idempotency key of a user's opening of a box on `day`.
    pub fn open_key(app_id: &str, name: &str, day: &str, user_id: i64) -> String {
        format!("box:{app_id}:{name}:{day}:{user_id}")
    }

    /// The reference of an opening: `box:<day>:<name>`; recovery finds a day's openings by
    /// its prefix.
    pub fn reference(day: &str, name: &str) -> String {
        format!("box:{day}:{name}")
    }

    /// The counter of a box's external payouts, with the external stock as ceiling.
    pub fn external_counter(app_id: &str, name: &str) -> String {
        format!("box:{app_id}:{name}:alipay")
    }

    /// Moves to `day` if it is later than the current one: every box can be opened again.
    fn roll(&mut self, day: &str) {
        if day > self.state.day.as_str() {
            self.state.day = day.to_string();
            self.state.opened.clear();
        }
    }

    fn change(&self, msg: &OpenBox, spec: &BoxSpec, payout: &BoxPayout) -> Change {
        let c = &self.config;
        let day = &self.state.day;
        let mut change = Change {
            app_id: c.app_id.clone(),
            user_id: msg.user_id,
            amount: 0,
            kind: BOX_KIND.into(),
            idem_key: Self::open_key(&c.app_id, &spec.name, day, msg.user_id),
            reference: Self::reference(day, &spec.name),
            description: String::new(),
            expires_at: None,
            limits: Vec::new(),
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: c.fence.clone(),
        };
        match payout {
            BoxPayout::External(units) => {
                change.description = format!("开盲盒 {} {units}{BOX_EXTERNAL_REWARD}", spec.name);
                change.limits.push(Limit {
                    key: Self::external_counter(&c.app_id, &spec.name),
                    max: spec.alipay_point_valve,
                });
                change.order = Some(OrderSpec {
                    reward_type: BOX_EXTERNAL_REWARD.into(),
                    amount: *units,
                    detail: serde_json::json!({"box": spec.name, "day": day}).to_string(),
                });
            }
            BoxPayout::Points(points) => {
                change.amount = *points;
                change.description = format!("开盲盒 {} {points}积分", spec.name);
                change.expires_at = msg.expires_at;
            }
        }
        change
    }
}

impl Actor for BoxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        start_lifecycle(ctx);
    }
}

impl Handler<OpenBox> for BoxActor {
    type Result = ResponseActFuture<Self, Result<Opened, ActivityError>>;

    /// Checks the box is unlocked and not opened today, chooses the payout, reserves it and
    /// answers after the ledger commit; a refused commit gives the reservation back.
    fn handle(&mut self, msg: OpenBox, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.roll(&msg.day);
        let found = self
            .config
            .boxes
            .iter()
            .position(|b| b.name == msg.box_name);
        let decided = (|| {
            if self.life.retiring || self.life.pending >= ACTIVITY_PENDING_MAX {
                return Err(ActivityError::Busy);
            }
            let index = found.ok_or_else(|| Refusal::Other {
                en: format!("no box named {:?}", msg.box_name),
                zh: "盲盒不存在".into(),
            })?;
            let spec = &self.config.boxes[index];
            if msg.done_tasks < spec.task_sum {
                return Err(Refusal::Locked {
                    needed: spec.task_sum - msg.done_tasks,
                }
                .into());
            }
            if self.state.opened.contains(&(index, msg.user_id)) {
                return Err(Refusal::AlreadyDone.into());
            }
            let external = spec.alipay_point_unit > 0
                && self.state.external_paid[index] < spec.alipay_point_valve;
            let payout = if external {
                BoxPayout::External(spec.alipay_point_unit)
            } else if spec.points_unit > 0 {
                BoxPayout::Points(spec.points_unit)
            } else {
                return Err(Refusal::SoldOut.into());
            };
            Ok((index, payout))
        })();
        let (index, payout) = match decided {
            Ok(d) => d,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        self.state.opened.insert((index, msg.user_id));
        let external = matches!(payout, BoxPayout::External(_));
        if external {
            self.state.external_paid[index] += 1;
        }
        self.life.pending += 1;
        let spec = self.config.boxes[index].clone();
        let change = self.change(&msg, &spec, &payout);
        let day = self.state.day.clone();
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            let result = result
                .map_err(ActivityError::from)
                .and_then(|r| r.map_err(ActivityError::from));
            match result {
                Ok(outcome) => Ok(Opened { payout, outcome }),
                Err(e) => {
                    if actor.state.day == day {
                        actor.state.opened.remove(&(index, msg.user_id));
                    }
                    if external {
                        actor.state.external_paid[index] -= 1;
                    }
                    Err(match e {
                        ActivityError::Ledger(LedgerError::LimitReached { .. }) => {
                            // Another process paid the last external units: the database's
                            // count wins, and the next opening pays points.
                            actor.state.external_paid[index] = spec.alipay_point_valve;
                            ActivityError::Busy
                        }
                        // The key exists with another payout: this user opened the box today
                        // through another process.
                        ActivityError::Ledger(LedgerError::Conflict) => {
                            if actor.state.day == day {
                                actor.state.opened.insert((index, msg.user_id));
                            }
                            Refusal::AlreadyDone.into()
                        }
                        other => other,
                    })
                }
            }
        }))
    }
}

impl Handler<ShowBoxes> for BoxActor {
    type Result = MessageResult<ShowBoxes>;

    /// Every box with whether the user opened it today and its external stock left.
    fn handle(&mut self, msg: ShowBoxes, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.roll(&msg.day);
        let boxes = self
            .config
            .boxes
            .iter()
            .enumerate()
            .map(|(i, spec)| BoxStatus {
                spec: spec.clone(),
                opened: msg
                    .user_id
                    .is_some_and(|u| self.state.opened.contains(&(i, u))),
                external_left: (spec.alipay_point_valve - self.state.external_paid[i]).max(0),
            })
            .collect();
        MessageResult(boxes)
    }
}

activity_actor!(BoxActor);
