//! What a reload changes: one [`ConfigDiff`] computed from the running and the new config, and
//! applied in one place (`monitor`), in an order that never lets a probe meet a half-applied
//! config. Modelled on Vector's `src/config/diff.rs`.

use super::{Config, SiteConfig};
use std::collections::HashMap;

/// Sites by name: added, changed (same name, other settings) and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SitesDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl SitesDiff {
    pub fn between(old: &[SiteConfig], new: &[SiteConfig]) -> Self {
        let before: HashMap<&str, &SiteConfig> = old.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut diff = Self::default();
        for s in new {
            match before.get(s.name.as_str()) {
                None => diff.added.push(s.name.clone()),
                Some(o) if !o.probes_like(s) => diff.changed.push(s.name.clone()),
                Some(_) => {}
            }
        }
        let after: HashMap<&str, ()> = new.iter().map(|s| (s.name.as_str(), ())).collect();
        diff.removed = old
            .iter()
            .filter(|s| !after.contains_key(s.name.as_str()))
            .map(|s| s.name.clone())
            .collect();
        diff
    }

    /// Whether the site `name` starts anew (added or changed): it gets the new generation.
    pub fn restarts(&self, name: &str) -> bool {
        self.added.iter().chain(&self.changed).any(|n| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Everything a reload changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    pub sites: SitesDiff,
    pub alerting: bool,
    pub dashboard: bool,
    pub plugins: bool,
    pub storage: bool,
    /// The InfluxDB export settings changed: its sender restarts.
    pub influxdb: bool,
    pub probing: bool,
    /// The notifiers changed: the changed ones restart.
    pub notify: bool,
    /// The server's address or token changed.
    pub server: bool,
    pub location: bool,
}

impl ConfigDiff {
    pub fn between(old: &Config, new: &Config) -> Self {
        Self {
            sites: SitesDiff::between(&old.sites, &new.sites),
            // A site's own rule, windows or tags change only what the recorder decides: the
            // site keeps probing on, with its history.
            alerting: old.alerting != new.alerting
                || old.maintenance != new.maintenance
                || old.sites.iter().any(|o| {
                    new.sites.iter().any(|n| {
                        n.name == o.name
                            && (n.alerting != o.alerting
                                || n.maintenance != o.maintenance
                                || n.tags != o.tags)
                    })
                }),
            dashboard: old.dashboard != new.dashboard,
            plugins: old.plugins != new.plugins,
            storage: old.storage != new.storage,
            influxdb: old.storage.influxdb != new.storage.influxdb,
            probing: old.probing != new.probing || old.canaries != new.canaries,
            notify: old.notify != new.notify,
            server: old.server != new.server,
            location: old.location != new.location,
        }
    }

    /// `added api; removed old; alerting, storage settings changed`, or `no effective change`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (label, names) in [
            ("added", &self.sites.added),
            ("removed", &self.sites.removed),
            ("changed", &self.sites.changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{label} {}", names.join(", ")));
            }
        }
        let sections: Vec<&str> = [
            ("alerting", self.alerting),
            ("dashboard", self.dashboard),
            ("plugins", self.plugins),
            ("storage", self.storage),
            ("probing", self.probing),
            ("notify", self.notify),
            ("server", self.server),
            ("location", self.location),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        if !sections.is_empty() {
            parts.push(format!("{} settings changed", sections.join(", ")));
        }
        if parts.is_empty() {
            "no effective change".into()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("c.json"), text.as_bytes()).unwrap()
    }

    #[test]
    fn a_site_rule_window_or_tag_change_keeps_the_site_probing() {
        let old = config(r#"{"sites": [{"name": "a", "url": "http://a.test/"}]}"#);
        let new = config(
            r#"{"sites": [{"name": "a", "url": "http://a.test/", "tags": ["prod"],
                           "alerting": {"threshold": 0.5},
                           "maintenance": [{"cron": "0 2 * * *", "duration": "1h"}]}]}"#,
        );
        let diff = ConfigDiff::between(&old, &new);
        assert!(diff.sites.is_empty(), "{diff:?}");
        assert!(diff.alerting);
        assert_eq!(diff.describe(), "alerting settings changed");
    }

    #[test]
    fn names_what_was_added_changed_and_removed_and_which_sections_changed() {
        let old = config(
            r#"{"sites": [{"name": "a", "url": "http://a.test/"}, {"name": "b", "url": "http://b.test/"},
                          {"name": "c", "url": "http://c.test/"}]}"#,
        );
        let new = config(
            r#"{"sites": [{"name": "a", "url": "http://a.test/"}, {"name": "b", "url": "http://b2.test/"},
                          {"name": "d", "url": "http://d.test/"}],
                "alerting": {"threshold": 0.5}}"#,
        );
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.sites.added, ["d"]);
        assert_eq!(diff.sites.changed, ["b"]);
        assert_eq!(diff.sites.removed, ["c"]);
        assert!(diff.sites.restarts("b") && diff.sites.restarts("d") && !diff.sites.restarts("a"));
        assert!(diff.alerting && !diff.dashboard && !diff.storage && !diff.influxdb);
        assert_eq!(
            diff.describe(),
            "added d; removed c; changed b; alerting settings changed"
        );
        assert_eq!(
            ConfigDiff::between(&new, &new).describe(),
            "no effective change"
        );
    }
}
