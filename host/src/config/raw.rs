//! The config file as written: serde types that accept what the user may type, nothing more
//! (`deny_unknown_fields`). [`super::resolve`] turns them into checked types.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub alerting: RawAlerting,
    #[serde(default)]
    pub dashboard: RawDashboard,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Option<String>,
    pub url: String,
    pub interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub expect_status: Option<Vec<RawStatus>>,
    /// Reuse connections between probes (default false: a fresh connection per probe).
    pub keep_alive: Option<bool>,
    /// Cap on the body bytes read per probe, e.g. `"1MiB"` or a number of bytes.
    pub max_body: Option<RawSize>,
    /// How many probes of this site may run at once before ticks are skipped.
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    pub threshold: Option<f64>,
    pub window: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    pub views: Option<Vec<RawView>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawView {
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
pub enum RawSize {
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
