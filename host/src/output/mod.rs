//! Outputs: consumers of [`Event`]s. Each runs on its own thread, so a slow terminal or pipe never
//! blocks the async runtime, and flushes whenever it has caught up with the events.

mod plain;

use crate::event::{ErrorReport, Event};
use std::io::Write;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A stats table per view at each refresh, and alert messages as they happen.
    Plain,
    /// One JSON object per line: probe, stats, alert and error events.
    Json,
}

/// Starts the output thread. It ends when the event channel closes.
pub fn spawn(
    format: OutputFormat,
    mut events: broadcast::Receiver<Arc<Event>>,
    mut out: Box<dyn Write + Send>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitewatch-output".into())
        .spawn(move || {
            loop {
                let event = match events.blocking_recv() {
                    Ok(e) => e,
                    Err(RecvError::Closed) => break,
                    Err(RecvError::Lagged(n)) => Arc::new(Event::Error(ErrorReport {
                        time: chrono::Utc::now(),
                        source: "output",
                        site: None,
                        message: format!("the output fell behind and skipped {n} events"),
                    })),
                };
                let written = write_event(format, &mut out, &event);
                let flushed = written.and_then(|()| {
                    if events.is_empty() {
                        out.flush()
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = flushed {
                    // Typically a closed pipe: nobody is reading any more.
                    tracing::warn!("output stopped: {e}");
                    break;
                }
            }
            let _ = out.flush();
        })
        .expect("spawning the output thread")
}

/// Writes one event in `format`.
pub fn write_event(
    format: OutputFormat,
    out: &mut dyn Write,
    event: &Event,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => write_json(out, event),
        OutputFormat::Plain => plain::write(out, event),
    }
}

fn write_json(out: &mut dyn Write, event: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}
