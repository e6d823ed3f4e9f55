//! Report periods: days, weeks and months in a time zone, weeks starting on a chosen day.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// `--by`: one row per this period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Day,
    Week,
    Month,
}

impl By {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            By::Day => "day",
            By::Week => "week",
            By::Month => "month",
        }
    }
}

/// Where periods start: their zone (`--tz`, UTC by default) and the first day of a week
/// (`--week-start`, Monday by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar {
    pub tz: Tz,
    pub week_start: Weekday,
}

impl Default for Calendar {
    fn default() -> Self {
        Self {
            tz: Tz::UTC,
            week_start: Weekday::Mon,
        }
    }
}

/// One period: `[start, end)` in UTC, and its first local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub first_day: NaiveDate,
}

impl Calendar {
    /// From `--tz` and `--week-start` (or the API's `tz` and `week_start`); the error names the
    /// option and what it takes.
    pub fn parse(tz: Option<&str>, week_start: Option<&str>, prefix: &str) -> Result<Self, String> {
        let mut c = Self::default();
        if let Some(tz) = tz {
            c.tz = tz.trim().parse().map_err(|_| {
                format!("{prefix}tz \"{tz}\" is not a time zone: give an IANA name such as UTC, Europe/Paris or America/New_York")
            })?;
        }
        if let Some(w) = week_start {
            c.week_start = w.trim().parse().map_err(|_| {
                format!(
                    "{prefix}week{}start \"{w}\" is not a day of the week (monday ... sunday)",
                    if prefix.is_empty() { "_" } else { "-" }
                )
            })?;
        }
        Ok(c)
    }

    /// The first instant of local day `d` (midnight, or the first time that exists when a
    /// daylight-saving change skips midnight).
    pub fn day_start(&self, d: NaiveDate) -> DateTime<Utc> {
        for hour in 0..3 {
            if let Some(t) = self
                .tz
                .from_local_datetime(&d.and_hms_opt(hour, 0, 0).expect("a valid hour"))
                .earliest()
            {
                return t.with_timezone(&Utc);
            }
        }
        d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
    }

    /// The first local day of the period holding local day `d`.
    fn first_day(&self, by: By, d: NaiveDate) -> NaiveDate {
        match by {
            By::Day => d,
            By::Week => {
                let back = (7 + d.weekday().num_days_from_monday()
                    - self.week_start.num_days_from_monday())
                    % 7;
                d - Days::new(u64::from(back))
            }
            By::Month => d.with_day(1).expect("every month has a first day"),
        }
    }

    fn next_day(by: By, first: NaiveDate) -> NaiveDate {
        match by {
            By::Day => first + Days::new(1),
            By::Week => first + Days::new(7),
            By::Month => first + Months::new(1),
        }
    }

    /// The period holding `t`.
    pub fn period_of(&self, by: By, t: DateTime<Utc>) -> Period {
        let local = t.with_timezone(&self.tz).date_naive();
        let first = self.first_day(by, local);
        let start = self.day_start(first);
        // A day-start just after `t` (a zone change at midnight): the previous period.
        if start > t {
            let prev = self.first_day(by, local - Days::new(1));
            return self.period(by, prev);
        }
        self.period(by, first)
    }

    fn period(&self, by: By, first: NaiveDate) -> Period {
        Period {
            start: self.day_start(first),
            end: self.day_start(Self::next_day(by, first)),
            first_day: first,
        }
    }

    /// Every period from the one holding `from` to the one holding `to`, in order.
    pub fn periods(&self, by: By, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Period> {
        let mut out = vec![self.period_of(by, from)];
        while let Some(last) = out.last()
            && last.end <= to
        {
            let next = self.period(by, Self::next_day(by, last.first_day));
            out.push(next);
        }
        out
    }

    /// `2026-11-30` (a day or the first day of a week) or `2026-11` (a month).
    pub fn label(by: By, p: &Period) -> String {
        match by {
            By::Day | By::Week => p.first_day.format("%Y-%m-%d").to_string(),
            By::Month => p.first_day.format("%Y-%m").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn weeks_start_on_monday_unless_told() {
        let c = Calendar::default();
        // Wednesday 2 December 2026.
        let p = c.period_of(By::Week, utc("2026-12-02T10:00:00Z"));
        assert_eq!(p.first_day.to_string(), "2026-11-30");
        assert_eq!(p.end, utc("2026-12-07T00:00:00Z"));
        let sunday = Calendar {
            week_start: Weekday::Sun,
            ..c
        };
        assert_eq!(
            sunday
                .period_of(By::Week, utc("2026-12-02T10:00:00Z"))
                .first_day
                .to_string(),
            "2026-11-29"
        );
        // A Sunday starts its own week when weeks start on Sunday.
        assert_eq!(
            sunday
                .period_of(By::Week, utc("2026-11-29T00:00:00Z"))
                .first_day
                .to_string(),
            "2026-11-29"
        );
    }

    #[test]
    fn days_and_months_follow_the_zone_and_its_clock_changes() {
        let paris = Calendar {
            tz: "Europe/Paris".parse().unwrap(),
            ..Calendar::default()
        };
        // 23:30 UTC on 1 December is already 2 December in Paris.
        let p = paris.period_of(By::Day, utc("2026-12-01T23:30:00Z"));
        assert_eq!(p.first_day.to_string(), "2026-12-02");
        assert_eq!(p.start, utc("2026-12-01T23:00:00Z"));
        // The day clocks go forward has 23 hours, the day they go back 25.
        let spring = paris.period_of(By::Day, utc("2026-03-29T12:00:00Z"));
        assert_eq!((spring.end - spring.start).num_hours(), 23);
        let autumn = paris.period_of(By::Day, utc("2026-10-25T12:00:00Z"));
        assert_eq!((autumn.end - autumn.start).num_hours(), 25);
        let month = paris.period_of(By::Month, utc("2026-02-10T00:00:00Z"));
        assert_eq!(Calendar::label(By::Month, &month), "2026-02");
        assert_eq!(month.start, utc("2026-01-31T23:00:00Z"));
        assert_eq!(month.end, utc("2026-02-28T23:00:00Z"));
    }

    #[test]
    fn periods_cover_the_range_in_order() {
        let c = Calendar::default();
        let ps = c.periods(
            By::Month,
            utc("2026-01-15T00:00:00Z"),
            utc("2026-03-01T00:00:00Z"),
        );
        let labels: Vec<_> = ps.iter().map(|p| Calendar::label(By::Month, p)).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        for w in ps.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }
}
