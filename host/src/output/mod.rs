//! Outputs: consumers of [`Event`]s. Each runs on its own thread, so a slow terminal or pipe never
//! blocks the async runtime, and flushes whenever it has caught up with the events.

mod plain;
mod tty;

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
    /// The live terminal display (the default when stdout is a terminal).
    Tty,
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
            if format == OutputFormat::Tty {
                return run_tty(events);
            }
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

/// Writes one event in `format` (the TTY display writes as plain text outside a live display).
pub fn write_event(
    format: OutputFormat,
    out: &mut dyn Write,
    event: &Event,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => write_json(out, event),
        OutputFormat::Plain | OutputFormat::Tty => plain::write(out, event),
    }
}

/// The TTY display loop: draws until the channel closes, then leaves the final tables.
fn run_tty(mut events: broadcast::Receiver<Arc<Event>>) {
    let mut display = tty::Display::new();
    let mut last: Vec<crate::event::StatsReport> = Vec::new();
    loop {
        match events.blocking_recv() {
            Ok(event) => {
                if let Event::Stats(r) = &*event {
                    match last.iter_mut().find(|l| l.view == r.view) {
                        Some(l) => *l = r.clone(),
                        None => last.push(r.clone()),
                    }
                    if r.r#final {
                        continue;
                    }
                }
                display.handle(&event);
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
    }
    display.finish(&last);
}

fn write_json(out: &mut dyn Write, event: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}
