//! Maintenance windows: when a site's probes still run and are stored, but no alert fires.
//!
//! A window is one-off (a start and an end) or recurring (a cron expression, a duration and a
//! time zone). Nothing is stored or generated per occurrence (Uptime Kuma's store grew to
//! gigabytes from pre-generated slots, their issue 2889): whether a window is open, and when it
//! next opens, is computed from the expression each time it is asked.

use chrono::{DateTime, Utc};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The longest a recurring window may last (a longer one is a mistake, or a one-off window).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(31 * 24 * 3600);

/// One configured window.
#[derive(Debug, Clone)]
pub struct Window {
    /// A label for people (`name` in the config), e.g. `weekly patching`.
    pub name: Option<String>,
    pub when: When,
}

#[derive(Debug, Clone)]
pub enum When {
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Recurring {
        /// The expression as written, for messages.
        text: String,
        cron: Arc<croner::Cron>,
        duration: Duration,
        tz: chrono_tz::Tz,
    },
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && match (&self.when, &other.when) {
                (When::Once { start, end }, When::Once { start: s, end: e }) => {
                    start == s && end == e
                }
                (
                    When::Recurring {
                        text, duration, tz, ..
                    },
                    When::Recurring {
                        text: t,
                        duration: d,
                        tz: z,
                        ..
                    },
                ) => text == t && duration == d && tz == z,
                _ => false,
            }
    }
}

/// One occurrence of a window: when it opens and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub name: Option<String>,
}

impl Window {
    /// A one-off window; `end` must be after `start`.
    pub fn once(
        name: Option<String>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Self, String> {
        if end <= start {
            return Err(format!(
                "end ({}) must be after start ({})",
                end.to_rfc3339(),
                start.to_rfc3339()
            ));
        }
        Ok(Self {
            name,
            when: When::Once { start, end },
        })
    }

    /// A recurring window: five-field cron (minute hour day-of-month month day-of-week) in the
    /// zone `tz` (an IANA name such as `Europe/Paris`; default UTC).
    pub fn recurring(
        name: Option<String>,
        cron: &str,
        duration: Duration,
        tz: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        let parsed = croner::Cron::from_str(cron.trim())
            .map_err(|e| ("cron", format!("\"{cron}\" is not a cron expression: {e}")))?;
        let tz = match tz.map(str::trim) {
            None | Some("") | Some("UTC") => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                (
                    "tz",
                    format!(
                        "\"{name}\" is not a time zone (an IANA name such as \"Europe/Paris\")"
                    ),
                )
            })?,
        };
        if duration.is_zero() || duration > MAX_DURATION {
            return Err((
                "duration",
                "must be more than 0 and at most 31 days".to_owned(),
            ));
        }
        let window = Self {
            name,
            when: When::Recurring {
                text: cron.trim().to_owned(),
                cron: Arc::new(parsed),
                duration,
                tz,
            },
        };
        // An expression that never matches (`0 0 31 2 *`) is a mistake worth naming now.
        if window.next_start_after(Utc::now()).is_none() {
            return Err(("cron", format!("\"{cron}\" never matches")));
        }
        Ok(window)
    }

    /// The occurrence open at `t`, if any (start inclusive, end exclusive).
    pub fn open_at(&self, t: DateTime<Utc>) -> Option<Occurrence> {
        match &self.when {
            When::Once { start, end } => (*start <= t && t < *end).then(|| self.occurrence(*start)),
            When::Recurring { duration, .. } => {
                // The first start after `t - duration` is open at `t` when it is not after `t`:
                // no search backwards, no list of occurrences.
                let d = chrono::TimeDelta::from_std(*duration).ok()?;
                let start = self.next_start_from(t - d, false)?;
                (start <= t).then(|| self.occurrence(start))
            }
        }
    }

    /// The first occurrence that opens after `t` (exclusive). (A push site's cron schedule is a
    /// recurring window: when its job is due.)
    pub fn next_start_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Once { start, .. } => (*start > t).then_some(*start),
            When::Recurring { .. } => self.next_start_from(t, false),
        }
    }

    fn next_start_from(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let When::Recurring { cron, tz, .. } = &self.when else {
            return None;
        };
        cron.find_next_occurrence(&t.with_timezone(tz), inclusive)
            .ok()
            .map(|s| s.with_timezone(&Utc))
    }

    fn occurrence(&self, start: DateTime<Utc>) -> Occurrence {
        let end = match &self.when {
            When::Once { end, .. } => *end,
            When::Recurring { duration, .. } => {
                start + chrono::TimeDelta::from_std(*duration).unwrap_or_default()
            }
        };
        Occurrence {
            start,
            end,
            name: self.name.clone(),
        }
    }

    /// The window as the user wrote it, for `maintenance list` and `check-config --print`.
    pub fn describe(&self) -> String {
        let name = self
            .name
            .as_deref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        match &self.when {
            When::Once { start, end } => format!(
                "{name}once, {} to {}",
                crate::clock::rfc3339_seconds(*start),
                crate::clock::rfc3339_seconds(*end)
            ),
            When::Recurring {
                text, duration, tz, ..
            } => format!(
                "{name}\"{text}\" ({tz}) for {}",
                crate::clock::human_duration(*duration)
            ),
        }
    }
}

/// The windows that apply to one site: the global ones and its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    windows: Vec<Window>,
}

impl Schedule {
    pub fn new(windows: Vec<Window>) -> Self {
        Self { windows }
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The open occurrence at `t` that closes last, if any window is open.
    pub fn open_at(&self, t: DateTime<Utc>) -> Option<Occurrence> {
        self.windows
            .iter()
            .filter_map(|w| w.open_at(t))
            .max_by_key(|o| o.end)
    }

    /// The next `n` occurrences that open after `t`, soonest first, and the one open at `t`
    /// first of all if there is one.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<Occurrence> {
        let mut out: Vec<Occurrence> = self.windows.iter().filter_map(|w| w.open_at(t)).collect();
        // Each window's next starts, merged; at most n from each is enough.
        for w in &self.windows {
            let mut from = t;
            for _ in 0..n {
                let Some(start) = w.next_start_after(from) else {
                    break;
                };
                out.push(w.occurrence(start));
                from = start;
            }
        }
        out.sort_by_key(|o| (o.start, o.end));
        out.dedup();
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests;
