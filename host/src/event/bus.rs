//! The event bus: fans events out to every subscriber (the outputs, later the HTTP server).
//!
//! Every subscriber has its own queue. Alerts, stats, reloads, errors and the other rare events
//! are never dropped: they are queued whatever the subscriber's lag (they come at most a few a
//! second, so the queue stays small). Probe events, which come at the probing rate, are shed when
//! a subscriber has [`PROBE_BACKLOG`] of them waiting; the subscriber is then told how many it
//! missed, in order, before the next event it gets. Publishing never blocks.

use super::{ErrorReport, Event};
use crate::clock::SharedClock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Probe events one subscriber may have waiting before new ones are dropped.
pub const PROBE_BACKLOG: usize = 65_536;

/// A handle that publishes events. Clones share the bus; once the last handle is dropped every
/// subscription ends after its queued events.
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    subscribers: Mutex<Vec<Arc<Queue>>>,
    publishers: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Arc<Event>>,
    /// Probe events among `items`.
    probes: usize,
    /// Probe events dropped since the subscriber last heard of it.
    dropped: u64,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A subscriber that panicked while holding the lock leaves a usable queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Received {
    Event(Arc<Event>),
    /// This many probe events were dropped here because the subscriber fell behind.
    Dropped(u64),
}

/// What waiting for an event with a time limit gave.
#[derive(Debug)]
pub enum Waited {
    Received(Received),
    /// Nothing came within the limit.
    Timeout,
    /// Every publisher is gone and the queue is empty.
    Closed,
}

/// One subscriber's end of the bus.
pub struct Subscription {
    queue: Arc<Queue>,
}

impl Bus {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                subscribers: Mutex::new(Vec::new()),
                publishers: AtomicUsize::new(1),
            }),
        }
    }

    /// A new subscriber; it receives every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        let queue = Arc::new(Queue::default());
        self.subscribers().push(Arc::clone(&queue));
        Subscription { queue }
    }

    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<Queue>>> {
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `event` to every subscriber. Never blocks.
    pub fn send(&self, event: Event) {
        let probe = matches!(event, Event::Probe(_));
        let event = Arc::new(event);
        for q in self.subscribers().iter() {
            let mut s = q.lock();
            if probe {
                if s.probes >= PROBE_BACKLOG {
                    s.dropped += 1;
                    continue;
                }
                s.probes += 1;
            }
            s.items.push_back(Arc::clone(&event));
            drop(s);
            q.ready.notify_one();
        }
    }

    /// Reports a problem that does not stop the program: logged, and published as an `error`
    /// event. The one way every part of the program reports such a problem.
    pub fn error(&self, source: &'static str, site: Option<Arc<str>>, message: impl Into<String>) {
        let message = message.into();
        match &site {
            Some(site) => tracing::warn!(source, %site, "{message}"),
            None => tracing::warn!(source, "{message}"),
        }
        self.send(Event::Error(ErrorReport {
            time: self.inner.clock.now(),
            source,
            site,
            message,
        }));
    }

    /// The clock events are stamped with.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }
}

impl Clone for Bus {
    fn clone(&self) -> Self {
        self.inner.publishers.fetch_add(1, Ordering::Relaxed);
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if self.inner.publishers.fetch_sub(1, Ordering::AcqRel) == 1 {
            for q in self.subscribers().iter() {
                q.lock().closed = true;
                q.ready.notify_all();
            }
        }
    }
}

impl Subscription {
    /// Waits for the next event; `None` once every publisher is gone and the queue is empty.
    pub fn recv_blocking(&mut self) -> Option<Received> {
        let mut s = self.queue.lock();
        loop {
            if let Some(r) = Self::take(&mut s) {
                return Some(r);
            }
            if s.closed {
                return None;
            }
            s = self.queue.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits at most `timeout` for the next event.
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Waited {
        let mut s = self.queue.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(r) = Self::take(&mut s) {
                return Waited::Received(r);
            }
            if s.closed {
                return Waited::Closed;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Waited::Timeout;
            }
            s = self
                .queue
                .ready
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        Self::take(&mut self.queue.lock())
    }

    /// Whether nothing is waiting (for flushing output once caught up).
    pub fn is_empty(&self) -> bool {
        let s = self.queue.lock();
        s.items.is_empty() && s.dropped == 0
    }

    fn take(s: &mut QueueState) -> Option<Received> {
        if s.dropped > 0 {
            return Some(Received::Dropped(std::mem::take(&mut s.dropped)));
        }
        let e = s.items.pop_front()?;
        if matches!(*e, Event::Probe(_)) {
            s.probes -= 1;
        }
        Some(Received::Event(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn bus() -> Bus {
        Bus::new(Arc::new(SystemClock::new()))
    }

    fn probe() -> Event {
        Event::Probe(crate::measurement::tests::sample("a", true))
    }

    fn kinds(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(r) = sub.try_recv() {
            out.push(match r {
                Received::Dropped(n) => format!("dropped {n}"),
                Received::Event(e) => match &*e {
                    Event::Probe(_) => "probe".into(),
                    Event::Error(e) => e.message.clone(),
                    _ => "other".into(),
                },
            });
        }
        out
    }

    #[test]
    fn a_lagging_subscriber_loses_probes_only_and_is_told_how_many() {
        let bus = bus();
        let mut sub = bus.subscribe();
        for _ in 0..PROBE_BACKLOG {
            bus.send(probe());
        }
        // Beyond the backlog: probes are dropped, errors (like alerts and stats) are kept.
        for i in 0..10 {
            bus.send(probe());
            bus.error("test", None, format!("e{i}"));
        }
        let got = kinds(&mut sub);
        assert_eq!(got[0], "dropped 10", "the drop is reported first");
        assert_eq!(got.iter().filter(|k| *k == "probe").count(), PROBE_BACKLOG);
        let errors: Vec<_> = got.iter().filter(|k| k.starts_with('e')).collect();
        assert_eq!(
            errors,
            ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"]
        );
        // Caught up: probes flow again.
        bus.send(probe());
        assert_eq!(kinds(&mut sub), ["probe"]);
    }

    #[test]
    fn subscribers_end_when_the_last_publisher_goes_after_their_queue() {
        let bus = bus();
        let mut sub = bus.subscribe();
        let other = bus.clone();
        bus.error("test", None, "first");
        drop(bus);
        other.error("test", None, "second");
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            while sub.recv_blocking().is_some() {
                n += 1;
            }
            n
        });
        drop(other);
        assert_eq!(reader.join().unwrap(), 2);
    }
}
