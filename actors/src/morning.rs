//! Morning check-in rounds (早起打卡): one actor per (app, period).
//!
//! A round is named by its period `YYYYMMDD`, the business day on which its members check in.
//! Users sign up the day before by paying the ticket; on the round's day they check in inside the
//! window; when the window has closed the round is settled and the successful users are paid.
//!
//! The actor holds who signed up (and their stake) and who checked in, decides a sign-up or a
//! check-in in memory, reserves it, and hands ONE ledger [`Change`] to the ledger actor without
//! waiting inside its handler; it answers when the change has committed and undoes the
//! reservation if the ledger refused it. Every change of a round carries the reference
//! `pick:<period>` and a key naming app, period and user, so the database refuses a second
//! sign-up, check-in or payout even if two processes run the same round; the check-in also
//! moves a counter with ceiling one. The actor's state is rebuilt from those ledger entries when
//! it starts ([`RoundState::from_entries`]).
//!
//! Settlement is planned by the server (it needs the streaks of earlier rounds and must persist
//! the plan before paying, so a repeated settlement pays the same amounts); the actor closes the
//! round ([`Close`]) so nothing new arrives while the plan is made, and sends the payouts
//! ([`Pay`]). The pure planners [`split_payouts`] and [`random_payout`] live here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use rand::RngExt;

use crate::activity::{start_lifecycle, ActivityError, Lifecycle, Refusal, ACTIVITY_PENDING_MAX};
use crate::activity_actor;
use crate::ledger::{Change, Fence, LedgerActor, LedgerError, Limit, Outcome, Submit};

/// Entry kind of a sign-up (the ticket, a debit; zero when the ticket is free).
pub const PICK_SIGN_KIND: &str = "pick_sign";
/// Entry kind of a check-in (zero amount; its counter admits one per user and round).
pub const PICK_CHECK_KIND: &str = "pick_check";
/// Entry kind of a settlement payout (a win, or a refunded stake).
pub const PICK_PAY_KIND: &str = "pick_pay";
/// A streak whose length is a multiple of this many days inflates the payout (the 7th, 14th, ...
/// consecutive check-in).
pub const MORNING_STREAK_CYCLE_DAYS: i64 = 7;

/// The reference every entry of the round `period` carries (how recovery finds them).
pub fn round_reference(period: &str) -> String {
    format!("pick:{period}")
}

/// The idempotency key of a user's sign-up for a round.
pub fn sign_key(app_id: &str, period: &str, user_id: i64) -> String {
    format!("pick:{app_id}:{period}:sign:{user_id}")
}

/// The idempotency key (and counter) of a user's check-in in a round.
pub fn check_key(app_id: &str, period: &str, user_id: i64) -> String {
    format!("pick:{app_id}:{period}:check:{user_id}")
}

/// The idempotency key of a user's payout from a round.
pub fn pay_key(app_id: &str, period: &str, user_id: i64) -> String {
    format!("pick:{app_id}:{period}:pay:{user_id}")
}

/// One committed check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRecord {
    /// Commit time (epoch ms).
    pub at: i64,
    /// Ledger entry id: orders check-ins committed in the same millisecond.
    pub entry_id: i64,
}

/// A ledger entry of a round, as the loader reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundEntry {
    pub user_id: i64,
    pub kind: String,
    pub amount: i64,
    pub entry_id: i64,
    pub created_at: i64,
}

/// What a round holds: sign-ups with their stakes, check-ins, payouts.
#[derive(Debug, Clone, Default)]
pub struct RoundState {
    /// Signed-up users and the points they staked.
    pub signed: HashMap<i64, i64>,
    /// Checked-in users.
    pub checked: HashMap<i64, CheckRecord>,
    /// Paid users and what they were paid.
    pub paid: HashMap<i64, i64>,
    /// No sign-up or check-in is accepted any more (settling or settled).
    pub closed: bool,
}

impl RoundState {
    /// The state the committed `entries` of a round describe; `closed` when it is settled.
    pub fn from_entries(entries: impl IntoIterator<Item = RoundEntry>, closed: bool) -> Self {
        let mut state = RoundState {
            closed,
            ..Default::default()
        };
        for e in entries {
            match e.kind.as_str() {
                PICK_SIGN_KIND => {
                    state.signed.insert(e.user_id, -e.amount);
                }
                PICK_CHECK_KIND => {
                    state.checked.insert(
                        e.user_id,
                        CheckRecord {
                            at: e.created_at,
                            entry_id: e.entry_id,
                        },
                    );
                }
                PICK_PAY_KIND => {
                    state.paid.insert(e.user_id, e.amount);
                }
                _ => {}
            }
        }
        // Payouts are only sent once the round is closed.
        state.closed |= !state.paid.is_empty();
        state
    }

    /// The earliest committed check-in.
    pub fn first_check(&self) -> Option<(i64, CheckRecord)> {
        self.checked
            .iter()
            .min_by_key(|(_, c)| (c.at, c.entry_id))
            .map(|(u, c)| (*u, *c))
    }
}

/// The round as `show`, `rank` and the websocket state present it. Counts hold committed
/// sign-ups and check-ins only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundView {
    pub app_id: String,
    pub period: String,
    pub signups: i64,
    pub checkins: i64,
    /// Sum of the stakes of everyone signed up.
    pub stakes: i64,
    /// The asking user signed up.
    pub signed: bool,
    /// The asking user checked in.
    pub checked: bool,
    /// The earliest check-in: user and record.
    pub first_check: Option<(i64, CheckRecord)>,
    pub closed: bool,
}

/// Signs a user up for the round, paying `ticket` points.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Outcome, ActivityError>")]
pub struct SignUp {
    pub user_id: i64,
    /// The app's ticket when the user signs up; what the user stakes.
    pub ticket: i64,
}

/// Checks a user in.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Outcome, ActivityError>")]
pub struct CheckIn {
    pub user_id: i64,
    /// Seconds since the start of the round's day in business time.
    pub second_of_day: u32,
    /// The check-in window, seconds of the day, inclusive start, exclusive end.
    pub window: (u32, u32),
}

/// Reads the round, as seen by `user_id` if given.
#[derive(Message, Debug, Clone)]
#[rtype(result = "RoundView")]
pub struct ViewRound {
    pub user_id: Option<i64>,
}

/// Closes the round for settlement: from now on sign-ups and check-ins are refused. Answers
/// [`ActivityError::Busy`] while changes decided before the close are still committing; the
/// caller asks again shortly (asking twice is harmless), and reads the database once it is `Ok`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), ActivityError>")]
pub struct Close;

/// One planned payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub user_id: i64,
    pub amount: i64,
    pub description: String,
}

/// Sends the settlement's payouts to the ledger; answers each one's result once all committed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<(i64, Result<Outcome, LedgerError>)>")]
pub struct Pay {
    pub payouts: Vec<Payout>,
    /// Expiry of the credited points (epoch ms), the app's default.
    pub expires_at: Option<i64>,
}

/// Called after every committed check-in (the websocket state of the app's rounds).
pub type RoundSink = Arc<dyn Fn(&RoundView) + Send + Sync>;

/// The actor of one morning round.
pub struct MorningActor {
    app_id: String,
    period: String,
    state: RoundState,
    /// Users whose sign-up is reserved but not committed yet (not counted in views).
    signing: HashSet<i64>,
    /// Sign-ups and check-ins waiting for their commit.
    life: Lifecycle,
    ledger: Addr<LedgerActor>,
    on_check: RoundSink,
    /// The lease every change of the round carries (several nodes).
    fence: Option<Fence>,
}

impl MorningActor {
    /// A round actor continuing from `state`, read from the database.
    pub fn new(
        app_id: impl Into<String>,
        period: impl Into<String>,
        state: RoundState,
        ledger: Addr<LedgerActor>,
        on_check: RoundSink,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            period: period.into(),
            state,
            signing: HashSet::new(),
            life: Lifecycle::new(),
            ledger,
            on_check,
            fence: None,
        }
    }

    /// The actor with every change fenced by `fence` (the lease of the app's rounds).
    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// The committed state: reserved sign-ups and check-ins count once their commit is done.
    fn view(&self, user_id: Option<i64>) -> RoundView {
        let signed = |u: &i64| !self.signing.contains(u);
        // Reserved check-ins carry `i64::MAX` until committed.
        let checked = |c: &CheckRecord| c.at != i64::MAX;
        RoundView {
            app_id: self.app_id.clone(),
            period: self.period.clone(),
            signups: self.state.signed.keys().filter(|u| signed(u)).count() as i64,
            checkins: self.state.checked.values().filter(|c| checked(c)).count() as i64,
            stakes: self
                .state
                .signed
                .iter()
                .filter(|(u, _)| signed(u))
                .map(|(_, stake)| stake)
                .sum(),
            signed: user_id.is_some_and(|u| self.state.signed.contains_key(&u) && signed(&u)),
            checked: user_id
                .and_then(|u| self.state.checked.get(&u))
                .is_some_and(checked),
            first_check: self.state.first_check().filter(|(_, c)| checked(c)),
            closed: self.state.closed,
        }
    }

    /// Refusals every new sign-up or check-in shares.
    fn accepting(&self) -> Result<(), ActivityError> {
        if self.life.retiring {
            return Err(ActivityError::Busy);
        }
        if self.state.closed {
            return Err(Refusal::Ended.into());
        }
        if self.life.pending >= ACTIVITY_PENDING_MAX {
            return Err(ActivityError::Busy);
        }
        Ok(())
    }
}

impl Actor for MorningActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        start_lifecycle(ctx);
    }
}

/// Unwraps the ledger actor's answer (a mailbox error counts as a storage failure).
fn committed(
    result: Result<Result<Outcome, LedgerError>, MailboxError>,
) -> Result<Outcome, ActivityError> {
    result
        .map_err(ActivityError::from)
        .and_then(|r| r.map_err(Into::into))
}

impl Handler<SignUp> for MorningActor {
    type Result = ResponseActFuture<Self, Result<Outcome, ActivityError>>;

    /// Reserves the user's place, commits the ticket and answers after the commit; a refused
    /// commit frees the place again.
    fn handle(&mut self, msg: SignUp, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        let decided = self.accepting().and_then(|()| {
            if self.state.signed.contains_key(&msg.user_id) {
                return Err(Refusal::AlreadyDone.into());
            }
            if msg.ticket < 0 {
                return Err(LedgerError::InvalidAmount(msg.ticket).into());
            }
            Ok(())
        });
        if let Err(e) = decided {
            return Box::pin(fut::ready(Err(e)));
        }
        self.state.signed.insert(msg.user_id, msg.ticket);
        self.signing.insert(msg.user_id);
        self.life.pending += 1;
        let key = sign_key(&self.app_id, &self.period, msg.user_id);
        let change = Change {
            app_id: self.app_id.clone(),
            user_id: msg.user_id,
            amount: -msg.ticket,
            kind: PICK_SIGN_KIND.into(),
            idem_key: key.clone(),
            reference: round_reference(&self.period),
            description: "早起打卡报名".into(),
            expires_at: None,
            // The counter makes a free ticket (amount zero) a valid change. A second sign-up
            // through another process carries the same key: a replay, never a second charge.
            limits: vec![Limit { key, max: 1 }],
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: self.fence.clone(),
        };
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            actor.signing.remove(&msg.user_id);
            match committed(result) {
                Ok(outcome) => Ok(outcome),
                Err(ActivityError::Ledger(LedgerError::LimitReached { .. })) => {
                    // Another process signed the user up: the place stays taken.
                    Err(Refusal::AlreadyDone.into())
                }
                Err(e) => {
                    actor.state.signed.remove(&msg.user_id);
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<CheckIn> for MorningActor {
    type Result = ResponseActFuture<Self, Result<Outcome, ActivityError>>;

    /// Checks the window, the sign-up and a first check-in, reserves it, commits it and answers
    /// after the commit; a refused commit takes the check-in back.
    fn handle(&mut self, msg: CheckIn, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        let decided = self.accepting().and_then(|()| {
            let (start, end) = msg.window;
            if msg.second_of_day < start {
                return Err(Refusal::NotStarted.into());
            }
            if msg.second_of_day >= end {
                return Err(Refusal::Ended.into());
            }
            if !self.state.signed.contains_key(&msg.user_id) {
                return Err(Refusal::NotSignedUp.into());
            }
            if self.state.checked.contains_key(&msg.user_id) {
                return Err(Refusal::AlreadyDone.into());
            }
            Ok(())
        });
        if let Err(e) = decided {
            return Box::pin(fut::ready(Err(e)));
        }
        // Reserved with an unknown time; the commit's time replaces it.
        self.state.checked.insert(
            msg.user_id,
            CheckRecord {
                at: i64::MAX,
                entry_id: i64::MAX,
            },
        );
        self.life.pending += 1;
        let key = check_key(&self.app_id, &self.period, msg.user_id);
        let change = Change {
            app_id: self.app_id.clone(),
            user_id: msg.user_id,
            amount: 0,
            kind: PICK_CHECK_KIND.into(),
            idem_key: key.clone(),
            reference: round_reference(&self.period),
            description: "早起打卡".into(),
            expires_at: None,
            limits: vec![Limit { key, max: 1 }],
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: self.fence.clone(),
        };
        let commit = self.ledger.send(Submit(change));
        Box::pin(commit.into_actor(self).map(move |result, actor, _ctx| {
            actor.life.pending -= 1;
            match committed(result) {
                Ok(outcome) => {
                    actor.state.checked.insert(
                        msg.user_id,
                        CheckRecord {
                            at: outcome.created_at,
                            entry_id: outcome.entry_id,
                        },
                    );
                    (actor.on_check)(&actor.view(None));
                    Ok(outcome)
                }
                Err(ActivityError::Ledger(LedgerError::LimitReached { .. })) => {
                    // Another process checked the user in; its entry holds the real time, which
                    // the next start of this actor reads.
                    Err(Refusal::AlreadyDone.into())
                }
                Err(e) => {
                    actor.state.checked.remove(&msg.user_id);
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<ViewRound> for MorningActor {
    type Result = MessageResult<ViewRound>;

    /// The committed counts (reservations still committing are not counted).
    fn handle(&mut self, msg: ViewRound, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        MessageResult(self.view(msg.user_id))
    }
}

impl Handler<Close> for MorningActor {
    type Result = Result<(), ActivityError>;

    /// Stops accepting sign-ups and check-ins; `Ok` once nothing is committing any more.
    fn handle(&mut self, _msg: Close, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.state.closed = true;
        if self.life.pending > 0 {
            return Err(ActivityError::Busy);
        }
        Ok(())
    }
}

impl Handler<Pay> for MorningActor {
    type Result = ResponseActFuture<Self, Vec<(i64, Result<Outcome, LedgerError>)>>;

    /// Sends every payout at once (the ledger batches them) and answers when all are answered.
    fn handle(&mut self, msg: Pay, _ctx: &mut Self::Context) -> Self::Result {
        self.life.touch();
        self.state.closed = true;
        let sends = msg.payouts.into_iter().map(|p| {
            let change = Change {
                app_id: self.app_id.clone(),
                user_id: p.user_id,
                amount: p.amount,
                kind: PICK_PAY_KIND.into(),
                idem_key: pay_key(&self.app_id, &self.period, p.user_id),
                reference: round_reference(&self.period),
                description: p.description,
                expires_at: msg.expires_at,
                limits: Vec::new(),
                legs: Vec::new(),
                order: None,
                expire_lot: None,
                fence: self.fence.clone(),
            };
            let commit = self.ledger.send(Submit(change));
            async move {
                let result = commit
                    .await
                    .unwrap_or_else(|_| Err(LedgerError::Storage("ledger stopped".into())));
                (p.user_id, result)
            }
        });
        let all = futures_util::future::join_all(sends);
        Box::pin(all.into_actor(self).map(|results, actor, _ctx| {
            for (user_id, result) in &results {
                if let Ok(outcome) = result {
                    actor.state.paid.insert(*user_id, outcome.amount);
                }
            }
            results
        }))
    }
}

activity_actor!(MorningActor);

// ---------------------------------------------------------------------------------------------
// Settlement planners

/// Shares `total` points among `winners` (given earliest check-in first) exactly: each gets
/// `total / k`, and the remainder goes one point each to the earliest ones. The shares always
/// add up to `total`; an empty list gets nothing (the caller refunds the stakes instead).
pub fn split_payouts(total: i64, winners: &[i64]) -> Vec<(i64, i64)> {
    let k = winners.len() as i64;
    if k == 0 || total <= 0 {
        return winners.iter().map(|&u| (u, 0)).collect();
    }
    let base = total / k;
    let extra = total % k;
    winners
        .iter()
        .enumerate()
        .map(|(i, &u)| (u, base + i64::from((i as i64) < extra)))
        .collect()
}

/// A `random`-mode payout: uniform in `[min, max]`, multiplied by a factor uniform in
/// `[inflation_min, inflation_max]` when `streak` (consecutive check-ins including this one) is
/// a positive multiple of [`MORNING_STREAK_CYCLE_DAYS`]. Returns `(payout, factor)`.
pub fn random_payout(
    min: i64,
    max: i64,
    inflation: (i64, i64),
    streak: i64,
    rng: &mut impl rand::Rng,
) -> (i64, i64) {
    let (lo, hi) = (min.min(max), min.max(max));
    let base = rng.random_range(lo..=hi);
    let factor = if streak > 0 && streak % MORNING_STREAK_CYCLE_DAYS == 0 {
        let (flo, fhi) = (inflation.0.min(inflation.1), inflation.0.max(inflation.1));
        rng.random_range(flo..=fhi)
    } else {
        1
    };
    (base.saturating_mul(factor), factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_exact_with_the_remainder_to_the_earliest() {
        for (total, k) in [(100, 3), (10, 10), (7, 3), (5, 8), (1_000_001, 7), (0, 4)] {
            let winners: Vec<i64> = (1..=k).collect();
            let shares = split_payouts(total, &winners);
            assert_eq!(shares.iter().map(|s| s.1).sum::<i64>(), total.max(0));
            // Earlier check-ins never get less than later ones, and at most one point more.
            for pair in shares.windows(2) {
                assert!(
                    pair[0].1 >= pair[1].1 && pair[0].1 - pair[1].1 <= 1,
                    "{shares:?}"
                );
            }
        }
        assert_eq!(split_payouts(7, &[9, 8, 7]), vec![(9, 3), (8, 2), (7, 2)]);
        assert!(split_payouts(50, &[]).is_empty());
    }

    #[test]
    fn random_payouts_stay_in_bounds_and_inflate_every_seventh_day() {
        let mut rng = rand::rng();
        for streak in 0..30 {
            let (p, f) = random_payout(10, 100, (1, 3), streak, &mut rng);
            if streak > 0 && streak % 7 == 0 {
                assert!((1..=3).contains(&f));
                assert!((10..=300).contains(&p), "{p}");
            } else {
                assert_eq!(f, 1);
                assert!((10..=100).contains(&p), "{p}");
            }
        }
        assert_eq!(random_payout(5, 5, (3, 3), 7, &mut rng), (15, 3));
    }

    #[test]
    fn state_rebuilds_from_entries() {
        let e = |user_id, kind: &str, amount, entry_id| RoundEntry {
            user_id,
            kind: kind.into(),
            amount,
            entry_id,
            created_at: 1_000 + entry_id,
        };
        let state = RoundState::from_entries(
            vec![
                e(1, PICK_SIGN_KIND, -10, 1),
                e(2, PICK_SIGN_KIND, -10, 2),
                e(2, PICK_CHECK_KIND, 0, 4),
                e(1, PICK_CHECK_KIND, 0, 3),
            ],
            false,
        );
        assert_eq!(state.signed.values().sum::<i64>(), 20);
        assert_eq!(state.first_check().map(|f| f.0), Some(1));
        assert!(!state.closed);
        let paid = RoundState::from_entries(vec![e(1, PICK_PAY_KIND, 30, 9)], false);
        assert!(paid.closed);
    }
}
