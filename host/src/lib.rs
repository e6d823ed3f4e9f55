//! sitewatch: watches websites. See `docs/ARCHITECTURE.md` for how the pieces fit.

pub mod alert;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod event;
pub mod history;
pub mod maintenance;
pub mod measurement;
pub mod monitor;
pub mod notify;
pub mod output;
pub mod plugin;
pub mod probe;
pub mod recorder;
pub mod reply;
pub mod report;
pub mod scheduler;
pub mod serve;
pub mod skips;
pub mod stats;
pub mod store;
pub mod tokio_clock;
pub mod watch;

/// Renders an error with its whole chain of causes: `outer: cause: root cause`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        // Some libraries repeat their cause in their own message; print each part once.
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// What a panic said (its `panic!` text), for the report of a task or thread that panicked.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Bytes as lowercase hexadecimal (digests, fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A duration in milliseconds, with microsecond resolution.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
