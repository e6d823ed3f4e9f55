//! sitewatch's external sinks, each sent from its durable queue in the store with the one retry
//! policy: measurements to InfluxDB 2 (line protocol), and alerts to the notifiers' services.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::event;
use sitewatch_core::panic_message;
use sitewatch_core::retry;
use sitewatch_notify::reply;
#[cfg(test)]
use sitewatch_probe as probe;
use sitewatch_store as store;

pub mod influx;
pub mod notify;
