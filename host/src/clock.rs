//! The one clock abstraction. Wall-clock timestamps come from a [`Clock`]; durations and schedules
//! use `tokio::time`, so tests can pause and advance time instead of sleeping.

use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A source of wall-clock timestamps (UTC).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that follows `tokio::time`: a fixed wall-clock origin plus the tokio time elapsed since
/// it was made. Under `tokio::time::pause()` it advances only when the test advances time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin_wall: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(origin_wall: DateTime<Utc>) -> Self {
        Self {
            origin_wall,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.elapsed();
        self.origin_wall + chrono::TimeDelta::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX)
    }
}

/// Formats a timestamp as RFC 3339 UTC with second precision, as alert messages show it.
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Formats a timestamp as RFC 3339 UTC with millisecond precision, as JSON events carry it.
pub fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Formats a duration for people, to whole seconds: `3m 12s`, `1h 2m 5s`, `0s`.
pub fn human_duration(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_times_and_durations() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 11, 30, 5).unwrap()
            + chrono::TimeDelta::milliseconds(123);
        assert_eq!(rfc3339_seconds(t), "2026-11-24T11:30:05Z");
        assert_eq!(rfc3339_millis(t), "2026-11-24T11:30:05.123Z");
        assert_eq!(
            human_duration(std::time::Duration::from_millis(192_900)),
            "3m 12s"
        );
        assert_eq!(human_duration(std::time::Duration::ZERO), "0s");
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = TokioClock::starting_at(origin);
        assert_eq!(clock.now(), origin);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), origin + chrono::TimeDelta::seconds(90));
    }
}
