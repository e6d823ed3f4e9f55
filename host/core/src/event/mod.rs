//! Events: what the monitor tells its outputs. The recorder publishes probes, stats, alerts and
//! overload episodes; the monitor publishes start-up and reloads; every part reports its
//! problems as errors ([`Bus::error`]). Outputs only consume; their JSON form is
//! `output::wire`.

mod bus;
pub use bus::{Bus, PROBE_BACKLOG, Received, Stalled, Subscription, SubscriptionWatch, Waited};

use crate::alert::Alert;
use crate::measurement::Measurement;
use crate::stats::WindowStats;
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Event {
    /// Once, when monitoring starts.
    Started(Started),
    Probe(Measurement),
    Stats(StatsReport),
    Alert(Alert),
    Error(ErrorReport),
    /// A config or plugin change was applied or rejected.
    Reload(ReloadReport),
    /// What is watched: at start and after every applied reload.
    Watching(Watching),
    /// sitewatch started or stopped skipping ticks because it is overloaded.
    Overload(OverloadReport),
    /// The state of a sink that can fall behind (the store, the InfluxDB export).
    Sink(SinkStatus),
    /// What became of one notification of an alert: delivered, being retried, or failed.
    Delivery(Delivery),
    /// A site's maintenance window opened or closed.
    Maintenance(MaintenanceReport),
    /// This cluster node's role changed (leader, follower, alone).
    Cluster(ClusterReport),
    /// The store file was found damaged while running: set aside, and a fresh store started
    /// with what could be read of it and everything held in memory.
    StoreRecovered(StoreRecovery),
}

/// A damaged store set aside while running, and what was kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRecovery {
    pub time: DateTime<Utc>,
    /// Where the damaged file went.
    pub set_aside: String,
    /// Rows copied into the fresh store, per table.
    pub kept: Vec<(&'static str, u64)>,
    /// Rows or stretches of rowids that could not be read.
    pub lost: Vec<String>,
    /// What SQLite's `quick_check` said of the damaged file.
    pub check: Vec<String>,
}

impl Event {
    /// About how many bytes this event takes as a line of `--output json`: what a bounded
    /// subscriber ([`Bus::subscribe_bounded`]) counts against its budget. Cheap (no
    /// serialisation), and on the high side for the common shapes.
    pub(crate) fn approx_bytes(&self) -> usize {
        const BASE: usize = 160;
        match self {
            Event::Probe(m) => {
                BASE + 280
                    + m.site.len()
                    + m.url.len()
                    + m.error.as_ref().map_or(0, |e| e.message.len() + 40)
                    + m.metrics.len() * 48
                    + m.steps.iter().map(|s| s.name.len() + 80).sum::<usize>()
                    + m.tls.as_ref().map_or(0, |_| 700)
            }
            Event::Stats(r) => {
                BASE + r
                    .sites
                    .iter()
                    .map(|s| {
                        520 + s.site.len()
                            + s.url.len()
                            + s.tags.iter().map(|t| t.len() + 4).sum::<usize>()
                            + s.last_error.as_ref().map_or(0, String::len)
                            + s.stats.status_codes.len() * 16
                            + s.stats
                                .steps
                                .iter()
                                .map(|st| st.name.len() + 100)
                                .sum::<usize>()
                    })
                    .sum::<usize>()
            }
            Event::Alert(a) => BASE + 240 + a.site.len() + a.url.len() + a.message.len(),
            Event::Error(e) => BASE + e.message.len() + e.site.as_ref().map_or(0, |s| s.len()),
            Event::Reload(r) => BASE + r.detail.len(),
            Event::Watching(w) => {
                BASE + w
                    .sites
                    .iter()
                    .map(|s| {
                        48 + s.site.len()
                            + s.url.len()
                            + s.tags.iter().map(String::len).sum::<usize>()
                    })
                    .sum::<usize>()
            }
            Event::Overload(o) => BASE + o.detail.len(),
            Event::Delivery(d) => BASE + 120 + d.notifier.len() + d.site.len() + d.detail.len(),
            Event::Started(s) => {
                BASE + s.config.len()
                    + s.storage.len()
                    + s.past_alerts
                        .iter()
                        .map(|a| 240 + a.message.len())
                        .sum::<usize>()
            }
            Event::Sink(_) => BASE,
            Event::Maintenance(m) => BASE + 120 + m.site.len() + m.url.len(),
            Event::Cluster(c) => BASE + c.node.len() + c.detail.len(),
            Event::StoreRecovered(r) => {
                BASE + r.set_aside.len()
                    + r.kept.len() * 32
                    + r.lost
                        .iter()
                        .chain(&r.check)
                        .map(String::len)
                        .sum::<usize>()
            }
        }
    }
}

/// A cluster node's role changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterReport {
    pub time: DateTime<Utc>,
    pub node: Arc<str>,
    /// `leader`, `follower` or `alone`.
    pub role: &'static str,
    pub detail: String,
}

/// A maintenance window of a site opened or closed.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceReport {
    pub time: DateTime<Utc>,
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// Whether a window is open from now.
    pub started: bool,
    /// The window that opened (or, when `started` is false, the one that closed).
    pub window: crate::maintenance::Occurrence,
}

impl MaintenanceReport {
    /// The change from `old` to `new`, if they differ; a window that follows another at once
    /// is reported as the new one starting.
    pub fn change(
        site: &Arc<str>,
        url: &Arc<str>,
        old: Option<crate::maintenance::Occurrence>,
        new: Option<crate::maintenance::Occurrence>,
        time: DateTime<Utc>,
    ) -> Option<Self> {
        if old == new {
            return None;
        }
        let (started, window) = match (new, old) {
            (Some(w), _) => (true, w),
            (None, w) => (false, w?),
        };
        Some(Self {
            time,
            site: Arc::clone(site),
            url: Arc::clone(url),
            started,
            window,
        })
    }

    /// `maintenance of shop started (nightly, until 2026-12-06T03:00:00Z)`.
    pub fn line(&self) -> String {
        let name = self
            .window
            .name
            .as_deref()
            .map(|n| format!("{n}, "))
            .unwrap_or_default();
        if self.started {
            format!(
                "maintenance of {} started ({name}until {}): probes go on, no down or degraded alert fires",
                self.site,
                crate::clock::rfc3339_seconds(self.window.end)
            )
        } else {
            format!(
                "maintenance of {} ended ({name}started {})",
                self.site,
                crate::clock::rfc3339_seconds(self.window.start)
            )
        }
    }
}

/// An attempt to deliver a notification, and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub time: DateTime<Utc>,
    pub notifier: Arc<str>,
    /// The stored alert's id (`sitewatch alerts` shows its deliveries).
    pub alert_id: i64,
    /// The notification's id in the notifier's outbox.
    pub notification_id: i64,
    pub site: Arc<str>,
    /// `down`, `recovered` or `reminder`.
    pub kind: &'static str,
    pub result: DeliveryResult,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The service's answer, or why it was not delivered. Never holds a secret.
    pub detail: String,
    /// For a retry: when the next attempt is.
    pub retry_in: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    Retrying,
    Failed,
}

impl Delivery {
    /// `notify ops-slack: delivered the down alert of api (202 Accepted)`.
    pub fn line(&self) -> String {
        let what = format!("the {} alert of {}", self.kind, self.site);
        match self.result {
            DeliveryResult::Delivered => {
                format!(
                    "notify {}: delivered {what} ({})",
                    self.notifier, self.detail
                )
            }
            DeliveryResult::Retrying => format!(
                "notify {}: {what} not delivered yet (attempt {}: {}); retrying in {}",
                self.notifier,
                self.attempts,
                self.detail,
                crate::clock::human_duration(self.retry_in.unwrap_or_default())
            ),
            DeliveryResult::Failed => {
                format!("notify {}: {what} failed: {}", self.notifier, self.detail)
            }
        }
    }
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }
}

/// A sink that can fall behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkName {
    /// The embedded store: records wait in memory while it cannot be written.
    Store,
    /// The InfluxDB export: lines wait in the outbox while the server does not take them.
    InfluxDb,
}

impl SinkName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::InfluxDb => "influxdb",
        }
    }
}

/// How a sink is doing: whether it takes what it is given, and how much waits for it.
#[derive(Debug, Clone)]
pub struct SinkStatus {
    pub time: DateTime<Utc>,
    pub sink: SinkName,
    pub healthy: bool,
    /// Records (store) or lines (InfluxDB) waiting.
    pub backlog: u64,
}

/// The sites and views being watched now.
#[derive(Debug, Clone)]
pub struct Watching {
    pub time: DateTime<Utc>,
    pub sites: Vec<WatchedSite>,
    /// The views' names, in config order.
    pub views: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WatchedSite {
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// Down now (per the alert engine).
    pub down: bool,
    pub tags: Arc<[String]>,
    /// Paused (`paused: true`): not probed.
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadState {
    Started,
    Ended,
}

/// An overload episode started or ended: ticks skipped because sitewatch could not run more
/// probes (its cap of probes in flight, or its own resources), never counted against a site.
#[derive(Debug, Clone)]
pub struct OverloadReport {
    pub time: DateTime<Utc>,
    pub state: OverloadState,
    pub detail: String,
    /// Ticks skipped in the episode so far.
    pub skipped: u64,
}

/// What the monitor is watching, and the alerts of earlier runs.
#[derive(Debug, Clone)]
pub struct Started {
    pub time: DateTime<Utc>,
    pub config: String,
    pub sites: usize,
    /// Where measurements go, e.g. `sitewatch-data/sitewatch.db + InfluxDB http://...`.
    pub storage: String,
    /// Stored alerts of earlier runs, oldest first (at most 20).
    pub past_alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadWhat {
    Config,
    Plugin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Rejected,
}

impl ReloadWhat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Plugin => "plugin",
        }
    }
}

impl ReloadResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
        }
    }
}

impl OverloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ended => "ended",
        }
    }
}

impl ReloadReport {
    /// `config reload applied: ...` / `plugin reload rejected: ...`
    pub fn line(&self) -> String {
        format!(
            "{} reload {}: {}",
            self.what.as_str(),
            self.result.as_str(),
            self.detail
        )
    }
}

#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub time: DateTime<Utc>,
    pub what: ReloadWhat,
    pub result: ReloadResult,
    /// What changed, or why it was rejected.
    pub detail: String,
}

/// One refresh of one view: every site's stats over the view's window.
#[derive(Debug, Clone)]
pub struct StatsReport {
    pub view: String,
    pub window_s: u64,
    /// How often the view refreshes; `None` for a report of a past timeframe.
    pub every_s: Option<f64>,
    pub time: DateTime<Utc>,
    /// True for the report printed at shutdown.
    pub r#final: bool,
    /// The alert threshold, for colouring availability.
    pub threshold: f64,
    /// sitewatch is skipping ticks because it is overloaded.
    pub overloaded: bool,
    /// Ticks skipped since start because sitewatch was overloaded (not counted against sites).
    pub skipped_overload: u64,
    /// Probes recorded since start (the display's probe rate is its change between reports).
    pub probes_total: u64,
    pub sites: Vec<SiteReport>,
}

#[derive(Debug, Clone)]
pub struct SiteReport {
    pub site: Arc<str>,
    pub url: Arc<str>,
    pub stats: WindowStats,
    /// Whether the site is down right now (per the alert engine).
    pub down: bool,
    /// Up but over its latency objective (down wins over degraded).
    pub degraded: bool,
    /// The maintenance window open now, if any.
    pub maintenance: Option<crate::maintenance::Occurrence>,
    /// The earliest certificate expiry of the newest chain the site served.
    pub cert_expiry: Option<DateTime<Utc>>,
    /// A certificate warning is open.
    pub cert_warning: bool,
    pub tags: Arc<[String]>,
    /// Probes of the window that ran in a maintenance window (a stored report leaves them out
    /// of the figures unless asked; live views count them).
    pub maintenance_probes: u32,
    /// Ticks skipped since start because too many probes of the site were still running.
    pub skipped_ticks: u64,
    /// TLS certificates of this site are not verified (`tls_insecure`).
    pub tls_insecure: bool,
    /// Paused (`paused: true`): not probed, no alerts; its figures are from before.
    pub paused: bool,
    /// Why the newest probe failed (`check: keyword: ...`), or `None` when it succeeded.
    pub last_error: Option<String>,
    /// Its service level objective and error budget, when it has one (`slo`).
    pub slo: Option<SloStatus>,
}

/// A site's objective, the share of its error budget left over the period, and its open
/// burn-rate alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloStatus {
    /// 0..1 (0.999 for 99.9%).
    pub objective: f64,
    pub period: std::time::Duration,
    /// 1 untouched, 0 spent, below 0 overspent; `None` before a probe.
    pub budget_left: Option<f64>,
    /// `page` or `ticket` while a burn-rate alert is open.
    pub burning: Option<&'static str>,
}

impl SiteReport {
    /// A report of a site that is simply up: not down, degraded or in maintenance, no warning,
    /// no tags, nothing skipped.
    pub fn new(site: Arc<str>, url: Arc<str>, stats: WindowStats) -> Self {
        Self {
            site,
            url,
            stats,
            down: false,
            degraded: false,
            maintenance: None,
            cert_expiry: None,
            cert_warning: false,
            tags: Arc::from([]),
            maintenance_probes: 0,
            skipped_ticks: 0,
            tls_insecure: false,
            paused: false,
            last_error: None,
            slo: None,
        }
    }

    /// The states to show beside the figures, most urgent first: `PAUSED` (alone), `DOWN`,
    /// `DEGRADED`, `MAINTENANCE`, `CERT` (a certificate warning is open). Empty for a site that is simply up.
    pub fn states(&self) -> Vec<&'static str> {
        if self.paused {
            return vec!["PAUSED"];
        }
        let mut out = Vec::new();
        if self.down {
            out.push("DOWN");
        }
        if self.degraded {
            out.push("DEGRADED");
        }
        if self.maintenance.is_some() {
            out.push("MAINTENANCE");
        }
        if self.cert_warning {
            out.push("CERT");
        }
        out
    }

    /// Whole days until the earliest certificate of the newest chain expires, at `now`.
    pub fn cert_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.cert_expiry.map(|e| crate::alert::days_left(e, now))
    }
}

/// A problem that does not stop the program.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub time: DateTime<Utc>,
    /// The part of the program that met the problem, e.g. `output` or `config`.
    pub source: &'static str,
    pub site: Option<Arc<str>>,
    pub message: String,
}
