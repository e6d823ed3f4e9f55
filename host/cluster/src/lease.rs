//! The leader's lease: one key in a bucket whose `max_age` is the lease TTL. A candidate takes
//! it only with `create` (which fails while the key lives); only the holder renews it, with
//! `update` on its revision; nobody deletes it. A holder steps down by its own monotonic
//! deadline (sent time + TTL − margin), before the server can expire the key, whatever its
//! connection does. Taking over only through expiry avoids the clustered compare-and-set race
//! of nats-server before 2.9.21 (nats-server#4320), where two `update`s of one revision can
//! both succeed. Right after a restart of the whole NATS cluster, such servers may also accept
//! a `create` whose entry the next stream leader does not have: a candidate therefore leads
//! only once an immediate `update` of its new revision succeeds too, and a node that lost the
//! lease that way waits one TTL before it tries again. When the entry is gone right after the
//! `create` (such a stream can lose its index of the key, and then every `create` succeeds
//! and nothing stays), the node deletes the lease bucket and creates it again. Each node ticks at its own random phase,
//! so candidates rarely try at the same instant. A node with no connection to any NATS server
//! for `alone_after` (30 s) goes on alone.

use super::{Context, Nats, Role};
use crate::recorder::RecorderInput;
use async_nats::jetstream::kv;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const KEY: &str = "leader";

pub(super) async fn run(
    ctx: Context,
    nats: Arc<tokio::sync::OnceCell<Nats>>,
    client: async_nats::Client,
) {
    let ttl = ctx.cfg.lease_ttl;
    let margin = (ttl / 5).max(Duration::from_millis(300));
    let every = ttl / 4;
    let me = format!("{} {}", ctx.cfg.node, ctx.instance);
    let mut role = Role::Follower;
    // The holder's revision and deadline.
    let mut held: Option<(u64, Instant)> = None;
    let mut contact = Instant::now();
    // Candidates quiet until this instant (after a lease lost at once).
    let mut quiet_until = Instant::now();
    let phase = every.mul_f64(fastrand::f64());
    let mut tick = tokio::time::interval_at(Instant::now() + phase, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        // Alone means NATS is unreachable: no connection to any server. A connected node
        // whose JetStream requests fail (streams electing leaders after a server died) waits
        // as a follower; alerting alone then would only repeat the leader's alerts.
        if client.connection_state() == async_nats::connection::State::Connected {
            contact = now;
        }
        if let Some((_, deadline)) = held
            && now >= deadline
        {
            held = None;
            ctx.book.set_leading(None);
            role = tell(&ctx, role, Role::Follower, None).await;
        }
        let Some(n) = nats.get() else {
            if now.duration_since(contact) > ctx.cfg.alone_after {
                role = tell(&ctx, role, Role::Alone, None).await;
            }
            continue;
        };
        let sent = Instant::now();
        match held {
            Some((rev, _)) => match n.leader.update(KEY, me.clone().into(), rev).await {
                Ok(rev) => {
                    contact = Instant::now();
                    let deadline = sent + ttl - margin;
                    held = Some((rev, deadline));
                    ctx.book.set_leading(Some(deadline.into_std()));
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    quiet_until = Instant::now() + ttl;
                    held = None;
                    ctx.book.set_leading(None);
                    role = tell(&ctx, role, Role::Follower, None).await;
                }
                // Ambiguous or unreachable: the deadline decides.
                Err(e) => tracing::warn!("cluster: cannot renew the lease: {e}"),
            },
            None if now < quiet_until => {}
            None => match take(&n.leader, &me).await {
                Ok(Taken::Lost) => {
                    contact = Instant::now();
                    quiet_until = contact + ttl;
                }
                Ok(Taken::Vanished) => {
                    contact = Instant::now();
                    quiet_until = contact + ttl;
                    tracing::warn!(
                        "cluster: the lease bucket lost the entry just written to it (a fault of NATS 2.9 servers after a restart); creating the bucket again"
                    );
                    if let Err(e) = super::recreate_lease_bucket(&n.js, &ctx.cfg).await {
                        tracing::warn!("cluster: cannot create the lease bucket again: {e}");
                    }
                }
                Ok(Taken::Held(rev)) => {
                    contact = Instant::now();
                    let deadline = sent + ttl - margin;
                    match ctx.book.load(&n.alerts, summary_sites(&ctx)).await {
                        Ok(mut book) => {
                            held = Some((rev, deadline));
                            ctx.book.set_leading(Some(deadline.into_std()));
                            let pending = std::mem::take(&mut book.pending);
                            role = tell(&ctx, role, Role::Leader, Some(book)).await;
                            // The pending alerts are settled off the lease's loop: a store may
                            // have committed them (they reach the alert stream a moment later).
                            if !pending.is_empty() {
                                tokio::spawn(super::alerts::settle_pending(
                                    ctx.clone(),
                                    n.clone(),
                                    pending,
                                ));
                            }
                        }
                        // Leading without the state would repeat or lose alerts: let the
                        // lease expire and try again.
                        Err(e) => {
                            tracing::warn!(
                                "cluster: took the lease but cannot read the alert state: {e}"
                            );
                        }
                    }
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    contact = Instant::now();
                    if role != Role::Follower {
                        // Back from being alone: the book says which of the outages this node
                        // announced alone the cluster does not have (they are closed).
                        let book = match role {
                            Role::Alone => ctx.book.read(&n.alerts, summary_sites(&ctx)).await.ok(),
                            _ => None,
                        };
                        role = tell(&ctx, role, Role::Follower, book).await;
                    }
                }
                Err(e) => {
                    tracing::debug!("cluster: cannot reach the lease: {e}");
                    if Instant::now().duration_since(contact) > ctx.cfg.alone_after
                        && held.is_none()
                    {
                        role = tell(&ctx, role, Role::Alone, None).await;
                    }
                }
            },
        }
    }
}

/// What became of a `create` of the lease.
enum Taken {
    /// This node holds it: the revision to renew.
    Held(u64),
    /// Another entry replaced it at once: another node holds it.
    Lost,
    /// The bucket has no entry right after the create: its stream lost track of the key.
    Vanished,
}

/// Takes the lease: a `create`, then an `update` of the created revision, which proves the
/// stream's leader kept the entry.
async fn take(bucket: &kv::Store, me: &str) -> Result<Taken, kv::CreateError> {
    let rev = bucket.create(KEY, me.to_owned().into()).await?;
    match bucket.update(KEY, me.to_owned().into(), rev).await {
        Ok(rev) => Ok(Taken::Held(rev)),
        Err(e) => {
            tracing::info!("cluster: the lease taken was not kept ({e}): not leading");
            // Every create succeeds and no entry stays when a NATS 2.9 stream lost its
            // index of the key after a restart (the update then expects sequence 0).
            match bucket.entry(KEY).await {
                Ok(None) => Ok(Taken::Vanished),
                _ => Ok(Taken::Lost),
            }
        }
    }
}

/// The sites of the config, by name.
fn summary_sites(ctx: &Context) -> Vec<String> {
    ctx.summary
        .lock()
        .expect("summary lock")
        .sites
        .keys()
        .cloned()
        .collect()
}

/// Tells the recorder (and the outputs) about a new role, with the book when it was read;
/// returns the role.
async fn tell(ctx: &Context, old: Role, new: Role, book: Option<super::book::Loaded>) -> Role {
    if old == new && book.is_none() {
        return new;
    }
    let text = match new {
        Role::Leader => format!("node {} leads the cluster: its alerts go out", ctx.cfg.node),
        Role::Follower => format!("node {} follows: another node leads", ctx.cfg.node),
        Role::Alone => format!(
            "node {} cannot reach NATS: it alerts on its own probes ({}) until NATS is back",
            ctx.cfg.node, ctx.cfg.location
        ),
    };
    tracing::info!("{text}");
    ctx.bus
        .send(crate::event::Event::Cluster(crate::event::ClusterReport {
            time: chrono::Utc::now(),
            node: ctx.cfg.node.as_str().into(),
            role: match new {
                Role::Leader => "leader",
                Role::Follower => "follower",
                Role::Alone => "alone",
            },
            detail: text,
        }));
    let _ = ctx
        .recorder
        .send(RecorderInput::Role { role: new, book })
        .await;
    new
}
