//! sitewatch's exporters: measurements to InfluxDB 2 (line protocol), sent from the store's
//! durable outbox with the one retry policy.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
#[cfg(test)]
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::event;
use sitewatch_notify::reply;
#[cfg(test)]
use sitewatch_probe as probe;
use sitewatch_store as store;

pub mod influx;
