//! The loaded plugins, swappable as a whole: calls already running keep the `Arc<Plugin>` they
//! started with, new calls see the new set.

use super::{Plugin, PluginError, PluginHost, PluginKind, bindings::types};
use crate::config::{Config, PluginLimits};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Limits for the smoke call every plugin gets before it is put to use.
const SMOKE_LIMITS: PluginLimits = PluginLimits {
    memory: 64 * 1024 * 1024,
    time: Duration::from_secs(2),
};

pub struct PluginSet {
    pub host: Arc<PluginHost>,
    plugins: ArcSwap<HashMap<String, Arc<Plugin>>>,
    /// Why plugins that the config uses are not loaded.
    broken: ArcSwap<HashMap<String, String>>,
}

impl PluginSet {
    pub fn new(host: Arc<PluginHost>) -> Self {
        Self {
            host,
            plugins: ArcSwap::from_pointee(HashMap::new()),
            broken: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.load().get(name).cloned()
    }

    /// Why a plugin is not available.
    pub fn why_missing(&self, name: &str) -> String {
        self.broken
            .load()
            .get(name)
            .cloned()
            .unwrap_or_else(|| "the plugin is not loaded".into())
    }

    /// Loads every plugin `config` uses, checking each is used as the kind it is. A plugin that
    /// fails to load is left out (its checks fail with kind `plugin` and the reason); the errors
    /// are returned for reporting.
    pub async fn load_for(&self, config: &Config) -> Vec<PluginError> {
        let mut loaded: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut broken: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        for (field, site, u) in config.plugin_uses() {
            if broken.contains_key(&u.plugin) {
                continue;
            }
            if !loaded.contains_key(&u.plugin) {
                match self.load_checked(&config.plugin_path(&u.plugin)).await {
                    Ok(p) => {
                        loaded.insert(u.plugin.clone(), Arc::new(p));
                    }
                    Err(e) => {
                        broken.insert(u.plugin.clone(), e.to_string());
                        errors.push(e);
                        continue;
                    }
                }
            }
            let want = if field.starts_with("alerting.") {
                PluginKind::Formatter
            } else {
                PluginKind::Check
            };
            let got = loaded[&u.plugin].kind;
            if got != want {
                let e = PluginError::Link {
                    name: u.plugin.clone(),
                    message: format!(
                        "it is a {got} plugin but {field}{} uses it as a {want}",
                        site.map(|s| format!(" (site \"{s}\")")).unwrap_or_default()
                    ),
                };
                loaded.remove(&u.plugin);
                broken.insert(u.plugin.clone(), e.to_string());
                errors.push(e);
            }
        }
        self.plugins.store(Arc::new(loaded));
        self.broken.store(Arc::new(broken));
        errors
    }

    /// Compiles a plugin file and smoke-calls it; only a plugin that answers is returned.
    pub async fn load_checked(&self, path: &Path) -> Result<Plugin, PluginError> {
        let plugin = self.host.load_file(path).await?;
        smoke_test(&self.host, &plugin).await?;
        Ok(plugin)
    }

    /// Replaces one plugin, keeping the others.
    pub fn replace(&self, plugin: Plugin) {
        let name = plugin.name.to_string();
        let mut next = HashMap::clone(&self.plugins.load());
        next.insert(name.clone(), Arc::new(plugin));
        self.plugins.store(Arc::new(next));
        let mut broken = HashMap::clone(&self.broken.load());
        if broken.remove(&name).is_some() {
            self.broken.store(Arc::new(broken));
        }
    }
}

/// Calls the plugin once on canned input with an empty config. An `err` answer is fine (most
/// plugins need config); a trap or a hit limit is not.
pub async fn smoke_test(host: &PluginHost, plugin: &Plugin) -> Result<(), PluginError> {
    let result = match plugin.kind {
        PluginKind::Check => host
            .check(plugin, SMOKE_LIMITS, "{}", &sample_response())
            .await
            .map(drop),
        PluginKind::Formatter => host
            .format(plugin, SMOKE_LIMITS, "{}", &sample_alert())
            .await
            .map(drop),
    };
    result.map_err(|e| PluginError::SmokeTest {
        name: plugin.name.to_string(),
        reason: e.0,
    })
}

fn sample_response() -> types::Response {
    types::Response {
        url: "http://127.0.0.1/health".into(),
        method: "GET".into(),
        status: 200,
        headers: vec![types::Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: br#"{"status":"UP"}"#.to_vec(),
        body_truncated: false,
        timings: types::Timings {
            ttfb_ms: 1.0,
            response_ms: 2.0,
            dns_ms: None,
            connect_ms: Some(0.1),
            tls_ms: None,
        },
    }
}

fn sample_alert() -> types::Alert {
    types::Alert {
        kind: types::AlertKind::Down,
        site: "example".into(),
        url: "http://127.0.0.1/".into(),
        availability: 0.5,
        time: "2026-01-01T00:00:00Z".into(),
        down_since: None,
        down_for_seconds: None,
        recent_errors: vec!["connect: connection refused".into()],
        message: "Website example is down. availability=50.00%, time=2026-01-01T00:00:00Z".into(),
    }
}
