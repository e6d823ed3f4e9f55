//! The recorder: the single owner of every site's stats windows and alert state, so it needs no
//! locks. It is fed measurements through a bounded channel, evaluates alerts on each one, emits
//! the view reports on their own intervals, and broadcasts everything as [`Event`]s.

use crate::alert::{Alert, AlertState};
use crate::clock::SharedClock;
use crate::config::{AlertingConfig, Config, ViewConfig};
use crate::event::{ErrorReport, Event, SiteReport, StatsReport};
use crate::measurement::Measurement;
use crate::probe::ProbeTarget;
use crate::stats::{SiteWindows, WindowSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Window 0 of every site is the alert window; view `i` is window `i + 1`.
const ALERT_WINDOW: usize = 0;

/// What the recorder is told.
#[derive(Debug)]
pub enum RecorderInput {
    Measurement(Measurement),
    /// A tick was skipped because the site had too many probes running.
    Skipped {
        site: Arc<str>,
    },
    /// The set of sites changed (start-up or reload).
    SetSites(Vec<ProbeTarget>),
}

struct SiteState {
    url: Arc<str>,
    windows: SiteWindows,
    alert: AlertState,
    skipped_ticks: u64,
}

pub struct Recorder {
    alerting: AlertingConfig,
    views: Vec<ViewConfig>,
    /// Sites in config order, for reports.
    order: Vec<Arc<str>>,
    sites: HashMap<Arc<str>, SiteState>,
    /// Every alert of this run.
    history: Vec<Alert>,
    clock: SharedClock,
    events: broadcast::Sender<Arc<Event>>,
}

impl Recorder {
    pub fn new(config: &Config, clock: SharedClock, events: broadcast::Sender<Arc<Event>>) -> Self {
        Self {
            alerting: config.alerting,
            views: config.dashboard.views.clone(),
            order: Vec::new(),
            sites: HashMap::new(),
            history: Vec::new(),
            clock,
            events,
        }
    }

    fn window_specs(&self) -> Vec<WindowSpec> {
        std::iter::once(WindowSpec {
            span: self.alerting.window,
            timings: false,
        })
        .chain(self.views.iter().map(|v| WindowSpec {
            span: v.window,
            timings: true,
        }))
        .collect()
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error: outputs may have gone away at shutdown.
        let _ = self.events.send(Arc::new(event));
    }

    /// Replaces the site set. Sites that keep their name and URL keep their history and alert
    /// state; a changed URL starts a new history.
    pub fn set_sites(&mut self, targets: &[ProbeTarget]) {
        let specs = self.window_specs();
        let mut old = std::mem::take(&mut self.sites);
        self.order = targets.iter().map(|t| Arc::clone(&t.name)).collect();
        for t in targets {
            let state = match old.remove(&t.name) {
                Some(s) if s.url == t.url => s,
                _ => SiteState {
                    url: Arc::clone(&t.url),
                    windows: SiteWindows::new(&specs),
                    alert: AlertState::default(),
                    skipped_ticks: 0,
                },
            };
            self.sites.insert(Arc::clone(&t.name), state);
        }
    }

    /// Records one measurement and fires the alert it causes, if any.
    pub fn record(&mut self, m: Measurement) {
        let Some(site) = self.sites.get_mut(&m.site) else {
            // A probe of a site removed while it was in flight.
            tracing::debug!(site = %m.site, "measurement of a removed site dropped");
            return;
        };
        let now = site.windows.push(&m);
        let availability = site.windows.availability(ALERT_WINDOW);
        let transition = site.alert.evaluate(now, availability, &self.alerting);
        let alert = transition.map(|t| t.into_alert(&m.site, &site.url));
        self.emit(Event::Probe(m));
        if let Some(alert) = alert {
            self.history.push(alert.clone());
            self.emit(Event::Alert(alert));
        }
    }

    pub fn skipped(&mut self, site: &str) {
        if let Some(s) = self.sites.get_mut(site) {
            s.skipped_ticks += 1;
        }
    }

    /// The current stats of view `view` for every site.
    pub fn report(&mut self, view: usize, r#final: bool) -> StatsReport {
        let now = self.clock.now();
        let v = &self.views[view];
        let sites = self
            .order
            .iter()
            .filter_map(|name| {
                let s = self.sites.get_mut(name)?;
                s.windows.advance(now);
                Some(SiteReport {
                    site: Arc::clone(name),
                    url: Arc::clone(&s.url),
                    stats: s.windows.stats(view + 1),
                    down: s.alert.down_since().is_some(),
                    skipped_ticks: s.skipped_ticks,
                })
            })
            .collect();
        StatsReport {
            view: v.name.clone(),
            window_s: v.window.as_secs(),
            every_s: v.every.as_secs(),
            time: now,
            r#final,
            sites,
        }
    }

    /// Every alert of this run, oldest first.
    pub fn history(&self) -> &[Alert] {
        &self.history
    }

    pub fn handle(&mut self, input: RecorderInput) {
        match input {
            RecorderInput::Measurement(m) => self.record(m),
            RecorderInput::Skipped { site } => self.skipped(&site),
            RecorderInput::SetSites(targets) => self.set_sites(&targets),
        }
    }

    /// Reports a problem that does not stop the program.
    pub fn error(&self, source: &'static str, site: Option<Arc<str>>, message: String) {
        self.emit(Event::Error(ErrorReport {
            time: self.clock.now(),
            source,
            site,
            message,
        }));
    }

    /// Runs until every sender of `inputs` is gone, then emits a final report of every view.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<RecorderInput>) -> Self {
        let mut tickers: Vec<Interval> = self
            .views
            .iter()
            .map(|v| {
                let mut t = tokio::time::interval_at(Instant::now() + v.every, v.every);
                t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                t
            })
            .collect();
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input),
                    None => break,
                },
                view = next_tick(&mut tickers) => {
                    let report = self.report(view, false);
                    self.emit(Event::Stats(report));
                }
            }
        }
        for view in 0..self.views.len() {
            let report = self.report(view, true);
            self.emit(Event::Stats(report));
        }
        self
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
