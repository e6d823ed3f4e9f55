//! sitewatch: watches websites. See `docs/ARCHITECTURE.md` for how the crates fit.
//!
//! This crate is the program (its CLI, the monitor that wires the parts, the config watcher
//! and the outputs); its library also names every crate's modules at the paths tests and
//! benchmarks use (`sitewatch::config`, `sitewatch::store`, ...).

pub use sitewatch_core::{
    alert, clock, error_chain, event, hex, maintenance, measurement, ms, panic_message, skips,
    stats,
};
pub use sitewatch_engine::{canary, recorder, report, scheduler, target, tokio_clock, views};
pub use sitewatch_notify::reply;
pub use sitewatch_store::history;
pub use {
    sitewatch_cluster as cluster, sitewatch_config as config, sitewatch_plugin as plugin,
    sitewatch_probe as probe, sitewatch_serve as serve,
};

/// The store, and the InfluxDB sender that empties its outbox.
pub mod store {
    pub use sitewatch_export::influx;
    pub use sitewatch_store::*;
}

/// The notification services, and the delivery of their outboxes.
pub mod notify {
    pub use sitewatch_export::notify::*;
    pub use sitewatch_notify::*;
}

pub mod cli;
pub mod import;
pub mod incident;
pub mod monitor;
pub mod output;
pub mod watch;
