//! Long-term history: per-site rollups of every minute, hour and day, kept beside the raw
//! measurements in the embedded store and built by the store's writer as it writes
//! ([`Rollups`]), and the reports over them (`sitewatch report --by`, `--sla`, the API and the
//! status page's daily bars).
//!
//! Counts, sums and maxima are exact, so availability, averages and maxima of a report agree
//! with the raw rows; percentiles come from a mergeable sketch within
//! [`sketch::RELATIVE_ERROR`]. See docs/ARCHITECTURE.md (History) for the design.

mod query;
mod render;
mod rollups;

pub use query::{Answer, HistoryError, Request, SiteRow, Source, choose, probe_counts, report};
pub use render::{
    DailyBars, ReportFormat, daily_bars, stats_json, tier_names, to_json, to_stats_report, write,
};
pub use rollups::{Rebuilt, Rollups, prune, rebuild, store_row};
pub use sitewatch_core::history::*;

#[cfg(test)]
mod tests;
