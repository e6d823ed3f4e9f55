//! Configuration: `config.json` is parsed into raw serde types (the `raw` module), then resolved into the
//! checked types below. Nothing else in the program sees an unchecked value. Every error names the
//! file, the field path and, when there is one, the site.

// The crates this one builds on, by the names its paths use.
use sitewatch_core::alert;
use sitewatch_core::error_chain;
use sitewatch_core::history;
use sitewatch_core::maintenance;

pub mod cluster;
pub mod diff;
pub mod edit;
mod expand;
pub mod kind;
pub mod notify;
pub mod print;
pub(crate) mod raw;
pub(crate) mod rules;
pub mod secret;
pub mod values;

use crate::alert::{AlertRule, LatencyObjective};
use raw::{RawConfig, RawSite};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
pub use rules::RequestBody;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;
pub use values::{StatusMatcher, printable};

/// Defaults, as Gatus and Uptime Kuma users would expect them.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
pub const DEFAULT_THRESHOLD: f64 = 0.8;
pub(crate) const DEFAULT_ALERT_WINDOW: Duration = Duration::from_secs(120);
/// The most probes of one site that may run at once, whatever the config asks.
pub(crate) const MAX_IN_FLIGHT_LIMIT: u32 = 64;
pub(crate) const DEFAULT_PLUGIN_DIR: &str = "target/plugins";
pub(crate) const DEFAULT_PLUGIN_MEMORY: u64 = 32 * 1024 * 1024;
pub(crate) const DEFAULT_PLUGIN_TIME: Duration = Duration::from_millis(100);
/// The most memory any plugin call may be given (the plugin host reserves address space for it).
pub const MAX_PLUGIN_MEMORY: u64 = 1 << 30;
pub(crate) const DEFAULT_INFLUX_BATCH: usize = 5_000;
pub(crate) const DEFAULT_INFLUX_FLUSH: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_OUTBOX_LINES: u64 = 10_000_000;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sites: Vec<SiteConfig>,
    pub alerting: AlertingConfig,
    pub dashboard: DashboardConfig,
    pub storage: StorageConfig,
    pub plugins: PluginsConfig,
    pub probing: ProbingConfig,
    /// Where the `domain_expiry` sites' registrations are looked up.
    pub rdap: RdapConfig,
    /// Where alerts are delivered, in config order.
    pub notify: Vec<notify::NotifierConfig>,
    /// The HTTP server, when configured.
    pub server: Option<ServerConfig>,
    /// Where this instance runs: the `location` of every exported point, series and event.
    pub location: String,
    /// Maintenance windows of every site (each site's schedule has them too).
    pub maintenance: Vec<crate::maintenance::Window>,
    /// This node's cluster, when it is one.
    pub cluster: Option<cluster::ClusterConfig>,
    /// What tells sitewatch whether it can reach the network (`probing.canaries`).
    pub canaries: Canaries,
    /// Banners on the status page (`announcements`).
    pub announcements: Vec<Announcement>,
}

/// A banner on the status page, shown from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub name: Option<String>,
    pub message: String,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

impl Announcement {
    /// Whether it is shown at `now`.
    pub fn shown_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.start <= now && now < self.end
    }
}

/// The most characters of an announcement's message.
const MAX_ANNOUNCEMENT: usize = 2000;

fn announcements(raw: &[raw::RawAnnouncement]) -> Result<Vec<Announcement>, FieldError> {
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |f: &str| format!("announcements[{i}].{f}");
            let time = |f: &str, text: &str| {
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map(|t| t.to_utc())
                    .map_err(|_| {
                        FieldError::from((
                            field(f),
                            format!(
                                "{} is not an RFC 3339 time such as \"2026-12-24T22:00:00Z\"",
                                values::quote(text)
                            ),
                        ))
                    })
            };
            let (start, end) = (time("start", &a.start)?, time("end", &a.end)?);
            if end <= start {
                return Err((field("end"), "must be after start").into());
            }
            let message = a.message.trim();
            if message.is_empty() || message.chars().count() > MAX_ANNOUNCEMENT {
                return Err((
                    field("message"),
                    format!("must hold 1 to {MAX_ANNOUNCEMENT} characters"),
                )
                    .into());
            }
            Ok(Announcement {
                name: a
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                message: message.to_owned(),
                start,
                end,
            })
        })
        .collect()
}

/// `probing.canaries`: targets that are always up. When every one fails, sitewatch is the one
/// offline; without any, a rule over all sites guesses it (see the recorder).
#[derive(Debug, Clone, PartialEq)]
pub struct Canaries {
    pub targets: Vec<Canary>,
    /// How often the `host:port` canaries are connected to (`probing.canary_interval`).
    pub interval: Duration,
    /// The `host:port` canaries as tcp sites named `host:port`, for the canary task: a connect
    /// within 5 s (or the interval, if shorter) is an answer.
    pub probes: Vec<SiteConfig>,
}

impl Default for Canaries {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            interval: DEFAULT_CANARY_INTERVAL,
            probes: Vec::new(),
        }
    }
}

pub const DEFAULT_CANARY_INTERVAL: Duration = Duration::from_secs(10);

/// One canary: a site, whose own probes tell, or an address sitewatch connects to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Canary {
    /// A site's name, as the site has it.
    Site(String),
    /// `host:port`: a TCP connect within 5 s is an answer.
    Address { host: String, port: u16 },
}

impl Canary {
    /// The site's name, or `host:port`: what it is called in messages.
    pub fn name(&self) -> String {
        match self {
            Canary::Site(name) => name.clone(),
            Canary::Address { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Canary::Address { host, port } => format!("{host}:{port}"),
        }
    }
}

/// A `probing.canaries` entry: a site's name (as the site has it), else `host:port`.
fn canary(text: &str, sites: &[SiteConfig]) -> Result<Canary, String> {
    let key = values::name_key(text.trim());
    if let Some(site) = sites.iter().find(|s| values::name_key(&s.name) == key) {
        return Ok(Canary::Site(site.name.clone()));
    }
    let bad = || {
        format!(
            "{} is neither the name of a site nor host:port (e.g. \"1.1.1.1:53\", \"[2606:4700::1111]:443\", \"gateway.lan:80\")",
            values::quote(text)
        )
    };
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(Canary::Address {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid_host {
        return Err(bad());
    }
    Ok(Canary::Address {
        host: host.to_ascii_lowercase(),
        port,
    })
}

pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:9184";

/// The HTTP server's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// The tokens requests may carry (`server.tokens`, and `auth_token_env` as a read token
    /// named `auth_token`). With any, every path but `/healthz`, the push pings and what
    /// [`Self::public`] opens needs one.
    pub tokens: Vec<ApiToken>,
    /// Without a token, requests are answered only when addressed (`Host`) to the listen
    /// address, `localhost`, `127.0.0.1`, `[::1]` or one of these names (lower case).
    pub allowed_hosts: Vec<String>,
    /// What is readable without a token when tokens are set.
    pub public: Public,
}

impl ServerConfig {
    /// A server at `listen` with nothing else set.
    pub fn at(listen: std::net::SocketAddr) -> Self {
        Self {
            listen,
            tokens: Vec::new(),
            allowed_hosts: Vec::new(),
            public: Public::default(),
        }
    }
}

/// One API token (`server.tokens[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    /// What the log shows of a request made with it.
    pub name: String,
    pub scope: Scope,
    pub value: secret::Secret<String>,
}

/// What a token may do: read (every GET), or write too (the write API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// The parts of the server readable without a token when tokens are set (`server.public`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Public {
    /// The status page (`/`), without its live stream: it refreshes instead.
    pub page: bool,
    /// The badges (`/badge/...`).
    pub badges: bool,
    /// The Atom feed (`/feed.atom`).
    pub feed: bool,
}

/// The name `auth_token_env`'s token goes by in the log.
pub const AUTH_TOKEN_NAME: &str = "auth_token";

/// The host name, for the default `location`.
pub(crate) fn default_location() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Settings of probing as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbingConfig {
    /// Probes that may run at once across all sites; `None`: derived from the file-descriptor
    /// limit ([`default_max_in_flight`]).
    pub max_in_flight: Option<usize>,
    /// The local address probes connect from (`probing.source_address`, `--source-address`).
    pub source_address: Option<std::net::IpAddr>,
}

/// Where domain registrations are looked up (`probing.rdap_bootstrap`, `probing.rdap_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdapConfig {
    /// Where the registries' RDAP servers are listed (IANA's bootstrap file by default).
    pub bootstrap: Url,
    /// One RDAP server for every domain instead of the bootstrap's (a private registry, tests).
    pub base: Option<Url>,
}

/// An http(s) URL of an RDAP setting.
fn rdap_url(text: &str) -> Result<Url, String> {
    Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| format!("\"{text}\" is not an http:// or https:// URL"))
}

/// IANA's list of the RDAP servers of each top-level domain (RFC 9224).
pub const DEFAULT_RDAP_BOOTSTRAP: &str = "https://data.iana.org/rdap/dns.json";

/// Where plugins are found and their default limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// Resolved against the config file's directory.
    pub dir: PathBuf,
    pub limits: PluginLimits,
    /// The memory all plugin calls at once may hold (`None`: a quarter of the machine's).
    pub total_memory: Option<u64>,
}

/// The limits of one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    pub memory: u64,
    pub time: Duration,
}

/// One use of a plugin, with its config as JSON text and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginUse {
    pub plugin: String,
    pub config: String,
    pub limits: PluginLimits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// How long raw measurements, each rollup tier and alerts are kept in the embedded store.
    pub retention: crate::history::Retention,
    /// How often the store writer checkpoints its rollups.
    pub rollup_every: Duration,
    pub influxdb: Option<InfluxConfig>,
}

/// Where to send measurements and alerts as InfluxDB line protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8086`.
    pub url: Url,
    pub org: String,
    pub bucket: String,
    /// The environment variable holding the token; `None` sends no token.
    pub token_env: Option<String>,
    /// Lines per request, at most.
    pub batch_size: usize,
    /// How long lines may wait to fill a batch.
    pub flush_interval: Duration,
    /// Lines the outbox may hold while the server does not take them; beyond this the oldest
    /// are dropped (and counted).
    pub max_outbox_lines: u64,
}

/// A setting names an environment variable that is not set. It names the variable, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} names the environment variable {var}, which is not set{}", match source { Some(e) => format!(" ({e})"), None => String::new() })]
pub struct MissingEnv {
    pub field: &'static str,
    pub var: String,
    /// Why it could not be read (not set, or not Unicode).
    #[source]
    pub source: Option<std::env::VarError>,
}

impl InfluxConfig {
    /// Reads the token from the environment. Errors name the variable, never a value.
    pub fn token(&self) -> Result<Option<String>, MissingEnv> {
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        let missing = |source| MissingEnv {
            field: "storage.influxdb.token_env",
            var: var.clone(),
            source,
        };
        match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            Ok(_) => Err(missing(None)),
            Err(e) => Err(missing(Some(e))),
        }
    }
}

/// One watched site, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    pub name: String,
    /// What it probes (`http` by default) and that kind's settings.
    pub kind: kind::Kind,
    /// The URL as every output shows it (events, the store, InfluxDB, /metrics, the page):
    /// normalised, or as written when it names environment variables (`${NAME}` kept, so their
    /// values never leave the process).
    pub url: String,
    /// What the prober requests: the URL with its variables expanded.
    pub request_url: secret::Secret<Url>,
    pub interval: Duration,
    pub timeout: Duration,
    pub method: reqwest::Method,
    pub headers: HeaderMap,
    pub expect_status: StatusMatcher,
    pub keep_alive: bool,
    /// Certificates are not verified (the operator asked for it).
    pub tls_insecure: bool,
    /// Trust the CAs in this PEM file (resolved against the config file) instead of the system's.
    pub tls_ca: Option<PathBuf>,
    pub max_body: u64,
    pub max_in_flight: u32,
    pub checks: Vec<PluginUse>,
    /// Sent with POST, PUT and PATCH.
    pub body: Option<RequestBody>,
    /// Labels for grouping and filtering, in config order, without duplicates.
    pub tags: Vec<String>,
    /// Watch the registration expiry of the site's registrable domain (RDAP).
    pub domain_expiry: bool,
    /// The cluster locations that probe this site (`None`: all).
    pub locations: Option<Vec<String>>,
    /// The global `alerting` with this site's overrides.
    pub alerting: AlertRule,
    /// The global maintenance windows and the site's own.
    pub maintenance: crate::maintenance::Schedule,
    /// The values of the environment variables its URL and headers name, to be kept out of
    /// what a probe reports (an error message that quotes the host, a check's reason).
    pub secrets: Vec<secret::Secret<String>>,
    /// Which redirects a probe follows.
    pub follow_redirects: FollowRedirects,
    /// The sites this one depends on (their names as configured): while one of them, or one
    /// they depend on, is down or in maintenance, this site's down alert is held.
    pub depends_on: Vec<String>,
    /// Not probed, shown as paused, no alerts (`paused: true`).
    pub paused: bool,
}

/// Which redirects a probe follows (`follow_redirects`). Whatever it follows, a hop to another
/// origin (scheme, host or port) than the site's URL carries none of the site's headers, no
/// basic auth and no body: the site's secrets go to the site only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FollowRedirects {
    /// Up to the prober's limit of hops (10), to any origin.
    #[default]
    Any,
    /// Only to the site's own origin; a redirect elsewhere is the probe's answer (a 3xx).
    SameOrigin,
    /// None: a 3xx is the answer.
    Never,
}

impl FollowRedirects {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "true",
            Self::SameOrigin => "same-origin",
            Self::Never => "false",
        }
    }
}

impl SiteConfig {
    /// `text` with the values of this site's variables replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        expand::redact(text, &self.secrets)
    }

    /// Whether `other` probes the same way: equal but for what only the recorder uses (the
    /// alert rule, maintenance windows, tags). A reload that changes only those does not
    /// restart the site.
    pub(crate) fn probes_like(&self, other: &SiteConfig) -> bool {
        let mut same = self.clone();
        same.alerting = other.alerting.clone();
        same.maintenance = other.maintenance.clone();
        same.tags = other.tags.clone();
        same.depends_on = other.depends_on.clone();
        same == *other
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    /// Availability (0..=1) below which a site is down.
    pub threshold: f64,
    pub window: Duration,
    /// Renders alerts; `None` uses the built-in message.
    pub formatter: Option<PluginUse>,
    /// The latency objective of sites without one of their own (empty: none).
    pub degraded: Vec<LatencyObjective>,
    pub cert_warning: Duration,
    pub domain_warning: Duration,
    /// Flap damping of every site without its own (`None`: off).
    pub flapping: Option<crate::alert::Flapping>,
    /// The objective of every site without its own (`None`: off).
    pub slo: Option<crate::alert::Slo>,
}

impl AlertingConfig {
    /// The global rule, before a site's overrides.
    pub fn rule(&self) -> AlertRule {
        AlertRule {
            threshold: self.threshold,
            window: self.window,
            degraded: self.degraded.clone(),
            cert_warning: self.cert_warning,
            domain_warning: self.domain_warning,
            flapping: self.flapping,
            slo: self.slo,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DashboardConfig {
    pub views: Vec<ViewConfig>,
}

/// A stats view: the window it covers and how often it refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewConfig {
    /// Short label, e.g. `10m` or `1h`.
    pub name: String,
    pub window: Duration,
    pub every: Duration,
}

impl ViewConfig {
    pub fn new(window: Duration, every: Duration) -> Self {
        Self {
            name: humantime::format_duration(window)
                .to_string()
                .replace(' ', ""),
            window,
            every,
        }
    }
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            views: vec![
                ViewConfig::new(Duration::from_secs(600), Duration::from_secs(10)),
                ViewConfig::new(Duration::from_secs(3600), Duration::from_secs(60)),
            ],
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", values::printable(&path.display().to_string()))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: invalid JSON: {}", values::printable(&path.display().to_string()), values::printable(message))]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {}{}: {}", values::printable(&path.display().to_string()), values::printable(field), site.as_ref().map(|s| format!(" (site {})", values::quote(s))).unwrap_or_default(), values::printable(message))]
    Invalid {
        path: PathBuf,
        /// The field path, e.g. `sites[2].interval`.
        field: String,
        site: Option<String>,
        message: String,
    },
}

impl Config {
    /// Reads, parses and validates a config file, including that every plugin it names exists.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &cluster::Overrides::default())
    }

    /// [`Self::load`], with what the command line says about this node applied.
    pub fn load_with(path: &Path, overrides: &cluster::Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::check_bytes(path, &text, overrides)
    }

    /// Parses and checks `bytes` as if they were the file at `path`, as [`Self::load`] does:
    /// the write API's check of a change before it is written.
    pub fn check_text(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::check_bytes(path, bytes, &cluster::Overrides::default())
    }

    fn check_bytes(
        path: &Path,
        bytes: &[u8],
        overrides: &cluster::Overrides,
    ) -> Result<Self, ConfigError> {
        let config = Self::parse_full(path, bytes, &|var| std::env::var(var).ok(), overrides)?;
        config.check_plugin_files(path)?;
        config.check_ca_files(path)?;
        Ok(config)
    }

    /// Every plugin use, with its field path and site.
    pub fn plugin_uses(&self) -> impl Iterator<Item = (String, Option<&str>, &PluginUse)> {
        let checks = self.sites.iter().enumerate().flat_map(|(i, s)| {
            let scenario = match &s.kind {
                kind::Kind::Script(script) => Some((
                    format!("sites[{i}].plugin"),
                    Some(s.name.as_str()),
                    &script.plugin,
                )),
                _ => None,
            };
            scenario
                .into_iter()
                .chain(s.checks.iter().enumerate().map(move |(j, u)| {
                    (
                        format!("sites[{i}].checks[{j}].plugin"),
                        Some(s.name.as_str()),
                        u,
                    )
                }))
        });
        let formatter = self
            .alerting
            .formatter
            .iter()
            .map(|u| ("alerting.formatter.plugin".to_owned(), None, u));
        let notifiers = self.notify.iter().enumerate().filter_map(|(i, n)| {
            let u = n.formatter.as_ref()?;
            Some((
                format!("notify[{i}].formatter.plugin (notifier \"{}\")", n.name),
                None,
                u,
            ))
        });
        checks.chain(formatter).chain(notifiers)
    }

    /// The file a plugin is loaded from.
    pub fn plugin_path(&self, name: &str) -> PathBuf {
        self.plugins.dir.join(format!("{name}.wasm"))
    }

    fn check_ca_files(&self, path: &Path) -> Result<(), ConfigError> {
        for (i, site) in self.sites.iter().enumerate() {
            if let Some(ca) = &site.tls_ca
                && let Err(e) = read_ca_file(ca)
            {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    field: format!("sites[{i}].tls_ca"),
                    site: Some(site.name.clone()),
                    message: crate::error_chain(&e),
                });
            }
        }
        Ok(())
    }

    fn check_plugin_files(&self, path: &Path) -> Result<(), ConfigError> {
        for (field, site, u) in self.plugin_uses() {
            let file = self.plugin_path(&u.plugin);
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    field,
                    site: site.map(str::to_owned),
                    message: format!(
                        "no plugin \"{}\" ({} does not exist; build the example plugins with `cargo xtask build-plugins`)",
                        u.plugin,
                        file.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Parses and validates config text, reading the secrets it names from the process
    /// environment; `path` is only used in messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::parse_with_env(path, bytes, &|var| std::env::var(var).ok())
    }

    /// A config file's raw form: its shape checked, nothing resolved (no environment needed).
    fn read_raw(path: &Path) -> Result<RawConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|err| serde_error(path, &bytes, err))
    }

    /// The names of the sites a config file lists, read without resolving it (no secret from
    /// the environment is needed): for `sitewatch incident`, which checks the sites it names.
    pub fn site_names(path: &Path) -> Result<Vec<String>, ConfigError> {
        Ok(Self::read_raw(path)?
            .sites
            .into_iter()
            .filter_map(|s| s.name.map(|n| n.trim().to_owned()))
            .collect())
    }

    /// The names and types of the notifiers a config file lists, read without resolving it (no
    /// secret from the environment is needed): for `sitewatch notify list`, which reads the
    /// store.
    pub fn notifier_names(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
        let raw = Self::read_raw(path)?;
        Ok(raw
            .notify
            .into_iter()
            .map(|n| (n.name.trim().to_owned(), n.kind))
            .collect())
    }

    /// [`Self::parse`] with the environment variables read by `env`.
    pub fn parse_with_env(
        path: &Path,
        bytes: &[u8],
        env: secret::Env<'_>,
    ) -> Result<Self, ConfigError> {
        Self::parse_full(path, bytes, env, &cluster::Overrides::default())
    }

    fn parse_full(
        path: &Path,
        bytes: &[u8],
        env: secret::Env<'_>,
        overrides: &cluster::Overrides,
    ) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut de)
            .map_err(|err| serde_error(path, bytes, err))?;
        de.end().map_err(|err| syntax_error(path, &err))?;
        resolve(path, raw, env, overrides)
    }
}

/// Turns a serde error into a [`ConfigError`], looking up the site name when the path is inside
/// `sites[i]`.
fn serde_error(
    path: &Path,
    bytes: &[u8],
    err: serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    let field = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => syntax_error(path, &inner),
        serde_json::error::Category::Data => {
            let site = site_name_at(bytes, &field);
            let message = match entry_at(bytes, "notify", &field)
                .and_then(|n| n.get("name").and_then(|v| v.as_str()).map(str::to_owned))
            {
                Some(name) => format!("notifier \"{name}\": {inner}"),
                None => inner.to_string(),
            };
            ConfigError::Invalid {
                path: path.to_owned(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                site,
                message,
            }
        }
    }
}

fn syntax_error(path: &Path, err: &serde_json::Error) -> ConfigError {
    let message = err.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map(|(m, _)| m.to_owned())
        .unwrap_or(message);
    ConfigError::Syntax {
        path: path.to_owned(),
        line: err.line(),
        column: err.column(),
        message,
    }
}

/// Finds the site a field path points into (`sites[3].url` → the name or URL of site 3).
fn site_name_at(bytes: &[u8], field: &str) -> Option<String> {
    let site = entry_at(bytes, "sites", field)?;
    site.get("name")
        .or_else(|| site.get("url"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// The entry of the top-level list `list` that a field path points into (`notify[1].x`).
fn entry_at(bytes: &[u8], list: &str, field: &str) -> Option<serde_json::Value> {
    let index: usize = field
        .strip_prefix(list)?
        .strip_prefix('[')?
        .split(']')
        .next()?
        .parse()
        .ok()?;
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(value.get_mut(list)?.get_mut(index)?.take())
}

use sitewatch_core::field::FieldError;

/// Checks every value and fills in defaults.
fn resolve(
    path: &Path,
    raw: RawConfig,
    env: secret::Env<'_>,
    overrides: &cluster::Overrides,
) -> Result<Config, ConfigError> {
    let invalid = |field: String, site: Option<&str>, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        field,
        site: site.map(str::to_owned),
        message,
    };

    let plugins =
        resolve_plugins(path, &raw.plugins).map_err(|e| invalid(e.field, None, e.message))?;
    let plugin_use = |u: &raw::RawPluginUse, field: &str| -> Result<PluginUse, FieldError> {
        resolve_plugin_use(u, plugins.limits).map_err(|e| e.under(field))
    };
    let formatter = match &raw.alerting.formatter {
        Some(u) => Some(
            plugin_use(u, "alerting.formatter").map_err(|e| invalid(e.field, None, e.message))?,
        ),
        None => None,
    };
    let threshold = raw.alerting.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(invalid(
            "alerting.threshold".into(),
            None,
            format!("must be between 0 and 1 (a fraction, 0.8 = 80%), got {threshold}"),
        ));
    }
    let window = match &raw.alerting.window {
        Some(w) => {
            values::positive_duration(w).map_err(|m| invalid("alerting.window".into(), None, m))?
        }
        None => DEFAULT_ALERT_WINDOW,
    };

    let degraded = match &raw.alerting.degraded {
        Some(d) => rules::degraded(d).map_err(|e| {
            let e = e.under("alerting");
            invalid(e.field, None, e.message)
        })?,
        None => Vec::new(),
    };
    let cert_warning = match &raw.alerting.cert_warning {
        Some(w) => values::positive_duration(w)
            .map_err(|m| invalid("alerting.cert_warning".into(), None, m))?,
        None => crate::alert::DEFAULT_CERT_WARNING,
    };
    let domain_warning = match &raw.alerting.domain_warning {
        Some(w) => values::positive_duration(w)
            .map_err(|m| invalid("alerting.domain_warning".into(), None, m))?,
        None => crate::alert::DEFAULT_DOMAIN_WARNING,
    };
    let flapping = match &raw.alerting.flapping {
        Some(f) => rules::flapping(f).map_err(|e| {
            let e = e.under("alerting");
            invalid(e.field, None, e.message)
        })?,
        None => None,
    };
    let slo = match (&raw.alerting.slo, &raw.slo) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "slo".into(),
                None,
                "set the global objective once: either \"slo\" or \"alerting.slo\"".into(),
            ));
        }
        (Some(s), None) => rules::slo(s).map_err(|e| {
            let e = e.under("alerting");
            invalid(e.field, None, e.message)
        })?,
        (None, Some(s)) => rules::slo(s).map_err(|e| invalid(e.field, None, e.message))?,
        (None, None) => None,
    };
    let alerting = AlertingConfig {
        slo,
        threshold,
        window,
        formatter,
        degraded,
        cert_warning,
        domain_warning,
        flapping,
    };
    let maintenance =
        rules::maintenance(&raw.maintenance).map_err(|e| invalid(e.field, None, e.message))?;
    let announcements =
        announcements(&raw.announcements).map_err(|e| invalid(e.field, None, e.message))?;

    let dashboard = match raw.dashboard.views {
        None => DashboardConfig::default(),
        Some(views) => {
            let mut out = Vec::with_capacity(views.len());
            let mut names = HashSet::new();
            for (i, v) in views.iter().enumerate() {
                let w = values::positive_duration(&v.window)
                    .map_err(|m| invalid(format!("dashboard.views[{i}].window"), None, m))?;
                let e = values::positive_duration(&v.every)
                    .map_err(|m| invalid(format!("dashboard.views[{i}].every"), None, m))?;
                let view = ViewConfig::new(w, e);
                if !names.insert(view.name.clone()) {
                    return Err(invalid(
                        format!("dashboard.views[{i}].window"),
                        None,
                        format!("a view of {} is already listed", view.name),
                    ));
                }
                out.push(view);
            }
            DashboardConfig { views: out }
        }
    };

    let mut sites = Vec::with_capacity(raw.sites.len());
    let mut seen = HashSet::new();
    for (i, site) in raw.sites.into_iter().enumerate() {
        let label = site
            .name
            .clone()
            .or_else(|| site.url.clone())
            .or_else(|| site.target.clone())
            .unwrap_or_default();
        let checks = site
            .checks
            .iter()
            .enumerate()
            .map(|(j, u)| plugin_use(u, &format!("sites[{i}].checks[{j}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.field, Some(&label), e.message))?;
        let depends_on = site.depends_on.clone().unwrap_or_default();
        let paused = site.paused.unwrap_or(false);
        let base = path.parent().unwrap_or(Path::new("."));
        let mut s = resolve_site(base, site, &alerting, &maintenance, env, plugins.limits)
            .map_err(|e| {
                let e = e.under(&format!("sites[{i}]"));
                invalid(e.field, Some(&label), e.message)
            })?;
        s.checks = checks;
        s.depends_on = depends_on;
        s.paused = paused;
        if !seen.insert(values::name_key(&s.name)) {
            return Err(invalid(
                format!("sites[{i}].name"),
                Some(&s.name),
                "another site has the same name; names must be unique (set \"name\" to tell them apart)".into(),
            ));
        }
        sites.push(s);
    }

    rules::dependencies(&mut sites).map_err(|(i, j, message)| {
        invalid(
            format!("sites[{i}].depends_on[{j}]"),
            Some(&sites[i].name),
            message,
        )
    })?;

    let mut canaries = Canaries::default();
    for (i, text) in raw.probing.canaries.iter().flatten().enumerate() {
        let c =
            canary(text, &sites).map_err(|m| invalid(format!("probing.canaries[{i}]"), None, m))?;
        if !canaries.targets.contains(&c) {
            canaries.targets.push(c);
        }
    }
    if let Some(d) = &raw.probing.canary_interval {
        canaries.interval = values::positive_duration(d)
            .map_err(|m| invalid("probing.canary_interval".into(), None, m))?;
    }
    for (i, c) in canaries.targets.iter().enumerate() {
        if let Canary::Address { .. } = c {
            let timeout = canaries.interval.min(Duration::from_secs(5));
            let raw_site: RawSite = serde_json::from_value(serde_json::json!({
                "name": c.name(), "kind": "tcp", "target": c.name(),
                "interval": humantime::format_duration(canaries.interval).to_string(),
                "timeout": humantime::format_duration(timeout).to_string(),
            }))
            .map_err(|e| invalid(format!("probing.canaries[{i}]"), None, e.to_string()))?;
            let site = resolve_site(
                path.parent().unwrap_or(Path::new(".")),
                raw_site,
                &alerting,
                &[],
                env,
                plugins.limits,
            )
            .map_err(|e| invalid(format!("probing.canaries[{i}]"), None, e.message))?;
            canaries.probes.push(site);
        }
    }

    let storage = resolve_storage(raw.storage).map_err(|e| invalid(e.field, None, e.message))?;
    let probing = ProbingConfig {
        max_in_flight: match raw.probing.max_in_flight {
            Some(0) => {
                return Err(invalid(
                    "probing.max_in_flight".into(),
                    None,
                    "must be at least 1".into(),
                ));
            }
            Some(n) => Some(n as usize),
            None => None,
        },
        source_address: match (overrides.source_address, &raw.probing.source_address) {
            (Some(a), _) => Some(a),
            (None, Some(text)) => Some(text.trim().parse().map_err(|_| {
                invalid(
                    "probing.source_address".into(),
                    None,
                    format!("\"{text}\" is not an IP address, e.g. \"127.0.0.2\" or \"::1\""),
                )
            })?),
            (None, None) => None,
        },
    };
    let rdap = RdapConfig {
        bootstrap: rdap_url(
            raw.probing
                .rdap_bootstrap
                .as_deref()
                .unwrap_or(DEFAULT_RDAP_BOOTSTRAP),
        )
        .map_err(|m| invalid("probing.rdap_bootstrap".into(), None, m))?,
        base: match &raw.probing.rdap_url {
            None => None,
            Some(text) => Some({
                let mut u =
                    rdap_url(text).map_err(|m| invalid("probing.rdap_url".into(), None, m))?;
                // A base URL: `domain/<name>` is appended to its path.
                if !u.path().ends_with('/') {
                    u.set_path(&format!("{}/", u.path()));
                }
                u
            }),
        },
    };

    let server = match &raw.server {
        None => None,
        Some(r) => Some(resolve_server(r, env).map_err(|e| invalid(e.field, None, e.message))?),
    };
    let location = match raw.location.as_deref().map(str::trim) {
        None => default_location(),
        Some(l) if values::name_problem(l, 64).is_some() => {
            return Err(invalid(
                "location".into(),
                None,
                format!(
                    "{} is not a location: 1 to 64 characters, no control, bidi or zero-width characters ({})",
                    values::quote(l),
                    values::name_problem(l, 64).unwrap_or_default()
                ),
            ));
        }
        Some(l) => l.to_owned(),
    };
    let cluster = match &raw.cluster {
        None => None,
        Some(c) => Some(
            cluster::resolve(
                c,
                &location,
                overrides,
                path.parent().unwrap_or(Path::new(".")),
                env,
            )
            .map_err(|e| {
                let e = e.under("cluster");
                invalid(e.field, None, e.message)
            })?,
        ),
    };
    // A node's location labels its series too.
    let location = cluster.as_ref().map_or(location, |c| c.location.clone());
    if let Some(c) = &cluster {
        for s in &sites {
            if let Some(l) = &s.locations
                && l.len() < c.confirm
            {
                return Err(invalid(
                    "cluster.confirm".into(),
                    Some(&s.name),
                    format!(
                        "the site is probed from {} location(s), fewer than confirm ({})",
                        l.len(),
                        c.confirm
                    ),
                ));
            }
        }
    }
    let names: HashSet<String> = sites.iter().map(|s| s.name.clone()).collect();
    let notify = notify::resolve(raw.notify, &names, plugins.limits, env)
        .map_err(|e| invalid(e.field, None, e.message))?;

    let config = Config {
        cluster,
        server,
        location,
        notify,
        sites,
        alerting,
        maintenance,
        dashboard,
        storage,
        plugins,
        probing,
        canaries,
        rdap,
        announcements,
    };
    if let Some(total) = config.plugins.total_memory
        && let Some((field, site, u)) = config
            .plugin_uses()
            .into_iter()
            .find(|(_, _, u)| u.limits.memory > total)
    {
        return Err(invalid(
            format!("{}.memory_limit", field.trim_end_matches(".plugin")),
            site,
            format!(
                "{} bytes is more than plugins.total_memory ({total} bytes): the call could never run",
                u.limits.memory
            ),
        ));
    }
    Ok(config)
}

/// A CA file (`tls_ca`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read CA certificates from {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    Empty { path: PathBuf },
}

/// Reads the CA certificates of a PEM file.
pub fn read_ca_file(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, CaFileError> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| CaFileError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn resolve_server(r: &raw::RawServer, env: secret::Env<'_>) -> Result<ServerConfig, FieldError> {
    let text = r.listen.as_deref().unwrap_or(DEFAULT_LISTEN).trim();
    let listen = text.parse().map_err(|_| {
        FieldError::from((
            "server.listen",
            format!("\"{text}\" is not an address and port, e.g. \"127.0.0.1:9184\""),
        ))
    })?;
    let mut tokens = Vec::with_capacity(r.tokens.len() + 1);
    if let Some(var) = &r.auth_token_env {
        tokens.push(ApiToken {
            name: AUTH_TOKEN_NAME.into(),
            scope: Scope::Read,
            value: secret::Secret::new(secret::env_secret(env, "server.auth_token_env", var)?),
        });
    }
    for (i, t) in r.tokens.iter().enumerate() {
        let field = |f: &str| format!("server.tokens[{i}].{f}");
        let name = t.name.trim();
        if let Some(problem) = values::name_problem(name, 64) {
            return Err((field("name"), problem).into());
        }
        if let Some(other) = tokens.iter().find(|o: &&ApiToken| o.name == name) {
            return Err((
                field("name"),
                format!("\"{}\" names two tokens", other.name),
            )
                .into());
        }
        let scope = match t.scope.as_deref().map(str::trim) {
            Some("read") => Scope::Read,
            Some("write") => Scope::Write,
            None => {
                return Err((field("scope"), "is missing: \"read\" or \"write\"").into());
            }
            Some(other) => {
                return Err((
                    field("scope"),
                    format!(
                        "{} is not a scope: \"read\" or \"write\" (which implies read)",
                        values::quote(other)
                    ),
                )
                    .into());
            }
        };
        let value = secret::env_secret(env, &field("env"), &t.env)?;
        if let Some(other) = tokens.iter().find(|o| *o.value.expose() == value) {
            return Err((
                field("env"),
                format!(
                    "holds the same value as the token \"{}\": each token needs its own, so the log can tell them apart",
                    other.name
                ),
            )
                .into());
        }
        tokens.push(ApiToken {
            name: name.to_owned(),
            scope,
            value: secret::Secret::new(value),
        });
    }
    let mut public = Public::default();
    for (i, p) in r.public.iter().enumerate() {
        match p.trim() {
            "page" => public.page = true,
            "badges" => public.badges = true,
            "feed" => public.feed = true,
            other => {
                return Err((
                    format!("server.public[{i}]"),
                    format!(
                        "{} is not a public part: \"page\", \"badges\" or \"feed\"",
                        values::quote(other)
                    ),
                )
                    .into());
            }
        }
    }
    let mut allowed_hosts = Vec::with_capacity(r.allowed_hosts.len());
    for (i, h) in r.allowed_hosts.iter().enumerate() {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !h.is_empty()
            && h.len() <= 253
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
        if !valid {
            return Err((
                format!("server.allowed_hosts[{i}]"),
                format!(
                    "{} is not a host name: give the name only, without a scheme, port or path (e.g. \"status.example.com\")",
                    values::quote(&r.allowed_hosts[i])
                ),
            )
                .into());
        }
        allowed_hosts.push(h);
    }
    Ok(ServerConfig {
        listen,
        tokens,
        allowed_hosts,
        public,
    })
}

fn resolve_plugins(path: &Path, raw: &raw::RawPlugins) -> Result<PluginsConfig, FieldError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let dir = base.join(raw.dir.as_deref().unwrap_or(DEFAULT_PLUGIN_DIR));
    let defaults = PluginLimits {
        memory: DEFAULT_PLUGIN_MEMORY,
        time: DEFAULT_PLUGIN_TIME,
    };
    let limits = limits(raw.memory_limit.as_ref(), raw.time_limit.as_ref(), defaults)
        .map_err(|e| e.under("plugins"))?;
    let total_memory = match &raw.total_memory {
        None => None,
        Some(t) => {
            let b = values::byte_size(t).map_err(|e| ("plugins.total_memory".to_owned(), e))?;
            if b < limits.memory {
                return Err((
                    "plugins.total_memory",
                    format!(
                        "is smaller than plugins.memory_limit ({} bytes): no call could run",
                        limits.memory
                    ),
                )
                    .into());
            }
            Some(b)
        }
    };
    Ok(PluginsConfig {
        dir,
        limits,
        total_memory,
    })
}

fn limits(
    memory: Option<&raw::RawSize>,
    time: Option<&raw::RawDuration>,
    defaults: PluginLimits,
) -> Result<PluginLimits, FieldError> {
    let memory = match memory {
        Some(m) => {
            let b = values::byte_size(m).map_err(|e| ("memory_limit".to_owned(), e))?;
            if !(64 * 1024..=MAX_PLUGIN_MEMORY).contains(&b) {
                return Err(("memory_limit", "must be between 64KiB and 1GiB").into());
            }
            b
        }
        None => defaults.memory,
    };
    let time = match time {
        Some(t) => values::positive_duration(t).map_err(|e| ("time_limit".to_owned(), e))?,
        None => defaults.time,
    };
    Ok(PluginLimits { memory, time })
}

fn resolve_plugin_use(
    u: &raw::RawPluginUse,
    defaults: PluginLimits,
) -> Result<PluginUse, FieldError> {
    let name = u.plugin.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err((
            "plugin",
            format!(
                "\"{}\" is not a plugin name (letters, digits, - and _)",
                u.plugin
            ),
        )
            .into());
    }
    let config = match &u.config {
        None => "{}".to_owned(),
        Some(v) => v.to_string(),
    };
    Ok(PluginUse {
        plugin: name.to_owned(),
        config,
        limits: limits(u.memory_limit.as_ref(), u.time_limit.as_ref(), defaults)?,
    })
}

fn resolve_storage(raw: raw::RawStorage) -> Result<StorageConfig, FieldError> {
    let retention = retention(raw.retention.as_ref())?;
    let rollup_every = match &raw.rollup_every {
        Some(d) => {
            values::positive_duration(d).map_err(|m| ("storage.rollup_every".to_owned(), m))?
        }
        None => crate::history::DEFAULT_ROLLUP_EVERY,
    };
    let influxdb = match raw.influxdb {
        None => None,
        Some(i) => {
            let field = |f: &str| format!("storage.influxdb.{f}");
            let url = Url::parse(i.url.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| {
                    (
                        field("url"),
                        format!("\"{}\" is not an http:// or https:// URL", i.url),
                    )
                })?;
            for (name, value) in [("org", &i.org), ("bucket", &i.bucket)] {
                if value.trim().is_empty() {
                    return Err((field(name), "must not be empty").into());
                }
            }
            if let Some(var) = &i.token_env
                && (var.is_empty() || var.contains('='))
            {
                return Err((
                    field("token_env"),
                    "must be the name of an environment variable",
                )
                    .into());
            }
            let batch_size = match i.batch_size {
                Some(0) => return Err((field("batch_size"), "must be at least 1").into()),
                Some(n) => n as usize,
                None => DEFAULT_INFLUX_BATCH,
            };
            let flush_interval = match &i.flush_interval {
                Some(d) => {
                    values::positive_duration(d).map_err(|m| (field("flush_interval"), m))?
                }
                None => DEFAULT_INFLUX_FLUSH,
            };
            let max_outbox_lines = match i.max_outbox_lines {
                Some(0) => return Err((field("max_outbox_lines"), "must be at least 1").into()),
                Some(n) => n,
                None => DEFAULT_MAX_OUTBOX_LINES,
            };
            Some(InfluxConfig {
                url,
                org: i.org,
                bucket: i.bucket,
                token_env: i.token_env,
                batch_size,
                flush_interval,
                max_outbox_lines,
            })
        }
    };
    Ok(StorageConfig {
        retention,
        rollup_every,
        influxdb,
    })
}

/// `storage.retention`: a duration (the raw rows', as before the rollups) or one per tier. A
/// finer tier may not be kept longer than a coarser one (it would answer nothing more).
fn retention(raw: Option<&raw::RawRetention>) -> Result<crate::history::Retention, FieldError> {
    let mut r = crate::history::Retention::default();
    let get = |d: &raw::RawDuration, f: &str| {
        values::retention(d).map_err(|m| (format!("storage.retention.{f}"), m))
    };
    match raw {
        None => {}
        Some(raw::RawRetention::Raw(d)) => {
            r.raw = values::retention(d).map_err(|m| ("storage.retention".to_owned(), m))?;
        }
        Some(raw::RawRetention::Tiers(t)) => {
            for (field, value, slot) in [
                ("raw", &t.raw, &mut r.raw),
                ("minute", &t.minute, &mut r.minute),
                ("hour", &t.hour, &mut r.hour),
                ("day", &t.day, &mut r.day),
            ] {
                if let Some(d) = value {
                    *slot = get(d, field)?;
                }
            }
            if let Some(d) = &t.alerts {
                r.alerts = Some(get(d, "alerts")?);
            }
        }
    }
    let days = crate::history::days;
    for (finer, f, coarser, c) in [
        ("raw", r.raw, "minute", r.minute),
        ("minute", r.minute, "hour", r.hour),
        ("hour", r.hour, "day", r.day),
    ] {
        if f > c {
            return Err((
                format!("storage.retention.{finer}"),
                format!(
                    "{} is longer than storage.retention.{coarser} ({}): a finer tier cannot be kept longer than a coarser one",
                    days(f),
                    days(c)
                ),
            )
                .into());
        }
    }
    Ok(r)
}

/// Resolves one site; error fields are relative to the site.
fn resolve_site(
    base: &Path,
    raw: RawSite,
    global: &AlertingConfig,
    global_maintenance: &[crate::maintenance::Window],
    env: secret::Env<'_>,
    plugin_limits: PluginLimits,
) -> Result<SiteConfig, FieldError> {
    let (kind, url, request_url, mut secrets) = match kind::resolve(&raw, env, plugin_limits)? {
        Some((kind, shown, url)) => {
            let secrets = match &kind {
                kind::Kind::Push(p) => vec![p.token.clone()],
                kind::Kind::Script(s) => s.secrets.iter().map(|(_, v)| v.clone()).collect(),
                _ => Vec::new(),
            };
            (kind, shown, url, secrets)
        }
        None => {
            let written = raw.url.as_deref().ok_or_else(|| {
                FieldError::from((
                    "url",
                    "a site needs url, an http:// or https:// URL (or a kind and its target)",
                ))
            })?;
            let (shown, url, secrets) = site_url(written.trim(), env)?;
            (kind::Kind::Http, shown, url, secrets)
        }
    };
    let name = match raw.name {
        Some(n) => {
            let n = n.trim().to_owned();
            if let Some(problem) = values::name_problem(&n, MAX_SITE_NAME) {
                return Err(("name", problem).into());
            }
            n
        }
        None => match &kind {
            kind::Kind::Dns(d) => d.name.clone(),
            _ => default_name(&url, &request_url, !secrets.is_empty())?,
        },
    };
    let interval = match &raw.interval {
        Some(d) => values::positive_duration(d).map_err(|m| ("interval", m))?,
        None => DEFAULT_INTERVAL,
    };
    let timeout = match &raw.timeout {
        Some(d) => values::positive_duration(d).map_err(|m| ("timeout", m))?,
        None => DEFAULT_TIMEOUT,
    };
    let method = match raw.method.as_deref().map(str::trim) {
        None => reqwest::Method::GET,
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            match upper.as_str() {
                "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
                    reqwest::Method::from_bytes(upper.as_bytes()).expect("known method")
                }
                _ => {
                    return Err((
                        "method",
                        format!(
                            "\"{m}\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
                        ),
                    )
                        .into());
                }
            }
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &raw.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ("headers", format!("\"{k}\" is not a valid header name")))?;
        let expanded = expand::expand(v, &format!("headers.{k}"), env)?;
        let mut value = HeaderValue::from_str(&expanded.value).map_err(|_| {
            (
                format!("headers.{k}"),
                if expanded.has_secrets() {
                    format!("the value of \"{k}\" is not a valid header value once its variables are expanded")
                } else {
                    format!("the value of \"{k}\" is not a valid header value")
                },
            )
        })?;
        // Never printed (a HeaderMap's Debug shows `Sensitive`) nor indexed by HTTP/2's HPACK.
        if expanded.has_secrets() || CREDENTIAL_HEADERS.contains(&name) {
            value.set_sensitive(true);
        }
        secrets.extend(expanded.secrets);
        headers.insert(name, value);
    }
    let expect_status = match &raw.expect_status {
        Some(list) => StatusMatcher::parse(list).map_err(|m| ("expect_status", m))?,
        None => StatusMatcher::success(),
    };
    let max_body = match &raw.max_body {
        Some(s) => values::byte_size(s).map_err(|m| ("max_body", m))?,
        None => DEFAULT_MAX_BODY,
    };
    let max_in_flight = match raw.max_in_flight {
        Some(0) => return Err(("max_in_flight", "must be at least 1").into()),
        Some(n) if n > MAX_IN_FLIGHT_LIMIT => {
            return Err((
                "max_in_flight",
                format!("must be at most {MAX_IN_FLIGHT_LIMIT}, got {n}"),
            )
                .into());
        }
        Some(n) => n,
        // Enough overlap that a probe always gets its whole timeout without skipping a tick.
        None => (timeout.as_secs_f64() / interval.as_secs_f64())
            .ceil()
            .clamp(1.0, 10.0) as u32,
    };
    let body = rules::body(
        raw.body.as_ref(),
        raw.content_type.as_deref(),
        &method,
        headers.contains_key(reqwest::header::CONTENT_TYPE),
    )?;
    let mut tags: Vec<String> = Vec::with_capacity(raw.tags.len());
    for (j, t) in raw.tags.iter().enumerate() {
        let t = t.trim();
        if values::name_problem(t, 64).is_some() || t.contains(',') {
            return Err((
                format!("tags[{j}]"),
                format!(
                    "{} is not a tag: 1 to 64 characters, no commas, control, bidi or zero-width characters",
                    values::quote(t)
                ),
            )
                .into());
        }
        let key = values::name_key(t);
        if !tags.iter().any(|have| values::name_key(have) == key) {
            tags.push(t.to_owned());
        }
    }
    let locations = match &raw.locations {
        None => None,
        Some(list) if list.is_empty() => {
            return Err((
                "locations",
                "list at least one location, or leave it out for all",
            )
                .into());
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(j, l)| cluster::token(&format!("locations[{j}]"), "location", l.trim()))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let follow_redirects = match &raw.follow_redirects {
        None | Some(raw::RawFollow::Bool(true)) => FollowRedirects::Any,
        Some(raw::RawFollow::Bool(false)) => FollowRedirects::Never,
        Some(raw::RawFollow::Text(t)) if t.trim() == "same-origin" => FollowRedirects::SameOrigin,
        Some(raw::RawFollow::Text(t)) => {
            return Err((
                "follow_redirects",
                format!(
                    "{} is not a redirect policy: use true (the default), false or \"same-origin\"",
                    values::quote(t)
                ),
            )
                .into());
        }
    };
    let mut alerting = site_rule(raw.alerting.as_ref(), global, interval)?;
    if let Some(s) = &raw.slo {
        alerting.slo = rules::slo(s)?;
    }
    let own = rules::maintenance(&raw.maintenance)?;
    let maintenance =
        crate::maintenance::Schedule::new(global_maintenance.iter().cloned().chain(own).collect());
    if raw.domain_expiry == Some(true)
        && matches!(kind, kind::Kind::Push(_) | kind::Kind::Script(_))
    {
        return Err((
            "domain_expiry",
            format!(
                "a {} site has no domain of its own: put domain_expiry on a site that probes the host",
                kind.as_str()
            ),
        )
            .into());
    }
    Ok(SiteConfig {
        domain_expiry: raw.domain_expiry.unwrap_or(false),
        kind,
        body,
        tags,
        locations,
        alerting,
        maintenance,
        name,
        url,
        request_url: secret::Secret::new(request_url),
        secrets,
        interval,
        timeout,
        method,
        headers,
        expect_status,
        keep_alive: raw.keep_alive.unwrap_or(false),
        tls_insecure: raw.tls_insecure.unwrap_or(false),
        tls_ca: raw.tls_ca.as_deref().map(|p| base.join(p)),
        max_body,
        max_in_flight,
        checks: Vec::new(),
        follow_redirects,
        depends_on: Vec::new(),
        paused: false,
    })
}

/// The most characters of a site's name.
pub(crate) const MAX_SITE_NAME: usize = 256;

/// Headers whose values are credentials even when typed into the file: marked sensitive, and
/// shown as `***` by `check-config --print`.
const CREDENTIAL_HEADERS: [HeaderName; 3] = [
    reqwest::header::AUTHORIZATION,
    reqwest::header::PROXY_AUTHORIZATION,
    reqwest::header::COOKIE,
];

/// A site's URL: what outputs show, what is requested, and the values of the variables it
/// names. Messages quote the URL as written, never expanded.
fn site_url(
    written: &str,
    env: secret::Env<'_>,
) -> Result<(String, Url, Vec<secret::Secret<String>>), FieldError> {
    let expanded = expand::expand(written, "url", env)?;
    let secret = expanded.has_secrets();
    let once = if secret {
        " once its variables are expanded"
    } else {
        ""
    };
    let url = Url::parse(&expanded.value).map_err(|e| {
        (
            "url",
            format!("\"{written}\" is not a valid URL{once}: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            "url",
            format!("\"{written}\" must start with http:// or https://{once}"),
        )
            .into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(("url", format!("\"{written}\" has no host{once}")).into());
    }
    let mut secrets = expanded.secrets;
    // A password in the URL is a secret like `${NAME}`: sent (as basic auth), shown nowhere.
    let password = url
        .password()
        .filter(|p| !p.is_empty())
        .map(values::userinfo_part);
    if let Some(p) = &password {
        secrets.push(secret::Secret::new(p.clone()));
        if let Some(raw) = url.password()
            && raw != p
        {
            secrets.push(secret::Secret::new(raw.to_owned()));
        }
    }
    let shown = if secret {
        mask_userinfo(written)
    } else {
        let mut shown = url.clone();
        if password.is_some() {
            let _ = shown.set_password(Some("***"));
        }
        shown.as_str().to_owned()
    };
    Ok((shown, url, secrets))
}

/// `written` (a URL as typed, possibly with `${NAME}`s) with the password of its userinfo, if
/// any, replaced by `***`: `https://alice:${PW}@host/` and `https://alice:pw@${HOST}/` both show
/// as `https://alice:***@…`.
fn mask_userinfo(written: &str) -> String {
    let Some(scheme_end) = written.find("://") else {
        return written.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &written[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return written.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return written.to_owned();
    };
    if colon + 1 == userinfo.len() {
        return written.to_owned();
    }
    format!(
        "{}{}:***{}",
        &written[..authority_start],
        &userinfo[..colon],
        &written[authority_start + at..]
    )
}

/// A site's default name: its URL's host, unless the host comes from a variable (then the
/// site needs a name, or the host would be shown).
fn default_name(shown: &str, request: &Url, secret: bool) -> Result<String, FieldError> {
    let host = if secret {
        Url::parse(shown)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .filter(|h| !h.contains('$') && !h.contains('{') && !h.contains('}'))
    } else {
        request.host_str().map(str::to_owned)
    };
    match host {
        Some(h) => Ok(h.trim_matches(['[', ']']).to_owned()),
        None => Err((
            "name",
            "the URL's host comes from an environment variable: give the site a name (it would be named after its host)",
        )
            .into()),
    }
}

/// A site's alert rule: the global one with the site's overrides. The window must hold at
/// least two probes, or every single failure would be a down alert.
fn site_rule(
    raw: Option<&raw::RawSiteAlerting>,
    global: &AlertingConfig,
    interval: Duration,
) -> Result<AlertRule, FieldError> {
    let mut rule = global.rule();
    if let Some(r) = raw {
        if let Some(t) = r.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err((
                    "alerting.threshold",
                    format!("must be between 0 and 1 (a fraction, 0.8 = 80%), got {t}"),
                )
                    .into());
            }
            rule.threshold = t;
        }
        if let Some(w) = &r.window {
            rule.window = values::positive_duration(w).map_err(|m| ("alerting.window", m))?;
        }
        if let Some(d) = &r.degraded {
            rule.degraded = rules::degraded(d).map_err(|e| e.under("alerting"))?;
        }
        if let Some(w) = &r.cert_warning {
            rule.cert_warning =
                values::positive_duration(w).map_err(|m| ("alerting.cert_warning", m))?;
        }
        if let Some(w) = &r.domain_warning {
            rule.domain_warning =
                values::positive_duration(w).map_err(|m| ("alerting.domain_warning", m))?;
        }
        if let Some(f) = &r.flapping {
            rule.flapping = rules::flapping(f).map_err(|e| e.under("alerting"))?;
        }
    }
    if rule.window < interval * 2 {
        let own = raw.is_some_and(|r| r.window.is_some());
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        return Err((
            if own { "alerting.window" } else { "interval" },
            format!(
                "the alert window ({}{}) is shorter than two intervals ({}): one failed probe would be a down alert; make the window at least {} or the interval shorter",
                fmt(rule.window),
                if own { "" } else { ", from alerting.window" },
                fmt(interval * 2),
                fmt(interval * 2),
            ),
        )
            .into());
    }
    Ok(rule)
}

#[cfg(test)]
mod tests;

/// The default cap on probes in flight: three quarters of the file descriptors left after a
/// reserve for the store, logs, the watcher and the outputs (a probe holds one socket), between
/// 16 and 4,096 (beyond that, scheduling delay rather than descriptors limits a 2-core machine).
pub fn default_max_in_flight() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let usable = soft.saturating_sub(100).saturating_mul(3) / 4;
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .clamp(16, 4096)
}
