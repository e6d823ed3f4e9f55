//! The recorder: the single owner of every site's stats windows and alert state, so it needs no
//! locks, and the one sequencer of decisions. It is fed measurements through a bounded channel,
//! evaluates alerts on each one and sends them, in order, down the ordered alert stream
//! ([`alert_stage`]); it emits the view reports on their own intervals and publishes
//! everything on the event bus.

use crate::alert::AlertRule;
use crate::alert::{Alert, AlertState, Observation};
use crate::clock::SharedClock;
use crate::config::{AlertingConfig, Config, ViewConfig};
use crate::event::{
    Bus, Event, MaintenanceReport, OverloadReport, OverloadState, SiteReport, StatsReport,
    WatchedSite, Watching,
};
use crate::maintenance::{Occurrence, Schedule};
use crate::measurement::Measurement;
use crate::plugin::set::PluginSet;
use crate::recorder::side::{NodeSide, Role};
use crate::recorder::verdict::LocationWindows;
use crate::skips::Skips;
use crate::stats::{SiteWindows, WindowSpec};
use crate::store::writer::{Record, StoreHandle};
use crate::target::ProbeTarget;
use alert_stage::{AlertFormatter, AlertStage, Decided, PluginFormatter, Route};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

pub mod alert_stage;
pub mod reach;
pub mod side;
pub mod slo;
pub mod verdict;

/// Window 0 of every site is the alert window; view `i` is window `i + 1`.
const ALERT_WINDOW: usize = 0;

/// How often held measurements are looked at while any waits (for a probe that ended without a
/// measurement, or one that waited its longest).
const HELD_CHECK: Duration = Duration::from_millis(50);

/// An overload episode ends after this long without an overload skip.
const OVERLOAD_QUIET: Duration = Duration::from_secs(5);

/// What the recorder is told.
#[derive(Debug)]
pub enum RecorderInput {
    Measurement(Measurement),
    /// A probe of another cluster node, from the stream.
    Remote(Box<crate::measurement::sample::Sample>),
    /// This cluster node's role changed. A new leader takes the alert book's open conditions
    /// and delivers its pending alerts (that no store committed); a node back from being alone
    /// closes the outages it announced alone that the book does not have.
    Role {
        role: crate::recorder::side::Role,
        book: Option<crate::recorder::side::Loaded>,
    },
    /// The book's pending alerts that no store committed (a leader died between its book and
    /// its store): this leader delivers them.
    Pending(crate::recorder::side::Pending),
    /// A reloaded config: alerting, views and sites.
    Reconfigure {
        alerting: AlertingConfig,
        views: Vec<ViewConfig>,
        targets: Vec<ProbeTarget>,
        notify: Vec<crate::config::notify::NotifierConfig>,
        canaries: crate::config::Canaries,
    },
    /// A `host:port` canary's answer (see [`crate::canary`]): `Err(why)` when it failed.
    Canary {
        name: String,
        answer: Result<(), String>,
        time: chrono::DateTime<chrono::Utc>,
    },
}

struct SiteState {
    url: Arc<str>,
    /// The configuration generation whose probes count; earlier ones are dropped.
    generation: u64,
    tls_insecure: bool,
    /// Paused: not probed, shown as paused.
    paused: bool,
    /// Probes further apart than this break the alert window's coverage.
    max_gap_us: i64,
    /// The site's alert rule (the global one with its overrides).
    rule: AlertRule,
    maintenance: Schedule,
    /// The maintenance window open at `maintenance_seen`, if any.
    in_maintenance: Option<Occurrence>,
    /// The latest time the maintenance state was looked at (a probe's end, or a report).
    maintenance_seen: Option<chrono::DateTime<chrono::Utc>>,
    tags: Arc<[String]>,
    /// The earliest certificate expiry of the newest chain seen.
    cert_expiry: Option<chrono::DateTime<chrono::Utc>>,
    windows: SiteWindows,
    alert: AlertState,
    /// Ticks the scheduler skipped (counted there).
    skipped: Arc<std::sync::atomic::AtomicU64>,
    /// The latest error messages, newest first, for alert formatters.
    recent_errors: VecDeque<String>,
    /// Whether the newest probe failed (then `recent_errors[0]` says why).
    failing: bool,
    /// A cluster node's alert window per location.
    locations: LocationWindows,
    /// The site's probes in flight (shared with the scheduler): the watermark.
    running: Arc<crate::target::Running>,
    /// Measurements that arrived but wait for a probe that started before they ended, in end
    /// order (see [`Recorder::record`]).
    held: Vec<Measurement>,
    /// The longest a probe can run, checks included: nothing is held longer.
    max_hold_us: i64,
    /// When the newest alert this node decided for the site was timed.
    last_alert: Option<chrono::DateTime<chrono::Utc>>,
    /// The sites it depends on (`depends_on`).
    depends_on: Vec<Arc<str>>,
    /// Its down alert was held, and why: the next probe that finds it still down with nothing
    /// it depends on down alerts then.
    held_down: Option<String>,
    /// When its downs and recoveries happened, within the flapping rule's window.
    flips: VecDeque<chrono::DateTime<chrono::Utc>>,
    /// Flapping since then: its downs and recoveries are held until it settles.
    flapping: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether its newest probe of this node failed at the network level (DNS or connect);
    /// `None` before the first (see [`reach::LocalOutageRule`]).
    net_failing: Option<bool>,
    /// Its objective's counts and burn-rate alerts, when it has one.
    burn: Option<slo::Burn>,
}

impl SiteState {
    fn new(t: &ProbeTarget, views: &[ViewConfig]) -> Self {
        Self {
            url: Arc::clone(&t.url),
            generation: t.generation,
            tls_insecure: t.config.tls_insecure,
            paused: t.config.paused,
            max_gap_us: max_gap_us(t),
            rule: t.config.alerting.clone(),
            maintenance: t.config.maintenance.clone(),
            in_maintenance: None,
            maintenance_seen: None,
            tags: t.config.tags.clone().into(),
            cert_expiry: None,
            windows: SiteWindows::new(&window_specs(&t.config.alerting, views)),
            alert: AlertState::default(),
            skipped: Arc::clone(&t.skipped),
            recent_errors: VecDeque::new(),
            failing: false,
            locations: LocationWindows::new(t.config.alerting.window),
            running: Arc::clone(&t.running),
            held: Vec::new(),
            max_hold_us: max_hold_us(t),
            last_alert: None,
            depends_on: t
                .config
                .depends_on
                .iter()
                .map(|d| d.as_str().into())
                .collect(),
            held_down: None,
            flips: VecDeque::new(),
            flapping: None,
            net_failing: None,
            burn: t.config.alerting.slo.map(slo::Burn::new),
        }
    }
}

/// The longest a probe of `t` can run, its checks included (their backstop is twice their time
/// limit), plus a second: a measurement is never held longer for one that has not arrived.
fn max_hold_us(t: &ProbeTarget) -> i64 {
    let checks: Duration = t
        .config
        .checks
        .iter()
        .map(|c| c.limits.time * 2 + Duration::from_millis(100))
        .sum();
    let hold = t.config.timeout + checks + Duration::from_secs(1);
    i64::try_from(hold.as_micros()).unwrap_or(i64::MAX)
}

impl SiteState {
    /// Flap damping: counts the downs and recoveries among `alerts` within the site's flapping
    /// window; more than the rule's changes and the site is flapping (one `flapping` alert,
    /// then its downs and recoveries held), and a whole window without one settles it (one
    /// `flapping_stopped`, saying whether it is up or down).
    fn damp(
        &mut self,
        site: &Arc<str>,
        mut alerts: Vec<Alert>,
        availability: f64,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Alert> {
        use crate::alert::{AlertKind, Transition};
        let flip = |a: &Alert| matches!(a.kind, AlertKind::Down | AlertKind::Recovered);
        let Some(rule) = self.rule.flapping else {
            self.flips.clear();
            // A reload that turned damping off settles a flapping site at once.
            if let Some(since) = self.flapping.take() {
                alerts.push(
                    Transition::FlappingStopped {
                        availability,
                        time,
                        since,
                        within: Duration::ZERO,
                        down: self.alert.down_since().is_some(),
                    }
                    .into_alert(site, &self.url),
                );
            }
            return alerts;
        };
        let within = chrono::TimeDelta::from_std(rule.within).unwrap_or(chrono::TimeDelta::MAX);
        self.flips
            .extend(alerts.iter().filter(|a| flip(a)).map(|a| a.time));
        while self.flips.front().is_some_and(|t| *t + within < time) {
            self.flips.pop_front();
        }
        match self.flapping {
            None if self.flips.len() > rule.changes as usize => {
                self.flapping = Some(time);
                let start = Transition::Flapping {
                    availability,
                    time,
                    changes: self.flips.len(),
                    within: rule.within,
                }
                .into_alert(site, &self.url);
                alerts.insert(0, start);
            }
            Some(since) if self.flips.is_empty() => {
                self.flapping = None;
                alerts.push(
                    Transition::FlappingStopped {
                        availability,
                        time,
                        since,
                        within: rule.within,
                        down: self.alert.down_since().is_some(),
                    }
                    .into_alert(site, &self.url),
                );
            }
            _ => {}
        }
        if self.flapping.is_some() {
            for a in alerts.iter_mut().filter(|a| flip(a) && a.held.is_none()) {
                a.held = Some("flapping".into());
            }
        }
        alerts
    }

    /// An alert of this site as the alert stage takes it: with the site's recent errors and
    /// tags, the formatter and the routes.
    fn decision(
        &self,
        alert: Alert,
        formatter: &Option<Arc<dyn AlertFormatter>>,
        routes: &Arc<[Route]>,
        book: Option<crate::recorder::side::Entry>,
    ) -> Decided {
        Decided {
            alert,
            recent_errors: self.recent_errors.iter().cloned().collect(),
            formatter: formatter.clone(),
            routes: Arc::clone(routes),
            tags: Arc::clone(&self.tags),
            book,
        }
    }

    /// Whether a maintenance window of the site is open at `t`, and the change of state to
    /// report, if `t` is the newest time looked at. A probe that ended before a later look
    /// (it reached the recorder late) is marked by its own time but changes no state, so a
    /// window is not reported open again after its end was.
    fn maintenance_at(
        &mut self,
        site: &Arc<str>,
        t: chrono::DateTime<chrono::Utc>,
    ) -> (bool, Option<MaintenanceReport>) {
        let open = self.maintenance.open_at(t);
        let is_open = open.is_some();
        if self.maintenance_seen.is_some_and(|seen| t < seen) {
            return (is_open, None);
        }
        self.maintenance_seen = Some(t);
        let old = std::mem::replace(&mut self.in_maintenance, open.clone());
        (
            is_open,
            MaintenanceReport::change(site, &self.url, old, open, t),
        )
    }
}

/// A site's windows: its alert window (with latency figures only when it has a latency
/// objective), then one per view.
fn window_specs(rule: &AlertRule, views: &[ViewConfig]) -> Vec<WindowSpec> {
    std::iter::once(WindowSpec {
        span: rule.window,
        timings: !rule.degraded.is_empty(),
    })
    .chain(views.iter().map(|v| WindowSpec {
        span: v.window,
        timings: true,
    }))
    .collect()
}

/// The longest normal distance between two probes of a site: two intervals plus a timeout (a
/// probe that times out ends a whole timeout after it started). Longer is a gap.
fn max_gap_us(t: &ProbeTarget) -> i64 {
    let gap = t.config.interval * 2 + t.config.timeout;
    i64::try_from(gap.as_micros()).unwrap_or(i64::MAX)
}

/// Error messages kept per site for alert formatters.
const RECENT_ERRORS: usize = 5;

/// An overload episode in progress.
struct Overload {
    since: chrono::DateTime<chrono::Utc>,
    /// Timeline position when a skip was last seen.
    last_us: i64,
    skipped: u64,
}

pub struct Recorder {
    alerting: AlertingConfig,
    views: Vec<ViewConfig>,
    /// Sites in config order, for reports.
    order: Vec<Arc<str>>,
    sites: HashMap<Arc<str>, SiteState>,
    /// Alerts decided in this run.
    decided: u64,
    clock: SharedClock,
    bus: Bus,
    store: Option<StoreHandle>,
    plugins: Option<Arc<PluginSet>>,
    formatter: Option<Arc<dyn AlertFormatter>>,
    notify: Vec<crate::config::notify::NotifierConfig>,
    /// Where alerts go: the notifiers with their formatters.
    routes: Arc<[Route]>,
    /// The ordered alert stream, started with the first alert.
    stage: Option<AlertStage>,
    /// What the scheduler skipped because of sitewatch itself.
    skips: Arc<Skips>,
    /// `skips.total()` when last looked at.
    skips_seen: u64,
    overload: Option<Overload>,
    /// Probes recorded since start.
    probes_total: u64,
    /// The views changed since the run loop made its tickers.
    views_changed: bool,
    /// This node's side of a cluster, and its role.
    cluster: Option<(NodeSide, Role)>,
    /// Measurements held across all sites (see [`Recorder::record`]).
    held: usize,
    /// Outages this node announced while alone, and since when (closed when the book takes
    /// over without them).
    alone_outages: Vec<(Arc<str>, chrono::DateTime<chrono::Utc>)>,
    /// Whether sitewatch itself reaches the network.
    reach: reach::Reach,
}

/// Where a measurement comes from.
enum Origin {
    /// This sitewatch's prober.
    Local,
    /// Another cluster node, with the certificate expiry its probe saw.
    Remote {
        cert_expiry: Option<chrono::DateTime<chrono::Utc>>,
    },
}

impl Recorder {
    pub fn new(config: &Config, clock: SharedClock, bus: Bus, store: Option<StoreHandle>) -> Self {
        Self {
            alerting: config.alerting.clone(),
            views: config.dashboard.views.clone(),
            order: Vec::new(),
            sites: HashMap::new(),
            decided: 0,
            clock,
            bus,
            store,
            plugins: None,
            formatter: None,
            notify: config.notify.clone(),
            routes: Route::all(&config.notify, None),
            stage: None,
            skips: Arc::new(Skips::new(0)),
            skips_seen: 0,
            overload: None,
            probes_total: 0,
            views_changed: false,
            cluster: None,
            held: 0,
            alone_outages: Vec::new(),
            reach: reach::Reach::new(&config.canaries),
        }
    }

    /// Makes this recorder a cluster node's: its probes are published, other nodes' are
    /// recorded too, sites are judged per location, and alerts leave only while it leads (or
    /// is alone). It starts as a follower.
    pub fn with_cluster(mut self, side: Option<NodeSide>) -> Self {
        self.cluster = side.map(|s| (s, Role::Follower));
        self
    }

    /// Gives the recorder the plugins, for the alert formatter.
    pub fn with_plugins(mut self, plugins: Option<Arc<PluginSet>>) -> Self {
        self.plugins = plugins;
        self.formatter = self.plugin_formatter();
        self.routes = Route::all(&self.notify, self.plugins.as_ref());
        self
    }

    /// Reads the scheduler's skip counts from `skips`.
    pub fn with_skips(mut self, skips: Arc<Skips>) -> Self {
        self.skips = skips;
        self
    }

    /// Uses `formatter` for alerts (a stand-in for a plugin, in tests).
    pub fn with_formatter(mut self, formatter: Arc<dyn AlertFormatter>) -> Self {
        self.formatter = Some(formatter);
        self
    }

    fn plugin_formatter(&self) -> Option<Arc<dyn AlertFormatter>> {
        let (plugin, plugins) = (self.alerting.formatter.as_ref()?, self.plugins.as_ref()?);
        Some(Arc::new(PluginFormatter {
            plugin: plugin.clone(),
            plugins: Arc::clone(plugins),
        }))
    }

    /// The longest window any site keeps: what a restart must reload.
    pub fn longest_window(&self) -> Duration {
        let views = self.views.iter().map(|v| v.window);
        let alerts = self.sites.values().map(|s| s.rule.window);
        views
            .chain(alerts)
            .chain([self.alerting.window])
            .max()
            .unwrap_or_default()
    }

    /// Rebuilds a site's windows and alert state from stored history (oldest first) and its
    /// newest stored alert. Emits nothing and stores nothing. The stored probes count as
    /// coverage of the alert window only up to the first gap, and the first new probe after a
    /// long stop is itself after a gap: a restart never decides on a window of one new probe.
    pub fn restore(&mut self, site: &str, history: &[Measurement], last_alerts: &[Alert]) {
        let Some(state) = self.sites.get_mut(site) else {
            return;
        };
        let open: Vec<_> = last_alerts
            .iter()
            .filter(|a| a.kind.is_firing() && a.url == state.url)
            .map(|a| (a.kind.condition(), a.time))
            .collect();
        state.alert = AlertState::restored(&open);
        // An outage whose down alert was held stays held across a restart: it alerts once
        // what held it is up and it is still down.
        state.held_down = last_alerts
            .iter()
            .find(|a| a.kind == crate::alert::AlertKind::Down && a.url == state.url)
            .and_then(|a| a.held.clone());
        if let Some(burn) = &mut state.burn {
            // The newest burn-rate alert, when it is open (the store keeps one per condition:
            // an older open one of the other severity is judged afresh).
            if let Some(a) = crate::alert::open_alert(last_alerts, crate::alert::Condition::Slo)
                .filter(|a| a.url == state.url)
            {
                burn.restore_open(slo::severity_of(&a.message), a.time);
            }
            for m in history.iter().filter(|m| !m.maintenance) {
                burn.add_minute(m.finished_at(), m.error.is_some());
            }
        }
        state.cert_expiry = history
            .iter()
            .rev()
            .find_map(|m| m.tls.as_ref()?.earliest_expiry());
        for m in history {
            let at = state.windows.push(m);
            state.alert.observe(at, state.max_gap_us);
        }
        state.windows.advance(self.clock.timeline_now_us());
    }

    /// Seeds a site's SLO counts with the store's rollups (see [`slo::Burn::seed`]).
    pub fn seed_slo(&mut self, site: &str, hours: &[(i64, u32, u32)], days: &[(i64, u32, u32)]) {
        if let Some(burn) = self.sites.get_mut(site).and_then(|s| s.burn.as_mut()) {
            burn.seed(hours, days);
        }
    }

    /// Replaces the site set. Sites that keep their name and URL keep their history and alert
    /// state (under their new generation); a changed URL starts a new history.
    pub fn set_sites(&mut self, targets: &[ProbeTarget]) {
        let mut old = std::mem::take(&mut self.sites);
        self.order = targets.iter().map(|t| Arc::clone(&t.name)).collect();
        for t in targets {
            let state = match old.remove(&t.name) {
                Some(mut s) if s.url == t.url => {
                    s.generation = t.generation;
                    s.skipped = Arc::clone(&t.skipped);
                    s.running = Arc::clone(&t.running);
                    s.max_hold_us = max_hold_us(t);
                    s.tls_insecure = t.config.tls_insecure;
                    s.paused = t.config.paused;
                    s.max_gap_us = max_gap_us(t);
                    s.tags = t.config.tags.clone().into();
                    s.maintenance = t.config.maintenance.clone();
                    s.depends_on = t
                        .config
                        .depends_on
                        .iter()
                        .map(|d| d.as_str().into())
                        .collect();
                    let rule = &t.config.alerting;
                    let respan = rule.window != s.rule.window
                        || rule.degraded.is_empty() != s.rule.degraded.is_empty();
                    s.rule = rule.clone();
                    s.burn = match (s.burn.take(), rule.slo) {
                        (Some(mut b), Some(o)) => {
                            b.set_slo(o);
                            Some(b)
                        }
                        (None, Some(o)) => Some(slo::Burn::new(o)),
                        (_, None) => None,
                    };
                    if respan {
                        s.windows.respan(&window_specs(&s.rule, &self.views));
                    }
                    s.locations.respan(s.rule.window);
                    s
                }
                _ => SiteState::new(t, &self.views),
            };
            self.sites.insert(Arc::clone(&t.name), state);
        }
        // Measurements held for a removed site (or its old URL) went with it.
        self.held = self.sites.values().map(|s| s.held.len()).sum();
        self.reach
            .recount(self.sites.values().map(|s| s.net_failing));
    }

    /// Records one measurement and fires the alert it causes, if any: in the order the site's
    /// probes *ended*, as a stream processor orders by event time with a watermark. A probe's
    /// checks run after its exchange ended, so a probe whose check is slow can arrive after
    /// later ones; placed as it arrives, it would land at the newest position and flip the
    /// verdict (a site recovered at 80% down again at 72.7%). So a measurement waits while a
    /// probe of its site that started before it ended is still running (at most that probe's
    /// timeout and checks: `max_hold_us`), and every waiting measurement is placed in end order.
    /// A site whose probes do not overlap waits for nothing.
    pub fn record(&mut self, m: Measurement) {
        let Some(name) = self
            .sites
            .get_key_value(&m.site)
            .map(|(n, _)| Arc::clone(n))
        else {
            tracing::debug!(site = %m.site, "measurement of a removed site dropped");
            return;
        };
        let site = self.sites.get_mut(&name).expect("just found");
        if m.generation != site.generation {
            // A probe of a configuration a reload replaced: its id is the old target's.
            tracing::debug!(site = %m.site, "measurement of an earlier configuration dropped");
            return;
        }
        site.running.finish(m.probe_id);
        let at = site.held.partition_point(|h| h.ended_us <= m.ended_us);
        site.held.insert(at, m);
        self.held += 1;
        self.release(&name, false);
    }

    /// Places the held measurements of `site` that nothing running can precede any more (all of
    /// them when `force`).
    fn release(&mut self, site: &Arc<str>, force: bool) {
        loop {
            let Some(state) = self.sites.get_mut(site) else {
                return;
            };
            let Some(first) = state.held.first() else {
                return;
            };
            let watermark = state.running.earliest_start().unwrap_or(i64::MAX);
            let overdue =
                || self.clock.timeline_now_us().saturating_sub(first.ended_us) > state.max_hold_us;
            if !(force || first.ended_us < watermark || overdue()) {
                return;
            }
            let m = state.held.remove(0);
            self.held -= 1;
            self.record_from(m, Origin::Local);
        }
    }

    /// Places what waits on probes that are no longer running (one that ended without a
    /// measurement), or waited its longest; on a timer while anything waits.
    fn release_all(&mut self, force: bool) {
        if self.held == 0 {
            return;
        }
        let waiting: Vec<Arc<str>> = self
            .sites
            .iter()
            .filter(|(_, s)| !s.held.is_empty())
            .map(|(n, _)| Arc::clone(n))
            .collect();
        for site in waiting {
            self.release(&site, force);
        }
    }

    /// Whether any measurement waits to be placed.
    fn holds_any(&self) -> bool {
        self.held > 0
    }

    /// Records another cluster node's probe.
    fn record_remote(&mut self, sample: crate::measurement::sample::Sample) {
        let Some((name, site)) = self.sites.get_key_value(sample.site.as_str()) else {
            tracing::debug!(site = %sample.site, "a probe of a site this node does not watch dropped");
            return;
        };
        let cert_expiry = sample
            .cert_expiry_us
            .and_then(chrono::DateTime::from_timestamp_micros);
        let mut m = sample.into_measurement(Arc::clone(name), Arc::clone(&site.url));
        // A probe that ended more than a normal gap before the site's newest one (a node
        // catching up after NATS was away) belongs to history only: windows place a late probe
        // at their newest position.
        let newest = site.alert.last_probe().unwrap_or(i64::MIN);
        if m.ended_us < newest.saturating_sub(site.max_gap_us) {
            tracing::debug!(site = %m.site, "a late probe of another node kept out of the windows");
            return;
        }
        m.generation = site.generation;
        self.record_from(m, Origin::Remote { cert_expiry });
    }

    /// Why an alert of `site` at `t` is held, if it is: a site it depends on (or one those
    /// depend on) is down, or failing its newest probe, or in a maintenance window. The nearest
    /// such site is named.
    fn hold_reason(&self, site: &str, t: chrono::DateTime<chrono::Utc>) -> Option<String> {
        if let Some(reason) = self.reach.hold_reason() {
            return Some(reason.into());
        }
        let first = self.sites.get(site)?;
        if first.depends_on.is_empty() {
            return None;
        }
        let mut queue: VecDeque<&Arc<str>> = first.depends_on.iter().collect();
        let mut seen: Vec<&Arc<str>> = Vec::new();
        while let Some(name) = queue.pop_front() {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let Some(parent) = self.sites.get(name) else {
                continue;
            };
            if parent.alert.down_since().is_some() || parent.failing {
                return Some(format!("{name} down"));
            }
            if parent.maintenance.open_at(t).is_some() {
                return Some(format!("{name} in maintenance"));
            }
            queue.extend(parent.depends_on.iter());
        }
        None
    }

    /// What this node's own probe tells of its reach of the network; says when that changes.
    fn note_reach(&mut self, m: &Measurement) {
        let Some(site) = self.sites.get_mut(&m.site) else {
            return;
        };
        if m.generation != site.generation {
            return;
        }
        use crate::measurement::ErrorKind;
        let net = m
            .error
            .as_ref()
            .is_some_and(|e| matches!(e.kind, ErrorKind::Dns | ErrorKind::Connect));
        let was = site.net_failing.replace(net);
        self.reach.site_changed(was, Some(net));
        let answer = match &m.error {
            None => Ok(()),
            Some(e) => Err(e.kind.to_string()),
        };
        self.reach.answer(&m.site, answer);
        self.reach_changed(m.finished_at());
    }

    /// Sends the monitor's own alert when its reach of the network changed at `time`.
    fn reach_changed(&mut self, time: chrono::DateTime<chrono::Utc>) {
        let Some(change) = self.reach.evaluate(time) else {
            return;
        };
        let alert = match change {
            reach::Change::Offline { reason } => crate::alert::monitor_offline(&reason, time),
            reach::Change::Online { reason, since } => {
                crate::alert::monitor_online(&reason, time, since)
            }
        };
        // A follower knows it too, but the leader speaks.
        if matches!(self.cluster, Some((_, Role::Follower))) {
            return;
        }
        self.send_decided(Decided {
            alert,
            recent_errors: Vec::new(),
            formatter: self.formatter.clone(),
            routes: Arc::clone(&self.routes),
            tags: Arc::from([]),
            book: None,
        });
    }

    fn record_from(&mut self, m: Measurement, origin: Origin) {
        if matches!(origin, Origin::Local) {
            self.note_reach(&m);
        }
        let hold = self.hold_reason(&m.site, m.finished_at());
        let Some(site) = self.sites.get_mut(&m.site) else {
            // A probe of a site removed while it was in flight.
            tracing::debug!(site = %m.site, "measurement of a removed site dropped");
            return;
        };
        if m.generation != site.generation {
            // A probe of a configuration that a reload replaced (another URL, another check).
            tracing::debug!(site = %m.site, "measurement of an earlier configuration dropped");
            return;
        }
        let at = site.windows.push(&m);
        self.probes_total += 1;
        site.failing = m.error.is_some();
        if let Some(e) = &m.error {
            site.recent_errors
                .push_front(format!("{}: {}", e.kind, e.message));
            site.recent_errors.truncate(RECENT_ERRORS);
        }
        let time = m.finished_at();
        let mut m = m;
        let (open, change) = site.maintenance_at(&m.site, time);
        m.maintenance = open;
        if let Some(report) = change {
            self.bus.send(Event::Maintenance(report));
        }
        let good_tls = m
            .error
            .as_ref()
            .is_none_or(|e| e.kind != crate::measurement::ErrorKind::Tls);
        let cert_expiry = match origin {
            Origin::Local => m
                .tls
                .as_ref()
                .and_then(|t| t.earliest_expiry())
                .filter(|_| good_tls),
            Origin::Remote { cert_expiry } => cert_expiry,
        };
        // A local probe's chain sets it below, whether its TLS was good or not.
        if let Origin::Remote {
            cert_expiry: Some(e),
        } = origin
        {
            site.cert_expiry = Some(e);
        }
        // A cluster node judges each location's window; the `confirm`-th lowest decides.
        let verdict = self.cluster.as_ref().map(|(side, role)| {
            let location = m
                .location
                .clone()
                .unwrap_or_else(|| Arc::clone(&side.location));
            site.locations.push(&location, &m);
            let alone = (*role == Role::Alone).then_some(&*side.location);
            let v = site
                .locations
                .verdict(at, site.rule.threshold, side.confirm, alone);
            let note = v.describe(side.confirm, alone);
            (v.availability, note)
        });
        if let Some(tls) = &m.tls
            && let Some(e) = tls.earliest_expiry()
        {
            site.cert_expiry = Some(e);
        }
        let stats = (!site.rule.degraded.is_empty()).then(|| site.windows.stats(ALERT_WINDOW));
        let availability = match &verdict {
            Some((a, _)) => *a,
            None => site.windows.availability(ALERT_WINDOW),
        };
        let observation = Observation {
            at_us: at,
            time,
            availability,
            stats: stats.as_ref(),
            domain_expiry: m.domain_expiry,
            cert_expiry,
            maintenance: m.maintenance,
        };
        let transitions = site
            .alert
            .evaluate(&observation, &site.rule, site.max_gap_us);
        // A follower decides as the leader does (so it can take over) but lets nothing out.
        let delivers = self
            .cluster
            .as_ref()
            .is_none_or(|(_, role)| *role != Role::Follower);
        let book = match &self.cluster {
            Some((side, Role::Leader)) if !transitions.is_empty() => {
                Some((side.book.clone(), site.alert.open()))
            }
            _ => None,
        };
        let mut alerts: Vec<crate::alert::Alert> = Vec::new();
        for t in transitions.into_iter().filter(|_| delivers) {
            let mut alert = t.into_alert(&m.site, &site.url);
            match alert.kind {
                // Down while a site it depends on is: held, not sent.
                crate::alert::AlertKind::Down => {
                    if let Some(reason) = &hold {
                        alert.held = Some(reason.clone());
                        site.held_down = Some(reason.clone());
                    }
                }
                // Back up after a held down: nobody was told it was down.
                crate::alert::AlertKind::Recovered => {
                    if let Some(reason) = site.held_down.take() {
                        alert.held = Some(format!("its down alert was held ({reason})"));
                    }
                }
                _ => {}
            }
            alerts.push(alert);
        }
        // Still down once what held its alert is not, by a probe of its own that failed: it
        // alerts now. (A child whose newest probe passed is coming back with its parent: its
        // recovery will be held.)
        if delivers
            && hold.is_none()
            && site.failing
            && site.alert.down_since().is_some()
            && !alerts
                .iter()
                .any(|a| a.kind == crate::alert::AlertKind::Down)
            && let Some(reason) = site.held_down.take()
        {
            let mut alert = crate::alert::Transition::Down {
                availability: availability.unwrap_or(0.0),
                time,
            }
            .into_alert(&m.site, &site.url);
            alert
                .message
                .push_str(&format!(" (its alert was held while {reason})"));
            alerts.push(alert);
        }
        if delivers {
            alerts = site.damp(&m.site, alerts, availability.unwrap_or(0.0), time);
        }
        // The error budget: probes in maintenance windows spend none of it.
        if let Some(burn) = &mut site.burn
            && !m.maintenance
        {
            burn.add(time, m.error.is_some());
            let changes = burn.evaluate(time);
            if delivers {
                let budget = burn.budget_left(time);
                alerts.extend(changes.into_iter().map(|c| {
                    slo::alert(
                        &c,
                        burn.slo(),
                        budget,
                        &m.site,
                        &site.url,
                        availability,
                        time,
                    )
                }));
            }
        }
        let decided: Vec<Decided> = alerts
            .into_iter()
            .map(|mut alert| {
                // A scenario's outage names the step it failed in.
                if alert.kind == crate::alert::AlertKind::Down
                    && let Some(step) = m.steps.iter().find(|s| s.failed)
                {
                    alert
                        .message
                        .push_str(&format!(", failed step={}", step.name));
                }
                if let Some((_, note)) = &verdict
                    && alert.kind.condition() == crate::alert::Condition::Down
                {
                    alert.message.push_str(note);
                }
                if let Some(reason) = &alert.held {
                    alert.message.push_str(&format!(" (held: {reason})"));
                }
                site.decision(alert, &self.formatter, &self.routes, book.clone())
            })
            .collect();
        if let (Some(store), Origin::Local) = (&self.store, &origin) {
            store.send(Record::Measurement(m.clone()));
        }
        self.bus.send(Event::Probe(m));
        let alone = matches!(self.cluster, Some((_, Role::Alone)));
        for decided in decided {
            if alone && decided.alert.kind == crate::alert::AlertKind::Down {
                self.alone_outages
                    .push((Arc::clone(&decided.alert.site), decided.alert.time));
            }
            if alone && decided.alert.kind == crate::alert::AlertKind::Recovered {
                self.alone_outages.retain(|(s, _)| *s != decided.alert.site);
            }
            self.send_decided(decided);
        }
        self.check_overload();
    }

    /// Starts an overload episode when the scheduler skipped ticks because of sitewatch itself
    /// since the last look, and ends it after [`OVERLOAD_QUIET`] without such a skip. One event
    /// each way per episode.
    pub(crate) fn check_overload(&mut self) {
        let total = self.skips.total();
        let new = total.saturating_sub(self.skips_seen);
        if new == 0 && self.overload.is_none() {
            // The common case, on every probe: two atomic loads, no clock read.
            return;
        }
        let now_us = self.clock.timeline_now_us();
        self.skips_seen = total;
        if new > 0 {
            match &mut self.overload {
                Some(o) => {
                    o.last_us = now_us;
                    o.skipped += new;
                }
                None => {
                    let since = self.clock.now();
                    self.overload = Some(Overload {
                        since,
                        last_us: now_us,
                        skipped: new,
                    });
                    self.bus.send(Event::Overload(OverloadReport {
                        time: since,
                        state: OverloadState::Started,
                        detail: format!(
                            "{}: ticks are skipped (and counted) rather than probed late; no site is marked down for them",
                            self.skips.reason()
                        ),
                        skipped: new,
                    }));
                }
            }
            return;
        }
        let quiet = i64::try_from(OVERLOAD_QUIET.as_micros()).unwrap_or(i64::MAX);
        let Some(o) = &self.overload else { return };
        if now_us.saturating_sub(o.last_us) < quiet {
            return;
        }
        let o = self.overload.take().expect("checked above");
        let time = self.clock.now();
        let lasted = (time - o.since).to_std().unwrap_or_default();
        self.bus.send(Event::Overload(OverloadReport {
            time,
            state: OverloadState::Ended,
            detail: format!(
                "sitewatch keeps up again; {} ticks were skipped in {}",
                o.skipped,
                crate::clock::human_duration(lasted)
            ),
            skipped: o.skipped,
        }));
    }

    /// The current stats of view `view` for every site.
    pub fn report(&mut self, view: usize, r#final: bool) -> StatsReport {
        let now_us = self.clock.timeline_now_us();
        let v = &self.views[view];
        let now = self.clock.now();
        let sites = self
            .order
            .iter()
            .filter_map(|name| {
                let s = self.sites.get_mut(name)?;
                s.windows.advance(now_us);
                // A window opens or closes between probes too: the display says so on time.
                if let (_, Some(report)) = s.maintenance_at(name, now) {
                    self.bus.send(Event::Maintenance(report));
                }
                Some(SiteReport {
                    site: Arc::clone(name),
                    url: Arc::clone(&s.url),
                    stats: s.windows.stats(view + 1),
                    down: s.alert.down_since().is_some(),
                    degraded: s.alert.degraded(),
                    maintenance: s.in_maintenance.clone(),
                    cert_expiry: s.cert_expiry,
                    cert_warning: s.alert.cert_warning(),
                    tags: Arc::clone(&s.tags),
                    maintenance_probes: 0,
                    skipped_ticks: s.skipped.load(std::sync::atomic::Ordering::Relaxed),
                    tls_insecure: s.tls_insecure,
                    paused: s.paused,
                    last_error: s
                        .failing
                        .then(|| s.recent_errors.front().cloned())
                        .flatten(),
                    slo: s.burn.as_ref().map(|b| crate::event::SloStatus {
                        objective: b.slo().objective,
                        period: b.slo().period,
                        budget_left: b.budget_left(now),
                        burning: b.burning().map(slo::Severity::as_str),
                    }),
                })
            })
            .collect();
        StatsReport {
            view: v.name.clone(),
            window_s: v.window.as_secs(),
            every_s: Some(v.every.as_secs_f64()),
            time: self.clock.now(),
            r#final,
            threshold: self.alerting.threshold,
            overloaded: self.overload.is_some(),
            skipped_overload: self.skips.total(),
            probes_total: self.probes_total,
            sites,
        }
    }

    /// What is watched now: the sites and views.
    fn watching(&self) -> Watching {
        Watching {
            time: self.clock.now(),
            sites: self
                .order
                .iter()
                .filter_map(|name| {
                    let s = self.sites.get(name)?;
                    Some(WatchedSite {
                        site: Arc::clone(name),
                        url: Arc::clone(&s.url),
                        down: s.alert.down_since().is_some(),
                        tags: Arc::clone(&s.tags),
                        paused: s.paused,
                    })
                })
                .collect(),
            views: self.views.iter().map(|v| v.name.clone()).collect(),
        }
    }

    /// Samples held in all the windows of all sites: the recorder's memory, in samples.
    pub fn samples_held(&self) -> usize {
        self.sites.values().map(|s| s.windows.len()).sum()
    }

    /// How many alerts this run decided.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// Sends a decided alert on its way (the ordered alert stage: formatted, stored with its
    /// notifications, then shown), noting it as its site's newest.
    fn send_decided(&mut self, decided: Decided) {
        self.decided += 1;
        if let Some(state) = self.sites.get_mut(&decided.alert.site) {
            state.last_alert = state.last_alert.max(Some(decided.alert.time));
        }
        let (bus, store) = (&self.bus, &self.store);
        self.stage
            .get_or_insert_with(|| AlertStage::start(bus.clone(), store.clone()))
            .send(decided);
    }

    /// Waits until every alert decided so far has left the ordered stream (stored and
    /// published).
    pub async fn flush_alerts(&mut self) {
        if let Some(stage) = self.stage.take() {
            stage.finish().await;
        }
    }

    pub fn handle(&mut self, input: RecorderInput) {
        match input {
            RecorderInput::Measurement(m) => self.record(m),
            RecorderInput::Remote(sample) => self.record_remote(*sample),
            RecorderInput::Role { role, book } => self.take_role(role, book),
            RecorderInput::Pending(pending) => {
                if matches!(self.cluster, Some((_, Role::Leader))) {
                    self.deliver_pending(pending);
                }
            }
            RecorderInput::Reconfigure {
                alerting,
                views,
                targets,
                notify,
                canaries,
            } => {
                self.routes = Route::all(&notify, self.plugins.as_ref());
                self.notify = notify;
                self.reach.configure(&canaries);
                self.reconfigure(alerting, views, &targets);
                self.reach_changed(self.clock.now());
            }
            RecorderInput::Canary { name, answer, time } => {
                self.reach.answer(&name, answer);
                self.reach_changed(time);
            }
        }
    }

    /// A new role, with the book when it was read. See [`RecorderInput::Role`]. Without the
    /// book nothing is adopted or closed (a leader always has it: a node that cannot read it
    /// does not lead).
    fn take_role(&mut self, role: Role, book: Option<crate::recorder::side::Loaded>) {
        let was = self.cluster.as_ref().map(|(_, r)| *r);
        if let Some(book) = &book {
            if was == Some(Role::Alone) && role != Role::Alone {
                self.close_alone_outages(&book.open);
            }
            if role == Role::Leader {
                for (name, s) in &mut self.sites {
                    s.alert
                        .adopt(book.open.get(&**name).map_or(&[], Vec::as_slice));
                }
            }
        }
        if let Some((_, r)) = &mut self.cluster {
            *r = role;
        }
    }

    /// Delivers the alerts a leader before this one decided and wrote to the book but no store
    /// committed (it died in between): through the ordered alert stream, with this node's
    /// notifiers, and into the book again until this node's store confirms them.
    fn deliver_pending(&mut self, pending: crate::recorder::side::Pending) {
        let Some((side, _)) = &self.cluster else {
            return;
        };
        let book = side.book.clone();
        let mut deliver = Vec::new();
        for (site, alerts) in pending {
            let Some(state) = self.sites.get(site.as_str()) else {
                continue;
            };
            for alert in alerts {
                if state.last_alert.is_some_and(|t| t > alert.time) {
                    // This node decided a later alert of the site (a recovery after the
                    // pending down): the pending one is stale; it leaves the book unsent.
                    tracing::info!(
                        site,
                        kind = alert.kind.as_str(),
                        "cluster: a pending alert of the last leader is older than this node's own; not delivered"
                    );
                    let book = book.clone();
                    tokio::spawn(async move { book.confirm(&alert).await });
                    continue;
                }
                tracing::info!(
                    site,
                    kind = alert.kind.as_str(),
                    "cluster: delivering an alert the last leader decided but did not store"
                );
                deliver.push(state.decision(
                    alert,
                    &self.formatter,
                    &self.routes,
                    Some((book.clone(), state.alert.open())),
                ));
            }
        }
        for decided in deliver {
            self.send_decided(decided);
        }
    }

    /// Back from being alone: each outage this node announced while alone that the cluster's
    /// book does not have (the cluster judged the site up meanwhile, or it recovered) is closed
    /// with a recovery, from this node whatever its role, since its notifiers opened it.
    fn close_alone_outages(&mut self, open: &crate::recorder::side::Open) {
        let now = self.clock.now();
        let alone = std::mem::take(&mut self.alone_outages);
        for (site, since) in alone {
            let in_book = open
                .get(&*site)
                .is_some_and(|c| c.iter().any(|(k, _)| *k == crate::alert::Condition::Down));
            let Some(state) = self.sites.get_mut(&site) else {
                continue;
            };
            if in_book || state.alert.down_since() != Some(since) {
                continue;
            }
            let availability = state.windows.availability(ALERT_WINDOW).unwrap_or(1.0);
            let mut alert = crate::alert::Transition::Recovered {
                availability,
                time: now,
                down_since: since,
            }
            .into_alert(&site, &state.url);
            alert.message.push_str(
                " (closed as the cluster's alert book took over: this node announced the outage while it could not reach NATS, and the cluster does not have it open)",
            );
            state
                .alert
                .adopt(open.get(&*site).map_or(&[], Vec::as_slice));
            let decided = state.decision(alert, &self.formatter, &self.routes, None);
            self.send_decided(decided);
        }
    }

    /// Applies a reloaded config. Windows are rebuilt from their kept samples when the alert
    /// window or the views changed; sites that did not change keep their history and state.
    pub fn reconfigure(
        &mut self,
        alerting: AlertingConfig,
        views: Vec<ViewConfig>,
        targets: &[ProbeTarget],
    ) {
        let respan = views != self.views;
        self.views_changed |= views != self.views;
        self.alerting = alerting;
        self.views = views;
        self.formatter = self.plugin_formatter();
        if respan {
            for s in self.sites.values_mut() {
                s.windows.respan(&window_specs(&s.rule, &self.views));
            }
        }
        self.set_sites(targets);
        self.bus.send(Event::Watching(self.watching()));
    }

    /// Runs until every sender of `inputs` is gone, then emits a final report of every view,
    /// once every alert has left the ordered stream.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<RecorderInput>) -> Self {
        self.bus.send(Event::Watching(self.watching()));
        let mut tickers = self.tickers();
        let mut holding = tokio::time::interval(HELD_CHECK);
        holding.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let holds = self.holds_any();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => {
                        self.handle(input);
                        if std::mem::take(&mut self.views_changed) {
                            tickers = self.tickers();
                        }
                    }
                    None => break,
                },
                _ = holding.tick(), if holds => self.release_all(false),
                view = next_tick(&mut tickers) => {
                    self.check_overload();
                    let report = self.report(view, false);
                    self.bus.send(Event::Stats(report));
                }
            }
        }
        // Nothing more arrives: what waits is placed now.
        self.release_all(true);
        self.flush_alerts().await;
        for view in 0..self.views.len() {
            let report = self.report(view, true);
            self.bus.send(Event::Stats(report));
        }
        self
    }
}

impl Recorder {
    /// One interval per view, first firing one period from now.
    fn tickers(&self) -> Vec<Interval> {
        self.views
            .iter()
            .map(|v| {
                let mut t = tokio::time::interval_at(Instant::now() + v.every, v.every);
                t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                t
            })
            .collect()
    }
}

/// Waits for the next tick of any interval and returns its index.
async fn next_tick(tickers: &mut [Interval]) -> usize {
    std::future::poll_fn(|cx| {
        for (i, t) in tickers.iter_mut().enumerate() {
            if t.poll_tick(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
