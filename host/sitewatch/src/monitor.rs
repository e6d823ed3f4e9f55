//! Wires the pipeline together: config → scheduler → prober → recorder → events → outputs and
//! store; applies config and plugin changes while running; and takes it all down in order on
//! shutdown so the final stats reach the output and every measurement reaches the store.

use crate::clock::SharedClock;
use crate::config::diff::{ConfigDiff, SitesDiff};
use crate::config::{Config, ConfigError, MissingEnv};
use crate::event::{Bus, Event, ReloadReport, ReloadResult, ReloadWhat, Started};
use crate::output::{self, OutputFormat};
use crate::plugin::set::{PluginSet, Replaced};
use crate::probe::{Prober, ProberSetupError};
use crate::recorder::{Recorder, RecorderInput};
use crate::scheduler::Scheduler;
use crate::skips::Skips;
use crate::store::writer::{self, Record, StoreHandle, WriterOptions};
use crate::store::{Store, StoreError, influx};
use crate::target::ProbeTarget;
use crate::watch::{self, Change};
use std::any::Any;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Measurements waiting for the recorder. When it is full, probes wait to hand theirs over.
const RECORDER_QUEUE: usize = 8192;
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
    #[error("cannot export to InfluxDB")]
    Influx(#[from] MissingEnv),
    /// A part of sitewatch panicked: a bug. Everything else was still shut down in order.
    #[error("the {task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
    /// Records could not be stored before the end (a full disk, for longer than the grace).
    #[error(transparent)]
    Unsaved(#[from] writer::Unsaved),
}

/// How to run, besides the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub format: OutputFormat,
    pub data_dir: PathBuf,
    /// Where compiled plugins are kept across restarts (none: compile on every start).
    pub plugin_cache: Option<PathBuf>,
    /// The config file, watched for changes.
    pub config_path: PathBuf,
    /// `--listen`: serve here (overrides `server.listen`).
    pub listen: Option<std::net::SocketAddr>,
    /// What the command line says about this node, applied to every reload.
    pub overrides: crate::config::cluster::Overrides,
}

/// The running InfluxDB sender and how to stop it.
struct InfluxTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl InfluxTask {
    async fn stop(self) -> Result<(), MonitorError> {
        self.stop.cancel();
        joined("InfluxDB sender", self.task.await)
    }
}

/// Everything a running monitor owns.
struct Monitor {
    config: Config,
    options: RunOptions,
    clock: SharedClock,
    bus: Bus,
    store: Store,
    store_handle: StoreHandle,
    plugins: Arc<PluginSet>,
    scheduler: Scheduler,
    inputs: mpsc::Sender<RecorderInput>,
    prober: Prober,
    influx: Option<InfluxTask>,
    notifiers: crate::notify::Notifiers,
    server: Option<crate::serve::Server>,
    /// The running targets, in config order.
    targets: Vec<ProbeTarget>,
    /// The newest configuration generation (0 at start, one more per applied reload).
    generation: u64,
    /// This node's cluster side, when it is one.
    cluster: Option<crate::cluster::Cluster>,
    /// Where this node runs, as the output writes it into events (a reload may change it).
    location: Arc<arc_swap::ArcSwap<String>>,
    /// The task that probes the `host:port` canaries, when there are any.
    canaries: Option<crate::canary::CanaryTask>,
}

/// Runs the monitor until `shutdown` resolves, writing events to `out`.
pub async fn run(
    config: Config,
    options: RunOptions,
    out: Box<dyn Write + Send>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MonitorError> {
    let prober = Prober::with_source(Arc::clone(&clock), config.probing.source_address)?;
    prober.configure_rdap(&config.rdap);
    let store_dir = options.data_dir.clone();
    // Held until the monitor returns: one sitewatch per data directory.
    let _lock = crate::store::DataDirLock::acquire(&options.data_dir)?;
    let (store, opened) = joined(
        "store opener",
        tokio::task::spawn_blocking(move || Store::open(&store_dir)).await,
    )??;
    let influx_token = match &config.storage.influxdb {
        Some(i) => i.token()?,
        None => None,
    };

    let bus = Bus::new(Arc::clone(&clock));
    // The live display's `q` stops the monitor as a signal does.
    let quit = CancellationToken::new();
    let location = Arc::new(arc_swap::ArcSwap::from_pointee(config.location.clone()));
    let output = output::spawn(
        options.format,
        bus.subscribe(),
        out,
        quit.clone(),
        Arc::clone(&location),
    );
    if let Some(aside) = &opened.set_aside {
        bus.error(
            "storage",
            None,
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
        bus.clone(),
    );
    let plugins = Arc::new(PluginSet::new(options.plugin_cache.clone()));
    let prepared = plugins.prepare(&config).await;
    for e in &prepared.errors {
        bus.error("plugin", None, crate::error_chain(e));
    }
    plugins.add(prepared);

    let targets = new_targets(&config, &prober, &bus, 0, None, &[]);
    let mut recorder = Recorder::new(
        &config,
        Arc::clone(&clock),
        bus.clone(),
        Some(store_handle.clone()),
    )
    .with_plugins(Some(Arc::clone(&plugins)));
    recorder.set_sites(&targets);
    let since =
        clock.now() - chrono::TimeDelta::from_std(recorder.longest_window()).unwrap_or_default();
    let restore = |target: &ProbeTarget, ms: &[_], alerts: &[_], slo: &SloCounts| {
        recorder.restore(&target.name, ms, alerts);
        recorder.seed_slo(&target.name, &slo.hours, &slo.days);
    };
    if let Err(e) = load_history(&store, &targets, since, restore).await {
        bus.error(
            "storage",
            None,
            format!(
                "cannot reload history from {}: {}; starting with empty windows",
                store.path().display(),
                crate::error_chain(&e)
            ),
        );
    }
    let server = start_server(&config, &options, &store, &bus, prober.push_board()).await;
    let push_sites = config
        .sites
        .iter()
        .filter(|s| matches!(s.kind, crate::config::kind::Kind::Push(_)))
        .count();
    if push_sites > 0 && server.is_none() {
        bus.error(
            "push",
            None,
            format!(
                "{push_sites} push site(s) wait for pings at /push/<token>, but the server is not running: give --listen or server.listen"
            ),
        );
    }
    bus.send(Event::Started(Started {
        time: clock.now(),
        config: options.config_path.display().to_string(),
        sites: config.sites.len(),
        storage: describe_storage(&store, &config),
        past_alerts: past_alerts(&store).await,
    }));

    let skips = Arc::new(Skips::new(max_in_flight(&config)));
    let (inputs, inputs_rx) = mpsc::channel(RECORDER_QUEUE);
    let (cluster, side) = match &config.cluster {
        Some(c) => {
            let (cluster, side) = crate::cluster::Cluster::start(
                &config,
                c,
                store.clone(),
                store_handle.clone(),
                inputs.clone(),
                bus.clone(),
                recorder.longest_window(),
            )
            .await;
            (Some(cluster), Some(side))
        }
        None => {
            // No cluster any more: what a leader's notifications waited for will not come.
            release_cluster_waits(&store, &bus).await;
            (None, None)
        }
    };
    let recorder = tokio::spawn(
        recorder
            .with_skips(Arc::clone(&skips))
            .with_cluster(side)
            .run(inputs_rx),
    );
    let mut scheduler = Scheduler::new(
        prober.clone(),
        Some(Arc::clone(&plugins)),
        inputs.clone(),
        skips,
        bus.clone(),
    )
    .with_share(cluster.as_ref().map(crate::cluster::Cluster::share));
    scheduler.apply(&SitesDiff::default(), &targets);
    if let Some(s) = &server {
        s.set_in_flight(scheduler.in_flight());
    }
    tracing::info!(sites = targets.len(), "monitor started");

    let notifiers = crate::notify::Notifiers::start(
        store.clone(),
        prober.service_client(),
        bus.clone(),
        &config,
    );
    let mut monitor = Monitor {
        cluster,
        influx: None,
        notifiers,
        server,
        config,
        options,
        clock,
        bus,
        store,
        store_handle,
        plugins,
        scheduler,
        inputs,
        prober,
        targets,
        generation: 0,
        location,
        canaries: None,
    };
    monitor.canaries = crate::canary::CanaryTask::start(
        monitor.prober.clone(),
        &monitor.config.canaries,
        monitor.inputs.clone(),
    );
    monitor.influx = monitor.start_influx(influx_token);
    let mut watcher = monitor.watch();
    // An edit made between reading the config (before this function) and arming the watch
    // raised no event: compare the files with what was loaded and apply the difference.
    for change in [Change::Config, Change::PluginDir] {
        if let Some(r) = monitor.apply(change).await {
            monitor.bus.send(Event::Reload(r));
        }
    }

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
            _ = quit.cancelled() => break,
            Some(change) = change => {
                let plugin_dir = monitor.config.plugins.dir.clone();
                let moved = matches!(change, Change::Config | Change::PluginDir);
                if let Some(r) = monitor.apply(change).await {
                    monitor.bus.send(Event::Reload(r));
                }
                if monitor.config.plugins.dir != plugin_dir {
                    watcher = monitor.watch();
                } else if moved && let Some(w) = watcher.as_mut() {
                    // A link on the way may have been retargeted: follow the links again.
                    w.rearm();
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
        notifiers,
        server,
        bus,
        cluster,
        canaries,
        ..
    } = monitor;
    drop(watcher);
    if let Some(c) = canaries {
        c.stop().await;
    }
    scheduler.stop().await;
    // The cluster side holds senders of the recorder's inputs: it stops first.
    if let Some(c) = cluster {
        c.stop().await;
    }
    // Every part is stopped in order and waited for explicitly; a panic of one is kept and
    // reported once the others are down, so what was recorded still reaches the store.
    let mut outcome = Ok(());
    let mut keep = |r: Result<(), MonitorError>| {
        if outcome.is_ok() {
            outcome = r;
        }
    };
    // The recorder stops when its last input sender is gone, after the ordered alert stream
    // has drained and a final report of each view.
    drop(inputs);
    keep(joined("recorder", recorder.await).map(drop));
    // With the recorder gone, the writer's channel closes; it flushes and stops.
    drop(store_handle);
    keep(
        join_thread("store writer", store_writer)
            .await
            .and_then(|r| r.map_err(MonitorError::from)),
    );
    if let Some(i) = influx {
        keep(i.stop().await);
    }
    // Last: what the writer committed is in the outboxes; what is not sent yet goes out at the
    // next start.
    notifiers.stop().await;
    if let Some(s) = server {
        s.stop().await;
    }
    drop(bus);
    keep(join_thread("output", output).await);
    outcome
}

/// A site's probe counts from the rollups, for its SLO state: (cell start in seconds, probes,
/// failed) per hour of the last 3 days and per day of its period.
#[derive(Debug, Default)]
pub struct SloCounts {
    pub hours: Vec<(i64, u32, u32)>,
    pub days: Vec<(i64, u32, u32)>,
}

/// A task's result, with a panic turned into [`MonitorError::Panicked`] carrying its message.
pub fn joined<T>(
    task: &'static str,
    result: Result<T, tokio::task::JoinError>,
) -> Result<T, MonitorError> {
    result.map_err(|e| match e.try_into_panic() {
        Ok(payload) => panicked(task, payload),
        Err(e) => MonitorError::Panicked {
            task,
            message: e.to_string(),
        },
    })
}

/// Waits for an OS thread without blocking the runtime; its panic becomes an error.
async fn join_thread<T: Send + 'static>(
    task: &'static str,
    thread: std::thread::JoinHandle<T>,
) -> Result<T, MonitorError> {
    joined(
        task,
        tokio::task::spawn_blocking(move || thread.join()).await,
    )?
    .map_err(|payload| panicked(task, payload))
}

fn panicked(task: &'static str, payload: Box<dyn Any + Send>) -> MonitorError {
    MonitorError::Panicked {
        task,
        message: crate::panic_message(&*payload),
    }
}

/// The server to run: `server` of the config, at `--listen` when given.
fn server_config(config: &Config, options: &RunOptions) -> Option<crate::config::ServerConfig> {
    match (options.listen, &config.server) {
        (Some(listen), Some(s)) => Some(crate::config::ServerConfig {
            listen,
            ..s.clone()
        }),
        (Some(listen), None) => Some(crate::config::ServerConfig::at(listen)),
        (None, s) => s.clone(),
    }
}

/// Starts the server when one is configured; a bind failure is an error event, and the monitor
/// runs on without it.
async fn start_server(
    config: &Config,
    options: &RunOptions,
    store: &Store,
    bus: &Bus,
    push: Arc<crate::probe::push::Board>,
) -> Option<crate::serve::Server> {
    let cfg = server_config(config, options)?;
    let path = Some(options.config_path.clone());
    match crate::serve::Server::start(&cfg, config, store.clone(), bus.clone(), push, path).await {
        Ok(s) => {
            s.seed_from_store().await;
            Some(s)
        }
        Err(e) => {
            bus.error("server", None, crate::error_chain(&e));
            None
        }
    }
}

/// The configured cap on probes in flight, or the default from the descriptor limit.
fn max_in_flight(config: &Config) -> usize {
    config
        .probing
        .max_in_flight
        .unwrap_or_else(crate::config::default_max_in_flight)
}

/// The probe targets of `config`. Sites that `diff` leaves alone keep their running target (its
/// generation and TLS client); the others get `generation` and, where they need one, a TLS client
/// of their own. A site whose CA file cannot be read any more is probed with the system's trust,
/// and the reason reported.
fn new_targets(
    config: &Config,
    prober: &Prober,
    bus: &Bus,
    generation: u64,
    diff: Option<&SitesDiff>,
    running: &[ProbeTarget],
) -> Vec<ProbeTarget> {
    config
        .sites
        .iter()
        .map(|site| {
            let running = running.iter().find(|t| *t.name == *site.name);
            if let (Some(diff), Some(t)) = (diff, running)
                && !diff.restarts(&site.name)
            {
                // Probing the same way; the recorder's settings (rule, windows, tags) may differ.
                let mut t = t.clone();
                if *t.config != *site {
                    t.config = Arc::new(site.clone());
                }
                return t;
            }
            let mut t = ProbeTarget::new(site.clone());
            t.generation = generation;
            if let Some(old) = running {
                // The count of skipped ticks goes on across a change.
                t.skipped = Arc::clone(&old.skipped);
            }
            if let Err(e) = prober.prepare(&mut t) {
                bus.error("tls", Some(Arc::clone(&t.name)), crate::error_chain(&e));
            }
            t
        })
        .collect()
}

fn writer_options(config: &Config) -> WriterOptions {
    WriterOptions {
        flush_every: STORE_FLUSH,
        retention: config.storage.retention,
        rollup_every: config.storage.rollup_every,
        rollups: true,
        outbox: config.storage.influxdb.is_some(),
        location: config.location.as_str().into(),
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
        let mut alerts = store.latest_alerts(&conn, PAST_ALERTS).ok()?;
        alerts.reverse();
        Some(alerts)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

impl Monitor {
    fn watch(&self) -> Option<watch::Watcher> {
        match watch::watch(&self.options.config_path, Some(&self.config.plugins.dir)) {
            Ok(w) => Some(w),
            Err(e) => {
                self.bus.error(
                    "reload",
                    None,
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
            bus: self.bus.clone(),
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
            Change::PluginDir => {
                // Each plugin in use from where the directory points now (unchanged files are
                // recognised by their hash and left alone).
                let mut names: Vec<String> = self
                    .config
                    .plugin_uses()
                    .map(|(_, _, u)| u.plugin.clone())
                    .collect();
                names.sort();
                names.dedup();
                let mut last = None;
                for name in names {
                    let path = self.config.plugin_path(&name);
                    if let Some(r) = self.reload_plugin(&path).await
                        && let Some(prev) = last.replace(r)
                    {
                        self.bus.send(Event::Reload(prev));
                    }
                }
                last
            }
        }
    }

    /// Loads, validates and applies a changed config. Everything is checked (and its plugins
    /// loaded) before anything changes; then the [`ConfigDiff`] is applied here, in an order a
    /// probe can never notice: new plugins join the loaded ones, the scheduler restarts the
    /// changed sites under a new generation (so the recorder drops late probes of the old one),
    /// the recorder takes the new settings, and only then are unused plugins dropped.
    async fn reload_config(&mut self) -> Option<ReloadReport> {
        let rejected =
            |detail: String| self.reload(ReloadWhat::Config, ReloadResult::Rejected, detail);
        let new = match load_settled(&self.options.config_path, &self.options.overrides).await {
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
        if new.cluster != self.config.cluster
            || new.probing.source_address != self.config.probing.source_address
        {
            self.bus.error(
                "config",
                None,
                "the cluster section and probing.source_address take effect when sitewatch restarts; the rest of the change is applied",
            );
        }
        if let Some(c) = &self.cluster {
            c.reconfigure(&new);
        }
        let diff = ConfigDiff::between(&self.config, &new);
        self.generation += 1;
        let targets = new_targets(
            &new,
            &self.prober,
            &self.bus,
            self.generation,
            Some(&diff.sites),
            &self.targets,
        );

        self.plugins.add(prepared);
        self.prober.configure_rdap(&new.rdap);
        self.scheduler.apply(&diff.sites, &targets);
        if diff.probing {
            self.scheduler.set_max_in_flight(max_in_flight(&new));
        }
        if diff.location {
            self.location.store(Arc::new(new.location.clone()));
        }
        self.reload_server(&new, diff.location).await;
        let _ = self
            .inputs
            .send(RecorderInput::Reconfigure {
                alerting: new.alerting.clone(),
                views: new.dashboard.views.clone(),
                targets: targets.clone(),
                notify: new.notify.clone(),
                canaries: new.canaries.clone(),
            })
            .await;
        if new.canaries != self.config.canaries {
            if let Some(old) = self.canaries.take() {
                old.stop().await;
            }
            self.canaries = crate::canary::CanaryTask::start(
                self.prober.clone(),
                &new.canaries,
                self.inputs.clone(),
            );
        }
        self.plugins.retain_used(&new);
        self.targets = targets;
        if diff.storage {
            self.store_handle
                .send(Record::Configure(writer_options(&new)));
        }
        if diff.influxdb {
            if let Some(old) = self.influx.take()
                && let Err(e) = old.stop().await
            {
                self.bus.error("influxdb", None, e.to_string());
            }
            self.config.storage = new.storage.clone();
            self.influx = self.start_influx(token);
        }
        if diff.notify {
            self.notifiers.apply(&new).await;
        }
        self.config = new;
        self.reload(ReloadWhat::Config, ReloadResult::Applied, diff.describe())
    }

    /// Starts, moves, or stops the server after a reload. A new address that cannot be bound is
    /// an error event, and the old listener keeps serving.
    async fn reload_server(&mut self, new: &Config, location_changed: bool) {
        let wanted = server_config(new, &self.options);
        if location_changed && let Some(old) = self.server.take() {
            // Every series carries the location: start afresh under the new one.
            old.stop().await;
        }
        match (wanted, self.server.as_mut()) {
            (None, Some(_)) => {
                if let Some(old) = self.server.take() {
                    old.stop().await;
                }
            }
            (Some(cfg), Some(running)) => {
                if let Err(e) = running.apply(&cfg).await {
                    self.bus.error(
                        "server",
                        None,
                        format!(
                            "{}; still serving on {}",
                            crate::error_chain(&e),
                            running.listen
                        ),
                    );
                }
            }
            (Some(_), None) => {
                self.server = start_server(
                    new,
                    &self.options,
                    &self.store,
                    &self.bus,
                    self.prober.push_board(),
                )
                .await;
                if let Some(s) = &self.server {
                    s.set_in_flight(self.scheduler.in_flight());
                }
            }
            (None, None) => {}
        }
        if let Some(s) = &self.server {
            s.set_config(new);
        }
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

/// Lets the notifications of a node that once led a cluster go out now that it runs alone.
async fn release_cluster_waits(store: &Store, bus: &Bus) {
    let s = store.clone();
    let released = tokio::task::spawn_blocking(move || {
        crate::store::notices::release_cluster_waits(&s.connect_for_writing()?)
    })
    .await;
    match released {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(n)) => {
            tracing::info!(
                "{n} notifications of alerts this node decided as a cluster leader go out now that it runs alone"
            );
            store.notifications_queued();
        }
        Ok(Err(e)) => bus.error(
            "notify",
            None,
            format!(
                "cannot release the notifications that waited for a cluster: {}",
                crate::error_chain(&e)
            ),
        ),
    }
}

/// Loads the config, waiting briefly if it is missing (an editor mid-save).
async fn load_settled(
    path: &Path,
    overrides: &crate::config::cluster::Overrides,
) -> Result<Config, ConfigError> {
    let mut tries = 0;
    loop {
        match Config::load_with(path, overrides) {
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

/// Loads each site's measurements since `since` and its newest alert, and hands them to `each`
/// one site at a time: only a few sites' history is in memory at once (an hour of 10,000 sites
/// is 3.6 million measurements). Returns how many measurements were loaded.
pub async fn load_history(
    store: &Store,
    targets: &[ProbeTarget],
    since: chrono::DateTime<chrono::Utc>,
    mut each: impl FnMut(
        &ProbeTarget,
        &[crate::measurement::Measurement],
        &[crate::alert::Alert],
        &SloCounts,
    ),
) -> Result<usize, StoreError> {
    let store = store.clone();
    let targets = targets.to_vec();
    let (tx, mut rx) = mpsc::channel(8);
    let loader = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let conn = store.connect()?;
        let mut last = store.last_alerts(&conn)?;
        let now_us = chrono::Utc::now().timestamp_micros();
        for t in targets {
            let ms = store.measurements(&conn, &t.name, &t.url, since)?;
            let alerts = last
                .remove(&(t.name.to_string(), t.url.to_string()))
                .unwrap_or_default();
            let slo = match t.config.alerting.slo {
                None => SloCounts::default(),
                Some(o) => {
                    use crate::history::{Tier, probe_counts};
                    let back = |d: Duration| now_us - i64::try_from(d.as_micros()).unwrap_or(0);
                    let counts = |tier, from| {
                        probe_counts(&conn, &t.name, &t.url, tier, from, now_us)
                            .map_err(StoreError::from)
                    };
                    SloCounts {
                        hours: counts(Tier::Hour, back(Duration::from_secs(3 * 24 * 3600)))?,
                        days: counts(Tier::Day, back(o.period))?,
                    }
                }
            };
            if tx.blocking_send((t, ms, alerts, slo)).is_err() {
                break;
            }
        }
        Ok(())
    });
    let mut loaded = 0;
    while let Some((target, ms, alerts, slo)) = rx.recv().await {
        loaded += ms.len();
        each(&target, &ms, &alerts, &slo);
    }
    loader.await.expect("loading history does not panic")?;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_becomes_an_error_with_its_message() {
        let task = tokio::spawn(async {
            if std::hint::black_box(true) {
                panic!("the windows are inconsistent");
            }
        });
        let err = joined("recorder", task.await).unwrap_err();
        assert!(matches!(
            err,
            MonitorError::Panicked {
                task: "recorder",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "the recorder panicked: the windows are inconsistent"
        );
        let formatted = tokio::spawn(async {
            if std::hint::black_box(true) {
                panic!("site {} is missing", "a");
            }
        });
        assert_eq!(
            joined("recorder", formatted.await).unwrap_err().to_string(),
            "the recorder panicked: site a is missing"
        );
        assert_eq!(
            joined("recorder", tokio::spawn(async { 5 }).await).unwrap(),
            5
        );
    }
}
