//! Helpers for the store's tests that need a store with records in it.

use super::Store;
use super::writer::{self, Record, WriterOptions};
use crate::clock::SystemClock;
use crate::event::Bus;
use std::sync::Arc;
use std::time::Duration;

/// Writes `records` through a writer of its own and waits until every one is stored.
pub fn write_all(store: &Store, records: Vec<Record>) {
    let tx = Bus::new(Arc::new(SystemClock::new()));
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(50),
            retention: crate::history::Retention {
                raw: Duration::from_secs(1_000_000_000),
                ..Default::default()
            },
            rollup_every: crate::history::DEFAULT_ROLLUP_EVERY,
            rollups: true,
            outbox: true,
            location: "test".into(),
        },
        Arc::new(SystemClock::new()),
        tx,
    );
    for r in records {
        handle.send(r);
    }
    drop(handle);
    thread.join().unwrap().expect("every record stored");
}
