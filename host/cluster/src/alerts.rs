//! The cluster's alerts: every alert a node's store commits (its event is published only then)
//! goes to the stream `<PREFIX>_alerts` (subject `<prefix>.a.<site token>`), and every node
//! keeps the others' in its own store, so `sitewatch alerts` and `/api/v1/alerts` on any node
//! show the cluster's alerts, not only the ones it sent. The commit also confirms the alert in
//! the book ([`super::book::AlertBook::confirm`]); and a new leader looks here to tell a pending
//! alert that a store committed (its notifications are in that store) from one that no store
//! has (it delivers that one).

use super::book::Pending;
use super::{Context, Nats};
use crate::alert::Alert;
use crate::event::{Event, Received, Subscription};
use crate::store::Store;
use crate::store::StoreError;
use crate::store::cluster_outbox::{ALERT_BATCH, Alerts};
use crate::store::outbox::Queue;
use crate::store::writer::{Record, StoreHandle};
use async_nats::jetstream;
use std::sync::Arc;
use std::time::Duration;

/// The subject of a site's alerts.
pub(super) fn subject(ctx: &Context, site: &str) -> String {
    format!(
        "{}.a.{}",
        ctx.cfg.prefix,
        crate::measurement::sample::site_token(site)
    )
}

/// The stream of alerts: a month of them.
pub(super) fn stream_config(
    cfg: &crate::config::cluster::ClusterConfig,
) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: format!("{}_alerts", cfg.prefix.to_uppercase()),
        subjects: vec![format!("{}.a.>", cfg.prefix)],
        max_age: Duration::from_secs(31 * 24 * 3600),
        storage: jetstream::stream::StorageType::File,
        num_replicas: cfg.replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Publishes this node's committed alerts from its store (see [`crate::store::cluster_outbox::Alerts`]):
/// each to the stream once NATS is set up, then confirmed in the book, then the mark moves. An
/// alert event (published only after its commit) wakes it; so does a tick, for retries. What it
/// could not publish before the node stopped is published by its next run.
pub(super) async fn publish(
    ctx: Context,
    nats: Arc<tokio::sync::OnceCell<Nats>>,
    mut events: Subscription,
    store: Store,
) {
    let queue = Queue::new(&store, Alerts::new(&store));
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = events.recv() => match r {
                Some(Received::Event(e)) if matches!(&*e, Event::Alert(_)) => {}
                Some(_) => continue,
                None => return,
            },
            _ = retry.tick() => {}
        }
        let Some(n) = nats.get() else { continue };
        loop {
            let batch = match queue.waiting(ALERT_BATCH).await {
                Ok(b) => b,
                Err(StoreError::Stopped) => return,
                Err(e) => {
                    tracing::warn!("cluster: cannot read this node's alerts to publish: {e}");
                    break;
                }
            };
            let Some(published) = publish_batch(&ctx, n, &batch, &queue).await else {
                break;
            };
            let first = batch.first().map_or(published, |(id, _)| *id);
            if let Err(e) = queue
                .delivered(first, published, "", ctx.bus.clock().now())
                .await
            {
                tracing::warn!("cluster: cannot note which alerts were published: {e}");
                break;
            }
            if batch.len() < ALERT_BATCH {
                break;
            }
        }
    }
}

/// Publishes `batch` in order, each acknowledged, then confirmed in the book; returns the id of
/// the last one the stream took, or that another node delivered (None if none).
///
/// A leader's alert whose notifications wait for the stream (`gated`) may have been delivered
/// already by the next leader, when this node died or lost NATS before the stream had it: the
/// stream then holds that node's copy (or a later alert of the site), and this node's
/// notifications of it are superseded instead of sent a second time.
async fn publish_batch(
    ctx: &Context,
    n: &Nats,
    batch: &[(i64, (Alert, bool))],
    queue: &Queue<Alerts>,
) -> Option<i64> {
    let mut published = None;
    for (id, (a, gated)) in batch {
        if *gated {
            match delivered_by_another(ctx, n, a).await {
                Ok(Some(node)) => {
                    let why = format!(
                        "not sent: node {node} led after this node and delivered this alert"
                    );
                    tracing::info!(site = %a.site, kind = a.kind.as_str(), "cluster: {why}");
                    let id = *id;
                    let r = queue.refused(id, id, &why, ctx.bus.clock().now()).await;
                    if let Err(e) = r {
                        tracing::warn!("cluster: cannot note a superseded alert: {e}");
                        break;
                    }
                    published = Some(id);
                    continue;
                }
                Ok(None) => {}
                // The stream cannot be read: try again later, nothing is sent meanwhile.
                Err(_) => break,
            }
        }
        let body = serde_json::json!({"node": ctx.cfg.node, "alert": crate::store::alert_json(a)});
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "{}:{}:{}:{}",
                ctx.cfg.node,
                a.site,
                a.kind.as_str(),
                a.time.timestamp_micros()
            )
            .as_str(),
        );
        let sent =
            n.js.publish_with_headers(subject(ctx, &a.site), headers, body.to_string().into())
                .await;
        let acked = match sent {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack)
                .await
                .is_ok_and(|a| a.is_ok()),
            Err(_) => false,
        };
        if !acked {
            break;
        }
        // In the stream first, then confirmed in the book: a new leader that finds it still
        // pending finds it in the stream too, and does not deliver it again.
        ctx.book.confirm(a).await;
        published = Some(*id);
    }
    published
}

/// The node that delivered `a` in this node's stead: the alert stream's newest alert of the
/// site is another node's, and not older than `a`.
async fn delivered_by_another(
    ctx: &Context,
    n: &Nats,
    a: &Alert,
) -> anyhow::Result<Option<String>> {
    use jetstream::stream::LastRawMessageErrorKind;
    let m = match n
        .alert_stream
        .get_last_raw_message_by_subject(&subject(ctx, &a.site))
        .await
    {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v: serde_json::Value = serde_json::from_slice(&m.payload)?;
    let node = v["node"].as_str().unwrap_or_default();
    Ok(crate::store::alert_from_json(&v["alert"])
        .filter(|last| node != ctx.cfg.node && last.time >= a.time)
        .map(|_| node.to_owned()))
}

/// Keeps every other node's alerts in this node's store, from the start of the stream (the
/// store keeps each once).
pub(super) async fn consume(ctx: Context, n: Nats, store: StoreHandle) {
    use futures_util::StreamExt;
    use jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let mut last_seq: Option<u64> = None;
    loop {
        let deliver = match last_seq {
            None => DeliverPolicy::All,
            Some(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let consumer = n
            .alert_stream
            .create_consumer(pull::Config {
                deliver_policy: deliver,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => c
                .stream()
                .heartbeat(Duration::from_secs(1))
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .ok(),
            Err(_) => None,
        };
        if let Some(mut messages) = messages {
            loop {
                let next = tokio::select! {
                    _ = ctx.stop.cancelled() => return,
                    m = messages.next() => m,
                };
                let Some(Ok(message)) = next else { break };
                if let Ok(info) = message.info() {
                    last_seq = Some(info.stream_sequence);
                }
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&message.payload) else {
                    continue;
                };
                if v["node"].as_str() == Some(ctx.cfg.node.as_str()) {
                    continue;
                }
                if let Some(a) = crate::store::alert_from_json(&v["alert"]) {
                    store.send(Record::Remote(a));
                }
            }
        }
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The pending alerts a new leader found in the book: after a lease's time (a node that lost
/// the lease alive publishes what its store committed meanwhile), those the alert stream holds
/// are confirmed (their store delivers them), and the rest go to the recorder to deliver,
/// while this node still leads. A stream that cannot be read is tried again for half a minute,
/// then the rest is delivered anyway: a possible repeat rather than a loss.
pub(super) async fn settle_pending(ctx: Context, n: Nats, mut pending: Pending) {
    tokio::select! {
        _ = ctx.stop.cancelled() => return,
        _ = tokio::time::sleep(ctx.cfg.lease_ttl) => {}
    }
    for _ in 0..30 {
        match drop_committed(&ctx, &n, &mut pending).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(
                    "cluster: cannot read the alert stream to settle pending alerts yet: {e}"
                );
                tokio::select! {
                    _ = ctx.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    if pending.is_empty() || !ctx.book.leading() {
        return;
    }
    let _ = ctx
        .recorder
        .send(crate::recorder::RecorderInput::Pending(pending))
        .await;
}

/// Takes out of `pending` the alerts a store committed (the stream holds them, or a later alert
/// of their site), confirming them in the book: they are that store's to deliver.
async fn drop_committed(ctx: &Context, n: &Nats, pending: &mut Pending) -> anyhow::Result<()> {
    use jetstream::stream::LastRawMessageErrorKind;
    let sites: Vec<String> = pending.keys().cloned().collect();
    for site in sites {
        let last = match n
            .alert_stream
            .get_last_raw_message_by_subject(&subject(ctx, &site))
            .await
        {
            Ok(m) => serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()
                .and_then(|v| crate::store::alert_from_json(&v["alert"])),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(e.into()),
        };
        let Some(last) = last else { continue };
        let Some(list) = pending.get_mut(&site) else {
            continue;
        };
        let (committed, left): (Vec<Alert>, Vec<Alert>) =
            list.drain(..).partition(|a| a.time <= last.time);
        *list = left;
        for a in committed {
            ctx.book.confirm(&a).await;
        }
    }
    pending.retain(|_, l| !l.is_empty());
    Ok(())
}
