//! What one probe of one site measured.

pub mod sample;

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Why a probe failed. Each kind is counted separately in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// The server's answer was not the one expected: a TCP banner without the expected text,
    /// DNS answers other than the expected ones.
    Answer,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        Self::Dns,
        Self::Connect,
        Self::Tls,
        Self::Timeout,
        Self::Http,
        Self::Body,
        Self::Status,
        Self::Check,
        Self::Plugin,
        Self::Answer,
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
            Self::Answer => "answer",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of site (`http`, `tcp`, `dns`, `websocket`, `grpc`, `icmp`, `push`) a URL as the
/// outputs show it stands for: each kind's shown URL has its own scheme (`tcp://db:5432`,
/// `dns://...`, `push:backup`), so a measurement, a stored row or a sample from another node
/// tells its kind without carrying it.
pub fn kind_of(url: &str) -> &'static str {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    match scheme {
        "tcp" => "tcp",
        "dns" => "dns",
        "ws" | "wss" => "websocket",
        "grpc" => "grpc",
        "icmp" => "icmp",
        "push" => "push",
        "script" => "script",
        _ => "http",
    }
}

/// A failed probe's kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Durations of the connection phases, where they could be measured (a reused connection or an
/// IP-literal URL has none of some).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// When the request started (wall clock).
    pub time: DateTime<Utc>,
    /// The status was expected and every check passed.
    pub ok: bool,
    pub status: Option<u16>,
    /// Request start to response headers.
    pub ttfb: Option<Duration>,
    /// Request start to the last body byte read.
    pub response_time: Option<Duration>,
    pub body_bytes: u64,
    /// The body was longer than the site's read cap.
    pub body_truncated: bool,
    pub phases: Phases,
    pub error: Option<ProbeError>,
    /// Request start to the probe's end: the last body byte, the failure or the timeout.
    pub duration: Duration,
    /// Where the probe ended on the monotonic timeline ([`crate::clock::Clock::timeline_us`]):
    /// the position the windows place it at, unmoved by steps of the wall clock.
    pub ended_us: i64,
    /// The generation of the site's configuration that made this probe; the recorder drops a
    /// probe of a configuration that a reload has replaced.
    pub generation: u64,
    /// How late the probe started against its schedule.
    pub schedule_lag: Duration,
    /// Numbers reported by check plugins, by name.
    pub metrics: Vec<(String, f64)>,
    /// The registration expiry of the site's domain, for `domain_expiry` sites whose registry
    /// (RDAP) said it.
    pub domain_expiry: Option<DateTime<Utc>>,
    /// The TLS session and the certificate chain the server presented, for HTTPS probes that
    /// got as far as the server's certificate (also when verifying it failed).
    pub tls: Option<Arc<TlsDetails>>,
    /// The probe ran during a maintenance window of its site (set by the recorder).
    pub maintenance: bool,
    /// The cluster location whose node made this probe, for probes of other nodes; `None`:
    /// this sitewatch made it.
    pub location: Option<Arc<str>>,
    /// The redirects the probe followed, if any.
    pub redirect: Option<Arc<Redirected>>,
    /// Which of its site's running probes this was (the engine's `Running`); 0 when it was
    /// not started by the scheduler (restored history, another node's probe, tests).
    pub probe_id: u64,
    /// The steps of a `script` site's run, in order; empty for other kinds.
    pub steps: Vec<Step>,
}

/// One step of a scenario's run (a `script` site's probe).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// As the scenario named it (`login`, `orders`), sanitized.
    pub name: Arc<str>,
    /// What its requests took, together.
    pub duration: Duration,
    /// Requests it sent.
    pub requests: u32,
    /// The run failed in this step.
    pub failed: bool,
}

impl Step {
    /// Its duration in microseconds, as the windows and rollups count it (saturating).
    pub fn micros(&self) -> u32 {
        u32::try_from(self.duration.as_micros()).unwrap_or(u32::MAX)
    }
}

/// Where a probe's redirects led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirected {
    /// Redirects followed (1 or more).
    pub hops: u32,
    /// The URL of the final request, as shown (password and the site's secrets as `***`).
    pub final_url: String,
}

/// What a TLS handshake showed: the negotiated version and cipher suite and the served chain.
/// Its serde form is what the store keeps (once per distinct chain).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TlsDetails {
    /// `TLS 1.3`, `TLS 1.2`; `None` when the handshake did not get that far.
    pub version: Option<String>,
    /// The IANA name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: Option<String>,
    /// The chain as served: the leaf first, then the intermediates in the server's order.
    pub chain: Vec<CertInfo>,
}

impl TlsDetails {
    /// The leaf certificate, if the server sent one.
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.chain.first()
    }

    /// The earliest `not after` of the served chain (blackbox_exporter's
    /// `probe_ssl_earliest_cert_expiry`).
    pub fn earliest_expiry(&self) -> Option<DateTime<Utc>> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}

/// One certificate of a served chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertInfo {
    /// The subject as an RFC 4514 string, e.g. `CN=example.com`.
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative name extension.
    pub sans: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Hex of the serial number.
    pub serial: String,
    /// Lower-case hex of the SHA-256 of the certificate's DER (blackbox_exporter's
    /// `fingerprint_sha256`): tells a renewed certificate from the old one whatever its fields.
    pub fingerprint_sha256: String,
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
    /// whole response arrived (even if its status was unexpected), else the error kind (a body
    /// that timed out counts as `timeout`, not as its status; a response a check rejected counts
    /// as `check`, so a site failing its checks does not read as `200:94`).
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.status, self.error.as_ref().map(|e| e.kind))
    }

    /// When the probe ended (wall clock): its start plus its duration, for failures too (a
    /// timeout ends a whole timeout after it started).
    pub fn finished_at(&self) -> DateTime<Utc> {
        self.time + chrono::TimeDelta::from_std(self.duration).unwrap_or_default()
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
    /// What a probe with this status and error kind counts as (live or read back from the store).
    pub fn of(status: Option<u16>, kind: Option<ErrorKind>) -> Self {
        match (status, kind) {
            (Some(code), None | Some(ErrorKind::Status)) => Outcome::Status(code),
            (_, Some(kind)) => Outcome::Error(kind),
            // A response-less success cannot happen; count it as an HTTP error rather than panic.
            (None, None) => Outcome::Error(ErrorKind::Http),
        }
    }

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

/// Measurements for tests (of every crate), in one place.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// A probe of `site` (URL `http://{site}.test/`) that started at the Unix epoch and took
    /// 1 ms: up (200) or down (connection refused).
    pub fn sample(site: &str, up: bool) -> Measurement {
        let duration = Duration::from_millis(1);
        Measurement {
            domain_expiry: None,
            redirect: None,
            probe_id: 0,
            steps: Vec::new(),
            location: None,
            site: site.into(),
            url: format!("http://{site}.test/").into(),
            time: DateTime::UNIX_EPOCH,
            ok: up,
            status: up.then_some(200),
            ttfb: up.then_some(duration),
            response_time: up.then_some(duration),
            body_bytes: 0,
            body_truncated: false,
            phases: Phases::default(),
            error: (!up).then(|| ProbeError {
                kind: ErrorKind::Connect,
                message: "refused".into(),
            }),
            duration,
            ended_us: duration.as_micros() as i64,
            generation: 0,
            schedule_lag: Duration::ZERO,
            metrics: Vec::new(),
            tls: None,
            maintenance: false,
        }
    }

    /// [`sample`] started at `time`, placed where it ended on a timeline equal to the wall clock.
    pub fn at(site: &str, time: DateTime<Utc>, up: bool) -> Measurement {
        let mut m = sample(site, up);
        m.time = time;
        m.ended_us = m.finished_at().timestamp_micros();
        m
    }

    #[test]
    fn a_failed_check_counts_under_check_and_an_unexpected_status_under_its_code() {
        let mut m = sample("a", true);
        m.fail(ErrorKind::Check, "keyword: no OK".into());
        assert_eq!(m.outcome().label(), "check");
        let mut m = sample("a", true);
        m.status = Some(503);
        m.fail(ErrorKind::Status, "status 503".into());
        assert_eq!(m.outcome().label(), "503");
    }

    #[test]
    fn a_failure_ends_when_it_was_noticed_not_when_it_started() {
        let mut m = sample("a", false);
        m.duration = Duration::from_secs(10);
        assert_eq!(
            m.finished_at(),
            DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(10)
        );
    }
}
