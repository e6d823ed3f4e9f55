//! What one probe of one site measured.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Why a probe failed. Each kind is counted separately in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The host name did not resolve.
    Dns,
    /// The TCP connection failed (refused, unreachable, reset during connect).
    Connect,
    /// The TLS handshake failed (bad certificate, protocol error).
    Tls,
    /// No complete answer within the site's timeout.
    Timeout,
    /// The server broke the HTTP protocol, or redirected too often.
    Http,
    /// The response body could not be read to its end (or to the read cap).
    Body,
    /// The server answered with a status the site does not expect.
    Status,
    /// A response check rejected the response.
    Check,
    /// A check plugin could not do its work (trapped, hit a limit, or reported an error).
    Plugin,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        Self::Dns,
        Self::Connect,
        Self::Tls,
        Self::Timeout,
        Self::Http,
        Self::Body,
        Self::Status,
        Self::Check,
        Self::Plugin,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Http => "http",
            Self::Body => "body",
            Self::Status => "status",
            Self::Check => "check",
            Self::Plugin => "plugin",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe's kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Durations of the connection phases, where they could be measured (a reused connection or an
/// IP-literal URL has none of some).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    #[serde(rename = "dns_ms", serialize_with = "crate::event::ser_opt_ms")]
    pub dns: Option<Duration>,
    #[serde(rename = "connect_ms", serialize_with = "crate::event::ser_opt_ms")]
    pub connect: Option<Duration>,
    #[serde(rename = "tls_ms", serialize_with = "crate::event::ser_opt_ms")]
    pub tls: Option<Duration>,
}

/// One probe's result. Serialises as the `probe` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// When the request started (wall clock).
    #[serde(serialize_with = "crate::event::ser_time")]
    pub time: DateTime<Utc>,
    /// The status was expected and every check passed.
    pub ok: bool,
    pub status: Option<u16>,
    /// Request start to response headers.
    #[serde(rename = "ttfb_ms", serialize_with = "crate::event::ser_opt_ms")]
    pub ttfb: Option<Duration>,
    /// Request start to the last body byte read.
    #[serde(rename = "response_ms", serialize_with = "crate::event::ser_opt_ms")]
    pub response_time: Option<Duration>,
    pub body_bytes: u64,
    /// The body was longer than the site's read cap.
    pub body_truncated: bool,
    #[serde(flatten)]
    pub phases: Phases,
    pub error: Option<ProbeError>,
    /// How late the probe started against its schedule.
    #[serde(rename = "lag_ms", serialize_with = "crate::event::ser_ms")]
    pub schedule_lag: Duration,
    /// Numbers reported by check plugins, by name.
    #[serde(serialize_with = "ser_metrics")]
    pub metrics: Vec<(String, f64)>,
}

fn ser_metrics<S: serde::Serializer>(metrics: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(metrics.len()))?;
    for (k, v) in metrics {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Measurement {
    /// Marks the probe failed (the first failure wins: later checks do not overwrite it).
    pub fn fail(&mut self, kind: ErrorKind, message: String) {
        if self.error.is_none() {
            self.ok = false;
            self.error = Some(ProbeError { kind, message });
        }
    }

    /// The key this measurement is counted under in the status counts: the status code when a
    /// whole response arrived (even if its status or a check failed), else the error kind (a
    /// body that timed out counts as `timeout`, not as its status).
    pub fn outcome(&self) -> Outcome {
        let kind = self.error.as_ref().map(|e| e.kind);
        match (self.status, kind) {
            (Some(code), None | Some(ErrorKind::Status | ErrorKind::Check)) => {
                Outcome::Status(code)
            }
            (_, Some(kind)) => Outcome::Error(kind),
            // A response-less success cannot happen; count it as an HTTP error rather than panic.
            (None, None) => Outcome::Error(ErrorKind::Http),
        }
    }

    /// When the probe finished: the start plus the response time, or plus nothing for errors.
    pub fn finished_at(&self) -> DateTime<Utc> {
        let took = self.response_time.unwrap_or_default();
        self.time + chrono::TimeDelta::from_std(took).unwrap_or_default()
    }
}

/// What a probe is counted as: a status code or an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Status(u16),
    Error(ErrorKind),
}

/// `"100"` to `"999"`, made once, so status labels need no allocation.
static STATUS_LABELS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (100..=999).map(|c: u16| c.to_string()).collect());

impl Outcome {
    /// The key this outcome is counted under: `"200"`, `"timeout"`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Status(c @ 100..=999) => &STATUS_LABELS[usize::from(c - 100)],
            Outcome::Status(_) => "other",
            Outcome::Error(k) => k.as_str(),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(c) => write!(f, "{c}"),
            Outcome::Error(k) => f.write_str(k.as_str()),
        }
    }
}
