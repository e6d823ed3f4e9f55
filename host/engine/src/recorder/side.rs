//! What the recorder of a cluster node needs from the cluster, as the engine's own API: the
//! node's role, who it is, and the alert ledger that the cluster's alert book implements. The
//! engine never sees NATS: the cluster hands it a [`NodeSide`] and tells it its [`Role`].

use crate::alert::{Alert, Condition};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// A site's open conditions and when each fired.
pub type Conditions = Vec<(Condition, DateTime<Utc>)>;

/// Site name to its open conditions.
pub type Open = HashMap<String, Conditions>;

/// Site name to the alerts a leader decided that no store has confirmed.
pub type Pending = HashMap<String, Vec<Alert>>;

/// The ledger as a new leader reads it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub open: Open,
    pub pending: Pending,
}

/// What this node does with the alerts its recorder decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Another node leads: decisions are kept to itself.
    Follower,
    /// This node holds the lease: its alerts go out, and into the alert ledger.
    Leader,
    /// The cluster is unreachable: this node alerts on its own probes, and says so.
    Alone,
}

/// The cluster's record of each site's open conditions and of the alerts a leader decided
/// that no store has confirmed yet (the cluster's alert book implements it).
pub trait AlertLedger: Send + Sync {
    /// Whether this node holds the lease now.
    fn leading(&self) -> bool;

    /// Writes a site's open conditions while this node leads, trying again until the ledger
    /// takes them; `alerts` are pending until a store confirms them. False when this node
    /// stopped leading first: the alert is then the next leader's to decide.
    fn put<'a>(
        &'a self,
        site: &'a str,
        open: &'a [(Condition, DateTime<Utc>)],
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, bool>;

    /// An alert was committed by a store: it is no longer pending.
    fn confirm<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()>;
}

/// A shared ledger.
pub(crate) type Ledger = Arc<dyn AlertLedger>;

/// What a leader's alert writes to the ledger: the ledger, and the site's conditions after it.
pub type Entry = (Ledger, Conditions);

/// What the recorder of a cluster node needs: who it is, the confirmation rule, the ledger.
#[derive(Clone)]
pub struct NodeSide {
    pub node: Arc<str>,
    pub location: Arc<str>,
    pub confirm: usize,
    pub book: Ledger,
}
