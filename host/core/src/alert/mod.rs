//! The alert state machine of one site. Evaluated on every measurement, so an alert fires on the
//! very probe that crosses the threshold. Pure: it is given the time and the availability.

use crate::clock::{human_duration, rfc3339_seconds};
mod rule;

pub use rule::{
    AlertRule, DEFAULT_CERT_WARNING, DEFAULT_DOMAIN_WARNING, Flapping, LatencyMetric,
    LatencyObjective, Slo,
};

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// What an alert says. Each condition (down, degraded, certificate) has a kind that fires and
/// one that resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    Down,
    Recovered,
    /// Up, but over its latency objective.
    Degraded,
    DegradedRecovered,
    /// The earliest certificate of the served chain expires within `cert_warning`.
    CertExpiring,
    CertRenewed,
    /// The site's registrable domain expires within `domain_warning` (RDAP).
    DomainExpiring,
    DomainRenewed,
    /// Its down and recovered alerts alternate too often (`alerting.flapping`): they are held
    /// until it settles.
    Flapping,
    /// It settled: no change between down and up for the flapping window.
    FlappingStopped,
    /// sitewatch itself cannot reach the network: every canary fails (or, without canaries,
    /// most sites fail at DNS or connect at once). Site downs are held meanwhile. Its site is
    /// [`MONITOR_SITE`].
    MonitorOffline,
    /// A canary answers again (or the sites failing at the network level are few again).
    MonitorOnline,
    /// The site spends its error budget too fast (`slo`: a page or a ticket, as the message
    /// says).
    SloBurn,
    SloBurnRecovered,
}

/// The `site` of the monitor's own alerts (`monitor_offline`, `monitor_online`).
pub const MONITOR_SITE: &str = "sitewatch";

/// The condition an alert is about: the incident a firing alert opens and its resolution closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    Down,
    Degraded,
    Cert,
    Domain,
    Flapping,
    /// sitewatch's own reach of the network.
    Monitor,
    /// The error budget's burn rate.
    Slo,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Self::Down,
        Self::Degraded,
        Self::Cert,
        Self::Domain,
        Self::Flapping,
        Self::Monitor,
        Self::Slo,
    ];

    /// `down`, `degraded`, `cert`, `domain`: in incident keys and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Degraded => "degraded",
            Self::Cert => "cert",
            Self::Domain => "domain",
            Self::Flapping => "flapping",
            Self::Monitor => "monitor",
            Self::Slo => "slo",
        }
    }

    /// The kinds that open and close this condition.
    pub fn kinds(self) -> [AlertKind; 2] {
        match self {
            Self::Down => [AlertKind::Down, AlertKind::Recovered],
            Self::Degraded => [AlertKind::Degraded, AlertKind::DegradedRecovered],
            Self::Cert => [AlertKind::CertExpiring, AlertKind::CertRenewed],
            Self::Domain => [AlertKind::DomainExpiring, AlertKind::DomainRenewed],
            Self::Flapping => [AlertKind::Flapping, AlertKind::FlappingStopped],
            Self::Monitor => [AlertKind::MonitorOffline, AlertKind::MonitorOnline],
            Self::Slo => [AlertKind::SloBurn, AlertKind::SloBurnRecovered],
        }
    }
}

/// A kind name that is not an [`AlertKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not an alert kind (down, recovered, degraded, degraded_recovered, cert_expiring, cert_renewed, domain_expiring, domain_renewed, flapping, flapping_stopped, monitor_offline, monitor_online, slo_burn, slo_burn_recovered)"
)]
pub struct UnknownAlertKind(pub String);

impl AlertKind {
    pub const ALL: [AlertKind; 14] = [
        Self::Down,
        Self::Recovered,
        Self::Degraded,
        Self::DegradedRecovered,
        Self::CertExpiring,
        Self::CertRenewed,
        Self::DomainExpiring,
        Self::DomainRenewed,
        Self::Flapping,
        Self::FlappingStopped,
        Self::MonitorOffline,
        Self::MonitorOnline,
        Self::SloBurn,
        Self::SloBurnRecovered,
    ];

    /// The kind's name in events, the store and line protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Recovered => "recovered",
            Self::Degraded => "degraded",
            Self::DegradedRecovered => "degraded_recovered",
            Self::CertExpiring => "cert_expiring",
            Self::CertRenewed => "cert_renewed",
            Self::DomainExpiring => "domain_expiring",
            Self::DomainRenewed => "domain_renewed",
            Self::Flapping => "flapping",
            Self::FlappingStopped => "flapping_stopped",
            Self::MonitorOffline => "monitor_offline",
            Self::MonitorOnline => "monitor_online",
            Self::SloBurn => "slo_burn",
            Self::SloBurnRecovered => "slo_burn_recovered",
        }
    }

    pub fn condition(self) -> Condition {
        match self {
            Self::Down | Self::Recovered => Condition::Down,
            Self::Degraded | Self::DegradedRecovered => Condition::Degraded,
            Self::CertExpiring | Self::CertRenewed => Condition::Cert,
            Self::DomainExpiring | Self::DomainRenewed => Condition::Domain,
            Self::Flapping | Self::FlappingStopped => Condition::Flapping,
            Self::MonitorOffline | Self::MonitorOnline => Condition::Monitor,
            Self::SloBurn | Self::SloBurnRecovered => Condition::Slo,
        }
    }

    /// Whether it opens an incident (rather than closing one).
    pub fn is_firing(self) -> bool {
        matches!(
            self,
            Self::Down
                | Self::Degraded
                | Self::CertExpiring
                | Self::DomainExpiring
                | Self::Flapping
                | Self::MonitorOffline
                | Self::SloBurn
        )
    }
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownAlertKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAlertKind(s.to_owned()))
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A latency figure over its objective (or back under it), for degraded alerts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyBreach {
    pub metric: LatencyMetric,
    pub value_ms: f64,
    pub limit: Duration,
}

/// A raised or cleared alert, with its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// Availability over the alert window when the alert fired, 0..=1.
    pub availability: f64,
    pub time: DateTime<Utc>,
    /// For a resolution: when its condition began (the site went down, became degraded, the
    /// certificate warning fired).
    pub down_since: Option<DateTime<Utc>>,
    /// For a resolution: how long the condition lasted.
    pub down_for: Option<Duration>,
    /// Degraded alerts: the figure and its objective.
    pub latency: Option<LatencyBreach>,
    /// Certificate alerts: the earliest `not after` of the served chain; domain alerts: the
    /// registration's expiry.
    pub cert_expiry: Option<DateTime<Utc>>,
    pub message: String,
    /// The alert as the configured formatter plugin rendered it, if there is one.
    pub rendered: Option<String>,
    /// Held, not notified, and why: a site it depends on was down or in maintenance
    /// (`core-router down`), or, for a recovery, its down alert was held.
    pub held: Option<String>,
}

impl Alert {
    /// The text to show: the formatter's rendering, or the built-in message.
    pub fn text(&self) -> &str {
        self.rendered.as_deref().unwrap_or(&self.message)
    }
}

/// The open alert of `condition` among a site's newest alert of each condition (as
/// the store's `last_alerts` gives them), if it is open.
pub fn open_alert(last: &[Alert], condition: Condition) -> Option<&Alert> {
    last.iter()
        .find(|a| a.kind.condition() == condition)
        .filter(|a| a.kind.is_firing())
}

/// `99.9%`, `99.95%`, `99%`: an objective (0..1) as written, without trailing zeros.
pub fn objective_text(objective: f64) -> String {
    let text = format!("{:.4}", objective * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// `66.67%`: availability as a percentage with two decimals.
pub fn percent(availability: f64) -> String {
    format!("{:.2}%", availability * 100.0)
}

/// A latency for people: `1.24s`, `800ms`.
pub(crate) fn latency_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{:.0}ms", ms)
    }
}

/// The spec's down message, word for word.
pub fn down_message(site: &str, availability: f64, time: DateTime<Utc>) -> String {
    format!(
        "Website {site} is down. availability={}, time={}",
        percent(availability),
        rfc3339_seconds(time)
    )
}

pub fn recovered_message(
    site: &str,
    availability: f64,
    time: DateTime<Utc>,
    down_since: DateTime<Utc>,
) -> String {
    format!(
        "Website {site} recovered. availability={}, time={}, down since {}, down for {}",
        percent(availability),
        rfc3339_seconds(time),
        rfc3339_seconds(down_since),
        human_duration((time - down_since).to_std().unwrap_or_default())
    )
}

/// `Website shop is flapping: 5 changes between down and up within 10m, time=...`
pub fn flapping_message(
    site: &str,
    changes: usize,
    within: Duration,
    time: DateTime<Utc>,
) -> String {
    format!(
        "Website {site} is flapping: {changes} changes between down and up within {}, time={}; its down and recovered alerts are held until it settles",
        human_duration(within),
        rfc3339_seconds(time)
    )
}

/// `Website shop stopped flapping: no change between down and up for 10m, it is up, time=...`
pub fn flapping_stopped_message(
    site: &str,
    within: Duration,
    down: bool,
    time: DateTime<Utc>,
) -> String {
    format!(
        "Website {site} stopped flapping: no change between down and up for {}; it is {}, time={}",
        human_duration(within),
        if down { "down" } else { "up" },
        rfc3339_seconds(time)
    )
}

/// The monitor's own alert: sitewatch cannot reach the network, and why (`every canary fails:
/// gw:80 (connect: refused)`). Its site is [`MONITOR_SITE`], its url `monitor:`.
pub fn monitor_offline(reason: &str, time: DateTime<Utc>) -> Alert {
    monitor_alert(
        AlertKind::MonitorOffline,
        0.0,
        time,
        format!(
            "sitewatch is offline: {reason}, time={}; down alerts of sites are held until it is back",
            rfc3339_seconds(time)
        ),
    )
}

/// sitewatch reaches the network again (`canary gw:80 answers`).
pub fn monitor_online(reason: &str, time: DateTime<Utc>, since: DateTime<Utc>) -> Alert {
    let took = (time - since).to_std().unwrap_or_default();
    Alert {
        down_since: Some(since),
        down_for: Some(took),
        ..monitor_alert(
            AlertKind::MonitorOnline,
            1.0,
            time,
            format!(
                "sitewatch is online again: {reason}, time={}, offline since {}, for {}",
                rfc3339_seconds(time),
                rfc3339_seconds(since),
                human_duration(took)
            ),
        )
    }
}

fn monitor_alert(
    kind: AlertKind,
    availability: f64,
    time: DateTime<Utc>,
    message: String,
) -> Alert {
    Alert::new(
        kind,
        MONITOR_SITE.into(),
        "monitor:".into(),
        availability,
        time,
        message,
    )
}

impl Alert {
    /// An alert with its message and nothing else (no resolution, latency or expiry).
    pub fn new(
        kind: AlertKind,
        site: Arc<str>,
        url: Arc<str>,
        availability: f64,
        time: DateTime<Utc>,
        message: String,
    ) -> Self {
        Self {
            kind,
            site,
            url,
            availability,
            time,
            down_since: None,
            down_for: None,
            latency: None,
            cert_expiry: None,
            message,
            rendered: None,
            held: None,
        }
    }
}

/// `Website shop is degraded. p95 response=1.24s over 800ms, time=...`
pub(crate) fn degraded_message(site: &str, b: &LatencyBreach, time: DateTime<Utc>) -> String {
    format!(
        "Website {site} is degraded. {}={} over {}, time={}",
        b.metric.label(),
        latency_text(b.value_ms),
        latency_text(b.limit.as_secs_f64() * 1000.0),
        rfc3339_seconds(time)
    )
}

pub(crate) fn degraded_recovered_message(
    site: &str,
    b: &LatencyBreach,
    time: DateTime<Utc>,
    since: DateTime<Utc>,
) -> String {
    format!(
        "Website {site} is no longer degraded. {}={} within {}, time={}, degraded since {}, for {}",
        b.metric.label(),
        latency_text(b.value_ms),
        latency_text(b.limit.as_secs_f64() * 1000.0),
        rfc3339_seconds(time),
        rfc3339_seconds(since),
        human_duration((time - since).to_std().unwrap_or_default())
    )
}

/// Whole days from `time` to `expiry`, rounded down (negative once expired).
pub fn days_left(expiry: DateTime<Utc>, time: DateTime<Utc>) -> i64 {
    (expiry - time).num_days()
}

/// `Website shop certificate expires in 3 days (not after 2026-12-05T10:00:00Z)`
pub(crate) fn cert_expiring_message(
    site: &str,
    expiry: DateTime<Utc>,
    time: DateTime<Utc>,
) -> String {
    let days = days_left(expiry, time);
    format!(
        "Website {site} certificate expires in {days} day{} (not after {})",
        if days == 1 { "" } else { "s" },
        rfc3339_seconds(expiry)
    )
}

pub(crate) fn cert_renewed_message(
    site: &str,
    expiry: DateTime<Utc>,
    time: DateTime<Utc>,
) -> String {
    let days = days_left(expiry, time);
    format!(
        "Website {site} certificate renewed. expires in {days} days (not after {}), time={}",
        rfc3339_seconds(expiry),
        rfc3339_seconds(time)
    )
}

/// `Website shop domain registration expires in 12 days (on 2027-01-01T00:00:00Z)`
pub(crate) fn domain_expiring_message(
    site: &str,
    expiry: DateTime<Utc>,
    time: DateTime<Utc>,
) -> String {
    let days = days_left(expiry, time);
    format!(
        "Website {site} domain registration expires in {days} day{} (on {})",
        if days == 1 { "" } else { "s" },
        rfc3339_seconds(expiry)
    )
}

pub(crate) fn domain_renewed_message(
    site: &str,
    expiry: DateTime<Utc>,
    time: DateTime<Utc>,
) -> String {
    let days = days_left(expiry, time);
    format!(
        "Website {site} domain registration renewed. expires in {days} days (on {}), time={}",
        rfc3339_seconds(expiry),
        rfc3339_seconds(time)
    )
}

/// What an expiry (a certificate's, a domain's) did to its warning.
enum Warned {
    Fired,
    /// Cleared, the warning having fired at this time.
    Cleared(DateTime<Utc>),
}

/// An expiry's warning: it fires when `expiry` is within `warning` of `time` (not in
/// maintenance), and clears when a later expiry is no longer that close.
fn expiring(
    since: &mut Option<DateTime<Utc>>,
    expiry: DateTime<Utc>,
    warning: Duration,
    time: DateTime<Utc>,
    maintenance: bool,
) -> Option<Warned> {
    let warn = chrono::TimeDelta::from_std(warning).unwrap_or(chrono::TimeDelta::MAX);
    let close = expiry - time < warn;
    match *since {
        None if close && !maintenance => {
            *since = Some(time);
            Some(Warned::Fired)
        }
        Some(fired) if !close => {
            *since = None;
            Some(Warned::Cleared(fired))
        }
        _ => None,
    }
}

/// One site's alert state. Times of the alert engine are positions on the monotonic timeline
/// (microseconds, see [`crate::clock`]); wall times only label the alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    /// Since when probes have covered the site without a gap (`None` before the first probe).
    covered_since: Option<i64>,
    /// The newest probe's position.
    last_probe: Option<i64>,
    /// `Some` while the site is down: when the down alert fired.
    down_since: Option<DateTime<Utc>>,
    /// `Some` while the site is degraded: when the degraded alert fired.
    degraded_since: Option<DateTime<Utc>>,
    /// `Some` while a certificate warning is open: when it fired.
    cert_since: Option<DateTime<Utc>>,
    /// `Some` while a domain warning is open: when it fired.
    domain_since: Option<DateTime<Utc>>,
}

/// A state change, before it is dressed as an [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    Down {
        availability: f64,
        time: DateTime<Utc>,
    },
    Recovered {
        availability: f64,
        time: DateTime<Utc>,
        down_since: DateTime<Utc>,
    },
    Degraded {
        availability: f64,
        time: DateTime<Utc>,
        breach: LatencyBreach,
    },
    DegradedRecovered {
        availability: f64,
        time: DateTime<Utc>,
        since: DateTime<Utc>,
        within: LatencyBreach,
    },
    CertExpiring {
        availability: f64,
        time: DateTime<Utc>,
        expiry: DateTime<Utc>,
    },
    CertRenewed {
        availability: f64,
        time: DateTime<Utc>,
        since: DateTime<Utc>,
        expiry: DateTime<Utc>,
    },
    DomainExpiring {
        availability: f64,
        time: DateTime<Utc>,
        expiry: DateTime<Utc>,
    },
    DomainRenewed {
        availability: f64,
        time: DateTime<Utc>,
        since: DateTime<Utc>,
        expiry: DateTime<Utc>,
    },
    /// More changes between down and up than the flapping rule allows (the recorder counts
    /// them: it sees every down and recovery, held or not).
    Flapping {
        availability: f64,
        time: DateTime<Utc>,
        changes: usize,
        within: Duration,
    },
    FlappingStopped {
        availability: f64,
        time: DateTime<Utc>,
        since: DateTime<Utc>,
        within: Duration,
        /// Whether it settled down (rather than up).
        down: bool,
    },
}

/// What one probe tells the alert engine.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The probe's position on the timeline.
    pub at_us: i64,
    /// When it ended (wall clock).
    pub time: DateTime<Utc>,
    /// Availability over the alert window (`None` when it holds no probes).
    pub availability: Option<f64>,
    /// The alert window's latency figures, for sites with a latency objective.
    pub stats: Option<&'a crate::stats::WindowStats>,
    /// The earliest certificate expiry of the probe's served chain, when its TLS was good.
    pub cert_expiry: Option<DateTime<Utc>>,
    /// The registration expiry of the site's domain, when RDAP told it.
    pub domain_expiry: Option<DateTime<Utc>>,
    /// A maintenance window is open: nothing new fires (resolutions still do).
    pub maintenance: bool,
}

impl AlertState {
    /// A site whose open alerts were restored from storage, not yet covered by probes.
    pub fn restored(open: &[(Condition, DateTime<Utc>)]) -> Self {
        let since = |c| open.iter().find(|(o, _)| *o == c).map(|(_, t)| *t);
        Self {
            down_since: since(Condition::Down),
            degraded_since: since(Condition::Degraded),
            cert_since: since(Condition::Cert),
            domain_since: since(Condition::Domain),
            ..Self::default()
        }
    }

    /// Takes the open conditions of `open` (a cluster leader's book), keeping the coverage: the
    /// next probe decides from there.
    pub fn adopt(&mut self, open: &[(Condition, DateTime<Utc>)]) {
        let since = |c| open.iter().find(|(o, _)| *o == c).map(|(_, t)| *t);
        self.down_since = since(Condition::Down);
        self.degraded_since = since(Condition::Degraded);
        self.cert_since = since(Condition::Cert);
        self.domain_since = since(Condition::Domain);
    }

    /// The open conditions and when each fired.
    pub fn open(&self) -> Vec<(Condition, DateTime<Utc>)> {
        [
            (Condition::Down, self.down_since),
            (Condition::Degraded, self.degraded_since),
            (Condition::Cert, self.cert_since),
            (Condition::Domain, self.domain_since),
        ]
        .into_iter()
        .filter_map(|(c, t)| Some((c, t?)))
        .collect()
    }

    /// The newest probe's position.
    pub fn last_probe(&self) -> Option<i64> {
        self.last_probe
    }

    pub fn down_since(&self) -> Option<DateTime<Utc>> {
        self.down_since
    }

    /// Degraded and not down (down wins over degraded).
    pub fn degraded(&self) -> bool {
        self.degraded_since.is_some() && self.down_since.is_none()
    }

    pub fn cert_warning(&self) -> bool {
        self.cert_since.is_some()
    }

    pub fn domain_warning(&self) -> bool {
        self.domain_since.is_some()
    }

    /// Notes a probe at `at_us` without deciding anything (history replayed at start). Probes
    /// further apart than `max_gap_us` break the coverage: after a gap (sitewatch was stopped,
    /// or the site was not probed), the alert window must fill with new probes again before
    /// anything fires, so a window of one sample never decides.
    pub fn observe(&mut self, at_us: i64, max_gap_us: i64) {
        let gap = self
            .last_probe
            .is_none_or(|last| at_us.saturating_sub(last) > max_gap_us);
        if gap {
            self.covered_since = Some(at_us);
        }
        self.last_probe = Some(self.last_probe.map_or(at_us, |l| l.max(at_us)));
    }

    /// Evaluates the state after a probe. Returns the transitions it caused, in order:
    /// availability first, then latency, then the certificate.
    pub fn evaluate(
        &mut self,
        o: &Observation<'_>,
        rule: &AlertRule,
        max_gap_us: i64,
    ) -> Vec<Transition> {
        self.observe(o.at_us, max_gap_us);
        let mut out = Vec::new();
        let time = o.time;
        // A window with no probes says nothing about the site.
        let Some(availability) = o.availability else {
            return out;
        };
        // Certificates and domains are judged per probe: one served chain, or one registry
        // answer, says when it expires.
        if let Some(expiry) = o.cert_expiry {
            match expiring(
                &mut self.cert_since,
                expiry,
                rule.cert_warning,
                time,
                o.maintenance,
            ) {
                Some(Warned::Fired) => out.push(Transition::CertExpiring {
                    availability,
                    time,
                    expiry,
                }),
                Some(Warned::Cleared(since)) => out.push(Transition::CertRenewed {
                    availability,
                    time,
                    since,
                    expiry,
                }),
                None => {}
            }
        }
        if let Some(expiry) = o.domain_expiry {
            match expiring(
                &mut self.domain_since,
                expiry,
                rule.domain_warning,
                time,
                o.maintenance,
            ) {
                Some(Warned::Fired) => out.push(Transition::DomainExpiring {
                    availability,
                    time,
                    expiry,
                }),
                Some(Warned::Cleared(since)) => out.push(Transition::DomainRenewed {
                    availability,
                    time,
                    since,
                    expiry,
                }),
                None => {}
            }
        }
        // Stay silent until probes have covered one whole window.
        let window = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX);
        let covered = self.covered_since.unwrap_or(o.at_us);
        if o.at_us.saturating_sub(covered) < window {
            // Availability and latency come before the certificate, in order of urgency.
            return out;
        }
        let mut decided = Vec::new();
        match self.down_since {
            None if availability < rule.threshold && !o.maintenance => {
                self.down_since = Some(time);
                decided.push(Transition::Down { availability, time });
            }
            Some(down_since) if availability >= rule.threshold => {
                self.down_since = None;
                decided.push(Transition::Recovered {
                    availability,
                    time,
                    down_since,
                });
            }
            _ => {}
        }
        // Down wins over degraded: while down, the latency verdict waits.
        if self.down_since.is_none()
            && let Some(stats) = o.stats
            && let Some(t) = self.judge_latency(availability, time, stats, rule, o.maintenance)
        {
            decided.push(t);
        }
        decided.extend(out);
        decided
    }

    fn judge_latency(
        &mut self,
        availability: f64,
        time: DateTime<Utc>,
        stats: &crate::stats::WindowStats,
        rule: &AlertRule,
        maintenance: bool,
    ) -> Option<Transition> {
        let figures: Vec<LatencyBreach> = rule
            .degraded
            .iter()
            .filter_map(|obj| {
                Some(LatencyBreach {
                    metric: obj.metric,
                    value_ms: obj.metric.value_ms(stats)?,
                    limit: obj.limit,
                })
            })
            .collect();
        // No complete response in the window: nothing to judge latency by.
        let first = *figures.first()?;
        let over = figures
            .iter()
            .find(|b| b.value_ms > b.limit.as_secs_f64() * 1000.0)
            .copied();
        match (self.degraded_since, over) {
            (None, Some(breach)) if !maintenance => {
                self.degraded_since = Some(time);
                Some(Transition::Degraded {
                    availability,
                    time,
                    breach,
                })
            }
            (Some(since), None) => {
                self.degraded_since = None;
                Some(Transition::DegradedRecovered {
                    availability,
                    time,
                    since,
                    within: first,
                })
            }
            _ => None,
        }
    }
}

impl Transition {
    pub fn into_alert(self, site: &Arc<str>, url: &Arc<str>) -> Alert {
        let base = |kind, availability, time, message| {
            Alert::new(
                kind,
                Arc::clone(site),
                Arc::clone(url),
                availability,
                time,
                message,
            )
        };
        let since = |a: Alert, since: DateTime<Utc>| Alert {
            down_since: Some(since),
            down_for: Some((a.time - since).to_std().unwrap_or_default()),
            ..a
        };
        match self {
            Transition::Down { availability, time } => base(
                AlertKind::Down,
                availability,
                time,
                down_message(site, availability, time),
            ),
            Transition::Recovered {
                availability,
                time,
                down_since,
            } => since(
                base(
                    AlertKind::Recovered,
                    availability,
                    time,
                    recovered_message(site, availability, time, down_since),
                ),
                down_since,
            ),
            Transition::Degraded {
                availability,
                time,
                breach,
            } => Alert {
                latency: Some(breach),
                ..base(
                    AlertKind::Degraded,
                    availability,
                    time,
                    degraded_message(site, &breach, time),
                )
            },
            Transition::DegradedRecovered {
                availability,
                time,
                since: s,
                within,
            } => Alert {
                latency: Some(within),
                ..since(
                    base(
                        AlertKind::DegradedRecovered,
                        availability,
                        time,
                        degraded_recovered_message(site, &within, time, s),
                    ),
                    s,
                )
            },
            Transition::CertExpiring {
                availability,
                time,
                expiry,
            } => Alert {
                cert_expiry: Some(expiry),
                ..base(
                    AlertKind::CertExpiring,
                    availability,
                    time,
                    cert_expiring_message(site, expiry, time),
                )
            },
            Transition::CertRenewed {
                availability,
                time,
                since: s,
                expiry,
            } => Alert {
                cert_expiry: Some(expiry),
                ..since(
                    base(
                        AlertKind::CertRenewed,
                        availability,
                        time,
                        cert_renewed_message(site, expiry, time),
                    ),
                    s,
                )
            },
            Transition::DomainExpiring {
                availability,
                time,
                expiry,
            } => Alert {
                cert_expiry: Some(expiry),
                ..base(
                    AlertKind::DomainExpiring,
                    availability,
                    time,
                    domain_expiring_message(site, expiry, time),
                )
            },
            Transition::DomainRenewed {
                availability,
                time,
                since: s,
                expiry,
            } => Alert {
                cert_expiry: Some(expiry),
                ..since(
                    base(
                        AlertKind::DomainRenewed,
                        availability,
                        time,
                        domain_renewed_message(site, expiry, time),
                    ),
                    s,
                )
            },
            Transition::Flapping {
                availability,
                time,
                changes,
                within,
            } => base(
                AlertKind::Flapping,
                availability,
                time,
                flapping_message(site, changes, within, time),
            ),
            Transition::FlappingStopped {
                availability,
                time,
                since: s,
                within,
                down,
            } => since(
                base(
                    AlertKind::FlappingStopped,
                    availability,
                    time,
                    flapping_stopped_message(site, within, down, time),
                ),
                s,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule() -> AlertRule {
        AlertRule {
            threshold: 0.8,
            window: Duration::from_secs(120),
            degraded: vec![crate::alert::LatencyObjective {
                metric: LatencyMetric::ResponseP95,
                limit: Duration::from_millis(800),
            }],
            cert_warning: Duration::from_secs(14 * 86_400),
            domain_warning: DEFAULT_DOMAIN_WARNING,
            flapping: None,
            slo: None,
        }
    }

    /// Window stats whose p95 response is `p95_ms`.
    fn latency(p95_ms: f64) -> crate::stats::WindowStats {
        crate::stats::WindowStats {
            checks: 10,
            ok: 10,
            availability: Some(1.0),
            response_ms: Some(crate::stats::ResponseSummary {
                avg: p95_ms,
                max: p95_ms,
                p50: p95_ms,
                p95: p95_ms,
                p99: p95_ms,
            }),
            ttfb_ms: None,
            status_codes: Default::default(),
            steps: Vec::new(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
    }

    /// A gap longer than this breaks the coverage (30 s: e.g. a 10 s interval, 10 s timeout).
    const GAP: i64 = 30_000_000;

    trait Eval {
        fn eval(&mut self, secs: i64, availability: Option<f64>) -> Option<Transition>;
    }

    impl Eval for AlertState {
        /// Evaluates at `secs` on a timeline equal to the wall clock.
        fn eval(&mut self, secs: i64, availability: Option<f64>) -> Option<Transition> {
            let t = at(secs);
            let o = Observation {
                at_us: t.timestamp_micros(),
                time: t,
                availability,
                stats: None,
                cert_expiry: None,
                domain_expiry: None,
                maintenance: false,
            };
            let mut got = self.evaluate(&o, &rule(), GAP);
            assert!(got.len() <= 1, "one transition at most: {got:?}");
            got.pop()
        }
    }

    /// Evaluates everything a probe at `secs` can carry.
    fn full(
        s: &mut AlertState,
        secs: i64,
        availability: f64,
        p95_ms: Option<f64>,
        cert_expiry: Option<DateTime<Utc>>,
        maintenance: bool,
    ) -> Vec<AlertKind> {
        let t = at(secs);
        let stats = p95_ms.map(latency);
        let o = Observation {
            at_us: t.timestamp_micros(),
            time: t,
            availability: Some(availability),
            stats: stats.as_ref(),
            cert_expiry,
            domain_expiry: None,
            maintenance,
        };
        let site: Arc<str> = "s".into();
        s.evaluate(&o, &rule(), GAP)
            .into_iter()
            .map(|t| t.into_alert(&site, &site).kind)
            .collect()
    }

    /// A site probed every 10 s from 0 to 120 s (up), so the window is covered.
    fn watched() -> AlertState {
        let mut s = AlertState::default();
        for t in (0..=120).step_by(10) {
            assert_eq!(s.eval(t, Some(1.0)), None);
        }
        s
    }

    #[test]
    fn no_records_means_no_alert() {
        let mut s = AlertState::default();
        for t in [0, 200, 400] {
            assert_eq!(s.eval(t, None), None);
        }
        let mut s = watched();
        assert_eq!(s.eval(500, None), None, "an empty window changes nothing");
    }

    #[test]
    fn window_not_yet_covered_means_no_alert() {
        let mut s = AlertState::default();
        for t in (0..120).step_by(10) {
            assert_eq!(s.eval(t, Some(0.0)), None);
        }
        assert_eq!(s.eval(119, Some(0.0)), None);
        assert!(matches!(
            s.eval(120, Some(0.0)),
            Some(Transition::Down { .. })
        ));
    }

    #[test]
    fn above_threshold_while_up_means_nothing() {
        let mut s = watched();
        for t in 120..200 {
            assert_eq!(s.eval(t, Some(0.8)), None, "exactly at the threshold is up");
        }
    }

    #[test]
    fn below_while_up_is_one_down_alert_and_below_while_down_is_nothing_more() {
        let mut s = watched();
        assert_eq!(
            s.eval(130, Some(0.5)),
            Some(Transition::Down {
                availability: 0.5,
                time: at(130)
            })
        );
        for t in 131..300 {
            assert_eq!(s.eval(t, Some(0.1)), None);
        }
        assert_eq!(s.down_since(), Some(at(130)));
    }

    #[test]
    fn at_or_above_while_down_is_one_recovery() {
        let mut s = watched();
        s.eval(130, Some(0.5));
        for t in (140..400).step_by(10) {
            assert_eq!(s.eval(t, Some(0.5)), None);
        }
        assert_eq!(
            s.eval(400, Some(0.8)),
            Some(Transition::Recovered {
                availability: 0.8,
                time: at(400),
                down_since: at(130)
            })
        );
        assert_eq!(s.eval(401, Some(1.0)), None);
        assert_eq!(s.down_since(), None);
    }

    #[test]
    fn flapping_gives_one_message_per_crossing() {
        let mut s = watched();
        let series = [0.9, 0.7, 0.6, 0.85, 0.9, 0.79, 0.5, 0.8, 0.81, 0.2];
        let fired: Vec<_> = series
            .iter()
            .enumerate()
            .filter_map(|(i, a)| s.eval(121 + i as i64, Some(*a)))
            .map(|t| matches!(t, Transition::Down { .. }))
            .collect();
        // down at 0.7, up at 0.85, down at 0.79, up at 0.8, down at 0.2
        assert_eq!(fired, [true, false, true, false, true]);
    }

    #[test]
    fn after_a_gap_nothing_fires_until_new_probes_cover_the_window_again() {
        // Up and covered until 120 s, then nothing for 5 minutes (sitewatch was stopped).
        let mut s = watched();
        let back = 420;
        // Failing from the first probe after the gap: a window of one probe decides nothing.
        for t in (back..back + 120).step_by(10) {
            assert_eq!(s.eval(t, Some(0.0)), None, "at {t}");
        }
        assert!(matches!(
            s.eval(back + 120, Some(0.0)),
            Some(Transition::Down { .. })
        ));
        // The same for a recovery after another gap.
        let back = back + 600;
        for t in (back..back + 120).step_by(10) {
            assert_eq!(s.eval(t, Some(1.0)), None, "at {t}");
        }
        assert!(matches!(
            s.eval(back + 120, Some(1.0)),
            Some(Transition::Recovered { .. })
        ));
    }

    #[test]
    fn replayed_history_counts_as_coverage_until_a_gap() {
        let mut s = AlertState::restored(&[]);
        for t in (0..=120).step_by(10) {
            s.observe(at(t).timestamp_micros(), GAP);
        }
        // Right after the replayed history: covered, so the next probe decides.
        assert!(matches!(
            s.eval(130, Some(0.0)),
            Some(Transition::Down { .. })
        ));
    }

    #[test]
    fn kinds_have_one_text_form_and_unknown_text_is_an_error() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert!("up".parse::<AlertKind>().is_err());
    }

    #[test]
    fn messages_use_the_spec_wording() {
        let site: Arc<str> = "example".into();
        let url: Arc<str> = "https://example.com/".into();
        let down = Transition::Down {
            availability: 2.0 / 3.0,
            time: at(0),
        }
        .into_alert(&site, &url);
        assert_eq!(
            down.message,
            "Website example is down. availability=66.67%, time=2026-11-24T10:00:00Z"
        );
        let up = Transition::Recovered {
            availability: 0.9,
            time: at(192),
            down_since: at(0),
        }
        .into_alert(&site, &url);
        assert_eq!(
            up.message,
            "Website example recovered. availability=90.00%, time=2026-11-24T10:03:12Z, \
             down since 2026-11-24T10:00:00Z, down for 3m 12s"
        );
        assert_eq!(up.down_for, Some(Duration::from_secs(192)));
    }

    #[test]
    fn degraded_then_down_then_up_reports_down_over_degraded() {
        use AlertKind::*;
        let mut s = watched();
        assert_eq!(
            full(&mut s, 130, 1.0, Some(1240.0), None, false),
            [Degraded]
        );
        assert!(s.degraded());
        // Still slow: nothing more.
        assert_eq!(full(&mut s, 140, 1.0, Some(1300.0), None, false), []);
        // Down wins: the down alert fires, the degraded one is not resolved meanwhile.
        assert_eq!(full(&mut s, 150, 0.5, Some(100.0), None, false), [Down]);
        assert!(!s.degraded(), "down, not degraded, while down");
        assert_eq!(full(&mut s, 160, 0.5, Some(100.0), None, false), []);
        // Back up and fast: recovered, then no longer degraded.
        assert_eq!(
            full(&mut s, 170, 0.9, Some(100.0), None, false),
            [Recovered, DegradedRecovered]
        );
        assert_eq!(full(&mut s, 180, 1.0, Some(100.0), None, false), []);
    }

    #[test]
    fn a_degraded_message_names_the_figure_and_its_objective() {
        let site: Arc<str> = "shop".into();
        let t = Transition::Degraded {
            availability: 1.0,
            time: at(0),
            breach: LatencyBreach {
                metric: LatencyMetric::ResponseP95,
                value_ms: 1240.0,
                limit: Duration::from_millis(800),
            },
        }
        .into_alert(&site, &site);
        assert_eq!(
            t.message,
            "Website shop is degraded. p95 response=1.24s over 800ms, time=2026-11-24T10:00:00Z"
        );
    }

    #[test]
    fn no_complete_response_in_the_window_changes_no_latency_verdict() {
        let mut s = watched();
        assert_eq!(
            full(&mut s, 130, 1.0, Some(900.0), None, false),
            [AlertKind::Degraded]
        );
        // Every probe of the window failed before a response: no figure to judge by.
        let t = at(140);
        let empty = crate::stats::WindowStats {
            response_ms: None,
            ..latency(0.0)
        };
        let o = Observation {
            at_us: t.timestamp_micros(),
            time: t,
            availability: Some(0.9),
            stats: Some(&empty),
            cert_expiry: None,
            domain_expiry: None,
            maintenance: false,
        };
        assert_eq!(s.evaluate(&o, &rule(), GAP), []);
        assert!(s.degraded());
    }

    #[test]
    fn maintenance_holds_back_new_alerts_but_not_recoveries_and_fires_at_its_end() {
        use AlertKind::*;
        let mut s = watched();
        // Down during maintenance: nothing fires.
        for t in (130..200).step_by(10) {
            assert_eq!(full(&mut s, t, 0.0, None, None, true), [], "at {t}");
        }
        // The window closes with the site still down: the down alert fires on the next probe.
        assert_eq!(full(&mut s, 200, 0.0, None, None, false), [Down]);
        // An alert open when a window starts stays open through it...
        assert_eq!(full(&mut s, 210, 0.0, None, None, true), []);
        assert!(s.down_since().is_some());
        // ...and a recovery during the window is still reported.
        assert_eq!(full(&mut s, 220, 1.0, None, None, true), [Recovered]);
        // Slow during maintenance: no degraded alert either.
        assert_eq!(full(&mut s, 230, 1.0, Some(5000.0), None, true), []);
        assert_eq!(
            full(&mut s, 240, 1.0, Some(5000.0), None, false),
            [Degraded]
        );
    }

    #[test]
    fn a_certificate_warning_fires_once_and_clears_when_renewed() {
        use AlertKind::*;
        let mut s = watched();
        let soon = at(0) + chrono::TimeDelta::days(3);
        let later = at(0) + chrono::TimeDelta::days(60);
        assert_eq!(full(&mut s, 130, 1.0, None, Some(later), false), []);
        assert_eq!(
            full(&mut s, 140, 1.0, None, Some(soon), false),
            [CertExpiring]
        );
        assert_eq!(full(&mut s, 150, 1.0, None, Some(soon), false), []);
        // A probe without a good chain (it failed before TLS) says nothing about it.
        assert_eq!(full(&mut s, 160, 1.0, None, None, false), []);
        assert!(s.cert_warning());
        assert_eq!(
            full(&mut s, 170, 1.0, None, Some(later), false),
            [CertRenewed]
        );
        assert!(!s.cert_warning());
        let site: Arc<str> = "shop".into();
        let a = Transition::CertExpiring {
            availability: 1.0,
            time: at(0),
            expiry: soon,
        }
        .into_alert(&site, &site);
        assert_eq!(
            a.message,
            "Website shop certificate expires in 3 days (not after 2026-11-27T10:00:00Z)"
        );
    }

    #[test]
    fn a_certificate_warning_fires_before_the_window_is_covered() {
        let mut s = AlertState::default();
        let soon = at(0) + chrono::TimeDelta::days(3);
        assert_eq!(
            full(&mut s, 0, 1.0, None, Some(soon), false),
            [AlertKind::CertExpiring]
        );
    }

    #[test]
    fn restored_open_alerts_resolve_without_firing_again() {
        let mut s = AlertState::restored(&[(Condition::Degraded, at(0)), (Condition::Down, at(5))]);
        for t in (0..=120).step_by(10) {
            s.observe(at(t).timestamp_micros(), GAP);
        }
        assert_eq!(
            full(&mut s, 130, 1.0, Some(10.0), None, false),
            [AlertKind::Recovered, AlertKind::DegradedRecovered]
        );
    }

    #[test]
    fn every_kind_belongs_to_one_condition_that_opens_and_closes_it() {
        for c in Condition::ALL {
            let [open, close] = c.kinds();
            assert!(open.is_firing() && !close.is_firing());
            assert_eq!((open.condition(), close.condition()), (c, c));
        }
    }

    #[test]
    fn a_domain_warning_fires_once_and_clears_when_the_registration_is_renewed() {
        let mut s = AlertState::default();
        let check = |s: &mut AlertState, secs: i64, expiry: DateTime<Utc>| -> Vec<AlertKind> {
            let t = at(secs);
            let o = Observation {
                at_us: t.timestamp_micros(),
                time: t,
                availability: Some(1.0),
                stats: None,
                cert_expiry: None,
                domain_expiry: Some(expiry),
                maintenance: false,
            };
            let site: Arc<str> = "shop".into();
            s.evaluate(&o, &rule(), GAP)
                .into_iter()
                .map(|t| t.into_alert(&site, &site).kind)
                .collect()
        };
        let soon = at(0) + chrono::TimeDelta::days(12);
        assert_eq!(check(&mut s, 0, soon), [AlertKind::DomainExpiring]);
        assert!(s.domain_warning() && !s.cert_warning());
        assert_eq!(check(&mut s, 10, soon), [], "once");
        let renewed = at(0) + chrono::TimeDelta::days(400);
        assert_eq!(check(&mut s, 20, renewed), [AlertKind::DomainRenewed]);
        assert!(!s.domain_warning());
        let a = Transition::DomainExpiring {
            availability: 1.0,
            time: at(0),
            expiry: soon,
        }
        .into_alert(&"shop".into(), &"https://shop.test/".into());
        assert_eq!(
            a.message,
            format!(
                "Website shop domain registration expires in 12 days (on {})",
                rfc3339_seconds(soon)
            )
        );
        assert_eq!(a.kind.condition(), Condition::Domain);
    }
}
