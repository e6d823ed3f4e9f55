//! Reports over stored history: which tier answers, and the figures per site and period.

use super::cell::{Aggregate, Cell};
use super::period::{By, Calendar, Period};
use super::rollups::load_row;
use super::rollups::{PROBE_COLUMNS, probe_from_row};
use super::tier::{Retention, Tier, days};
use crate::stats::WindowStats;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
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
    /// The site's own objective in percent (`report --sla` without a value: its `slo`), over
    /// the answer's.
    pub objective: Option<f64>,
}

impl SiteRow {
    /// The objective in percent this row is judged against: its own, else the report's.
    pub fn objective_of(&self, a: &Answer) -> Option<f64> {
        self.objective.or(a.sla)
    }
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
    /// The rollup tiers read, finest first (empty for raw rows).
    pub tiers: Vec<Tier>,
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
    Store(#[from] crate::StoreError),
}

impl From<rusqlite::Error> for HistoryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A run of cells of one tier, `first..=last` (bucket numbers), that a period reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tile {
    tier: Tier,
    first: i64,
    last: i64,
}

/// Tiles `[a, b)` (`b` `None`: up to now, the open cells included) with the coarsest cells that
/// lie wholly inside it and finer ones toward its edges, so a month is its days, and the hours
/// and minutes of a timeframe that starts mid-day fill its first day. A tier is used only where
/// it is kept (`cutoff`); where no finer tier reaches, the cell holding the edge is taken whole.
/// Returns where the tiles start and whether they cover `[a, b)` exactly.
fn tile(
    a: i64,
    b: Option<i64>,
    now: i64,
    tiers: &[Tier],
    cutoff: &dyn Fn(Tier) -> i64,
    out: &mut Vec<Tile>,
) -> (i64, bool) {
    let (tier, finer) = (tiers[0], &tiers[1..]);
    let c = tier.cell_us();
    let open = tier.bucket(now);
    if finer.first().is_none_or(|f| a < cutoff(*f)) {
        let first = a.div_euclid(c);
        let last = b.map_or(open, |b| (b - 1).div_euclid(c));
        if first <= last {
            out.push(Tile { tier, first, last });
        }
        let exact = a.rem_euclid(c) == 0 && b.is_none_or(|b| b.rem_euclid(c) == 0);
        return (first * c, exact);
    }
    let first = -(-a).div_euclid(c);
    let last = b.map_or(open, |b| b.div_euclid(c) - 1);
    if first > last {
        return tile(a, b, now, finer, cutoff, out);
    }
    out.push(Tile { tier, first, last });
    let (start, head) = if a < first * c {
        tile(a, Some(first * c), now, finer, cutoff, out)
    } else {
        (a, true)
    };
    let tail = match b {
        Some(b) if (last + 1) * c < b => tile((last + 1) * c, Some(b), now, finer, cutoff, out).1,
        _ => true,
    };
    (start, head && tail)
}

/// How a report is read: its periods and the cells each is made of.
#[derive(Debug, Clone)]
struct Plan {
    source: Source,
    from: DateTime<Utc>,
    exact_boundaries: bool,
    periods: Vec<Period>,
    tiles: Vec<Vec<Tile>>,
    tiers: Vec<Tier>,
}

fn plan(req: &Request, retention: &Retention, now: DateTime<Utc>) -> Result<Plan, HistoryError> {
    let asked = crate::clock::ago(now, req.since);
    let start = match req.by {
        Some(by) => req.calendar.period_of(by, asked).start,
        None => asked,
    };
    let span = (now - start).to_std().unwrap_or_default();
    let now_us = now.timestamp_micros();
    let whole = Period {
        start,
        end: now,
        first_day: start.date_naive(),
    };
    if req.by.is_none() && span <= retention.raw {
        return Ok(Plan {
            source: Source::Raw,
            from: start,
            exact_boundaries: true,
            periods: vec![whole],
            tiles: Vec::new(),
            tiers: Vec::new(),
        });
    }
    if span > retention.day {
        return Err(HistoryError::BeyondRetention {
            since: days(req.since),
            kept: retention.describe(),
        });
    }
    let cutoff = |t: Tier| {
        now_us.saturating_sub(i64::try_from(retention.of(t).as_micros()).unwrap_or(i64::MAX))
    };
    let coarse_first = [Tier::Day, Tier::Hour, Tier::Minute];
    let mut periods = match req.by {
        Some(by) => req.calendar.periods(by, start, now),
        None => vec![whole],
    };
    let mut tiles = Vec::new();
    let mut exact = true;
    let mut from = start;
    for (i, p) in periods.iter().enumerate() {
        let end = (p.end < now).then(|| p.end.timestamp_micros());
        let mut t = Vec::new();
        let (first, e) = tile(
            p.start.timestamp_micros(),
            end,
            now_us,
            &coarse_first,
            &cutoff,
            &mut t,
        );
        if i == 0 {
            from = crate::from_us(first);
        }
        exact &= e;
        tiles.push(t);
    }
    if req.by.is_none() {
        periods[0].start = from;
    }
    let mut tiers: Vec<Tier> = tiles.iter().flatten().map(|t| t.tier).collect();
    tiers.sort();
    tiers.dedup();
    Ok(Plan {
        source: Source::Tier(tiers.first().copied().unwrap_or(Tier::Day)),
        from,
        // A timeframe without periods starts where its cells do; only periods have boundaries.
        exact_boundaries: req.by.is_none() || exact,
        periods,
        tiles,
        tiers,
    })
}

/// Which source answers `req` at `now` (raw rows, or the finest rollup tier it reads), from
/// when, and whether period boundaries are exact. Without `--by`, raw rows answer while they
/// cover the timeframe; otherwise each period is read from the coarsest cells that lie wholly
/// in it, finer ones at its edges: the same figures as the finest tier, from far fewer cells.
pub fn choose(
    req: &Request,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<(Source, DateTime<Utc>, bool), HistoryError> {
    let p = plan(req, retention, now)?;
    Ok((p.source, p.from, p.exact_boundaries))
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
    store: &crate::Store,
    req: &Request,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Answer, HistoryError> {
    if let Some(s) = req.sla
        && !(s > 0.0 && s < 100.0)
    {
        return Err(HistoryError::BadSla(s));
    }
    let plan = plan(req, retention, now)?;
    let (source, from, exact_boundaries) = (plan.source, plan.from, plan.exact_boundaries);
    let conn = store.connect()?;
    let mut sites: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, name, url FROM sites ORDER BY name, url")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if let Some(wanted) = &req.site {
        sites.retain(|s| &s.1 == wanted);
    }
    let outages = incidents(&conn)?;
    drop(conn);
    let ctx = SiteContext {
        store,
        req,
        plan: &plan,
        outages: &outages,
        from,
        now,
    };
    // Sites are independent: read them on every core, each worker in its own read transaction
    // (the cells, the mark and the tail of a site are always one snapshot).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let rows: Vec<SiteRow> = if workers == 1 || sites.len() < 32 {
        ctx.sites(&sites)?
    } else {
        let chunk = sites.len().div_ceil(workers);
        std::thread::scope(|s| {
            let handles: Vec<_> = sites
                .chunks(chunk)
                .map(|part| s.spawn(|| ctx.sites(part)))
                .collect();
            let mut rows = Vec::new();
            for h in handles {
                rows.extend(h.join().expect("a report worker panicked")?);
            }
            Ok::<_, HistoryError>(rows)
        })?
    };
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
        tiers: plan.tiers,
    })
}

/// What reading one site's rows needs.
struct SiteContext<'a> {
    store: &'a crate::Store,
    req: &'a Request,
    plan: &'a Plan,
    outages: &'a HashMap<(String, String), Vec<Outage>>,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
}

impl SiteContext<'_> {
    /// The rows of `sites` (id, name, URL), in their order, in one read transaction.
    fn sites(&self, sites: &[(i64, String, String)]) -> Result<Vec<SiteRow>, HistoryError> {
        let mut conn = self.store.connect()?;
        let tx = conn.transaction()?;
        let tail = Tail::read(&tx)?;
        let mut rows = Vec::new();
        for site in sites {
            self.site(&tx, tail.as_ref(), site, &mut rows)?;
        }
        Ok(rows)
    }

    fn site(
        &self,
        tx: &Connection,
        tail: Option<&Tail>,
        (id, name, url): &(i64, String, String),
        rows: &mut Vec<SiteRow>,
    ) -> Result<(), HistoryError> {
        let (store, req, plan, from, now) = (self.store, self.req, self.plan, self.from, self.now);
        let (from_us, now_us) = (from.timestamp_micros(), now.timestamp_micros());
        let periods = &plan.periods;
        let (per_period, first_us) = match plan.source {
            Source::Raw => {
                let Some((stats, maintenance, first)) =
                    exact_stats(store, tx, name, url, from, now, req.include_maintenance)?
                else {
                    return Ok(());
                };
                (vec![(stats, maintenance)], first)
            }
            Source::Tier(_) => {
                let Some((per_period, first)) = read_site(tx, *id, plan, tail, from_us, now_us)?
                else {
                    return Ok(());
                };
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
        let watched_from = crate::from_us(first_us.max(from_us));
        let site: Arc<str> = name.as_str().into();
        let url_a: Arc<str> = url.as_str().into();
        let list = self
            .outages
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
                objective: None,
            });
        }
        Ok(())
    }
}

/// The exact figures of a site's raw rows in `[from, to]` (the code of the live views), with
/// the number of maintenance probes left out and the first probe's time; `None` without rows.
fn exact_stats(
    store: &crate::Store,
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

/// The checkpoint mark: the rollups hold the measurements up to `rowid`; those after it start
/// at `from_us`.
struct Tail {
    rowid: i64,
    from_us: i64,
}

impl Tail {
    /// `None` when every measurement is in the rollups.
    fn read(conn: &Connection) -> rusqlite::Result<Option<Self>> {
        Ok(conn
            .prepare_cached("SELECT raw_rowid, tail_from_us FROM rollup_state WHERE id = 1")?
            .query_row([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()?
            .and_then(|(rowid, from)| {
                Some(Self {
                    rowid,
                    from_us: from?,
                })
            }))
    }
}

/// One site's cells per period, as `plan` tiles them, with the measurements after the
/// checkpoint mark added (so the figures are exact to the last write), and where its first cell
/// with probes starts; `None` when it has no probes in the report.
fn read_site(
    conn: &Connection,
    site: i64,
    plan: &Plan,
    tail: Option<&Tail>,
    from: i64,
    to: i64,
) -> rusqlite::Result<Option<(Vec<Cell>, i64)>> {
    let mut per_period = vec![Cell::default(); plan.periods.len()];
    let mut first: Option<i64> = None;
    let mut rows: HashMap<(Tier, i64), super::cell::Row> = HashMap::new();
    for (i, tiles) in plan.tiles.iter().enumerate() {
        for t in tiles {
            let (first_row, last_row) = (t.tier.row_of(t.first).0, t.tier.row_of(t.last).0);
            for row in first_row..=last_row {
                let cells = match rows.entry((t.tier, row)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(load_row(conn, t.tier, site, row)?)
                    }
                };
                for (offset, c) in cells.iter() {
                    let b = row * t.tier.per_row() + i64::from(*offset);
                    if (t.first..=t.last).contains(&b) && c.probes() > 0 {
                        per_period[i].merge(c);
                        let at = b * t.tier.cell_us();
                        first = Some(first.map_or(at, |f| f.min(at)));
                    }
                }
            }
        }
    }
    if let Some(tail) = tail {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {PROBE_COLUMNS} FROM measurements
             WHERE site_id = ?1 AND time_us >= ?2 AND time_us <= ?3 AND rowid > ?4"
        ))?;
        let mut rows = stmt.query(params![site, tail.from_us.max(from), to, tail.rowid])?;
        while let Some(r) = rows.next()? {
            let p = probe_from_row(r, 0)?;
            let i = plan
                .periods
                .partition_point(|q| q.start.timestamp_micros() <= p.time_us);
            if i > 0 {
                per_period[i - 1].add(&p);
                first = Some(first.map_or(p.time_us, |f| f.min(p.time_us)));
            }
        }
    }
    Ok(first.map(|f| (per_period, f)))
}

/// Probes and failed probes of each cell of `tier` of the site `name` at `url` from `from_us`
/// on, as the rollups hold them (to their last checkpoint; probes in maintenance windows left
/// out): (the cell's start in seconds, probes, failed), oldest first. What a site's SLO state
/// restarts from.
pub fn probe_counts(
    conn: &Connection,
    name: &str,
    url: &str,
    tier: Tier,
    from_us: i64,
    now_us: i64,
) -> rusqlite::Result<Vec<(i64, u32, u32)>> {
    let site: Option<i64> = conn
        .prepare_cached("SELECT id FROM sites WHERE name = ?1 AND url = ?2")?
        .query_row(params![name, url], |r| r.get(0))
        .optional()?;
    let Some(site) = site else {
        return Ok(Vec::new());
    };
    let (first, last) = (tier.bucket(from_us), tier.bucket(now_us));
    let mut out = Vec::new();
    for row in tier.row_of(first).0..=tier.row_of(last).0 {
        for (offset, c) in load_row(conn, tier, site, row)? {
            let b = row * tier.per_row() + i64::from(offset);
            let n = &c.normal;
            if (first..=last).contains(&b) && n.probes > 0 {
                let start_s = b * tier.cell_us() / 1_000_000;
                out.push((start_s, n.probes, n.probes - n.up.min(n.probes)));
            }
        }
    }
    Ok(out)
}
