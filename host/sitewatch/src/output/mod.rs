//! Outputs: consumers of [`Event`]s. Each runs on its own thread, so a slow terminal or pipe never
//! blocks the async runtime, and flushes whenever it has caught up with the events.

mod plain;
pub mod tty;
pub use sitewatch_core::wire;

use crate::event::{ErrorReport, Event, Received, Subscription};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A stats table per view at each refresh, and alert messages as they happen.
    Plain,
    /// One JSON object per line: probe, stats, alert and error events.
    Json,
    /// The live terminal display (the default when stdout is a terminal).
    Tty,
}

/// Starts the output thread. It ends when the bus closes. The live display cancels `quit` when
/// the user presses `q`.
pub fn spawn(
    format: OutputFormat,
    mut events: Subscription,
    mut out: Box<dyn Write + Send>,
    quit: tokio_util::sync::CancellationToken,
    location: std::sync::Arc<arc_swap::ArcSwap<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitewatch-output".into())
        .spawn(move || {
            if format == OutputFormat::Tty {
                return tty::run(events, quit);
            }
            while let Some(received) = events.recv_blocking() {
                let event = match received {
                    Received::Event(e) => e,
                    Received::Dropped(n) => Arc::new(skipped_probes(n)),
                };
                let written = write_event(format, &mut out, &event, Some(location.load().as_str()));
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

/// Writes one event in `format` (the TTY display writes as plain text outside a live display);
/// `location` is where this instance runs, for JSON (see [`wire::write_line`]).
pub fn write_event(
    format: OutputFormat,
    out: &mut dyn Write,
    event: &Event,
    location: Option<&str>,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => wire::write_line(out, event, location),
        OutputFormat::Plain | OutputFormat::Tty => plain::write(out, event),
    }
}

/// What an output says when it fell behind and probe events were dropped for it (alerts,
/// stats and errors never are).
pub(crate) fn skipped_probes(n: u64) -> Event {
    Event::Error(ErrorReport {
        time: chrono::Utc::now(),
        source: "output",
        site: None,
        message: format!("the output fell behind and skipped {n} probe events"),
    })
}
