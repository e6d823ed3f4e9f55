//! sitewatch's engine: the scheduler that starts each site's probes on time, the recorder
//! (the one sequencer: it places measurements in the windows, decides alerts and hands them
//! to the store, the notifiers and the outputs), and the reports of the CLI and the API. It
//! knows no network client: a cluster is an [`recorder::side::AlertLedger`] to it.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::event;
use sitewatch_core::maintenance;
use sitewatch_core::measurement;
use sitewatch_core::skips;
use sitewatch_core::stats;
use sitewatch_core::wire;
use sitewatch_plugin as plugin;
use sitewatch_probe as probe;
use sitewatch_store as store;

pub mod canary;
pub mod recorder;
pub mod report;
pub mod scheduler;
pub mod target;
pub mod tokio_clock;
pub mod views;
