//! Runs a site's check plugins on a probe's response and folds their verdicts and metrics into
//! the measurement.

use super::bindings::types;
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
    let response = types::Response {
        url: m.url.to_string(),
        method: site.method.to_string(),
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
    };
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
