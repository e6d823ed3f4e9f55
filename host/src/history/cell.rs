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

impl Probe {
    /// A probe from the stored columns `time_us, ok, status, error_kind, response_us, ttfb_us,
    /// maintenance` (starting at column `at`), judged as [`Measurement::outcome`] does.
    pub fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        let status: Option<u16> = r.get(at + 2)?;
        let kind = r
            .get::<_, Option<String>>(at + 3)?
            .map(|k| ErrorKind::parse(&k).unwrap_or(ErrorKind::Http));
        let outcome = match (status, kind) {
            (Some(code), None | Some(ErrorKind::Status)) => Outcome::Status(code),
            (_, Some(kind)) => Outcome::Error(kind),
            (None, None) => Outcome::Error(ErrorKind::Http),
        };
        let us = |i: usize| -> rusqlite::Result<Option<u32>> {
            Ok(r.get::<_, Option<i64>>(i)?
                .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)))
        };
        Ok(Self {
            time_us: r.get(at)?,
            ok: r.get(at + 1)?,
            outcome,
            response_us: us(at + 4)?,
            ttfb_us: us(at + 5)?,
            maintenance: r.get(at + 6)?,
        })
    }
}

/// The stored columns [`Probe::from_row`] reads, in its order.
pub const PROBE_COLUMNS: &str =
    "time_us, ok, status, error_kind, response_us, ttfb_us, maintenance";

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

#[derive(Serialize, Deserialize)]
struct WireAggregate {
    probes: u32,
    up: u32,
    outcomes: Vec<(u16, u32)>,
    responses: u32,
    response_sum_us: u64,
    response_max_us: u32,
    ttfbs: u32,
    ttfb_sum_us: u64,
    ttfb_max_us: u32,
    response: WireSketch,
}

#[derive(Serialize, Deserialize)]
struct WireCell(u16, Option<WireAggregate>, Option<WireAggregate>);

fn to_wire(a: &Aggregate) -> Option<WireAggregate> {
    (!a.is_empty()).then(|| WireAggregate {
        probes: a.probes,
        up: a.up,
        outcomes: a.outcomes.clone(),
        responses: a.responses,
        response_sum_us: a.response_sum_us,
        response_max_us: a.response_max_us,
        ttfbs: a.ttfbs,
        ttfb_sum_us: a.ttfb_sum_us,
        ttfb_max_us: a.ttfb_max_us,
        response: a.response.to_wire(),
    })
}

fn from_wire(w: Option<WireAggregate>) -> Aggregate {
    let Some(w) = w else {
        return Aggregate::default();
    };
    Aggregate {
        probes: w.probes,
        up: w.up,
        outcomes: w.outcomes,
        responses: w.responses,
        response_sum_us: w.response_sum_us,
        response_max_us: w.response_max_us,
        ttfbs: w.ttfbs,
        ttfb_sum_us: w.ttfb_sum_us,
        ttfb_max_us: w.ttfb_max_us,
        response: Sketch::from_wire(w.response),
    }
}

/// A row as stored: postcard (varints) of its cells, deflated. A minute row holds an hour of
/// cells that differ little, so deflate shrinks it several times over.
pub fn encode(row: &Row) -> Vec<u8> {
    let wire: Vec<WireCell> = row
        .iter()
        .map(|(o, c)| WireCell(*o, to_wire(&c.normal), to_wire(&c.maintenance)))
        .collect();
    let plain = postcard::to_allocvec(&wire).expect("encoding to memory cannot fail");
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
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
    let wire: Vec<WireCell> =
        postcard::from_bytes(&plain).map_err(|e| format!("not a rollup row: {e}"))?;
    Ok(wire
        .into_iter()
        .map(|WireCell(o, n, m)| {
            (
                o,
                Cell {
                    normal: from_wire(n),
                    maintenance: from_wire(m),
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
