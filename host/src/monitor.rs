//! Wires the pipeline together: config → scheduler → prober → recorder → events → output, and
//! takes it down in order on shutdown so the final stats reach the output.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::event::Event;
use crate::output::{self, OutputFormat};
use crate::probe::{ProbeTarget, Prober, ProberSetupError};
use crate::recorder::{Recorder, RecorderInput};
use crate::scheduler::Scheduler;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Measurements waiting for the recorder. When it is full, probes wait to hand theirs over,
/// which holds their in-flight slot, so an overloaded recorder shows up as skipped ticks.
const RECORDER_QUEUE: usize = 8192;
/// Events waiting for a slow output before it is told it skipped some.
const EVENT_QUEUE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot start probing")]
    Prober(#[from] ProberSetupError),
}

/// Runs the monitor until `shutdown` resolves, writing events to `out`.
pub async fn run(
    config: Config,
    format: OutputFormat,
    out: Box<dyn Write + Send>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MonitorError> {
    let prober = Prober::new(Arc::clone(&clock))?;
    let (events, _) = broadcast::channel::<Arc<Event>>(EVENT_QUEUE);
    let output = output::spawn(format, events.subscribe(), out);

    let (inputs, inputs_rx) = mpsc::channel(RECORDER_QUEUE);
    let targets: Vec<ProbeTarget> = config.sites.iter().cloned().map(ProbeTarget::new).collect();
    let mut recorder = Recorder::new(&config, clock, events);
    recorder.set_sites(&targets);
    let recorder = tokio::spawn(recorder.run(inputs_rx));

    let mut scheduler = Scheduler::new(prober, inputs.clone());
    scheduler.apply(&targets);
    tracing::info!(sites = targets.len(), "monitor started");

    shutdown.await;
    tracing::info!("shutting down");
    scheduler.stop().await;
    // The recorder stops when its last input sender is gone, after a final report of each view.
    drop(inputs);
    let _ = recorder.await;
    let _ = tokio::task::spawn_blocking(move || output.join()).await;
    Ok(())
}

/// Sends [`RecorderInput`] from outside the pipeline (used by tests and reloads).
pub type InputSender = mpsc::Sender<RecorderInput>;
