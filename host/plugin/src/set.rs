//! The loaded plugins, swappable as a whole: calls already running keep the `Arc<Plugin>` they
//! started with, new calls see the new set. The engine is created on first need, so a config
//! without plugins costs nothing.

use super::{Plugin, PluginError, PluginHost, PluginKind};
use crate::config::{Config, PluginLimits};
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits for the smoke call every plugin gets before it is put to use.
const SMOKE_LIMITS: PluginLimits = PluginLimits {
    memory: 64 * 1024 * 1024,
    time: Duration::from_secs(2),
};

pub struct PluginSet {
    cache_dir: Option<PathBuf>,
    host: Mutex<Option<Arc<PluginHost>>>,
    /// `plugins.total_memory` of the config in use, for a host created later.
    total_memory: Mutex<Option<u64>>,
    plugins: ArcSwap<HashMap<String, Arc<Plugin>>>,
    /// Why plugins that the config uses are not loaded.
    broken: ArcSwap<HashMap<String, String>>,
}

/// A plugin set computed for a config, not yet in use.
pub struct Prepared {
    plugins: HashMap<String, Arc<Plugin>>,
    broken: HashMap<String, String>,
    pub errors: Vec<PluginError>,
}

/// What replacing one plugin file did.
#[derive(Debug)]
pub enum Replaced {
    /// The file has the same content as the loaded plugin.
    Unchanged,
    /// The new build is in use; the hash is its SHA-256.
    Swapped { hash: String },
}

impl PluginSet {
    /// `cache_dir` keeps compiled plugins across restarts.
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self {
            cache_dir,
            host: Mutex::new(None),
            total_memory: Mutex::new(None),
            plugins: ArcSwap::from_pointee(HashMap::new()),
            broken: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The plugin host, created on first use.
    /// A set of one loaded plugin on `host` (`sitewatch plugin test`).
    pub fn of(host: Arc<PluginHost>, plugin: Plugin) -> Self {
        let set = Self::new(None);
        *set.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host);
        set.plugins.store(Arc::new(HashMap::from([(
            plugin.name.to_string(),
            Arc::new(plugin),
        )])));
        set
    }

    pub fn host(&self) -> Result<Arc<PluginHost>, PluginError> {
        let mut host = self.host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = &*host {
            return Ok(Arc::clone(h));
        }
        let h = PluginHost::new(self.cache_dir.as_deref())?;
        h.set_total_memory(*self.total_memory.lock().unwrap_or_else(|p| p.into_inner()));
        *host = Some(Arc::clone(&h));
        Ok(h)
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

    /// Loads every plugin `config` uses, checking each is used as the kind it is. Plugins whose
    /// file is unchanged are reused. Nothing is put in use until `Self::commit`.
    pub async fn prepare(&self, config: &Config) -> Prepared {
        if let Some(host) = &*self.host.lock().unwrap_or_else(|p| p.into_inner()) {
            host.set_total_memory(config.plugins.total_memory);
        }
        *self.total_memory.lock().unwrap_or_else(|p| p.into_inner()) = config.plugins.total_memory;
        let mut prepared = Prepared {
            plugins: HashMap::new(),
            broken: HashMap::new(),
            errors: Vec::new(),
        };
        for (field, site, u) in config.plugin_uses() {
            if prepared.broken.contains_key(&u.plugin) {
                continue;
            }
            if !prepared.plugins.contains_key(&u.plugin) {
                match self
                    .load_or_reuse(&u.plugin, &config.plugin_path(&u.plugin))
                    .await
                {
                    Ok(p) => {
                        prepared.plugins.insert(u.plugin.clone(), p);
                    }
                    Err(e) => {
                        prepared.broken.insert(u.plugin.clone(), e.to_string());
                        prepared.errors.push(e);
                        continue;
                    }
                }
            }
            let want = if field.starts_with("alerting.") || field.starts_with("notify[") {
                PluginKind::Formatter
            } else if field.contains(".checks[") {
                PluginKind::Check
            } else {
                PluginKind::Scenario
            };
            let got = prepared.plugins[&u.plugin].kind;
            if got != want {
                let e = PluginError::Link {
                    name: u.plugin.clone(),
                    message: format!(
                        "it is a {got} plugin but {field}{} uses it as a {want}",
                        site.map(|s| format!(" (site \"{s}\")")).unwrap_or_default()
                    ),
                };
                prepared.plugins.remove(&u.plugin);
                prepared.broken.insert(u.plugin.clone(), e.to_string());
                prepared.errors.push(e);
            }
        }
        prepared
    }

    /// Puts a prepared set in use beside the plugins already loaded, which probes of the
    /// running config may still call; [`Self::retain_used`] drops those once that config is
    /// stopped. (Removing them first would fail a probe in flight with "not loaded".)
    pub fn add(&self, prepared: Prepared) {
        let mut next = HashMap::clone(&self.plugins.load());
        next.extend(prepared.plugins);
        self.plugins.store(Arc::new(next));
        self.broken.store(Arc::new(prepared.broken));
    }

    /// Drops the plugins `config` does not use.
    pub fn retain_used(&self, config: &Config) {
        let mut next = HashMap::clone(&self.plugins.load());
        next.retain(|name, _| config.plugin_uses().any(|(_, _, u)| &u.plugin == name));
        self.plugins.store(Arc::new(next));
    }

    async fn load_or_reuse(&self, name: &str, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let (bytes, hash) = read_hashed(path).await?;
        if let Some(current) = self.get(name)
            && current.hash == hash
        {
            return Ok(current);
        }
        Ok(Arc::new(self.load_checked(name, bytes).await?))
    }

    /// Compiles a plugin and smoke-calls it; only a plugin that answers is returned.
    async fn load_checked(&self, name: &str, bytes: Vec<u8>) -> Result<Plugin, PluginError> {
        let host = self.host()?;
        let plugin = host.load_bytes(name, bytes).await?;
        smoke_test(&host, &plugin).await?;
        Ok(plugin)
    }

    /// Replaces the plugin `name` from `path` if its content changed. A new build that fails to
    /// load or to answer its smoke call leaves the old one in use.
    pub async fn replace(&self, name: &str, path: &Path) -> Result<Replaced, PluginError> {
        let (bytes, hash) = read_hashed(path).await?;
        let current = self.get(name);
        if current.as_ref().is_some_and(|c| c.hash == hash) {
            return Ok(Replaced::Unchanged);
        }
        let plugin = self.load_checked(name, bytes).await?;
        if let Some(c) = &current
            && c.kind != plugin.kind
        {
            return Err(PluginError::Link {
                name: name.to_owned(),
                message: format!(
                    "the new build is a {} plugin; the config uses it as a {}",
                    plugin.kind, c.kind
                ),
            });
        }
        let mut next = HashMap::clone(&self.plugins.load());
        next.insert(name.to_owned(), Arc::new(plugin));
        self.plugins.store(Arc::new(next));
        let mut broken = HashMap::clone(&self.broken.load());
        if broken.remove(name).is_some() {
            self.broken.store(Arc::new(broken));
        }
        Ok(Replaced::Swapped { hash })
    }
}

/// Calls the plugin once on canned input with an empty config. An `err` answer is fine (most
/// plugins need config); a trap or a hit limit is not.
pub(crate) async fn smoke_test(host: &PluginHost, plugin: &Plugin) -> Result<(), PluginError> {
    let result = match plugin.kind {
        PluginKind::Check => host
            .check(plugin, SMOKE_LIMITS, "{}", &super::cli::sample_response())
            .await
            .map(drop),
        PluginKind::Formatter => host
            .format(plugin, SMOKE_LIMITS, "{}", &super::cli::sample_alert())
            .await
            .map(drop),
        // A run that sends nothing: every request is refused.
        PluginKind::Scenario => host
            .run_scenario(
                plugin,
                SMOKE_LIMITS,
                "{}",
                Box::new(super::scenario::Session::dry()),
            )
            .await
            .and_then(|(run, _)| run)
            .map(drop),
    };
    result.map_err(|e| PluginError::SmokeTest {
        name: plugin.name.to_string(),
        reason: e.message,
    })
}

/// A plugin file's bytes and their SHA-256 (hex).
async fn read_hashed(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let bytes = super::read_plugin_file(path).await?;
    let hash = crate::hex(&Sha256::digest(&bytes));
    Ok((bytes, hash))
}
