//! The N-of-M verdict: each location's availability over the alert window, and the figure the
//! alert engine judges, the `confirm`-th lowest of them. A site is down when at least `confirm`
//! locations see it below the threshold, which is exactly when that figure is below it; it
//! recovers when fewer do. Locations without a probe in the window say nothing, and with fewer
//! reporting locations than `confirm` nothing is decided (neither down nor recovered: losing a
//! location is not a recovery).

use crate::measurement::Measurement;
use crate::stats::{SiteWindows, WindowSpec};
use std::sync::Arc;
use std::time::Duration;

/// One site's alert windows, one per location that probed it.
#[derive(Debug)]
pub(crate) struct LocationWindows {
    span: Duration,
    by: Vec<(Arc<str>, SiteWindows)>,
}

/// What the locations say about a site.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The figure to judge: the `confirm`-th lowest availability; `None`: too few locations.
    pub availability: Option<f64>,
    /// The locations below the threshold, by name.
    pub down: Vec<Arc<str>>,
    /// Locations with probes in the window.
    pub reporting: usize,
}

impl LocationWindows {
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            by: Vec::new(),
        }
    }

    fn spec(&self) -> [WindowSpec; 1] {
        [WindowSpec {
            span: self.span,
            timings: false,
        }]
    }

    pub fn push(&mut self, location: &Arc<str>, m: &Measurement) {
        let i = match self.by.iter().position(|(l, _)| l == location) {
            Some(i) => i,
            None => {
                let w = SiteWindows::new(&self.spec());
                self.by.push((Arc::clone(location), w));
                self.by.sort_by(|a, b| a.0.cmp(&b.0));
                self.by
                    .iter()
                    .position(|(l, _)| l == location)
                    .expect("just added")
            }
        };
        self.by[i].1.push(m);
    }

    /// A new alert window span (a reload).
    pub fn respan(&mut self, span: Duration) {
        if span != self.span {
            self.span = span;
            let spec = self.spec();
            for (_, w) in &mut self.by {
                w.respan(&spec);
            }
        }
    }

    /// The verdict at `now_us`, counting only `only` when given (a node alone without NATS).
    pub fn verdict(
        &mut self,
        now_us: i64,
        threshold: f64,
        confirm: usize,
        only: Option<&str>,
    ) -> Verdict {
        let mut seen: Vec<(f64, &Arc<str>)> = Vec::new();
        for (location, w) in &mut self.by {
            if only.is_some_and(|o| o != &**location) {
                continue;
            }
            w.advance(now_us);
            if let Some(a) = w.availability(0) {
                seen.push((a, location));
            }
        }
        let down = seen
            .iter()
            .filter(|(a, _)| *a < threshold)
            .map(|(_, l)| Arc::clone(l))
            .collect();
        let reporting = seen.len();
        seen.sort_by(|a, b| a.0.total_cmp(&b.0));
        let k = if only.is_some() { 1 } else { confirm.max(1) };
        Verdict {
            availability: seen.get(k - 1).map(|(a, _)| *a),
            down,
            reporting,
        }
    }
}

impl Verdict {
    /// What an alert adds to its message: the locations that see the site down.
    pub fn describe(&self, confirm: usize, alone: Option<&str>) -> String {
        if let Some(me) = alone {
            return format!(" (seen from {me} alone: NATS is unreachable)");
        }
        let names = self
            .down
            .iter()
            .map(|l| &**l)
            .collect::<Vec<_>>()
            .join(", ");
        match self.down.len() {
            0 => format!(
                " (down from no location of {}; confirm {confirm})",
                self.reporting
            ),
            n => format!(
                " (down from {names}: {n} of {} locations; confirm {confirm})",
                self.reporting
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn probe(secs: i64, up: bool) -> Measurement {
        crate::measurement::testing::at("s", DateTime::from_timestamp(secs, 0).unwrap(), up)
    }

    #[test]
    fn the_confirm_th_lowest_location_decides() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut w = LocationWindows::new(Duration::from_secs(60));
        for t in 0..10 {
            w.push(&a, &probe(t, false));
            w.push(&b, &probe(t, t % 2 == 0));
            w.push(&c, &probe(t, true));
        }
        let now = 10_000_000;
        let one = w.verdict(now, 0.8, 1, None);
        assert_eq!(one.availability, Some(0.0));
        assert_eq!(one.down, vec![a.clone(), b.clone()]);
        assert_eq!(one.reporting, 3);
        assert_eq!(w.verdict(now, 0.8, 2, None).availability, Some(0.5));
        assert_eq!(w.verdict(now, 0.8, 3, None).availability, Some(1.0));
        // Only one location counts for a node alone, whatever confirm says.
        assert_eq!(w.verdict(now, 0.8, 3, Some("a")).availability, Some(0.0));
        assert_eq!(w.verdict(now, 0.8, 3, Some("c")).availability, Some(1.0));
        assert!(
            one.describe(2, None)
                .contains("down from a, b: 2 of 3 locations")
        );
    }

    #[test]
    fn too_few_locations_decide_nothing_and_silent_ones_drop_out() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut w = LocationWindows::new(Duration::from_secs(60));
        w.push(&a, &probe(0, false));
        w.push(&b, &probe(100, false));
        // At 130 s, a's probe has left the window: only b reports.
        let v = w.verdict(130_000_000, 0.8, 2, None);
        assert_eq!(v.reporting, 1);
        assert_eq!(v.availability, None);
        assert_eq!(w.verdict(130_000_000, 0.8, 1, None).availability, Some(0.0));
    }
}
