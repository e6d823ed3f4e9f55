//! What nodes must agree on: the site list and the alert settings. Each node publishes a
//! summary (one short hash per site, one for the alert settings) and the hash of it; a node
//! that sees another hash reads the other summary and says what differs.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Site name to a hash of what decides its alerts (URL, schedule, expectations, rule,
    /// locations).
    pub sites: BTreeMap<String, String>,
    /// A hash of the global alert settings and `confirm`.
    pub alerting: String,
}

fn short(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Summary {
    pub fn of(config: &Config) -> Self {
        let confirm = config.cluster.as_ref().map_or(1, |c| c.confirm);
        let sites = config
            .sites
            .iter()
            .map(|s| {
                let text = format!(
                    "{}|{:?}|{:?}|{}|{}|{:?}|{:?}|{:?}",
                    s.url,
                    s.interval,
                    s.timeout,
                    s.method,
                    s.expect_status,
                    s.locations,
                    s.alerting,
                    s.maintenance,
                );
                (s.name.clone(), short(&text))
            })
            .collect();
        let a = &config.alerting;
        let alerting = short(&format!(
            "{}|{:?}|{:?}|{:?}|{confirm}",
            a.threshold, a.window, a.degraded, a.cert_warning
        ));
        Self { sites, alerting }
    }

    /// The hash nodes compare.
    pub fn hash(&self) -> String {
        short(&serde_json::to_string(self).expect("a summary serializes"))
    }

    /// How `other` (the config of node `node`) differs from this one, for people.
    pub fn differences(&self, node: &str, other: &Summary) -> String {
        let list = |v: Vec<&String>| {
            let n = v.len();
            let mut text = v
                .into_iter()
                .take(5)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if n > 5 {
                text.push_str(&format!(" and {} more", n - 5));
            }
            text
        };
        let only_there: Vec<_> = other
            .sites
            .keys()
            .filter(|k| !self.sites.contains_key(*k))
            .collect();
        let only_here: Vec<_> = self
            .sites
            .keys()
            .filter(|k| !other.sites.contains_key(*k))
            .collect();
        let changed: Vec<_> = self
            .sites
            .iter()
            .filter(|(k, v)| other.sites.get(*k).is_some_and(|o| o != *v))
            .map(|(k, _)| k)
            .collect();
        let mut parts = Vec::new();
        if !only_there.is_empty() {
            parts.push(format!("sites only on {node}: {}", list(only_there)));
        }
        if !only_here.is_empty() {
            parts.push(format!("sites missing on {node}: {}", list(only_here)));
        }
        if !changed.is_empty() {
            parts.push(format!("sites set up differently: {}", list(changed)));
        }
        if self.alerting != other.alerting {
            parts.push(
                "the alerting settings (threshold, window, objectives, confirm) differ".into(),
            );
        }
        format!(
            "node {node} runs another config than this node: {}",
            parts.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        Config::parse(std::path::Path::new("config.json"), json.as_bytes()).unwrap()
    }

    #[test]
    fn differences_name_the_sites_and_settings() {
        let a = Summary::of(&config(
            r#"{"sites":[{"name":"a","url":"http://a.test"},{"name":"b","url":"http://b.test"}]}"#,
        ));
        let b = Summary::of(&config(
            r#"{"sites":[{"name":"a","url":"http://a.test","interval":"5s"},{"name":"c","url":"http://c.test"}],
               "alerting":{"threshold":0.5}}"#,
        ));
        assert_eq!(a.hash(), a.clone().hash());
        assert_ne!(a.hash(), b.hash());
        let text = a.differences("n2", &b);
        assert!(text.contains("sites only on n2: c"), "{text}");
        assert!(text.contains("sites missing on n2: b"), "{text}");
        assert!(text.contains("sites set up differently: a"), "{text}");
        assert!(text.contains("alerting settings"), "{text}");
    }
}
