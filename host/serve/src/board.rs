//! What the server shows, kept from the events it is given: the watched sites in config order,
//! each one's last probes and alert state, and each view's latest report. It never computes a
//! statistic itself: availability and the rest come from the recorder's reports.

use crate::event::{Event, StatsReport};
use crate::measurement::Measurement;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

/// Probes kept per site (the status page's bar and sparkline, the API's last probes).
pub(crate) const PROBES_KEPT: usize = 30;

#[derive(Debug, Clone)]
pub struct SiteState {
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// From the config; the first one groups the site on the status page.
    pub tags: Arc<[String]>,
    pub down: bool,
    /// When the current outage began, when known.
    pub down_since: Option<DateTime<Utc>>,
    /// Its down alert was held, and why (`parent down`).
    pub held: Option<String>,
    /// Up but over its latency objective (never while down).
    pub degraded: bool,
    /// The maintenance window open now.
    pub maintenance: Option<crate::maintenance::Occurrence>,
    /// The earliest `not after` of the newest served chain.
    pub cert_expiry: Option<DateTime<Utc>>,
    /// A certificate warning is open.
    pub cert_warning: bool,
    /// A domain registration warning is open.
    pub domain_warning: bool,
    /// Flapping: its down and recovered alerts are held until it settles.
    pub flapping: bool,
    /// Its objective and error budget, from the newest live report.
    pub slo: Option<crate::event::SloStatus>,
    /// Paused (`paused: true`): not probed.
    pub paused: bool,
    /// Newest last.
    pub probes: VecDeque<Measurement>,
}

#[derive(Debug, Default)]
struct State {
    sites: Vec<SiteState>,
    index: HashMap<Arc<str>, usize>,
    views: Vec<String>,
    /// The latest live report of each view.
    reports: HashMap<String, Arc<StatsReport>>,
    /// The open `monitor_offline` alert's message: sitewatch cannot reach the network.
    offline: Option<String>,
}

impl SiteState {
    /// The state in one word for the page and the API: `paused`, `down`, `degraded`, `maintenance`, `up`,
    /// or `unknown` before the first probe. Down wins over maintenance (an alert open when the
    /// window started stays open), maintenance over degraded.
    pub fn status(&self) -> &'static str {
        if self.paused {
            "paused"
        } else if self.down {
            "down"
        } else if self.maintenance.is_some() {
            "maintenance"
        } else if self.degraded {
            "degraded"
        } else if self.probes.is_empty() {
            "unknown"
        } else {
            "up"
        }
    }
}

/// The server's picture of the monitor, fed by [`Board::observe`].
#[derive(Debug, Default)]
pub struct Board {
    state: RwLock<State>,
}

impl Board {
    /// Seeds the alert states from the store's newest alert of each site.
    pub(crate) fn seed_down(&self, down_since: HashMap<String, DateTime<Utc>>) {
        let mut s = self.state.write().expect("board");
        for site in &mut s.sites {
            if let Some(t) = down_since.get(&*site.site) {
                site.down = true;
                site.down_since = Some(*t);
            }
        }
    }

    pub fn observe(&self, event: &Event) {
        match event {
            Event::Watching(w) => {
                let mut s = self.state.write().expect("board");
                let old: HashMap<Arc<str>, SiteState> = std::mem::take(&mut s.sites)
                    .into_iter()
                    .map(|x| (Arc::clone(&x.site), x))
                    .collect();
                s.sites = w
                    .sites
                    .iter()
                    .map(|ws| {
                        let mut site = old
                            .get(&ws.site)
                            .filter(|o| o.url == ws.url)
                            .cloned()
                            .unwrap_or_else(|| SiteState {
                                site: Arc::clone(&ws.site),
                                url: Arc::clone(&ws.url),
                                tags: Arc::clone(&ws.tags),
                                down: false,
                                down_since: None,
                                held: None,
                                degraded: false,
                                maintenance: None,
                                cert_expiry: None,
                                cert_warning: false,
                                domain_warning: false,
                                flapping: false,
                                slo: None,
                                paused: false,
                                probes: VecDeque::new(),
                            });
                        site.down = ws.down;
                        site.paused = ws.paused;
                        site.tags = Arc::clone(&ws.tags);
                        if !ws.down {
                            site.down_since = None;
                        }
                        site
                    })
                    .collect();
                s.index = s
                    .sites
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (Arc::clone(&x.site), i))
                    .collect();
                s.views = w.views.clone();
                let views = s.views.clone();
                s.reports.retain(|v, _| views.contains(v));
            }
            Event::Probe(m) => {
                let mut s = self.state.write().expect("board");
                if let Some(&i) = s.index.get(&m.site) {
                    let site = &mut s.sites[i];
                    if site.url == m.url {
                        if let Some(e) = m.tls.as_ref().and_then(|t| t.earliest_expiry()) {
                            site.cert_expiry = Some(e);
                        }
                        site.probes.push_back(m.clone());
                        if site.probes.len() > PROBES_KEPT {
                            site.probes.pop_front();
                        }
                    }
                }
            }
            Event::Alert(a) if a.kind.condition() == crate::alert::Condition::Monitor => {
                let mut s = self.state.write().expect("board");
                s.offline = a.kind.is_firing().then(|| a.message.clone());
            }
            Event::Alert(a) => {
                let mut s = self.state.write().expect("board");
                if let Some(&i) = s.index.get(&a.site) {
                    let site = &mut s.sites[i];
                    let firing = a.kind.is_firing();
                    match a.kind.condition() {
                        crate::alert::Condition::Down => {
                            site.down = firing;
                            // A down alert that was held and sent later keeps its start.
                            if !(firing && site.held.is_some() && a.held.is_none()) {
                                site.down_since = firing.then_some(a.time);
                            }
                            site.held = a.held.clone().filter(|_| firing);
                        }
                        crate::alert::Condition::Degraded => site.degraded = firing,
                        crate::alert::Condition::Cert => site.cert_warning = firing,
                        crate::alert::Condition::Domain => site.domain_warning = firing,
                        crate::alert::Condition::Flapping => site.flapping = firing,
                        crate::alert::Condition::Monitor => {}
                        // The budget and the open burn-rate alerts come with each report.
                        crate::alert::Condition::Slo => {}
                    }
                }
            }
            Event::Maintenance(m) => {
                let mut s = self.state.write().expect("board");
                if let Some(&i) = s.index.get(&m.site) {
                    s.sites[i].maintenance = m.started.then(|| m.window.clone());
                }
            }
            Event::Stats(r) if r.every_s.is_some() && !r.r#final => {
                let mut s = self.state.write().expect("board");
                for sr in &r.sites {
                    if let Some(&i) = s.index.get(&sr.site) {
                        let site = &mut s.sites[i];
                        site.degraded = sr.degraded;
                        site.slo = sr.slo;
                        site.maintenance = sr.maintenance.clone();
                        site.cert_warning = sr.cert_warning;
                        site.cert_expiry = sr.cert_expiry.or(site.cert_expiry);
                        if site.down != sr.down {
                            site.down = sr.down;
                            if !sr.down {
                                site.down_since = None;
                            }
                        }
                    }
                }
                s.reports.insert(r.view.clone(), Arc::new(r.clone()));
            }
            _ => {}
        }
    }

    /// Runs `f` on the sites in config order, without copying them (the status page of 10,000
    /// sites would otherwise clone 300,000 measurements).
    pub(crate) fn with_sites<R>(&self, f: impl FnOnce(&[SiteState]) -> R) -> R {
        f(&self.state.read().expect("board").sites)
    }

    /// The sites in config order.
    pub fn sites(&self) -> Vec<SiteState> {
        self.state.read().expect("board").sites.clone()
    }

    pub fn site(&self, name: &str) -> Option<SiteState> {
        let s = self.state.read().expect("board");
        s.index.get(name).map(|&i| s.sites[i].clone())
    }

    /// Why sitewatch is offline (its `monitor_offline` message), while it is.
    pub fn offline(&self) -> Option<String> {
        self.state.read().expect("board").offline.clone()
    }

    /// The view names, in config order.
    pub fn views(&self) -> Vec<String> {
        self.state.read().expect("board").views.clone()
    }

    /// Each view's latest report, in view order (views without one yet are left out).
    pub fn reports(&self) -> Vec<Arc<StatsReport>> {
        let s = self.state.read().expect("board");
        s.views
            .iter()
            .filter_map(|v| s.reports.get(v).cloned())
            .collect()
    }
}
