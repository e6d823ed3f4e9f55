//! The scheduler: one tokio task per site. Each site ticks at its interval from a start offset
//! derived from its name, so many sites spread over the interval instead of firing together. A
//! probe runs in its own task, so a slow probe never delays the next tick; at most
//! `max_in_flight` probes of a site run at once, and a tick beyond that is skipped and counted.

use crate::plugin::set::PluginSet;
use crate::probe::{ProbeTarget, Prober};
use crate::recorder::RecorderInput;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

struct SiteTask {
    target: ProbeTarget,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// What [`Scheduler::apply`] changed, by site name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SitesDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

pub struct Scheduler {
    prober: Prober,
    plugins: Option<Arc<PluginSet>>,
    out: mpsc::Sender<RecorderInput>,
    tasks: HashMap<Arc<str>, SiteTask>,
}

impl Scheduler {
    pub fn new(
        prober: Prober,
        plugins: Option<Arc<PluginSet>>,
        out: mpsc::Sender<RecorderInput>,
    ) -> Self {
        Self {
            prober,
            plugins,
            out,
            tasks: HashMap::new(),
        }
    }

    /// Makes the running sites match `targets`: starts the added ones, stops the removed ones and
    /// restarts the changed ones. Sites whose config is unchanged are not touched.
    pub fn apply(&mut self, targets: &[ProbeTarget]) -> SitesDiff {
        let mut diff = SitesDiff::default();
        let wanted: HashMap<&str, &ProbeTarget> = targets.iter().map(|t| (&*t.name, t)).collect();
        let gone: Vec<Arc<str>> = self
            .tasks
            .keys()
            .filter(|name| !wanted.contains_key(&***name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(task) = self.tasks.remove(&name) {
                task.cancel.cancel();
            }
            diff.removed.push(name.to_string());
        }
        for t in targets {
            match self.tasks.get(&t.name) {
                Some(task) if task.target.config == t.config => continue,
                Some(_) => diff.changed.push(t.name.to_string()),
                None => diff.added.push(t.name.to_string()),
            }
            if let Some(old) = self.tasks.remove(&t.name) {
                old.cancel.cancel();
            }
            self.tasks
                .insert(Arc::clone(&t.name), self.spawn(t.clone()));
        }
        diff
    }

    fn spawn(&self, target: ProbeTarget) -> SiteTask {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_site(
            self.prober.clone(),
            self.plugins.clone(),
            target.clone(),
            self.out.clone(),
            cancel.clone(),
        ));
        SiteTask {
            target,
            cancel,
            handle,
        }
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

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Where in its interval a site's ticks fall: a stable hash of its name, so restarts keep phase.
pub fn start_offset(name: &str, interval: Duration) -> Duration {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(h.finish()) % nanos) as u64)
}

async fn run_site(
    prober: Prober,
    plugins: Option<Arc<PluginSet>>,
    target: ProbeTarget,
    out: mpsc::Sender<RecorderInput>,
    cancel: CancellationToken,
) {
    let interval = target.config.interval;
    let first = Instant::now() + start_offset(&target.name, interval);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let slots = Arc::new(Semaphore::new(target.config.max_in_flight as usize));
    let mut probes = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            planned = ticker.tick() => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    let _ = out.send(RecorderInput::Skipped { site: Arc::clone(&target.name) }).await;
                    continue;
                };
                let (prober, plugins, target, out) = (prober.clone(), plugins.clone(), target.clone(), out.clone());
                probes.spawn(async move {
                    let (mut m, captured) = prober.probe(&target, planned).await;
                    if let (Some(captured), Some(plugins)) = (captured, &plugins) {
                        crate::plugin::checks::run(plugins, &target.config, &mut m, captured).await;
                    }
                    drop(slot);
                    let _ = out.send(RecorderInput::Measurement(m)).await;
                });
            }
            Some(_) = probes.join_next(), if !probes.is_empty() => {}
        }
    }
    probes.abort_all();
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
