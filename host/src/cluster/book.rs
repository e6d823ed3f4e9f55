//! The alert book: each site's open conditions (down, degraded, certificate, with when they
//! fired) in a bucket, written by the leader as each alert leaves it and read by the next
//! leader, which continues from it: an outage that goes on is not announced again, and a
//! recovery during the handover is announced once.

use crate::alert::Condition;
use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A site's open conditions and when each fired.
pub type Conditions = Vec<(Condition, DateTime<Utc>)>;

/// Site name to its open conditions.
pub type Open = HashMap<String, Conditions>;

/// What a leader's alert writes to the book: the book, and the site's conditions after it.
pub type Entry = (AlertBook, Conditions);

#[derive(Serialize, Deserialize)]
struct Stored {
    site: String,
    open: Vec<(String, DateTime<Utc>)>,
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
    pub(super) async fn load(&self, store: &kv::Store, sites: Vec<String>) -> anyhow::Result<Open> {
        use futures_util::StreamExt;
        self.inner.lock().expect("book lock").store = Some(store.clone());
        let gets: Vec<_> = sites
            .into_iter()
            .map(|site| {
                let (store, key) = (
                    store.clone(),
                    format!("site.{}", super::wire::site_token(&site)),
                );
                Box::pin(async move { store.get(key).await })
            })
            .collect();
        let mut gets = futures_util::stream::iter(gets).buffer_unordered(64);
        let mut out = Open::new();
        while let Some(got) = gets.next().await {
            let Some(bytes) = got? else {
                continue;
            };
            let entry: Stored = serde_json::from_slice(&bytes)?;
            let open = entry
                .open
                .iter()
                .filter_map(|(c, t)| Some((condition(c)?, *t)))
                .collect();
            out.insert(entry.site, open);
        }
        Ok(out)
    }

    /// Writes a site's open conditions while this node leads, trying again until the bucket
    /// takes them. False when this node stopped leading first: the alert is then the next
    /// leader's to decide (from the book as it was), and this node must not send it.
    pub async fn put(&self, site: &str, open: &[(Condition, DateTime<Utc>)]) -> bool {
        let store = self.inner.lock().expect("book lock").store.clone();
        let Some(store) = store else { return false };
        let entry = Stored {
            site: site.to_owned(),
            open: open
                .iter()
                .map(|(c, t)| (c.as_str().to_owned(), *t))
                .collect(),
        };
        let bytes = serde_json::to_vec(&entry).expect("an entry serializes");
        let key = format!("site.{}", super::wire::site_token(site));
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

fn condition(name: &str) -> Option<Condition> {
    [Condition::Down, Condition::Degraded, Condition::Cert]
        .into_iter()
        .find(|c| c.as_str() == name)
}
