//! Scenarios: the probe of a `script` site is one run of its scenario plugin (the `scenario`
//! world of WIT 0.4.0), which drives its requests through the host's `scenario-host` imports.
//!
//! The host holds the network and the secrets. Each request goes through the prober (the
//! site's client and TLS trust, its redirect policy and body cap, timed as probes are) after
//! three checks: its host is in the site's `allow` (every redirect hop too), the run has
//! requests and time left (`max_requests`, the site's `timeout`), and every `${NAME}` it holds
//! is a secret the site gives its scenario. The host puts the secrets in as it sends (encoded
//! for where they stand), and takes them out of whatever comes back (as sent, percent- or
//! form-encoded, JSON-escaped or base64), so the plugin only ever sees the placeholder. A
//! refusal of the host (a host not allowed, the budget spent) fails the run whatever the plugin
//! answers. A run becomes one [`Measurement`] with its steps: each step's requests' time.

use crate::bindings::v0_4::scenario_host::{self, FailureKind, SendError};
use crate::bindings::{types, v0_4};
use crate::config::SiteConfig;
use crate::config::kind::{Kind, Script};
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError, Step};
use crate::probe::{Exchange, MonitorFailure, Prober, Target};
use crate::sanitize::kept_metrics;
use crate::set::PluginSet;
use crate::{PluginState, sanitize_text};
use base64::Engine as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use v0_4::script::{Failure, Outcome};

/// The most distinct steps a run records; later names count into the last one.
pub const MAX_STEPS: usize = 32;
/// The longest step name kept.
pub const MAX_STEP_NAME: usize = 64;
/// The step of requests sent before the scenario names one.
pub const FIRST_STEP: &str = "main";
/// Longest failure message kept from a scenario.
const MAX_MESSAGE: usize = 300;

/// What a run's host calls reach, and what the run did.
#[derive(Clone)]
pub struct Session {
    /// Where its requests go; `None`: a load check, which sends nothing.
    net: Option<Net>,
    budget: Duration,
    started: Instant,
    max_requests: u32,
    sent: u32,
    steps: Vec<StepRecord>,
    current: Option<usize>,
    /// A refusal of the host: the run fails with it, whatever the plugin answers.
    refusal: Option<(FailureKind, String)>,
    /// The refusal is of the run's time (a timeout), not of what it asked for.
    timed_out: bool,
    /// sitewatch itself could not send (no file descriptor): the run does not count.
    monitor: Option<MonitorFailure>,
    /// The first response's time to first byte and connection phases.
    first: Option<(Duration, Phases)>,
    last_status: Option<u16>,
    body_bytes: u64,
    secrets: Arc<Secrets>,
}

#[derive(Clone)]
struct Net {
    prober: Prober,
    target: Target,
}

#[derive(Debug, Clone)]
struct StepRecord {
    name: String,
    duration: Duration,
    requests: u32,
}

/// What a `script` site's runs share, made once per site configuration (not per run): its
/// secrets and every form of them the host redacts.
#[derive(Default)]
pub struct SiteScenario {
    secrets: Arc<Secrets>,
}

impl SiteScenario {
    pub fn new(site: &SiteConfig) -> Self {
        Self {
            secrets: Arc::new(
                script(site).map_or_else(Secrets::default, |s| Secrets::new(&s.secrets)),
            ),
        }
    }
}

impl std::fmt::Debug for SiteScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteScenario([secrets])")
    }
}

impl Session {
    /// A run of `target`'s scenario, its requests sent by `prober`.
    pub fn new(prober: &Prober, target: &Target, scenario: &SiteScenario) -> Self {
        let site = &target.config;
        Self {
            net: Some(Net {
                prober: prober.clone(),
                target: target.clone(),
            }),
            budget: site.timeout,
            max_requests: script(site).map_or(0, |s| s.max_requests),
            secrets: Arc::clone(&scenario.secrets),
            ..Self::dry()
        }
    }

    /// A run that sends nothing (every request is refused): the load check of a scenario.
    pub fn dry() -> Self {
        Self {
            net: None,
            budget: Duration::from_secs(2),
            started: Instant::now(),
            max_requests: 0,
            sent: 0,
            steps: Vec::new(),
            current: None,
            refusal: None,
            timed_out: false,
            monitor: None,
            first: None,
            last_status: None,
            body_bytes: 0,
            secrets: Arc::default(),
        }
    }

    /// The run's whole time.
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    fn left(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    /// The step requests now count into (the first step, unnamed, is [`FIRST_STEP`]).
    fn step_index(&mut self) -> usize {
        match self.current {
            Some(i) => i,
            None => {
                self.name_step(FIRST_STEP);
                self.current.unwrap_or_default()
            }
        }
    }

    fn name_step(&mut self, name: &str) {
        let name = step_name(name);
        if let Some(i) = self.steps.iter().position(|s| s.name == name) {
            self.current = Some(i);
        } else if self.steps.len() < MAX_STEPS {
            self.steps.push(StepRecord {
                name,
                duration: Duration::ZERO,
                requests: 0,
            });
            self.current = Some(self.steps.len() - 1);
        }
    }

    fn refuse(&mut self, kind: FailureKind, message: String) -> SendError {
        let message = self.secrets.redact_text(&message);
        if self.refusal.is_none() {
            self.refusal = Some((kind, message.clone()));
        }
        SendError { kind, message }
    }

    async fn send(
        &mut self,
        request: scenario_host::Request,
    ) -> Result<scenario_host::Response, SendError> {
        let step = self.step_index();
        let Some(net) = self.net.clone() else {
            return Err(SendError {
                kind: FailureKind::Refused,
                message: "no request is sent while the plugin is checked at load".into(),
            });
        };
        if let Some((kind, message)) = &self.refusal {
            return Err(SendError {
                kind: *kind,
                message: message.clone(),
            });
        }
        if self.sent >= self.max_requests {
            let n = self.max_requests;
            return Err(self.refuse(
                FailureKind::Budget,
                format!("a run may send at most {n} requests (max_requests)"),
            ));
        }
        let left = self.left();
        if left.is_zero() {
            let budget = humantime::format_duration(self.budget);
            self.timed_out |= self.refusal.is_none();
            return Err(self.refuse(
                FailureKind::Budget,
                format!("the run's time ({budget}, the site's timeout) is spent"),
            ));
        }
        let exchange = match self.prepare(&net.target.config, request, left) {
            Ok(x) => x,
            Err((kind, message)) => return Err(self.refuse(kind, message)),
        };
        self.sent += 1;
        let (prober, target) = (net.prober.clone(), net.target.clone());
        // Sent from the plugin thread itself: handing each request to the probes' runtime and
        // back cost two cross-thread wake-ups, half again the requests' own CPU (see
        // docs/BENCHMARKS.md).
        let sent = prober.exchange(&target, exchange).await;
        let record = &mut self.steps[step];
        record.requests += 1;
        match sent {
            Err(monitor) => {
                let message = format!("sitewatch could not send the request: {monitor}");
                self.monitor = Some(monitor);
                Err(SendError {
                    kind: FailureKind::Other,
                    message,
                })
            }
            Ok(Err(failed)) => {
                record.duration += failed.elapsed;
                if let Some(host) = failed.refused {
                    return Err(self.refuse(
                        FailureKind::Refused,
                        format!("a redirect led to {host}, which is not in the site's allow"),
                    ));
                }
                self.first.get_or_insert((failed.elapsed, failed.phases));
                Err(SendError {
                    kind: failure_kind(failed.error.kind),
                    message: self.secrets.redact_text(&failed.error.message),
                })
            }
            Ok(Ok(x)) => {
                record.duration += x.response_time;
                self.first.get_or_insert((x.ttfb, x.phases));
                self.last_status = Some(x.status);
                self.body_bytes += x.body.len() as u64;
                let ms = |d: Duration| crate::ms(d);
                Ok(scenario_host::Response {
                    status: x.status,
                    headers: x
                        .headers
                        .into_iter()
                        .map(|(name, value)| types::Header {
                            name,
                            value: self.secrets.redact_text(&value),
                        })
                        .collect(),
                    body: self.secrets.redact(&x.body),
                    body_truncated: x.body_truncated,
                    url: self.secrets.redact_text(x.url.as_str()),
                    timings: types::Timings {
                        ttfb_ms: ms(x.ttfb),
                        response_ms: ms(x.response_time),
                        dns_ms: x.phases.dns.map(ms),
                        connect_ms: x.phases.connect.map(ms),
                        tls_ms: x.phases.tls.map(ms),
                    },
                })
            }
        }
    }

    /// The request as the prober sends it: secrets in, method, URL and headers checked, the
    /// host allowed, its time within what is left of the run.
    fn prepare(
        &self,
        site: &Arc<SiteConfig>,
        request: scenario_host::Request,
        left: Duration,
    ) -> Result<Exchange, (FailureKind, String)> {
        let refused = |m: String| (FailureKind::Refused, m);
        let secrets = &self.secrets;
        let method = match request.method.trim() {
            "" => reqwest::Method::GET,
            m => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| refused(format!("{m:?} is not a request method")))?,
        };
        let written = sanitize_text(&request.url, 200);
        let url = secrets
            .expand(request.url.as_bytes(), Encoding::Url)
            .map_err(refused)?;
        let url = String::from_utf8(url)
            .ok()
            .and_then(|u| url::Url::parse(&u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| refused(format!("{written} is not an http:// or https:// URL")))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let Some(spec) = script(site) else {
            return Err(refused("the site is not a script site".into()));
        };
        if !spec.allows(&host) {
            return Err(refused(format!(
                "the request to {host} is refused: the site allows {}",
                spec.allow.join(", ")
            )));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let mut content_type = String::new();
        for h in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| refused(format!("{:?} is not a header name", h.name)))?;
            let value = secrets
                .expand(h.value.as_bytes(), Encoding::Raw)
                .map_err(refused)?;
            let secret = value != h.value.as_bytes();
            let mut value = reqwest::header::HeaderValue::from_bytes(&value)
                .map_err(|_| refused(format!("the value of header {name} is not valid")))?;
            if secret {
                value.set_sensitive(true);
            }
            if name == reqwest::header::CONTENT_TYPE {
                content_type = h.value.to_ascii_lowercase();
            }
            headers.append(name, value);
        }
        let body = match &request.body {
            None => None,
            Some(b) => {
                let encoding = if content_type.starts_with("application/x-www-form-urlencoded") {
                    Encoding::Form
                } else if content_type.contains("json") {
                    Encoding::Json
                } else {
                    Encoding::Raw
                };
                Some(secrets.expand(b, encoding).map_err(refused)?)
            }
        };
        let timeout = request
            .timeout_ms
            .map_or(left, |ms| Duration::from_millis(ms.into()).min(left));
        let site = Arc::clone(site);
        Ok(Exchange {
            method,
            url,
            headers,
            body,
            timeout,
            allow: Arc::new(move |u: &url::Url| {
                matches!(u.scheme(), "http" | "https")
                    && script(&site).is_some_and(|s| s.allows(u.host_str().unwrap_or_default()))
            }),
        })
    }

    async fn sleep(&mut self, ms: u32) -> wasmtime::Result<()> {
        let want = Duration::from_millis(ms.into());
        let left = self.left();
        if want <= left {
            tokio::time::sleep(want).await;
            return Ok(());
        }
        tokio::time::sleep(left).await;
        self.timed_out |= self.refusal.is_none();
        let budget = humantime::format_duration(self.budget);
        self.refuse(
            FailureKind::Budget,
            format!("it slept past the run's time ({budget}, the site's timeout)"),
        );
        Err(wasmtime::Error::msg("the run's time is spent"))
    }

    /// The run as a measurement of `target`: up when the scenario passed and the host refused
    /// nothing; else the failure, naming its step.
    fn measurement(
        self,
        target: &Target,
        time: chrono::DateTime<chrono::Utc>,
        scheduled_lag: Duration,
        ended_us: i64,
        result: Result<Result<Outcome, Failure>, crate::CallFailure>,
        plugin: &str,
    ) -> Result<Measurement, MonitorFailure> {
        if let Some(m) = self.monitor {
            return Err(m);
        }
        let current = self.current.map(|i| self.steps[i].name.clone());
        let mut failed_step = current.clone();
        let mut metrics = Vec::new();
        let mut keep_metrics = |list: Vec<types::Metric>| metrics = kept_metrics(list).collect();
        let error = match (self.refusal, result) {
            (Some((_, message)), _) => Some(ProbeError {
                kind: if self.timed_out {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Plugin
                },
                message,
            }),
            (None, Ok(Ok(outcome))) => {
                keep_metrics(outcome.metrics);
                failed_step = None;
                None
            }
            (None, Ok(Err(failure))) => {
                keep_metrics(failure.metrics);
                if let Some(step) = failure.step.as_deref() {
                    failed_step = Some(step_name(step));
                }
                Some(ProbeError {
                    kind: error_kind(failure.kind),
                    message: self
                        .secrets
                        .redact_text(&sanitize_text(&failure.message, MAX_MESSAGE)),
                })
            }
            (None, Err(call)) if call.timed_out && self.started.elapsed() >= self.budget => {
                Some(ProbeError {
                    kind: ErrorKind::Timeout,
                    message: format!(
                        "{plugin}: the run took longer than its time ({}, the site's timeout)",
                        humantime::format_duration(self.budget)
                    ),
                })
            }
            (None, Err(call)) => Some(ProbeError {
                kind: if call.timed_out {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Plugin
                },
                message: format!("{plugin}: {}", call.message),
            }),
        };
        let error = error.map(|mut e| {
            if let Some(step) = &failed_step {
                e.message = format!("step {step}: {}", e.message);
            }
            e
        });
        let steps: Vec<Step> = self
            .steps
            .iter()
            .map(|s| Step {
                name: s.name.as_str().into(),
                duration: s.duration,
                requests: s.requests,
                failed: error.is_some() && failed_step.as_deref() == Some(s.name.as_str()),
            })
            .collect();
        let network: Duration = steps.iter().map(|s| s.duration).sum();
        let (ttfb, phases) = self.first.unzip();
        Ok(Measurement {
            site: Arc::clone(&target.name),
            url: Arc::clone(&target.url),
            time,
            ok: error.is_none(),
            status: self.last_status,
            ttfb,
            response_time: (self.sent > 0).then_some(network),
            body_bytes: self.body_bytes,
            body_truncated: false,
            phases: phases.unwrap_or_default(),
            error,
            duration: self.started.elapsed(),
            ended_us,
            generation: target.generation,
            schedule_lag: scheduled_lag,
            metrics,
            domain_expiry: None,
            tls: None,
            maintenance: false,
            location: None,
            redirect: None,
            probe_id: 0,
            steps,
        })
    }
}

/// Runs `target`'s scenario once: its measurement, with its steps. A missing or broken
/// plugin fails the run with kind `plugin`, naming why. `scenario` is what the site's runs
/// share ([`SiteScenario::new`] of its config).
pub async fn probe(
    plugins: &PluginSet,
    prober: &Prober,
    target: &Target,
    scenario: &SiteScenario,
    scheduled: tokio::time::Instant,
) -> Result<Measurement, MonitorFailure> {
    let schedule_lag = tokio::time::Instant::now().saturating_duration_since(scheduled);
    let time = prober.now();
    let site = &target.config;
    let Some(script) = script(site) else {
        return Err(MonitorFailure(format!(
            "site {} is not a script site",
            site.name
        )));
    };
    let session = Session::new(prober, target, scenario);
    let name = &script.plugin.plugin;
    let (result, session) = match (plugins.get(name), plugins.host()) {
        (Some(plugin), Ok(host)) => {
            let run = host
                .run_scenario(
                    &plugin,
                    script.plugin.limits,
                    &script.plugin.config,
                    Box::new(session),
                )
                .await;
            match run {
                Ok((r, Some(s))) => (r, *s),
                // The plugin host is shutting down: sitewatch's doing, not the site's.
                Ok((_, None)) | Err(_) => {
                    return Err(MonitorFailure("the plugin host is shutting down".into()));
                }
            }
        }
        (None, _) => (
            Err(crate::CallFailure::new(plugins.why_missing(name))),
            session,
        ),
        (_, Err(e)) => (Err(crate::CallFailure::new(e.to_string())), session),
    };
    let ended_us = prober.timeline_us(Instant::now());
    session.measurement(target, time, schedule_lag, ended_us, result, name)
}

/// What `sitewatch plugin test` prints of a scenario's run: each step, then the verdict.
pub fn report(m: &Measurement) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for s in &m.steps {
        let _ = writeln!(
            out,
            "step {:<20} {:>9.1} ms  {} request{}{}",
            s.name,
            crate::ms(s.duration),
            s.requests,
            if s.requests == 1 { "" } else { "s" },
            if s.failed { "  FAILED" } else { "" }
        );
    }
    match &m.error {
        None => out.push_str("up"),
        Some(e) => {
            let _ = write!(out, "down ({}): {}", e.kind, e.message);
        }
    }
    for (name, value) in &m.metrics {
        let _ = write!(out, "\nmetric {name} = {value}");
    }
    out
}

fn script(site: &SiteConfig) -> Option<&Script> {
    match &site.kind {
        Kind::Script(s) => Some(s),
        _ => None,
    }
}

/// A step name as kept: trimmed, control characters out, at most [`MAX_STEP_NAME`] characters;
/// [`FIRST_STEP`] when nothing is left.
fn step_name(name: &str) -> String {
    // sanitize_text marks a cut with one more character.
    let name = sanitize_text(name.trim(), MAX_STEP_NAME - 1);
    if name.is_empty() {
        FIRST_STEP.to_owned()
    } else {
        name
    }
}

/// The kind of a failed request, as a scenario sees it.
fn failure_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::Dns => FailureKind::Dns,
        ErrorKind::Connect => FailureKind::Connect,
        ErrorKind::Tls => FailureKind::Tls,
        ErrorKind::Timeout => FailureKind::Timeout,
        ErrorKind::Http => FailureKind::Http,
        ErrorKind::Body => FailureKind::Body,
        ErrorKind::Status => FailureKind::Status,
        ErrorKind::Check | ErrorKind::Answer => FailureKind::Assertion,
        ErrorKind::Plugin => FailureKind::Other,
    }
}

/// The error kind of a run that failed with `kind`.
fn error_kind(kind: FailureKind) -> ErrorKind {
    match kind {
        FailureKind::Status => ErrorKind::Status,
        FailureKind::Assertion => ErrorKind::Check,
        FailureKind::Timeout => ErrorKind::Timeout,
        FailureKind::Dns => ErrorKind::Dns,
        FailureKind::Connect => ErrorKind::Connect,
        FailureKind::Tls => ErrorKind::Tls,
        FailureKind::Http => ErrorKind::Http,
        FailureKind::Body => ErrorKind::Body,
        FailureKind::Refused | FailureKind::Budget | FailureKind::Config => ErrorKind::Plugin,
        FailureKind::Other => ErrorKind::Check,
    }
}

/// Where a secret is put in, and so how its value is encoded there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Percent-encoded (anything but letters, digits and `-._~`).
    Url,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Escaped as inside a JSON string.
    Json,
    /// As is (headers, other bodies).
    Raw,
}

/// The secrets a scenario's requests may name, and every form of their values that a
/// response may echo.
#[derive(Default)]
struct Secrets {
    values: Vec<(String, String)>,
    /// (a form of a value, its placeholder), longest first.
    forms: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Secrets {
    fn new(secrets: &[(String, crate::config::secret::Secret<String>)]) -> Self {
        let mut forms: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let values: Vec<(String, String)> = secrets
            .iter()
            .map(|(n, v)| (n.clone(), v.expose().clone()))
            .collect();
        for (name, value) in &values {
            let placeholder = format!("${{{name}}}").into_bytes();
            // The value as sent, and as a server may echo it: encoded once, or twice (a JSON
            // echo of a JSON or form body).
            let once: Vec<String> = std::iter::once(value.clone())
                .chain(encodings(value))
                .collect();
            let twice = once[1..].iter().flat_map(|f| encodings(f));
            for form in once.clone().into_iter().chain(twice) {
                if !form.is_empty() && !forms.iter().any(|(f, _)| f == form.as_bytes()) {
                    forms.push((form.into_bytes(), placeholder.clone()));
                }
            }
        }
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Self { values, forms }
    }

    /// `bytes` with every `${NAME}` replaced by its secret, encoded for where it stands;
    /// `$${` is a literal `${`. An error names a `${NAME}` that is not one of the secrets.
    fn expand(&self, bytes: &[u8], encoding: Encoding) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|b| *b == b'$') {
            out.extend_from_slice(&rest[..at]);
            let after = &rest[at..];
            if let Some(tail) = after.strip_prefix(b"$${") {
                out.extend_from_slice(b"${");
                rest = tail;
                continue;
            }
            let Some(inner) = after.strip_prefix(b"${") else {
                out.push(b'$');
                rest = &after[1..];
                continue;
            };
            let Some(end) = inner.iter().position(|b| *b == b'}') else {
                out.extend_from_slice(after);
                rest = &[];
                break;
            };
            let name = String::from_utf8_lossy(&inner[..end]);
            match self.values.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => out.extend_from_slice(encode(value, encoding).as_bytes()),
                None => {
                    return Err(format!(
                        "the request names ${{{}}}, which is not a secret of this site (the ${{NAME}} in its config, and its secrets)",
                        sanitize_text(&name, 64)
                    ));
                }
            }
            rest = &inner[end + 1..];
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// `bytes` with every form of every secret replaced by its placeholder.
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (form, placeholder) in &self.forms {
            if let Some(replaced) = replace_all(&out, form, placeholder) {
                out = replaced;
            }
        }
        out
    }

    fn redact_text(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }
}

/// `value` in each encoding a server may echo it in: percent- and form-encoded, JSON-escaped,
/// base64 (standard and URL-safe, with and without padding).
fn encodings(value: &str) -> impl Iterator<Item = String> + '_ {
    use base64::engine::general_purpose as g;
    let b64 = |e: &base64::engine::GeneralPurpose| e.encode(value.as_bytes());
    [
        encode(value, Encoding::Url),
        encode(value, Encoding::Form),
        encode(value, Encoding::Json),
        b64(&g::STANDARD),
        b64(&g::STANDARD_NO_PAD),
        b64(&g::URL_SAFE),
        b64(&g::URL_SAFE_NO_PAD),
    ]
    .into_iter()
}

fn encode(value: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Url => {
            percent_encoding::utf8_percent_encode(value, crate::config::values::UNRESERVED)
                .to_string()
        }
        Encoding::Form => url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        Encoding::Json => {
            let quoted = serde_json::Value::from(value).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        }
        Encoding::Raw => value.to_owned(),
    }
}

/// `haystack` with each `needle` replaced by `with`; `None` when it holds none (most answers
/// hold no secret in most of its forms: nothing is copied for those).
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let first = (!needle.is_empty())
        .then(|| haystack.windows(needle.len()).position(|w| w == needle))
        .flatten()?;
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    let mut i = first;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    Some(out)
}

impl scenario_host::Host for PluginState {
    async fn send(
        &mut self,
        request: scenario_host::Request,
    ) -> wasmtime::Result<Result<scenario_host::Response, SendError>> {
        let Some(session) = self.scenario.as_mut() else {
            return Ok(Err(SendError {
                kind: FailureKind::Refused,
                message: "only a scenario's run may send requests".into(),
            }));
        };
        let waited = Instant::now();
        let sent = session.send(request).await;
        self.away += waited.elapsed();
        Ok(sent)
    }

    fn step(&mut self, name: String) -> wasmtime::Result<()> {
        if let Some(session) = self.scenario.as_mut() {
            session.name_step(&name);
        }
        Ok(())
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        let now = match self.scenario.as_ref().and_then(|s| s.net.as_ref()) {
            Some(net) => net.prober.now(),
            None => chrono::Utc::now(),
        };
        Ok(u64::try_from(now.timestamp_millis()).unwrap_or_default())
    }

    async fn sleep(&mut self, ms: u32) -> wasmtime::Result<()> {
        let Some(session) = self.scenario.as_mut() else {
            return Ok(());
        };
        let waited = Instant::now();
        let slept = session.sleep(ms).await;
        self.away += waited.elapsed();
        slept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn secrets() -> Secrets {
        Secrets::new(&[
            ("PW".into(), Secret::new("p&ss w\"rd/é".into())),
            ("TOKEN".into(), Secret::new("tok123".into())),
        ])
    }

    #[test]
    fn secrets_go_in_encoded_for_where_they_stand() {
        let s = secrets();
        let expand = |t: &str, e| String::from_utf8(s.expand(t.as_bytes(), e).unwrap()).unwrap();
        assert_eq!(expand("a=${PW}", Encoding::Raw), "a=p&ss w\"rd/é");
        assert_eq!(
            expand("/x?p=${PW}", Encoding::Url),
            "/x?p=p%26ss%20w%22rd%2F%C3%A9"
        );
        assert_eq!(
            expand("p=${PW}", Encoding::Form),
            "p=p%26ss+w%22rd%2F%C3%A9"
        );
        assert_eq!(
            expand(r#"{"p":"${PW}"}"#, Encoding::Json),
            r#"{"p":"p&ss w\"rd/é"}"#
        );
        assert_eq!(expand("$${PW} ${TOKEN}$", Encoding::Raw), "${PW} tok123$");
        let err = s.expand(b"${HOME}", Encoding::Raw).unwrap_err();
        assert!(err.contains("${HOME}"), "{err}");
    }

    #[test]
    fn every_echoed_form_of_a_secret_comes_back_as_its_placeholder() {
        let s = secrets();
        use base64::engine::general_purpose as g;
        for echoed in [
            "p&ss w\"rd/é".to_owned(),
            encode("p&ss w\"rd/é", Encoding::Url),
            encode("p&ss w\"rd/é", Encoding::Form),
            encode("p&ss w\"rd/é", Encoding::Json),
            encode(&encode("p&ss w\"rd/é", Encoding::Json), Encoding::Json),
            g::STANDARD.encode("p&ss w\"rd/é"),
            g::URL_SAFE_NO_PAD.encode("p&ss w\"rd/é"),
        ] {
            let body = format!("you sent [{echoed}] and tok123");
            let seen = s.redact_text(&body);
            assert_eq!(seen, "you sent [${PW}] and ${TOKEN}", "{echoed}");
        }
    }

    #[test]
    fn step_names_are_kept_short_and_clean() {
        assert_eq!(step_name("  login\n"), "login");
        assert_eq!(step_name(""), FIRST_STEP);
        assert!(step_name(&"x".repeat(500)).chars().count() <= MAX_STEP_NAME);
        let mut session = Session::dry();
        for i in 0..(MAX_STEPS + 5) {
            session.name_step(&format!("s{i}"));
        }
        assert_eq!(session.steps.len(), MAX_STEPS);
        session.name_step("s0");
        assert_eq!(
            session.current,
            Some(0),
            "a step named again is the same step"
        );
    }
}
