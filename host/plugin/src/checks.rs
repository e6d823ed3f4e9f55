//! Runs a site's check plugins on a probe's response and folds their verdicts and metrics into
//! the measurement.
//!
//! A check that keeps running into its time limit on a site costs a plugin thread for its
//! whole limit on every probe: after `PAUSE_AFTER` such runs in a row it is paused for that
//! site (the probes fail with kind `plugin`, saying until when), for a backoff that doubles
//! each time it happens again, up to `PAUSE_MAX`; an error event says so, and another when
//! it runs again. A run within the limit ends the streak and the backoff.

use super::bindings::{self, types};
use super::sanitize_text;
use super::set::PluginSet;
use crate::config::SiteConfig;
use crate::measurement::{ErrorKind, Measurement};
use crate::probe::Captured;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest failure reason kept from a plugin.
const MAX_REASON: usize = 300;

/// Runs into the time limit this many times in a row, and a check is paused on a site.
pub(crate) const PAUSE_AFTER: u32 = 3;
/// The first pause; each next one doubles.
pub(crate) const PAUSE_MIN: Duration = Duration::from_secs(30);
/// The longest pause.
pub(crate) const PAUSE_MAX: Duration = Duration::from_secs(600);

/// The time-limit streaks and pauses of one site's checks, kept across its probes.
#[derive(Debug, Default)]
pub struct SiteChecks {
    state: Mutex<Vec<Streak>>,
}

#[derive(Debug, Default, Clone)]
struct Streak {
    /// Runs in a row that hit the time limit.
    timeouts: u32,
    /// The pause now and how long it is, if paused (or last paused: the next one doubles).
    until: Option<Instant>,
    pause: Option<Duration>,
}

/// What a check's run did to its streak, for the event to publish.
enum Pause {
    Started(Duration),
    Ended,
}

impl SiteChecks {
    fn with<T>(&self, i: usize, f: impl FnOnce(&mut Streak) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() <= i {
            state.resize(i + 1, Streak::default());
        }
        f(&mut state[i])
    }

    /// Until when check `i` is paused, if it is.
    fn paused(&self, i: usize, now: Instant) -> Option<Instant> {
        self.with(i, |s| s.until.filter(|u| *u > now))
    }

    /// Notes a run of check `i`; says whether a pause starts (or one that had passed ends).
    fn ran(&self, i: usize, timed_out: bool, now: Instant) -> Option<Pause> {
        self.with(i, |s| {
            let resumed = s.until.take().is_some();
            if !timed_out {
                s.timeouts = 0;
                s.pause = None;
                return resumed.then_some(Pause::Ended);
            }
            s.timeouts += 1;
            // Once paused, a single time-out after the pause pauses it again, for longer.
            if s.timeouts < PAUSE_AFTER && s.pause.is_none() {
                return resumed.then_some(Pause::Ended);
            }
            let pause = s.pause.map_or(PAUSE_MIN, |p| (p * 2).min(PAUSE_MAX));
            s.pause = Some(pause);
            s.until = Some(now + pause);
            s.timeouts = 0;
            Some(Pause::Started(pause))
        })
    }
}

/// Runs every check of `site` in order; the first failure decides the verdict. `state` keeps
/// the site's time-limit streaks; pauses and their ends are reported on `bus`.
pub async fn run(
    plugins: &PluginSet,
    site: &SiteConfig,
    state: &SiteChecks,
    bus: &crate::event::Bus,
    m: &mut Measurement,
    captured: Captured,
) {
    let response = response(site.method.as_str(), m, captured);
    for (i, check) in site.checks.iter().enumerate() {
        if let Some(until) = state.paused(i, Instant::now()) {
            m.fail(
                ErrorKind::Plugin,
                format!(
                    "{}: exceeded its time limit of {} {PAUSE_AFTER} runs in a row, so it is paused on this site for {} more",
                    check.plugin,
                    humantime::format_duration(check.limits.time),
                    crate::clock::human_duration(until.saturating_duration_since(Instant::now())),
                ),
            );
            return;
        }
        let Some(plugin) = plugins.get(&check.plugin) else {
            m.fail(
                ErrorKind::Plugin,
                format!("{}: {}", check.plugin, plugins.why_missing(&check.plugin)),
            );
            return;
        };
        let host = match plugins.host() {
            Ok(h) => h,
            Err(e) => {
                m.fail(ErrorKind::Plugin, format!("{}: {e}", check.plugin));
                return;
            }
        };
        let outcome = host
            .check(&plugin, check.limits, &check.config, &response)
            .await;
        let timed_out = matches!(&outcome, Err(f) if f.timed_out);
        match state.ran(i, timed_out, Instant::now()) {
            Some(Pause::Started(pause)) => bus.error(
                "plugin",
                Some(site.name.as_str().into()),
                format!(
                    "check {} is paused on site {} for {}: it keeps running into its time limit of {} ({PAUSE_AFTER} runs in a row); the site's probes fail with kind plugin meanwhile",
                    check.plugin,
                    site.name,
                    crate::clock::human_duration(pause),
                    humantime::format_duration(check.limits.time)
                ),
            ),
            Some(Pause::Ended) => bus.error(
                "plugin",
                Some(site.name.as_str().into()),
                format!(
                    "check {} runs again on site {} after its pause",
                    check.plugin, site.name
                ),
            ),
            None => {}
        }
        match outcome {
            Ok(Ok(result)) => {
                m.metrics
                    .extend(super::sanitize::kept_metrics(result.metrics));
                if let types::Verdict::Fail(reason) = result.verdict {
                    m.fail(
                        ErrorKind::Check,
                        format!("{}: {}", check.plugin, sanitize_text(&reason, MAX_REASON)),
                    );
                    return;
                }
            }
            Ok(Err(message)) => {
                m.fail(
                    ErrorKind::Plugin,
                    format!("{}: {}", check.plugin, sanitize_text(&message, MAX_REASON)),
                );
                return;
            }
            Err(failure) => {
                m.fail(
                    ErrorKind::Plugin,
                    format!("{}: {}", check.plugin, failure.message),
                );
                return;
            }
        }
    }
}

/// The response the checks judge: the newest WIT version's (older plugins get it converted).
fn response(method: &str, m: &Measurement, captured: Captured) -> types::Response {
    let kind = crate::measurement::kind_of(&m.url);
    let method = if kind == "http" { method } else { "" };
    types::Response {
        kind: kind.to_owned(),
        observed: bindings::observed(kind, &captured.body),
        url: m.url.to_string(),
        method: method.to_owned(),
        status: m.status.unwrap_or_default(),
        headers: captured
            .headers
            .into_iter()
            .map(|(name, value)| types::Header { name, value })
            .collect(),
        body: captured.body,
        body_truncated: m.body_truncated,
        timings: types::Timings {
            ttfb_ms: m.ttfb.map(crate::ms).unwrap_or_default(),
            response_ms: m.response_time.map(crate::ms).unwrap_or_default(),
            dns_ms: m.phases.dns.map(crate::ms),
            connect_ms: m.phases.connect.map(crate::ms),
            tls_ms: m.phases.tls.map(crate::ms),
        },
        tls: m.tls.as_deref().map(bindings::tls_info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::{CertInfo, TlsDetails};
    use chrono::{DateTime, Utc};
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_checks_see_the_probes_tls_session_and_chain() {
        let mut m = crate::measurement::testing::sample("api", true);
        let captured = || Captured {
            headers: vec![("server".into(), "test".into())],
            body: b"ok".to_vec(),
        };
        assert!(response("GET", &m, captured()).tls.is_none(), "plain HTTP");
        m.tls = Some(Arc::new(TlsDetails {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
            chain: vec![
                CertInfo {
                    subject: "CN=api.test".into(),
                    issuer: "CN=Intermediate".into(),
                    sans: vec!["api.test".into(), "127.0.0.1".into()],
                    not_before: at("2026-01-01T00:00:00Z"),
                    not_after: at("2027-01-01T00:00:00Z"),
                    serial: "0a1b".into(),
                    fingerprint_sha256: "aa".repeat(32),
                },
                CertInfo {
                    subject: "CN=Intermediate".into(),
                    issuer: "CN=Root".into(),
                    sans: vec![],
                    not_before: at("2025-01-01T00:00:00Z"),
                    not_after: at("2026-12-01T00:00:00Z"),
                    serial: "02".into(),
                    fingerprint_sha256: "bb".repeat(32),
                },
            ],
        }));
        let r = response("GET", &m, captured());
        assert_eq!(r.body, b"ok");
        let tls = r.tls.expect("an HTTPS probe's session");
        assert_eq!(tls.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(tls.cipher.as_deref(), Some("TLS13_AES_256_GCM_SHA384"));
        assert_eq!(tls.chain.len(), 2);
        let leaf = &tls.chain[0];
        assert_eq!(
            (&*leaf.subject, &*leaf.issuer, &*leaf.serial),
            ("CN=api.test", "CN=Intermediate", "0a1b")
        );
        assert_eq!(leaf.sans, ["api.test", "127.0.0.1"]);
        assert_eq!(leaf.not_before, 1_767_225_600);
        assert_eq!(leaf.not_after, 1_798_761_600);
        // The intermediate expires first.
        assert_eq!(tls.earliest_expiry, Some(1_796_083_200));
    }
}
