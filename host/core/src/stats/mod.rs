//! Rolling statistics per site. [`SiteWindows`] keeps the samples of the longest window once and
//! a running aggregate per window, so a measurement costs O(log n) (a sorted insert) and a refresh
//! reads the aggregates without walking the samples.

mod sorted;

use crate::measurement::{Measurement, Outcome};
use serde::Serialize;
use sorted::SortedMicros;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// One measurement as the windows keep it (24 bytes).
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Position on the monotonic timeline, microseconds (see [`SiteWindows::push`]).
    at_us: i64,
    outcome: Outcome,
    ok: bool,
    /// `NONE` when there was no complete response.
    response_us: u32,
    ttfb_us: u32,
}

const NONE: u32 = u32::MAX;

impl Sample {
    fn new(m: &Measurement, at_us: i64) -> Self {
        Self {
            at_us,
            outcome: m.outcome(),
            ok: m.ok,
            response_us: micros(m.response_time),
            ttfb_us: micros(m.ttfb),
        }
    }
}

fn micros(d: Option<Duration>) -> u32 {
    d.map_or(NONE, |d| u32::try_from(d.as_micros()).unwrap_or(NONE - 1))
}

/// The running aggregate of one window: the `len` newest samples.
#[derive(Debug, Clone)]
struct Window {
    span_us: i64,
    /// Whether latency figures are kept (the alert window needs only counts).
    timings: bool,
    len: usize,
    ok: u32,
    response: SortedMicros,
    ttfb: SortedMicros,
    outcomes: Vec<(Outcome, u32)>,
}

impl Window {
    fn new(span: Duration, timings: bool) -> Self {
        Self {
            span_us: i64::try_from(span.as_micros()).unwrap_or(i64::MAX),
            timings,
            len: 0,
            ok: 0,
            response: SortedMicros::default(),
            ttfb: SortedMicros::default(),
            outcomes: Vec::new(),
        }
    }

    fn add(&mut self, s: &Sample) {
        self.len += 1;
        self.ok += u32::from(s.ok);
        if self.timings {
            if s.response_us != NONE {
                self.response.insert(s.response_us);
            }
            if s.ttfb_us != NONE {
                self.ttfb.insert(s.ttfb_us);
            }
        }
        match self.outcomes.iter_mut().find(|(o, _)| *o == s.outcome) {
            Some((_, n)) => *n += 1,
            None => self.outcomes.push((s.outcome, 1)),
        }
    }

    fn remove(&mut self, s: &Sample) {
        self.len -= 1;
        self.ok -= u32::from(s.ok);
        if self.timings {
            if s.response_us != NONE {
                self.response.remove(s.response_us);
            }
            if s.ttfb_us != NONE {
                self.ttfb.remove(s.ttfb_us);
            }
        }
        if let Some(i) = self.outcomes.iter().position(|(o, _)| *o == s.outcome) {
            self.outcomes[i].1 -= 1;
            if self.outcomes[i].1 == 0 {
                self.outcomes.swap_remove(i);
            }
        }
    }

    fn availability(&self) -> Option<f64> {
        (self.len > 0).then(|| f64::from(self.ok) / self.len as f64)
    }

    fn stats(&self) -> WindowStats {
        let ms = |us: u32| f64::from(us) / 1000.0;
        // Averages to the microsecond, like every other figure.
        let avg_ms = |us: f64| (us).round() / 1000.0;
        let response_ms = self.response.mean().map(|avg| ResponseSummary {
            avg: avg_ms(avg),
            max: ms(self.response.max().unwrap_or_default()),
            p50: ms(self.response.percentile(0.50).unwrap_or_default()),
            p95: ms(self.response.percentile(0.95).unwrap_or_default()),
            p99: ms(self.response.percentile(0.99).unwrap_or_default()),
        });
        let ttfb_ms = self.ttfb.mean().map(|avg| TtfbSummary {
            avg: avg_ms(avg),
            max: ms(self.ttfb.max().unwrap_or_default()),
        });
        // Labels are static strings: a refresh of thousands of sites allocates no keys; the map
        // orders them, so the counts need no copy or sort first.
        WindowStats {
            checks: self.len as u32,
            ok: self.ok,
            availability: self.availability(),
            response_ms,
            ttfb_ms,
            status_codes: self.outcomes.iter().map(|&(o, n)| (o.label(), n)).collect(),
        }
    }
}

/// Stats over a whole set of measurements (for reports over stored history): the same figures as
/// a live window, loaded with one sort instead of a sorted insert per sample.
pub fn summarize<'a>(measurements: impl IntoIterator<Item = &'a Measurement>) -> WindowStats {
    let mut w = Window::new(Duration::MAX, true);
    w.response.start_loading();
    w.ttfb.start_loading();
    for m in measurements {
        w.add(&Sample::new(m, 0));
    }
    w.response.finish_loading();
    w.ttfb.finish_loading();
    w.stats()
}

/// Stats of one site over one window. `availability` and the timings are `None` when the window
/// holds no data ("no data", never 0%).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStats {
    pub checks: u32,
    pub ok: u32,
    pub availability: Option<f64>,
    pub response_ms: Option<ResponseSummary>,
    pub ttfb_ms: Option<TtfbSummary>,
    /// Probes counted by status code, and by error kind for probes that got no response.
    pub status_codes: BTreeMap<&'static str, u32>,
}

impl WindowStats {
    /// The status counts as `200:57 503:2 timeout:1`, in key order.
    pub fn codes_summary(&self) -> String {
        let parts: Vec<String> = self
            .status_codes
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        parts.join(" ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResponseSummary {
    pub avg: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TtfbSummary {
    pub avg: f64,
    pub max: f64,
}

/// Every window of one site over one shared sample queue.
#[derive(Debug, Clone)]
pub struct SiteWindows {
    samples: VecDeque<Sample>,
    windows: Vec<Window>,
    last_at_us: i64,
}

/// How a window is used: the alert window keeps counts only.
#[derive(Debug, Clone, Copy)]
pub struct WindowSpec {
    pub span: Duration,
    pub timings: bool,
}

impl SiteWindows {
    pub fn new(specs: &[WindowSpec]) -> Self {
        Self {
            samples: VecDeque::new(),
            windows: specs
                .iter()
                .map(|s| Window::new(s.span, s.timings))
                .collect(),
            last_at_us: i64::MIN,
        }
    }

    /// Adds a measurement. It is placed where it ended on the monotonic timeline
    /// ([`Measurement::ended_us`]), so samples arrive in order even when probes overlap; one that
    /// reaches the windows after a later one is placed beside it. Returns its position.
    pub fn push(&mut self, m: &Measurement) -> i64 {
        let at_us = m.ended_us.max(self.last_at_us);
        self.last_at_us = at_us;
        let sample = Sample::new(m, at_us);
        for w in &mut self.windows {
            w.add(&sample);
        }
        self.samples.push_back(sample);
        self.evict(at_us);
        at_us
    }

    /// Changes the windows (a config reload). Each new window is rebuilt from the samples kept,
    /// which cover the longest old window.
    pub fn respan(&mut self, specs: &[WindowSpec]) {
        self.windows = specs
            .iter()
            .map(|s| Window::new(s.span, s.timings))
            .collect();
        for s in &self.samples {
            for w in &mut self.windows {
                w.add(s);
            }
        }
        if !self.samples.is_empty() {
            self.evict(self.last_at_us);
        }
    }

    /// Drops what has left each window by `now_us` (a timeline position).
    pub fn advance(&mut self, now_us: i64) {
        self.evict(now_us);
    }

    fn evict(&mut self, now_us: i64) {
        let total = self.samples.len();
        for w in &mut self.windows {
            let cutoff = now_us.saturating_sub(w.span_us);
            while w.len > 0 {
                let s = &self.samples[total - w.len];
                if s.at_us > cutoff {
                    break;
                }
                w.remove(s);
            }
        }
        let keep = self.windows.iter().map(|w| w.len).max().unwrap_or(0);
        while self.samples.len() > keep {
            self.samples.pop_front();
        }
    }

    pub fn availability(&self, window: usize) -> Option<f64> {
        self.windows[window].availability()
    }

    pub fn stats(&self, window: usize) -> WindowStats {
        self.windows[window].stats()
    }

    /// Samples held (the longest window's), for memory accounting.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests;
