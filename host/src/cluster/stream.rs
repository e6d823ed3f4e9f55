//! The measurement stream: this node's probes leave through a bounded outbox (nothing is lost
//! within it while NATS is away; beyond it the oldest are dropped and counted), and every
//! node's probes come back through an ordered consumer that starts one longest window back,
//! so a node that starts (or becomes leader) has full windows.

use super::wire::{Sample, site_token};
use super::{Context, Nats};
use crate::recorder::RecorderInput;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Measurements waiting to be published, each with its number (the stream deduplicates a
/// retried publish by `node:instance:number`).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    queue: Mutex<Queue>,
    added: Notify,
    emptied: Notify,
}

struct Queue {
    items: VecDeque<(u64, Sample)>,
    next: u64,
    cap: usize,
    /// Dropped because the outbox was full, since the last report.
    dropped: u64,
    closed: bool,
}

/// Samples published per round trip of acknowledgements.
const BATCH: usize = 512;

impl Outbox {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(OutboxInner {
                queue: Mutex::new(Queue {
                    items: VecDeque::new(),
                    next: 0,
                    cap: cap.max(1),
                    dropped: 0,
                    closed: false,
                }),
                added: Notify::new(),
                emptied: Notify::new(),
            }),
        }
    }

    /// Queues a sample; never waits.
    pub fn push(&self, sample: Sample) {
        let mut q = self.inner.queue.lock().expect("outbox lock");
        if q.items.len() >= q.cap {
            q.items.pop_front();
            q.dropped += 1;
        }
        let n = q.next;
        q.next += 1;
        q.items.push_back((n, sample));
        drop(q);
        self.inner.added.notify_one();
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.inner.queue.lock().expect("outbox lock").items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn batch(&self) -> Vec<(u64, Sample)> {
        let q = self.inner.queue.lock().expect("outbox lock");
        q.items.iter().take(BATCH).cloned().collect()
    }

    /// Removes what was published (up to number `last`); returns the count dropped for room
    /// since the last call.
    fn done(&self, last: u64) -> u64 {
        let mut q = self.inner.queue.lock().expect("outbox lock");
        while q.items.front().is_some_and(|(n, _)| *n <= last) {
            q.items.pop_front();
        }
        if q.items.is_empty() {
            self.inner.emptied.notify_waiters();
        }
        std::mem::take(&mut q.dropped)
    }

    pub(super) fn close(&self) {
        self.inner.queue.lock().expect("outbox lock").closed = true;
        self.inner.added.notify_one();
    }

    /// Waits until nothing waits (at shutdown).
    pub(super) async fn drained(&self) {
        loop {
            let emptied = self.inner.emptied.notified();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// Publishes the outbox in batches: every sample of a batch is sent, then every
/// acknowledgement awaited; a failure sends the batch again after a pause (the stream drops
/// the repeats).
pub(super) async fn publish(ctx: Context, n: Nats) {
    let mut delay = Duration::from_millis(100);
    loop {
        let batch = ctx.outbox.batch();
        if batch.is_empty() {
            tokio::select! {
                _ = ctx.stop.cancelled() => return,
                _ = ctx.outbox.inner.added.notified() => continue,
            }
        }
        let last = batch.last().map(|(n, _)| *n).expect("not empty");
        let sent = async {
            let mut acks = Vec::with_capacity(batch.len());
            for (number, s) in &batch {
                let subject = ctx.cfg.subject(&s.location, &site_token(&s.site));
                let message = PublishMessage::build()
                    .payload(s.encode().into())
                    .message_id(format!("{}:{}:{number}", ctx.cfg.node, ctx.instance));
                acks.push(n.js.send_publish(subject, message).await?);
            }
            for ack in acks {
                ack.await?;
            }
            anyhow::Ok(())
        };
        let result = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = sent => r,
        };
        match result {
            Ok(()) => {
                delay = Duration::from_millis(100);
                let dropped = ctx.outbox.done(last);
                if dropped > 0 {
                    ctx.bus.error(
                        "cluster",
                        None,
                        format!(
                            "{dropped} measurements of this node were not published: the outbox of {} was full while NATS was unreachable (they are in this node's store)",
                            ctx.cfg.buffer
                        ),
                    );
                }
            }
            Err(e) => {
                tracing::warn!("cluster: publishing failed, retrying: {e}");
                tokio::select! {
                    _ = ctx.stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Consumes every node's measurements from one longest window back, then as they come, and
/// hands the other nodes' to the recorder. An ephemeral pull consumer with a 1 s idle heartbeat:
/// a server that dies under it is noticed in two heartbeats (async-nats' ordered consumer waits
/// a minute), and then a new one starts after the last message seen, so nothing is missed or
/// counted twice. A gap in the consumer's own numbering (a batch lost with its server) starts
/// one the same way.
pub(super) async fn consume(ctx: Context, n: Nats) {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let since = chrono::Utc::now() - chrono::TimeDelta::from_std(ctx.replay).unwrap_or_default();
    let mut last_seq: Option<u64> = None;
    let mut delay = Duration::from_millis(200);
    loop {
        let deliver = match last_seq {
            None => DeliverPolicy::ByStartTime { start_time: since },
            Some(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let consumer = n
            .stream
            .create_consumer(pull::Config {
                filter_subject: ctx.cfg.subjects(),
                deliver_policy: deliver,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => {
                c.stream()
                    .heartbeat(Duration::from_secs(1))
                    .expires(Duration::from_secs(5))
                    .max_messages_per_batch(1000)
                    .messages()
                    .await
            }
            Err(e) => {
                tracing::debug!("cluster: cannot consume the stream yet: {e}");
                if pause(&ctx, &mut delay).await {
                    return;
                }
                continue;
            }
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("cluster: cannot consume the stream yet: {e}");
                if pause(&ctx, &mut delay).await {
                    return;
                }
                continue;
            }
        };
        let mut consumer_seq = 0;
        loop {
            let next = tokio::select! {
                _ = ctx.stop.cancelled() => return,
                m = messages.next() => m,
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!("cluster: consuming the stream failed, starting again: {e}");
                    break;
                }
                None => break,
            };
            delay = Duration::from_millis(200);
            if let Ok(info) = message.info() {
                if info.consumer_sequence != consumer_seq + 1 {
                    tracing::warn!("cluster: the stream skipped messages, starting again");
                    break;
                }
                consumer_seq = info.consumer_sequence;
                last_seq = Some(info.stream_sequence);
            }
            let sample = match Sample::decode(&message.payload) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(subject = %message.subject, "cluster: a measurement that does not decode was skipped: {e}");
                    continue;
                }
            };
            if sample.node == ctx.cfg.node {
                // This node's own probes reached its recorder directly.
                continue;
            }
            if ctx
                .recorder
                .send(RecorderInput::Remote(Box::new(sample)))
                .await
                .is_err()
            {
                return;
            }
        }
        if pause(&ctx, &mut delay).await {
            return;
        }
    }
}

/// Waits before another attempt; true when stopping.
async fn pause(ctx: &Context, delay: &mut Duration) -> bool {
    let stop = tokio::select! {
        _ = ctx.stop.cancelled() => true,
        _ = tokio::time::sleep(*delay) => false,
    };
    *delay = (*delay * 2).min(Duration::from_secs(5));
    stop
}
