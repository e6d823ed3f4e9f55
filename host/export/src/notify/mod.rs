//! Notification delivery: each notifier's outbox in the store sent to its service, durably, in
//! order, with the one retry policy, and reminders while a site stays down.
//!
//! The flow: the recorder's ordered alert stage routes each alert to the notifiers that want it
//! (and renders it with their formatters); the store writer commits the alert and one
//! notification per notifier in one transaction (the store's `notices`); each notifier's
//! `worker` sends its outbox in id order (its service, in the notify crate, shapes the requests
//! and judges the answers) and records every outcome there and as a `delivery` event.
//! [`Notifiers`] runs the workers and applies config changes; [`send_test`] is
//! `sitewatch notify test`.

mod worker;

use crate::config::Config;
use crate::config::notify::{NotifierConfig, NotifierType};
use crate::event::Bus;
use crate::store::Store;
use crate::store::notices::{Notice, NoticeKind};
use sitewatch_notify::send::{Outcome, send};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
pub use worker::GROUP_MAX;

/// The running notifiers.
pub struct Notifiers {
    store: Store,
    client: reqwest::Client,
    bus: Bus,
    sites: watch::Sender<Arc<HashMap<String, Vec<String>>>>,
    running: Vec<Running>,
}

struct Running {
    config: NotifierConfig,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Notifiers {
    /// Starts a worker per notifier of `config`.
    pub fn start(store: Store, client: reqwest::Client, bus: Bus, config: &Config) -> Self {
        let (sites, _) = watch::channel(site_names(config));
        let mut n = Self {
            store,
            client,
            bus,
            sites,
            running: Vec::new(),
        };
        for c in &config.notify {
            n.spawn(c.clone());
        }
        n
    }

    fn spawn(&mut self, config: NotifierConfig) {
        let stop = CancellationToken::new();
        let worker = worker::Worker {
            queue: crate::store::outbox::Queue::new(
                &self.store,
                crate::store::notices::Notifications {
                    notifier: config.name.clone(),
                },
            ),
            config: config.clone(),
            store: self.store.clone(),
            client: self.client.clone(),
            bus: self.bus.clone(),
            sites: self.sites.subscribe(),
        };
        let task = tokio::spawn(worker.run(stop.clone()));
        self.running.push(Running { config, stop, task });
    }

    /// Applies a reloaded config: notifiers that changed or went away stop (their waiting
    /// notifications stay in the store), new and changed ones start. Returns what changed.
    pub async fn apply(&mut self, config: &Config) -> Vec<String> {
        self.sites.send_replace(site_names(config));
        let mut changes = Vec::new();
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        for r in std::mem::take(&mut self.running) {
            match config.notify.iter().find(|c| c.name == r.config.name) {
                Some(c) if *c == r.config => keep.push(r),
                other => {
                    changes.push(format!(
                        "{} notifier {}",
                        if other.is_some() {
                            "changed"
                        } else {
                            "removed"
                        },
                        r.config.name
                    ));
                    // Stopped together: each may finish its request in flight.
                    r.stop.cancel();
                    stopping.push(r);
                }
            }
        }
        for r in stopping {
            Self::join_with(&self.bus, r.config.name, r.task).await;
        }
        self.running = keep;
        for c in &config.notify {
            if !self.running.iter().any(|r| r.config.name == c.name) {
                if !changes.iter().any(|m| m.ends_with(&format!(" {}", c.name))) {
                    changes.push(format!("added notifier {}", c.name));
                }
                self.spawn(c.clone());
            }
        }
        changes
    }

    /// Stops every worker; a send in flight is abandoned (its notification stays pending).
    pub async fn stop(self) {
        for r in &self.running {
            r.stop.cancel();
        }
        for r in self.running {
            Self::join_with(&self.bus, r.config.name, r.task).await;
        }
    }

    async fn join_with(bus: &Bus, name: String, task: JoinHandle<()>) {
        if let Err(e) = task.await {
            let message = match e.try_into_panic() {
                Ok(payload) => crate::panic_message(&*payload),
                Err(e) => e.to_string(),
            };
            bus.error(
                "notify",
                None,
                format!("notifier {name}: the notifier panicked: {message}"),
            );
        }
    }
}

fn site_names(config: &Config) -> Arc<HashMap<String, Vec<String>>> {
    Arc::new(
        config
            .sites
            .iter()
            .map(|s| (s.name.clone(), s.tags.clone()))
            .collect(),
    )
}

/// A sample alert of a site that does not exist, for `notify test`: a down alert, and for
/// incident tools its recovery too, so the test leaves no incident open.
pub fn sample_notices(kind: NotifierType, now: chrono::DateTime<chrono::Utc>) -> Vec<Notice> {
    let down_at = now - chrono::TimeDelta::seconds(60);
    let site: Arc<str> = "sitewatch-test".into();
    let url: Arc<str> = "https://example.com/sitewatch-test".into();
    let down = crate::alert::Alert {
        kind: crate::alert::AlertKind::Down,
        site: Arc::clone(&site),
        url: Arc::clone(&url),
        availability: 0.5,
        time: down_at,
        down_since: None,
        down_for: None,
        latency: None,
        cert_expiry: None,
        message: format!("[test] {}", crate::alert::down_message(&site, 0.5, down_at)),
        rendered: None,
        held: None,
    };
    let mut notices = vec![Notice {
        id: 0,
        alert_id: 0,
        kind: NoticeKind::DOWN,
        created: down_at,
        body: None,
        attempts: 0,
        alert: down,
    }];
    if matches!(
        kind,
        NotifierType::PagerDuty | NotifierType::Opsgenie | NotifierType::Alertmanager
    ) {
        let recovered = crate::alert::Alert {
            kind: crate::alert::AlertKind::Recovered,
            site: Arc::clone(&site),
            url,
            availability: 1.0,
            time: now,
            down_since: Some(down_at),
            down_for: Some(std::time::Duration::from_secs(60)),
            latency: None,
            cert_expiry: None,
            message: format!(
                "[test] {}",
                crate::alert::recovered_message(&site, 1.0, now, down_at)
            ),
            rendered: None,
            held: None,
        };
        notices.push(Notice {
            id: 0,
            alert_id: 0,
            kind: NoticeKind::RECOVERED,
            created: now,
            body: None,
            attempts: 0,
            alert: recovered,
        });
    }
    notices
}

/// Sends `notices` through `n` once each (no retries) and returns each answer with what was
/// sent: `sitewatch notify test`.
pub async fn send_test(
    n: &NotifierConfig,
    client: &reqwest::Client,
    notices: &[Notice],
) -> Vec<(String, Outcome)> {
    let mut answers = Vec::new();
    for notice in notices {
        for out in n
            .service
            .requests(n.endpoint(), std::slice::from_ref(notice))
        {
            let outcome = send(&n.service, client, &out.request, n.timeout)
                .await
                .redacted(|s| n.redact(s));
            answers.push((
                format!("{} alert of {}", notice.kind.as_str(), notice.alert.site),
                outcome,
            ));
        }
    }
    answers
}
