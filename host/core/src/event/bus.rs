//! The event bus: fans events out to every subscriber (the outputs, later the HTTP server).
//!
//! Every subscriber has its own queue. Alerts, stats, reloads, errors and the other rare events
//! are never dropped: they are queued whatever the subscriber's lag (they come at most a few a
//! second, so the queue stays small). Probe events, which come at the probing rate, are shed when
//! a subscriber has [`PROBE_BACKLOG`] of them waiting; the subscriber is then told how many it
//! missed, in order, before the next event it gets. Publishing never blocks.
//!
//! A *bounded* subscriber (an event-stream client of the server, which a stranger may open and
//! never read) holds at most a byte budget of events: stats are coalesced to the newest of each
//! view (a snapshot replaces the one it supersedes), probes are shed beyond the budget, and a
//! backlog over the budget is cut down to what is not a probe. What still exceeds the budget
//! marks the subscriber as behind (see [`SubscriptionWatch::stalled`]); beyond four budgets it
//! is evicted at once. A dropped subscription leaves the bus.

use super::{ErrorReport, Event};
use crate::clock::SharedClock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

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
    /// Wakes an async reader ([`Subscription::recv`]).
    wake: futures_util::task::AtomicWaker,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Arc<Event>>,
    /// Probe events among `items`.
    probes: usize,
    /// Probe events dropped since the subscriber last heard of it.
    dropped: u64,
    closed: bool,
    /// Set for a bounded subscriber.
    bounded: Option<Bounded>,
}

/// The accounting of a bounded subscriber.
struct Bounded {
    /// Estimated bytes of the events waiting, stats excepted (the newest stats of each view
    /// are held whatever their size: one per view, and shared by every subscriber).
    budget: usize,
    bytes: usize,
    /// Since when the waiting events have been over the budget.
    behind_since: Option<Instant>,
    /// When the subscriber last took an event.
    last_taken: Instant,
    /// Over four budgets: the subscriber is dropped from the bus and its queue emptied.
    evicted: bool,
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

/// One subscriber's end of the bus. Dropping it leaves the bus.
pub struct Subscription {
    queue: Arc<Queue>,
    bus: Weak<Inner>,
}

/// Watches a bounded subscription from outside its reader (the reader may be stuck writing to
/// a client that does not read).
#[derive(Clone)]
pub struct SubscriptionWatch {
    queue: Arc<Queue>,
}

/// A bounded subscription's reader fell behind: why it should be let go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stalled {
    /// More than four budgets of events that cannot be shed were waiting.
    Evicted,
    /// Over its budget, and it took nothing for this long.
    NotReading(Duration),
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
        self.subscribe_with(None)
    }

    /// A new subscriber that holds at most about `budget` bytes of waiting events (see the
    /// module's documentation): for clients that may not read.
    pub fn subscribe_bounded(&self, budget: usize) -> Subscription {
        self.subscribe_with(Some(Bounded {
            budget,
            bytes: 0,
            behind_since: None,
            last_taken: Instant::now(),
            evicted: false,
        }))
    }

    fn subscribe_with(&self, bounded: Option<Bounded>) -> Subscription {
        let queue = Arc::new(Queue::default());
        queue.lock().bounded = bounded;
        self.subscribers().push(Arc::clone(&queue));
        Subscription {
            queue,
            bus: Arc::downgrade(&self.inner),
        }
    }

    /// Subscribers now (for tests and the server's figures).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers().len()
    }

    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<Queue>>> {
        self.inner.subscribers()
    }

    /// Publishes `event` to every subscriber. Never blocks.
    pub fn send(&self, event: Event) {
        let probe = matches!(event, Event::Probe(_));
        // Estimated once, for the bounded subscribers.
        let mut size = None;
        let event = Arc::new(event);
        for q in self.subscribers().iter() {
            let mut s = q.lock();
            if s.bounded.is_some() {
                let size = *size.get_or_insert_with(|| event.approx_bytes());
                if !s.push_bounded(&event, size) {
                    continue;
                }
            } else {
                if probe {
                    if s.probes >= PROBE_BACKLOG {
                        s.dropped += 1;
                        continue;
                    }
                    s.probes += 1;
                }
                s.items.push_back(Arc::clone(&event));
            }
            drop(s);
            q.ready.notify_one();
            q.wake.wake();
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

impl Inner {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<Queue>>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl QueueState {
    /// Queues `event` (of about `size` bytes) for a bounded subscriber; false when nothing was
    /// queued.
    fn push_bounded(&mut self, event: &Arc<Event>, size: usize) -> bool {
        let Some(b) = &self.bounded else {
            return false;
        };
        if b.evicted {
            return false;
        }
        let budget = b.budget;
        match &**event {
            Event::Stats(new) => {
                // A snapshot: the one of the same view still waiting is superseded.
                if let Some(at) = self
                    .items
                    .iter()
                    .position(|e| matches!(&**e, Event::Stats(old) if old.view == new.view))
                {
                    self.items.remove(at);
                }
                self.items.push_back(Arc::clone(event));
                return true;
            }
            Event::Probe(_) => {
                if self.bytes() + size > budget {
                    self.dropped += 1;
                    self.note_behind();
                    return false;
                }
                self.probes += 1;
            }
            _ => {}
        }
        self.items.push_back(Arc::clone(event));
        self.add_bytes(size);
        if self.bytes() > budget {
            self.shed_probes();
        }
        if self.bytes() > budget {
            self.note_behind();
        }
        if self.bytes() > 4 * budget {
            self.items.clear();
            self.probes = 0;
            if let Some(b) = &mut self.bounded {
                b.bytes = 0;
                b.evicted = true;
            }
            self.closed = true;
        }
        true
    }

    fn bytes(&self) -> usize {
        self.bounded.as_ref().map_or(0, |b| b.bytes)
    }

    fn add_bytes(&mut self, n: usize) {
        if let Some(b) = &mut self.bounded {
            b.bytes += n;
        }
    }

    fn note_behind(&mut self) {
        if let Some(b) = &mut self.bounded {
            b.behind_since.get_or_insert_with(Instant::now);
        }
    }

    /// The backlog without its probes: the reader gets the newest state instead (the probes
    /// are counted as dropped).
    fn shed_probes(&mut self) {
        let before = self.items.len();
        self.items.retain(|e| !matches!(**e, Event::Probe(_)));
        self.dropped += (before - self.items.len()) as u64;
        self.probes = 0;
        let bytes = self
            .items
            .iter()
            .filter(|e| !matches!(***e, Event::Stats(_)))
            .map(|e| e.approx_bytes())
            .sum();
        if let Some(b) = &mut self.bounded {
            b.bytes = bytes;
        }
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
                q.wake.wake();
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.subscribers().retain(|q| !Arc::ptr_eq(q, &self.queue));
        }
    }
}

impl SubscriptionWatch {
    /// Whether the reader should be let go: evicted, or over its budget and taking nothing for
    /// longer than `patience`.
    pub fn stalled(&self, patience: Duration) -> Option<Stalled> {
        let s = self.queue.lock();
        let b = s.bounded.as_ref()?;
        if b.evicted {
            return Some(Stalled::Evicted);
        }
        b.behind_since?;
        let idle = b.last_taken.elapsed();
        (idle > patience).then_some(Stalled::NotReading(idle))
    }

    /// Estimated bytes waiting (stats excepted).
    pub fn waiting_bytes(&self) -> usize {
        self.queue.lock().bytes()
    }
}

impl Subscription {
    /// A handle that watches this (bounded) subscription from elsewhere.
    pub fn watch(&self) -> SubscriptionWatch {
        SubscriptionWatch {
            queue: Arc::clone(&self.queue),
        }
    }

    /// Waits for the next event without blocking a thread; `None` once every publisher is
    /// gone (or the subscriber was evicted) and the queue is empty.
    pub async fn recv(&mut self) -> Option<Received> {
        std::future::poll_fn(|cx| {
            // Registered before the check: an event pushed after it wakes this task.
            self.queue.wake.register(cx.waker());
            let mut s = self.queue.lock();
            if let Some(r) = Self::take(&mut s) {
                return std::task::Poll::Ready(Some(r));
            }
            if s.closed {
                return std::task::Poll::Ready(None);
            }
            std::task::Poll::Pending
        })
        .await
    }

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
        if let Some(b) = &mut s.bounded {
            b.last_taken = Instant::now();
            if !matches!(*e, Event::Stats(_)) {
                b.bytes = b.bytes.saturating_sub(e.approx_bytes());
            }
            if b.bytes <= b.budget / 2 {
                b.behind_since = None;
            }
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
        Event::Probe(crate::measurement::testing::sample("a", true))
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

    fn stats(view: &str, sites: usize) -> Event {
        let site = crate::event::SiteReport {
            site: "s".into(),
            url: "http://s/".into(),
            stats: crate::stats::WindowStats {
                checks: 1,
                ok: 1,
                availability: Some(1.0),
                response_ms: None,
                ttfb_ms: None,
                status_codes: Default::default(),
                steps: Vec::new(),
            },
            down: false,
            degraded: false,
            maintenance: None,
            cert_expiry: None,
            cert_warning: false,
            tags: Arc::from(Vec::new()),
            maintenance_probes: 0,
            skipped_ticks: 0,
            tls_insecure: false,
            paused: false,
            last_error: None,
            slo: None,
        };
        Event::Stats(crate::event::StatsReport {
            view: view.into(),
            window_s: 60,
            every_s: Some(1.0),
            time: chrono::Utc::now(),
            r#final: false,
            threshold: 0.8,
            overloaded: false,
            skipped_overload: 0,
            probes_total: 0,
            sites: vec![site; sites],
        })
    }

    #[test]
    fn a_bounded_subscriber_keeps_the_newest_stats_of_each_view_and_sheds_probes() {
        let bus = bus();
        let budget = 10 * probe().approx_bytes();
        let mut sub = bus.subscribe_bounded(budget);
        let watch = sub.watch();
        for i in 0..50 {
            bus.send(stats("1m", 1000));
            bus.send(stats("10m", 1000));
            bus.send(probe());
            bus.error("test", None, format!("e{i}"));
        }
        // Stats replace each other (one per view, the newest last); probes beyond the budget
        // and the probe backlog are shed; errors are kept.
        let got = kinds(&mut sub);
        assert!(got[0].starts_with("dropped "), "{got:?}");
        assert_eq!(got.iter().filter(|k| *k == "other").count(), 2, "{got:?}");
        assert_eq!(got.iter().filter(|k| k.starts_with('e')).count(), 50);
        assert!(got.iter().filter(|k| *k == "probe").count() < 10);
        assert!(watch.stalled(Duration::ZERO).is_none(), "caught up");
        assert_eq!(watch.waiting_bytes(), 0);
    }

    #[test]
    fn a_bounded_subscriber_that_does_not_read_is_stalled_then_evicted() {
        let bus = bus();
        let budget = 4 * probe().approx_bytes();
        let sub = bus.subscribe_bounded(budget);
        let watch = sub.watch();
        for _ in 0..10 {
            bus.send(probe());
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            watch.stalled(Duration::from_millis(10)),
            Some(Stalled::NotReading(_))
        ));
        assert!(watch.stalled(Duration::from_secs(60)).is_none());
        // Beyond four budgets of events that cannot be shed: evicted at once, its queue freed.
        for i in 0..100 {
            bus.error("test", None, format!("an error that is kept {i}"));
        }
        assert_eq!(
            watch.stalled(Duration::from_secs(60)),
            Some(Stalled::Evicted)
        );
        assert_eq!(watch.waiting_bytes(), 0);
    }

    #[test]
    fn a_dropped_subscription_leaves_the_bus() {
        let bus = bus();
        let a = bus.subscribe();
        let b = bus.subscribe_bounded(1 << 20);
        assert_eq!(bus.subscriber_count(), 2);
        drop(a);
        drop(b);
        assert_eq!(bus.subscriber_count(), 0);
        bus.error("test", None, "nobody keeps this");
    }

    #[tokio::test]
    async fn an_async_reader_is_woken_by_a_send() {
        let bus = bus();
        let mut sub = bus.subscribe_bounded(1 << 20);
        let reader = tokio::spawn(async move { sub.recv().await.is_some() });
        tokio::task::yield_now().await;
        bus.error("test", None, "wake up");
        assert!(reader.await.unwrap());
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
