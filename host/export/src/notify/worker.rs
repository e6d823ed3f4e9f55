//! One notifier's delivery loop: reads its outbox in id order, waits `group_wait` so a storm
//! goes out as one message, keeps to the rate limit, retries what may succeed later with
//! exponential backoff and jitter, marks the rest failed with the service's reply, gives up what
//! is older than `max_age`, and queues reminders while a site stays down. Each notifier has its
//! own loop (a task), so a slow or dead one delays nobody else.

use crate::config::notify::NotifierConfig;
use crate::event::{Bus, Delivery, DeliveryResult, Event};
use crate::store::notices::{self as outbox, Mark, Notice, Notifications};
use crate::store::outbox::Queue;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sitewatch_notify::send::{Outcome, send};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Notifications in one message at most; a bigger storm goes out as several.
pub const GROUP_MAX: usize = 500;
/// How often the store is asked again after it could not be read.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// Attempts at recording an outcome in the store.
const MARK_TRIES: usize = 5;
/// How long a request in flight may go on once the notifier is stopped.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often sites are looked at for reminders, at most.
const REMINDER_CHECK_MAX: Duration = Duration::from_secs(15);

pub struct Worker {
    pub config: NotifierConfig,
    pub store: Store,
    /// Its outbox.
    pub queue: Queue<Notifications>,
    pub client: reqwest::Client,
    pub bus: Bus,
    /// The configured sites by name, with their tags: no reminders of sites no longer watched.
    pub sites: watch::Receiver<Arc<HashMap<String, Vec<String>>>>,
}

enum Sent {
    /// Every notice of the group has its outcome.
    Done,
    /// Stopped while sending or waiting; what was not delivered stays pending.
    Stopped,
}

impl Worker {
    /// Delivers until `stop` is cancelled. A request in flight at that moment is abandoned: its
    /// notifications stay pending and are sent at the next start.
    pub async fn run(self, stop: CancellationToken) {
        let mut doorbell = self.store.watch_notifications();
        let mut last_sent: Option<tokio::time::Instant> = None;
        let mut next_reminder_check = tokio::time::Instant::now();
        let mut store_failing = false;
        loop {
            if stop.is_cancelled() {
                return;
            }
            if self.config.repeat.is_some() && tokio::time::Instant::now() >= next_reminder_check {
                if let Err(e) = self.remind().await {
                    self.store_error(&mut store_failing, &e);
                }
                next_reminder_check = tokio::time::Instant::now() + self.reminder_check_every();
            }
            doorbell.borrow_and_update();
            let head = match self.queue.waiting(GROUP_MAX).await {
                Ok(h) => {
                    if std::mem::take(&mut store_failing) {
                        self.report(format!(
                            "notifier {}: reading its outbox again",
                            self.config.name
                        ));
                    }
                    h.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
                }
                Err(e) => {
                    self.store_error(&mut store_failing, &e);
                    if sleep_or_stop(STORE_RETRY, &stop).await {
                        return;
                    }
                    continue;
                }
            };
            if head.is_empty() {
                let until_check = if self.config.repeat.is_some() {
                    next_reminder_check.saturating_duration_since(tokio::time::Instant::now())
                } else {
                    Duration::from_secs(3600)
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = doorbell.changed() => {}
                    _ = tokio::time::sleep(until_check) => {}
                }
                continue;
            }
            let now = self.now();
            let expired: Vec<&Notice> = head
                .iter()
                .take_while(|n| now - n.created > age(self.config.max_age))
                .collect();
            if !expired.is_empty() {
                let why = format!(
                    "given up: not delivered within max_age ({})",
                    crate::clock::human_duration(self.config.max_age)
                );
                let expired: Vec<Notice> = expired.into_iter().cloned().collect();
                self.outcome(&expired, Mark::GaveUp, &why, None, 0).await;
                continue;
            }
            let due = head[0].created + age(self.config.group_wait);
            if now < due {
                let wait = (due - now).to_std().unwrap_or_default();
                if sleep_or_stop(wait, &stop).await {
                    return;
                }
                continue; // read again: more may have come within the wait
            }
            let group = self.group(head, due);
            match self.deliver(&group, &mut last_sent, &stop).await {
                Sent::Done => {}
                Sent::Stopped => return,
            }
        }
    }

    /// The notices that go out together: those queued within `group_wait` of the first; alone
    /// when the notifier has a formatter (a rendering is one alert's).
    fn group(&self, head: Vec<Notice>, due: DateTime<Utc>) -> Vec<Notice> {
        if self.config.formatter.is_some() {
            return head.into_iter().take(1).collect();
        }
        head.into_iter()
            .enumerate()
            .take_while(|(i, n)| *i == 0 || n.created <= due)
            .map(|(_, n)| n)
            .collect()
    }

    /// Sends the requests of a group in order, each until it has an outcome.
    async fn deliver(
        &self,
        group: &[Notice],
        last_sent: &mut Option<tokio::time::Instant>,
        stop: &CancellationToken,
    ) -> Sent {
        let mut backoff =
            crate::retry::Backoff::new(self.config.backoff_min, self.config.backoff_max)
                .with_jitter();
        let n = &self.config;
        for out in n.service.requests(n.endpoint(), group) {
            let notices = &group[out.covers.clone()];
            // Requests made for these notices in this run of the loop: each counts.
            let mut tries = 0;
            loop {
                if let Some(last) = *last_sent {
                    let free = last + self.config.min_interval;
                    let wait = free.saturating_duration_since(tokio::time::Instant::now());
                    if !wait.is_zero() && sleep_or_stop(wait, stop).await {
                        return Sent::Stopped;
                    }
                }
                let sending = async {
                    send(&n.service, &self.client, &out.request, n.timeout)
                        .await
                        .redacted(|s| n.redact(s))
                };
                tokio::pin!(sending);
                let mut stopping = false;
                let outcome = tokio::select! {
                    o = &mut sending => o,
                    _ = stop.cancelled() => {
                        // A request the service may already have: let it finish for a moment, so
                        // its outcome is recorded rather than sent again at the next start.
                        stopping = true;
                        match tokio::time::timeout(STOP_GRACE, &mut sending).await {
                            Ok(o) => o,
                            Err(_) => return Sent::Stopped,
                        }
                    }
                };
                *last_sent = Some(tokio::time::Instant::now());
                tries += 1;
                match outcome {
                    Outcome::Delivered(answer) => {
                        self.outcome(notices, Mark::Delivered, &answer, None, tries)
                            .await;
                        if stopping {
                            return Sent::Stopped;
                        }
                        break;
                    }
                    Outcome::Failed(reply) => {
                        self.outcome(notices, Mark::Failed, &reply, None, tries)
                            .await;
                        if stopping {
                            return Sent::Stopped;
                        }
                        break;
                    }
                    Outcome::Retry { after, why } => {
                        let oldest = notices[0].created;
                        // `Retry-After: 0` (or a past date) never makes a tight loop.
                        let wait = match after {
                            Some(a) => a.max(self.config.backoff_min),
                            None => backoff.next_delay(),
                        };
                        let now = self.now();
                        if now + age(wait) - oldest > age(self.config.max_age) {
                            let why = format!(
                                "given up: not delivered within max_age ({}); last attempt: {why}",
                                crate::clock::human_duration(self.config.max_age)
                            );
                            // The request just made is an attempt: failed, and counted.
                            self.outcome(notices, Mark::Failed, &why, None, tries).await;
                            break;
                        }
                        self.outcome(notices, Mark::Attempted, &why, Some(wait), tries)
                            .await;
                        if sleep_or_stop(wait, stop).await {
                            return Sent::Stopped;
                        }
                    }
                }
            }
        }
        Sent::Done
    }

    /// Records an outcome in the outbox and says it on the bus, one event per notification,
    /// with every request made for it so far (`tries` of them in this run of the send loop).
    /// The store write is retried for a while: a delivered notification not marked so would be
    /// sent again.
    async fn outcome(
        &self,
        notices: &[Notice],
        mark: Mark,
        detail: &str,
        retry_in: Option<Duration>,
        tries: u32,
    ) {
        let ids: Vec<i64> = notices.iter().map(|n| n.id).collect();
        let now = self.now();
        let text = detail.to_owned();
        let mut failing = false;
        let (first, last) = (ids.first().copied(), ids.last().copied());
        for _ in 0..MARK_TRIES {
            let (ids, text) = (ids.clone(), text.clone());
            let recorded = match (mark, first, last) {
                (Mark::Delivered, Some(first), Some(last)) => {
                    self.queue.delivered(first, last, &text, now).await
                }
                (Mark::Failed, Some(first), Some(last)) => {
                    self.queue.refused(first, last, &text, now).await
                }
                _ => {
                    self.db(move |c| outbox::mark(c, &ids, mark, now, &text))
                        .await
                }
            };
            match recorded {
                Ok(()) => break,
                Err(e) => {
                    self.store_error(&mut failing, &e);
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
        let result = match mark {
            Mark::Delivered => DeliveryResult::Delivered,
            Mark::Failed | Mark::GaveUp => DeliveryResult::Failed,
            Mark::Attempted => DeliveryResult::Retrying,
        };
        let notifier: Arc<str> = self.config.name.as_str().into();
        for n in notices {
            // What the store holds now: the attempts before this loop, and this loop's.
            let attempts = n.attempts + tries;
            if matches!(mark, Mark::Failed | Mark::GaveUp) {
                tracing::warn!(notifier = %notifier, site = %n.alert.site, "notification failed: {detail}");
            }
            self.bus.send(Event::Delivery(Delivery {
                time: now,
                notifier: Arc::clone(&notifier),
                alert_id: n.alert_id,
                notification_id: n.id,
                site: Arc::clone(&n.alert.site),
                kind: n.kind.as_str(),
                result,
                attempts,
                detail: detail.to_owned(),
                retry_in,
            }));
        }
    }

    /// Queues a reminder for each site still down whose last notification is `repeat` old,
    /// among the sites this notifier still wants.
    async fn remind(&self) -> Result<(), StoreError> {
        let Some(repeat) = self.config.repeat else {
            return Ok(());
        };
        let sites = Arc::clone(&self.sites.borrow());
        let config = self.config.clone();
        let now = self.now();
        let added = self
            .db(move |c| {
                let mut added = 0;
                for s in outbox::still_down(c, &config.name)? {
                    if let Some(tags) = sites.get(&s.site)
                        && config.wants(crate::alert::AlertKind::Down, &s.site, tags)
                        && now - s.last_notice >= age(repeat)
                        && outbox::add_reminder(c, &config.name, s.alert_id, now)?
                    {
                        added += 1;
                    }
                }
                Ok(added)
            })
            .await?;
        if added > 0 {
            tracing::debug!(notifier = %self.config.name, added, "reminders queued");
        }
        Ok(())
    }

    fn reminder_check_every(&self) -> Duration {
        self.config.repeat.map_or(REMINDER_CHECK_MAX, |r| {
            (r / 2).clamp(Duration::from_millis(200), REMINDER_CHECK_MAX)
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.bus.clock().now()
    }

    fn report(&self, message: String) {
        self.bus.error("notify", None, message);
    }

    /// Says once per episode that the outbox cannot be read or written.
    fn store_error(&self, failing: &mut bool, e: &StoreError) {
        if !std::mem::replace(failing, true) {
            self.report(format!(
                "notifier {}: its outbox in the store cannot be used: {}; retrying",
                self.config.name,
                crate::error_chain(e)
            ));
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.queue.run(move |_, c| f(c)).await
    }
}

/// A std duration as a chrono one (saturating).
fn age(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// Sleeps for `d`; true when `stop` came first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
