//! The building blocks of long-term history: per-site cells of a minute, an hour or a day
//! (exact counts, sums and maxima, and a mergeable percentile sketch), the tiers and how long
//! each is kept, and calendar periods. The store keeps and queries them.

pub mod cell;
pub mod period;
pub mod sketch;
pub mod tier;

pub use cell::{Cell, Probe, Row};
pub use period::{By, Calendar};
pub use sketch::RELATIVE_ERROR;
pub use tier::{DEFAULT_ROLLUP_EVERY, Retention, Tier, days};
