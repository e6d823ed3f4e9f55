//! The one clock abstraction. Wall-clock timestamps come from a [`Clock`]; durations and schedules
//! use monotonic instants (the engine's clock follows `tokio::time`, so tests can pause and
//! advance time instead of sleeping).
//!
//! Two times are kept apart: the wall clock labels records (alert times, stored rows), and the
//! *timeline*, a monotonic position in microseconds, orders and spans them (window eviction, the
//! alert engine's coverage). The timeline starts equal to the wall clock when the clock is made,
//! so positions of measurements restored from the store (their wall times) and of new ones line
//! up; from then on it follows the monotonic clock, so an NTP step of the wall clock neither
//! freezes nor empties a window.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;

/// A source of wall-clock timestamps (UTC) and of timeline positions.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Where `at` is on the monotonic timeline, in microseconds.
    fn timeline_us(&self, at: Instant) -> i64;

    /// Where now is on the monotonic timeline, in microseconds.
    fn timeline_now_us(&self) -> i64 {
        self.timeline_us(Instant::now())
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// A monotonic instant and the wall time it was taken at: the origin of a timeline.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    wall_us: i64,
    at: Instant,
}

impl Origin {
    /// The timeline that is at `wall` at the instant `at`.
    pub fn new(wall: DateTime<Utc>, at: Instant) -> Self {
        Self {
            wall_us: wall.timestamp_micros(),
            at,
        }
    }

    /// The instant the timeline started at.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Where `at` is on the timeline, in microseconds.
    pub fn position(&self, at: Instant) -> i64 {
        let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        match at.checked_duration_since(self.at) {
            Some(after) => self.wall_us.saturating_add(us(after)),
            None => self.wall_us.saturating_sub(us(self.at - at)),
        }
    }
}

/// The real system clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Origin,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Origin::new(Utc::now(), Instant::now()),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn timeline_us(&self, at: Instant) -> i64 {
        self.origin.position(at)
    }
}

/// Formats a timestamp as RFC 3339 UTC with second precision, as alert messages show it.
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `d` before `now`, or the earliest time chrono represents when that is further back (never an
/// overflow panic, whatever duration a user typed).
pub fn ago(now: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
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
}
