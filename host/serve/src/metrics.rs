//! `/metrics`: the Prometheus series, kept by the official `prometheus-client` crate and updated
//! from events as they pass (a probe sets its site's last-probe gauges and counts; a view report
//! sets availability, the alert state and skipped ticks). Nothing here computes a statistic the
//! recorder already has: availability comes from its reports. Labels take only configured values
//! (site, url, location, view names, notifier names) or bounded ones (status codes, error kinds),
//! except blackbox_exporter's TLS series, which name the served chain and TLS version: each site
//! has one of each at a time (the latest probe's), the old one removed when the chain changes.
//!
//! prometheus-client writes OpenMetrics text; Prometheus' own text format (0.0.4), which most
//! scrapers ask for, is derived from it by [`prometheus_text`].

use crate::event::{Delivery, Event, SinkName, StatsReport};
use crate::measurement::{Measurement, TlsDetails};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SiteLabels {
    pub site: String,
    pub url: String,
    pub location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    site: String,
    url: String,
    location: String,
    phase: &'static str,
}

/// A step of a script site's run (its name is the scenario's: escaped like every label value).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    site: String,
    url: String,
    location: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    site: String,
    url: String,
    location: String,
    /// A status code (`200`) or an error kind (`timeout`).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabels {
    site: String,
    url: String,
    location: String,
    window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    node: String,
    location: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    notifier: String,
    result: &'static str,
    location: String,
}

/// blackbox_exporter's `probe_tls_version_info` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TlsVersionLabels {
    site: String,
    url: String,
    location: String,
    version: String,
}

/// blackbox_exporter's `probe_ssl_last_chain_info` labels: the leaf's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainLabels {
    site: String,
    url: String,
    location: String,
    fingerprint_sha256: String,
    subject: String,
    issuer: String,
    /// The leaf's subject alternative names, comma-separated.
    subjectalternative: String,
}

/// The TLS series a site has now, from its latest probe's details.
struct TlsSeries {
    details: Arc<TlsDetails>,
    version: Option<TlsVersionLabels>,
    chain: Option<ChainLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    location: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocationLabels {
    location: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The figures a probe kind reports with its measurement: a dns site's answer record count,
/// a grpc site's status code.
const DNS_ANSWER_RRS: &str = "dns_answer_rrs";
const GRPC_STATUS_CODE: &str = "grpc_status_code";
const ICMP_LOSS_RATIO: &str = "icmp_loss_ratio";

/// The phases of `probe_http_duration_seconds`, as the issue names them (blackbox_exporter
/// calls `dns` `resolve`).
const PHASES: [&str; 5] = ["dns", "connect", "tls", "processing", "transfer"];

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    location: String,
    success: Family<SiteLabels, Gauge>,
    status: Family<SiteLabels, Gauge>,
    duration: Family<SiteLabels, FloatGauge>,
    phases: Family<PhaseLabels, FloatGauge>,
    body_bytes: Family<SiteLabels, Gauge>,
    dns_answers: Family<SiteLabels, Gauge>,
    dns_lookup: Family<SiteLabels, FloatGauge>,
    grpc_status: Family<SiteLabels, Gauge>,
    icmp_phases: Family<PhaseLabels, FloatGauge>,
    icmp_loss: Family<SiteLabels, FloatGauge>,
    step_duration: Family<StepLabels, FloatGauge>,
    step_requests: Family<StepLabels, Gauge>,
    probes: Family<SiteLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    response: Family<SiteLabels, Histogram, fn() -> Histogram>,
    ttfb: Family<SiteLabels, Histogram, fn() -> Histogram>,
    availability: Family<WindowLabels, FloatGauge>,
    down: Family<SiteLabels, Gauge>,
    degraded: Family<SiteLabels, Gauge>,
    maintenance: Family<SiteLabels, Gauge>,
    cert_warning: Family<SiteLabels, Gauge>,
    domain_warning: Family<SiteLabels, Gauge>,
    flapping: Family<SiteLabels, Gauge>,
    slo_burning: Family<SiteLabels, Gauge>,
    slo_budget: Family<SiteLabels, FloatGauge>,
    slo_objective: Family<SiteLabels, FloatGauge>,
    skipped: Family<SiteLabels, Counter>,
    in_flight: Family<LocationLabels, Gauge>,
    store_queue: Family<LocationLabels, Gauge>,
    offline: Family<LocationLabels, Gauge>,
    outbox: Family<LocationLabels, Gauge>,
    plugin_failures: Family<LocationLabels, Counter>,
    overloaded: Family<LocationLabels, Gauge>,
    skipped_overload: Family<LocationLabels, Counter>,
    dropped: Family<LocationLabels, Counter>,
    stream_disconnects: Family<StreamLabels, Counter>,
    store_recoveries: Family<LocationLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    cluster_role: Family<RoleLabels, Gauge>,
    ssl_expiry: Family<SiteLabels, Gauge>,
    tls_version: Family<TlsVersionLabels, Gauge>,
    chain_info: Family<ChainLabels, Gauge>,
    /// What was counted per site, to remove every series of a site that is gone, and the last
    /// cumulative values the reports gave (counters move by the difference).
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    outcomes: HashMap<SiteLabels, HashSet<String>>,
    windows: HashSet<String>,
    skipped: HashMap<SiteLabels, u64>,
    skipped_overload: u64,
    /// The TLS series of each site whose latest probe had TLS details.
    tls: HashMap<SiteLabels, TlsSeries>,
    /// The step series of each script site: its latest run's steps.
    steps: HashMap<SiteLabels, Vec<StepLabels>>,
}

impl Metrics {
    pub fn new(location: &str) -> Self {
        let mut registry = Registry::default();
        let m = Self {
            location: location.to_owned(),
            success: Family::default(),
            status: Family::default(),
            duration: Family::default(),
            phases: Family::default(),
            body_bytes: Family::default(),
            dns_answers: Family::default(),
            dns_lookup: Family::default(),
            grpc_status: Family::default(),
            icmp_phases: Family::default(),
            icmp_loss: Family::default(),
            step_duration: Family::default(),
            step_requests: Family::default(),
            probes: Family::default(),
            outcomes: Family::default(),
            response: Family::new_with_constructor(latency_histogram),
            ttfb: Family::new_with_constructor(latency_histogram),
            availability: Family::default(),
            down: Family::default(),
            degraded: Family::default(),
            maintenance: Family::default(),
            cert_warning: Family::default(),
            domain_warning: Family::default(),
            flapping: Family::default(),
            skipped: Family::default(),
            in_flight: Family::default(),
            store_queue: Family::default(),
            offline: Family::default(),
            slo_burning: Family::default(),
            slo_budget: Family::default(),
            slo_objective: Family::default(),
            outbox: Family::default(),
            plugin_failures: Family::default(),
            overloaded: Family::default(),
            cluster_role: Family::default(),
            skipped_overload: Family::default(),
            dropped: Family::default(),
            stream_disconnects: Family::default(),
            store_recoveries: Family::default(),
            deliveries: Family::default(),
            ssl_expiry: Family::default(),
            tls_version: Family::default(),
            chain_info: Family::default(),
            seen: Mutex::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "probe_success",
            "Whether the last probe succeeded (1) or failed (0)",
            m.success.clone(),
        );
        r.register(
            "probe_http_status_code",
            "The HTTP status code of the last probe (0 without a response)",
            m.status.clone(),
        );
        r.register(
            "probe_duration_seconds",
            "How long the last probe took, request start to its end",
            m.duration.clone(),
        );
        r.register("probe_http_duration_seconds", "The last probe's time per phase: dns, connect, tls, processing (to the first byte), transfer", m.phases.clone());
        r.register(
            "probe_http_uncompressed_body_length",
            "Body bytes the last probe read",
            m.body_bytes.clone(),
        );
        r.register(
            "probe_dns_lookup_time_seconds",
            "How long resolving the site's host took in its last probe (0 for an address)",
            m.dns_lookup.clone(),
        );
        r.register(
            "probe_dns_answer_rrs",
            "Records in the answer section of a dns site's last query",
            m.dns_answers.clone(),
        );
        r.register(
            "probe_grpc_status_code",
            "The gRPC status code of a grpc site's last health check",
            m.grpc_status.clone(),
        );
        r.register(
            "probe_icmp_duration_seconds",
            "An icmp site's last probe per phase: resolve, rtt (the average round trip)",
            m.icmp_phases.clone(),
        );
        r.register(
            "sitewatch_icmp_loss_ratio",
            "The share of an icmp site's last echo requests that got no reply",
            m.icmp_loss.clone(),
        );
        r.register(
            "sitewatch_step_duration_seconds",
            "What each step of a script site's last run took (its requests together)",
            m.step_duration.clone(),
        );
        r.register(
            "sitewatch_step_requests",
            "Requests each step of a script site's last run sent",
            m.step_requests.clone(),
        );
        r.register("sitewatch_probes", "Probes recorded", m.probes.clone());
        r.register(
            "sitewatch_probe_outcomes",
            "Probes by outcome: the status code, or the error kind of a probe without a response",
            m.outcomes.clone(),
        );
        r.register(
            "sitewatch_response_time_seconds",
            "Response time (request start to the last body byte) of successful responses",
            m.response.clone(),
        );
        r.register(
            "sitewatch_ttfb_seconds",
            "Time to the first byte of the response headers",
            m.ttfb.clone(),
        );
        r.register("sitewatch_availability_ratio", "Availability over each configured view window (0 to 1), from the recorder's last report", m.availability.clone());
        r.register(
            "sitewatch_site_down",
            "The alert state: 1 while the site is down",
            m.down.clone(),
        );
        r.register(
            "sitewatch_site_degraded",
            "1 while the site is up but over its latency objective (degraded)",
            m.degraded.clone(),
        );
        r.register(
            "sitewatch_site_maintenance",
            "1 while a maintenance window of the site is open",
            m.maintenance.clone(),
        );
        r.register(
            "sitewatch_cert_warning",
            "1 while the earliest certificate of the site's chain expires within its cert_warning",
            m.cert_warning.clone(),
        );
        r.register(
            "sitewatch_domain_warning",
            "Whether a domain registration warning is open (1) for a domain_expiry site",
            m.domain_warning.clone(),
        );
        r.register(
            "sitewatch_slo_error_budget_remaining",
            "The share of the site's error budget not spent over its SLO period (1 untouched, 0 spent, below 0 overspent)",
            m.slo_budget.clone(),
        );
        r.register(
            "sitewatch_slo_objective",
            "The site's service level objective, the share of probes that must pass (0.999 for 99.9%)",
            m.slo_objective.clone(),
        );
        r.register(
            "sitewatch_slo_burning",
            "1 while a burn-rate alert (slo_burn) of the site is open",
            m.slo_burning.clone(),
        );
        r.register(
            "sitewatch_offline",
            "1 while sitewatch itself cannot reach the network (every canary fails, or most sites fail at DNS or connect); site down alerts are held meanwhile",
            m.offline.clone(),
        );
        r.register(
            "sitewatch_flapping",
            "1 while the site is flapping (its down and recovered alerts are held until it settles)",
            m.flapping.clone(),
        );
        r.register(
            "sitewatch_skipped_ticks",
            "Ticks skipped because earlier probes of the site were still running",
            m.skipped.clone(),
        );
        r.register(
            "probe_ssl_earliest_cert_expiry",
            "The earliest not-after of the chain the last probe was served, in Unix seconds",
            m.ssl_expiry.clone(),
        );
        r.register(
            "probe_tls_version_info",
            "The TLS version of the last probe's connection (always 1)",
            m.tls_version.clone(),
        );
        r.register(
            "probe_ssl_last_chain_info",
            "The leaf certificate the last probe was served (always 1)",
            m.chain_info.clone(),
        );
        r.register(
            "sitewatch_probes_in_flight",
            "Probes running now",
            m.in_flight.clone(),
        );
        r.register(
            "sitewatch_store_queue_records",
            "Records waiting in memory for the store",
            m.store_queue.clone(),
        );
        r.register(
            "sitewatch_influxdb_outbox_lines",
            "Lines waiting in the InfluxDB outbox",
            m.outbox.clone(),
        );
        r.register(
            "sitewatch_plugin_failures",
            "Probes failed by a plugin error (a crash, a time or memory limit)",
            m.plugin_failures.clone(),
        );
        r.register(
            "sitewatch_overloaded",
            "1 while sitewatch skips ticks because it is overloaded",
            m.overloaded.clone(),
        );
        r.register(
            "sitewatch_cluster_role",
            "A cluster node's role: 1 for the one it has (leader, follower or alone), 0 for the others",
            m.cluster_role.clone(),
        );
        r.register(
            "sitewatch_skipped_overload",
            "Ticks skipped because sitewatch was overloaded",
            m.skipped_overload.clone(),
        );
        r.register(
            "sitewatch_events_dropped",
            "Probe events this server did not see because it fell behind",
            m.dropped.clone(),
        );
        r.register(
            "sitewatch_store_recoveries",
            "Times the store file was found damaged while running, set aside and replaced by a fresh one holding what could be read",
            m.store_recoveries.clone(),
        );
        r.register(
            "sitewatch_stream_disconnects",
            "Event-stream clients disconnected because they did not read (reason: stalled, evicted) or their token was rotated (token)",
            m.stream_disconnects.clone(),
        );
        r.register(
            "sitewatch_notifications",
            "Notification outcomes by notifier and result (delivered, retrying, failed)",
            m.deliveries.clone(),
        );
        Self { registry, ..m }
    }

    fn site(&self, site: &str, url: &str) -> SiteLabels {
        SiteLabels {
            site: site.to_owned(),
            url: url.to_owned(),
            location: self.location.clone(),
        }
    }

    fn here(&self) -> LocationLabels {
        LocationLabels {
            location: self.location.clone(),
        }
    }

    /// Takes one event into the series.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::Probe(m) => self.probe(m),
            Event::Cluster(c) => {
                for role in ["leader", "follower", "alone"] {
                    self.cluster_role
                        .get_or_create(&RoleLabels {
                            node: c.node.to_string(),
                            location: self.location.clone(),
                            role,
                        })
                        .set(i64::from(role == c.role));
                }
            }
            Event::Stats(r) if r.every_s.is_some() && !r.r#final => self.report(r),
            Event::Sink(s) => {
                let g = match s.sink {
                    SinkName::Store => &self.store_queue,
                    SinkName::InfluxDb => &self.outbox,
                };
                g.get_or_create(&self.here()).set(s.backlog as i64);
            }
            Event::Delivery(d) => self.delivery(d),
            Event::StoreRecovered(_) => {
                self.store_recoveries.get_or_create(&self.here()).inc();
            }
            Event::Alert(a) if a.kind.condition() == crate::alert::Condition::Monitor => {
                self.offline
                    .get_or_create(&self.here())
                    .set(i64::from(a.kind.is_firing()));
            }
            Event::Alert(a) => {
                let family = match a.kind.condition() {
                    crate::alert::Condition::Down => &self.down,
                    crate::alert::Condition::Degraded => &self.degraded,
                    crate::alert::Condition::Cert => &self.cert_warning,
                    crate::alert::Condition::Domain => &self.domain_warning,
                    crate::alert::Condition::Flapping => &self.flapping,
                    crate::alert::Condition::Slo => &self.slo_burning,
                    crate::alert::Condition::Monitor => return,
                };
                family
                    .get_or_create(&self.site(&a.site, &a.url))
                    .set(i64::from(a.kind.is_firing()));
            }
            Event::Maintenance(m) => {
                self.maintenance
                    .get_or_create(&self.site(&m.site, &m.url))
                    .set(i64::from(m.started));
            }
            _ => {}
        }
    }

    /// Probe events lost because this consumer fell behind.
    pub fn dropped(&self, n: u64) {
        self.dropped.get_or_create(&self.here()).inc_by(n);
    }

    /// An event-stream client was disconnected by the server (`stalled`, `evicted`, `token`).
    pub(crate) fn stream_disconnected(&self, reason: &'static str) {
        self.stream_disconnects
            .get_or_create(&StreamLabels {
                location: self.location.clone(),
                reason,
            })
            .inc();
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.get_or_create(&self.here()).set(n as i64);
    }

    fn probe(&self, m: &Measurement) {
        let mut l = self.site(&m.site, &m.url);
        // Another cluster node's probe is that node's location's series.
        if let Some(location) = &m.location {
            l.location = location.to_string();
        }
        self.success.get_or_create(&l).set(i64::from(m.ok));
        self.status
            .get_or_create(&l)
            .set(i64::from(m.status.unwrap_or(0)));
        self.duration
            .get_or_create(&l)
            .set(m.duration.as_secs_f64());
        let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        let (dns, connect, tls) = (
            secs(m.phases.dns),
            secs(m.phases.connect),
            secs(m.phases.tls),
        );
        let ttfb = secs(m.ttfb);
        let processing = (ttfb - dns - connect - tls).max(0.0);
        let transfer = m
            .response_time
            .map_or(0.0, |r| (r.as_secs_f64() - ttfb).max(0.0));
        for (phase, v) in PHASES
            .into_iter()
            .zip([dns, connect, tls, processing, transfer])
        {
            self.phases
                .get_or_create(&PhaseLabels {
                    site: l.site.clone(),
                    url: l.url.clone(),
                    location: l.location.clone(),
                    phase,
                })
                .set(v);
        }
        self.body_bytes
            .get_or_create(&l)
            .set(m.body_bytes.min(i64::MAX as u64) as i64);
        self.dns_lookup
            .get_or_create(&l)
            .set(m.phases.dns.map_or(0.0, |d| d.as_secs_f64()));
        for (name, n) in &m.metrics {
            match name.as_str() {
                DNS_ANSWER_RRS => self.dns_answers.get_or_create(&l).set(*n as i64),
                GRPC_STATUS_CODE => self.grpc_status.get_or_create(&l).set(*n as i64),
                ICMP_LOSS_RATIO => {
                    self.icmp_loss.get_or_create(&l).set(*n);
                    for (phase, v) in [("resolve", m.phases.dns), ("rtt", m.response_time)] {
                        self.icmp_phases
                            .get_or_create(&PhaseLabels {
                                site: l.site.clone(),
                                url: l.url.clone(),
                                location: l.location.clone(),
                                phase,
                            })
                            .set(v.map_or(0.0, |d| d.as_secs_f64()));
                    }
                    0
                }
                _ => 0,
            };
        }
        self.probes.get_or_create(&l).inc();
        let outcome = match (&m.error, m.status) {
            (Some(e), None) => e.kind.as_str().to_owned(),
            (Some(e), Some(_)) if e.kind == crate::measurement::ErrorKind::Check => {
                e.kind.as_str().to_owned()
            }
            (_, Some(s)) => s.to_string(),
            (None, None) => "unknown".to_owned(),
        };
        if m.error
            .as_ref()
            .is_some_and(|e| e.kind == crate::measurement::ErrorKind::Plugin)
        {
            self.plugin_failures.get_or_create(&self.here()).inc();
        }
        self.outcomes
            .get_or_create(&OutcomeLabels {
                site: l.site.clone(),
                url: l.url.clone(),
                location: l.location.clone(),
                outcome: outcome.clone(),
            })
            .inc();
        if m.ok
            && let Some(r) = m.response_time
        {
            self.response.get_or_create(&l).observe(r.as_secs_f64());
        }
        if let Some(t) = m.ttfb {
            self.ttfb.get_or_create(&l).observe(t.as_secs_f64());
        }
        let mut seen = self.seen.lock().expect("metrics bookkeeping");
        self.tls(&mut seen, &l, m.tls.as_ref());
        self.steps(&mut seen, &l, &m.steps);
        seen.outcomes.entry(l).or_default().insert(outcome);
    }

    /// Sets a site's step series from its latest run: a step that run did not have loses its
    /// series (a probe without steps leaves the site none).
    fn steps(&self, seen: &mut Seen, l: &SiteLabels, steps: &[crate::measurement::Step]) {
        let new: Vec<StepLabels> = steps
            .iter()
            .map(|s| StepLabels {
                site: l.site.clone(),
                url: l.url.clone(),
                location: l.location.clone(),
                step: s.name.to_string(),
            })
            .collect();
        for old in seen.steps.remove(l).unwrap_or_default() {
            if !new.contains(&old) {
                self.step_duration.remove(&old);
                self.step_requests.remove(&old);
            }
        }
        for (labels, s) in new.iter().zip(steps) {
            self.step_duration
                .get_or_create(labels)
                .set(s.duration.as_secs_f64());
            self.step_requests
                .get_or_create(labels)
                .set(i64::from(s.requests));
        }
        if !new.is_empty() {
            seen.steps.insert(l.clone(), new);
        }
    }

    /// Sets a site's TLS series from its latest probe: those of the details it had before go
    /// (a renewed certificate is a new chain-info series, not a second one), and a probe without
    /// TLS details leaves the site none.
    fn tls(&self, seen: &mut Seen, l: &SiteLabels, details: Option<&Arc<TlsDetails>>) {
        // The prober shares one Arc per distinct chain and suite: the same Arc, the same series.
        if let (Some(new), Some(old)) = (details, seen.tls.get(l))
            && Arc::ptr_eq(new, &old.details)
        {
            return;
        }
        let new = details.map(|d| TlsSeries {
            details: Arc::clone(d),
            version: d.version.as_ref().map(|v| TlsVersionLabels {
                site: l.site.clone(),
                url: l.url.clone(),
                location: l.location.clone(),
                version: v.clone(),
            }),
            chain: d.leaf().map(|leaf| ChainLabels {
                site: l.site.clone(),
                url: l.url.clone(),
                location: l.location.clone(),
                fingerprint_sha256: leaf.fingerprint_sha256.clone(),
                subject: leaf.subject.clone(),
                issuer: leaf.issuer.clone(),
                subjectalternative: leaf.sans.join(","),
            }),
        });
        if let Some(old) = seen.tls.remove(l) {
            let kept = new.as_ref();
            if let Some(v) = &old.version
                && Some(v) != kept.and_then(|n| n.version.as_ref())
            {
                self.tls_version.remove(v);
            }
            if let Some(c) = &old.chain
                && Some(c) != kept.and_then(|n| n.chain.as_ref())
            {
                self.chain_info.remove(c);
            }
        }
        let Some(new) = new else {
            self.ssl_expiry.remove(l);
            return;
        };
        match new.details.earliest_expiry() {
            Some(t) => {
                self.ssl_expiry.get_or_create(l).set(t.timestamp());
            }
            None => {
                self.ssl_expiry.remove(l);
            }
        }
        if let Some(v) = &new.version {
            self.tls_version.get_or_create(v).set(1);
        }
        if let Some(c) = &new.chain {
            self.chain_info.get_or_create(c).set(1);
        }
        seen.tls.insert(l.clone(), new);
    }

    fn report(&self, r: &StatsReport) {
        let mut seen = self.seen.lock().expect("metrics bookkeeping");
        seen.windows.insert(r.view.clone());
        for s in &r.sites {
            let l = self.site(&s.site, &s.url);
            if let Some(a) = s.stats.availability {
                self.availability
                    .get_or_create(&WindowLabels {
                        site: l.site.clone(),
                        url: l.url.clone(),
                        location: l.location.clone(),
                        window: r.view.clone(),
                    })
                    .set(a);
            }
            self.down.get_or_create(&l).set(i64::from(s.down));
            self.degraded.get_or_create(&l).set(i64::from(s.degraded));
            self.maintenance
                .get_or_create(&l)
                .set(i64::from(s.maintenance.is_some()));
            self.cert_warning
                .get_or_create(&l)
                .set(i64::from(s.cert_warning));
            if let Some(slo) = &s.slo {
                self.slo_objective.get_or_create(&l).set(slo.objective);
                self.slo_burning
                    .get_or_create(&l)
                    .set(i64::from(slo.burning.is_some()));
                if let Some(b) = slo.budget_left {
                    self.slo_budget.get_or_create(&l).set(b);
                }
            }
            let last = seen.skipped.entry(l.clone()).or_insert(0);
            if s.skipped_ticks >= *last {
                self.skipped
                    .get_or_create(&l)
                    .inc_by(s.skipped_ticks - *last);
                *last = s.skipped_ticks;
            }
        }
        self.overloaded
            .get_or_create(&self.here())
            .set(i64::from(r.overloaded));
        if r.skipped_overload >= seen.skipped_overload {
            self.skipped_overload
                .get_or_create(&self.here())
                .inc_by(r.skipped_overload - seen.skipped_overload);
            seen.skipped_overload = r.skipped_overload;
        }
    }

    fn delivery(&self, d: &Delivery) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                notifier: d.notifier.to_string(),
                result: d.result.as_str(),
                location: self.location.clone(),
            })
            .inc();
    }

    /// Removes every series of the sites not in `keep` (name, URL).
    pub(crate) fn retain_sites(&self, keep: &HashSet<(String, String)>) {
        let mut seen = self.seen.lock().expect("metrics bookkeeping");
        let gone: Vec<SiteLabels> = seen
            .outcomes
            .keys()
            .chain(seen.skipped.keys())
            .filter(|l| !keep.contains(&(l.site.clone(), l.url.clone())))
            .cloned()
            .collect();
        for l in gone {
            for f in [
                &self.success,
                &self.status,
                &self.body_bytes,
                &self.dns_answers,
                &self.grpc_status,
                &self.down,
                &self.degraded,
                &self.maintenance,
                &self.cert_warning,
                &self.domain_warning,
                &self.flapping,
                &self.slo_burning,
            ] {
                f.remove(&l);
            }
            self.slo_budget.remove(&l);
            self.slo_objective.remove(&l);
            self.duration.remove(&l);
            self.dns_lookup.remove(&l);
            self.icmp_loss.remove(&l);
            self.probes.remove(&l);
            self.skipped.remove(&l);
            self.response.remove(&l);
            self.ttfb.remove(&l);
            for phase in PHASES {
                self.phases.remove(&PhaseLabels {
                    site: l.site.clone(),
                    url: l.url.clone(),
                    location: l.location.clone(),
                    phase,
                });
            }
            for phase in ["resolve", "rtt"] {
                self.icmp_phases.remove(&PhaseLabels {
                    site: l.site.clone(),
                    url: l.url.clone(),
                    location: l.location.clone(),
                    phase,
                });
            }
            for outcome in seen.outcomes.remove(&l).unwrap_or_default() {
                self.outcomes.remove(&OutcomeLabels {
                    site: l.site.clone(),
                    url: l.url.clone(),
                    location: l.location.clone(),
                    outcome,
                });
            }
            for window in &seen.windows {
                self.availability.remove(&WindowLabels {
                    site: l.site.clone(),
                    url: l.url.clone(),
                    location: l.location.clone(),
                    window: window.clone(),
                });
            }
            seen.skipped.remove(&l);
            self.tls(&mut seen, &l, None);
            self.steps(&mut seen, &l, &[]);
        }
    }

    /// The exposition in OpenMetrics text.
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Prometheus text format 0.0.4 from OpenMetrics text: the same samples; a counter's HELP and
/// TYPE name its `_total` series, and the OpenMetrics-only lines (`# UNIT`, `# EOF`,
/// `_created`) go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        if let Some(l) = renamed {
            out.push_str(l.trim_end());
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            if let Some(base) = name.strip_suffix("_created")
                && counters.contains(base)
            {
                continue;
            }
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::CertInfo;

    fn details(fingerprint: &str, not_after: i64, version: &str) -> Arc<TlsDetails> {
        let at = |s| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let cert = |subject: &str, not_after| CertInfo {
            subject: subject.into(),
            issuer: "CN=Root".into(),
            sans: vec!["api.test".into(), "127.0.0.1".into()],
            not_before: at(0),
            not_after: at(not_after),
            serial: "1".into(),
            fingerprint_sha256: fingerprint.into(),
        };
        Arc::new(TlsDetails {
            version: Some(version.into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            chain: vec![
                cert("CN=api.test", not_after + 1000),
                cert("CN=Intermediate", not_after),
            ],
        })
    }

    fn probe(tls: Option<Arc<TlsDetails>>) -> Event {
        let mut m = crate::measurement::testing::sample("api", true);
        m.tls = tls;
        Event::Probe(m)
    }

    fn tls_lines(m: &Metrics) -> Vec<String> {
        m.openmetrics()
            .lines()
            .filter(|l| l.starts_with("probe_ssl_") || l.starts_with("probe_tls_"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_tls_series_follow_the_latest_probe_of_a_site() {
        let m = Metrics::new("lab");
        m.observe(&probe(None));
        assert!(tls_lines(&m).is_empty(), "plain HTTP: no TLS series");

        m.observe(&probe(Some(details("aa", 1_900_000_000, "TLS 1.3"))));
        let site = r#"site="api",url="http://api.test/",location="lab""#;
        assert_eq!(
            tls_lines(&m),
            [
                format!("probe_ssl_earliest_cert_expiry{{{site}}} 1900000000"),
                format!("probe_tls_version_info{{{site},version=\"TLS 1.3\"}} 1"),
                format!(
                    "probe_ssl_last_chain_info{{{site},fingerprint_sha256=\"aa\",subject=\"CN=api.test\",issuer=\"CN=Root\",subjectalternative=\"api.test,127.0.0.1\"}} 1"
                ),
            ]
        );

        // Renewed, over TLS 1.2: one series of each, the new ones.
        m.observe(&probe(Some(details("bb", 1_950_000_000, "TLS 1.2"))));
        let lines = tls_lines(&m);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].ends_with(" 1950000000"), "{lines:?}");
        assert!(lines[1].contains(r#"version="TLS 1.2""#), "{lines:?}");
        assert!(lines[2].contains(r#"fingerprint_sha256="bb""#), "{lines:?}");

        // A probe without TLS details (now plain HTTP, or refused): none.
        m.observe(&probe(None));
        assert!(tls_lines(&m).is_empty(), "{:?}", tls_lines(&m));

        m.observe(&probe(Some(details("cc", 1_900_000_000, "TLS 1.3"))));
        m.retain_sites(&HashSet::new());
        assert!(
            tls_lines(&m).is_empty(),
            "a removed site loses its TLS series"
        );
    }

    /// The step series, sorted (a family's series come in no set order).
    fn step_lines(m: &Metrics) -> Vec<String> {
        let mut lines: Vec<String> = m
            .openmetrics()
            .lines()
            .filter(|l| l.starts_with("sitewatch_step_"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    fn scripted(steps: &[(&str, u64, u32)]) -> Event {
        let mut m = crate::measurement::testing::sample("api", true);
        m.steps = steps
            .iter()
            .map(|&(name, ms, requests)| crate::measurement::Step {
                name: name.into(),
                duration: std::time::Duration::from_millis(ms),
                requests,
                failed: false,
            })
            .collect();
        Event::Probe(m)
    }

    /// A script site's steps are series of their latest run: a hostile name is escaped, a step
    /// gone from the next run goes, and a removed site loses them all.
    #[test]
    fn the_step_series_follow_the_latest_run_and_escape_the_names() {
        let m = Metrics::new("lab");
        m.observe(&scripted(&[("login", 250, 2), ("or\"d\\er\n", 1500, 1)]));
        let site = r#"site="api",url="http://api.test/",location="lab""#;
        assert_eq!(
            step_lines(&m),
            [
                format!("sitewatch_step_duration_seconds{{{site},step=\"login\"}} 0.25"),
                format!("sitewatch_step_duration_seconds{{{site},step=\"or\\\"d\\\\er\\n\"}} 1.5"),
                format!("sitewatch_step_requests{{{site},step=\"login\"}} 2"),
                format!("sitewatch_step_requests{{{site},step=\"or\\\"d\\\\er\\n\"}} 1"),
            ],
        );
        let text = m.openmetrics();
        assert!(
            text.contains("# TYPE sitewatch_step_duration_seconds gauge"),
            "{text}"
        );
        assert!(text.contains("# HELP sitewatch_step_requests "), "{text}");

        m.observe(&scripted(&[("login", 100, 3)]));
        assert_eq!(
            step_lines(&m),
            [
                format!("sitewatch_step_duration_seconds{{{site},step=\"login\"}} 0.1"),
                format!("sitewatch_step_requests{{{site},step=\"login\"}} 3"),
            ],
        );
        m.retain_sites(&HashSet::new());
        assert!(step_lines(&m).is_empty(), "{:?}", step_lines(&m));
        m.observe(&scripted(&[("login", 100, 3)]));
        m.observe(&scripted(&[]));
        assert!(step_lines(&m).is_empty(), "a run without steps leaves none");
    }

    #[test]
    fn another_nodes_probes_are_its_locations_series() {
        let m = Metrics::new("a");
        let mut remote = crate::measurement::testing::sample("api", true);
        remote.location = Some("b".into());
        m.observe(&Event::Probe(remote));
        m.observe(&probe(None));
        let text = m.openmetrics();
        let mut success: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("probe_success{"))
            .collect();
        success.sort();
        assert_eq!(
            success,
            [
                r#"probe_success{site="api",url="http://api.test/",location="a"} 1"#,
                r#"probe_success{site="api",url="http://api.test/",location="b"} 1"#
            ],
            "{text}"
        );
    }

    #[test]
    fn a_nodes_role_is_a_state_set() {
        let m = Metrics::new("a");
        let role = |role| {
            Event::Cluster(crate::event::ClusterReport {
                time: chrono::Utc::now(),
                node: "n1".into(),
                role,
                detail: String::new(),
            })
        };
        m.observe(&role("follower"));
        m.observe(&role("leader"));
        let text = m.openmetrics();
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("sitewatch_cluster_role{"))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines.contains(&r#"sitewatch_cluster_role{node="n1",location="a",role="leader"} 1"#)
        );
        assert!(
            lines.contains(&r#"sitewatch_cluster_role{node="n1",location="a",role="follower"} 0"#)
        );
        assert!(
            lines.contains(&r#"sitewatch_cluster_role{node="n1",location="a",role="alone"} 0"#)
        );
    }

    #[test]
    fn counters_are_renamed_for_the_prometheus_text_format() {
        let om = "# HELP sitewatch_probes Probes recorded.\n# TYPE sitewatch_probes counter\nsitewatch_probes_total{site=\"a\"} 3\n# HELP probe_success Whether.\n# TYPE probe_success gauge\nprobe_success{site=\"a\"} 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP sitewatch_probes_total Probes recorded.\n# TYPE sitewatch_probes_total counter\nsitewatch_probes_total{site=\"a\"} 3\n# HELP probe_success Whether.\n# TYPE probe_success gauge\nprobe_success{site=\"a\"} 1\n"
        );
    }
}
