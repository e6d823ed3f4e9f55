//! A site as the engine runs it ([`ProbeTarget`]: the prober's [`Target`], its skipped ticks,
//! its checks' state and its probes in flight) and the running-probe watermark ([`Running`]).

use crate::config::SiteConfig;
use crate::probe::Target;
use std::sync::Arc;

/// A site as the engine runs it: the prober's target, with its skips, checks and probes in flight.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// What the prober needs (the target derefs to it).
    pub probe: Target,
    /// Ticks of this site skipped so far (its own probes still running, or sitewatch
    /// overloaded); kept across reloads.
    pub skipped: Arc<std::sync::atomic::AtomicU64>,
    /// Its checks' time-limit streaks and pauses.
    pub checks: Arc<crate::plugin::checks::SiteChecks>,
    /// A `script` site's secrets and their redacted forms, made once for its configuration.
    pub scenario: Arc<crate::plugin::scenario::SiteScenario>,
    /// Its probes in flight and when each started: the recorder places a measurement only once
    /// no probe that started before it ended is still running (see [`Running`]).
    pub running: Arc<Running>,
}

/// A site's probes in flight, by id, with the timeline position each started at. The
/// scheduler adds a probe as it starts it (`Running::begin`); the recorder takes it out when
/// its measurement arrives ([`Running::finish`]), and the guard when the probe ends without one
/// (it was aborted, or sitewatch could not run it). What has not arrived yet and started earliest
/// is the site's *watermark*: a measurement that ended before it can be placed in the windows,
/// since nothing still running can end before it.
#[derive(Debug, Default)]
pub struct Running {
    next: std::sync::atomic::AtomicU64,
    probes: std::sync::Mutex<Vec<(u64, i64)>>,
}

/// Takes a probe out of [`Running`] when dropped (a probe that ends without a measurement).
#[derive(Debug)]
pub(crate) struct RunningGuard {
    running: Arc<Running>,
    id: u64,
    /// Still ours to take out (false once the measurement went to the recorder, which does).
    armed: bool,
}

impl RunningGuard {
    /// The probe's id, for its measurement.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The measurement was sent to the recorder, which takes the probe out as it arrives:
    /// taking it out here, before that, would let a later measurement pass it.
    pub(crate) fn handed_over(mut self) {
        self.armed = false;
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.armed {
            self.running.finish(self.id);
        }
    }
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, i64)>> {
        self.probes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A probe starts at timeline position `start_us`.
    pub(crate) fn begin(self: &Arc<Self>, start_us: i64) -> RunningGuard {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.lock().push((id, start_us));
        RunningGuard {
            running: Arc::clone(self),
            id,
            armed: true,
        }
    }

    /// The probe `id` is no longer running (its measurement arrived, or it ended).
    pub fn finish(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// Where the earliest probe still running started, if any runs.
    pub(crate) fn earliest_start(&self) -> Option<i64> {
        self.lock().iter().map(|(_, s)| *s).min()
    }
}

impl ProbeTarget {
    pub fn new(config: SiteConfig) -> Self {
        Self {
            scenario: Arc::new(crate::plugin::scenario::SiteScenario::new(&config)),
            probe: Target::new(config),
            skipped: Arc::default(),
            checks: Arc::default(),
            running: Arc::default(),
        }
    }
}

impl std::ops::Deref for ProbeTarget {
    type Target = Target;
    fn deref(&self) -> &Target {
        &self.probe
    }
}

impl std::ops::DerefMut for ProbeTarget {
    fn deref_mut(&mut self) -> &mut Target {
        &mut self.probe
    }
}
