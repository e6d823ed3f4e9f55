//! The measurement stream: this node's probes leave from its store ([`super::outbox`]: nothing
//! is lost while NATS is away, nor across a restart), and every node's probes come back through
//! a consumer that starts one longest window back, so a node that starts (or becomes leader)
//! has full windows.

use super::{Context, Nats};
use crate::measurement::sample::{Sample, site_token};
use crate::recorder::RecorderInput;
use crate::retry::Backoff;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::cluster_outbox::{SAMPLE_BATCH, Samples};
use crate::store::outbox::Queue;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use std::time::Duration;

/// Publishes the node's stored probes after the outbox mark, in batches: every sample of a
/// batch is sent, then every acknowledgement awaited, then the mark moves; a failure sends the
/// batch again after a pause (the stream drops repeats by their id, `node:rowid`).
pub(super) async fn publish(ctx: Context, n: Nats, store: Store) {
    let queue = Queue::new(
        &store,
        Samples::new(&ctx.cfg.node, &ctx.cfg.location, ctx.cfg.buffer),
    );
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut unreadable = false;
    loop {
        let read = queue.waiting(SAMPLE_BATCH).await;
        let skipped = queue.with(Samples::take_skipped);
        if skipped > 0 {
            ctx.bus.error(
                "cluster",
                None,
                format!(
                    "{skipped} measurements of this node were not published: more than cluster.buffer ({}) waited for NATS (they are in this node's store)",
                    ctx.cfg.buffer
                ),
            );
        }
        let batch = match read {
            Ok(batch) => {
                unreadable = false;
                batch
            }
            Err(StoreError::Stopped) => return,
            Err(e) => {
                if !std::mem::replace(&mut unreadable, true) {
                    ctx.bus.error(
                        "cluster",
                        None,
                        format!("cannot read this node's probes to publish them: {e}; retrying"),
                    );
                }
                Vec::new()
            }
        };
        if batch.is_empty() {
            // The writer stores a batch every 200 ms; look again soon.
            tokio::select! {
                _ = ctx.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        }
        let last = batch.last().map(|(rowid, _)| *rowid).expect("not empty");
        let sent = async {
            let mut acks = Vec::with_capacity(batch.len());
            for (rowid, s) in &batch {
                let subject = ctx.cfg.subject(&s.location, &site_token(&s.site));
                let message = PublishMessage::build()
                    .payload(s.encode().into())
                    .message_id(format!("{}:{rowid}", ctx.cfg.node));
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
                backoff.reset();
                let first = batch.first().map_or(last, |(rowid, _)| *rowid);
                let now = ctx.bus.clock().now();
                if let Err(e) = queue.delivered(first, last, "", now).await {
                    tracing::warn!("cluster: cannot note what was published: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("cluster: publishing failed, retrying: {e}");
                tokio::select! {
                    _ = ctx.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
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
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
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
                if pause(&ctx, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("cluster: cannot consume the stream yet: {e}");
                if pause(&ctx, &mut backoff).await {
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
            backoff.reset();
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
        if pause(&ctx, &mut backoff).await {
            return;
        }
    }
}

/// Waits before another attempt; true when stopping.
async fn pause(ctx: &Context, backoff: &mut Backoff) -> bool {
    tokio::select! {
        _ = ctx.stop.cancelled() => true,
        _ = tokio::time::sleep(backoff.next_delay()) => false,
    }
}
