//! Watches the config file and the plugin directory (notify, debounced) and says what changed.
//! The config file's directory is watched rather than the file, so editors that save by writing a
//! new file and renaming it over the old one are seen too.

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a burst of file events must be quiet before it is acted on.
const DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Config,
    /// A `.wasm` file in the plugin directory.
    Plugin(PathBuf),
}

/// Keeps the watch alive; changes arrive on `changes`.
pub struct Watcher {
    _debouncer: Box<dyn std::any::Any + Send>,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify_debouncer_full::notify::Error,
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
}

/// Starts watching `config` and, when it exists, `plugin_dir`.
pub fn watch(config: &Path, plugin_dir: Option<&Path>) -> Result<Watcher, WatchError> {
    let config = absolute(config);
    let config_dir = config
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/"));
    let config_name = config.file_name().map(|n| n.to_owned()).unwrap_or_default();
    let plugin_dir = plugin_dir.filter(|d| d.is_dir()).map(absolute);
    let (tx, changes) = mpsc::unbounded_channel();
    let (cfg_dir, pdir) = (config_dir.clone(), plugin_dir.clone());
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let mut found = BTreeSet::new();
        for e in events {
            if matches!(e.kind, EventKind::Access(_)) {
                continue;
            }
            for p in &e.paths {
                let (parent, name) = (p.parent(), p.file_name());
                if parent == Some(cfg_dir.as_path()) && name == Some(config_name.as_os_str()) {
                    found.insert(Change::Config);
                } else if pdir.as_deref().is_some_and(|d| parent == Some(d))
                    && p.extension().is_some_and(|x| x == "wasm")
                {
                    found.insert(Change::Plugin(p.clone()));
                }
            }
        }
        for c in found {
            let _ = tx.send(c);
        }
    })
    .map_err(|source| WatchError {
        path: config.clone(),
        source,
    })?;
    debouncer
        .watch(&config_dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            path: config_dir.clone(),
            source,
        })?;
    if let Some(d) = &plugin_dir
        && *d != config_dir
    {
        debouncer
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: d.clone(),
                source,
            })?;
    }
    Ok(Watcher {
        _debouncer: Box::new(debouncer),
        changes,
    })
}
