//! `sitewatch plugin inspect` and `sitewatch plugin test`: the plugin author's inner loop.

use super::bindings::types;
use super::{Limits, Plugin, PluginHost, PluginKind};
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
            body: c.body.into_bytes(),
            body_truncated: c.body_truncated,
            timings: types::Timings {
                ttfb_ms: c.ttfb_ms,
                response_ms: c.response_ms,
                dns_ms: None,
                connect_ms: None,
                tls_ms: None,
            },
        }
    }
}

/// One line describing a loaded plugin.
pub fn describe(p: &Plugin) -> String {
    format!(
        "{}: {} plugin, sha256 {}\n  exports: {}\n  imports: {}",
        p.name,
        p.kind,
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
            Err(f) => ("crash", Some(f.0)),
        },
        PluginKind::Formatter => match host.format(plugin, limits, config, &alert).await {
            Ok(Ok(text)) => {
                report.output = Some(text);
                ("pass", None)
            }
            Ok(Err(e)) => ("error", Some(super::sanitize_text(&e, 300))),
            Err(f) => ("crash", Some(f.0)),
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
