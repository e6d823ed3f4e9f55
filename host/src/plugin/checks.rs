//! Runs a site's check plugins on a probe's response and folds their verdicts and metrics into
//! the measurement.

use super::bindings::{self, types};
use super::set::PluginSet;
use super::{sanitize_metric_name, sanitize_text};
use crate::config::SiteConfig;
use crate::measurement::{ErrorKind, Measurement};
use crate::probe::Captured;

/// Most metrics one check may add to a measurement.
const MAX_METRICS: usize = 32;
/// Longest failure reason kept from a plugin.
const MAX_REASON: usize = 300;

/// Runs every check of `site` in order; the first failure decides the verdict.
pub async fn run(plugins: &PluginSet, site: &SiteConfig, m: &mut Measurement, captured: Captured) {
    let response = response(site.method.as_str(), m, captured);
    for check in &site.checks {
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
        match host
            .check(&plugin, check.limits, &check.config, &response)
            .await
        {
            Ok(Ok(result)) => {
                m.metrics.extend(
                    result
                        .metrics
                        .into_iter()
                        .filter(|x| x.value.is_finite())
                        .take(MAX_METRICS)
                        .map(|x| (sanitize_metric_name(&x.name), x.value)),
                );
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
                    format!("{}: {}", check.plugin, failure.0),
                );
                return;
            }
        }
    }
}

/// The response the checks judge: the newest WIT version's (older plugins get it converted).
fn response(method: &str, m: &Measurement, captured: Captured) -> types::Response {
    types::Response {
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
        let mut m = crate::measurement::tests::sample("api", true);
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
