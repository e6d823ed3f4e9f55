//! The one retry policy of every sink: the notifiers, the InfluxDB sender, the cluster's
//! publishers and the store writer. What is worth another attempt is one rule for the HTTP
//! sinks (the notify crate's `reply::retryable`: 408, 425, 429 and 5xx; any other refusal
//! stands, and a `Retry-After` it was given comes first); how long to wait
//! between attempts is this [`Backoff`]: each wait doubles from `min` up to `max`, and with
//! jitter each is drawn from the upper half of its step, so sinks that failed together do not
//! retry together.

use std::time::Duration;

/// Waits between attempts: `min`, then twice as long each time, up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// The next step; `None` until the first failure (and after [`Backoff::reset`]).
    next: Option<Duration>,
    jitter: bool,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: None,
            jitter: false,
        }
    }

    /// Each wait is drawn from the upper half of its step.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next.unwrap_or(self.min);
        self.next = Some(step.saturating_mul(2).clamp(self.min, self.max));
        if self.jitter {
            let half = step / 2;
            half + half.mul_f64(fastrand::f64())
        } else {
            step
        }
    }

    /// An attempt succeeded: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// Whether attempts are failing (a wait was taken since the last reset).
    pub fn failing(&self) -> bool {
        self.next.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_their_cap_and_start_again_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let waits: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        assert!(b.failing());
        b.reset();
        assert!(!b.failing());
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn jitter_draws_each_wait_from_the_upper_half_of_its_step() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).with_jitter();
        let waits: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (w, step) in waits.iter().zip([1u64, 2, 4, 8, 8, 8]) {
            let step = Duration::from_secs(step);
            assert!(
                *w >= step / 2 && *w <= step,
                "{w:?} within the upper half of {step:?}"
            );
        }
    }

    #[test]
    fn a_maximum_below_the_minimum_is_the_minimum() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
    }
}
