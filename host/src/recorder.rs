//! The recorder: the single owner of every site's stats windows and alert state, so it needs no
//! locks. It is fed measurements through a bounded channel, evaluates alerts on each one, emits
//! the view reports on their own intervals, and broadcasts everything as [`Event`]s.

use crate::alert::{Alert, AlertState};
use crate::clock::SharedClock;
use crate::config::{AlertingConfig, Config, ViewConfig};
use crate::event::{ErrorReport, Event, SiteReport, StatsReport};
use crate::measurement::Measurement;
use crate::plugin::set::PluginSet;
use crate::probe::ProbeTarget;
use crate::stats::{SiteWindows, WindowSpec};
use crate::store::writer::{Record, StoreHandle};
use std::collections::HashMap;
use std::collections::VecDeque;
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
    /// A reloaded config: alerting, views and sites.
    Reconfigure {
        alerting: AlertingConfig,
        views: Vec<ViewConfig>,
        targets: Vec<ProbeTarget>,
    },
}

struct SiteState {
    url: Arc<str>,
    tls_insecure: bool,
    windows: SiteWindows,
    alert: AlertState,
    skipped_ticks: u64,
    /// The latest error messages, newest first, for alert formatters.
    recent_errors: VecDeque<String>,
}

/// Error messages kept per site for alert formatters.
const RECENT_ERRORS: usize = 5;

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
    store: Option<StoreHandle>,
    plugins: Option<Arc<PluginSet>>,
    /// The views changed since the run loop made its tickers.
    views_changed: bool,
}

impl Recorder {
    pub fn new(
        config: &Config,
        clock: SharedClock,
        events: broadcast::Sender<Arc<Event>>,
        store: Option<StoreHandle>,
    ) -> Self {
        Self {
            alerting: config.alerting.clone(),
            views: config.dashboard.views.clone(),
            order: Vec::new(),
            sites: HashMap::new(),
            history: Vec::new(),
            clock,
            events,
            store,
            plugins: None,
            views_changed: false,
        }
    }

    /// Gives the recorder the plugins, for the alert formatter.
    pub fn with_plugins(mut self, plugins: Option<Arc<PluginSet>>) -> Self {
        self.plugins = plugins;
        self
    }

    /// The longest window any site keeps: what a restart must reload.
    pub fn longest_window(&self) -> std::time::Duration {
        self.window_specs()
            .iter()
            .map(|w| w.span)
            .max()
            .unwrap_or_default()
    }

    /// Rebuilds a site's windows and alert state from stored history (oldest first) and its
    /// newest stored alert. Emits nothing and stores nothing.
    pub fn restore(&mut self, site: &str, history: &[Measurement], last_alert: Option<&Alert>) {
        let Some(state) = self.sites.get_mut(site) else {
            return;
        };
        let mut first = None;
        for m in history {
            let at = state.windows.push(m);
            first.get_or_insert(at);
        }
        state.windows.advance(self.clock.now());
        let down_since = last_alert
            .filter(|a| a.kind == crate::alert::AlertKind::Down && a.url == state.url)
            .map(|a| a.time);
        state.alert = AlertState::restored(first, down_since);
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
            let mut state = match old.remove(&t.name) {
                Some(s) if s.url == t.url => s,
                _ => SiteState {
                    url: Arc::clone(&t.url),
                    tls_insecure: false,
                    windows: SiteWindows::new(&specs),
                    alert: AlertState::default(),
                    skipped_ticks: 0,
                    recent_errors: VecDeque::new(),
                },
            };
            state.tls_insecure = t.config.tls_insecure;
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
        if let Some(e) = &m.error {
            site.recent_errors
                .push_front(format!("{}: {}", e.kind, e.message));
            site.recent_errors.truncate(RECENT_ERRORS);
        }
        let availability = site.windows.availability(ALERT_WINDOW);
        let transition = site.alert.evaluate(now, availability, &self.alerting);
        let alert = transition.map(|t| t.into_alert(&m.site, &site.url));
        let recent_errors: Vec<String> = match &alert {
            Some(_) => site.recent_errors.iter().cloned().collect(),
            None => Vec::new(),
        };
        if let Some(store) = &self.store {
            store.send(Record::Measurement(m.clone()));
        }
        self.emit(Event::Probe(m));
        if let Some(alert) = alert {
            self.history.push(alert.clone());
            let delivery = AlertDelivery {
                events: self.events.clone(),
                store: self.store.clone(),
                clock: Arc::clone(&self.clock),
            };
            match (&self.alerting.formatter, &self.plugins) {
                (Some(formatter), Some(plugins)) => {
                    // Formatting may take up to the plugin's time limit: do it off the recorder.
                    let (formatter, plugins) = (formatter.clone(), Arc::clone(plugins));
                    tokio::spawn(async move {
                        let alert = delivery
                            .render(alert, &formatter, &plugins, recent_errors)
                            .await;
                        delivery.deliver(alert);
                    });
                }
                _ => delivery.deliver(alert),
            }
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
                    tls_insecure: s.tls_insecure,
                })
            })
            .collect();
        StatsReport {
            view: v.name.clone(),
            window_s: v.window.as_secs(),
            every_s: v.every.as_secs_f64(),
            time: now,
            r#final,
            threshold: self.alerting.threshold,
            sites,
        }
    }

    /// Samples held in all the windows of all sites: the recorder's memory, in samples.
    pub fn samples_held(&self) -> usize {
        self.sites.values().map(|s| s.windows.len()).sum()
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
            RecorderInput::Reconfigure {
                alerting,
                views,
                targets,
            } => self.reconfigure(alerting, views, &targets),
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
        let respan = views != self.views || alerting.window != self.alerting.window;
        self.views_changed |= views != self.views;
        self.alerting = alerting;
        self.views = views;
        if respan {
            let specs = self.window_specs();
            for s in self.sites.values_mut() {
                s.windows.respan(&specs);
            }
        }
        self.set_sites(targets);
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
        let mut tickers = self.tickers();
        loop {
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

/// Stores and broadcasts an alert, after rendering it with the formatter plugin if there is one.
struct AlertDelivery {
    events: broadcast::Sender<Arc<Event>>,
    store: Option<StoreHandle>,
    clock: SharedClock,
}

impl AlertDelivery {
    fn deliver(&self, alert: Alert) {
        if let Some(store) = &self.store {
            store.send(Record::Alert(alert.clone()));
        }
        let _ = self.events.send(Arc::new(Event::Alert(alert)));
    }

    /// Renders `alert` with the formatter; on failure keeps the built-in message and reports why.
    async fn render(
        &self,
        mut alert: Alert,
        formatter: &crate::config::PluginUse,
        plugins: &PluginSet,
        recent_errors: Vec<String>,
    ) -> Alert {
        let result = match plugins.get(&formatter.plugin) {
            None => Err(plugins.why_missing(&formatter.plugin)),
            Some(plugin) => {
                let input = crate::plugin::bindings::types::Alert {
                    kind: match alert.kind {
                        crate::alert::AlertKind::Down => {
                            crate::plugin::bindings::types::AlertKind::Down
                        }
                        crate::alert::AlertKind::Recovered => {
                            crate::plugin::bindings::types::AlertKind::Recovered
                        }
                    },
                    site: alert.site.to_string(),
                    url: alert.url.to_string(),
                    availability: alert.availability,
                    time: crate::clock::rfc3339_seconds(alert.time),
                    down_since: alert.down_since.map(crate::clock::rfc3339_seconds),
                    down_for_seconds: alert.down_for.map(|d| d.as_secs_f64()),
                    recent_errors,
                    message: alert.message.clone(),
                };
                match plugins.host() {
                    Err(e) => Err(e.to_string()),
                    Ok(host) => match host
                        .format(&plugin, formatter.limits, &formatter.config, &input)
                        .await
                    {
                        Ok(Ok(text)) => Ok(text),
                        Ok(Err(message)) => Err(crate::plugin::sanitize_text(&message, 300)),
                        Err(failure) => Err(failure.0),
                    },
                }
            }
        };
        match result {
            // Rendered text may span lines (Slack JSON, Markdown) but carries no control codes.
            Ok(text) => alert.rendered = Some(sanitize_rendered(&text)),
            Err(reason) => {
                let _ = self.events.send(Arc::new(Event::Error(ErrorReport {
                    time: self.clock.now(),
                    source: "formatter",
                    site: Some(Arc::clone(&alert.site)),
                    message: format!(
                        "formatter {} failed, the built-in message is used: {reason}",
                        formatter.plugin
                    ),
                })));
            }
        }
        alert
    }
}

/// Keeps newlines and tabs of a rendered alert, caps it at 64 KiB, and drops other control
/// characters (no terminal escapes).
fn sanitize_rendered(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(64 * 1024)
        .collect()
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
