//! Which node of a location probes a site: rendezvous (highest random weight) hashing over the
//! location's live members. Every node computes the same owner from the same member list, and a
//! member joining or leaving moves only the sites it wins or held.

use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The members of this node's location as last read, and this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub me: String,
    pub location: String,
    /// Live members of this location, sorted, this node included.
    pub members: Vec<String>,
}

/// The weight of `node` for `site`.
fn weight(site: &str, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(site.as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("32 bytes"))
}

/// The member that probes `site`: the highest weight (ties: the smaller name).
pub(crate) fn owner<'a>(site: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .max_by(|a, b| weight(site, a).cmp(&weight(site, b)).then(b.cmp(a)))
        .map(String::as_str)
}

impl Share {
    /// This node alone (before the first read of the members, or without NATS).
    pub fn alone(me: &str, location: &str) -> Self {
        Self {
            me: me.to_owned(),
            location: location.to_owned(),
            members: vec![me.to_owned()],
        }
    }

    /// Whether this node probes `site`, which lists `locations` (`None`: every location).
    pub fn owns(&self, site: &str, locations: Option<&[String]>) -> bool {
        if locations.is_some_and(|l| !l.contains(&self.location)) {
            return false;
        }
        owner(site, &self.members) == Some(self.me.as_str())
    }
}

/// The share as the membership loop last saw it: read on every tick, and watched by each site's
/// task so that a site this node gains is probed at once rather than at its next tick.
pub struct ShareCell {
    tx: tokio::sync::watch::Sender<Arc<Share>>,
}

pub type SharedShare = Arc<ShareCell>;

impl ShareCell {
    pub fn new(share: Share) -> SharedShare {
        Arc::new(Self {
            tx: tokio::sync::watch::Sender::new(Arc::new(share)),
        })
    }

    pub fn load(&self) -> Arc<Share> {
        Arc::clone(&self.tx.borrow())
    }

    pub fn store(&self, share: Arc<Share>) {
        self.tx.send_replace(share);
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Share>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_site_has_exactly_one_owner_and_few_move() {
        let three = names(&["n1", "n2", "n3"]);
        let two = names(&["n1", "n3"]);
        let sites: Vec<String> = (0..3000).map(|i| format!("site-{i}")).collect();
        let mut counts = std::collections::HashMap::new();
        let mut moved = 0;
        for s in &sites {
            let owners: Vec<_> = three
                .iter()
                .filter(|me| {
                    Share {
                        me: (*me).clone(),
                        location: "x".into(),
                        members: three.clone(),
                    }
                    .owns(s, None)
                })
                .collect();
            assert_eq!(owners.len(), 1, "{s}");
            *counts.entry(owners[0].clone()).or_insert(0) += 1;
            let before = owner(s, &three).unwrap();
            let after = owner(s, &two).unwrap();
            if before != "n2" {
                // Only n2's sites move when n2 leaves.
                assert_eq!(before, after);
            } else {
                moved += 1;
            }
        }
        // An even split, give or take.
        for n in ["n1", "n2", "n3"] {
            assert!((800..1200).contains(&counts[n]), "{counts:?}");
        }
        assert_eq!(moved, counts["n2"]);
    }

    #[test]
    fn a_site_of_other_locations_is_not_ours() {
        let me = Share::alone("n1", "eu");
        assert!(me.owns("s", None));
        assert!(me.owns("s", Some(&names(&["us", "eu"]))));
        assert!(!me.owns("s", Some(&names(&["us"]))));
    }
}
