//! What a rollup keeps of the probes of one site in one minute, hour or day, and how a row of
//! them is stored.

use super::sketch::{Sketch, WireSketch};
use crate::measurement::{ErrorKind, Measurement, Outcome};
use crate::stats::{ResponseSummary, TtfbSummary, WindowStats};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The part of a measurement the rollups keep, from a live measurement or a stored row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// The probe's start (the stored `time_us`), microseconds since the epoch.
    pub time_us: i64,
    pub ok: bool,
    pub outcome: Outcome,
    pub response_us: Option<u32>,
    pub ttfb_us: Option<u32>,
    pub maintenance: bool,
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
    let plain = postcard::to_allocvec(&wire).expect("encoding to memory cannot fail");
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
    let wire: WireRow =
        postcard::from_bytes(&plain).map_err(|e| format!("not a rollup row: {e}"))?;
    let cells = wire.offsets.len();
    let bad = || "a rollup row whose columns do not add up".to_owned();
    let normal = wire.normal.unpack(cells).ok_or_else(bad)?;
    let maintenance = wire.maintenance.unpack(cells).ok_or_else(bad)?;
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
}
