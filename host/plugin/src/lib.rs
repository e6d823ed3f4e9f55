//! The WebAssembly plugin host: wasmtime components, sandboxed. One [`PluginHost`] owns the engine
//! (epoch interruption, pooling allocator with an on-demand fallback, compiled-artifact cache) and
//! the linker (deny-all WASI plus the `host` interface). Each plugin is compiled off the async
//! threads, its imports checked against an allow-list, and pre-instantiated once. Every call gets
//! a fresh store (an instance is poisoned after a trap), a memory limiter that records what it
//! denied, an epoch deadline that yields to the runtime until the time limit and then traps, and
//! in-memory stdout/stderr pipes, so a panic message reaches the user.
//!
//! The linker holds every WIT version the host speaks ([`WitVersion`]) side by side. A plugin's
//! version is read from the interface it exports and it is pre-instantiated with that version's
//! world, so a plugin built against 0.1.0 runs unchanged beside one built against 0.2.0.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::event;
use sitewatch_core::hex;
use sitewatch_core::measurement;
use sitewatch_core::ms;
use sitewatch_probe as probe;

pub mod bindings;
pub mod checks;
pub mod cli;
mod sanitize;
pub mod scenario;
pub mod set;

use bindings::{types, v0_1, v0_2, v0_3, v0_4};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use sanitize::{sanitize_metric_name, sanitize_text};

/// A version of the `sitewatch:plugin` WIT package that this host links (`wit/<version>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WitVersion {
    /// `0.1.0`: the first interface.
    V0_1,
    /// `0.2.0`: the response carries the TLS session and the certificate chain.
    V0_2,
    /// `0.3.0`: checks on every kind of site; the response says what was observed.
    V0_3,
    /// `0.4.0`: scenarios (the `scenario` world).
    V0_4,
}

impl WitVersion {
    pub const ALL: [WitVersion; 4] = [
        WitVersion::V0_1,
        WitVersion::V0_2,
        WitVersion::V0_3,
        WitVersion::V0_4,
    ];
    /// The version new plugins should be built against.
    pub(crate) const NEWEST: WitVersion = WitVersion::V0_4;

    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
            WitVersion::V0_3 => "0.3.0",
            WitVersion::V0_4 => "0.4.0",
        }
    }

    /// The version of a `sitewatch:plugin/<interface>@<version>` name, when the host links one
    /// compatible with it (semver: before 1.0, `0.y.*` are one version).
    pub fn of(name: &str) -> Option<WitVersion> {
        let version = name.strip_prefix("sitewatch:plugin/")?.split_once('@')?.1;
        Self::ALL.into_iter().find(|v| {
            let (major_minor, _) = v.as_str().rsplit_once('.').unwrap_or_default();
            version
                .strip_prefix(major_minor)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// The name of `interface` (`check`, `formatter`, `host`, `types`) in this version.
    pub fn interface(self, interface: &str) -> String {
        format!("sitewatch:plugin/{interface}@{}", self.as_str())
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The interface of a `sitewatch:plugin/<interface>@<version>` name of a version the host links.
fn sitewatch_interface(name: &str) -> Option<(&str, WitVersion)> {
    let version = WitVersion::of(name)?;
    let interface = name.strip_prefix("sitewatch:plugin/")?.split('@').next()?;
    Some((interface, version))
}

/// The versions this host links, for messages: `0.1.0, 0.2.0`.
fn versions_spoken() -> String {
    WitVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Import prefixes a plugin may use besides `sitewatch:plugin/host` and `sitewatch:plugin/types`
/// (of a version the host links). WASI is linked deny-all: `wasi:filesystem` and
/// `wasi:sockets` may be imported (language runtimes such as CPython's link them whether or not
/// the plugin uses them), but no directory is preopened, so no file can be reached, and every
/// TCP, UDP and name lookup is refused when called; there is no environment and there are no
/// arguments. Clocks and random are what language runtimes need. `wasi:http` is not linked.
const ALLOWED_WASI_IMPORTS: &[&str] = &[
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];
/// Plugin calls that may run at once; more wait. Also sizes the instance pool.
const MAX_CONCURRENT_CALLS: u32 = 64;
/// How often the epoch advances. A call yields to the runtime at each tick.
const EPOCH_TICK: Duration = Duration::from_millis(2);
/// What a plugin may write to stdout or stderr per call; the rest is dropped.
const PIPE_CAPACITY: usize = 16 * 1024;
/// Ceiling for any plugin's memory (the pool reserves address space for it).
const MAX_MEMORY_LIMIT: u64 = crate::config::MAX_PLUGIN_MEMORY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Check,
    Formatter,
    /// A scenario: the probe of a `script` site.
    Scenario,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Check => "check",
            PluginKind::Formatter => "formatter",
            PluginKind::Scenario => "scenario",
        })
    }
}

pub use crate::config::PluginLimits as Limits;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {name}: not a valid WebAssembly component: {message}")]
    Compile { name: String, message: String },
    #[error(
        "plugin {name}: imports `{import}`, which plugins may not use; allowed: sitewatch:plugin/host (and scenario-host, for scenarios) and the WASI cli, io, clocks, random, filesystem and sockets interfaces (no directory is preopened and every connection is refused at run time)"
    )]
    ForbiddenImport { name: String, import: String },
    #[error(
        "plugin {name}: exports none of `sitewatch:plugin/check`, `sitewatch:plugin/formatter` or `sitewatch:plugin/script` of a WIT version this host speaks ({}) (it exports {}); {}",
        versions_spoken(),
        list(exports),
        version_hint(unknown.as_deref())
    )]
    WrongInterface {
        name: String,
        exports: Vec<String>,
        /// An import or export of a `sitewatch:plugin` version this host does not speak.
        unknown: Option<String>,
    },
    #[error("plugin {name}: cannot be linked: {message}")]
    Link { name: String, message: String },
    #[error("plugin {name}: failed its smoke test: {reason}")]
    SmokeTest { name: String, reason: String },
    #[error("cannot set up the plugin engine: {0}")]
    Engine(String),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn version_hint(unknown: Option<&str>) -> String {
    let newest = WitVersion::NEWEST;
    match unknown {
        Some(e) => format!(
            "it was built against another version of the sitewatch:plugin WIT ({e}); rebuild it against sitewatch:plugin@{newest} (wit/{newest}/plugin.wit)"
        ),
        None => format!(
            "build it against the `checker`, `alert-formatter` or `scenario` world of wit/{newest}/plugin.wit"
        ),
    }
}

/// Why one plugin call failed; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    pub message: String,
    /// The call ran into its time limit.
    pub timed_out: bool,
}

impl CallFailure {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            timed_out: false,
        }
    }

    fn timeout(message: String) -> Self {
        Self {
            message,
            timed_out: true,
        }
    }
}

/// A loaded, pre-instantiated plugin.
pub struct Plugin {
    pub name: Arc<str>,
    pub kind: PluginKind,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// The WIT version of the interface it exports.
    pub wit: WitVersion,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pre: Pre,
}

/// A plugin pre-instantiated with the world of its kind and WIT version.
#[derive(Clone)]
enum Pre {
    CheckV0_1(v0_1::checker::CheckerPre<PluginState>),
    CheckV0_2(v0_2::checker::CheckerPre<PluginState>),
    CheckV0_3(v0_3::checker::CheckerPre<PluginState>),
    CheckV0_4(v0_4::checker::CheckerPre<PluginState>),
    FormatterV0_1(v0_1::formatter::AlertFormatterPre<PluginState>),
    FormatterV0_2(v0_2::formatter::AlertFormatterPre<PluginState>),
    FormatterV0_3(v0_3::formatter::AlertFormatterPre<PluginState>),
    FormatterV0_4(v0_4::formatter::AlertFormatterPre<PluginState>),
    Scenario(v0_4::scenario::ScenarioPre<PluginState>),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("wit", &self.wit)
            .field("hash", &self.hash)
            .finish()
    }
}

/// The per-call state a plugin's store holds.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    plugin: Arc<str>,
    log_lines: u32,
    /// A scenario's run: what its host calls reach.
    scenario: Option<Box<scenario::Session>>,
    /// The longest a scenario's call may take in all (its run's budget).
    wall: Option<Duration>,
    /// Time the call spent waiting in host calls (a scenario's requests and sleeps): not the
    /// plugin's own time, so not counted against its time limit.
    away: Duration,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Log lines a plugin may write per call.
const MAX_LOG_LINES: u32 = 20;

impl PluginState {
    /// A plugin's log line, of any WIT version.
    fn log(&mut self, level: bindings::Level, message: &str) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = sanitize_text(message, 500);
        let plugin = &*self.plugin;
        match level {
            bindings::Level::Debug => tracing::debug!(plugin, "{message}"),
            bindings::Level::Info => tracing::info!(plugin, "{message}"),
            bindings::Level::Warn => tracing::warn!(plugin, "{message}"),
            bindings::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl v0_4::host::Host for PluginState {
    fn log(&mut self, level: v0_4::host::Level, message: String) -> wasmtime::Result<()> {
        PluginState::log(self, bindings::level_from_v0_4(level), &message);
        Ok(())
    }
}

impl v0_3::host::Host for PluginState {
    fn log(&mut self, level: bindings::Level, message: String) -> wasmtime::Result<()> {
        PluginState::log(self, level, &message);
        Ok(())
    }
}

impl v0_2::host::Host for PluginState {
    fn log(&mut self, level: v0_2::host::Level, message: String) -> wasmtime::Result<()> {
        PluginState::log(self, bindings::level_from_v0_2(level), &message);
        Ok(())
    }
}

impl v0_1::host::Host for PluginState {
    fn log(&mut self, level: v0_1::host::Level, message: String) -> wasmtime::Result<()> {
        PluginState::log(self, bindings::level_from_v0_1(level), &message);
        Ok(())
    }
}

/// The linear memory every plugin call at once may hold (`plugins.total_memory`): each call's
/// memories reserve their growth here and give it back when the call's store is dropped, so 64
/// calls at a 1 GiB limit cannot take 64 GiB.
#[derive(Debug)]
pub struct MemoryBudget {
    total: AtomicU64,
    used: AtomicU64,
}

impl MemoryBudget {
    fn new(total: u64) -> Self {
        Self {
            total: AtomicU64::new(total),
            used: AtomicU64::new(0),
        }
    }

    /// The budget now.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Bytes the calls running now hold.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Takes `n` bytes if they fit.
    fn reserve(&self, n: u64) -> bool {
        let total = self.total();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|u| *u <= total)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// The default `plugins.total_memory`: a quarter of the machine's memory, at least 256 MiB
/// (4 GiB when the machine's memory cannot be read).
pub(crate) fn default_total_memory() -> u64 {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    physical.map_or(4 << 30, |p| (p / 4).max(256 << 20))
}

/// Caps linear memory per call and against the budget of all calls, and remembers a denied
/// growth, so the failure can be named.
struct MemoryLimiter {
    limit: usize,
    denied: Option<usize>,
    budget: Arc<MemoryBudget>,
    /// What this call holds of the budget.
    reserved: u64,
    /// The budget was full when this call asked for more (the budget then).
    denied_total: Option<u64>,
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.denied = Some(desired);
            return Ok(false);
        }
        let more = desired.saturating_sub(current) as u64;
        if !self.budget.reserve(more) {
            self.denied = Some(desired);
            self.denied_total = Some(self.budget.total());
            return Ok(false);
        }
        self.reserved += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Advances the engine's epoch on a thread of its own until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("sitewatch-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a call needs, cheap to clone into a call that runs on the plugin pool.
#[derive(Clone)]
struct Caller {
    engine: Engine,
    slots: Arc<Semaphore>,
    budget: Arc<MemoryBudget>,
}

/// The runtime plugin calls run on: threads of their own, so calls that run to their time
/// limit never take the probes' async workers (half the cores, at least one).
struct PluginPool(Option<tokio::runtime::Runtime>);

impl PluginPool {
    fn new() -> Result<Self, PluginError> {
        let threads = std::thread::available_parallelism()
            .map(|n| (n.get() / 2).max(1))
            .unwrap_or(1);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sitewatch-plugin")
            .enable_all()
            .build()
            .map(|r| Self(Some(r)))
            .map_err(|e| PluginError::Engine(format!("cannot start the plugin threads: {e}")))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the pool lives as long as its host")
            .handle()
    }
}

impl Drop for PluginPool {
    fn drop(&mut self) {
        // A runtime may be dropped from async code only this way.
        if let Some(r) = self.0.take() {
            r.shutdown_background();
        }
    }
}

/// The engine, linker and call slots shared by every plugin.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    caller: Caller,
    pool: PluginPool,
    budget: Arc<MemoryBudget>,
    _ticker: EpochTicker,
    /// Whether the pooling allocator could be set up (else on-demand allocation is used).
    pub pooling: bool,
}

impl PluginHost {
    /// Sets up the engine. `cache_dir` holds compiled artifacts keyed by content hash, so a
    /// restart does not recompile.
    pub fn new(cache_dir: Option<&Path>) -> Result<Arc<Self>, PluginError> {
        let engine_err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        if let Some(dir) = cache_dir {
            // wasmtime's cache wants an absolute path; `--data-dir` is often relative.
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(&dir);
            match wasmtime::Cache::new(cache) {
                Ok(c) => {
                    config.cache(Some(c));
                }
                Err(e) => tracing::warn!("plugin cache in {} disabled: {e:#}", dir.display()),
            }
        }
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_CONCURRENT_CALLS)
            .total_core_instances(MAX_CONCURRENT_CALLS * 8)
            .total_memories(MAX_CONCURRENT_CALLS * 2)
            .total_tables(MAX_CONCURRENT_CALLS * 8)
            .max_memories_per_component(4)
            .max_memory_size(MAX_MEMORY_LIMIT as usize)
            // Reset small memories and tables by zeroing, not by unmapping: instantiation per call
            // is then cheaper (fewer syscalls).
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 * 1024);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let (engine, pooling) = match Engine::new(&config) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                config.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
                (Engine::new(&config).map_err(engine_err)?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        // Every version's `host`, side by side (before 1.0, semver keeps 0.1 and 0.2 apart).
        v0_1::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        v0_2::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        v0_3::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        v0_4::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        v0_4::scenario_host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        let budget = Arc::new(MemoryBudget::new(default_total_memory()));
        Ok(Arc::new(Self {
            _ticker: EpochTicker::start(engine.clone()),
            caller: Caller {
                engine: engine.clone(),
                slots: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS as usize)),
                budget: Arc::clone(&budget),
            },
            pool: PluginPool::new()?,
            engine,
            linker,
            budget,
            pooling,
        }))
    }

    /// Sets the memory all calls at once may hold (`plugins.total_memory`; `None`: the
    /// machine's default, [`default_total_memory`]).
    pub(crate) fn set_total_memory(&self, total: Option<u64>) {
        self.budget
            .set_total(total.unwrap_or_else(default_total_memory));
    }

    /// The memory budget of all calls.
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Reads, compiles (off the async threads), checks and pre-instantiates a plugin file. The
    /// plugin's name is the file stem.
    pub async fn load_file(self: &Arc<Self>, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = read_plugin_file(path).await?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.load_bytes(&name, bytes).await
    }

    /// Compiles and checks a plugin from its bytes.
    pub(crate) async fn load_bytes(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Plugin, PluginError> {
        let host = Arc::clone(self);
        let owned = name.to_owned();
        tokio::task::spawn_blocking(move || host.compile(&owned, &bytes))
            .await
            .map_err(|e| PluginError::Compile {
                name: name.to_owned(),
                message: e.to_string(),
            })?
    }

    fn compile(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let hash = crate::hex(&Sha256::digest(bytes));
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Compile {
            name: name.to_owned(),
            message: format!("{e:#}"),
        })?;
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        // A plugin built against a version of our WIT this host does not speak is named as such,
        // before the allow-list would call its imports forbidden.
        let other_version =
            |n: &&String| n.starts_with("sitewatch:plugin/") && WitVersion::of(n).is_none();
        if let Some(unknown) = exports.iter().chain(&imports).find(other_version) {
            return Err(PluginError::WrongInterface {
                name: name.to_owned(),
                unknown: Some(unknown.clone()),
                exports,
            });
        }
        // Only a scenario may import the scenario host (its requests).
        let scenario = exports
            .iter()
            .any(|e| matches!(sitewatch_interface(e), Some(("script", _))));
        let allowed = |i: &String| match sitewatch_interface(i) {
            Some(("host" | "types", _)) => true,
            Some(("scenario-host", _)) => scenario,
            _ => ALLOWED_WASI_IMPORTS.iter().any(|p| i.starts_with(p)),
        };
        if let Some(bad) = imports.iter().find(|i| !allowed(i)) {
            return Err(PluginError::ForbiddenImport {
                name: name.to_owned(),
                import: bad.clone(),
            });
        }
        let link = |e: wasmtime::Error| PluginError::Link {
            name: name.to_owned(),
            message: format!("{e:#}"),
        };
        // The version is the exported interface's: a check is preferred to a formatter, and
        // the newest version to an older one, should a component export several.
        let exported = |interface: &str| {
            exports
                .iter()
                .filter_map(|e| sitewatch_interface(e))
                .filter(|(i, _)| *i == interface)
                .map(|(_, v)| v)
                .max()
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let (kind, wit, pre) = if let Some(wit) = exported("script") {
            (
                PluginKind::Scenario,
                wit,
                Pre::Scenario(v0_4::scenario::ScenarioPre::new(pre).map_err(link)?),
            )
        } else if let Some(wit) = exported("check") {
            let pre = match wit {
                WitVersion::V0_1 => {
                    Pre::CheckV0_1(v0_1::checker::CheckerPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_2 => {
                    Pre::CheckV0_2(v0_2::checker::CheckerPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_3 => {
                    Pre::CheckV0_3(v0_3::checker::CheckerPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_4 => {
                    Pre::CheckV0_4(v0_4::checker::CheckerPre::new(pre).map_err(link)?)
                }
            };
            (PluginKind::Check, wit, pre)
        } else if let Some(wit) = exported("formatter") {
            let pre = match wit {
                WitVersion::V0_1 => {
                    Pre::FormatterV0_1(v0_1::formatter::AlertFormatterPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_2 => {
                    Pre::FormatterV0_2(v0_2::formatter::AlertFormatterPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_3 => {
                    Pre::FormatterV0_3(v0_3::formatter::AlertFormatterPre::new(pre).map_err(link)?)
                }
                WitVersion::V0_4 => {
                    Pre::FormatterV0_4(v0_4::formatter::AlertFormatterPre::new(pre).map_err(link)?)
                }
            };
            (PluginKind::Formatter, wit, pre)
        } else {
            return Err(PluginError::WrongInterface {
                name: name.to_owned(),
                exports,
                unknown: None,
            });
        };
        Ok(Plugin {
            name: name.into(),
            kind,
            wit,
            hash,
            imports,
            exports,
            pre,
        })
    }
}

impl Caller {
    /// A fresh store for one call. A scenario's call also gets its session, and may run until
    /// its session's budget; the time limit counts only the plugin's own time, not the time
    /// it waits in host calls.
    fn new_store(
        &self,
        plugin: Arc<str>,
        limits: Limits,
        session: Option<Box<scenario::Session>>,
    ) -> (Store<PluginState>, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
        let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        // Deny-all: no preopens, environment or arguments are added; sockets are refused.
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: usize::try_from(limits.memory).unwrap_or(usize::MAX),
                denied: None,
                budget: Arc::clone(&self.budget),
                reserved: 0,
                denied_total: None,
            },
            plugin,
            log_lines: 0,
            wall: session.as_ref().map(|s| s.budget()),
            scenario: session,
            away: Duration::ZERO,
        };
        let wall = state.wall;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let started = Instant::now();
        let limit = limits.time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            let elapsed = started.elapsed();
            let own = elapsed.saturating_sub(ctx.data().away);
            if own >= limit || wall.is_some_and(|w| elapsed >= w) {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Let other tasks run on this thread, then continue.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (store, stderr)
    }

    /// Runs `call` in a fresh store with the call's limits, in one of the call slots, and names
    /// the limit it hit if it fails.
    async fn call<R>(
        &self,
        plugin: Arc<str>,
        limits: Limits,
        call: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        self.call_with(plugin, limits, None, call).await.0
    }

    /// [`Caller::call`] with a scenario's session, given back with the outcome.
    async fn call_with<R>(
        &self,
        plugin: Arc<str>,
        limits: Limits,
        session: Option<Box<scenario::Session>>,
        call: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> (Result<R, CallFailure>, Option<Box<scenario::Session>>) {
        let Ok(_slot) = self.slots.acquire().await else {
            return (
                Err(CallFailure::new("the plugin host is shutting down")),
                session,
            );
        };
        let budget = session.as_ref().map(|s| s.budget()).unwrap_or_default();
        let (mut store, stderr) = self.new_store(plugin, limits, session);
        let outcome = tokio::time::timeout(budget + backstop(limits), call(&mut store)).await;
        let settled = settle(outcome, &store, &stderr, limits);
        (settled, store.data_mut().scenario.take())
    }
}

/// One call of a pre-instantiated plugin in a fresh instance, on `$caller`: `$pre` instantiated,
/// its `$iface`'s `$func` called with the config and `$input`. The same for every WIT version
/// (each version's bindings are their own types); what differs is the input's conversion.
macro_rules! call {
    ($caller:expr, $name:expr, $limits:expr, $config:expr, $pre:expr, $iface:ident, $func:ident, $input:expr) => {
        $caller
            .call(Arc::clone(&$name), $limits, async |store| {
                let instance = $pre.instantiate_async(&mut *store).await?;
                instance.$iface().$func(&mut *store, $config, $input).await
            })
            .await
    };
}

impl PluginHost {
    /// Runs `work` on the plugin pool and waits for it.
    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, CallFailure>> + Send + 'static,
    ) -> Result<T, CallFailure> {
        match self.pool.handle().spawn(work).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(CallFailure::new("the plugin host is shutting down")),
        }
    }

    /// Runs a check plugin on one response, on the plugin pool. A plugin built against an older
    /// WIT version gets the response less the fields added since (a copy).
    pub async fn check(
        &self,
        plugin: &Plugin,
        limits: Limits,
        config: &str,
        response: &types::Response,
    ) -> Result<Result<types::CheckResult, String>, CallFailure> {
        let (caller, pre, name) = (
            self.caller.clone(),
            plugin.pre.clone(),
            Arc::clone(&plugin.name),
        );
        let (config, response) = (config.to_owned(), response.clone());
        let kind = plugin.kind;
        self.on_pool(async move {
            match &pre {
                Pre::CheckV0_4(pre) => call!(
                    caller,
                    name,
                    limits,
                    &config,
                    pre,
                    sitewatch_plugin_check,
                    call_check,
                    &response
                ),
                Pre::CheckV0_3(pre) => call!(
                    caller,
                    name,
                    limits,
                    &config,
                    pre,
                    sitewatch_plugin_check,
                    call_check,
                    &response
                ),
                Pre::CheckV0_2(pre) => {
                    let response = bindings::response_v0_2(&response);
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_check,
                        call_check,
                        &response
                    )
                    .map(|r| r.map(bindings::check_result_from_v0_2))
                }
                Pre::CheckV0_1(pre) => {
                    let response = bindings::response_v0_1(&response);
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_check,
                        call_check,
                        &response
                    )
                    .map(|r| r.map(bindings::check_result_from_v0_1))
                }
                Pre::FormatterV0_1(_)
                | Pre::FormatterV0_2(_)
                | Pre::FormatterV0_3(_)
                | Pre::FormatterV0_4(_)
                | Pre::Scenario(_) => Err(CallFailure::new(format!(
                    "plugin {name} is a {kind}, not a check"
                ))),
            }
        })
        .await
    }

    /// Runs a formatter plugin on one alert, on the plugin pool.
    pub async fn format(
        &self,
        plugin: &Plugin,
        limits: Limits,
        config: &str,
        alert: &types::Alert,
    ) -> Result<Result<String, String>, CallFailure> {
        let (caller, pre, name) = (
            self.caller.clone(),
            plugin.pre.clone(),
            Arc::clone(&plugin.name),
        );
        let (config, alert) = (config.to_owned(), alert.clone());
        let kind = plugin.kind;
        self.on_pool(async move {
            match &pre {
                Pre::FormatterV0_4(pre) => {
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_formatter,
                        call_format,
                        &alert
                    )
                }
                Pre::FormatterV0_3(pre) => {
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_formatter,
                        call_format,
                        &alert
                    )
                }
                Pre::FormatterV0_2(pre) => {
                    let alert = bindings::alert_v0_2(&alert);
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_formatter,
                        call_format,
                        &alert
                    )
                }
                Pre::FormatterV0_1(pre) => {
                    let alert = bindings::alert_v0_1(&alert);
                    call!(
                        caller,
                        name,
                        limits,
                        &config,
                        pre,
                        sitewatch_plugin_formatter,
                        call_format,
                        &alert
                    )
                }
                Pre::CheckV0_1(_)
                | Pre::CheckV0_2(_)
                | Pre::CheckV0_3(_)
                | Pre::CheckV0_4(_)
                | Pre::Scenario(_) => Err(CallFailure::new(format!(
                    "plugin {name} is a {kind}, not a formatter"
                ))),
            }
        })
        .await
    }

    /// Runs a scenario plugin once with `session`, on the plugin pool; the session comes back
    /// with what the run did (its steps, its requests, any refusal of the host), unless the
    /// plugin host is shutting down.
    pub(crate) async fn run_scenario(
        &self,
        plugin: &Plugin,
        limits: Limits,
        config: &str,
        session: Box<scenario::Session>,
    ) -> Result<
        (
            Result<Result<scenario::Outcome, scenario::Failure>, CallFailure>,
            Option<Box<scenario::Session>>,
        ),
        CallFailure,
    > {
        let Pre::Scenario(pre) = plugin.pre.clone() else {
            return Ok((
                Err(CallFailure::new(format!(
                    "plugin {} is a {}, not a scenario",
                    plugin.name, plugin.kind
                ))),
                Some(session),
            ));
        };
        let (caller, name, config) = (
            self.caller.clone(),
            Arc::clone(&plugin.name),
            config.to_owned(),
        );
        self.on_pool(async move {
            Ok(caller
                .call_with(name, limits, Some(session), async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance
                        .sitewatch_plugin_script()
                        .call_run(&mut *store, &config)
                        .await
                })
                .await)
        })
        .await
    }
}

/// Reads a plugin file; the error names it.
pub(crate) async fn read_plugin_file(path: &Path) -> Result<Vec<u8>, PluginError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The wall-clock bound around a call, beyond the epoch deadline, in case a host call blocks.
fn backstop(limits: Limits) -> Duration {
    limits.time * 2 + Duration::from_millis(100)
}

/// Turns a call's outcome into a result, naming the limit it hit and adding what it wrote to
/// stderr.
fn settle<T>(
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    store: &Store<PluginState>,
    stderr: &MemoryOutputPipe,
    limits: Limits,
) -> Result<T, CallFailure> {
    let error = match outcome {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(CallFailure::timeout(format!(
                "did not finish within {}",
                humantime::format_duration(backstop(limits))
            )));
        }
    };
    let limiter = &store.data().limiter;
    let timed_out =
        limiter.denied.is_none() && matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt));
    let mut reason = if let (Some(asked), Some(total)) = (limiter.denied, limiter.denied_total) {
        format!(
            "could not grow its memory to {}: the memory of all plugin calls at once is capped at {} (plugins.total_memory), and other calls hold the rest; it will run again at its next probe",
            bytes(asked as u64),
            bytes(total)
        )
    } else if let Some(asked) = limiter.denied {
        format!(
            "exceeded its memory limit of {} (asked for {})",
            bytes(limits.memory),
            bytes(asked as u64)
        )
    } else if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        format!(
            "exceeded its time limit of {}",
            humantime::format_duration(limits.time)
        )
    } else {
        match error.downcast_ref::<Trap>() {
            Some(trap) => format!("trapped: {trap}"),
            None => format!("failed: {}", error.root_cause()),
        }
    };
    let written = String::from_utf8_lossy(&stderr.contents())
        .trim()
        .to_owned();
    if !written.is_empty() {
        reason.push_str("; it wrote: ");
        reason.push_str(&sanitize_text(&written, 1000));
    }
    Err(CallFailure {
        message: reason,
        timed_out,
    })
}

fn bytes(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", n / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_of_a_name_is_one_the_host_links_or_none() {
        let of = WitVersion::of;
        assert_eq!(of("sitewatch:plugin/check@0.1.0"), Some(WitVersion::V0_1));
        assert_eq!(of("sitewatch:plugin/host@0.1.3"), Some(WitVersion::V0_1));
        assert_eq!(of("sitewatch:plugin/check@0.2.0"), Some(WitVersion::V0_2));
        assert_eq!(of("sitewatch:plugin/types@0.2.7"), Some(WitVersion::V0_2));
        for unknown in [
            "sitewatch:plugin/check@0.9.0",
            "sitewatch:plugin/check@0.10.0",
            "sitewatch:plugin/check@0.20.0",
            "sitewatch:plugin/check@1.0.0",
            "sitewatch:plugin/check",
            "wasi:io/streams@0.2.6",
        ] {
            assert_eq!(of(unknown), None, "{unknown}");
        }
        assert_eq!(
            sitewatch_interface("sitewatch:plugin/formatter@0.2.0"),
            Some(("formatter", WitVersion::V0_2))
        );
        assert_eq!(of("sitewatch:plugin/check@0.3.1"), Some(WitVersion::V0_3));
        assert_eq!(of("sitewatch:plugin/script@0.4.2"), Some(WitVersion::V0_4));
        assert_eq!(
            WitVersion::NEWEST.interface("check"),
            "sitewatch:plugin/check@0.4.0"
        );
    }

    #[test]
    fn an_unknown_version_is_named_with_the_one_to_rebuild_against() {
        let e = PluginError::WrongInterface {
            name: "p".into(),
            exports: vec!["sitewatch:plugin/check@0.9.0".into()],
            unknown: Some("sitewatch:plugin/check@0.9.0".into()),
        };
        assert_eq!(
            e.to_string(),
            "plugin p: exports none of `sitewatch:plugin/check`, `sitewatch:plugin/formatter` or `sitewatch:plugin/script` of a WIT version this host speaks (0.1.0, 0.2.0, 0.3.0, 0.4.0) (it exports `sitewatch:plugin/check@0.9.0`); it was built against another version of the sitewatch:plugin WIT (sitewatch:plugin/check@0.9.0); rebuild it against sitewatch:plugin@0.4.0 (wit/0.4.0/plugin.wit)"
        );
    }
}
