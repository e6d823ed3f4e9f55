//! Salvage: copies what can still be read from a damaged store into a fresh one. A damaged page
//! makes every statement that reads it fail (`SQLITE_CORRUPT`), so each table is copied in
//! chunks of rows in rowid order: a chunk that fails is split until the unreadable rows are
//! alone, and a stretch of rowids that cannot even be walked (a damaged interior page) is
//! skipped with growing steps and reported as lost. Rows keep their rowids, so the references
//! between tables (a notification's alert, a measurement's site) and the marks kept as rowids
//! stay right; the two marks that count measurement rowids are lowered to the newest salvaged
//! measurement when that is older, so the rows a fresh table numbers again are not taken as
//! rolled up or published already.

use rusqlite::{Connection, params};
use std::path::Path;

/// The tables copied, parents first.
const TABLES: [&str; 15] = [
    "sites",
    "certs",
    "measurements",
    "alerts",
    "notifications",
    "outbox",
    "outbox_parked",
    "outbox_dropped",
    "rollup_minute",
    "rollup_hour",
    "rollup_day",
    "rollup_state",
    "cluster_outbox",
    "incidents",
    "incident_updates",
];

/// Rows copied per statement.
const CHUNK: i64 = 2048;

/// What a salvage copied and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Salvaged {
    /// Rows copied, per table (tables with none left out).
    pub copied: Vec<(&'static str, u64)>,
    /// Rows or stretches that could not be read: `table: rowid a..=b`.
    pub lost: Vec<String>,
    /// What `PRAGMA quick_check` said of the damaged file (at most 20 lines).
    pub check: Vec<String>,
    /// Whether rollup rows were lost (the rollups are then rebuilt from the raw rows).
    pub rollups_lost: bool,
}

impl Salvaged {
    pub fn rows(&self) -> u64 {
        self.copied.iter().map(|(_, n)| n).sum()
    }

    /// One line for people: `1,234 rows kept (measurements 1,200, alerts 30, ...); lost:
    /// measurements rowid 5..=90`.
    pub fn describe(&self) -> String {
        let kept: Vec<String> = self
            .copied
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let mut text = format!(
            "{} rows kept ({})",
            self.rows(),
            if kept.is_empty() {
                "none".into()
            } else {
                kept.join(", ")
            }
        );
        if !self.lost.is_empty() {
            let shown: Vec<&str> = self.lost.iter().take(5).map(String::as_str).collect();
            text.push_str(&format!(
                "; unreadable: {}{}",
                shown.join(", "),
                if self.lost.len() > 5 {
                    format!(" and {} more", self.lost.len() - 5)
                } else {
                    String::new()
                }
            ));
        }
        text
    }
}

/// Copies what can be read of the store at `damaged` into `fresh` (a new store with the
/// schema), then fixes the marks and, when rollup rows were lost, rebuilds the rollups from
/// the raw rows that survive.
pub(crate) fn salvage(damaged: &Path, fresh: &mut Connection) -> rusqlite::Result<Salvaged> {
    let mut out = Salvaged::default();
    fresh.execute("ATTACH DATABASE ?1 AS damaged", [damaged.to_string_lossy()])?;
    out.check = quick_check(fresh);
    for table in TABLES {
        let (copied, lost) = copy_table(fresh, table);
        if copied > 0 {
            out.copied.push((table, copied));
        }
        if table.starts_with("rollup_") && !lost.is_empty() {
            out.rollups_lost = true;
        }
        out.lost
            .extend(lost.into_iter().map(|l| format!("{table} {l}")));
    }
    let _ = fresh.execute("DETACH DATABASE damaged", []);
    lower_marks(fresh)?;
    if out.rollups_lost {
        crate::history::rebuild(fresh, false)?;
    }
    Ok(out)
}

fn quick_check(conn: &Connection) -> Vec<String> {
    let lines = conn
        .prepare("PRAGMA damaged.quick_check(20)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    match lines {
        Ok(l) => l,
        Err(e) => vec![format!("quick_check could not run: {e}")],
    }
}

/// The columns of `table` in the fresh store that the damaged one has too.
fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let names = |schema: &str| -> Vec<String> {
        conn.prepare(&format!("PRAGMA {schema}.table_info({table})"))
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(1))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default()
    };
    let old = names("damaged");
    names("main")
        .into_iter()
        .filter(|c| old.contains(c))
        .collect()
}

/// Whether the damaged file says it has no table `table` (`false` when its schema cannot be
/// read: the table may be there, unreadable).
fn absent(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        "SELECT COUNT(*) FROM damaged.sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n == 0)
}

/// Copies one table; returns the rows copied and the stretches lost.
///
/// It walks the table in rowid order: the next row is found by a seek (`rowid >= ?`, which
/// reads only the pages on the way to it), the end of a chunk by walking [`CHUNK`] rows from
/// there (or, when that walk meets damage, by rowid arithmetic), and the chunk is copied with
/// [`copy_range`]. A seek that fails lands on a damaged page: the walk resumes after it,
/// skipping ahead in doubling steps.
fn copy_table(conn: &Connection, table: &str) -> (u64, Vec<String>) {
    let cols = columns(conn, table);
    if cols.is_empty() {
        if absent(conn, table) {
            // A store from before the table existed: nothing to copy, nothing lost.
            return (0, Vec::new());
        }
        return (0, vec!["(the table cannot be read)".into()]);
    }
    let list = cols.join(", ");
    let insert = format!(
        "INSERT OR IGNORE INTO main.{table} (rowid, {list}) SELECT rowid, {list} FROM damaged.{table} WHERE rowid BETWEEN ?1 AND ?2"
    );
    let seek =
        format!("SELECT rowid FROM damaged.{table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1");
    let chunk_end = format!(
        "SELECT rowid FROM damaged.{table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1 OFFSET {}",
        CHUNK - 1
    );
    let one = |sql: &str, at: i64| -> rusqlite::Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        conn.prepare_cached(sql)?
            .query_row([at], |r| r.get(0))
            .optional()
    };
    let mut copied = 0u64;
    let mut lost = Vec::new();
    let mut budget = FAILURE_BUDGET;
    // The schema's rowids and keys are positive: a walk from 0 that fails at once resumes at
    // 1, 2, 4, ... past a damaged first page.
    let mut from = 0;
    loop {
        let start = match one(&seek, from) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => match resume(|at| one(&seek, at).is_ok(), from) {
                Some(at) => {
                    lost.push(stretch(from, at - 1));
                    from = at;
                    continue;
                }
                None => {
                    lost.push(stretch(from, i64::MAX));
                    break;
                }
            },
        };
        let end = match one(&chunk_end, start) {
            Ok(Some(e)) => e,
            Ok(None) => i64::MAX,
            Err(_) => start.saturating_add(CHUNK - 1),
        };
        copied += copy_range(conn, &insert, start, end, &mut lost, &mut budget);
        if end == i64::MAX {
            break;
        }
        from = end + 1;
    }
    (copied, lost)
}

/// Statements that may fail per table while damaged ranges are split; beyond, the rest of a
/// failing range is reported lost whole (a damaged page among sparse keys could otherwise be
/// split into billions of empty ranges).
const FAILURE_BUDGET: u32 = 100_000;
/// A failing range at most this wide is tried row by row.
const ROW_BY_ROW: i64 = 64;

fn stretch(a: i64, b: i64) -> String {
    match (a <= 0, b == i64::MAX) {
        (true, true) => "every row (the table cannot be walked)".into(),
        (true, false) => format!("rowids up to {b}"),
        (false, true) => format!("rowids from {a}"),
        (false, false) if a == b => format!("rowid {a}"),
        (false, false) => format!("rowids {a}..={b}"),
    }
}

/// The first rowid after `from` where `reads` succeeds, trying steps that double.
fn resume(reads: impl Fn(i64) -> bool, from: i64) -> Option<i64> {
    let mut step: i64 = 1;
    for _ in 0..64 {
        let at = from.checked_add(step)?;
        if reads(at) {
            return Some(at);
        }
        step = step.checked_mul(2)?;
    }
    None
}

/// Copies rowids `a..=b`, splitting a range that fails until unreadable rows are alone.
fn copy_range(
    conn: &Connection,
    insert: &str,
    a: i64,
    b: i64,
    lost: &mut Vec<String>,
    budget: &mut u32,
) -> u64 {
    match conn
        .prepare_cached(insert)
        .and_then(|mut s| s.execute(params![a, b]))
    {
        Ok(n) => n as u64,
        Err(_) if *budget == 0 => {
            lost.push(stretch(a, b));
            0
        }
        Err(_) => {
            *budget -= 1;
            if b.saturating_sub(a) < ROW_BY_ROW {
                let mut n = 0;
                let mut gone: Option<(i64, i64)> = None;
                for r in a..=b {
                    match conn
                        .prepare_cached(insert)
                        .and_then(|mut s| s.execute(params![r, r]))
                    {
                        Ok(k) => {
                            n += k as u64;
                            if let Some((x, y)) = gone.take() {
                                lost.push(stretch(x, y));
                            }
                        }
                        Err(_) => gone = Some((gone.map_or(r, |g| g.0), r)),
                    }
                }
                if let Some((x, y)) = gone {
                    lost.push(stretch(x, y));
                }
                return n;
            }
            let mid = a + (b - a) / 2;
            copy_range(conn, insert, a, mid, lost, budget)
                + copy_range(conn, insert, mid + 1, b, lost, budget)
        }
    }
}

/// The marks that count measurement rowids (the rollups', the cluster publisher's) must not be
/// above the newest salvaged measurement, nor the cluster's alert mark above the newest salvaged
/// alert: the fresh tables number rows after them again.
fn lower_marks(conn: &Connection) -> rusqlite::Result<()> {
    let newest: i64 = conn.query_row(
        "SELECT COALESCE(MAX(rowid), 0) FROM measurements",
        [],
        |r| r.get(0),
    )?;
    conn.execute(
        "UPDATE rollup_state SET raw_rowid = ?1 WHERE raw_rowid > ?1",
        [newest],
    )?;
    conn.execute(
        "UPDATE cluster_outbox SET published_rowid = ?1 WHERE published_rowid > ?1",
        [newest],
    )?;
    // Likewise the alert mark: alerts decided from now on are numbered after the newest
    // salvaged one.
    conn.execute(
        "UPDATE cluster_outbox SET published_alert = (SELECT COALESCE(MAX(id), 0) FROM alerts)
         WHERE published_alert > (SELECT COALESCE(MAX(id), 0) FROM alerts)",
        [],
    )?;
    Ok(())
}
