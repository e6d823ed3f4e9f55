//! Wires the pipeline together: config → scheduler → prober → recorder → events → outputs and
//! store, and takes it down in order on shutdown so the final stats reach the output and every
//! measurement reaches the store.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::event::{ErrorReport, Event};
use crate::output::{self, OutputFormat};
use crate::plugin::set::PluginSet;
use crate::plugin::{PluginError, PluginHost};
use crate::probe::{ProbeTarget, Prober, ProberSetupError};
use crate::recorder::Recorder;
use crate::scheduler::Scheduler;
use crate::store::writer::{self, WriterOptions};
use crate::store::{Store, StoreError, influx};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Measurements waiting for the recorder. When it is full, probes wait to hand theirs over,
/// which holds their in-flight slot, so an overloaded recorder shows up as skipped ticks.
const RECORDER_QUEUE: usize = 8192;
/// Events waiting for a slow output before it is told it skipped some.
const EVENT_QUEUE: usize = 65_536;
/// How often the store writer commits: measurements are durable within this.
const STORE_FLUSH: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot start probing")]
    Prober(#[from] ProberSetupError),
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Influx(String),
    #[error("cannot start the plugin host")]
    Plugins(#[source] PluginError),
}

/// How to run, besides the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub format: OutputFormat,
    pub data_dir: PathBuf,
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
    let report_error = |message: String| {
        let _ = events.send(Arc::new(Event::Error(ErrorReport {
            time: clock.now(),
            source: "storage",
            site: None,
            message,
        })));
    };
    if let Some(aside) = &opened.set_aside {
        report_error(format!(
            "the store {} could not be read; it was set aside as {} and a fresh store started",
            store.path().display(),
            aside.display()
        ));
    }

    let (store_handle, store_writer) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: STORE_FLUSH,
            retention: config.storage.retention,
            outbox: config.storage.influxdb.is_some(),
        },
        Arc::clone(&clock),
        events.clone(),
    );
    let targets: Vec<ProbeTarget> = config.sites.iter().cloned().map(ProbeTarget::new).collect();
    let mut recorder = Recorder::new(
        &config,
        Arc::clone(&clock),
        events.clone(),
        Some(store_handle),
    );
    recorder.set_sites(&targets);
    let since =
        clock.now() - chrono::TimeDelta::from_std(recorder.longest_window()).unwrap_or_default();
    match load_history(&store, &targets, since).await {
        Ok(history) => {
            for (target, measurements, last_alert) in &history {
                recorder.restore(&target.name, measurements, last_alert.as_ref());
            }
        }
        Err(e) => report_error(format!(
            "cannot reload history from {}: {}; starting with empty windows",
            store.path().display(),
            crate::error_chain(&e)
        )),
    }

    let stop_influx = CancellationToken::new();
    let influx_sender = config.storage.influxdb.clone().map(|influx_config| {
        let sender = influx::Sender {
            store: store.clone(),
            config: influx_config,
            token: influx_token,
            client: prober.plain_client(),
            clock: Arc::clone(&clock),
            events: events.clone(),
        };
        tokio::spawn(sender.run(stop_influx.clone()))
    });

    let plugins = if config.plugin_uses().next().is_some() {
        let host = PluginHost::new(Some(&options.data_dir.join("plugin-cache")))
            .map_err(MonitorError::Plugins)?;
        let set = Arc::new(PluginSet::new(host));
        for e in set.load_for(&config).await {
            let _ = events.send(Arc::new(Event::Error(ErrorReport {
                time: clock.now(),
                source: "plugin",
                site: None,
                message: crate::error_chain(&e),
            })));
        }
        Some(set)
    } else {
        None
    };
    let recorder = recorder.with_plugins(plugins.clone());

    let (inputs, inputs_rx) = mpsc::channel(RECORDER_QUEUE);
    let recorder = tokio::spawn(recorder.run(inputs_rx));
    let mut scheduler = Scheduler::new(prober, plugins, inputs.clone());
    scheduler.apply(&targets);
    tracing::info!(sites = targets.len(), "monitor started");

    shutdown.await;
    tracing::info!("shutting down");
    scheduler.stop().await;
    // The recorder stops when its last input sender is gone, after a final report of each view.
    drop(inputs);
    drop(recorder.await);
    // With the recorder gone, the writer's channel closes; it flushes and stops.
    let _ = tokio::task::spawn_blocking(move || store_writer.join()).await;
    stop_influx.cancel();
    if let Some(sender) = influx_sender {
        let _ = sender.await;
    }
    drop(events);
    let _ = tokio::task::spawn_blocking(move || output.join()).await;
    Ok(())
}

type History = Vec<(
    ProbeTarget,
    Vec<crate::measurement::Measurement>,
    Option<crate::alert::Alert>,
)>;

/// Loads each site's measurements since `since` and its newest alert.
async fn load_history(
    store: &Store,
    targets: &[ProbeTarget],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<History, StoreError> {
    let store = store.clone();
    let targets = targets.to_vec();
    tokio::task::spawn_blocking(move || {
        let conn = store.connect()?;
        let mut last = store.last_alerts(&conn)?;
        targets
            .into_iter()
            .map(|t| {
                let ms = store.measurements(&conn, &t.name, &t.url, since)?;
                let alert = last.remove(&(t.name.to_string(), t.url.to_string()));
                Ok((t, ms, alert))
            })
            .collect()
    })
    .await
    .expect("loading history does not panic")
}
