//! The one shape of every sink's durable queue in the store: the InfluxDB lines ([`crate::lines`]),
//! each notifier's notifications ([`crate::notices`]), and the cluster's two streams, this node's
//! probes and its alerts ([`crate::cluster_outbox`]). A sink reads what waits, oldest first,
//! sends it, and says what was delivered; nothing leaves a queue otherwise, except by its sink's
//! own refusal, which sets the item aside with the reason rather than dropping it (an InfluxDB
//! line the server refused is parked; a notification refused, or older than its `max_age`, is
//! marked failed or given up; a cluster leader's alert that another node delivered is
//! superseded).
//!
//! [`Queue`] is how a sink uses its outbox from async code: each call runs on a blocking thread
//! with a connection of its own (one kept open would keep the old file's WAL name when a damaged
//! store is set aside and replaced, see `Store::replace_damaged`), a failure is noted
//! (a corrupt store is set aside), and an outbox that keeps state of the store (the cluster's
//! marks) reads it afresh from a replaced store.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::sync::{Arc, Mutex, PoisonError};

/// What became of items a sink sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<'a> {
    /// The sink took them; what it answered (kept where the queue keeps answers).
    Delivered(&'a str),
    /// The sink refused them for good, and why: they are set aside, never sent again.
    Refused(&'a str),
}

/// A sink's durable queue: what waits, and what became of it.
pub trait Outbox: Send + 'static {
    /// What waits: an InfluxDB line, a notification, a probe's sample, an alert.
    type Item: Send + 'static;

    /// Up to `limit` items waiting, oldest first, each with its id (ids only grow).
    fn waiting(
        &mut self,
        conn: &mut Connection,
        limit: usize,
    ) -> Result<Vec<(i64, Self::Item)>, StoreError>;

    /// What became of the items read from `first` to `last` (at `now`): delivered or refused,
    /// they are never sent again.
    fn settle(
        &mut self,
        conn: &mut Connection,
        first: i64,
        last: i64,
        how: Settled<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many items wait.
    fn len(&mut self, conn: &mut Connection) -> Result<u64, StoreError>;

    /// Reads what the outbox keeps of the store (a mark) afresh: at its first use, and after
    /// the store was set aside and replaced.
    fn reopen(&mut self, _conn: &mut Connection) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A sink's handle on its outbox (see the module's documentation). Clones share the outbox.
pub struct Queue<O> {
    store: Store,
    inner: Arc<Mutex<Inner<O>>>,
}

impl<O> Clone for Queue<O> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<O> {
    outbox: O,
    /// The store's generation the outbox was opened in (none yet: opened at its first use).
    generation: Option<u64>,
}

impl<O: Outbox> Queue<O> {
    pub fn new(store: &Store, outbox: O) -> Self {
        Self {
            store: store.clone(),
            inner: Arc::new(Mutex::new(Inner {
                outbox,
                generation: None,
            })),
        }
    }

    /// Runs `f` on the outbox with a connection of its own, on a blocking thread: any work of
    /// the sink on its queue's tables (reading, marking outcomes, setting an item aside).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut O, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let queue = self.clone();
        tokio::task::spawn_blocking(move || queue.call(f))
            .await
            .unwrap_or_else(joined)
    }

    /// [`Queue::run`] on this thread (for code that is not async).
    pub fn call<T>(
        &self,
        f: impl FnOnce(&mut O, &mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.call_fresh(|o, c, _| f(o, c))
    }

    /// Runs `f` with whether the outbox was just reopened (the store was replaced since the
    /// last call: ids read before are of the old store).
    fn call_fresh<T>(
        &self,
        f: impl FnOnce(&mut O, &mut Connection, bool) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let store = &self.store;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let result = store.connect().and_then(|mut conn| {
            let now = store.generation();
            let reopened = inner.generation != Some(now);
            if reopened {
                inner.outbox.reopen(&mut conn)?;
                inner.generation = Some(now);
            }
            f(&mut inner.outbox, &mut conn, reopened)
        });
        if let Err(e) = &result {
            store.note_error(e);
        }
        result
    }

    /// What became of the items from `first` to `last`; nothing when they were read from a
    /// store that was replaced since (the fresh store's queue stands).
    async fn settle(
        &self,
        first: i64,
        last: i64,
        how: Settled<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let queue = self.clone();
        let (delivered, text) = match how {
            Settled::Delivered(t) => (true, t.to_owned()),
            Settled::Refused(t) => (false, t.to_owned()),
        };
        tokio::task::spawn_blocking(move || {
            queue.call_fresh(|o, c, reopened| {
                let how = if delivered {
                    Settled::Delivered(&text)
                } else {
                    Settled::Refused(&text)
                };
                if reopened {
                    return Ok(());
                }
                o.settle(c, first, last, how, now)
            })
        })
        .await
        .unwrap_or_else(joined)
    }

    /// Up to `limit` items waiting, oldest first.
    pub async fn waiting(&self, limit: usize) -> Result<Vec<(i64, O::Item)>, StoreError> {
        self.run(move |o, c| o.waiting(c, limit)).await
    }

    /// The sink took the items from `first` to `last`, and answered `answer`.
    pub async fn delivered(
        &self,
        first: i64,
        last: i64,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.settle(first, last, Settled::Delivered(answer), now)
            .await
    }

    /// The sink refused the items from `first` to `last` for good, because of `why`.
    pub async fn refused(
        &self,
        first: i64,
        last: i64,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.settle(first, last, Settled::Refused(why), now).await
    }

    /// How many items wait.
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        self.run(|o, c| o.len(c)).await
    }

    /// The outbox itself, between calls (a sink's own counters).
    pub fn with<T>(&self, f: impl FnOnce(&mut O) -> T) -> T {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .outbox)
    }
}

/// A blocking call that did not finish: its panic goes on; a call the stopping runtime did not
/// run is [`StoreError::Stopped`].
fn joined<T>(e: tokio::task::JoinError) -> Result<T, StoreError> {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Err(StoreError::Stopped),
    }
}
