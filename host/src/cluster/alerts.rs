//! The cluster's alerts: every alert a node's store commits (its event is published only then)
//! goes to the stream `<PREFIX>_alerts` (subject `<prefix>.a.<site token>`), and every node
//! keeps the others' in its own store, so `sitewatch alerts` and `/api/v1/alerts` on any node
//! show the cluster's alerts, not only the ones it sent. The commit also confirms the alert in
//! the book ([`super::book::AlertBook::confirm`]); and a new leader looks here to tell a pending
//! alert that a store committed (its notifications are in that store) from one that no store
//! has (it delivers that one).

use super::book::Loaded;
use super::{Context, Nats};
use crate::alert::Alert;
use crate::event::{Event, Received, Subscription};
use crate::store::writer::{Record, StoreHandle};
use async_nats::jetstream;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Alerts waiting for NATS at most (oldest dropped beyond: the stream copy only serves other
/// nodes' listings; the alert itself is in this node's store).
const BACKLOG: usize = 10_000;

/// The subject of a site's alerts.
pub(super) fn subject(ctx: &Context, site: &str) -> String {
    format!("{}.a.{}", ctx.cfg.prefix, super::wire::site_token(site))
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

/// Reads this node's committed alerts from the bus (from the start: none is missed while NATS
/// is away), confirms each in the book, and publishes it to the stream once NATS is set up.
pub(super) async fn publish(
    ctx: Context,
    nats: Arc<tokio::sync::OnceCell<Nats>>,
    mut events: Subscription,
) {
    let mut waiting: VecDeque<Alert> = VecDeque::new();
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = events.recv() => match r {
                Some(Received::Event(e)) => {
                    if let Event::Alert(a) = &*e {
                        ctx.book.confirm(a).await;
                        if waiting.len() >= BACKLOG {
                            waiting.pop_front();
                        }
                        waiting.push_back(a.clone());
                    }
                }
                Some(Received::Dropped(_)) => {}
                None => return,
            },
            _ = retry.tick() => {}
        }
        let Some(n) = nats.get() else { continue };
        while let Some(a) = waiting.front() {
            let body =
                serde_json::json!({"node": ctx.cfg.node, "alert": crate::store::alert_json(a)});
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
                n.js.publish_with_headers(subject(&ctx, &a.site), headers, body.to_string().into())
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
            waiting.pop_front();
        }
    }
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

/// Takes out of `book`'s pending alerts those a store committed (the stream holds them, or a
/// later alert of their site), confirming them in the book: they are that store's to deliver.
pub(super) async fn drop_committed(ctx: &Context, n: &Nats, book: &mut Loaded) {
    let sites: Vec<String> = book.pending.keys().cloned().collect();
    for site in sites {
        let last = n
            .alert_stream
            .get_last_raw_message_by_subject(&subject(ctx, &site))
            .await
            .ok()
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
            .and_then(|v| crate::store::alert_from_json(&v["alert"]));
        let Some(last) = last else { continue };
        let Some(list) = book.pending.get_mut(&site) else {
            continue;
        };
        let (committed, left): (Vec<Alert>, Vec<Alert>) =
            list.drain(..).partition(|a| a.time <= last.time);
        *list = left;
        for a in committed {
            ctx.book.confirm(&a).await;
        }
    }
    book.pending.retain(|_, l| !l.is_empty());
}
