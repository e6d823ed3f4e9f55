//! The rollup tiers and how long each is kept.

use std::time::Duration;

/// How often the store's writer rolls raw measurements up, unless `storage.rollup_every` says.
pub const DEFAULT_ROLLUP_EVERY: Duration = Duration::from_secs(600);

/// A rollup tier: per-site cells of one minute, hour or day, stored in rows of a fixed number of
/// cells (a minute row is an hour, an hour row a day, a day row 32 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    /// A cell's length in microseconds.
    pub fn cell_us(self) -> i64 {
        match self {
            Tier::Minute => 60_000_000,
            Tier::Hour => 3_600_000_000,
            Tier::Day => 86_400_000_000,
        }
    }

    /// Cells per stored row.
    pub fn per_row(self) -> i64 {
        match self {
            Tier::Minute => 60,
            Tier::Hour => 24,
            Tier::Day => 32,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Tier::Minute => "rollup_minute",
            Tier::Hour => "rollup_hour",
            Tier::Day => "rollup_day",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    /// The cell (bucket number since the epoch) holding time `us`.
    pub fn bucket(self, us: i64) -> i64 {
        us.div_euclid(self.cell_us())
    }

    /// The stored key of a site's row: the site id times 2^32 plus the row.
    pub fn key(site: i64, row: i64) -> i64 {
        (site << 32) | (row & 0xFFFF_FFFF)
    }

    /// The row number back from a key.
    pub fn row_of_key(key: i64) -> i64 {
        key & 0xFFFF_FFFF
    }

    /// The stored row and the offset in it of a bucket.
    pub fn row_of(self, bucket: i64) -> (i64, u16) {
        (
            bucket.div_euclid(self.per_row()),
            bucket.rem_euclid(self.per_row()) as u16,
        )
    }
}

/// How long each tier is kept (`storage.retention`). `alerts: None` keeps alerts for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
    pub day: Duration,
    pub alerts: Option<Duration>,
}

const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(7 * DAY),
            minute: Duration::from_secs(30 * DAY),
            hour: Duration::from_secs(365 * DAY),
            day: Duration::from_secs(5 * 365 * DAY),
            alerts: None,
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Minute => self.minute,
            Tier::Hour => self.hour,
            Tier::Day => self.day,
        }
    }

    /// `raw rows 7d, minute rollups 30d, hour rollups 1year, day rollups 5years`, for messages.
    pub fn describe(&self) -> String {
        let d = |d: Duration| days(d);
        format!(
            "raw rows {}, minute rollups {}, hour rollups {}, day rollups {}",
            d(self.raw),
            d(self.minute),
            d(self.hour),
            d(self.day)
        )
    }
}

/// `7d`, `365d`; other lengths as humantime writes them (`36h` is `1day 12h`).
pub fn days(d: Duration) -> String {
    if d.as_secs() > 0 && d.as_secs().is_multiple_of(DAY) && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}
