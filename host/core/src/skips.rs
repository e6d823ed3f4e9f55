//! Ticks the scheduler skipped, counted where they happen and read by the recorder. Counting
//! never waits for the recorder: an overloaded monitor must not stall its own ticks by queueing
//! messages about them, so the counts are atomics rather than inputs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The monitor-wide counts (each site counts its own skips too, in its probe target).
#[derive(Debug, Default)]
pub struct Skips {
    /// Ticks skipped because sitewatch ran its cap of probes in flight.
    overloaded: AtomicU64,
    /// Probes sitewatch itself could not run (no descriptor, no memory).
    failed: AtomicU64,
    /// Ticks the runtime reached too late to run (it was busy).
    late: AtomicU64,
    /// Which of the three counted last: 0 the cap, 1 a failure, 2 a late tick.
    last_cause: std::sync::atomic::AtomicU8,
    last_failure: Mutex<Option<String>>,
    /// The cap on probes in flight, for messages.
    cap: AtomicUsize,
}

impl Skips {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: AtomicUsize::new(cap),
            ..Self::default()
        }
    }

    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// A tick found the cap on probes in flight reached.
    pub fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
        self.last_cause.store(0, Ordering::Relaxed);
    }

    /// `n` ticks of a site passed before the runtime got to them (it was too busy): lost
    /// ticks, counted as the monitor's own overload like those the cap skips.
    pub fn late(&self, n: u64) {
        self.late.fetch_add(n, Ordering::Relaxed);
        self.last_cause.store(2, Ordering::Relaxed);
    }

    /// sitewatch failed to run a probe, for `why`.
    pub fn failed(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.last_cause.store(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Every tick skipped because of sitewatch itself, so far.
    pub fn total(&self) -> u64 {
        self.overloaded.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.late.load(Ordering::Relaxed)
    }

    /// Why sitewatch skips: its cap, or its latest own failure.
    pub fn reason(&self) -> String {
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if self.last_cause.load(Ordering::Relaxed) == 2 {
            return "the runtime was too busy to start probes on time (ticks passed before it got to them)".into();
        }
        match failure {
            Some(why) if self.failed.load(Ordering::Relaxed) > 0 => {
                format!("sitewatch could not probe: {why}")
            }
            _ => format!(
                "{} probes in flight, the most sitewatch runs at once",
                self.cap()
            ),
        }
    }
}
