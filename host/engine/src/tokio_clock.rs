//! Clocks that follow `tokio::time` (a paused test runtime advances them), for tests and
//! benchmarks of the engine.

use crate::clock::{Clock, Origin};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A clock that follows `tokio::time`: a fixed wall-clock origin plus the tokio time elapsed since
/// it was made. Under `tokio::time::pause()` it advances only when the test advances time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin_wall: DateTime<Utc>,
    origin: Origin,
}

impl TokioClock {
    pub fn starting_at(origin_wall: DateTime<Utc>) -> Self {
        Self {
            origin_wall,
            origin: Origin::new(origin_wall, Instant::now().into_std()),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().into_std() - self.origin.at();
        self.origin_wall + chrono::TimeDelta::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX)
    }

    fn timeline_us(&self, at: std::time::Instant) -> i64 {
        self.origin.position(at)
    }

    fn timeline_now_us(&self) -> i64 {
        self.origin.position(Instant::now().into_std())
    }
}

/// A [`TokioClock`] whose wall clock can be stepped, as NTP does, while its timeline goes on
/// undisturbed: for tests of what a clock step does.
#[derive(Debug)]
pub struct SteppingClock {
    inner: TokioClock,
    step: std::sync::Mutex<chrono::TimeDelta>,
}

impl SteppingClock {
    pub fn starting_at(origin_wall: DateTime<Utc>) -> Self {
        Self {
            inner: TokioClock::starting_at(origin_wall),
            step: std::sync::Mutex::new(chrono::TimeDelta::zero()),
        }
    }

    /// Moves the wall clock by `by` (negative: back).
    pub fn step(&self, by: chrono::TimeDelta) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + *self.step.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timeline_us(&self, at: std::time::Instant) -> i64 {
        self.inner.timeline_us(at)
    }

    fn timeline_now_us(&self) -> i64 {
        self.inner.timeline_now_us()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = TokioClock::starting_at(origin);
        assert_eq!(clock.now(), origin);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), origin + chrono::TimeDelta::seconds(90));
        assert_eq!(clock.timeline_now_us(), clock.now().timestamp_micros());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_step_leaves_the_timeline_alone() {
        let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = SteppingClock::starting_at(origin);
        let before = clock.timeline_now_us();
        clock.step(chrono::TimeDelta::hours(-1));
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(clock.timeline_now_us() - before, 5_000_000);
        assert_eq!(
            clock.now(),
            origin - chrono::TimeDelta::hours(1) + chrono::TimeDelta::seconds(5)
        );
    }
}
