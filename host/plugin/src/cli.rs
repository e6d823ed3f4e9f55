//! `sitewatch plugin inspect` and `sitewatch plugin test`: the plugin author's inner loop.

use super::bindings::{self, types};
use super::{Limits, Plugin, PluginHost, PluginKind};
use crate::measurement::{CertInfo, TlsDetails};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A canned response for `plugin test`, as JSON. Every field has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CannedResponse {
    pub url: String,
    pub method: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub body_truncated: bool,
    pub ttfb_ms: f64,
    pub response_ms: f64,
    /// The TLS session, as an HTTPS probe has it (plugins built against 0.2.0 see it); absent
    /// for plain HTTP.
    pub tls: Option<CannedTls>,
    /// The kind of site probed (`http`, the default; `tcp`, `dns`, `websocket`): the `body` is
    /// then the answer (a `dns` site's answers one per line), as plugins built against 0.3.0
    /// see it in `observed`.
    pub kind: String,
}

/// A canned TLS session. Every field has a default: TLS 1.3 and one certificate for `localhost`
/// valid from 30 days ago to 90 days from now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CannedTls {
    pub version: Option<String>,
    pub cipher: Option<String>,
    /// The leaf first.
    pub chain: Vec<CannedCert>,
}

impl Default for CannedTls {
    fn default() -> Self {
        Self {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            chain: vec![CannedCert::default()],
        }
    }
}

/// A canned certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CannedCert {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: CannedTime,
    pub not_after: CannedTime,
    pub serial: String,
}

impl Default for CannedCert {
    fn default() -> Self {
        Self {
            subject: "CN=localhost".into(),
            issuer: "CN=sitewatch test CA".into(),
            sans: vec!["localhost".into()],
            not_before: CannedTime::FromNow(-30 * DAY),
            not_after: CannedTime::FromNow(90 * DAY),
            serial: "01".into(),
        }
    }
}

const DAY: i64 = 86_400;

/// A time in a canned certificate: RFC 3339 (`"2026-12-24T00:00:00Z"`), Unix seconds, or an
/// offset from the moment the case runs (`"+3d 12h"`, `"-30d"`, humantime units), so that a case
/// means the same thing next year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTime")]
pub enum CannedTime {
    At(DateTime<Utc>),
    /// Seconds from now (negative: in the past).
    FromNow(i64),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTime {
    Seconds(i64),
    Text(String),
}

impl TryFrom<RawTime> for CannedTime {
    type Error = String;

    fn try_from(raw: RawTime) -> Result<Self, String> {
        let text = match raw {
            RawTime::Seconds(s) => {
                return DateTime::from_timestamp(s, 0)
                    .map(CannedTime::At)
                    .ok_or_else(|| format!("{s} is out of range for a time"));
            }
            RawTime::Text(t) => t,
        };
        let offset = |sign: i64, rest: &str| {
            humantime::parse_duration(rest.trim())
                .map_err(|e| format!("invalid offset {text:?}: {e}"))
                .and_then(|d| {
                    i64::try_from(d.as_secs())
                        .map(|s| CannedTime::FromNow(sign * s))
                        .map_err(|_| format!("offset {text:?} is too large"))
                })
        };
        if let Some(rest) = text.strip_prefix('+') {
            offset(1, rest)
        } else if let Some(rest) = text.strip_prefix('-') {
            offset(-1, rest)
        } else {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| CannedTime::At(t.with_timezone(&Utc)))
                .map_err(|e| {
                    format!(
                        "invalid time {text:?} ({e}): use RFC 3339, Unix seconds or an offset such as \"+3d\""
                    )
                })
        }
    }
}

impl CannedTime {
    fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            CannedTime::At(t) => t,
            CannedTime::FromNow(s) => now + chrono::TimeDelta::seconds(s),
        }
    }
}

impl CannedTls {
    /// The TLS details a probe would record, with offsets resolved from `now`.
    pub fn details(&self, now: DateTime<Utc>) -> TlsDetails {
        TlsDetails {
            version: self.version.clone(),
            cipher: self.cipher.clone(),
            chain: self
                .chain
                .iter()
                .map(|c| CertInfo {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    sans: c.sans.clone(),
                    not_before: c.not_before.at(now),
                    not_after: c.not_after.at(now),
                    serial: c.serial.clone(),
                    // Plugins are not shown the fingerprint; a canned chain needs none.
                    fingerprint_sha256: String::new(),
                })
                .collect(),
        }
    }
}

impl Default for CannedResponse {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1/".into(),
            method: "GET".into(),
            status: 200,
            headers: BTreeMap::new(),
            body: String::new(),
            body_truncated: false,
            ttfb_ms: 10.0,
            response_ms: 12.0,
            tls: None,
            kind: "http".into(),
        }
    }
}

impl From<CannedResponse> for types::Response {
    fn from(c: CannedResponse) -> Self {
        types::Response {
            url: c.url,
            method: c.method,
            status: c.status,
            headers: c
                .headers
                .into_iter()
                .map(|(name, value)| types::Header {
                    name: name.to_ascii_lowercase(),
                    value,
                })
                .collect(),
            observed: bindings::observed(&c.kind, c.body.as_bytes()),
            kind: c.kind,
            body: c.body.into_bytes(),
            body_truncated: c.body_truncated,
            timings: types::Timings {
                ttfb_ms: c.ttfb_ms,
                response_ms: c.response_ms,
                dns_ms: None,
                connect_ms: None,
                tls_ms: None,
            },
            tls: c.tls.map(|t| bindings::tls_info(&t.details(Utc::now()))),
        }
    }
}

/// One line describing a loaded plugin.
pub fn describe(p: &Plugin) -> String {
    format!(
        "{}: {} plugin, sitewatch:plugin@{}, sha256 {}\n  exports: {}\n  imports: {}",
        p.name,
        p.kind,
        p.wit,
        &p.hash[..16],
        p.exports.join(", "),
        if p.imports.is_empty() {
            "(none)".into()
        } else {
            p.imports.join(", ")
        }
    )
}

/// What `plugin test` found.
#[derive(Debug, serde::Serialize)]
pub struct TestReport {
    pub plugin: String,
    pub kind: String,
    /// `pass`, `fail`, `error` (the plugin reported an error) or `crash` (trap or limit).
    pub verdict: String,
    pub reason: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    /// For formatters: the rendered text.
    pub output: Option<String>,
    pub load_ms: f64,
    pub call_ms: f64,
}

/// Loads `file` and calls it once.
pub async fn test(
    host: &Arc<PluginHost>,
    file: &Path,
    config: &str,
    response: types::Response,
    alert: types::Alert,
    limits: Limits,
) -> Result<TestReport, super::PluginError> {
    let (plugin, load_ms) = load_timed(host, file).await?;
    Ok(call(host, &plugin, load_ms, config, response, alert, limits).await)
}

/// Loads `file`, and how long that took in ms.
async fn load_timed(
    host: &Arc<PluginHost>,
    file: &Path,
) -> Result<(Plugin, f64), super::PluginError> {
    let started = Instant::now();
    let plugin = host.load_file(file).await?;
    Ok((plugin, crate::ms(started.elapsed())))
}

/// Calls a loaded plugin once, in a fresh instance.
pub async fn call(
    host: &Arc<PluginHost>,
    plugin: &Plugin,
    load_ms: f64,
    config: &str,
    response: types::Response,
    alert: types::Alert,
    limits: Limits,
) -> TestReport {
    let started = Instant::now();
    let mut report = TestReport {
        plugin: plugin.name.to_string(),
        kind: plugin.kind.to_string(),
        verdict: String::new(),
        reason: None,
        metrics: BTreeMap::new(),
        output: None,
        load_ms,
        call_ms: 0.0,
    };
    let (verdict, reason) = match plugin.kind {
        PluginKind::Check => match host.check(plugin, limits, config, &response).await {
            Ok(Ok(r)) => {
                report.metrics = r
                    .metrics
                    .into_iter()
                    .map(|m| (super::sanitize_metric_name(&m.name), m.value))
                    .collect();
                match r.verdict {
                    types::Verdict::Pass => ("pass", None),
                    types::Verdict::Fail(why) => ("fail", Some(super::sanitize_text(&why, 300))),
                }
            }
            Ok(Err(e)) => ("error", Some(super::sanitize_text(&e, 300))),
            Err(f) => ("crash", Some(f.message)),
        },
        PluginKind::Scenario => (
            "error",
            Some(
                "a scenario runs against a target, not on a canned response: `sitewatch plugin test <file> --config '{...}' --allow <host>`"
                    .to_owned(),
            ),
        ),
        PluginKind::Formatter => match host.format(plugin, limits, config, &alert).await {
            Ok(Ok(text)) => {
                report.output = Some(text);
                ("pass", None)
            }
            Ok(Err(e)) => ("error", Some(super::sanitize_text(&e, 300))),
            Err(f) => ("crash", Some(f.message)),
        },
    };
    report.call_ms = crate::ms(started.elapsed());
    report.verdict = verdict.into();
    report.reason = reason;
    report
}

/// One case of a `plugin test --cases` file: a config, a canned response and what the plugin
/// must answer. The same file tests a plugin in any language.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// The plugin's config (any JSON; `{}` when absent).
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    #[serde(default)]
    pub response: CannedResponse,
    pub expect: Expectation,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// What a case expects: the verdict (`pass`, `fail`, `error` or `crash`) and, optionally, the
/// reason exactly or its beginning (error texts differ between languages' JSON parsers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub verdict: String,
    pub reason: Option<String>,
    pub reason_starts_with: Option<String>,
}

impl Expectation {
    /// Why `report` does not meet this expectation, or `None` when it does.
    pub fn mismatch(&self, report: &TestReport) -> Option<String> {
        let got = || match &report.reason {
            Some(r) => format!("{}: {r}", report.verdict),
            None => report.verdict.clone(),
        };
        if report.verdict != self.verdict {
            return Some(format!("expected {}, got {}", self.verdict, got()));
        }
        let reason = report.reason.as_deref().unwrap_or("");
        if let Some(want) = &self.reason
            && reason != want
        {
            return Some(format!("expected reason {want:?}, got {}", got()));
        }
        if let Some(prefix) = &self.reason_starts_with
            && !reason.starts_with(prefix.as_str())
        {
            return Some(format!(
                "expected a reason starting {prefix:?}, got {}",
                got()
            ));
        }
        None
    }
}

/// Reads a cases file; the error names the file and what is wrong.
pub fn read_cases(path: &Path) -> Result<Vec<TestCase>, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let cases: Vec<TestCase> = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a list of test cases: {e}", path.display()))?;
    if cases.is_empty() {
        return Err(format!("{} has no test cases", path.display()));
    }
    Ok(cases)
}

/// The outcome of one case.
#[derive(Debug, serde::Serialize)]
pub struct CaseResult {
    pub name: String,
    pub report: TestReport,
    /// Why the case failed, or `None` when the plugin answered as expected.
    pub mismatch: Option<String>,
}

/// Loads `file` once and runs every case on it.
pub async fn run_cases(
    host: &Arc<PluginHost>,
    file: &Path,
    cases: Vec<TestCase>,
    limits: Limits,
) -> Result<Vec<CaseResult>, super::PluginError> {
    let (plugin, load_ms) = load_timed(host, file).await?;
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let config = case.config.to_string();
        let report = call(
            host,
            &plugin,
            load_ms,
            &config,
            case.response.into(),
            sample_alert(),
            limits,
        )
        .await;
        results.push(CaseResult {
            mismatch: case.expect.mismatch(&report),
            name: case.name,
            report,
        });
    }
    Ok(results)
}

/// The response smoke tests and benchmarks use: a small JSON health answer.
pub fn sample_response() -> types::Response {
    CannedResponse {
        headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
        body: r#"{"status":"UP"}"#.into(),
        ..CannedResponse::default()
    }
    .into()
}

/// The alert `plugin test` and smoke tests give formatters.
pub fn sample_alert() -> types::Alert {
    types::Alert {
        kind: types::AlertKind::Down,
        site: "example".into(),
        url: "https://example.com/".into(),
        availability: 2.0 / 3.0,
        time: "2026-11-24T10:00:00Z".into(),
        down_since: None,
        down_for_seconds: None,
        recent_errors: vec!["status: status 503, expected 2xx".into()],
        message: "Website example is down. availability=66.67%, time=2026-11-24T10:00:00Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_times_are_rfc3339_unix_seconds_or_offsets_from_now() {
        let parse = |v: serde_json::Value| serde_json::from_value::<CannedTime>(v);
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let at = |v| parse(v).unwrap().at(now).to_rfc3339();
        assert_eq!(
            at(serde_json::json!("+3d 12h")),
            "2026-11-27T22:00:00+00:00"
        );
        assert_eq!(at(serde_json::json!("-30d")), "2026-10-25T10:00:00+00:00");
        assert_eq!(
            at(serde_json::json!("2027-01-01T00:00:00Z")),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(at(serde_json::json!(0)), "1970-01-01T00:00:00+00:00");
        let err = parse(serde_json::json!("next week"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use RFC 3339, Unix seconds or an offset"),
            "{err}"
        );
        assert!(parse(serde_json::json!("+soon")).is_err());
    }

    #[test]
    fn a_canned_tls_session_reaches_the_response_with_its_earliest_expiry() {
        let canned: CannedResponse = serde_json::from_value(serde_json::json!({
            "url": "https://localhost/",
            "tls": {"chain": [
                {"not_after": "2027-01-01T00:00:00Z"},
                {"subject": "CN=Intermediate", "not_after": "2026-12-01T00:00:00Z"}
            ]}
        }))
        .unwrap();
        let response = types::Response::from(canned);
        let tls = response.tls.unwrap();
        assert_eq!(tls.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(tls.chain[0].subject, "CN=localhost");
        assert_eq!(tls.chain[1].subject, "CN=Intermediate");
        assert_eq!(tls.earliest_expiry, Some(1_796_083_200));
        let plain = types::Response::from(CannedResponse::default());
        assert!(plain.tls.is_none());
    }
}

/// A scenario's `plugin test`: where it may go and what it may spend.
#[derive(Debug, Clone)]
pub struct ScenarioTest {
    /// The scenario's config, as JSON text (its `${NAME}` are read from the environment).
    pub config: String,
    /// Hosts it may reach; empty: the host of its config's `url`.
    pub allow: Vec<String>,
    pub timeout: std::time::Duration,
    pub max_requests: u32,
}

/// Runs the scenario `plugin` (loaded from `file`) once, as a `script` site of its own: its
/// measurement, with the steps. The error names what is wrong with the arguments.
pub async fn test_scenario(
    host: &Arc<PluginHost>,
    plugin: Plugin,
    file: &Path,
    test: &ScenarioTest,
    limits: Limits,
) -> Result<crate::measurement::Measurement, String> {
    let config: serde_json::Value =
        serde_json::from_str(&test.config).map_err(|e| format!("--config is not JSON: {e}"))?;
    let mut site = serde_json::json!({
        "name": &*plugin.name,
        "kind": "script",
        "plugin": &*plugin.name,
        "config": config,
        "timeout": test.timeout.as_secs_f64(),
        "max_requests": test.max_requests,
        "memory_limit": limits.memory,
        "time_limit": limits.time.as_secs_f64(),
    });
    if test.allow.is_empty() {
        match config.get("url").and_then(|u| u.as_str()) {
            Some(url) => site["url"] = url.into(),
            None => {
                return Err(
                    "give --allow (the hosts the scenario may reach), or a \"url\" in --config"
                        .into(),
                );
            }
        }
    } else {
        site["allow"] = test.allow.clone().into();
    }
    let text = serde_json::json!({"sites": [site]}).to_string();
    let at = file.with_file_name("(plugin test)");
    let config = crate::config::Config::parse(&at, text.as_bytes())
        .map_err(|e| sitewatch_core::error_chain(&e))?;
    let site = config.sites.into_iter().next().ok_or("no site")?;
    let plugins = super::set::PluginSet::of(Arc::clone(host), plugin);
    let prober = crate::probe::Prober::new(Arc::new(crate::clock::SystemClock::default()))
        .map_err(|e| e.to_string())?;
    let mut target = crate::probe::Target::new(site);
    prober.prepare(&mut target).map_err(|e| e.to_string())?;
    let scenario = super::scenario::SiteScenario::new(&target.config);
    super::scenario::probe(
        &plugins,
        &prober,
        &target,
        &scenario,
        tokio::time::Instant::now(),
    )
    .await
    .map_err(|e| format!("sitewatch could not run the scenario: {e}"))
}
