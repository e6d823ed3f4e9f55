//! The config file as written: serde types that accept what the user may type, nothing more
//! (`deny_unknown_fields`). `super::resolve` turns them into checked types.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub alerting: RawAlerting,
    #[serde(default)]
    pub dashboard: RawDashboard,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub probing: RawProbing,
    /// Where alerts are delivered.
    #[serde(default)]
    pub notify: Vec<RawNotifier>,
    /// The HTTP server (metrics, API, status page); off when absent.
    pub server: Option<RawServer>,
    /// Where this instance runs (default: the host name): a label on every exported series.
    pub location: Option<String>,
    /// Maintenance windows of every site.
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// Run as a node of a cluster on NATS JetStream; absent: a single sitewatch.
    pub cluster: Option<RawCluster>,
    /// The service level objective of every site without its own (same as `alerting.slo`).
    pub slo: Option<RawSlo>,
    /// Banners on the status page, each shown from its start to its end.
    #[serde(default)]
    pub announcements: Vec<RawAnnouncement>,
}

/// A banner on the status page: `{"name": "migration", "message": "...", "start": "...", "end": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnnouncement {
    pub name: Option<String>,
    pub message: String,
    pub start: String,
    pub end: String,
}

/// A service level objective as typed: `{"objective": "99.9%", "period": "30d"}`, or `false`
/// (a site's own turns the global one off).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSlo {
    Off(bool),
    On(RawSloRule),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSloRule {
    /// `"99.9%"`, or the number of percent (99.9).
    pub objective: RawObjective,
    /// The period the error budget is counted over (default 30d).
    pub period: Option<RawDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawObjective {
    Percent(f64),
    Text(String),
}

/// The cluster section: where NATS is, this node's location, the confirmation rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    /// NATS server URLs (`nats://127.0.0.1:4222`); one is enough, more give failover.
    pub nats: Vec<String>,
    /// This node's location (also `--location`; default the top-level `location`).
    pub location: Option<String>,
    /// This node's name, unique in the cluster (also `--node`; default host name and location).
    pub node: Option<String>,
    /// Locations that must see a site down before it is down (default 1).
    pub confirm: Option<u32>,
    /// How long a node's heartbeat lives: a dead node's sites move within this (default 10s).
    pub heartbeat_ttl: Option<RawDuration>,
    /// How long the leader's lease lives unrenewed (default 15s).
    pub lease_ttl: Option<RawDuration>,
    /// Replicas of the streams and buckets (default: the number of `nats` URLs, at most 3).
    pub replicas: Option<u32>,
    /// Stored measurements that may wait for the stream while NATS is unreachable (default
    /// 1000000); beyond, the oldest are skipped.
    pub buffer: Option<u64>,
    /// How long NATS must be unreachable before a node alerts on its own probes (default 30s).
    pub alone_after: Option<RawDuration>,
    /// How long the measurement stream keeps measurements (default 1d).
    pub stream_max_age: Option<RawDuration>,
    /// A prefix of subjects, stream and bucket names, to run several clusters on one NATS.
    pub prefix: Option<String>,
    /// NATS authentication: the environment variable holding a token.
    pub token_env: Option<String>,
    /// A user name, with `password_env`.
    pub user: Option<String>,
    /// The environment variable holding the user's password.
    pub password_env: Option<String>,
    /// The environment variable holding an NKey seed (`SU...`).
    pub nkey_seed_env: Option<String>,
    /// A `.creds` file (a user JWT and its NKey seed), relative to the config file.
    pub credentials: Option<String>,
    /// TLS to NATS: a PEM file of CA certificates to trust (relative to the config file).
    pub tls_ca: Option<String>,
    /// A client certificate (PEM) for servers that verify clients, with `tls_key`.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

/// A maintenance window: `start` and `end` (one-off), or `cron`, `duration` and `tz`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    pub name: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub cron: Option<String>,
    pub duration: Option<RawDuration>,
    pub tz: Option<String>,
}

/// A site's own alert rule; what it leaves out comes from the global `alerting`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSiteAlerting {
    pub threshold: Option<f64>,
    pub window: Option<RawDuration>,
    pub degraded: Option<RawDegraded>,
    pub cert_warning: Option<RawDuration>,
    pub domain_warning: Option<RawDuration>,
    pub flapping: Option<RawFlapping>,
}

/// Flap damping as typed: `{"changes": 4, "within": "15m"}`, or `false` (off; a site's own
/// turns the global one off).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawFlapping {
    Off(bool),
    On(RawFlappingRule),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlappingRule {
    /// More changes between down and up than this within `within` is flapping (default 4).
    pub changes: Option<u32>,
    /// The window the changes are counted in, and the quiet that settles it (default 15m).
    pub within: Option<RawDuration>,
}

/// A latency objective: `{"response_p95": "800ms"}`; several keys are several objectives.
pub(crate) type RawDegraded = BTreeMap<String, RawDuration>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    /// `127.0.0.1:9184` (the default), `[::1]:9184`, `0.0.0.0:9184`.
    pub listen: Option<String>,
    /// The environment variable holding the bearer token every path but /healthz needs.
    pub auth_token_env: Option<String>,
    /// Without a token: host names (besides the listen address and localhost) requests may be
    /// addressed to.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Named tokens with a scope: `[{"name": "grafana", "env": "SW_READ", "scope": "read"}]`.
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// What is readable without a token when tokens are set: `page`, `badges`, `feed`.
    #[serde(default)]
    pub public: Vec<String>,
}

/// One API token: its name (what the log shows), the environment variable holding its value,
/// and its scope (`read`, or `write`, which implies read).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: String,
    pub env: String,
    pub scope: Option<String>,
}

/// One notifier as typed. One flat shape for every type: what every notifier has, then its
/// service's fields, which its service checks (it refuses those it does not take).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifier {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    /// The environment variable holding the URL (for services whose URL is the credential).
    pub url_env: Option<String>,
    pub method: Option<String>,
    /// Header values may name environment variables as `${VAR}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Alert kinds to send: `down`, `recovered` (default both).
    pub on: Option<Vec<String>>,
    /// Only alerts of these sites (by name).
    pub sites: Option<Vec<String>>,
    /// Only alerts of sites with one of these tags.
    pub tags: Option<Vec<String>>,
    pub repeat: Option<RawDuration>,
    pub formatter: Option<RawPluginUse>,
    pub group_wait: Option<RawDuration>,
    pub rate_limit: Option<String>,
    pub max_age: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub backoff_min: Option<RawDuration>,
    pub backoff_max: Option<RawDuration>,
    pub routing_key_env: Option<String>,
    pub severity: Option<String>,
    pub api_key_env: Option<String>,
    pub priority: Option<sitewatch_notify::NumberOrText>,
    pub token_env: Option<String>,
    pub bot_token_env: Option<String>,
    /// A Telegram chat: its number (as Telegram shows it) or `@channelname`.
    pub chat_id: Option<sitewatch_notify::NumberOrText>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub smtp: Option<String>,
    pub tls: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username_env: Option<String>,
    pub password_env: Option<String>,
}

impl RawNotifier {
    /// The fields that belong to its service, for [`sitewatch_notify::Service::resolve`].
    pub fn service_fields(&self) -> sitewatch_notify::Fields {
        sitewatch_notify::Fields {
            method: self.method.clone(),
            headers: self.headers.clone(),
            routing_key_env: self.routing_key_env.clone(),
            severity: self.severity.clone(),
            api_key_env: self.api_key_env.clone(),
            priority: self.priority.clone(),
            token_env: self.token_env.clone(),
            bot_token_env: self.bot_token_env.clone(),
            chat_id: self.chat_id.clone(),
            channel: self.channel.clone(),
            username: self.username.clone(),
            smtp: self.smtp.clone(),
            tls: self.tls.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            username_env: self.username_env.clone(),
            password_env: self.password_env.clone(),
        }
    }
}

/// Settings of probing as a whole.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbing {
    /// Probes that may run at once across all sites; beyond it ticks are skipped and counted.
    pub max_in_flight: Option<u32>,
    /// The local address probes connect from (an IP of this host), for multi-homed hosts and
    /// for nodes that must probe from their own address. Also `--source-address`.
    pub source_address: Option<String>,
    /// IANA's RDAP bootstrap file, or another list in its format.
    pub rdap_bootstrap: Option<String>,
    /// One RDAP server for every domain (its base URL, ending before `domain/<name>`).
    pub rdap_url: Option<String>,
    /// Sites (by name) or `host:port` targets that are always up: when every one fails,
    /// sitewatch itself is offline.
    pub canaries: Option<Vec<String>>,
    /// How often the `host:port` canaries are connected to.
    pub canary_interval: Option<RawDuration>,
}

/// Where plugins live and their default limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugins {
    /// The directory of `<name>.wasm` files, relative to the config file.
    pub dir: Option<String>,
    pub memory_limit: Option<RawSize>,
    pub time_limit: Option<RawDuration>,
    /// The memory all plugin calls at once may hold.
    pub total_memory: Option<RawSize>,
}

/// A use of a plugin: a check of a site, or the alert formatter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPluginUse {
    pub plugin: String,
    /// Passed to the plugin as JSON text.
    pub config: Option<serde_json::Value>,
    pub memory_limit: Option<RawSize>,
    pub time_limit: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    /// How long each tier is kept: `"7d"` (raw rows only, as before the rollups) or
    /// `{"raw": "7d", "minute": "30d", "hour": "365d", "day": "1825d", "alerts": "2y"}`.
    pub retention: Option<RawRetention>,
    /// How often the writer stores its rollup updates (a crash redoes at most this from raw rows).
    pub rollup_every: Option<RawDuration>,
    pub influxdb: Option<RawInflux>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawRetention {
    Raw(RawDuration),
    Tiers(RawTiers),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTiers {
    pub raw: Option<RawDuration>,
    pub minute: Option<RawDuration>,
    pub hour: Option<RawDuration>,
    pub day: Option<RawDuration>,
    pub alerts: Option<RawDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInflux {
    pub url: String,
    pub org: String,
    pub bucket: String,
    /// The environment variable that holds the API token (never the token itself).
    pub token_env: Option<String>,
    pub batch_size: Option<u32>,
    pub flush_interval: Option<RawDuration>,
    /// Lines the outbox may hold; beyond this the oldest are dropped.
    pub max_outbox_lines: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    pub name: Option<String>,
    /// What it probes: `http` (the default), `tcp`, `dns`, `websocket`, `grpc`, `icmp` or `push`.
    pub kind: Option<String>,
    /// An `http://` or `https://` URL (kind `http`).
    pub url: Option<String>,
    /// Where a site of another kind probes: `host:port` (tcp), the name queried (dns).
    pub target: Option<String>,
    /// tcp, grpc: TLS right after connecting.
    pub tls: Option<bool>,
    /// tcp: text sent once connected.
    pub send: Option<String>,
    /// tcp: a substring the server's first answer must hold.
    pub expect: Option<String>,
    /// tcp: a regular expression the server's first answer must match.
    pub expect_regex: Option<String>,
    /// dns: A (the default), AAAA, CNAME, MX, TXT, NS, SOA, SRV or CAA.
    pub record_type: Option<String>,
    /// dns: the resolver asked (`127.0.0.1:5353`); the system's when left out.
    pub resolver: Option<String>,
    /// dns: the response code that is up (NOERROR by default).
    pub expect_rcode: Option<String>,
    /// dns: answers that must be in the answer section.
    pub expect_answers: Option<Vec<String>>,
    /// dns: `contains` (the default) or `exact`.
    pub answers_match: Option<String>,
    /// grpc: the service asked about (the server as a whole when left out).
    pub service: Option<String>,
    /// icmp: echo requests per probe (3 by default).
    pub count: Option<u32>,
    /// push: the environment variable holding the ping token.
    pub token_env: Option<String>,
    /// push: how often the job runs.
    pub period: Option<RawDuration>,
    /// push: when the job runs (five-field cron), in `tz`.
    pub cron: Option<String>,
    pub tz: Option<String>,
    /// push: how late a ping may be (1m by default).
    pub grace: Option<RawDuration>,
    /// Watch the registration expiry of the site's registrable domain (RDAP).
    pub domain_expiry: Option<bool>,
    /// script: the scenario plugin that is the probe.
    pub plugin: Option<String>,
    /// script: the scenario's config, passed as JSON text with its `${NAME}` as written.
    pub config: Option<serde_json::Value>,
    /// script: the hosts its requests may reach (default: the host of `url`).
    pub allow: Option<Vec<String>>,
    /// script: the most requests one run may send (20 by default).
    pub max_requests: Option<u32>,
    /// script: environment variables its requests may name besides those in `config`.
    pub secrets: Option<Vec<String>>,
    /// script: the scenario plugin's memory limit (the `plugins` default when left out).
    pub memory_limit: Option<RawSize>,
    /// script: the scenario plugin's CPU time limit per run (time in host calls not counted).
    pub time_limit: Option<RawDuration>,
    pub interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub expect_status: Option<Vec<RawStatus>>,
    /// Reuse connections between probes (default false: a fresh connection per probe).
    pub keep_alive: Option<bool>,
    /// Accept any TLS certificate (expired, self-signed, wrong host). Flagged in the display.
    pub tls_insecure: Option<bool>,
    /// A PEM file of CA certificates to trust for this site instead of the system's.
    pub tls_ca: Option<String>,
    /// Cap on the body bytes read per probe, e.g. `"1MiB"` or a number of bytes.
    pub max_body: Option<RawSize>,
    /// How many probes of this site may run at once before ticks are skipped.
    pub max_in_flight: Option<u32>,
    /// Plugin checks run on every complete response, in order.
    #[serde(default)]
    pub checks: Vec<RawPluginUse>,
    /// The request body: a string is sent as text, any other JSON value as JSON.
    pub body: Option<serde_json::Value>,
    /// The body's `Content-Type` (default `text/plain; charset=utf-8` or `application/json`).
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// This site's own threshold, window, latency objective and certificate warning.
    pub alerting: Option<RawSiteAlerting>,
    /// This site's own maintenance windows (the global ones apply too).
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// Cluster locations that probe this site (default all).
    pub locations: Option<Vec<String>>,
    /// Sites this one depends on: while one is down or in maintenance, this site's down alert
    /// is held.
    pub depends_on: Option<Vec<String>>,
    /// The site's service level objective (`false`: none, whatever the global one).
    pub slo: Option<RawSlo>,
    /// `true` (the default), `false`, or `"same-origin"`.
    pub follow_redirects: Option<RawFollow>,
    /// Not probed, shown as paused, no alerts (`POST /api/v1/sites/{name}/pause` sets it).
    pub paused: Option<bool>,
}

/// `follow_redirects` as typed.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawFollow {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerting {
    pub threshold: Option<f64>,
    pub window: Option<RawDuration>,
    pub formatter: Option<RawPluginUse>,
    /// The latency objective of every site that has none of its own.
    pub degraded: Option<RawDegraded>,
    /// How long before the earliest certificate expiry a `cert` alert fires (default 14d).
    pub cert_warning: Option<RawDuration>,
    pub domain_warning: Option<RawDuration>,
    /// Flap damping for every site (off by default).
    pub flapping: Option<RawFlapping>,
    /// The service level objective of every site without its own (off by default).
    pub slo: Option<RawSlo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDashboard {
    pub views: Option<Vec<RawView>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawView {
    pub window: RawDuration,
    pub every: RawDuration,
}

/// A duration as typed: `"250ms"`, `"10s"`, `"2m"`, `"1h"`, or a plain number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(f64),
    Text(String),
}

/// A byte size as typed: `"1MiB"`, `"512KiB"`, `"10MB"`, or a plain number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(u64),
    Text(String),
}

/// An expected status as typed: `200`, `"200"` or a class such as `"2xx"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawStatus {
    Code(u64),
    Text(String),
}
