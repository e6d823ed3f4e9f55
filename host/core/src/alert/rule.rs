//! The rule a site's alerts are decided by: the availability threshold and window, latency
//! objectives (degraded), and how early a certificate's expiry warns.

use crate::stats::WindowStats;
use std::time::Duration;

/// A `cert` alert fires when the earliest certificate expiry is this close.
pub const DEFAULT_CERT_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A `domain` alert fires when the domain's registration expires this soon.
pub const DEFAULT_DOMAIN_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a site's alerts are decided by: the global `alerting` with the site's own overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Availability (0..=1) below which the site is down.
    pub threshold: f64,
    /// The window availability and latency are judged over.
    pub window: Duration,
    /// Latency objectives: over any of them (and not down), the site is degraded.
    pub degraded: Vec<LatencyObjective>,
    pub cert_warning: Duration,
    /// A `domain_expiring` alert fires when the domain's registration expires this soon.
    pub domain_warning: Duration,
    /// Flap damping: `None`, off.
    pub flapping: Option<Flapping>,
    /// The service level objective: burn-rate alerts and an error budget. `None`, off.
    pub slo: Option<Slo>,
}

/// A service level objective: the share of probes that must pass (`objective`, 0..1) over
/// `period`. The error budget is the rest: `1 - objective` of the period's probes may fail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    pub objective: f64,
    pub period: Duration,
}

/// When a site is flapping: its down and recovered alerts alternated more than `changes` times
/// within `within`. It settles when `within` passes without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flapping {
    pub changes: u32,
    pub within: Duration,
}

/// A latency figure of the alert window and the most it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyObjective {
    pub metric: LatencyMetric,
    pub limit: Duration,
}

/// The latency figures an objective can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyMetric {
    ResponseAvg,
    ResponseP50,
    ResponseP95,
    ResponseP99,
    ResponseMax,
    TtfbAvg,
    TtfbMax,
}

impl LatencyMetric {
    pub const ALL: [Self; 7] = [
        Self::ResponseAvg,
        Self::ResponseP50,
        Self::ResponseP95,
        Self::ResponseP99,
        Self::ResponseMax,
        Self::TtfbAvg,
        Self::TtfbMax,
    ];

    /// The config key, e.g. `response_p95`.
    pub fn key(self) -> &'static str {
        match self {
            Self::ResponseAvg => "response_avg",
            Self::ResponseP50 => "response_p50",
            Self::ResponseP95 => "response_p95",
            Self::ResponseP99 => "response_p99",
            Self::ResponseMax => "response_max",
            Self::TtfbAvg => "ttfb_avg",
            Self::TtfbMax => "ttfb_max",
        }
    }

    /// For messages: `p95 response`.
    pub fn label(self) -> &'static str {
        match self {
            Self::ResponseAvg => "average response",
            Self::ResponseP50 => "p50 response",
            Self::ResponseP95 => "p95 response",
            Self::ResponseP99 => "p99 response",
            Self::ResponseMax => "max response",
            Self::TtfbAvg => "average TTFB",
            Self::TtfbMax => "max TTFB",
        }
    }

    /// The figure in `stats`, in milliseconds; `None` when the window has no complete response.
    pub fn value_ms(self, stats: &WindowStats) -> Option<f64> {
        let r = stats.response_ms.as_ref();
        let t = stats.ttfb_ms.as_ref();
        match self {
            Self::ResponseAvg => r.map(|r| r.avg),
            Self::ResponseP50 => r.map(|r| r.p50),
            Self::ResponseP95 => r.map(|r| r.p95),
            Self::ResponseP99 => r.map(|r| r.p99),
            Self::ResponseMax => r.map(|r| r.max),
            Self::TtfbAvg => t.map(|t| t.avg),
            Self::TtfbMax => t.map(|t| t.max),
        }
    }
}
