//! Service level objectives (`slo`): a site's probes counted in minute, hour and day buckets,
//! the burn rate of its error budget over the Google SRE workbook's windows, the burn-rate
//! alert they call for, and the budget left over the objective's period.
//!
//! The burn rate over a window is its share of failed probes divided by the share the
//! objective allows (`1 - objective`): 1x spends the budget exactly over the period. The
//! workbook's multi-window, multi-burn-rate rules (chapter 5, "Alerting on SLOs"): page at
//! 14.4x over 1 h and 5 min (2% of a 30-day budget in an hour) or 6x over 6 h and 30 min (5% in
//! six hours); a ticket at 1x over 3 days and 6 h (10% in three days). The long window says the
//! budget is really being spent, the short one that it still is, so the alert resets soon
//! after the errors stop. Probes in maintenance windows are not counted.

use crate::alert::Slo;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// One rule of the workbook: over both windows the burn rate is at least `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    pub severity: Severity,
    pub long: Duration,
    pub short: Duration,
    pub rate: f64,
}

/// The workbook's rules, most urgent first.
pub const RULES: [BurnRule; 3] = [
    BurnRule {
        severity: Severity::Page,
        long: HOUR,
        short: Duration::from_secs(5 * 60),
        rate: 14.4,
    },
    BurnRule {
        severity: Severity::Page,
        long: Duration::from_secs(6 * 3600),
        short: Duration::from_secs(30 * 60),
        rate: 6.0,
    },
    BurnRule {
        severity: Severity::Ticket,
        long: Duration::from_secs(3 * 24 * 3600),
        short: Duration::from_secs(6 * 3600),
        rate: 1.0,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ticket,
    Page,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// Probes and failures of one bucket (`at`: its number since the epoch, in its level's size).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    at: i64,
    probes: u32,
    failed: u32,
}

/// Buckets of one size, the newest `keep` of them.
#[derive(Debug)]
struct Level {
    size_s: i64,
    keep: i64,
    buckets: VecDeque<Bucket>,
}

impl Level {
    fn new(size: Duration, span: Duration) -> Self {
        let size_s = size.as_secs() as i64;
        Self {
            size_s,
            keep: span.as_secs().div_ceil(size_s as u64) as i64 + 1,
            buckets: VecDeque::new(),
        }
    }

    fn add(&mut self, t_s: i64, probes: u32, failed: u32) {
        let at = t_s.div_euclid(self.size_s);
        match self.buckets.iter_mut().rev().find(|b| b.at <= at) {
            Some(b) if b.at == at => {
                b.probes += probes;
                b.failed += failed;
            }
            _ => {
                let i = self.buckets.partition_point(|b| b.at < at);
                self.buckets.insert(i, Bucket { at, probes, failed });
            }
        }
        let newest = self.buckets.back().map_or(at, |b| b.at);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.at <= newest - self.keep)
        {
            self.buckets.pop_front();
        }
    }

    /// (probes, failed) of the buckets that end after `now - window`.
    fn sum(&self, now_s: i64, window: Duration) -> (u64, u64) {
        let first = (now_s - window.as_secs() as i64).div_euclid(self.size_s) + 1;
        self.buckets
            .iter()
            .rev()
            .take_while(|b| b.at >= first)
            .fold((0, 0), |(p, f), b| {
                (p + u64::from(b.probes), f + u64::from(b.failed))
            })
    }
}

/// A change of a site's burn-rate alerts. A page and a ticket are separate alerts (as in the
/// workbook, each resets on its own rules), each with its own start.
#[derive(Debug, Clone, PartialEq)]
pub enum BurnChange {
    /// The first rule of its severity that holds, with its two rates.
    Burning {
        rule: BurnRule,
        long_rate: f64,
        short_rate: f64,
    },
    Recovered {
        severity: Severity,
        since: DateTime<Utc>,
        /// The rate over the hour, for the message.
        hour_rate: f64,
    },
}

/// One site's SLO state.
#[derive(Debug)]
pub struct Burn {
    slo: Slo,
    minutes: Level,
    hours: Level,
    days: Level,
    /// The open page alert, since then.
    page: Option<DateTime<Utc>>,
    /// The open ticket alert, since then.
    ticket: Option<DateTime<Utc>>,
}

impl Burn {
    pub fn new(slo: Slo) -> Self {
        Self {
            slo,
            minutes: Level::new(MIN, Duration::from_secs(6 * 3600)),
            hours: Level::new(HOUR, Duration::from_secs(3 * 24 * 3600)),
            days: Level::new(DAY, slo.period.max(DAY)),
            page: None,
            ticket: None,
        }
    }

    pub fn slo(&self) -> Slo {
        self.slo
    }

    /// A new objective: the counts stay, the day buckets kept follow the new period.
    pub fn set_slo(&mut self, slo: Slo) {
        self.slo = slo;
        self.days.keep = slo.period.max(DAY).as_secs().div_ceil(DAY.as_secs()) as i64 + 1;
    }

    /// Counts one probe that ended at `time`.
    pub fn add(&mut self, time: DateTime<Utc>, failed: bool) {
        let t = time.timestamp();
        let f = u32::from(failed);
        self.minutes.add(t, 1, f);
        self.hours.add(t, 1, f);
        self.days.add(t, 1, f);
    }

    /// Counts from the store's rollups (hours for the slow windows, days for the period), as
    /// (start in seconds, probes, failed): a restart keeps the budget and the 3-day window.
    pub fn seed(&mut self, hours: &[(i64, u32, u32)], days: &[(i64, u32, u32)]) {
        for &(start_s, probes, failed) in hours {
            self.hours.add(start_s, probes, failed);
        }
        for &(start_s, probes, failed) in days {
            self.days.add(start_s, probes, failed);
        }
    }

    /// Counts one probe in the minute buckets only: the raw history a restart reloads, whose
    /// hours and days come from the rollups ([`Self::seed`]).
    pub fn add_minute(&mut self, time: DateTime<Utc>, failed: bool) {
        self.minutes.add(time.timestamp(), 1, u32::from(failed));
    }

    /// The burn rate over the `window` before `now`: failed share / allowed share.
    pub fn rate(&self, now: DateTime<Utc>, window: Duration) -> f64 {
        let level = if window <= Duration::from_secs(6 * 3600) {
            &self.minutes
        } else if window <= Duration::from_secs(3 * 24 * 3600) {
            &self.hours
        } else {
            &self.days
        };
        let (probes, failed) = level.sum(now.timestamp(), window);
        if probes == 0 {
            return 0.0;
        }
        (failed as f64 / probes as f64) / (1.0 - self.slo.objective)
    }

    /// The share of the period's error budget not spent (negative: overspent); `None` before
    /// any probe.
    pub fn budget_left(&self, now: DateTime<Utc>) -> Option<f64> {
        let (probes, failed) = self.days.sum(now.timestamp(), self.slo.period);
        (probes > 0).then(|| 1.0 - (failed as f64 / probes as f64) / (1.0 - self.slo.objective))
    }

    /// The most urgent open alert.
    pub fn burning(&self) -> Option<Severity> {
        if self.page.is_some() {
            Some(Severity::Page)
        } else {
            self.ticket.map(|_| Severity::Ticket)
        }
    }

    /// Judges the rules at `now`: the changes of the page and the ticket alert.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<BurnChange> {
        let mut out = Vec::new();
        for severity in [Severity::Page, Severity::Ticket] {
            let holds = RULES
                .iter()
                .filter(|r| r.severity == severity)
                .find_map(|r| {
                    let long_rate = self.rate(now, r.long);
                    let short_rate = self.rate(now, r.short);
                    (long_rate >= r.rate && short_rate >= r.rate)
                        .then_some((*r, long_rate, short_rate))
                });
            let hour_rate = self.rate(now, HOUR);
            let open = match severity {
                Severity::Page => &mut self.page,
                Severity::Ticket => &mut self.ticket,
            };
            match (*open, holds) {
                (None, Some((rule, long_rate, short_rate))) => {
                    *open = Some(now);
                    out.push(BurnChange::Burning {
                        rule,
                        long_rate,
                        short_rate,
                    });
                }
                (Some(since), None) => {
                    *open = None;
                    out.push(BurnChange::Recovered {
                        severity,
                        since,
                        hour_rate,
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// Takes an open alert restored from the store.
    pub fn restore_open(&mut self, severity: Severity, since: DateTime<Utc>) {
        match severity {
            Severity::Page => self.page = Some(since),
            Severity::Ticket => self.ticket = Some(since),
        }
    }
}

/// The severity a stored burn-rate alert's message names.
pub fn severity_of(message: &str) -> Severity {
    if message.contains("(page") {
        Severity::Page
    } else {
        Severity::Ticket
    }
}

/// `objective 99.9% over 30d, 87% of the budget left`.
fn budget_text(slo: Slo, budget: Option<f64>) -> String {
    let left = match budget {
        Some(b) if b < 0.0 => format!("the budget overspent by {:.0}%", -b * 100.0),
        Some(b) => format!("{:.0}% of the budget left", b * 100.0),
        None => "no probe in the period yet".into(),
    };
    format!(
        "objective {} over {}, {left}",
        crate::alert::objective_text(slo.objective),
        window_text(slo.period)
    )
}

/// The `slo_burn` or `slo_burn_recovered` alert of `change`.
pub fn alert(
    change: &BurnChange,
    slo: Slo,
    budget: Option<f64>,
    site: &std::sync::Arc<str>,
    url: &std::sync::Arc<str>,
    availability: Option<f64>,
    time: DateTime<Utc>,
) -> crate::alert::Alert {
    use crate::alert::{Alert, AlertKind};
    use crate::clock::{human_duration, rfc3339_seconds};
    let availability = availability.unwrap_or(0.0);
    match change {
        BurnChange::Burning {
            rule,
            long_rate,
            short_rate,
        } => Alert::new(
            AlertKind::SloBurn,
            std::sync::Arc::clone(site),
            std::sync::Arc::clone(url),
            availability,
            time,
            format!(
                "Website {site} burns its error budget: {long_rate:.1}x over {} and {short_rate:.1}x over {} ({}: {}), time={}",
                window_text(rule.long),
                window_text(rule.short),
                rule.severity.as_str(),
                budget_text(slo, budget),
                rfc3339_seconds(time)
            ),
        ),
        BurnChange::Recovered {
            severity,
            since,
            hour_rate,
        } => {
            let lasted = (time - *since).to_std().unwrap_or_default();
            Alert {
                down_since: Some(*since),
                down_for: Some(lasted),
                ..Alert::new(
                    AlertKind::SloBurnRecovered,
                    std::sync::Arc::clone(site),
                    std::sync::Arc::clone(url),
                    availability,
                    time,
                    format!(
                        "Website {site} no longer burns its error budget too fast ({} cleared): {hour_rate:.1}x over 1h ({}), time={}, burning since {}, for {}",
                        severity.as_str(),
                        budget_text(slo, budget),
                        rfc3339_seconds(time),
                        rfc3339_seconds(*since),
                        human_duration(lasted)
                    ),
                )
            }
        }
    }
}

/// `5m`, `1h`, `3d`.
pub fn window_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        format!("{}m", s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        Slo {
            objective: 0.999,
            period: Duration::from_secs(30 * 86400),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    /// One probe every `every` seconds from `from` to `to`, failing when `fail`; the changes.
    fn run(b: &mut Burn, from: i64, to: i64, every: i64, fail: bool) -> Vec<(i64, BurnChange)> {
        let mut out = Vec::new();
        let mut s = from;
        while s < to {
            b.add(t(s), fail);
            out.extend(b.evaluate(t(s)).into_iter().map(|c| (s, c)));
            s += every;
        }
        out
    }

    fn fired(changes: &[(i64, BurnChange)], severity: Severity) -> Vec<i64> {
        changes
            .iter()
            .filter(
                |(_, c)| matches!(c, BurnChange::Burning { rule, .. } if rule.severity == severity),
            )
            .map(|(at, _)| *at)
            .collect()
    }

    fn reset(changes: &[(i64, BurnChange)], severity: Severity) -> Vec<i64> {
        changes
            .iter()
            .filter(
                |(_, c)| matches!(c, BurnChange::Recovered { severity: s, .. } if *s == severity),
            )
            .map(|(at, _)| *at)
            .collect()
    }

    #[test]
    fn a_total_outage_pages_within_the_workbooks_detection_time_and_resets_after_it() {
        let mut b = Burn::new(slo());
        // Three healthy days, a probe a minute.
        assert!(run(&mut b, 0, 3 * 86400, 60, false).is_empty());
        assert_eq!(b.budget_left(t(3 * 86400)), Some(1.0));
        // Everything fails for ten minutes. At 1000x, 14.4x over the hour takes 0.864 min of
        // errors (the workbook's detection time for a 100% error rate): the first failure.
        let start = 3 * 86400;
        let end = start + 600;
        let during = run(&mut b, start, end, 60, true);
        let paged = fired(&during, Severity::Page);
        assert_eq!(paged.len(), 1, "{during:?}");
        assert!(paged[0] - start <= 60, "paged {} s in", paged[0] - start);
        // 1x over 3 days needs 0.1% of its probes to fail: the fifth failure.
        assert_eq!(fired(&during, Severity::Ticket).len(), 1, "{during:?}");
        // After the errors: the page resets when the 30-minute window no longer holds them
        // (the 5-minute one clears first, but 6x over 6h and 30m still holds); the ticket
        // when they leave the 6-hour window.
        let after = run(&mut b, end, end + 7 * 3600, 60, false);
        let page_reset = reset(&after, Severity::Page);
        assert_eq!(page_reset.len(), 1, "{after:?}");
        assert!(
            page_reset[0] - end <= 30 * 60,
            "the page reset {} s after the errors stopped",
            page_reset[0] - end
        );
        let ticket_reset = reset(&after, Severity::Ticket);
        assert_eq!(ticket_reset.len(), 1, "{after:?}");
        assert!(
            (ticket_reset[0] - end - 6 * 3600).abs() <= 120,
            "the ticket reset {} s after the errors stopped",
            ticket_reset[0] - end
        );
        assert!(fired(&after, Severity::Page).is_empty() && b.burning().is_none());
        // 10 failed of 4,750 probes against 0.1% allowed: the budget is overspent 2.1 times.
        let left = b.budget_left(t(end + 7 * 3600)).unwrap();
        assert!(
            (left - (1.0 - (10.0 / 4750.0) / 0.001)).abs() < 1e-9,
            "{left}"
        );
    }

    #[test]
    fn a_slow_leak_opens_a_ticket_and_no_page_then_a_fast_one_pages() {
        let mut b = Burn::new(slo());
        // 0.2% errors (2x): one failure in every 500 probes, a probe every 10 s, four days.
        let mut changes = Vec::new();
        let (mut n, mut s) = (0u64, 0);
        while s < 4 * 86400 {
            n += 1;
            b.add(t(s), n % 500 == 0);
            changes.extend(b.evaluate(t(s)).into_iter().map(|c| (s, c)));
            s += 10;
        }
        assert_eq!(fired(&changes, Severity::Ticket).len(), 1, "{changes:?}");
        assert!(fired(&changes, Severity::Page).is_empty(), "{changes:?}");
        assert_eq!(b.burning(), Some(Severity::Ticket));
        // Then 100% errors: a page beside the ticket.
        let c = run(&mut b, s, s + 600, 10, true);
        assert_eq!(fired(&c, Severity::Page).len(), 1, "{c:?}");
        assert_eq!(b.burning(), Some(Severity::Page));
    }

    #[test]
    fn seeded_days_count_in_the_budget() {
        let mut b = Burn::new(slo());
        let day = (1_800_000_000 / 86400) * 86400;
        b.seed(&[], &[(day - 86400, 2000, 1)]);
        let left = b.budget_left(t(0)).unwrap();
        assert!(
            (left - 0.5).abs() < 1e-9,
            "1 of 2000 failed: half the budget: {left}"
        );
    }
}
