//! Building the rollups as measurements are written.
//!
//! The writer thread adds each measurement it inserts to [`Rollups`]: per (site, tier, cell) a
//! *delta*, what arrived since the last checkpoint. A checkpoint merges every delta into its
//! stored row and records the highest measurement rowid it covers (`rollup_state.raw_rowid`), in
//! the same transaction as the measurements written then. So the stored rollups are always
//! exactly the rollup of the raw rows up to that rowid: a crash (SIGKILL included) loses at most
//! the deltas, and at start the writer rolls up the raw rows after the mark again ([`Rollups::
//! catch_up`]), which is also how a store from before the rollups gets them. Between
//! checkpoints each batch keeps `rollup_state.tail_from_us`, the earliest probe time after the
//! mark, so a report can add the raw tail and be exact with no wait.
//!
//! Checkpoints are rare (`storage.rollup_every`, 10 minutes by default): writing rows costs far
//! more than adding to a delta, and a delta holds one cell per site and tier.

use super::cell::{self, Cell, Probe, Row};
use super::tier::{Retention, Tier};
use crate::measurement::{ErrorKind, Outcome};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Raw rows rolled up per transaction when catching up.
const CATCH_UP_CHUNK: usize = 100_000;
/// Deltas held before a checkpoint is forced (a burst of late or replayed probes).
const MAX_DELTAS: usize = 200_000;

/// The writer's rollup deltas since the last checkpoint.
#[derive(Debug)]
pub struct Rollups {
    deltas: HashMap<(i64, Tier, i64), Cell>,
    /// The highest measurement rowid in the deltas.
    last_rowid: Option<i64>,
    /// The earliest probe time in the deltas.
    tail_from_us: Option<i64>,
    last_checkpoint: Instant,
    /// The deltas were lost (a failed transaction): catch up from raw rows before adding.
    stale: bool,
}

impl Default for Rollups {
    fn default() -> Self {
        Self {
            deltas: HashMap::new(),
            last_rowid: None,
            tail_from_us: None,
            last_checkpoint: Instant::now(),
            stale: true,
        }
    }
}

impl Rollups {
    /// True until [`Rollups::catch_up`] ran on a connection (at start, and after a failed write).
    pub(crate) fn needs_catch_up(&self) -> bool {
        self.stale
    }

    /// Adds the measurement just inserted as `rowid` of site `site_id`.
    pub fn add(&mut self, site_id: i64, rowid: i64, p: &Probe) {
        for tier in Tier::ALL {
            self.deltas
                .entry((site_id, tier, tier.bucket(p.time_us)))
                .or_default()
                .add(p);
        }
        self.last_rowid = Some(self.last_rowid.map_or(rowid, |r| r.max(rowid)));
        self.tail_from_us = Some(self.tail_from_us.map_or(p.time_us, |t| t.min(p.time_us)));
    }

    /// At the end of a write transaction: a checkpoint when `every` has passed since the last
    /// (`Duration::ZERO`: now), else the tail mark. On an error the caller drops the transaction
    /// and calls [`Rollups::lost`].
    pub fn finish(&mut self, tx: &Transaction<'_>, every: Duration) -> rusqlite::Result<()> {
        if self.last_checkpoint.elapsed() >= every || self.deltas.len() > MAX_DELTAS {
            return self.checkpoint(tx);
        }
        if let Some(t) = self.tail_from_us {
            tx.prepare_cached(
                "UPDATE rollup_state SET tail_from_us = MIN(COALESCE(tail_from_us, ?1), ?1) WHERE id = 1",
            )?
            .execute([t])?;
        }
        Ok(())
    }

    /// Whether a checkpoint has anything to write.
    pub(crate) fn has_deltas(&self) -> bool {
        !self.deltas.is_empty()
    }

    /// The transaction that held the deltas' rows did not commit.
    pub fn lost(&mut self) {
        self.deltas.clear();
        self.last_rowid = None;
        self.tail_from_us = None;
        self.stale = true;
    }

    fn checkpoint(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut rows: BTreeMap<(Tier, i64, i64), Vec<(u16, Cell)>> = BTreeMap::new();
        for ((site, tier, bucket), cell) in self.deltas.drain() {
            let (row, offset) = tier.row_of(bucket);
            rows.entry((tier, site, row))
                .or_default()
                .push((offset, cell));
        }
        for ((tier, site, row), cells) in rows {
            let mut stored = load_row(tx, tier, site, row)?;
            for (offset, c) in &cells {
                cell::merge_into(&mut stored, *offset, c);
            }
            store_row(tx, tier, site, row, &stored)?;
        }
        if let Some(rowid) = self.last_rowid.take() {
            tx.prepare_cached(
                "UPDATE rollup_state SET raw_rowid = MAX(raw_rowid, ?1), tail_from_us = NULL WHERE id = 1",
            )?
            .execute([rowid])?;
        }
        self.tail_from_us = None;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Rolls up the raw rows after the stored mark (all of them in a store from before the
    /// rollups), checkpointing every `CATCH_UP_CHUNK` rows; returns how many.
    pub fn catch_up(&mut self, conn: &mut Connection) -> rusqlite::Result<u64> {
        self.deltas.clear();
        self.last_rowid = None;
        self.tail_from_us = None;
        conn.execute(
            "INSERT OR IGNORE INTO rollup_state (id, raw_rowid, tail_from_us) VALUES (1, 0, NULL)",
            [],
        )?;
        let mut done = 0u64;
        loop {
            let tx = conn.transaction()?;
            let mark: i64 =
                tx.query_row("SELECT raw_rowid FROM rollup_state WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
            let mut n = 0usize;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT rowid, site_id, {PROBE_COLUMNS} FROM measurements
                     WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
                ))?;
                let mut rows = stmt.query(params![mark, CATCH_UP_CHUNK as i64])?;
                while let Some(r) = rows.next()? {
                    let p = probe_from_row(r, 2)?;
                    self.add(r.get(1)?, r.get(0)?, &p);
                    n += 1;
                }
            }
            self.checkpoint(&tx)?;
            tx.execute(
                "UPDATE rollup_state SET tail_from_us = NULL WHERE id = 1",
                [],
            )?;
            tx.commit()?;
            done += n as u64;
            if n < CATCH_UP_CHUNK {
                break;
            }
            tracing::info!("rolled up {done} stored measurements so far");
        }
        self.stale = false;
        if done > 0 {
            tracing::info!("rolled up {done} stored measurements not yet in the rollups");
        }
        Ok(done)
    }
}

/// A stored row, empty when there is none. A row that does not decode is logged and treated as
/// empty (`sitewatch store rebuild-rollups` restores it where raw rows remain).
pub(crate) fn load_row(
    conn: &Connection,
    tier: Tier,
    site: i64,
    row: i64,
) -> rusqlite::Result<Row> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached(&format!("SELECT data FROM {} WHERE key = ?1", tier.table()))?
        .query_row([Tier::key(site, row)], |r| r.get(0))
        .optional()?;
    let valid = |row: Row| match row.iter().find(|c| i64::from(c.0) >= tier.per_row()) {
        Some(c) => Err(format!(
            "a cell at offset {} of a row of {}",
            c.0,
            tier.per_row()
        )),
        None => Ok(row),
    };
    Ok(match blob {
        None => Row::new(),
        Some(b) => cell::decode(&b).and_then(valid).unwrap_or_else(|e| {
            tracing::warn!(
                "{} row {row} of site id {site}: {e}; starting it afresh",
                tier.table()
            );
            Row::new()
        }),
    })
}

pub fn store_row(
    conn: &Connection,
    tier: Tier,
    site: i64,
    row: i64,
    cells: &Row,
) -> rusqlite::Result<()> {
    if cells.is_empty() {
        conn.prepare_cached(&format!("DELETE FROM {} WHERE key = ?1", tier.table()))?
            .execute([Tier::key(site, row)])?;
        return Ok(());
    }
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {} (key, data) VALUES (?1, ?2)",
        tier.table()
    ))?
    .execute(params![Tier::key(site, row), cell::encode(cells)])?;
    Ok(())
}

/// Deletes rollup rows wholly older than each tier's retention, site by site (short
/// statements, no long write lock); returns how many rows.
pub fn prune(conn: &Connection, retention: &Retention, now_us: i64) -> rusqlite::Result<usize> {
    let sites: Vec<i64> = conn
        .prepare_cached("SELECT id FROM sites")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    for tier in Tier::ALL {
        let keep = i64::try_from(retention.of(tier).as_micros()).unwrap_or(i64::MAX);
        // Rows whose last cell ends before the cutoff.
        let first_kept = tier.row_of(tier.bucket(now_us.saturating_sub(keep))).0;
        let mut stmt = conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE key >= ?1 AND key < ?2",
            tier.table()
        ))?;
        for &site in &sites {
            deleted += stmt.execute(params![Tier::key(site, 0), Tier::key(site, first_kept)])?;
        }
    }
    Ok(deleted)
}

/// What `sitewatch store rebuild-rollups` did or, with `check`, found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub sites: u64,
    /// Raw rows read.
    pub measurements: u64,
    /// Cells rebuilt (or checked).
    pub cells: u64,
    /// Cells whose stored content differed from the raw rows (replaced unless checking).
    pub differing: u64,
}

/// Rebuilds every cell that raw rows still cover, site by site, each in one transaction: from
/// the first raw row's cell on (that cell only when the raw rows hold all its probes: after
/// pruning its older part exists nowhere else). Only raw rows up to the checkpoint mark are
/// used; the writer adds the later ones itself, so this may run beside a running sitewatch.
/// With `check`, nothing is written: it counts the cells that differ.
pub fn rebuild(conn: &mut Connection, check: bool) -> rusqlite::Result<Rebuilt> {
    let started: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM rollup_state)", [], |r| {
        r.get(0)
    })?;
    // A store no sitewatch with rollups has written yet: nothing is rolled up, and no writer
    // will add anything behind us, so every raw row is ours to roll up.
    let unmarked = if started {
        None
    } else if check {
        Some(conn.query_row(
            "SELECT COALESCE(MAX(rowid), 0) FROM measurements",
            [],
            |r| r.get::<_, i64>(0),
        )?)
    } else {
        Rollups::default().catch_up(conn)?;
        None
    };
    let sites: Vec<i64> = conn
        .prepare("SELECT id FROM sites ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Rebuilt::default();
    for site in sites {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mark: i64 = match unmarked {
            Some(m) => m,
            None => tx.query_row("SELECT raw_rowid FROM rollup_state WHERE id = 1", [], |r| {
                r.get(0)
            })?,
        };
        let first: Option<i64> = tx.query_row(
            "SELECT MIN(time_us) FROM measurements WHERE site_id = ?1 AND rowid <= ?2",
            params![site, mark],
            |r| r.get(0),
        )?;
        let Some(first) = first else {
            continue;
        };
        out.sites += 1;
        // Every cell from the one holding the first raw row, from the raw rows.
        let mut fresh: HashMap<(Tier, i64), Cell> = HashMap::new();
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT {PROBE_COLUMNS} FROM measurements
                 WHERE site_id = ?1 AND rowid <= ?2 ORDER BY time_us"
            ))?;
            let mut rows = stmt.query(params![site, mark])?;
            while let Some(r) = rows.next()? {
                let p = probe_from_row(r, 0)?;
                out.measurements += 1;
                for tier in Tier::ALL {
                    fresh
                        .entry((tier, tier.bucket(p.time_us)))
                        .or_default()
                        .add(&p);
                }
            }
        }
        // The first cell may hold probes whose raw rows were pruned: when its stored cell
        // counts more probes than the raw rows left in it, it is kept as stored.
        let mut start = HashMap::new();
        for tier in Tier::ALL {
            let b = tier.bucket(first);
            let (row, offset) = tier.row_of(b);
            let stored = load_row(&tx, tier, site, row)?
                .into_iter()
                .find(|c| c.0 == offset)
                .map(|c| c.1.probes());
            let raw = fresh.get(&(tier, b)).map_or(0, Cell::probes);
            if stored.is_some_and(|n| n > raw) {
                fresh.remove(&(tier, b));
                start.insert(tier, b + 1);
            } else {
                start.insert(tier, b);
            }
        }
        for tier in Tier::ALL {
            let from = start[&tier];
            let (first_row, _) = tier.row_of(from);
            let stored_rows: Vec<i64> = tx
                .prepare_cached(&format!(
                    "SELECT key FROM {} WHERE key >= ?1 AND key < ?2",
                    tier.table()
                ))?
                .query_map(
                    params![Tier::key(site, first_row), Tier::key(site + 1, 0)],
                    |r| r.get(0).map(Tier::row_of_key),
                )?
                .collect::<Result<_, _>>()?;
            let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
            for row in stored_rows {
                rows.insert(row, load_row(&tx, tier, site, row)?);
            }
            // The rebuilt rows: stored cells before `from` kept, the rest from the raw rows.
            let mut rebuilt: BTreeMap<i64, Row> = BTreeMap::new();
            for (&row, cells) in &rows {
                let kept: Row = cells
                    .iter()
                    .filter(|(o, _)| row * tier.per_row() + i64::from(*o) < from)
                    .cloned()
                    .collect();
                rebuilt.insert(row, kept);
            }
            for ((_, b), c) in fresh.iter().filter(|((t, _), _)| *t == tier) {
                let (row, offset) = tier.row_of(*b);
                cell::merge_into(rebuilt.entry(row).or_default(), offset, c);
                out.cells += 1;
            }
            for (row, cells) in &rebuilt {
                let old = rows.get(row).map(Vec::as_slice).unwrap_or_default();
                let differing = count_differing(old, cells);
                out.differing += differing;
                if differing > 0 && !check {
                    store_row(&tx, tier, site, *row, cells)?;
                }
            }
        }
        if check {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
    }
    Ok(out)
}

/// Cells present in one row and not the other, or different.
fn count_differing(a: &[(u16, Cell)], b: &[(u16, Cell)]) -> u64 {
    let a: HashMap<u16, &Cell> = a.iter().map(|(o, c)| (*o, c)).collect();
    let b: HashMap<u16, &Cell> = b.iter().map(|(o, c)| (*o, c)).collect();
    let mut n = 0;
    for (o, c) in &a {
        if b.get(o) != Some(c) {
            n += 1;
        }
    }
    n + b.keys().filter(|o| !a.contains_key(o)).count() as u64
}
/// A probe from the stored columns `time_us, ok, status, error_kind, response_us, ttfb_us,
/// maintenance, steps` (starting at column `at`).
pub(crate) fn probe_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Probe> {
    let status: Option<u16> = r.get(at + 2)?;
    let kind = r
        .get::<_, Option<String>>(at + 3)?
        .map(|k| ErrorKind::parse(&k).unwrap_or(ErrorKind::Http));
    let us = |i: usize| -> rusqlite::Result<Option<u32>> {
        Ok(r.get::<_, Option<i64>>(i)?
            .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)))
    };
    Ok(Probe {
        time_us: r.get(at)?,
        ok: r.get(at + 1)?,
        outcome: Outcome::of(status, kind),
        response_us: us(at + 4)?,
        ttfb_us: us(at + 5)?,
        maintenance: r.get(at + 6)?,
        steps: crate::parse_steps(r.get::<_, Option<String>>(at + 7)?.as_deref()),
    })
}

/// The stored columns [`probe_from_row`] reads, in its order.
pub(crate) const PROBE_COLUMNS: &str =
    "time_us, ok, status, error_kind, response_us, ttfb_us, maintenance, steps";
