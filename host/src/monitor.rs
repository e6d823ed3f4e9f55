//! Wires the pipeline together: config → scheduler → prober → recorder → events → outputs and
//! store; applies config and plugin changes while running; and takes it all down in order on
//! shutdown so the final stats reach the output and every measurement reaches the store.

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::event::{ErrorReport, Event, ReloadReport, ReloadResult, ReloadWhat, Started};
use crate::output::{self, OutputFormat};
use crate::plugin::set::{PluginSet, Replaced};
use crate::probe::{ProbeTarget, Prober, ProberSetupError};
use crate::recorder::{Recorder, RecorderInput};
use crate::scheduler::{Scheduler, SitesDiff};
use crate::store::writer::{self, Record, StoreHandle, WriterOptions};
use crate::store::{Store, StoreError, influx};
use crate::watch::{self, Change};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Measurements waiting for the recorder. When it is full, probes wait to hand theirs over,
/// which holds their in-flight slot, so an overloaded recorder shows up as skipped ticks.
const RECORDER_QUEUE: usize = 8192;
/// Events waiting for a slow output before it is told it skipped some.
const EVENT_QUEUE: usize = 65_536;
/// How often the store writer commits: measurements are durable within this.
const STORE_FLUSH: Duration = Duration::from_millis(200);
/// Past alerts shown at start-up.
const PAST_ALERTS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot start probing")]
    Prober(#[from] ProberSetupError),
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Influx(String),
}

/// How to run, besides the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub format: OutputFormat,
    pub data_dir: PathBuf,
    /// The config file, watched for changes.
    pub config_path: PathBuf,
}

/// The running InfluxDB sender and how to stop it.
struct InfluxTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl InfluxTask {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Everything a running monitor owns.
struct Monitor {
    config: Config,
    options: RunOptions,
    clock: SharedClock,
    events: broadcast::Sender<Arc<Event>>,
    store: Store,
    store_handle: StoreHandle,
    plugins: Arc<PluginSet>,
    scheduler: Scheduler,
    inputs: mpsc::Sender<RecorderInput>,
    prober: Prober,
    influx: Option<InfluxTask>,
}

/// Runs the monitor until `shutdown` resolves, writing events to `out`.
pub async fn run(
    config: Config,
    options: RunOptions,
    out: Box<dyn Write + Send>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MonitorError> {
    let prober = Prober::new(Arc::clone(&clock))?;
    let store_dir = options.data_dir.clone();
    let (store, opened) = tokio::task::spawn_blocking(move || Store::open(&store_dir))
        .await
        .expect("opening the store does not panic")?;
    let influx_token = match &config.storage.influxdb {
        Some(i) => i.token().map_err(MonitorError::Influx)?,
        None => None,
    };

    let (events, _) = broadcast::channel::<Arc<Event>>(EVENT_QUEUE);
    let output = output::spawn(options.format, events.subscribe(), out);
    let report = |source: &'static str, message: String| {
        let _ = events.send(Arc::new(Event::Error(ErrorReport {
            time: clock.now(),
            source,
            site: None,
            message,
        })));
    };
    if let Some(aside) = &opened.set_aside {
        report(
            "storage",
            format!(
                "the store {} could not be read; it was set aside as {} and a fresh store started",
                store.path().display(),
                aside.display()
            ),
        );
    }

    let (store_handle, store_writer) = writer::spawn(
        store.clone(),
        writer_options(&config),
        Arc::clone(&clock),
        events.clone(),
    );
    let plugins = Arc::new(PluginSet::new(Some(options.data_dir.join("plugin-cache"))));
    let prepared = plugins.prepare(&config).await;
    for e in &prepared.errors {
        report("plugin", crate::error_chain(e));
    }
    plugins.commit(prepared);

    let targets = targets(&config, &prober, &events, &clock);
    let mut recorder = Recorder::new(
        &config,
        Arc::clone(&clock),
        events.clone(),
        Some(store_handle.clone()),
    )
    .with_plugins(Some(Arc::clone(&plugins)));
    recorder.set_sites(&targets);
    let since =
        clock.now() - chrono::TimeDelta::from_std(recorder.longest_window()).unwrap_or_default();
    let restore = |target: &ProbeTarget, ms: &[_], alert: Option<&_>| {
        recorder.restore(&target.name, ms, alert);
    };
    if let Err(e) = load_history(&store, &targets, since, restore).await {
        report(
            "storage",
            format!(
                "cannot reload history from {}: {}; starting with empty windows",
                store.path().display(),
                crate::error_chain(&e)
            ),
        );
    }
    let _ = events.send(Arc::new(Event::Started(Started {
        time: clock.now(),
        config: options.config_path.display().to_string(),
        sites: config.sites.len(),
        storage: describe_storage(&store, &config),
        past_alerts: past_alerts(&store).await,
    })));

    let (inputs, inputs_rx) = mpsc::channel(RECORDER_QUEUE);
    let recorder = tokio::spawn(recorder.run(inputs_rx));
    let mut scheduler = Scheduler::new(prober.clone(), Some(Arc::clone(&plugins)), inputs.clone());
    scheduler.apply(&targets);
    tracing::info!(sites = targets.len(), "monitor started");

    let mut monitor = Monitor {
        influx: None,
        config,
        options,
        clock,
        events,
        store,
        store_handle,
        plugins,
        scheduler,
        inputs,
        prober,
    };
    monitor.influx = monitor.start_influx(influx_token);
    let mut watcher = monitor.watch();

    tokio::pin!(shutdown);
    loop {
        let change = async {
            match watcher.as_mut() {
                Some(w) => w.changes.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            Some(change) = change => {
                let plugin_dir = monitor.config.plugins.dir.clone();
                if let Some(r) = monitor.apply(change).await {
                    let _ = monitor.events.send(Arc::new(Event::Reload(r)));
                }
                if monitor.config.plugins.dir != plugin_dir {
                    watcher = monitor.watch();
                }
            }
        }
    }

    tracing::info!("shutting down");
    let Monitor {
        scheduler,
        inputs,
        store_handle,
        influx,
        events,
        ..
    } = monitor;
    drop(watcher);
    scheduler.stop().await;
    // The recorder stops when its last input sender is gone, after a final report of each view.
    drop(inputs);
    drop(recorder.await);
    // With the recorder gone, the writer's channel closes; it flushes and stops.
    drop(store_handle);
    let _ = tokio::task::spawn_blocking(move || store_writer.join()).await;
    if let Some(i) = influx {
        i.stop().await;
    }
    drop(events);
    let _ = tokio::task::spawn_blocking(move || output.join()).await;
    Ok(())
}

/// The probe targets of a config, with their own TLS clients where they need one. A site whose CA
/// file cannot be read any more is probed with the system's trust, and the reason reported.
fn targets(
    config: &Config,
    prober: &Prober,
    events: &broadcast::Sender<Arc<Event>>,
    clock: &SharedClock,
) -> Vec<ProbeTarget> {
    config
        .sites
        .iter()
        .cloned()
        .map(|site| {
            let mut t = ProbeTarget::new(site);
            if let Err(e) = prober.prepare(&mut t) {
                let _ = events.send(Arc::new(Event::Error(ErrorReport {
                    time: clock.now(),
                    source: "tls",
                    site: Some(Arc::clone(&t.name)),
                    message: crate::error_chain(&e),
                })));
            }
            t
        })
        .collect()
}

fn writer_options(config: &Config) -> WriterOptions {
    WriterOptions {
        flush_every: STORE_FLUSH,
        retention: config.storage.retention,
        outbox: config.storage.influxdb.is_some(),
    }
}

fn describe_storage(store: &Store, config: &Config) -> String {
    match &config.storage.influxdb {
        Some(i) => format!("{} + InfluxDB {}", store.path().display(), i.url),
        None => store.path().display().to_string(),
    }
}

async fn past_alerts(store: &Store) -> Vec<crate::alert::Alert> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let conn = store.connect().ok()?;
        let mut alerts = store
            .alerts_since(&conn, chrono::DateTime::from_timestamp(0, 0)?)
            .ok()?;
        alerts.truncate(PAST_ALERTS);
        alerts.reverse();
        Some(alerts)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

impl Monitor {
    fn error(&self, source: &'static str, message: String) {
        let _ = self.events.send(Arc::new(Event::Error(ErrorReport {
            time: self.clock.now(),
            source,
            site: None,
            message,
        })));
    }

    fn watch(&self) -> Option<watch::Watcher> {
        match watch::watch(&self.options.config_path, Some(&self.config.plugins.dir)) {
            Ok(w) => Some(w),
            Err(e) => {
                self.error(
                    "reload",
                    format!("changes will not be picked up: {}", crate::error_chain(&e)),
                );
                None
            }
        }
    }

    fn start_influx(&self, token: Option<String>) -> Option<InfluxTask> {
        let influx_config = self.config.storage.influxdb.clone()?;
        let stop = CancellationToken::new();
        let sender = influx::Sender {
            store: self.store.clone(),
            config: influx_config,
            token,
            client: self.prober.plain_client(),
            clock: Arc::clone(&self.clock),
            events: self.events.clone(),
        };
        let task = tokio::spawn(sender.run(stop.clone()));
        Some(InfluxTask { stop, task })
    }

    fn reload(
        &self,
        what: ReloadWhat,
        result: ReloadResult,
        detail: String,
    ) -> Option<ReloadReport> {
        Some(ReloadReport {
            time: self.clock.now(),
            what,
            result,
            detail,
        })
    }

    /// Applies one change; returns what to report (nothing for a change that changes nothing).
    async fn apply(&mut self, change: Change) -> Option<ReloadReport> {
        match change {
            Change::Config => self.reload_config().await,
            Change::Plugin(path) => self.reload_plugin(&path).await,
        }
    }

    async fn reload_config(&mut self) -> Option<ReloadReport> {
        let rejected =
            |detail: String| self.reload(ReloadWhat::Config, ReloadResult::Rejected, detail);
        let new = match load_settled(&self.options.config_path).await {
            Ok(c) => c,
            Err(e) => {
                return rejected(format!(
                    "{}; the last good config keeps running",
                    crate::error_chain(&e)
                ));
            }
        };
        if new == self.config {
            return None;
        }
        let token = match &new.storage.influxdb {
            Some(i) => match i.token() {
                Ok(t) => t,
                Err(e) => return rejected(format!("{e}; the last good config keeps running")),
            },
            None => None,
        };
        let prepared = self.plugins.prepare(&new).await;
        if !prepared.errors.is_empty() {
            let why: Vec<String> = prepared
                .errors
                .iter()
                .map(|e| crate::error_chain(e))
                .collect();
            return rejected(format!(
                "{}; the last good config keeps running",
                why.join("; ")
            ));
        }
        self.plugins.commit(prepared);

        let targets = targets(&new, &self.prober, &self.events, &self.clock);
        let diff = self.scheduler.apply(&targets);
        let _ = self
            .inputs
            .send(RecorderInput::Reconfigure {
                alerting: new.alerting.clone(),
                views: new.dashboard.views.clone(),
                targets,
            })
            .await;
        let mut changed = Vec::new();
        if new.alerting != self.config.alerting {
            changed.push("alerting");
        }
        if new.dashboard != self.config.dashboard {
            changed.push("dashboard");
        }
        if new.plugins != self.config.plugins {
            changed.push("plugins");
        }
        if new.storage != self.config.storage {
            changed.push("storage");
            self.store_handle
                .send(Record::Configure(writer_options(&new)));
            if new.storage.influxdb != self.config.storage.influxdb {
                if let Some(old) = self.influx.take() {
                    old.stop().await;
                }
                self.config.storage = new.storage.clone();
                self.influx = self.start_influx(token);
            }
        }
        self.config = new;
        self.reload(
            ReloadWhat::Config,
            ReloadResult::Applied,
            describe_diff(&diff, &changed),
        )
    }

    async fn reload_plugin(&mut self, path: &Path) -> Option<ReloadReport> {
        let name = path.file_stem()?.to_string_lossy().into_owned();
        if !self.config.plugin_uses().any(|(_, _, u)| u.plugin == name) || !path.is_file() {
            return None;
        }
        match self.plugins.replace(&name, path).await {
            Ok(Replaced::Unchanged) => None,
            Ok(Replaced::Swapped { hash }) => self.reload(
                ReloadWhat::Plugin,
                ReloadResult::Applied,
                format!("{name} replaced by the build with sha256 {}", &hash[..16]),
            ),
            Err(e) => self.reload(
                ReloadWhat::Plugin,
                ReloadResult::Rejected,
                format!(
                    "{}; the previous build of {name} keeps serving",
                    crate::error_chain(&e)
                ),
            ),
        }
    }
}

/// Loads the config, waiting briefly if it is missing (an editor mid-save).
async fn load_settled(path: &Path) -> Result<Config, ConfigError> {
    let mut tries = 0;
    loop {
        match Config::load(path) {
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && tries < 10 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn describe_diff(diff: &SitesDiff, sections: &[&str]) -> String {
    let mut parts = Vec::new();
    for (label, names) in [
        ("added", &diff.added),
        ("removed", &diff.removed),
        ("changed", &diff.changed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{label} {}", names.join(", ")));
        }
    }
    if !sections.is_empty() {
        parts.push(format!("{} settings changed", sections.join(", ")));
    }
    if parts.is_empty() {
        "no effective change".into()
    } else {
        parts.join("; ")
    }
}

/// Loads each site's measurements since `since` and its newest alert, and hands them to `each`
/// one site at a time: only a few sites' history is in memory at once (an hour of 10,000 sites
/// is 3.6 million measurements). Returns how many measurements were loaded.
pub async fn load_history(
    store: &Store,
    targets: &[ProbeTarget],
    since: chrono::DateTime<chrono::Utc>,
    mut each: impl FnMut(&ProbeTarget, &[crate::measurement::Measurement], Option<&crate::alert::Alert>),
) -> Result<usize, StoreError> {
    let store = store.clone();
    let targets = targets.to_vec();
    let (tx, mut rx) = mpsc::channel(8);
    let loader = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let conn = store.connect()?;
        let mut last = store.last_alerts(&conn)?;
        for t in targets {
            let ms = store.measurements(&conn, &t.name, &t.url, since)?;
            let alert = last.remove(&(t.name.to_string(), t.url.to_string()));
            if tx.blocking_send((t, ms, alert)).is_err() {
                break;
            }
        }
        Ok(())
    });
    let mut loaded = 0;
    while let Some((target, ms, alert)) = rx.recv().await {
        loaded += ms.len();
        each(&target, &ms, alert.as_ref());
    }
    loader.await.expect("loading history does not panic")?;
    Ok(loaded)
}
