//! What a rollup keeps of the probes of one site in one minute, hour or day, and how a row of
//! them is stored.

use super::sketch::{Sketch, WireSketch};
use crate::measurement::{ErrorKind, Measurement, Outcome, Step};
use crate::stats::{MAX_STEP_NAMES, ResponseSummary, StepStats, TtfbSummary, WindowStats};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::Arc;

/// The part of a measurement the rollups keep, from a live measurement or a stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The probe's start (the stored `time_us`), microseconds since the epoch.
    pub time_us: i64,
    pub ok: bool,
    pub outcome: Outcome,
    pub response_us: Option<u32>,
    pub ttfb_us: Option<u32>,
    pub maintenance: bool,
    /// A `script` site's steps (empty for other kinds).
    pub steps: Vec<Step>,
}

fn micros(d: Option<std::time::Duration>) -> Option<u32> {
    d.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
}

impl From<&Measurement> for Probe {
    fn from(m: &Measurement) -> Self {
        Self {
            time_us: m.time.timestamp_micros(),
            ok: m.ok,
            outcome: m.outcome(),
            response_us: micros(m.response_time),
            ttfb_us: micros(m.ttfb),
            maintenance: m.maintenance,
            steps: m.steps.clone(),
        }
    }
}

/// Counts, sums and maxima are exact; percentiles come from the sketch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    pub probes: u32,
    pub up: u32,
    /// (outcome code, count) in code order: a status code, or 1000 + the error kind's index.
    outcomes: Vec<(u16, u32)>,
    responses: u32,
    response_sum_us: u64,
    response_max_us: u32,
    ttfbs: u32,
    ttfb_sum_us: u64,
    ttfb_max_us: u32,
    response: Sketch,
    /// A `script` site's steps by name, at most [`MAX_STEP_NAMES`].
    steps: Vec<StepAggregate>,
}

/// One step's runs in a cell: counts, sum and maximum exact, the p95 from the sketch.
#[derive(Debug, Clone, PartialEq)]
struct StepAggregate {
    name: Arc<str>,
    runs: u32,
    failed: u32,
    sum_us: u64,
    max_us: u32,
    durations: Sketch,
}

impl StepAggregate {
    fn new(name: &Arc<str>) -> Self {
        Self {
            name: Arc::clone(name),
            runs: 0,
            failed: 0,
            sum_us: 0,
            max_us: 0,
            durations: Sketch::default(),
        }
    }

    fn merge(&mut self, o: &StepAggregate) {
        self.runs += o.runs;
        self.failed += o.failed;
        self.sum_us += o.sum_us;
        self.max_us = self.max_us.max(o.max_us);
        self.durations.merge(&o.durations);
    }
}

/// The aggregate of step `name` in `steps` (kept in name order), made when there is room.
fn step_slot<'a>(
    steps: &'a mut Vec<StepAggregate>,
    name: &Arc<str>,
) -> Option<&'a mut StepAggregate> {
    let i = match steps.binary_search_by(|a| (*a.name).cmp(name)) {
        Ok(i) => i,
        Err(_) if steps.len() >= MAX_STEP_NAMES => return None,
        Err(i) => {
            steps.insert(i, StepAggregate::new(name));
            i
        }
    };
    Some(&mut steps[i])
}

fn outcome_code(o: Outcome) -> u16 {
    match o {
        Outcome::Status(c) => c.min(999),
        Outcome::Error(k) => 1000 + ErrorKind::ALL.iter().position(|x| *x == k).unwrap_or(0) as u16,
    }
}

fn code_outcome(c: u16) -> Outcome {
    match c.checked_sub(1000) {
        Some(i) => Outcome::Error(
            ErrorKind::ALL
                .get(usize::from(i))
                .copied()
                .unwrap_or(ErrorKind::Http),
        ),
        None => Outcome::Status(c),
    }
}

impl Aggregate {
    pub fn add(&mut self, p: &Probe) {
        self.probes += 1;
        self.up += u32::from(p.ok);
        let code = outcome_code(p.outcome);
        match self.outcomes.binary_search_by_key(&code, |o| o.0) {
            Ok(i) => self.outcomes[i].1 += 1,
            Err(i) => self.outcomes.insert(i, (code, 1)),
        }
        if let Some(r) = p.response_us {
            self.responses += 1;
            self.response_sum_us += u64::from(r);
            self.response_max_us = self.response_max_us.max(r);
            self.response.add(r);
        }
        if let Some(t) = p.ttfb_us {
            self.ttfbs += 1;
            self.ttfb_sum_us += u64::from(t);
            self.ttfb_max_us = self.ttfb_max_us.max(t);
        }
        for step in &p.steps {
            if let Some(a) = step_slot(&mut self.steps, &step.name) {
                let us = step.micros();
                a.runs += 1;
                a.failed += u32::from(step.failed);
                a.sum_us += u64::from(us);
                a.max_us = a.max_us.max(us);
                a.durations.add(us);
            }
        }
    }

    pub fn merge(&mut self, o: &Aggregate) {
        self.probes += o.probes;
        self.up += o.up;
        for &(code, n) in &o.outcomes {
            match self.outcomes.binary_search_by_key(&code, |x| x.0) {
                Ok(i) => self.outcomes[i].1 += n,
                Err(i) => self.outcomes.insert(i, (code, n)),
            }
        }
        self.responses += o.responses;
        self.response_sum_us += o.response_sum_us;
        self.response_max_us = self.response_max_us.max(o.response_max_us);
        self.ttfbs += o.ttfbs;
        self.ttfb_sum_us += o.ttfb_sum_us;
        self.ttfb_max_us = self.ttfb_max_us.max(o.ttfb_max_us);
        self.response.merge(&o.response);
        for step in &o.steps {
            if let Some(a) = step_slot(&mut self.steps, &step.name) {
                a.merge(step);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.probes == 0
    }

    /// The figures of a live window: availability, averages and maxima exactly as the live views
    /// compute them; p50/p95/p99 within [`super::sketch::RELATIVE_ERROR`] (never above the
    /// exact maximum).
    pub fn stats(&self) -> WindowStats {
        let ms = |us: u32| f64::from(us) / 1000.0;
        let avg_ms = |sum: u64, n: u32| (sum as f64 / f64::from(n)).round() / 1000.0;
        let pct = |p: f64| {
            let v = self.response.percentile(p).unwrap_or_default();
            v.round().min(f64::from(self.response_max_us)) / 1000.0
        };
        WindowStats {
            checks: self.probes,
            ok: self.up,
            availability: (self.probes > 0).then(|| f64::from(self.up) / f64::from(self.probes)),
            response_ms: (self.responses > 0).then(|| ResponseSummary {
                avg: avg_ms(self.response_sum_us, self.responses),
                max: ms(self.response_max_us),
                p50: pct(0.50),
                p95: pct(0.95),
                p99: pct(0.99),
            }),
            ttfb_ms: (self.ttfbs > 0).then(|| TtfbSummary {
                avg: avg_ms(self.ttfb_sum_us, self.ttfbs),
                max: ms(self.ttfb_max_us),
            }),
            status_codes: self
                .outcomes
                .iter()
                .map(|&(c, n)| (code_outcome(c).label(), n))
                .collect(),
            steps: self
                .steps
                .iter()
                .map(|a| StepStats {
                    name: Arc::clone(&a.name),
                    runs: a.runs,
                    failed: a.failed,
                    avg_ms: avg_ms(a.sum_us, a.runs),
                    max_ms: ms(a.max_us),
                    p95_ms: a
                        .durations
                        .percentile(0.95)
                        .unwrap_or_default()
                        .round()
                        .min(f64::from(a.max_us))
                        / 1000.0,
                })
                .collect(),
        }
    }
}

/// One minute, hour or day of one site: probes outside maintenance windows and those inside,
/// apart, so a report can leave either out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub normal: Aggregate,
    pub maintenance: Aggregate,
}

impl Cell {
    /// Probes in and out of maintenance windows.
    pub fn probes(&self) -> u32 {
        self.normal.probes + self.maintenance.probes
    }

    pub fn add(&mut self, p: &Probe) {
        if p.maintenance {
            self.maintenance.add(p)
        } else {
            self.normal.add(p)
        }
    }

    pub fn merge(&mut self, o: &Cell) {
        self.normal.merge(&o.normal);
        self.maintenance.merge(&o.maintenance);
    }
}

/// The cells of one stored row, by their offset in the row's span.
pub type Row = Vec<(u16, Cell)>;

/// A row's aggregates (one side: out of or in maintenance) stored column by column: each
/// column holds similar small numbers, which deflate shrinks far better than cells one after
/// another.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Columns {
    /// Whether each cell of the row has this side.
    present: Vec<bool>,
    probes: Vec<u32>,
    up: Vec<u32>,
    outcomes: Vec<Vec<(u16, u32)>>,
    responses: Vec<u32>,
    response_sum_us: Vec<u64>,
    response_max_us: Vec<u32>,
    ttfbs: Vec<u32>,
    ttfb_sum_us: Vec<u64>,
    ttfb_max_us: Vec<u32>,
    response: Vec<WireSketch>,
}

impl Columns {
    fn push(&mut self, a: &Aggregate) {
        self.present.push(!a.is_empty());
        if a.is_empty() {
            return;
        }
        self.probes.push(a.probes);
        self.up.push(a.up);
        self.outcomes.push(a.outcomes.clone());
        self.responses.push(a.responses);
        self.response_sum_us.push(a.response_sum_us);
        self.response_max_us.push(a.response_max_us);
        self.ttfbs.push(a.ttfbs);
        self.ttfb_sum_us.push(a.ttfb_sum_us);
        self.ttfb_max_us.push(a.ttfb_max_us);
        self.response.push(a.response.to_wire());
    }

    /// The aggregates back, one per cell; `None` when the columns do not add up.
    fn unpack(self, cells: usize) -> Option<Vec<Aggregate>> {
        let n = self.present.iter().filter(|p| **p).count();
        let lens = [
            self.probes.len(),
            self.up.len(),
            self.outcomes.len(),
            self.responses.len(),
            self.response_sum_us.len(),
            self.response_max_us.len(),
            self.ttfbs.len(),
            self.ttfb_sum_us.len(),
            self.ttfb_max_us.len(),
            self.response.len(),
        ];
        if self.present.len() != cells || lens.iter().any(|l| *l != n) {
            return None;
        }
        let mut outcomes = self.outcomes.into_iter();
        let mut sketches = self.response.into_iter();
        let mut k = 0;
        let mut out = Vec::with_capacity(cells);
        for present in self.present {
            if !present {
                out.push(Aggregate::default());
                continue;
            }
            out.push(Aggregate {
                probes: self.probes[k],
                up: self.up[k],
                outcomes: outcomes.next()?,
                responses: self.responses[k],
                response_sum_us: self.response_sum_us[k],
                response_max_us: self.response_max_us[k],
                ttfbs: self.ttfbs[k],
                ttfb_sum_us: self.ttfb_sum_us[k],
                ttfb_max_us: self.ttfb_max_us[k],
                response: Sketch::from_wire(sketches.next()?),
                steps: Vec::new(),
            });
            k += 1;
        }
        Some(out)
    }
}

#[derive(Serialize, Deserialize)]
struct WireRow {
    offsets: Vec<u16>,
    normal: Columns,
    maintenance: Columns,
}

/// A step's aggregate as stored.
#[derive(Debug, Serialize, Deserialize)]
struct WireStep {
    name: String,
    runs: u32,
    failed: u32,
    sum_us: u64,
    max_us: u32,
    durations: WireSketch,
}

/// The steps of a row's cells (normal, then maintenance, per cell), stored after the
/// [`WireRow`] and only when a cell has steps: a row written before steps existed, or of a
/// site of another kind, ends with its `WireRow`, and reads back without steps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WireSteps(Vec<(Vec<WireStep>, Vec<WireStep>)>);

fn wire_steps(steps: &[StepAggregate]) -> Vec<WireStep> {
    steps
        .iter()
        .map(|a| WireStep {
            name: a.name.to_string(),
            runs: a.runs,
            failed: a.failed,
            sum_us: a.sum_us,
            max_us: a.max_us,
            durations: a.durations.to_wire(),
        })
        .collect()
}

fn unwire_steps(steps: Vec<WireStep>) -> Vec<StepAggregate> {
    let mut out: Vec<StepAggregate> = steps
        .into_iter()
        .take(MAX_STEP_NAMES)
        .map(|w| StepAggregate {
            name: w.name.into(),
            runs: w.runs,
            failed: w.failed,
            sum_us: w.sum_us,
            max_us: w.max_us,
            durations: Sketch::from_wire(w.durations),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// A row as stored: postcard (varints) of its cells column by column, deflated.
pub fn encode(row: &Row) -> Vec<u8> {
    let mut wire = WireRow {
        offsets: row.iter().map(|c| c.0).collect(),
        normal: Columns::default(),
        maintenance: Columns::default(),
    };
    for (_, c) in row {
        wire.normal.push(&c.normal);
        wire.maintenance.push(&c.maintenance);
    }
    let mut plain = postcard::to_allocvec(&wire).expect("encoding to memory cannot fail");
    if row
        .iter()
        .any(|(_, c)| !c.normal.steps.is_empty() || !c.maintenance.steps.is_empty())
    {
        let steps = WireSteps(
            row.iter()
                .map(|(_, c)| {
                    (
                        wire_steps(&c.normal.steps),
                        wire_steps(&c.maintenance.steps),
                    )
                })
                .collect(),
        );
        plain.extend(postcard::to_allocvec(&steps).expect("encoding to memory cannot fail"));
    }
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&plain)
        .expect("deflating to memory cannot fail");
    z.finish().expect("deflating to memory cannot fail")
}

/// A stored row back; an error names what is wrong with the blob.
pub fn decode(blob: &[u8]) -> Result<Row, String> {
    let mut plain = Vec::new();
    flate2::read::DeflateDecoder::new(blob)
        .read_to_end(&mut plain)
        .map_err(|e| format!("not a deflated rollup row: {e}"))?;
    let (wire, rest): (WireRow, _) =
        postcard::take_from_bytes(&plain).map_err(|e| format!("not a rollup row: {e}"))?;
    let cells = wire.offsets.len();
    let bad = || "a rollup row whose columns do not add up".to_owned();
    let mut normal = wire.normal.unpack(cells).ok_or_else(bad)?;
    let mut maintenance = wire.maintenance.unpack(cells).ok_or_else(bad)?;
    if !rest.is_empty() {
        let steps: WireSteps =
            postcard::from_bytes(rest).map_err(|e| format!("not a rollup row's steps: {e}"))?;
        if steps.0.len() != cells {
            return Err("a rollup row whose steps do not add up".to_owned());
        }
        for ((n, m), (sn, sm)) in normal.iter_mut().zip(&mut maintenance).zip(steps.0) {
            n.steps = unwire_steps(sn);
            m.steps = unwire_steps(sm);
        }
    }
    Ok(wire
        .offsets
        .into_iter()
        .zip(normal.into_iter().zip(maintenance))
        .map(|(o, (normal, maintenance))| {
            (
                o,
                Cell {
                    normal,
                    maintenance,
                },
            )
        })
        .collect())
}

/// Adds `cell` at `offset` of `row` (kept in offset order).
pub fn merge_into(row: &mut Row, offset: u16, cell: &Cell) {
    match row.binary_search_by_key(&offset, |c| c.0) {
        Ok(i) => row[i].1.merge(cell),
        Err(i) => row.insert(i, (offset, cell.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_and_a_damaged_one_is_an_error() {
        let probe = |t: i64, ok: bool, maintenance: bool| Probe {
            time_us: t,
            ok,
            outcome: if ok {
                Outcome::Status(200)
            } else {
                Outcome::Error(ErrorKind::Timeout)
            },
            response_us: ok.then_some(1200 + t as u32),
            ttfb_us: ok.then_some(400),
            maintenance,
            steps: Vec::new(),
        };
        let mut row = Row::new();
        for (offset, n) in [(0u16, 3), (7, 1), (59, 2)] {
            let mut c = Cell::default();
            for k in 0..n {
                c.add(&probe(k, k != 1, offset == 7));
            }
            row.push((offset, c));
        }
        assert_eq!(decode(&encode(&row)).unwrap(), row);
        assert!(decode(b"\x00\xff").is_err());
        // Valid deflate of something that is not a row.
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&[3, 1, 2, 3, 0, 0]).unwrap();
        assert!(decode(&z.finish().unwrap()).is_err());
    }

    fn step(name: &str, ms: u64, failed: bool) -> Step {
        Step {
            name: name.into(),
            duration: std::time::Duration::from_millis(ms),
            requests: 1,
            failed,
        }
    }

    fn scripted(t: i64, steps: Vec<Step>) -> Probe {
        Probe {
            time_us: t,
            ok: !steps.iter().any(|s| s.failed),
            outcome: Outcome::Status(200),
            response_us: Some(1000),
            ttfb_us: None,
            maintenance: false,
            steps,
        }
    }

    /// Steps are kept per name (count, failures, average, maximum, p95) through a merge and
    /// the stored form; a row of a site without steps is stored as before steps existed, so
    /// rows written by an older sitewatch read back.
    #[test]
    fn steps_roll_up_and_round_trip_and_rows_without_steps_keep_the_old_form() {
        let mut a = Cell::default();
        let mut b = Cell::default();
        for k in 0..10u64 {
            let c = if k < 5 { &mut a } else { &mut b };
            c.add(&scripted(
                k as i64,
                vec![
                    step("login", 100 + k * 10, false),
                    step("order", 20, k == 9),
                ],
            ));
        }
        a.merge(&b);
        let stats = a.normal.stats();
        let login = &stats.steps[0];
        assert_eq!(&*login.name, "login");
        assert_eq!((login.runs, login.failed), (10, 0));
        assert_eq!(login.avg_ms, 145.0);
        assert_eq!(login.max_ms, 190.0);
        assert!((login.p95_ms - 190.0).abs() <= 190.0 * crate::history::RELATIVE_ERROR);
        let order = &stats.steps[1];
        assert_eq!((&*order.name, order.runs, order.failed), ("order", 10, 1));
        assert_eq!((order.avg_ms, order.max_ms), (20.0, 20.0));

        let row: Row = vec![(3, a.clone()), (4, Cell::default())];
        assert_eq!(decode(&encode(&row)).unwrap(), row);

        // The old form: the columns alone, with nothing after them.
        let mut plain_row = Cell::default();
        plain_row.add(&scripted(1, Vec::new()));
        let old: Row = vec![(0, plain_row)];
        let blob = encode(&old);
        let mut z = flate2::read::DeflateDecoder::new(&blob[..]);
        let mut plain = Vec::new();
        z.read_to_end(&mut plain).unwrap();
        let (_, rest): (WireRow, _) = postcard::take_from_bytes(&plain).unwrap();
        assert!(rest.is_empty());
        assert_eq!(decode(&encode(&old)).unwrap(), old);
    }

    /// A scenario naming ever new steps does not grow a cell without bound.
    #[test]
    fn a_cell_keeps_at_most_the_cap_of_step_names() {
        let mut c = Cell::default();
        for k in 0..(MAX_STEP_NAMES as i64 + 10) {
            c.add(&scripted(k, vec![step(&format!("s{k:03}"), 1, false)]));
        }
        assert_eq!(c.normal.stats().steps.len(), MAX_STEP_NAMES);
    }
}
