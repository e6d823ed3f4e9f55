//! The alert book: each site's open conditions (down, degraded, certificate, with when they
//! fired) in a bucket, written by the leader as each alert leaves it and read by the next
//! leader, which continues from it: an outage that goes on is not announced again, and a
//! recovery during the handover is announced once.
//!
//! Each entry also holds the site's *pending* alerts: decided by the leader and written here
//! before its store has them (with their notifications). Once the store has committed an alert
//! (its event is published then), the leader confirms it and it leaves the entry. A leader that
//! dies in between leaves it pending, and the next one delivers it, unless the cluster's alert
//! stream shows that a store did commit it (that store then holds its notifications).

use crate::alert::{Alert, Condition};
use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::recorder::side::{Conditions, Loaded, Pending};

#[derive(Serialize, Deserialize)]
struct Stored {
    site: String,
    open: Vec<(String, DateTime<Utc>)>,
    /// Alerts not yet confirmed stored, as `store::alert_json`.
    #[serde(default)]
    pending: Vec<serde_json::Value>,
}

/// Two alerts are the same decision (to the microsecond: the store, the book and the stream
/// keep times in microseconds).
fn same(a: &Alert, b: &Alert) -> bool {
    a.kind == b.kind && a.time.timestamp_micros() == b.time.timestamp_micros() && a.site == b.site
}

/// The book as this node sees it: the bucket once set up, and until when this node leads.
#[derive(Clone, Default)]
pub struct AlertBook {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    store: Option<kv::Store>,
    leading_until: Option<Instant>,
    /// This node's pending alerts per site, and the conditions it last wrote for each.
    pending: Pending,
    written: HashMap<String, Conditions>,
}

impl AlertBook {
    pub(super) fn set_leading(&self, until: Option<Instant>) {
        self.inner.lock().expect("book lock").leading_until = until;
    }

    /// Whether this node holds the lease now.
    pub fn leading(&self) -> bool {
        self.inner
            .lock()
            .expect("book lock")
            .leading_until
            .is_some_and(|u| Instant::now() < u)
    }

    /// The open conditions of `sites`: one direct get per site, 64 at a time (listing the
    /// bucket's keys takes a consumer, which is slow to come back after a server failure).
    pub(super) async fn load(
        &self,
        store: &kv::Store,
        sites: Vec<String>,
    ) -> anyhow::Result<Loaded> {
        use futures_util::StreamExt;
        self.inner.lock().expect("book lock").store = Some(store.clone());
        let gets: Vec<_> = sites
            .into_iter()
            .map(|site| {
                let (store, key) = (
                    store.clone(),
                    format!("site.{}", crate::measurement::sample::site_token(&site)),
                );
                Box::pin(async move { store.get(key).await })
            })
            .collect();
        let mut gets = futures_util::stream::iter(gets).buffer_unordered(64);
        let mut out = Loaded::default();
        while let Some(got) = gets.next().await {
            let Some(bytes) = got? else {
                continue;
            };
            let entry: Stored = serde_json::from_slice(&bytes)?;
            let open: Conditions = entry
                .open
                .iter()
                .filter_map(|(c, t)| Some((condition(c)?, *t)))
                .collect();
            let pending: Vec<Alert> = entry
                .pending
                .iter()
                .filter_map(crate::store::alert_from_json)
                .collect();
            if !pending.is_empty() {
                out.pending.insert(entry.site.clone(), pending);
            }
            out.open.insert(entry.site, open);
        }
        // What this node writes from now on starts from the book as it is.
        let mut inner = self.inner.lock().expect("book lock");
        inner.pending = out.pending.clone();
        inner.written = out.open.clone();
        Ok(out)
    }

    /// The book as it is, read without taking it over (a follower back from being alone).
    pub(super) async fn read(
        &self,
        store: &kv::Store,
        sites: Vec<String>,
    ) -> anyhow::Result<Loaded> {
        let (pending, written) = {
            let inner = self.inner.lock().expect("book lock");
            (inner.pending.clone(), inner.written.clone())
        };
        let out = self.load(store, sites).await;
        let mut inner = self.inner.lock().expect("book lock");
        inner.pending = pending;
        inner.written = written;
        out
    }

    /// An alert was committed by a store: it leaves the site's pending alerts, and the entry is
    /// written again while this node leads (one try: if it fails, the next leader finds the
    /// alert in the cluster's alert stream and does not deliver it again).
    pub async fn confirm(&self, alert: &Alert) {
        let (store, entry, key) = {
            let mut inner = self.inner.lock().expect("book lock");
            let site = alert.site.to_string();
            let Some(list) = inner.pending.get_mut(&site) else {
                return;
            };
            let before = list.len();
            list.retain(|a| !same(a, alert));
            if list.len() == before {
                return;
            }
            let left = list.clone();
            if left.is_empty() {
                inner.pending.remove(&site);
            }
            let open = inner.written.get(&site).cloned().unwrap_or_default();
            let leading = inner.leading_until.is_some_and(|u| Instant::now() < u);
            let Some(store) = inner.store.clone().filter(|_| leading) else {
                return;
            };
            (store, stored(&site, &open, &left), key_of(&site))
        };
        let bytes = serde_json::to_vec(&entry).expect("an entry serializes");
        let put = store.put(key, bytes.into());
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), put).await,
            Ok(Ok(_))
        ) {
            tracing::debug!("cluster: an alert's confirmation did not reach the book");
        }
    }

    /// Writes a site's open conditions while this node leads, trying again until the bucket
    /// takes them. False when this node stopped leading first: the alert is then the next
    /// leader's to decide (from the book as it was), and this node must not send it.
    ///
    /// `alerts` are the site's alerts this write stands for: they are pending until their
    /// store confirms them ([`Self::confirm`]).
    pub async fn put(
        &self,
        site: &str,
        open: &[(Condition, DateTime<Utc>)],
        alerts: &[Alert],
    ) -> bool {
        let (store, entry) = {
            let mut inner = self.inner.lock().expect("book lock");
            let list = inner.pending.entry(site.to_owned()).or_default();
            for a in alerts {
                if !list.iter().any(|p| same(p, a)) {
                    list.push(a.clone());
                }
            }
            let pending = list.clone();
            inner.written.insert(site.to_owned(), open.to_vec());
            (inner.store.clone(), stored(site, open, &pending))
        };
        let Some(store) = store else { return false };
        let bytes = serde_json::to_vec(&entry).expect("an entry serializes");
        let key = key_of(site);
        while self.leading() {
            let put = store.put(key.clone(), bytes.clone().into());
            match tokio::time::timeout(Duration::from_secs(2), put).await {
                Ok(Ok(_)) => return true,
                Ok(Err(e)) => {
                    tracing::warn!(site, "cluster: cannot write the alert state yet: {e}")
                }
                Err(_) => tracing::warn!(
                    site,
                    "cluster: writing the alert state timed out; trying again"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tracing::warn!(
            site,
            "cluster: this node stopped leading before the alert state was written; the next leader decides"
        );
        false
    }
}

impl crate::recorder::side::AlertLedger for AlertBook {
    fn leading(&self) -> bool {
        AlertBook::leading(self)
    }

    fn put<'a>(
        &'a self,
        site: &'a str,
        open: &'a [(Condition, DateTime<Utc>)],
        alerts: &'a [Alert],
    ) -> futures_util::future::BoxFuture<'a, bool> {
        Box::pin(AlertBook::put(self, site, open, alerts))
    }

    fn confirm<'a>(&'a self, alert: &'a Alert) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(AlertBook::confirm(self, alert))
    }
}

/// The bucket key of a site's entry.
fn key_of(site: &str) -> String {
    format!("site.{}", crate::measurement::sample::site_token(site))
}

/// A site's entry as stored.
fn stored(site: &str, open: &[(Condition, DateTime<Utc>)], pending: &[Alert]) -> Stored {
    Stored {
        site: site.to_owned(),
        open: open
            .iter()
            .map(|(c, t)| (c.as_str().to_owned(), *t))
            .collect(),
        pending: pending.iter().map(crate::store::alert_json).collect(),
    }
}

fn condition(name: &str) -> Option<Condition> {
    [Condition::Down, Condition::Degraded, Condition::Cert]
        .into_iter()
        .find(|c| c.as_str() == name)
}
