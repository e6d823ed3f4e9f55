//! sitewatch's core: what a probe measured, the clock, rolling stats, the alert state machine
//! and its rules, maintenance windows, the events every part publishes (and their JSON wire
//! schema), and the rollup cells the store keeps. No async runtime, database or network
//! client: every other crate builds on it.

pub mod alert;
pub mod clock;
pub mod event;
pub mod field;
pub mod history;
pub mod maintenance;
pub mod measurement;
pub mod notice;
pub mod retry;
pub mod secret;
pub mod skips;
pub mod stats;
pub mod wire;

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
