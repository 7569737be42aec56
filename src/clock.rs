//! Business time. Timestamps are stored as UTC epoch milliseconds; "a day" is a calendar day in
//! the business timezone (`POINTS_TIMEZONE`), and times shown to clients are in that timezone.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Now, as epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Conversions between epoch milliseconds and business dates and times.
#[derive(Debug, Clone, Copy)]
pub struct BizClock {
    pub tz: Tz,
}

impl BizClock {
    pub fn new(tz: Tz) -> Self {
        Self { tz }
    }

    /// An instant as a business-time date and time.
    pub fn local(&self, ms: i64) -> DateTime<Tz> {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        utc.with_timezone(&self.tz)
    }

    /// The business date of an instant.
    pub fn date(&self, ms: i64) -> NaiveDate {
        self.local(ms).date_naive()
    }

    /// `YYYY-MM-DD HH:MM:SS` in business time.
    pub fn format_datetime(&self, ms: i64) -> String {
        self.local(ms).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// `YYYY-MM-DD` in business time.
    pub fn format_date(&self, ms: i64) -> String {
        self.date(ms).format("%Y-%m-%d").to_string()
    }

    /// The day shown for an expiry instant: the last business day on which the points still
    /// count (an expiry at 00:00 means "valid through the day before").
    pub fn expiry_date(&self, expires_at: i64) -> String {
        self.format_date(expires_at.saturating_sub(1))
    }

    /// The instant a business date starts (00:00 business time), as epoch ms.
    pub fn day_start(&self, date: NaiveDate) -> i64 {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.from_local(midnight)
    }

    /// The first instant of `date` and of the day after it.
    pub fn day_bounds(&self, date: NaiveDate) -> (i64, i64) {
        let start = self.day_start(date);
        let end = date
            .succ_opt()
            .map(|d| self.day_start(d))
            .unwrap_or(start + 86_400_000);
        (start, end)
    }

    /// A local wall-clock time as epoch ms (the earlier instant if the time is ambiguous, the
    /// next valid one if it falls in a gap).
    pub fn from_local(&self, local: NaiveDateTime) -> i64 {
        match self.tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.timestamp_millis()
            }
            chrono::LocalResult::None => {
                let later = local + chrono::Duration::hours(1);
                self.tz
                    .from_local_datetime(&later)
                    .earliest()
                    .map(|t| t.timestamp_millis())
                    .unwrap_or_else(|| local.and_utc().timestamp_millis())
            }
        }
    }

    /// Parses a client time: `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` in business time, or epoch
    /// seconds / milliseconds as digits.
    pub fn parse(&self, raw: &str) -> Option<i64> {
        let raw = raw.trim();
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = raw.parse().ok()?;
            // Ten digits are seconds until the year 2286; more are milliseconds.
            return Some(if raw.len() <= 10 {
                n.checked_mul(1000)?
            } else {
                n
            });
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S") {
            return Some(self.from_local(t));
        }
        if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            return Some(self.day_start(d));
        }
        None
    }

    /// When points earned at `earned_ms` expire: the start of the same calendar day `months`
    /// natural months later (the last day of the month when that month is shorter).
    pub fn expiry_after_months(&self, earned_ms: i64, months: u32) -> i64 {
        let date = self.date(earned_ms);
        let target = date
            .checked_add_months(Months::new(months))
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(date.year() + 100, 1, 1).unwrap_or(date));
        self.day_start(target)
    }
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
    fn days_follow_the_business_timezone() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        // 2026-01-01 16:30 UTC is 2026-01-02 00:30 in Shanghai.
        let ms = clock.parse("2026-01-02 00:30:00").expect("time");
        assert_eq!(ms, 1_767_285_000_000);
        assert_eq!(clock.format_date(ms), "2026-01-02");
        assert_eq!(clock.format_datetime(ms), "2026-01-02 00:30:00");
        assert_eq!(
            clock.day_start(clock.date(ms)),
            clock.parse("2026-01-02").expect("date")
        );
    }

    #[test]
    fn expiry_is_twelve_natural_months_later() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        let earned = clock.parse("2026-01-31 10:00:00").expect("time");
        let expiry = clock.expiry_after_months(earned, 12);
        assert_eq!(clock.format_datetime(expiry), "2027-01-31 00:00:00");
        let earned = clock.parse("2027-03-31 10:00:00").expect("time");
        let expiry = clock.expiry_after_months(earned, 11);
        assert_eq!(clock.format_datetime(expiry), "2028-02-29 00:00:00");
    }

    #[test]
    fn epoch_digits_are_seconds_or_millis() {
        let clock = BizClock::new(chrono_tz::Asia::Shanghai);
        assert_eq!(clock.parse("1700000000"), Some(1_700_000_000_000));
        assert_eq!(clock.parse("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(clock.parse("yesterday"), None);
    }

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
