//! The pure half of the ledger: what a change is, and [`plan_batch`], which decides every change
//! of a batch in memory from the state the store read inside the transaction.

use std::collections::HashMap;

/// Changes above this magnitude are refused before they reach the database: it keeps every sum
/// of a user's entries far inside `i64` and catches unit mistakes (cents vs points).
pub const CHANGE_AMOUNT_ABS_MAX: i64 = 1_000_000_000;

/// The entry kind of an expiry.
pub const EXPIRE_KIND: &str = "expire";

/// One point change: a grant (positive) or a deduction (negative) for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The app (tenant) the user belongs to; idempotency keys are unique per app.
    pub app_id: String,
    /// Internal user id.
    pub user_id: i64,
    /// Signed amount in points; never zero.
    pub amount: i64,
    /// What kind of change this is (`grant`, `deduct`, `sign`, `task`, an event type, ...).
    pub kind: String,
    /// Idempotency key, unique per app. A replay returns the original outcome.
    pub idem_key: String,
    /// What the change refers to (a task id, a prize id, an order id).
    pub reference: String,
    /// Human-readable description shown in the user's history.
    pub description: String,
    /// When the credited points expire (epoch ms); `None` never. Ignored for deductions.
    pub expires_at: Option<i64>,
    /// Counters this change counts against (a daily cap, a card's stock, one packet of a pool):
    /// the change applies only while every one is below its ceiling, and moves each by one, in
    /// the same transaction as the entries.
    pub limits: Vec<Limit>,
    /// Entries applied before the main one, all or nothing with it (the ticket paid for a grab).
    /// Each is stored under the key `<idem_key>#<index>`.
    pub legs: Vec<Leg>,
    /// A reward delivered outside the ledger (Alipay points, cash, a voucher, goods), stored as a
    /// fulfilment order in the same commit as the entries.
    pub order: Option<OrderSpec>,
    /// The stored credit lot this change expires (see [`Change::expiry`]); `None` for every
    /// other change.
    pub expire_lot: Option<i64>,
    /// The activity lease the change was decided under, when several nodes share the database:
    /// the batch applies it only while the lease row still holds that epoch.
    pub fence: Option<Fence>,
}

/// An activity and the lease epoch its owner was given. A newer owner raises the epoch, so a
/// change fenced with an older one is refused by the commit that would have written it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub activity: std::sync::Arc<str>,
    pub epoch: i64,
}

impl Change {
    /// A plain change: one entry, no counters, no legs, no order.
    pub fn simple(
        app_id: impl Into<String>,
        user_id: i64,
        amount: i64,
        kind: impl Into<String>,
        idem_key: impl Into<String>,
    ) -> Self {
        Change {
            app_id: app_id.into(),
            user_id,
            amount,
            kind: kind.into(),
            idem_key: idem_key.into(),
            reference: String::new(),
            description: String::new(),
            expires_at: None,
            limits: Vec::new(),
            legs: Vec::new(),
            order: None,
            expire_lot: None,
            fence: None,
        }
    }

    /// The expiry of one stored credit lot. Its amount is not fixed by the caller: the batch
    /// debits what the lot still holds when it is planned (a debit committed in between may have
    /// spent part of it), and the entry carries the lot's expiry instant. The key is
    /// `expire:<lot>`, so expiring a lot twice is a replay.
    pub fn expiry(app_id: impl Into<String>, user_id: i64, lot_id: i64) -> Self {
        Change {
            reference: format!("lot:{lot_id}"),
            description: "points expired".into(),
            expire_lot: Some(lot_id),
            ..Change::simple(app_id, user_id, 0, EXPIRE_KIND, format!("expire:{lot_id}"))
        }
    }

    /// The first amount of the change that cannot be applied (zero without a record, or out of
    /// range), if any. An expiry's amount is decided by the batch, so it has none.
    fn invalid_amount(&self) -> Option<i64> {
        if self.expire_lot.is_some() {
            return None;
        }
        let in_range = |a: i64| a.unsigned_abs() <= CHANGE_AMOUNT_ABS_MAX.unsigned_abs();
        self.amounts()
            .find(|&a| !in_range(a))
            .or_else(|| self.legs.iter().map(|l| l.amount).find(|&a| a == 0))
            .or_else(|| (self.amount == 0 && !self.records_more()).then_some(0))
    }

    /// Whether the change records something besides points, which makes a zero amount
    /// meaningful (a claim of an outside reward, a check-in).
    fn records_more(&self) -> bool {
        !self.limits.is_empty() || !self.legs.is_empty() || self.order.is_some()
    }

    /// Every amount of the change in the order it applies: the legs, then the main entry.
    fn amounts(&self) -> impl Iterator<Item = i64> + '_ {
        self.legs
            .iter()
            .map(|l| l.amount)
            .chain(std::iter::once(self.amount))
    }
}

/// An extra entry of a [`Change`], applied before its main entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// Signed amount in points; never zero.
    pub amount: i64,
    pub kind: String,
    pub description: String,
}

/// A reward that the fulfilment outbox delivers to the configured webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    /// What is delivered, e.g. `集分宝`, `现金红包`, `电子权益`, `实物`.
    pub reward_type: String,
    /// How much of it (Alipay points, cents, pieces).
    pub amount: i64,
    /// Free-form JSON the receiver needs (card, prize, address).
    pub detail: String,
}

/// A named counter with a ceiling: the change applies only while the counter is below `max`,
/// and applying it adds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Counter name, e.g. `event:<app>:<user>:<type>:<day>`.
    pub key: String,
    /// Most changes the counter admits.
    pub max: i64,
}

/// The committed result of a change, identical for the original call and every replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Ledger entry id.
    pub entry_id: i64,
    /// The user's balance right after this change.
    pub balance_after: i64,
    /// The signed amount that was applied.
    pub amount: i64,
    /// Commit time of the entry (epoch ms).
    pub created_at: i64,
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The deduction would make the balance negative.
    #[error("insufficient points: balance {balance}, needed {needed}")]
    Insufficient { balance: i64, needed: i64 },
    /// The idempotency key was used before with other parameters.
    #[error("idempotency key already used with other parameters")]
    Conflict,
    /// A counter of the change reached its ceiling (a daily cap, a stock); `key` names the
    /// first of the change's limits that refused.
    #[error("limit reached")]
    LimitReached { key: String },
    /// The amount is zero or out of range.
    #[error("invalid amount {0}")]
    InvalidAmount(i64),
    /// The queue is full; try again later.
    #[error("ledger busy, try again")]
    Busy,
    /// The commit failed; nothing of the change was written.
    #[error("ledger storage unavailable: {0}")]
    Storage(String),
    /// The change's activity has a newer owner than the one that decided it; nothing was
    /// written. Its actor steps down and the request goes to the new owner.
    #[error("activity {activity} moved to another node")]
    Fenced { activity: String },
    /// The database refused a value of this change (its batch was committed without it);
    /// nothing of the change was written.
    #[error("the database refused the change: {0}")]
    Rejected(String),
}

/// An entry already stored under an idempotency key, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub user_id: i64,
    pub amount: i64,
    pub kind: String,
    pub reference: String,
    pub outcome: Outcome,
}

impl StoredEntry {
    /// Whether `change` asks for exactly what this entry recorded.
    fn matches(&self, change: &Change) -> bool {
        same_request(
            (self.user_id, self.amount, &self.kind, &self.reference),
            change,
        )
    }
}

/// Whether a change asks for what `(user, amount, kind, reference)` recorded. An expiry's amount
/// is decided by the batch, so only its user, kind and reference (which names the lot) count.
fn same_request(recorded: (i64, i64, &str, &str), change: &Change) -> bool {
    let (user_id, amount, kind, reference) = recorded;
    user_id == change.user_id
        && (change.expire_lot.is_some() || amount == change.amount)
        && kind == change.kind
        && reference == change.reference
}

/// A credit lot: the part of one credit that has not been spent or expired yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    /// Stored lot id; `None` for a lot created by this batch.
    pub id: Option<i64>,
    /// Index into [`BatchPlan::entries`] of the credit that created it (new lots only).
    pub entry_index: Option<usize>,
    pub remaining: i64,
    pub expires_at: Option<i64>,
}

impl Lot {
    /// Consumption order: earliest expiry first, never-expiring last, then oldest first.
    fn order_key(&self) -> (i64, i64, usize) {
        (
            self.expires_at.unwrap_or(i64::MAX),
            self.id.unwrap_or(i64::MAX),
            self.entry_index.unwrap_or(0),
        )
    }
}

/// A ledger entry the batch will insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Index of the change in the batch.
    pub change_index: usize,
    /// Which leg of the change this entry is; `None` for the main entry.
    pub leg: Option<usize>,
    pub amount: i64,
    pub balance_after: i64,
    /// The expiry the entry records: a credit's own, or the expired lot's for an expiry.
    pub expires_at: Option<i64>,
}

impl NewEntry {
    /// The entry's idempotency key: the change's own for the main entry, `<key>#<leg>` for a leg.
    pub fn idem_key(&self, change: &Change) -> String {
        match self.leg {
            None => change.idem_key.clone(),
            Some(leg) => format!("{}#{leg}", change.idem_key),
        }
    }

    /// The entry's kind and description.
    pub fn texts<'c>(&self, change: &'c Change) -> (&'c str, &'c str) {
        match self.leg.and_then(|leg| change.legs.get(leg)) {
            None => (&change.kind, &change.description),
            Some(leg) => (&leg.kind, &leg.description),
        }
    }
}

/// What one batch will write, decided in memory from the state read inside the transaction.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// Entries to insert, in batch order.
    pub entries: Vec<NewEntry>,
    /// Final balance of every user the batch touched.
    pub balances: HashMap<i64, i64>,
    /// New lots per user (remaining already reduced by later debits of the same batch).
    pub new_lots: Vec<(i64, Lot)>,
    /// Stored lots whose remaining changed: (lot id, new remaining).
    pub lot_updates: Vec<(i64, i64)>,
    /// Per change: `Ok(Some(i))` applied, its main entry being `entries[i]`, `Ok(None)` replay of a stored entry
    /// (answered with [`BatchPlan::replays`]), `Err` refused.
    pub decisions: Vec<Result<Option<usize>, LedgerError>>,
    /// Outcomes for replays, by change index.
    pub replays: HashMap<usize, Outcome>,
    /// Counters the batch moved: (key, new count).
    pub counter_updates: Vec<(String, i64)>,
}

/// Decides every change of a batch.
///
/// `balances` holds the current (locked) balance of every user in the batch (absent = 0);
/// `lots` the user's unspent lots; `stored` the entries already committed under the batch's
/// (app, key) pairs;
/// `counters` the current value of every counter the batch's limits name (absent = 0).
/// Changes are decided in batch order, so a credit earlier in the batch can fund a debit later in
/// it, and a key repeated inside the batch behaves like a replay of its first use.
pub fn plan_batch(
    changes: &[Change],
    balances: HashMap<i64, i64>,
    lots: HashMap<i64, Vec<Lot>>,
    stored: &HashMap<(String, String), StoredEntry>,
    counters: HashMap<String, i64>,
) -> BatchPlan {
    plan_fenced_batch(changes, balances, lots, stored, counters, &HashMap::new())
}

/// [`plan_batch`] with the lease epochs the batch read (activity -> epoch, rows locked so no
/// takeover commits before this batch does): a change whose [`Fence`] names another epoch, or
/// an activity without a lease row, is refused with [`LedgerError::Fenced`].
pub fn plan_fenced_batch(
    changes: &[Change],
    mut balances: HashMap<i64, i64>,
    mut lots: HashMap<i64, Vec<Lot>>,
    stored: &HashMap<(String, String), StoredEntry>,
    mut counters: HashMap<String, i64>,
    leases: &HashMap<String, i64>,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    // Keys first used in this batch: key -> change index of that first use.
    let mut batch_keys: HashMap<(&str, &str), usize> = HashMap::new();
    let mut lot_changed: HashMap<i64, i64> = HashMap::new();
    let mut moved_counters: std::collections::BTreeSet<String> = Default::default();
    for list in lots.values_mut() {
        list.sort_by_key(Lot::order_key);
    }

    for (index, change) in changes.iter().enumerate() {
        if let Some(bad) = change.invalid_amount() {
            plan.decisions.push(Err(LedgerError::InvalidAmount(bad)));
            continue;
        }
        if let Some(fence) = &change.fence {
            if leases.get(fence.activity.as_ref()) != Some(&fence.epoch) {
                plan.decisions.push(Err(LedgerError::Fenced {
                    activity: fence.activity.to_string(),
                }));
                continue;
            }
        }
        let key = (change.app_id.clone(), change.idem_key.clone());
        if let Some(entry) = stored.get(&key) {
            plan.decisions.push(if entry.matches(change) {
                plan.replays.insert(index, entry.outcome.clone());
                Ok(None)
            } else {
                Err(LedgerError::Conflict)
            });
            continue;
        }
        if let Some(&first) = batch_keys.get(&(change.app_id.as_str(), change.idem_key.as_str())) {
            let earlier = &changes[first];
            let same = same_request(
                (
                    earlier.user_id,
                    earlier.amount,
                    &earlier.kind,
                    &earlier.reference,
                ),
                change,
            ) && earlier.expire_lot == change.expire_lot;
            // The first use decides: a replay mirrors its decision, whatever it was.
            plan.decisions.push(if same {
                plan.decisions[first].clone()
            } else {
                Err(LedgerError::Conflict)
            });
            continue;
        }
        batch_keys.insert((change.app_id.as_str(), change.idem_key.as_str()), index);

        if let Some(full) = change
            .limits
            .iter()
            .find(|limit| counters.get(&limit.key).copied().unwrap_or(0) >= limit.max)
        {
            plan.decisions.push(Err(LedgerError::LimitReached {
                key: full.key.clone(),
            }));
            continue;
        }
        if let Some(lot_id) = change.expire_lot {
            let balance = balances.entry(change.user_id).or_insert(0);
            let lot = lots
                .get_mut(&change.user_id)
                .and_then(|list| list.iter_mut().find(|lot| lot.id == Some(lot_id)));
            // The balance always covers the open lots; `min` only guards a damaged database.
            let amount = lot.as_ref().map_or(0, |lot| lot.remaining.min(*balance));
            let Some(lot) = lot.filter(|_| amount > 0) else {
                // Spent (or expired) already, or not this user's lot: nothing left to expire.
                plan.decisions.push(Err(LedgerError::InvalidAmount(0)));
                continue;
            };
            lot.remaining = 0;
            lot_changed.insert(lot_id, 0);
            *balance -= amount;
            plan.decisions.push(Ok(Some(plan.entries.len())));
            plan.entries.push(NewEntry {
                change_index: index,
                leg: None,
                amount: -amount,
                balance_after: *balance,
                expires_at: lot.expires_at,
            });
            continue;
        }
        let balance = balances.entry(change.user_id).or_insert(0);
        // All or nothing: the balance must stay non-negative after every entry of the change.
        let mut running = *balance;
        let mut debits = 0;
        let mut short = false;
        for amount in change.amounts() {
            running += amount;
            debits += (-amount).max(0);
            short |= running < 0;
        }
        if short {
            plan.decisions.push(Err(LedgerError::Insufficient {
                balance: *balance,
                needed: debits,
            }));
            continue;
        }
        let user_lots = lots.entry(change.user_id).or_default();
        let legs = change
            .legs
            .iter()
            .enumerate()
            .map(|(i, l)| (Some(i), l.amount));
        for (leg, amount) in legs.chain(std::iter::once((None, change.amount))) {
            if amount == 0 {
                // A zero main entry records a claim; it moves no points and creates no lot.
            } else if amount < 0 {
                let mut left = -amount;
                for lot in user_lots.iter_mut() {
                    if left == 0 {
                        break;
                    }
                    let take = lot.remaining.min(left);
                    if take == 0 {
                        continue;
                    }
                    lot.remaining -= take;
                    left -= take;
                    if let Some(id) = lot.id {
                        lot_changed.insert(id, lot.remaining);
                    }
                }
            } else {
                let lot = Lot {
                    id: None,
                    entry_index: Some(plan.entries.len()),
                    remaining: amount,
                    expires_at: change.expires_at,
                };
                let at = user_lots.partition_point(|l| l.order_key() <= lot.order_key());
                user_lots.insert(at, lot);
            }
            *balance += amount;
            if leg.is_none() {
                plan.decisions.push(Ok(Some(plan.entries.len())));
            }
            plan.entries.push(NewEntry {
                change_index: index,
                leg,
                amount,
                balance_after: *balance,
                expires_at: change.expires_at.filter(|_| amount > 0),
            });
        }
        for limit in &change.limits {
            *counters.entry(limit.key.clone()).or_insert(0) += 1;
            moved_counters.insert(limit.key.clone());
        }
    }

    for (user, list) in lots {
        for lot in list {
            if lot.id.is_none() {
                plan.new_lots.push((user, lot));
            }
        }
    }
    plan.new_lots
        .sort_by_key(|(_, lot)| lot.entry_index.unwrap_or(usize::MAX));
    let mut updates: Vec<(i64, i64)> = lot_changed.into_iter().collect();
    updates.sort_unstable();
    plan.lot_updates = updates;
    plan.counter_updates = moved_counters
        .into_iter()
        .map(|key| {
            let count = counters.get(&key).copied().unwrap_or(0);
            (key, count)
        })
        .collect();
    let touched: std::collections::HashSet<i64> = plan
        .entries
        .iter()
        .map(|e| changes[e.change_index].user_id)
        .collect();
    plan.balances = balances
        .into_iter()
        .filter(|(user, _)| touched.contains(user))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: i64, amount: i64, key: &str) -> Change {
        let kind = if amount > 0 { "grant" } else { "deduct" };
        Change::simple("default", user, amount, kind, key)
    }

    #[test]
    fn a_change_fenced_with_an_old_epoch_is_refused_and_its_neighbours_apply() {
        let fenced = |user, key: &str, activity: &str, epoch| Change {
            fence: Some(Fence {
                activity: activity.into(),
                epoch,
            }),
            ..change(user, 5, key)
        };
        let batch = vec![
            fenced(1, "old", "redpack:card:1", 1),
            change(1, 3, "plain"),
            fenced(2, "current", "redpack:card:1", 2),
            fenced(3, "no-lease", "redpack:card:9", 1),
        ];
        let leases = HashMap::from([("redpack:card:1".to_string(), 2)]);
        let plan = plan_fenced_batch(
            &batch,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
            &leases,
        );
        assert_eq!(
            plan.decisions[0],
            Err(LedgerError::Fenced {
                activity: "redpack:card:1".into()
            })
        );
        assert!(matches!(plan.decisions[1], Ok(Some(_))));
        assert!(matches!(plan.decisions[2], Ok(Some(_))));
        assert!(matches!(plan.decisions[3], Err(LedgerError::Fenced { .. })));
        // Nothing of the refused changes is written: user 1 gets only the plain 3.
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.balances.get(&1), Some(&3));
        assert_eq!(plan.balances.get(&2), Some(&5));
        assert!(!plan.balances.contains_key(&3));
        // Without lease rows every fenced change is refused.
        let plan = plan_batch(
            &batch,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.entries.len(), 1);
    }

    fn stored_lot(id: i64, remaining: i64, expires_at: Option<i64>) -> Lot {
        Lot {
            id: Some(id),
            entry_index: None,
            remaining,
            expires_at,
        }
    }

    #[test]
    fn deduction_beyond_balance_fails_alone() {
        let changes = vec![change(1, 10, "a"), change(1, -15, "b"), change(1, -10, "c")];
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        assert_eq!(
            plan.decisions[1],
            Err(LedgerError::Insufficient {
                balance: 10,
                needed: 15
            })
        );
        assert_eq!(plan.decisions[2], Ok(Some(1)));
        assert_eq!(plan.balances[&1], 0);
        assert_eq!(plan.entries[1].balance_after, 0);
        // The credit's lot was fully spent inside the batch.
        assert_eq!(plan.new_lots.len(), 1);
        assert_eq!(plan.new_lots[0].1.remaining, 0);
    }

    #[test]
    fn debits_consume_earliest_expiry_first() {
        let lots = HashMap::from([(
            7,
            vec![
                stored_lot(3, 5, None),
                stored_lot(2, 5, Some(2_000)),
                stored_lot(1, 5, Some(1_000)),
            ],
        )]);
        let plan = plan_batch(
            &[change(7, -7, "x")],
            HashMap::from([(7, 15)]),
            lots,
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.lot_updates, vec![(1, 0), (2, 3)]);
        assert_eq!(plan.balances[&7], 8);
    }

    #[test]
    fn replay_and_conflict_by_key() {
        let outcome = Outcome {
            entry_id: 9,
            balance_after: 50,
            amount: 5,
            created_at: 1,
        };
        let stored = HashMap::from([(
            ("default".to_string(), "k".to_string()),
            StoredEntry {
                user_id: 1,
                amount: 5,
                kind: "grant".into(),
                reference: String::new(),
                outcome: outcome.clone(),
            },
        )]);
        let changes = vec![
            change(1, 5, "k"),
            change(1, 6, "k"),
            change(2, 3, "n"),
            change(2, 3, "n"),
            change(2, 4, "n"),
        ];
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &stored,
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(None));
        assert_eq!(plan.replays[&0], outcome);
        assert_eq!(plan.decisions[1], Err(LedgerError::Conflict));
        assert_eq!(plan.decisions[2], Ok(Some(0)));
        assert_eq!(
            plan.decisions[3],
            Ok(Some(0)),
            "in-batch replay mirrors the first use"
        );
        assert_eq!(plan.decisions[4], Err(LedgerError::Conflict));
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.balances[&2], 3);
    }

    #[test]
    fn zero_and_huge_amounts_are_refused() {
        let plan = plan_batch(
            &[
                change(1, 0, "a"),
                change(1, CHANGE_AMOUNT_ABS_MAX + 1, "b"),
                change(1, i64::MIN, "c"),
            ],
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert!(matches!(
            plan.decisions[0],
            Err(LedgerError::InvalidAmount(0))
        ));
        assert!(matches!(
            plan.decisions[1],
            Err(LedgerError::InvalidAmount(_))
        ));
        assert!(plan.entries.is_empty());
        assert!(plan.balances.is_empty());
        // A zero amount that records a claim (a counter moves) is a change of its own.
        let claim = Change {
            limits: vec![Limit {
                key: "stock".into(),
                max: 1,
            }],
            ..change(1, 0, "claim")
        };
        let plan = plan_batch(
            &[claim],
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        assert!(plan.new_lots.is_empty());
    }

    #[test]
    fn legs_apply_all_or_nothing() {
        let grab = |user: i64, key: &str| Change {
            legs: vec![Leg {
                amount: -10,
                kind: "ticket".into(),
                description: String::new(),
            }],
            limits: vec![Limit {
                key: "stock".into(),
                max: 5,
            }],
            ..change(user, 30, key)
        };
        // User 1 can pay the ticket; user 2 cannot, and its prize must not fund the ticket.
        let plan = plan_batch(
            &[grab(1, "a"), grab(2, "b")],
            HashMap::from([(1, 10), (2, 5)]),
            HashMap::from([
                (1, vec![stored_lot(1, 10, None)]),
                (2, vec![stored_lot(2, 5, None)]),
            ]),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(Some(1)));
        assert_eq!(
            plan.decisions[1],
            Err(LedgerError::Insufficient {
                balance: 5,
                needed: 10
            })
        );
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.entries[0].leg, Some(0));
        assert_eq!(plan.entries[0].balance_after, 0);
        assert_eq!(plan.entries[1].balance_after, 30);
        assert_eq!(plan.balances.get(&2), None);
        assert_eq!(plan.counter_updates, vec![("stock".to_string(), 1)]);
    }

    #[test]
    fn limits_cap_changes_and_report_counts() {
        let limited = |key: &str| Change {
            limits: vec![Limit {
                key: "cap".into(),
                max: 2,
            }],
            ..change(1, 5, key)
        };
        let changes = vec![limited("a"), limited("b"), limited("c")];
        let counters = HashMap::from([("cap".to_string(), 1)]);
        let plan = plan_batch(
            &changes,
            HashMap::new(),
            HashMap::new(),
            &HashMap::new(),
            counters,
        );
        assert_eq!(plan.decisions[0], Ok(Some(0)));
        let refused = Err(LedgerError::LimitReached { key: "cap".into() });
        assert_eq!(plan.decisions[1], refused);
        assert_eq!(plan.decisions[2], refused);
        assert_eq!(plan.counter_updates, vec![("cap".to_string(), 2)]);
    }

    #[test]
    fn an_expiry_takes_what_its_lot_still_holds() {
        let lots = || {
            HashMap::from([(
                7,
                vec![stored_lot(1, 10, Some(1_000)), stored_lot(2, 10, None)],
            )])
        };
        // A debit earlier in the batch spent 8 of the due lot: the expiry takes the other 2, and
        // its entry records the lot's expiry.
        let changes = [change(7, -8, "spend"), Change::expiry("default", 7, 1)];
        let plan = plan_batch(
            &changes,
            HashMap::from([(7, 20)]),
            lots(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[1], Ok(Some(1)));
        assert_eq!(plan.entries[1].amount, -2);
        assert_eq!(plan.entries[1].expires_at, Some(1_000));
        assert_eq!(plan.entries[0].expires_at, None);
        assert_eq!(plan.balances[&7], 10);
        assert_eq!(plan.lot_updates, vec![(1, 0)]);

        // Expired first, the lot gives up all 10 and the debit spends the lot that never expires.
        let changes = [Change::expiry("default", 7, 1), change(7, -8, "spend")];
        let plan = plan_batch(
            &changes,
            HashMap::from([(7, 20)]),
            lots(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.entries[0].amount, -10);
        assert_eq!(plan.balances[&7], 2);
        assert_eq!(plan.lot_updates, vec![(1, 0), (2, 2)]);

        // A lot already spent, or another user's, has nothing to expire; the same expiry twice
        // in a batch is one.
        let changes = [
            Change::expiry("default", 7, 3),
            Change::expiry("other", 8, 1),
            Change::expiry("default", 7, 1),
            Change::expiry("default", 7, 1),
        ];
        let plan = plan_batch(
            &changes,
            HashMap::from([(7, 20)]),
            lots(),
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Err(LedgerError::InvalidAmount(0)));
        assert_eq!(plan.decisions[1], Err(LedgerError::InvalidAmount(0)));
        assert_eq!(plan.decisions[2], Ok(Some(0)));
        assert_eq!(plan.decisions[3], Ok(Some(0)));
        assert_eq!(plan.entries.len(), 1);
    }

    #[test]
    fn an_expiry_already_stored_replays_whatever_it_took() {
        let outcome = Outcome {
            entry_id: 4,
            balance_after: 3,
            amount: -6,
            created_at: 1,
        };
        let stored = HashMap::from([(
            ("default".to_string(), "expire:1".to_string()),
            StoredEntry {
                user_id: 7,
                amount: -6,
                kind: EXPIRE_KIND.into(),
                reference: "lot:1".into(),
                outcome: outcome.clone(),
            },
        )]);
        let plan = plan_batch(
            &[Change::expiry("default", 7, 1)],
            HashMap::from([(7, 3)]),
            HashMap::new(),
            &stored,
            HashMap::new(),
        );
        assert_eq!(plan.decisions[0], Ok(None));
        assert_eq!(plan.replays[&0], outcome);
    }
}
