//! The pure sign-in rules: milestone bonuses, streaks and the month view.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::{SIGNIN_DAILY_POINTS_DEFAULT, SIGNIN_MILESTONES_DEFAULT};

/// The sign-in rules of an app, as the pure functions below use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Points every sign-in pays.
    pub daily_points: i64,
    /// Streak day -> bonus points paid on reaching it.
    pub milestones: BTreeMap<i64, i64>,
    /// Whether the milestones come round again after the largest one.
    pub repeat: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            daily_points: SIGNIN_DAILY_POINTS_DEFAULT,
            milestones: SIGNIN_MILESTONES_DEFAULT.iter().copied().collect(),
            repeat: true,
        }
    }
}

impl Rules {
    /// The largest milestone day: the length of one round when milestones repeat.
    fn round_days(&self) -> Option<i64> {
        self.milestones.keys().next_back().copied()
    }

    /// The bonus paid on reaching `streak` consecutive days (0: none).
    pub fn bonus(&self, streak: i64) -> i64 {
        if streak < 1 {
            return 0;
        }
        let day = match (self.repeat, self.round_days()) {
            (true, Some(round)) => (streak - 1) % round + 1,
            _ => streak,
        };
        self.milestones.get(&day).copied().unwrap_or(0)
    }

    /// The next milestone after a streak of `streak` days: how many more daily sign-ins reach
    /// it and its bonus. `None` when no milestone with a positive bonus lies ahead.
    pub fn next_milestone(&self, streak: i64) -> Option<(i64, i64)> {
        // Within one round every milestone day comes up once, so looking that far is enough.
        let horizon = self.round_days()?;
        (1..=horizon)
            .map(|k| (k, self.bonus(streak.saturating_add(k))))
            .find(|(_, bonus)| *bonus > 0)
    }
}

/// The streak a sign-in on `today` reaches, given the user's latest sign-in before or on
/// `today` (its business date and streak): one more than yesterday's streak, 1 after a gap or
/// for a first sign-in. `None` when `today` is already signed.
pub fn streak_after(last: Option<(NaiveDate, i64)>, today: NaiveDate) -> Option<i64> {
    match last {
        Some((day, _)) if day >= today => None,
        Some((day, streak)) if day.succ_opt() == Some(today) => Some(streak.saturating_add(1)),
        _ => Some(1),
    }
}

/// The user's latest sign-in on or before today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSignin {
    pub day: NaiveDate,
    pub streak: i64,
    /// Points it paid, bonus included.
    pub points: i64,
}

/// 000 `v2/sign/detail.json`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignDetail {
    /// Consecutive days signed up to today (if signed today) or yesterday; 0 after a gap.
    pub combo_sum: i64,
    /// Points of today's sign-in, bonus included: what it paid when `is_sign`, what it would pay
    /// now otherwise.
    pub reward: i64,
    /// Signed dates of the current month (business time), `YYYY-MM-DD`, ascending.
    pub sign_days: Vec<String>,
    /// Dates of the rest of this month (today included while not signed) on which a milestone
    /// would pay if the user signs every day from now on: date -> bonus points.
    pub special_days: BTreeMap<String, i64>,
    /// Whether the user signed today.
    pub is_sign: bool,
    /// Daily sign-ins still needed (today's included while not signed) to reach the next
    /// milestone; 0 when none lies ahead.
    pub more_day: i64,
    /// The bonus of that milestone; 0 when none lies ahead.
    pub more_point: i64,
}

pub(super) fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Builds the month view from the latest sign-in and the signed days of the month.
pub fn detail(
    rules: &Rules,
    last: Option<LastSignin>,
    month_days: &[NaiveDate],
    today: NaiveDate,
) -> SignDetail {
    let is_sign = last.is_some_and(|l| l.day == today);
    let combo_sum = match last {
        Some(l) if l.day == today || l.day.succ_opt() == Some(today) => l.streak,
        _ => 0,
    };
    let reward = match last {
        Some(l) if is_sign => l.points,
        _ => rules.daily_points + rules.bonus(combo_sum + 1),
    };
    let streak_today = if is_sign { combo_sum } else { combo_sum + 1 };
    let mut special_days = BTreeMap::new();
    let mut offset = i64::from(is_sign);
    while let Some(day) = today.checked_add_days(chrono::Days::new(offset.unsigned_abs())) {
        if day.month() != today.month() {
            break;
        }
        let bonus = rules.bonus(streak_today + offset);
        if bonus > 0 {
            special_days.insert(date_text(day), bonus);
        }
        offset += 1;
    }
    let (more_day, more_point) = rules.next_milestone(combo_sum).unwrap_or((0, 0));
    SignDetail {
        combo_sum,
        reward,
        sign_days: month_days.iter().copied().map(date_text).collect(),
        special_days,
        is_sign,
        more_day,
        more_point,
    }
}

/// The first and last day of `today`'s month.
pub(super) fn month_bounds(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = today.with_day(1).unwrap_or(today);
    let last = first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(today);
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BizClock;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn streaks_grow_on_consecutive_days_and_restart_after_a_gap() {
        let today = d("2026-03-10");
        assert_eq!(streak_after(None, today), Some(1));
        assert_eq!(streak_after(Some((d("2026-03-09"), 6)), today), Some(7));
        assert_eq!(streak_after(Some((d("2026-03-08"), 6)), today), Some(1));
        assert_eq!(streak_after(Some((d("2025-03-09"), 6)), today), Some(1));
        assert_eq!(streak_after(Some((today, 3)), today), None);
        // Across a month and a year boundary.
        assert_eq!(
            streak_after(Some((d("2026-02-28"), 2)), d("2026-03-01")),
            Some(3)
        );
        assert_eq!(
            streak_after(Some((d("2025-12-31"), 9)), d("2026-01-01")),
            Some(10)
        );
    }

    #[test]
    fn one_sign_in_per_business_day_around_midnight() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        // 2026-01-02 00:00:00 in Shanghai is 2026-01-01 16:00:00 UTC.
        let midnight = clock.parse("2026-01-02 00:00:00").expect("time");
        assert_eq!(midnight, 1_767_283_200_000);
        let before = clock.date(midnight - 1);
        let after = clock.date(midnight);
        assert_eq!(before, d("2026-01-01"));
        assert_eq!(after, d("2026-01-02"));
        // A sign-in just before midnight, then just after: two days, the streak goes on.
        let first = streak_after(None, before).expect("first sign-in");
        assert_eq!(streak_after(Some((before, first)), after), Some(2));
        // Twice within one business day (00:00:00 and 23:59:59): the second is refused.
        let late = clock.date(midnight + 86_400_000 - 1);
        assert_eq!(late, after);
        assert_eq!(streak_after(Some((after, 2)), late), None);
        // In UTC both instants are on 2026-01-01: the business timezone is what counts.
        let utc = BizClock::new(chrono_tz::UTC);
        assert_eq!(utc.date(midnight - 1), utc.date(midnight));
    }

    #[test]
    fn milestones_pay_on_their_day_and_come_round_again() {
        let rules = Rules::default();
        let bonuses: Vec<(i64, i64)> = (1..=61)
            .map(|n| (n, rules.bonus(n)))
            .filter(|(_, b)| *b > 0)
            .collect();
        assert_eq!(
            bonuses,
            vec![
                (7, 2),
                (14, 4),
                (21, 7),
                (30, 11),
                (37, 2),
                (44, 4),
                (51, 7),
                (60, 11)
            ]
        );
        assert_eq!(rules.bonus(0), 0);
        let once = Rules {
            repeat: false,
            ..Rules::default()
        };
        assert_eq!(once.bonus(30), 11);
        assert_eq!(once.bonus(37), 0);
        assert_eq!(once.next_milestone(30), None);
        assert_eq!(once.next_milestone(29), Some((1, 11)));
    }

    #[test]
    fn next_milestone_counts_the_sign_ins_still_needed() {
        let rules = Rules::default();
        assert_eq!(rules.next_milestone(0), Some((7, 2)));
        assert_eq!(rules.next_milestone(6), Some((1, 2)));
        assert_eq!(rules.next_milestone(7), Some((7, 4)));
        assert_eq!(rules.next_milestone(21), Some((9, 11)));
        assert_eq!(rules.next_milestone(30), Some((7, 2)));
        let none = Rules {
            milestones: BTreeMap::new(),
            ..Rules::default()
        };
        assert_eq!(none.next_milestone(3), None);
        assert_eq!(none.bonus(7), 0);
        // A zero-point milestone is no milestone to look forward to.
        let zero = Rules {
            milestones: BTreeMap::from([(3, 0), (5, 1)]),
            ..Rules::default()
        };
        assert_eq!(zero.next_milestone(0), Some((5, 1)));
    }

    #[test]
    fn month_view_before_and_after_signing() {
        let rules = Rules::default();
        let today = d("2026-03-10");
        // Signed the six days before today.
        let before: Vec<NaiveDate> = (4..=9).map(|n| d(&format!("2026-03-{n:02}"))).collect();
        let last = LastSignin {
            day: d("2026-03-09"),
            streak: 6,
            points: 5,
        };
        let v = detail(&rules, Some(last), &before, today);
        assert!(!v.is_sign);
        assert_eq!(v.combo_sum, 6);
        assert_eq!(v.reward, 7, "today would be day 7: 5 + 2");
        assert_eq!((v.more_day, v.more_point), (1, 2));
        assert_eq!(v.sign_days.len(), 6);
        assert_eq!(
            v.special_days,
            BTreeMap::from([
                ("2026-03-10".to_string(), 2),
                ("2026-03-17".to_string(), 4),
                ("2026-03-24".to_string(), 7),
            ])
        );

        let mut after = before.clone();
        after.push(today);
        let signed = LastSignin {
            day: today,
            streak: 7,
            points: 7,
        };
        let v = detail(&rules, Some(signed), &after, today);
        assert!(v.is_sign);
        assert_eq!(v.combo_sum, 7);
        assert_eq!(v.reward, 7);
        assert_eq!((v.more_day, v.more_point), (7, 4));
        assert_eq!(v.sign_days.last().map(String::as_str), Some("2026-03-10"));
        assert_eq!(
            v.special_days,
            BTreeMap::from([("2026-03-17".to_string(), 4), ("2026-03-24".to_string(), 7)])
        );

        // After a gap the streak is gone and a sign-in today would be day 1.
        let stale = LastSignin {
            day: d("2026-03-07"),
            streak: 4,
            points: 5,
        };
        let v = detail(&rules, Some(stale), &before[..4], today);
        assert_eq!((v.combo_sum, v.reward, v.is_sign), (0, 5, false));
        assert_eq!((v.more_day, v.more_point), (7, 2));
        assert_eq!(
            v.special_days,
            BTreeMap::from([
                ("2026-03-16".to_string(), 2),
                ("2026-03-23".to_string(), 4),
                ("2026-03-30".to_string(), 7),
            ])
        );
        // Day 30 of the streak falls on 2026-04-08: outside this month, not listed.
        assert!(!v.special_days.contains_key("2026-04-08"));
    }

    #[test]
    fn month_bounds_cover_the_calendar_month() {
        assert_eq!(
            month_bounds(d("2026-02-14")),
            (d("2026-02-01"), d("2026-02-28"))
        );
        assert_eq!(
            month_bounds(d("2026-12-31")),
            (d("2026-12-01"), d("2026-12-31"))
        );
    }
}
