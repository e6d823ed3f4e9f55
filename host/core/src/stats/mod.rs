//! Rolling statistics per site. [`SiteWindows`] keeps the samples of the longest window once and
//! a running aggregate per window, so a measurement costs O(log n) (a sorted insert) and a refresh
//! reads the aggregates without walking the samples.

mod sorted;

use crate::measurement::{Measurement, Outcome, Step};
use serde::Serialize;
use sorted::SortedMicros;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// One measurement as the windows keep it (24 bytes). A `script` probe's steps are kept apart
/// ([`SiteWindows`]' `steps`), so the samples of every other kind stay this small.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Position on the monotonic timeline, microseconds (see [`SiteWindows::push`]).
    at_us: i64,
    outcome: Outcome,
    ok: bool,
    /// The probe had steps: they are the next entry of the steps queue.
    has_steps: bool,
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
            has_steps: !m.steps.is_empty(),
            response_us: micros(m.response_time),
            ttfb_us: micros(m.ttfb),
        }
    }
}

fn micros(d: Option<Duration>) -> u32 {
    d.map_or(NONE, |d| u32::try_from(d.as_micros()).unwrap_or(NONE - 1))
}

/// Distinct step names a window (or a rollup cell) keeps figures for; the steps of a scenario
/// that names more are left out of the figures (names come from a plugin: hostile input).
pub const MAX_STEP_NAMES: usize = 32;

/// A step's durations in one window.
#[derive(Debug, Clone)]
struct StepWindow {
    name: Arc<str>,
    durations: SortedMicros,
    failed: u32,
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
    /// Samples with steps in the window (the newest of the steps queue), and the steps'
    /// figures by name.
    step_len: usize,
    steps: Vec<StepWindow>,
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
            step_len: 0,
            steps: Vec::new(),
        }
    }

    /// Adds (or removes) the steps of one sample.
    fn steps(&mut self, steps: &[Step], add: bool) {
        self.step_len = if add {
            self.step_len + 1
        } else {
            self.step_len - 1
        };
        if !self.timings {
            return;
        }
        for step in steps {
            let us = step.micros();
            let i = match self.steps.binary_search_by(|w| (*w.name).cmp(&step.name)) {
                Ok(i) => i,
                Err(_) if !add => continue,
                Err(_) if self.steps.len() >= MAX_STEP_NAMES => continue,
                Err(i) => {
                    self.steps.insert(
                        i,
                        StepWindow {
                            name: Arc::clone(&step.name),
                            durations: SortedMicros::default(),
                            failed: 0,
                        },
                    );
                    i
                }
            };
            let w = &mut self.steps[i];
            if add {
                w.durations.insert(us);
                w.failed += u32::from(step.failed);
            } else {
                w.durations.remove(us);
                w.failed -= u32::from(step.failed);
                if w.durations.is_empty() {
                    self.steps.remove(i);
                }
            }
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
            steps: self
                .steps
                .iter()
                .map(|w| StepStats {
                    name: Arc::clone(&w.name),
                    runs: w.durations.len() as u32,
                    failed: w.failed,
                    avg_ms: avg_ms(w.durations.mean().unwrap_or_default()),
                    max_ms: ms(w.durations.max().unwrap_or_default()),
                    p95_ms: ms(w.durations.percentile(0.95).unwrap_or_default()),
                })
                .collect(),
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
        if !m.steps.is_empty() {
            w.steps(&m.steps, true);
        }
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
    /// A `script` site's steps by name (empty for other kinds, and for a window that keeps
    /// counts only).
    pub steps: Vec<StepStats>,
}

/// One step's figures over a window or a report's period: the runs that had it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    pub name: Arc<str>,
    pub runs: u32,
    /// Runs that failed in this step.
    pub failed: u32,
    pub avg_ms: f64,
    pub max_ms: f64,
    /// Nearest rank, exact in a live window and from raw rows; within
    /// [`crate::history::RELATIVE_ERROR`] from rollups.
    pub p95_ms: f64,
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

    /// A script site's steps in one line for a terminal: `login 120 · order 7.1 ✗1` (each
    /// step's average as `ms` writes it; `✗n`: runs that failed in it). Control characters
    /// of a name (a plugin's: hostile) are shown as `�`, so a name cannot move the cursor or
    /// restyle the screen. Empty without steps.
    pub fn steps_summary(&self, ms: impl Fn(f64) -> String) -> String {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let name: String = s
                    .name
                    .chars()
                    .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                    .collect();
                let failed = if s.failed > 0 {
                    format!(" ✗{}", s.failed)
                } else {
                    String::new()
                };
                format!("{name} {}{failed}", ms(s.avg_ms))
            })
            .collect();
        parts.join(" · ")
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
    /// The steps of the samples that have some, oldest first.
    steps: VecDeque<Arc<[Step]>>,
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
            steps: VecDeque::new(),
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
        let steps: Option<Arc<[Step]>> = sample.has_steps.then(|| m.steps.as_slice().into());
        for w in &mut self.windows {
            w.add(&sample);
            if let Some(steps) = &steps {
                w.steps(steps, true);
            }
        }
        self.samples.push_back(sample);
        self.steps.extend(steps);
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
        let mut steps = self.steps.iter();
        for s in &self.samples {
            let these = if s.has_steps { steps.next() } else { None };
            for w in &mut self.windows {
                w.add(s);
                if let Some(these) = these {
                    w.steps(these, true);
                }
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
        let total_steps = self.steps.len();
        for w in &mut self.windows {
            let cutoff = now_us.saturating_sub(w.span_us);
            while w.len > 0 {
                let s = &self.samples[total - w.len];
                if s.at_us > cutoff {
                    break;
                }
                w.remove(s);
                if s.has_steps {
                    let i = total_steps - w.step_len;
                    w.steps(&self.steps[i], false);
                }
            }
        }
        let keep = self.windows.iter().map(|w| w.len).max().unwrap_or(0);
        while self.samples.len() > keep {
            if self.samples.pop_front().is_some_and(|s| s.has_steps) {
                self.steps.pop_front();
            }
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
