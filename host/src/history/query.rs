//! Reports over stored history: which tier answers, and the figures per site and period.

use super::cell::{Aggregate, Cell, PROBE_COLUMNS, Probe};
use super::period::{By, Calendar, Period};
use super::rollups::load_row;
use super::tier::{Retention, Tier, days};
use crate::stats::WindowStats;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// What a history report asks for (the options of `sitewatch report` and `/api/v1/report`).
#[derive(Debug, Clone)]
pub struct Request {
    pub since: Duration,
    pub site: Option<String>,
    pub by: Option<By>,
    /// `--sla 99.9`: the objective in percent.
    pub sla: Option<f64>,
    pub calendar: Calendar,
    pub include_maintenance: bool,
}

/// Where a report's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Raw measurements: every figure exact.
    Raw,
    Tier(Tier),
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::Tier(t) => t.name(),
        }
    }

    /// The relative error of percentiles (`None`: exact).
    pub fn percentile_error(self) -> Option<f64> {
        match self {
            Source::Raw => None,
            Source::Tier(_) => Some(super::sketch::RELATIVE_ERROR),
        }
    }
}

/// The figures of one site over one period (or the whole report when `period` is `None`).
#[derive(Debug, Clone)]
pub struct SiteRow {
    pub site: Arc<str>,
    pub url: Arc<str>,
    pub period: Option<Period>,
    pub stats: WindowStats,
    /// Probes in maintenance windows left out of `stats` (0 when they are counted).
    pub maintenance_probes: u32,
    /// Time in incidents (from a down alert to its recovery, or to now), within the period.
    pub downtime: Duration,
    /// Incidents overlapping the period.
    pub incidents: u32,
    /// The longest of them, whole.
    pub longest_incident: Duration,
    /// The site's first probe in the report (to its cell): an SLA is judged over the time the
    /// site was watched, not before it was added.
    pub watched_from: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub source: Source,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub by: Option<By>,
    pub calendar: Calendar,
    /// False when the tier's cells do not line up with the periods (a zone whose offset is not a
    /// whole number of the tier's cells): each cell then counts in the period it starts in.
    pub exact_boundaries: bool,
    pub sla: Option<f64>,
    pub rows: Vec<SiteRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "--since {since} reaches back further than the store keeps anything ({kept}; storage.retention)"
    )]
    BeyondRetention { since: String, kept: String },
    #[error("--sla {0}: give the objective in percent, above 0 and below 100 (e.g. 99.9)")]
    BadSla(f64),
    #[error("no data for site \"{site}\" in the last {since}")]
    NoSite { site: String, since: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<rusqlite::Error> for HistoryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Which source answers `req` at `now`, from when, and whether period boundaries are exact.
/// Without `--by`: the finest tier that covers the period (raw rows when they do). With `--by`:
/// periods are whole (the first starts at the period holding `now - since`), and of the tiers
/// that cover them and line up with their boundaries the coarsest is read: it gives the same
/// figures as any finer one, from fewer cells.
pub fn choose(
    req: &Request,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<(Source, DateTime<Utc>, bool), HistoryError> {
    let asked = now - TimeDelta::from_std(req.since).unwrap_or(TimeDelta::MAX);
    let start = match req.by {
        Some(by) => req.calendar.period_of(by, asked).start,
        None => asked,
    };
    let span = (now - start).to_std().unwrap_or_default();
    if req.by.is_none() && span <= retention.raw {
        return Ok((Source::Raw, start, true));
    }
    let covering: Vec<Tier> = Tier::ALL
        .into_iter()
        .filter(|t| retention.of(*t) >= span)
        .collect();
    let Some(&finest) = covering.first() else {
        return Err(HistoryError::BeyondRetention {
            since: days(req.since),
            kept: retention.describe(),
        });
    };
    let floor = |t: Tier, at: DateTime<Utc>| {
        crate::store::from_us(t.bucket(at.timestamp_micros()) * t.cell_us())
    };
    match req.by {
        None => Ok((Source::Tier(finest), floor(finest, start), true)),
        Some(by) => {
            let periods = req.calendar.periods(by, start, now);
            let aligned = |t: Tier| {
                periods.iter().all(|p| {
                    p.start.timestamp_micros() % t.cell_us() == 0
                        && p.end.timestamp_micros() % t.cell_us() == 0
                })
            };
            match covering.iter().rev().find(|t| aligned(**t)) {
                Some(&t) => Ok((Source::Tier(t), start, true)),
                None => Ok((Source::Tier(finest), floor(finest, start), false)),
            }
        }
    }
}

/// An outage: from a down alert to its recovery (`None`: still down), microseconds.
type Outage = (i64, Option<i64>);

/// Outages per site (name, URL), oldest first.
fn incidents(conn: &Connection) -> rusqlite::Result<HashMap<(String, String), Vec<Outage>>> {
    let mut out: HashMap<(String, String), Vec<Outage>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT site, url, kind, time_us, down_since_us FROM alerts
         WHERE kind IN ('down', 'recovered') ORDER BY time_us, id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key = (r.get::<_, String>(0)?, r.get::<_, String>(1)?);
        let kind: String = r.get(2)?;
        let time: i64 = r.get(3)?;
        let list = out.entry(key).or_default();
        if kind == "down" {
            if list.last().is_none_or(|l| l.1.is_some()) {
                list.push((time, None));
            }
        } else if let Some(open) = list.last_mut().filter(|l| l.1.is_none()) {
            open.1 = Some(time);
        } else if let Some(since) = r.get::<_, Option<i64>>(4)? {
            // A recovery whose down alert is older than the alerts kept.
            list.push((since, Some(time)));
        }
    }
    Ok(out)
}

/// Downtime within `[from, to)`, the incidents overlapping it and the longest of them.
fn outage_figures(list: &[Outage], from: i64, to: i64, now: i64) -> (Duration, u32, Duration) {
    let mut down = 0i64;
    let mut count = 0;
    let mut longest = 0i64;
    for &(start, end) in list {
        let end = end.unwrap_or(now);
        let (a, b) = (start.max(from), end.min(to));
        if b > a || (start >= from && start < to) {
            count += 1;
            down += (b - a).max(0);
            longest = longest.max(end - start);
        }
    }
    let d = |v: i64| Duration::from_micros(v.max(0) as u64);
    (d(down), count, d(longest))
}

/// The report `req` asks for, at `now`.
pub fn report(
    store: &crate::store::Store,
    req: &Request,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Answer, HistoryError> {
    if let Some(s) = req.sla
        && !(s > 0.0 && s < 100.0)
    {
        return Err(HistoryError::BadSla(s));
    }
    let (source, from, exact_boundaries) = choose(req, retention, now)?;
    let mut conn = store.connect()?;
    // One read transaction: the cells, the checkpoint mark and the raw tail are one snapshot.
    let tx = conn.transaction()?;
    let mut sites: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, name, url FROM sites ORDER BY name, url")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if let Some(wanted) = &req.site {
        sites.retain(|s| &s.1 == wanted);
    }
    let outages = incidents(&tx)?;
    let (from_us, now_us) = (from.timestamp_micros(), now.timestamp_micros());
    let periods: Vec<Period> = match req.by {
        Some(by) => req.calendar.periods(by, from, now),
        None => vec![Period {
            start: from,
            end: now,
            first_day: from.date_naive(),
        }],
    };
    let mut rows = Vec::new();
    for (id, name, url) in sites {
        let (per_period, first_us) = match source {
            Source::Raw => {
                let Some((stats, maintenance, first)) =
                    exact_stats(store, &tx, &name, &url, from, now, req.include_maintenance)?
                else {
                    continue;
                };
                (vec![(stats, maintenance)], first)
            }
            Source::Tier(t) => {
                let cells = tier_cells(&tx, t, id, from_us, now_us)?;
                let Some(first) = cells.first().map(|c| c.0 * t.cell_us()) else {
                    continue;
                };
                let mut per_period: Vec<Cell> = vec![Cell::default(); periods.len()];
                for (bucket, c) in &cells {
                    let t = bucket * t.cell_us();
                    let i = periods.partition_point(|p| p.start.timestamp_micros() <= t);
                    if i > 0 {
                        per_period[i - 1].merge(c);
                    }
                }
                let figures = per_period
                    .into_iter()
                    .map(|c| {
                        let mut agg: Aggregate = c.normal;
                        if req.include_maintenance {
                            agg.merge(&c.maintenance);
                            (agg.stats(), 0)
                        } else {
                            (agg.stats(), c.maintenance.probes)
                        }
                    })
                    .collect();
                (figures, first)
            }
        };
        let watched_from = crate::store::from_us(first_us.max(from_us));
        let site: Arc<str> = name.as_str().into();
        let url_a: Arc<str> = url.as_str().into();
        let list = outages
            .get(&(name.clone(), url.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (p, (stats, maintenance_probes)) in periods.iter().zip(per_period) {
            let end = p.end.timestamp_micros().min(now_us);
            let (downtime, incidents, longest_incident) =
                outage_figures(list, p.start.timestamp_micros(), end, now_us);
            rows.push(SiteRow {
                site: Arc::clone(&site),
                url: Arc::clone(&url_a),
                period: req.by.map(|_| *p),
                stats,
                maintenance_probes,
                downtime,
                incidents,
                longest_incident,
                watched_from,
            });
        }
    }
    if rows.is_empty()
        && let Some(site) = &req.site
    {
        return Err(HistoryError::NoSite {
            site: site.clone(),
            since: days(req.since),
        });
    }
    Ok(Answer {
        source,
        from,
        to: now,
        by: req.by,
        calendar: req.calendar,
        exact_boundaries,
        sla: req.sla,
        rows,
    })
}

/// The exact figures of a site's raw rows in `[from, to]` (the code of the live views), with
/// the number of maintenance probes left out and the first probe's time; `None` without rows.
fn exact_stats(
    store: &crate::store::Store,
    conn: &Connection,
    site: &str,
    url: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    include_maintenance: bool,
) -> Result<Option<(WindowStats, u32, i64)>, HistoryError> {
    let mut ms = store.measurements(conn, site, url, from)?;
    ms.retain(|m| m.time <= to);
    let Some(first) = ms.first().map(|m| m.time.timestamp_micros()) else {
        return Ok(None);
    };
    let before = ms.len();
    if !include_maintenance {
        ms.retain(|m| !m.maintenance);
    }
    Ok(Some((
        crate::stats::summarize(&ms),
        (before - ms.len()) as u32,
        first,
    )))
}

/// A site's cells of `tier` from the one holding `from` to the one holding `to`, with the raw
/// rows after the last checkpoint added (so the answer is exact to the last write).
fn tier_cells(
    conn: &Connection,
    tier: Tier,
    site: i64,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(i64, Cell)>> {
    let (first, last) = (tier.bucket(from), tier.bucket(to));
    let mut cells: BTreeMap<i64, Cell> = BTreeMap::new();
    let rows: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT row FROM {} WHERE site_id = ?1 AND row >= ?2 AND row <= ?3",
            tier.table()
        ))?
        .query_map(
            params![site, tier.row_of(first).0, tier.row_of(last).0],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    for row in rows {
        for (offset, c) in load_row(conn, tier, site, row)? {
            let b = row * tier.per_row() + i64::from(offset);
            if (first..=last).contains(&b) {
                cells.insert(b, c);
            }
        }
    }
    let mark: Option<(i64, Option<i64>)> = conn
        .prepare_cached("SELECT raw_rowid, tail_from_us FROM rollup_state WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((rowid, Some(tail_from))) = mark {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {PROBE_COLUMNS} FROM measurements
             WHERE site_id = ?1 AND time_us >= ?2 AND time_us <= ?3 AND rowid > ?4"
        ))?;
        let mut rows = stmt.query(params![
            site,
            tail_from.max(first * tier.cell_us()),
            to,
            rowid
        ])?;
        while let Some(r) = rows.next()? {
            let p = Probe::from_row(r, 0)?;
            cells.entry(tier.bucket(p.time_us)).or_default().add(&p);
        }
    }
    Ok(cells.into_iter().collect())
}
