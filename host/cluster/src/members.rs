//! Membership: each node puts a heartbeat (name, location, instance, config hash) into a bucket
//! whose `max_age` is the heartbeat TTL, and reads everyone's. The live members of this node's
//! location make its share of the sites; a config hash that differs from this node's is an
//! error event naming the node and the difference, once per node and hash.

use super::digest::Summary;
use super::{Context, Nats, Share};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Beat {
    node: String,
    location: String,
    instance: String,
    config: String,
}

pub(super) async fn run(ctx: Context, n: Nats) {
    let ttl = ctx.cfg.heartbeat_ttl;
    let mut tick = tokio::time::interval(ttl / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut contact = Instant::now();
    // The config hash of each other node last reported as differing.
    let mut reported: HashMap<String, String> = HashMap::new();
    let mut published: Option<String> = None;
    let mut beating = false;
    let mut clash_reported = false;
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let summary = ctx.summary.lock().expect("summary lock").clone();
        let hash = summary.hash();
        if published.as_ref() != Some(&hash) {
            let bytes = serde_json::to_vec(&summary).expect("a summary serializes");
            if n.configs
                .put(format!("node.{}", ctx.cfg.node), bytes.into())
                .await
                .is_ok()
            {
                published = Some(hash.clone());
            }
        }
        let beat = Beat {
            node: ctx.cfg.node.clone(),
            location: ctx.cfg.location.clone(),
            instance: ctx.instance.clone(),
            config: hash.clone(),
        };
        let key = format!("node.{}", ctx.cfg.node);
        let beats = async {
            // A clash: since this node's last beat, another instance wrote the key.
            if beating
                && let Ok(Some(old)) = n.members.get(key.clone()).await
                && let Ok(old) = serde_json::from_slice::<Beat>(&old)
                && old.instance != ctx.instance
                && !clash_reported
            {
                ctx.bus.error(
                    "cluster",
                    None,
                    format!(
                        "another sitewatch runs as node {}: node names must be unique in a cluster",
                        ctx.cfg.node,
                    ),
                );
                clash_reported = true;
            }
            n.members
                .put(
                    key.clone(),
                    serde_json::to_vec(&beat).expect("a beat serializes").into(),
                )
                .await?;
            read(&n).await
        };
        // Listing the keys takes a consumer, which can hang while the bucket's stream has no
        // leader: a round that takes longer than a TTL counts as a failed one.
        let beats = async {
            tokio::time::timeout(ttl, beats)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("reading the members timed out")))
        };
        let beats = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            b = beats => b,
        };
        match beats {
            Ok(beats) => {
                beating = true;
                contact = Instant::now();
                let mut members: Vec<String> = beats
                    .iter()
                    .filter(|b| b.location == ctx.cfg.location)
                    .map(|b| b.node.clone())
                    .chain([ctx.cfg.node.clone()])
                    .collect();
                members.sort();
                members.dedup();
                set_share(&ctx, members);
                for b in beats
                    .iter()
                    .filter(|b| b.node != ctx.cfg.node && b.config != hash)
                {
                    if reported.get(&b.node) == Some(&b.config) {
                        continue;
                    }
                    reported.insert(b.node.clone(), b.config.clone());
                    let other = n
                        .configs
                        .get(format!("node.{}", b.node))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|bytes| serde_json::from_slice::<Summary>(&bytes).ok());
                    let text = match other {
                        Some(o) => summary.differences(&b.node, &o),
                        None => format!("node {} runs another config than this node", b.node),
                    };
                    ctx.bus.error("cluster", None, text);
                }
            }
            Err(e) => {
                tracing::debug!("cluster: cannot read the members: {e}");
                // Without news for a TTL, the others may be gone or unreachable: probe all of
                // this location's sites rather than none.
                if contact.elapsed() > ttl {
                    set_share(&ctx, vec![ctx.cfg.node.clone()]);
                }
            }
        }
    }
}

fn set_share(ctx: &Context, members: Vec<String>) {
    let share = Share {
        me: ctx.cfg.node.clone(),
        location: ctx.cfg.location.clone(),
        members,
    };
    if *ctx.share.load() != share {
        tracing::info!(members = ?share.members, "cluster: this location's members changed");
        ctx.share.store(Arc::new(share));
    }
}

/// Every live heartbeat.
async fn read(n: &Nats) -> anyhow::Result<Vec<Beat>> {
    let mut keys = n.members.keys().await?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        if let Some(bytes) = n.members.get(key?).await?
            && let Ok(b) = serde_json::from_slice::<Beat>(&bytes)
        {
            out.push(b);
        }
    }
    Ok(out)
}
