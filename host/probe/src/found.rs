//! What a probe of a kind found, made into a [`Measurement`], and the timed run the kinds that
//! speak over a connection share: every kind but `http` ends here, so the measurement has one
//! shape whatever probed it.

use crate::conn::Failure;
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError, TlsDetails};
use crate::timing::PhaseClock;
use crate::{Captured, MonitorFailure, Prober, Target};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// When a probe started, on both clocks, and how late against its schedule.
pub(crate) struct Clocked {
    time: DateTime<Utc>,
    pub start: Instant,
    schedule_lag: Duration,
}

impl Clocked {
    pub(crate) fn start(prober: &Prober, scheduled: Instant) -> Self {
        Self {
            schedule_lag: Instant::now().saturating_duration_since(scheduled),
            time: prober.clock.now(),
            start: Instant::now(),
        }
    }
}

/// What a probe found, whatever its kind.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub status: Option<u16>,
    pub ttfb: Option<Duration>,
    pub response_time: Option<Duration>,
    pub phases: Phases,
    pub metrics: Vec<(String, f64)>,
    pub tls: Option<Arc<TlsDetails>>,
    /// The answer: its size is the body's, and the site's checks judge it.
    pub answer: Vec<u8>,
}

impl Found {
    /// The measurement, ended now, and what the site's checks see (only for a probe that
    /// passed, of a site with checks).
    pub(crate) fn into_probe(
        self,
        prober: &Prober,
        target: &Target,
        clocked: &Clocked,
        error: Option<ProbeError>,
    ) -> (Measurement, Option<Captured>) {
        let ended = Instant::now();
        let body_bytes = self.answer.len() as u64;
        let captured = (!target.config.checks.is_empty() && error.is_none()).then(|| Captured {
            headers: Vec::new(),
            body: self.answer,
        });
        let measurement = Measurement {
            domain_expiry: None,
            location: None,
            site: Arc::clone(&target.name),
            url: Arc::clone(&target.url),
            time: clocked.time,
            ok: error.is_none(),
            status: self.status,
            ttfb: self.ttfb,
            response_time: self.response_time,
            body_bytes,
            body_truncated: false,
            phases: self.phases,
            error,
            duration: ended.saturating_duration_since(clocked.start),
            ended_us: prober.clock.timeline_us(ended.into_std()),
            generation: target.generation,
            schedule_lag: clocked.schedule_lag,
            metrics: self.metrics,
            tls: self.tls,
            maintenance: false,
            redirect: None,
            probe_id: 0,
            steps: Vec::new(),
        };
        (measurement, captured)
    }
}

/// How an exchange stopped.
pub(crate) enum Stopped {
    Done,
    Failed(ProbeError),
    /// The site's timeout ran out first.
    TimedOut,
}

impl Stopped {
    /// The probe's failure; a timeout says what was awaited (`waiting`) and for how long.
    pub(crate) fn error(
        self,
        timeout: Duration,
        waiting: impl FnOnce() -> &'static str,
    ) -> Option<ProbeError> {
        match self {
            Self::Done => None,
            Self::Failed(e) => Some(e),
            Self::TimedOut => Some(ProbeError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "no {} within {}",
                    waiting(),
                    humantime::format_duration(timeout)
                ),
            }),
        }
    }
}

/// Runs a connection kind's `exchange` within the site's timeout, the TLS hooks recording what
/// the handshake showed (the chain is the site's when `tls`).
pub(crate) async fn within(
    prober: &Prober,
    target: &Target,
    tls: bool,
    exchange: impl Future<Output = Result<(), Failure>>,
) -> Result<(Stopped, Option<Arc<TlsDetails>>), MonitorFailure> {
    let phase_clock = Arc::new(PhaseClock::default());
    let result = tokio::time::timeout(
        target.config.timeout,
        Arc::clone(&phase_clock).scope(exchange),
    )
    .await;
    let stopped = match result {
        Ok(Ok(())) => Stopped::Done,
        Ok(Err(Failure::Monitor(m))) => return Err(m),
        Ok(Err(Failure::Probe(e))) => Stopped::Failed(e),
        Err(_) => Stopped::TimedOut,
    };
    let details = phase_clock
        .take_handshake()
        .filter(|_| tls)
        .map(|h| prober.tls.details(&h));
    Ok((stopped, details))
}
