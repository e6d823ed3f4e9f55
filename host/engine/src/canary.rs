//! The canary task: probes the `host:port` canaries of `probing.canaries` (as tcp sites, with
//! the prober's tcp kind) every `probing.canary_interval`, and tells the recorder each answer.
//! A canary that is a site needs no task: its own probes tell. What the answers mean is the
//! recorder's ([`crate::recorder::reach`]).

use crate::config::Canaries;
use crate::probe::{Prober, Target};
use crate::recorder::RecorderInput;
use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The running task; stopped on reload and at the end.
pub struct CanaryTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl CanaryTask {
    /// Starts probing the address canaries of `canaries`; `None` when it has none.
    pub fn start(
        prober: Prober,
        canaries: &Canaries,
        to: mpsc::Sender<RecorderInput>,
    ) -> Option<Self> {
        if canaries.probes.is_empty() {
            return None;
        }
        let targets: Vec<Target> = canaries
            .probes
            .iter()
            .map(|site| Target::new(site.clone()))
            .collect();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(prober, targets, canaries.interval, to, stop.clone()));
        Some(Self { stop, task })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn run(
    prober: Prober,
    mut targets: Vec<Target>,
    every: std::time::Duration,
    to: mpsc::Sender<RecorderInput>,
    stop: CancellationToken,
) {
    let setup: Vec<Option<String>> = targets
        .iter_mut()
        .map(|t| prober.prepare(t).err().map(|e| e.to_string()))
        .collect();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let answers = join_all(targets.iter().zip(&setup).map(|(t, setup)| {
            let prober = &prober;
            async move {
                if let Some(e) = setup {
                    return Some(Err(e.clone()));
                }
                match prober.probe(t, tokio::time::Instant::now()).await {
                    Ok((m, _)) => Some(match m.error {
                        None => Ok(()),
                        Some(e) => Err(e.kind.to_string()),
                    }),
                    // sitewatch could not probe (no descriptor): that says nothing of the
                    // network.
                    Err(_) => None,
                }
            }
        }))
        .await;
        let time = prober.now();
        for (t, answer) in targets.iter().zip(answers) {
            let Some(answer) = answer else { continue };
            let input = RecorderInput::Canary {
                name: t.name.to_string(),
                answer,
                time,
            };
            if to.send(input).await.is_err() {
                return;
            }
        }
    }
}
