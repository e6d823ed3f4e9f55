//! Watches the config file and the plugin directory (notify, debounced) and says what changed.
//!
//! Directories are watched rather than files, so editors that save by writing a new file and
//! renaming it over the old one are seen. Either path may be a symlink, or run through several
//! (`config.json -> ..data/config.json`, `..data -> ..2026_12_07_...`, as a Kubernetes
//! ConfigMap volume is laid out): every link on the way and the file it ends at are watched,
//! each in its own directory, so retargeting any of them (`ln -sfn b.json config.json`, the
//! ConfigMap's `..data` swap) is a change, and so are later edits of the new target. After a
//! change the monitor calls [`Watcher::rearm`], which follows the links again.

use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a burst of file events must be quiet before it is acted on.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Links followed from one path, at most (a loop ends there).
const MAX_LINKS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Config,
    /// A `.wasm` file in the plugin directory.
    Plugin(PathBuf),
    /// The plugin directory itself moved (a symlink on its way was retargeted): every plugin
    /// may have changed.
    PluginDir,
}

/// What the event handler matches events against; replaced by [`Watcher::rearm`].
#[derive(Debug, Default)]
struct Targets {
    /// The config path, the links on its way and the file it resolves to.
    config: BTreeSet<PathBuf>,
    /// The links on the way to the plugin directory (not the directory's contents).
    plugin_links: BTreeSet<PathBuf>,
    /// The directory the plugins are read from, resolved.
    plugin_dir: Option<PathBuf>,
}

/// Keeps the watch alive; changes arrive on `changes`.
pub struct Watcher {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    targets: Arc<Mutex<Targets>>,
    /// The directories watched now.
    watched: BTreeSet<PathBuf>,
    config: PathBuf,
    plugin_dir: Option<PathBuf>,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify_debouncer_full::notify::Error,
}

/// `p` made absolute without resolving links (the links are what is followed).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// The path itself, every symlink met while resolving it (each link's own path, with its
/// directory resolved), and where it ends.
fn chain(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_owned()];
    let mut at = path.to_owned();
    for _ in 0..MAX_LINKS {
        // The directory part resolved (links there are followed by the kernel), the last part
        // as it is, so a link at the end is seen as a link.
        let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
            break;
        };
        let parent_real = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_owned());
        // Links in the directory part count too: each one on the way is a path to watch.
        let mut prefix = PathBuf::new();
        for part in parent.components() {
            prefix.push(part);
            if std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
                out.push(prefix.clone());
            }
        }
        let here = parent_real.join(name);
        out.push(here.clone());
        match std::fs::read_link(&here) {
            Ok(target) => at = parent_real.join(target),
            Err(_) => break,
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The directories that hold the paths of `chain`.
fn dirs_of(chain: &[PathBuf]) -> impl Iterator<Item = PathBuf> + '_ {
    chain.iter().filter_map(|p| p.parent().map(Path::to_owned))
}

impl Targets {
    fn compute(config: &Path, plugin_dir: Option<&Path>) -> (Self, BTreeSet<PathBuf>) {
        let config_chain = chain(config);
        let mut dirs: BTreeSet<PathBuf> = dirs_of(&config_chain).collect();
        let mut targets = Targets {
            config: config_chain.into_iter().collect(),
            ..Default::default()
        };
        if let Some(d) = plugin_dir {
            let links = chain(d);
            dirs.extend(dirs_of(&links));
            let real = std::fs::canonicalize(d).ok().filter(|r| r.is_dir());
            if let Some(r) = &real {
                dirs.insert(r.clone());
            }
            targets.plugin_links = links
                .into_iter()
                .filter(|l| Some(l) != real.as_ref())
                .collect();
            targets.plugin_dir = real;
        }
        // Only directories that exist can be watched.
        dirs.retain(|d| d.is_dir());
        (targets, dirs)
    }

    fn classify(&self, path: &Path, found: &mut BTreeSet<Change>) {
        if self.config.contains(path) {
            found.insert(Change::Config);
        }
        if self.plugin_links.contains(path) {
            found.insert(Change::PluginDir);
        } else if self
            .plugin_dir
            .as_deref()
            .is_some_and(|d| path.parent() == Some(d))
            && path.extension().is_some_and(|x| x == "wasm")
        {
            found.insert(Change::Plugin(path.to_owned()));
        }
    }
}

/// Starts watching `config` and, when it exists, `plugin_dir`.
pub fn watch(config: &Path, plugin_dir: Option<&Path>) -> Result<Watcher, WatchError> {
    let config = absolute(config);
    let plugin_dir = plugin_dir.map(absolute);
    let (tx, changes) = mpsc::unbounded_channel();
    let targets = Arc::new(Mutex::new(Targets::default()));
    let matching = Arc::clone(&targets);
    let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let mut found = BTreeSet::new();
        let t = matching.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if matches!(e.kind, EventKind::Access(_)) {
                continue;
            }
            for p in &e.paths {
                t.classify(p, &mut found);
            }
        }
        drop(t);
        for c in found {
            let _ = tx.send(c);
        }
    })
    .map_err(|source| WatchError {
        path: config.clone(),
        source,
    })?;
    let mut w = Watcher {
        debouncer,
        targets,
        watched: BTreeSet::new(),
        config,
        plugin_dir,
        changes,
    };
    w.arm()?;
    Ok(w)
}

impl Watcher {
    /// Follows the links again and watches where they lead now (after a change: a link may
    /// have been retargeted). A directory that can no longer be watched is reported once by
    /// the caller's next change, not here.
    pub fn rearm(&mut self) {
        if let Err(e) = self.arm() {
            tracing::warn!("re-arming the file watch: {}", crate::error_chain(&e));
        }
    }

    fn arm(&mut self) -> Result<(), WatchError> {
        let (targets, dirs) = Targets::compute(&self.config, self.plugin_dir.as_deref());
        *self.targets.lock().unwrap_or_else(|p| p.into_inner()) = targets;
        for gone in self.watched.difference(&dirs) {
            let _ = self.debouncer.unwatch(gone);
        }
        let mut first_error = None;
        for d in dirs.difference(&self.watched.clone()) {
            match self.debouncer.watch(d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d.clone());
                }
                Err(source) => {
                    first_error.get_or_insert(WatchError {
                        path: d.clone(),
                        source,
                    });
                }
            }
        }
        self.watched.retain(|d| dirs.contains(d));
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_every_link_and_the_file_it_ends_at() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        // config.json -> ..data/config.json, ..data -> ..v1 (a ConfigMap volume's layout).
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/config.json"), "{}").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.json", d.join("config.json")).unwrap();
        let c = chain(&d.join("config.json"));
        assert!(c.contains(&d.join("config.json")), "{c:?}");
        assert!(c.contains(&d.join("..data")), "{c:?}");
        assert!(c.contains(&d.join("..v1/config.json")), "{c:?}");
        let (targets, dirs) = Targets::compute(&d.join("config.json"), None);
        assert!(
            dirs.contains(&d) && dirs.contains(&d.join("..v1")),
            "{dirs:?}"
        );
        let mut found = BTreeSet::new();
        targets.classify(&d.join("..data"), &mut found);
        assert_eq!(found, BTreeSet::from([Change::Config]));
        // A plain file is its own chain.
        std::fs::write(d.join("plain.json"), "{}").unwrap();
        assert_eq!(chain(&d.join("plain.json")), vec![d.join("plain.json")]);
        // A link loop ends.
        std::os::unix::fs::symlink("loop-b", d.join("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", d.join("loop-b")).unwrap();
        assert!(chain(&d.join("loop-a")).len() <= 3);
    }
}
