//! The JSON wire schema: one object per event, tagged by `"event"`, as `--output json` prints
//! them (and as later consumers, such as a server's event stream, must send them). It lives with
//! the outputs, not on the domain types: a measurement or an alert does not know how it is
//! written, and the schema can be read in one place. Documented in README.md ("Output").

use crate::alert::Alert;
use crate::event::{
    Delivery, ErrorReport, Event, OverloadReport, ReloadReport, SinkStatus, SiteReport, Started,
    StatsReport, Watching,
};
use crate::measurement::{CertInfo, Measurement, ProbeError, Step, TlsDetails};
use crate::stats::{ResponseSummary, StepStats, TtfbSummary};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// An event with the instance's location.
#[derive(Serialize)]
struct Located<'a> {
    #[serde(flatten)]
    event: Wire<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
}

/// The location of another cluster node's probe (every other event is this instance's).
fn origin(event: &Event) -> Option<&str> {
    match event {
        Event::Probe(m) => m.location.as_deref(),
        _ => None,
    }
}

/// Writes `event` as one JSON line. `location` is where this instance runs (written into
/// every event of its own, so several instances' streams can be merged and told apart).
pub fn write_line(
    out: &mut dyn std::io::Write,
    event: &Event,
    location: Option<&str>,
) -> std::io::Result<()> {
    let line = Located {
        event: Wire::from(event),
        location: origin(event).or(location),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// An event as its JSON object, with `location` as in [`write_line`].
pub fn to_value(event: &Event, location: Option<&str>) -> serde_json::Value {
    serde_json::to_value(Located {
        event: Wire::from(event),
        location: origin(event).or(location),
    })
    .expect("events serialise to JSON")
}

/// One site's part of a view report, as in a `stats` event.
pub fn site_value(site: &crate::event::SiteReport) -> serde_json::Value {
    serde_json::to_value(SiteWire::from(site)).expect("reports serialise to JSON")
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Wire<'a> {
    Started(StartedWire<'a>),
    Probe(ProbeWire<'a>),
    Stats(StatsWire<'a>),
    Alert(AlertWire<'a>),
    Error(ErrorWire<'a>),
    Reload(ReloadWire<'a>),
    Watching(WatchingWire<'a>),
    Overload(OverloadWire<'a>),
    Sink(SinkWire),
    Delivery(DeliveryWire<'a>),
    Maintenance(MaintenanceWire<'a>),
    Cluster(ClusterWire<'a>),
    StoreRecovered(StoreRecoveredWire<'a>),
}

#[derive(Serialize)]
struct StoreRecoveredWire<'a> {
    time: Time,
    set_aside: &'a str,
    /// Rows kept per table.
    kept: std::collections::BTreeMap<&'static str, u64>,
    lost: &'a [String],
    check: &'a [String],
}

#[derive(Serialize)]
struct ClusterWire<'a> {
    time: Time,
    node: &'a str,
    role: &'static str,
    detail: &'a str,
}

impl<'a> From<&'a Event> for Wire<'a> {
    fn from(e: &'a Event) -> Self {
        match e {
            Event::Started(s) => Wire::Started(s.into()),
            Event::Probe(m) => Wire::Probe(m.into()),
            Event::Stats(r) => Wire::Stats(r.into()),
            Event::Alert(a) => Wire::Alert(a.into()),
            Event::Error(e) => Wire::Error(e.into()),
            Event::Reload(r) => Wire::Reload(r.into()),
            Event::Watching(w) => Wire::Watching(w.into()),
            Event::Overload(o) => Wire::Overload(o.into()),
            Event::Sink(s) => Wire::Sink(s.into()),
            Event::Delivery(d) => Wire::Delivery(d.into()),
            Event::Maintenance(m) => Wire::Maintenance(m.into()),
            Event::Cluster(c) => Wire::Cluster(ClusterWire {
                time: Time(c.time),
                node: &c.node,
                role: c.role,
                detail: &c.detail,
            }),
            Event::StoreRecovered(r) => Wire::StoreRecovered(StoreRecoveredWire {
                time: Time(r.time),
                set_aside: &r.set_aside,
                kept: r.kept.iter().map(|(t, n)| (*t, *n)).collect(),
                lost: &r.lost,
                check: &r.check,
            }),
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
#[derive(Clone, Copy)]
struct Time(DateTime<Utc>);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::clock::rfc3339_millis(self.0))
    }
}

/// A duration in milliseconds (microsecond resolution).
#[derive(Clone, Copy)]
struct Ms(Duration);

impl Serialize for Ms {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(crate::ms(self.0))
    }
}

fn ms(d: Option<Duration>) -> Option<Ms> {
    d.map(Ms)
}

#[derive(Serialize)]
struct StartedWire<'a> {
    time: Time,
    config: &'a str,
    sites: usize,
    storage: &'a str,
    past_alerts: Vec<AlertWire<'a>>,
}

impl<'a> From<&'a Started> for StartedWire<'a> {
    fn from(s: &'a Started) -> Self {
        Self {
            time: Time(s.time),
            config: &s.config,
            sites: s.sites,
            storage: &s.storage,
            past_alerts: s.past_alerts.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct ProbeWire<'a> {
    site: &'a str,
    url: &'a str,
    /// The kind of site: `http`, `tcp`, `dns`, `websocket`, `grpc`, `icmp` or `push`.
    kind: &'static str,
    time: Time,
    ok: bool,
    status: Option<u16>,
    ttfb_ms: Option<Ms>,
    response_ms: Option<Ms>,
    body_bytes: u64,
    body_truncated: bool,
    dns_ms: Option<Ms>,
    connect_ms: Option<Ms>,
    tls_ms: Option<Ms>,
    error: Option<ErrorKindWire<'a>>,
    duration_ms: Ms,
    lag_ms: Ms,
    metrics: Metrics<'a>,
    /// The probe ran in a maintenance window of its site.
    maintenance: bool,
    /// The TLS session and served chain of an HTTPS probe; `null` for plain HTTP and for a
    /// probe that got no handshake as far as the server's certificate or keys.
    tls: Option<TlsRef<'a>>,
    /// Redirects followed (0: none).
    redirects: u32,
    /// The URL of the final request after redirects (`null` without one), its password and the
    /// site's secrets as `***`.
    final_url: Option<&'a str>,
    /// A `script` site's steps in the order they ran; empty for other kinds.
    steps: Vec<StepWire<'a>>,
}

#[derive(Serialize)]
struct StepWire<'a> {
    name: &'a str,
    duration_ms: Ms,
    requests: u32,
    failed: bool,
}

impl<'a> From<&'a Step> for StepWire<'a> {
    fn from(s: &'a Step) -> Self {
        Self {
            name: &s.name,
            duration_ms: Ms(s.duration),
            requests: s.requests,
            failed: s.failed,
        }
    }
}

/// One step's figures over a window or a report's period.
#[derive(Serialize)]
pub(crate) struct StepStatsWire<'a> {
    name: &'a str,
    runs: u32,
    failed: u32,
    avg_ms: f64,
    max_ms: f64,
    p95_ms: f64,
}

impl<'a> From<&'a StepStats> for StepStatsWire<'a> {
    fn from(s: &'a StepStats) -> Self {
        Self {
            name: &s.name,
            runs: s.runs,
            failed: s.failed,
            avg_ms: s.avg_ms,
            max_ms: s.max_ms,
            p95_ms: s.p95_ms,
        }
    }
}

/// A window's or a period's step figures as JSON (for the store's history reports).
pub fn step_stats_value(steps: &[StepStats]) -> serde_json::Value {
    serde_json::to_value(steps.iter().map(StepStatsWire::from).collect::<Vec<_>>())
        .expect("step figures serialise to JSON")
}

/// A probe's TLS details, written as [`TlsWire`] when serialised (kept as a reference so the
/// probe's wire form stays small).
struct TlsRef<'a>(&'a TlsDetails);

impl Serialize for TlsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TlsWire::from(self.0).serialize(s)
    }
}

#[derive(Serialize)]
struct TlsWire<'a> {
    version: Option<&'a str>,
    cipher: Option<&'a str>,
    /// The earliest `not_after` of the chain (blackbox_exporter's
    /// `probe_ssl_earliest_cert_expiry`).
    earliest_expiry: Option<Time>,
    leaf: Option<CertWire<'a>>,
    /// The chain as served, the leaf first.
    chain: Vec<CertWire<'a>>,
}

#[derive(Serialize)]
struct CertWire<'a> {
    subject: &'a str,
    issuer: &'a str,
    sans: &'a [String],
    not_before: Time,
    not_after: Time,
    serial: &'a str,
    fingerprint_sha256: &'a str,
}

impl<'a> From<&'a CertInfo> for CertWire<'a> {
    fn from(c: &'a CertInfo) -> Self {
        Self {
            subject: &c.subject,
            issuer: &c.issuer,
            sans: &c.sans,
            not_before: Time(c.not_before),
            not_after: Time(c.not_after),
            serial: &c.serial,
            fingerprint_sha256: &c.fingerprint_sha256,
        }
    }
}

impl<'a> From<&'a TlsDetails> for TlsWire<'a> {
    fn from(t: &'a TlsDetails) -> Self {
        Self {
            version: t.version.as_deref(),
            cipher: t.cipher.as_deref(),
            earliest_expiry: t.earliest_expiry().map(Time),
            leaf: t.leaf().map(Into::into),
            chain: t.chain.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct ErrorKindWire<'a> {
    kind: &'static str,
    message: &'a str,
}

impl<'a> From<&'a ProbeError> for ErrorKindWire<'a> {
    fn from(e: &'a ProbeError) -> Self {
        Self {
            kind: e.kind.as_str(),
            message: &e.message,
        }
    }
}

/// Plugin metrics as an object of name to number.
struct Metrics<'a>(&'a [(String, f64)]);

impl Serialize for Metrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'a> From<&'a Measurement> for ProbeWire<'a> {
    fn from(m: &'a Measurement) -> Self {
        Self {
            site: &m.site,
            url: &m.url,
            kind: crate::measurement::kind_of(&m.url),
            time: Time(m.time),
            ok: m.ok,
            status: m.status,
            ttfb_ms: ms(m.ttfb),
            response_ms: ms(m.response_time),
            body_bytes: m.body_bytes,
            body_truncated: m.body_truncated,
            dns_ms: ms(m.phases.dns),
            connect_ms: ms(m.phases.connect),
            tls_ms: ms(m.phases.tls),
            error: m.error.as_ref().map(Into::into),
            duration_ms: Ms(m.duration),
            lag_ms: Ms(m.schedule_lag),
            metrics: Metrics(&m.metrics),
            maintenance: m.maintenance,
            tls: m.tls.as_deref().map(TlsRef),
            redirects: m.redirect.as_ref().map_or(0, |r| r.hops),
            final_url: m.redirect.as_ref().map(|r| r.final_url.as_str()),
            steps: m.steps.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct StatsWire<'a> {
    view: &'a str,
    window_s: u64,
    every_s: Option<f64>,
    time: Time,
    r#final: bool,
    threshold: f64,
    overloaded: bool,
    skipped_overload: u64,
    probes_total: u64,
    sites: Vec<SiteWire<'a>>,
}

impl<'a> From<&'a StatsReport> for StatsWire<'a> {
    fn from(r: &'a StatsReport) -> Self {
        Self {
            view: &r.view,
            window_s: r.window_s,
            every_s: r.every_s,
            time: Time(r.time),
            r#final: r.r#final,
            threshold: r.threshold,
            overloaded: r.overloaded,
            skipped_overload: r.skipped_overload,
            probes_total: r.probes_total,
            sites: r.sites.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct SiteWire<'a> {
    site: &'a str,
    url: &'a str,
    checks: u32,
    ok: u32,
    availability: Option<f64>,
    response_ms: Option<&'a ResponseSummary>,
    ttfb_ms: Option<&'a TtfbSummary>,
    /// Probes counted by status code, and by error kind for probes that got no response.
    status_codes: &'a BTreeMap<&'static str, u32>,
    down: bool,
    /// Up but over its latency objective (never with `down`).
    degraded: bool,
    /// The maintenance window open now, if any.
    maintenance: Option<WindowWire<'a>>,
    /// The earliest `not after` of the newest served chain, and the whole days until it.
    cert_expiry: Option<Time>,
    cert_days: Option<i64>,
    /// A certificate warning is open.
    cert_warning: bool,
    tags: &'a [String],
    /// A stored report: probes left out because they ran in maintenance windows.
    #[serde(skip_serializing_if = "is_zero")]
    maintenance_probes: u32,
    skipped_ticks: u64,
    tls_insecure: bool,
    /// Paused: not probed (absent when not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
    last_error: Option<&'a str>,
    /// A `script` site's steps over the window, by name (absent for other kinds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    steps: Vec<StepStatsWire<'a>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One occurrence of a maintenance window.
#[derive(Serialize)]
struct WindowWire<'a> {
    start: Time,
    end: Time,
    name: Option<&'a str>,
}

impl<'a> From<&'a crate::maintenance::Occurrence> for WindowWire<'a> {
    fn from(o: &'a crate::maintenance::Occurrence) -> Self {
        Self {
            start: Time(o.start),
            end: Time(o.end),
            name: o.name.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct MaintenanceWire<'a> {
    time: Time,
    site: &'a str,
    url: &'a str,
    /// `started` or `ended`.
    state: &'static str,
    window: WindowWire<'a>,
}

impl<'a> From<&'a crate::event::MaintenanceReport> for MaintenanceWire<'a> {
    fn from(m: &'a crate::event::MaintenanceReport) -> Self {
        Self {
            time: Time(m.time),
            site: &m.site,
            url: &m.url,
            state: if m.started { "started" } else { "ended" },
            window: (&m.window).into(),
        }
    }
}

impl<'a> From<&'a SiteReport> for SiteWire<'a> {
    fn from(s: &'a SiteReport) -> Self {
        Self {
            site: &s.site,
            url: &s.url,
            checks: s.stats.checks,
            ok: s.stats.ok,
            availability: s.stats.availability,
            response_ms: s.stats.response_ms.as_ref(),
            ttfb_ms: s.stats.ttfb_ms.as_ref(),
            status_codes: &s.stats.status_codes,
            down: s.down,
            degraded: s.degraded,
            maintenance: s.maintenance.as_ref().map(Into::into),
            cert_expiry: s.cert_expiry.map(Time),
            cert_days: s.cert_days(chrono::Utc::now()),
            cert_warning: s.cert_warning,
            tags: &s.tags,
            maintenance_probes: s.maintenance_probes,
            skipped_ticks: s.skipped_ticks,
            tls_insecure: s.tls_insecure,
            paused: s.paused,
            last_error: s.last_error.as_deref(),
            steps: s.stats.steps.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct AlertWire<'a> {
    kind: &'static str,
    site: &'a str,
    url: &'a str,
    availability: f64,
    time: Time,
    down_since: Option<Time>,
    /// For a recovery: how long it was down, in seconds.
    down_for_s: Option<f64>,
    /// What the alert is about: `down`, `degraded` or `cert`.
    condition: &'static str,
    /// Degraded alerts: the latency figure and its objective.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency: Option<LatencyWire>,
    /// Certificate alerts: the earliest `not after` of the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_expiry: Option<Time>,
    message: &'a str,
    rendered: Option<&'a str>,
    /// Held, not notified: why (a site it depends on was down or in maintenance).
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<&'a str>,
}

#[derive(Serialize)]
struct LatencyWire {
    /// The objective's key, e.g. `response_p95`.
    metric: &'static str,
    value_ms: f64,
    limit_ms: f64,
}

impl<'a> From<&'a Alert> for AlertWire<'a> {
    fn from(a: &'a Alert) -> Self {
        Self {
            kind: a.kind.as_str(),
            site: &a.site,
            url: &a.url,
            availability: a.availability,
            time: Time(a.time),
            down_since: a.down_since.map(Time),
            down_for_s: a.down_for.map(|d| d.as_secs_f64()),
            condition: a.kind.condition().as_str(),
            latency: a.latency.map(|l| LatencyWire {
                metric: l.metric.key(),
                value_ms: l.value_ms,
                limit_ms: l.limit.as_secs_f64() * 1000.0,
            }),
            cert_expiry: a.cert_expiry.map(Time),
            message: &a.message,
            rendered: a.rendered.as_deref(),
            held: a.held.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct ErrorWire<'a> {
    time: Time,
    source: &'static str,
    site: Option<&'a str>,
    message: &'a str,
}

impl<'a> From<&'a ErrorReport> for ErrorWire<'a> {
    fn from(e: &'a ErrorReport) -> Self {
        Self {
            time: Time(e.time),
            source: e.source,
            site: e.site.as_deref(),
            message: &e.message,
        }
    }
}

#[derive(Serialize)]
struct ReloadWire<'a> {
    time: Time,
    what: &'static str,
    result: &'static str,
    detail: &'a str,
}

impl<'a> From<&'a ReloadReport> for ReloadWire<'a> {
    fn from(r: &'a ReloadReport) -> Self {
        Self {
            time: Time(r.time),
            what: r.what.as_str(),
            result: r.result.as_str(),
            detail: &r.detail,
        }
    }
}

#[derive(Serialize)]
struct WatchingWire<'a> {
    time: Time,
    sites: Vec<WatchedWire<'a>>,
    views: &'a [String],
}

#[derive(Serialize)]
struct WatchedWire<'a> {
    site: &'a str,
    url: &'a str,
    down: bool,
    tags: &'a [String],
}

impl<'a> From<&'a Watching> for WatchingWire<'a> {
    fn from(w: &'a Watching) -> Self {
        Self {
            time: Time(w.time),
            sites: w
                .sites
                .iter()
                .map(|s| WatchedWire {
                    site: &s.site,
                    url: &s.url,
                    down: s.down,
                    tags: &s.tags,
                })
                .collect(),
            views: &w.views,
        }
    }
}

#[derive(Serialize)]
struct OverloadWire<'a> {
    time: Time,
    state: &'static str,
    detail: &'a str,
    skipped: u64,
}

impl<'a> From<&'a OverloadReport> for OverloadWire<'a> {
    fn from(o: &'a OverloadReport) -> Self {
        Self {
            time: Time(o.time),
            state: o.state.as_str(),
            detail: &o.detail,
            skipped: o.skipped,
        }
    }
}

#[derive(Serialize)]
struct SinkWire {
    time: Time,
    sink: &'static str,
    healthy: bool,
    backlog: u64,
}

impl From<&SinkStatus> for SinkWire {
    fn from(s: &SinkStatus) -> Self {
        Self {
            time: Time(s.time),
            sink: s.sink.as_str(),
            healthy: s.healthy,
            backlog: s.backlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_event_has_the_documented_fields() {
        let mut m = crate::measurement::testing::sample("api", false);
        m.metrics = vec![("json.latency".into(), 12.5)];
        let v = to_value(&Event::Probe(m), None);
        assert_eq!(v["event"], "probe");
        assert_eq!(v["site"], "api");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["ok"], false);
        assert_eq!(v["status"], serde_json::Value::Null);
        assert_eq!(v["error"]["kind"], "connect");
        assert_eq!(v["error"]["message"], "refused");
        assert_eq!(v["duration_ms"], 1.0);
        assert_eq!(v["metrics"]["json.latency"], 12.5);
        for key in [
            "ttfb_ms",
            "response_ms",
            "dns_ms",
            "connect_ms",
            "tls_ms",
            "lag_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
    }

    /// A script run's steps are in its probe event, in order, names as JSON strings (escaped
    /// by the encoder, whatever the plugin named them); other kinds have an empty list.
    #[test]
    fn a_probe_event_carries_its_steps() {
        let mut m = crate::measurement::testing::sample("api", false);
        assert_eq!(
            to_value(&Event::Probe(m.clone()), None)["steps"],
            serde_json::json!([])
        );
        m.steps = vec![
            Step {
                name: "login".into(),
                duration: Duration::from_micros(12_345),
                requests: 2,
                failed: false,
            },
            Step {
                name: "</script>\"\n".into(),
                duration: Duration::from_micros(500),
                requests: 1,
                failed: true,
            },
        ];
        let mut line = Vec::new();
        write_line(&mut line, &Event::Probe(m), None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v["steps"],
            serde_json::json!([
                {"name": "login", "duration_ms": 12.345, "requests": 2, "failed": false},
                {"name": "</script>\"\n", "duration_ms": 0.5, "requests": 1, "failed": true},
            ])
        );
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    }

    #[test]
    fn a_probe_event_carries_the_tls_session_and_chain_when_there_is_one() {
        let plain = to_value(
            &Event::Probe(crate::measurement::testing::sample("api", true)),
            None,
        );
        assert_eq!(plain["tls"], serde_json::Value::Null);

        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let cert = |subject: &str, not_after: i64| CertInfo {
            subject: subject.into(),
            issuer: "CN=Root".into(),
            sans: vec!["api.test".into(), "127.0.0.1".into()],
            not_before: at(0),
            not_after: at(not_after),
            serial: "1a2ff".into(),
            fingerprint_sha256: "ab".repeat(32),
        };
        let mut m = crate::measurement::testing::sample("api", true);
        m.tls = Some(std::sync::Arc::new(TlsDetails {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            chain: vec![cert("CN=api.test", 200), cert("CN=Intermediate", 100)],
        }));
        let v = to_value(&Event::Probe(m), None);
        let tls = &v["tls"];
        assert_eq!(tls["version"], "TLS 1.3");
        assert_eq!(tls["cipher"], "TLS13_AES_128_GCM_SHA256");
        assert_eq!(tls["earliest_expiry"], "1970-01-01T00:01:40.000Z");
        let leaf = &tls["leaf"];
        assert_eq!(leaf["subject"], "CN=api.test");
        assert_eq!(leaf["issuer"], "CN=Root");
        assert_eq!(leaf["sans"], serde_json::json!(["api.test", "127.0.0.1"]));
        assert_eq!(leaf["not_before"], "1970-01-01T00:00:00.000Z");
        assert_eq!(leaf["not_after"], "1970-01-01T00:03:20.000Z");
        assert_eq!(leaf["serial"], "1a2ff");
        assert_eq!(leaf["fingerprint_sha256"], "ab".repeat(32));
        assert_eq!(tls["chain"].as_array().unwrap().len(), 2);
        assert_eq!(tls["chain"][0], *leaf);
        assert_eq!(tls["chain"][1]["subject"], "CN=Intermediate");
    }

    #[test]
    fn an_alert_event_names_its_kind_in_words() {
        let alert = crate::alert::Transition::Recovered {
            availability: 0.9,
            time: DateTime::from_timestamp(192, 0).unwrap(),
            down_since: DateTime::UNIX_EPOCH,
        }
        .into_alert(&"a".into(), &"http://a/".into());
        let v = to_value(&Event::Alert(alert), None);
        assert_eq!(v["event"], "alert");
        assert_eq!(v["kind"], "recovered");
        assert_eq!(v["down_for_s"], 192.0);
        assert_eq!(v["down_since"], "1970-01-01T00:00:00.000Z");
    }
}

#[derive(Serialize)]
struct DeliveryWire<'a> {
    time: Time,
    notifier: &'a str,
    alert_id: i64,
    notification_id: i64,
    site: &'a str,
    kind: &'static str,
    result: &'static str,
    attempts: u32,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_s: Option<f64>,
}

impl<'a> From<&'a Delivery> for DeliveryWire<'a> {
    fn from(d: &'a Delivery) -> Self {
        Self {
            time: Time(d.time),
            notifier: &d.notifier,
            alert_id: d.alert_id,
            notification_id: d.notification_id,
            site: &d.site,
            kind: d.kind,
            result: d.result.as_str(),
            attempts: d.attempts,
            detail: &d.detail,
            retry_in_s: d.retry_in.map(|r| r.as_secs_f64()),
        }
    }
}
