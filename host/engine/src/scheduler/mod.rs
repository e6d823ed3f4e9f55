//! The scheduler: one tokio task per site. Each site ticks at its interval from a start offset
//! derived from its name, so many sites spread over the interval instead of firing together. A
//! probe runs in its own task, so a slow probe never delays the next tick; at most
//! `max_in_flight` probes of a site run at once, and a tick beyond that is skipped and counted.

pub mod share;

use crate::config::diff::SitesDiff;
use crate::plugin::set::PluginSet;
use crate::probe::Prober;
use crate::recorder::RecorderInput;
use crate::scheduler::share::SharedShare;
use crate::skips::Skips;
use crate::target::ProbeTarget;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

struct SiteTask {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// The cap on probes in flight across all sites. When it is reached, sitewatch is overloaded:
/// a tick is skipped and counted rather than started late, so memory stays bounded and the
/// probes that run keep their schedule. A probe holds its permit until the recorder has its
/// measurement, so probes waiting for a busy recorder count against the cap too.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    /// Also holds the cap (for messages and for resizing the permits).
    skips: Arc<Skips>,
}

impl InFlight {
    /// Probes holding a permit now (approximate while the cap is being lowered).
    pub fn probes(&self) -> usize {
        self.skips
            .cap()
            .saturating_sub(self.permits.available_permits())
    }
}

pub struct Scheduler {
    prober: Prober,
    plugins: Option<Arc<PluginSet>>,
    bus: crate::event::Bus,
    out: mpsc::Sender<RecorderInput>,
    tasks: HashMap<Arc<str>, SiteTask>,
    in_flight: InFlight,
    /// A cluster node probes only its share of the sites.
    share: Option<SharedShare>,
}

impl Scheduler {
    /// A scheduler that runs at most `skips.cap()` probes at once, across all sites, and counts
    /// what it skips in `skips`.
    pub fn new(
        prober: Prober,
        plugins: Option<Arc<PluginSet>>,
        out: mpsc::Sender<RecorderInput>,
        skips: Arc<Skips>,
        bus: crate::event::Bus,
    ) -> Self {
        let cap = skips.cap();
        Self {
            prober,
            plugins,
            bus,
            out,
            tasks: HashMap::new(),
            share: None,
            in_flight: InFlight {
                permits: Arc::new(Semaphore::new(cap)),
                skips,
            },
        }
    }

    /// Probes only the sites `share` gives this node (a cluster node), looked at on each tick.
    pub fn with_share(mut self, share: Option<SharedShare>) -> Self {
        self.share = share;
        self
    }

    /// The probes in flight, to read from elsewhere (the server's metrics).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.clone()
    }

    /// Applies a reload's site changes: stops the removed sites, and (re)starts the added and
    /// changed ones, and any of `targets` not running yet. Unchanged sites are not touched.
    pub fn apply(&mut self, diff: &SitesDiff, targets: &[ProbeTarget]) {
        for name in &diff.removed {
            if let Some(task) = self.tasks.remove(name.as_str()) {
                task.cancel.cancel();
            }
        }
        for t in targets {
            if !diff.restarts(&t.name) && self.tasks.contains_key(&t.name) {
                continue;
            }
            if let Some(old) = self.tasks.remove(&t.name) {
                old.cancel.cancel();
            }
            // A paused site is not probed until it is resumed (a change that restarts it).
            if t.config.paused {
                continue;
            }
            self.tasks
                .insert(Arc::clone(&t.name), self.spawn(t.clone()));
        }
    }

    /// Changes the cap on probes in flight (a reload). Lowering it takes effect as probes end.
    pub fn set_max_in_flight(&mut self, cap: usize) {
        let old = self.in_flight.skips.cap();
        if cap > old {
            self.in_flight.permits.add_permits(cap - old);
        } else {
            let mut left = old - cap;
            left -= self.in_flight.permits.forget_permits(left);
            if left > 0 {
                // Probes hold the rest: take their permits as they come back.
                let permits = Arc::clone(&self.in_flight.permits);
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(left as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.in_flight.skips.set_cap(cap);
    }

    fn spawn(&self, target: ProbeTarget) -> SiteTask {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_site(
            self.prober.clone(),
            Probing {
                plugins: self.plugins.clone(),
                bus: self.bus.clone(),
            },
            target,
            self.out.clone(),
            self.in_flight.clone(),
            self.share.clone(),
            cancel.clone(),
        ));
        SiteTask { cancel, handle }
    }

    /// Stops every site and waits for their tasks (in-flight probes are abandoned).
    pub async fn stop(self) {
        for task in self.tasks.values() {
            task.cancel.cancel();
        }
        for (_, task) in self.tasks {
            let _ = task.handle.await;
        }
    }
}

/// Where in its interval a site's ticks fall: a hash of its name, so sites spread over the
/// interval and a restart keeps each site's phase. SHA-256, not `DefaultHasher`, whose
/// algorithm may change between Rust releases.
pub(crate) fn start_offset(name: &str, interval: Duration) -> Duration {
    let digest = Sha256::digest(name.as_bytes());
    let h = u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    );
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(h) % nanos) as u64)
}

/// What a probe needs besides the prober: the plugins its checks run on, and the bus their
/// pauses are reported on.
#[derive(Clone)]
struct Probing {
    plugins: Option<Arc<PluginSet>>,
    bus: crate::event::Bus,
}

async fn run_site(
    prober: Prober,
    plugins: Probing,
    target: ProbeTarget,
    out: mpsc::Sender<RecorderInput>,
    in_flight: InFlight,
    share: Option<SharedShare>,
    cancel: CancellationToken,
) {
    let interval = target.config.interval;
    let first = Instant::now() + start_offset(&target.name, interval);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Ticks the runtime reached too late are skipped by the ticker: counted here, as the
    // monitor's own overload (never against the site's availability).
    let mut last_planned: Option<Instant> = None;
    let slots = Arc::new(Semaphore::new(target.config.max_in_flight as usize));
    let mut probes = JoinSet::new();
    // A cluster node: whether it owns the site, and the changes of its share.
    let owns = |share: &Option<SharedShare>| {
        share.as_ref().is_none_or(|s| {
            s.load()
                .owns(&target.name, target.config.locations.as_deref())
        })
    };
    let mut owned = owns(&share);
    let mut changes = share.as_ref().map(|s| s.subscribe());
    let skipped = |overloaded: bool| {
        target.skipped.fetch_add(1, Ordering::Relaxed);
        if overloaded {
            in_flight.skips.overloaded();
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = share_changed(&mut changes) => {
                let now = owns(&share);
                let gained = now && !owned;
                owned = now;
                if !gained || !changed {
                    continue;
                }
                // A site this node just took over (its node died or left): probe it now, so
                // the handover costs the detection time, not also up to an interval.
                let planned = Instant::now();
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { continue };
                let Ok(global) = Arc::clone(&in_flight.permits).try_acquire_owned() else { continue };
                spawn_probe(&mut probes, &prober, &plugins, &target, &out, &in_flight, planned, (slot, global));
            }
            planned = ticker.tick() => {
                if let Some(last) = last_planned.replace(planned) {
                    let missed = (planned.saturating_duration_since(last).as_nanos()
                        / interval.as_nanos().max(1))
                    .saturating_sub(1) as u64;
                    if missed > 0 {
                        target.skipped.fetch_add(missed, Ordering::Relaxed);
                        in_flight.skips.late(missed);
                    }
                }
                // Another node of this location probes it (or no node of this location does).
                owned = owns(&share);
                if !owned {
                    continue;
                }
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    skipped(false);
                    continue;
                };
                let Ok(global) = Arc::clone(&in_flight.permits).try_acquire_owned() else {
                    skipped(true);
                    continue;
                };
                spawn_probe(&mut probes, &prober, &plugins, &target, &out, &in_flight, planned, (slot, global));
            }
            Some(_) = probes.join_next(), if !probes.is_empty() => {}
        }
    }
    probes.abort_all();
}

/// Runs one probe of `target` in `probes`, holding its site's slot and a global permit until
/// the recorder has the measurement.
#[allow(clippy::too_many_arguments)]
fn spawn_probe(
    probes: &mut JoinSet<()>,
    prober: &Prober,
    plugins: &Probing,
    target: &ProbeTarget,
    out: &mpsc::Sender<RecorderInput>,
    in_flight: &InFlight,
    planned: Instant,
    permits: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
) {
    let (prober, plugins, target, out, skips) = (
        prober.clone(),
        plugins.clone(),
        target.clone(),
        out.clone(),
        Arc::clone(&in_flight.skips),
    );
    // Registered before the request starts (a little early is safe: it only holds back the
    // placing of a measurement that ended before it a moment longer).
    let running = target.running.begin(prober.timeline_now_us());
    probes.spawn(async move {
        let probed = match (&target.config.kind, &plugins.plugins) {
            // A script site's probe is a run of its scenario, on the plugin host.
            (crate::config::kind::Kind::Script(_), Some(set)) => {
                crate::plugin::scenario::probe(set, &prober, &target, &target.scenario, planned)
                    .await
                    .map(|m| (m, None))
            }
            _ => prober.probe(&target, planned).await,
        };
        match probed {
            Ok((mut m, captured)) => {
                m.probe_id = running.id();
                if let (Some(captured), Some(set)) = (captured, &plugins.plugins) {
                    crate::plugin::checks::run(
                        set,
                        &target.config,
                        &target.checks,
                        &plugins.bus,
                        &mut m,
                        captured,
                    )
                    .await;
                }
                // A check's reason may quote a response that echoes a secret.
                if let Some(e) = m
                    .error
                    .as_mut()
                    .filter(|_| !target.config.secrets.is_empty())
                {
                    e.message = target.config.redact(&e.message);
                }
                if out.send(RecorderInput::Measurement(m)).await.is_ok() {
                    // The recorder takes it out of the running probes as it arrives.
                    running.handed_over();
                }
            }
            Err(failure) => {
                target.skipped.fetch_add(1, Ordering::Relaxed);
                skips.failed(failure.0);
            }
        }
        drop(permits);
    });
}

/// Waits for a change of the share; false (and never again) once its sender is gone. Pending
/// for ever without a share (a single sitewatch).
async fn share_changed(
    changes: &mut Option<tokio::sync::watch::Receiver<Arc<crate::scheduler::share::Share>>>,
) -> bool {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_ok() {
        return true;
    }
    *changes = None;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_spread() {
        let i = Duration::from_secs(10);
        assert_eq!(start_offset("a", i), start_offset("a", i));
        let offsets: Vec<_> = (0..1000)
            .map(|n| start_offset(&format!("site-{n}"), i))
            .collect();
        assert!(offsets.iter().all(|o| *o < i));
        // Spread: every tenth of the interval gets some sites.
        for k in 0..10 {
            let lo = i / 10 * k;
            let hi = i / 10 * (k + 1);
            assert!(
                offsets.iter().any(|o| *o >= lo && *o < hi),
                "no site in slot {k}"
            );
        }
    }
}
