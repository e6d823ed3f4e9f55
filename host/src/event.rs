//! Events: what the monitor tells its outputs. The recorder emits them; outputs only consume.
//! Each serialises to one JSON object tagged by `"event"`.

use crate::alert::Alert;
use crate::measurement::Measurement;
use crate::stats::WindowStats;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Once, when monitoring starts.
    Started(Started),
    Probe(Measurement),
    Stats(StatsReport),
    Alert(Alert),
    Error(ErrorReport),
    /// A config or plugin change was applied or rejected.
    Reload(ReloadReport),
}

/// What the monitor is watching, and the alerts of earlier runs.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<Utc>,
    pub config: String,
    pub sites: usize,
    /// Where measurements go, e.g. `sitewatch-data/sitewatch.db + InfluxDB http://...`.
    pub storage: String,
    /// Stored alerts of earlier runs, oldest first (at most 20).
    pub past_alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadWhat {
    Config,
    Plugin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    Applied,
    Rejected,
}

impl ReloadReport {
    /// `config reload applied: ...` / `plugin reload rejected: ...`
    pub fn line(&self) -> String {
        let what = match self.what {
            ReloadWhat::Config => "config",
            ReloadWhat::Plugin => "plugin",
        };
        let result = match self.result {
            ReloadResult::Applied => "applied",
            ReloadResult::Rejected => "rejected",
        };
        format!("{what} reload {result}: {}", self.detail)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<Utc>,
    pub what: ReloadWhat,
    pub result: ReloadResult,
    /// What changed, or why it was rejected.
    pub detail: String,
}

/// One refresh of one view: every site's stats over the view's window.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub view: String,
    pub window_s: u64,
    pub every_s: f64,
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<Utc>,
    /// True for the report printed at shutdown.
    pub r#final: bool,
    /// The alert threshold, for colouring availability.
    pub threshold: f64,
    pub sites: Vec<SiteReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    pub site: Arc<str>,
    pub url: Arc<str>,
    #[serde(flatten)]
    pub stats: WindowStats,
    /// Whether the site is down right now (per the alert engine).
    pub down: bool,
    /// Ticks skipped since start because too many probes of the site were still running.
    pub skipped_ticks: u64,
    /// TLS certificates of this site are not verified (`tls_insecure`).
    pub tls_insecure: bool,
}

/// A problem that does not stop the program.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<Utc>,
    /// The part of the program that met the problem, e.g. `output` or `config`.
    pub source: &'static str,
    pub site: Option<Arc<str>>,
    pub message: String,
}

pub fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::rfc3339_millis(*t))
}

pub fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

pub fn ser_opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(crate::ms(*d)),
        None => s.serialize_none(),
    }
}

pub fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(crate::ms(*d))
}
