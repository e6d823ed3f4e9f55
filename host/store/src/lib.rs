//! The embedded store: SQLite (WAL) under the data directory. It keeps every measurement and
//! alert, is the source the windows are rebuilt from at start, serves `report` and `alerts`, and
//! holds the InfluxDB outbox. Writes happen on one writer thread ([`writer`]); reads open their
//! own connections (WAL lets them run beside the writer).

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::event;
use sitewatch_core::measurement;
use sitewatch_core::retry;
use sitewatch_core::stats;
use sitewatch_core::wire;

pub mod cluster_outbox;
pub mod history;
pub mod incidents;
pub mod lines;
pub mod notices;
pub mod outbox;
pub(crate) mod salvage;
pub mod writer;

use crate::alert::{Alert, AlertKind};
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError, Step};
use chrono::{DateTime, Utc};
/// The store's connections (SQLite), for the modules that read and write its tables.
pub use rusqlite::Connection;
use rusqlite::{OpenFlags, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const DB_FILE: &str = "sitewatch.db";
const SCHEMA_VERSION: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the store {} was written by a newer sitewatch (schema {found}, this one knows {SCHEMA_VERSION})", path.display())]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("the store has no data directory {}; run sitewatch there first", path.display())]
    Missing { path: PathBuf },
    #[error("store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// The blocking thread of a queue's call did not run: the runtime is stopping.
    #[error("the store could not be reached: sitewatch is stopping")]
    Stopped,
    #[error(
        "the data directory {} is in use by another sitewatch{}: two would write the same store; stop it or give this one its own --data-dir",
        path.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock the data directory {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether SQLite says the file is damaged (or not a database at all).
    pub(crate) fn is_corruption(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Query(source) => is_corruption(source),
            _ => false,
        }
    }
}

/// The lock file in the data directory: one running sitewatch per store.
pub(crate) const LOCK_FILE: &str = "sitewatch.lock";

/// Held while sitewatch runs on a data directory; the lock goes with the process (the kernel
/// drops it on any exit, SIGKILL included).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the data directory's lock (creating the directory), or says which process has it.
    /// Two writers on one store would interleave their batches and their rollup checkpoints.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        use std::io::{Read, Seek, Write};
        create_private_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let err = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::InUse {
                    path: data_dir.to_owned(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        writeln!(file, "{}", std::process::id()).map_err(err)?;
        Ok(Self { _file: file })
    }
}

/// Where the store lives. Clones share the outbox limit.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    /// Lines the InfluxDB outbox may hold: set by the sender from its config
    /// (`storage.influxdb.max_outbox_lines`), enforced by the writer as it inserts.
    outbox_limit: Arc<AtomicU64>,
    /// Counts commits that queued notifications: the notifiers wait on it instead of polling.
    notifications: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped when the file was replaced by a fresh one (a damaged store set aside): a part
    /// that keeps a connection open opens a new one when this changed.
    generation: Arc<AtomicU64>,
    /// A reader found the file damaged: the writer checks it and sets it aside.
    suspect: Arc<std::sync::atomic::AtomicBool>,
}

/// What waits in the InfluxDB outbox and what InfluxDB refused, for `sitewatch outbox`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSummary {
    /// Lines waiting (see [`Store::outbox_len`]).
    pub waiting: u64,
    /// The point times of the first and the last line in the queue.
    pub first_time: Option<DateTime<Utc>>,
    pub last_time: Option<DateTime<Utc>>,
    /// Lines parked because InfluxDB refused them.
    pub parked: u64,
    /// The distinct reasons of the parked lines with their counts, most lines first.
    pub reasons: Vec<(String, u64)>,
    /// Lines dropped over the limit since the store was created, and when the last was.
    pub dropped: u64,
    pub last_dropped: Option<DateTime<Utc>>,
}

/// What opening the store had to do besides opening it.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// The old file was unreadable and was set aside under this name.
    pub set_aside: Option<PathBuf>,
}

impl Store {
    /// Opens (creating when needed) the store in `data_dir`, created with mode 0700. A file that
    /// is not a readable SQLite database is renamed aside, not deleted, and a fresh store started.
    pub fn open(data_dir: &Path) -> Result<(Self, OpenReport), StoreError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut report = OpenReport::default();
        match init(&path) {
            Ok(_) => {}
            Err(StoreError::Open { source, .. } | StoreError::Query(source))
                if is_corruption(&source) =>
            {
                let aside = set_aside(&path).map_err(|e| StoreError::CreateDir {
                    path: path.clone(),
                    source: e,
                })?;
                tracing::warn!(
                    "store {} is unreadable ({source}); set aside as {}",
                    path.display(),
                    aside.display()
                );
                report.set_aside = Some(aside);
                init(&path)?;
            }
            Err(e) => return Err(e),
        }
        Ok((Self::at(path), report))
    }

    fn at(path: PathBuf) -> Self {
        Self {
            path,
            outbox_limit: Arc::new(AtomicU64::new(crate::config::DEFAULT_MAX_OUTBOX_LINES)),
            notifications: Arc::new(tokio::sync::watch::channel(0).0),
            generation: Arc::default(),
            suspect: Arc::default(),
        }
    }

    /// Changes when the store file is replaced by a fresh one; a part that keeps a connection
    /// open reconnects when it changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Tells the writer when `error` says the file is damaged, so it checks it and, if so, sets
    /// it aside and starts a fresh store (readers never do that themselves: the writer owns
    /// the file).
    pub fn note_error(&self, error: &StoreError) {
        if error.is_corruption() {
            self.suspect
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether a reader found the file damaged since the last call.
    pub(crate) fn take_suspicion(&self) -> bool {
        self.suspect
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Sets the damaged file aside and creates a fresh store in its place; returns where the
    /// old one went and a connection to the new one. The writer closes its own connection first,
    /// and no other part keeps one open between uses: SQLite deletes a database's WAL by name
    /// when its last connection closes, and after the rename that name is the new store's.
    /// Parts that keep state across uses learn of the replacement from [`Self::generation`].
    pub(crate) fn replace_damaged(&self) -> Result<(PathBuf, Connection), StoreError> {
        let aside = set_aside(&self.path).map_err(|source| StoreError::CreateDir {
            path: self.path.clone(),
            source,
        })?;
        let conn = init(&self.path)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok((std::path::absolute(&aside).unwrap_or(aside), conn))
    }

    /// Opens an existing store for reading only (for `report` and `alerts`).
    pub fn existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing {
                path: data_dir.to_owned(),
            });
        }
        Ok(Self::at(path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells the notifiers that new notifications were committed.
    pub fn notifications_queued(&self) {
        self.notifications.send_modify(|n| *n += 1);
    }

    /// Changes each time notifications were committed.
    pub fn watch_notifications(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notifications.subscribe()
    }

    /// A new connection with the store's settings.
    pub fn connect(&self) -> Result<Connection, StoreError> {
        connect(&self.path)
    }

    /// A connection for writing: the schema is (re)created first, so a store file that vanished
    /// while running (a wiped data dir) is started afresh instead of failing forever.
    pub fn connect_for_writing(&self) -> Result<Connection, StoreError> {
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        init(&self.path)
    }

    /// The measurements of one site (by name and URL) since `since`, oldest first.
    pub fn measurements(
        &self,
        conn: &Connection,
        site: &str,
        url: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Measurement>, StoreError> {
        let Some(site_id) = conn
            .query_row(
                "SELECT id FROM sites WHERE name = ?1 AND url = ?2",
                params![site, url],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        else {
            return Ok(Vec::new());
        };
        let site: Arc<str> = site.into();
        let url: Arc<str> = url.into();
        let mut stmt = conn.prepare_cached(
            "SELECT m.time_us, m.ok, m.status, m.ttfb_us, m.response_us, m.dns_us, m.connect_us,
                    m.tls_us, m.body_bytes, m.truncated, m.error_kind, m.error_message, m.lag_us,
                    m.metrics, m.duration_us, m.maintenance, c.details, m.steps
             FROM measurements m LEFT JOIN certs c ON c.id = m.cert_id
             WHERE m.site_id = ?1 AND m.time_us >= ?2 ORDER BY m.time_us",
        )?;
        let rows = stmt.query_map(params![site_id, since.timestamp_micros()], |r| {
            let us = |i: usize| -> rusqlite::Result<Option<Duration>> {
                Ok(r.get::<_, Option<i64>>(i)?
                    .map(|v| Duration::from_micros(v.max(0) as u64)))
            };
            let kind: Option<String> = r.get(10)?;
            let time = from_us(r.get(0)?);
            let duration = us(14)?.or(us(4)?).unwrap_or_default();
            let ended = time + chrono::TimeDelta::from_std(duration).unwrap_or_default();
            Ok(Measurement {
                domain_expiry: None,
                redirect: None,
                probe_id: 0,
                steps: parse_steps(r.get::<_, Option<String>>(17)?.as_deref()),
                location: None,
                site: Arc::clone(&site),
                url: Arc::clone(&url),
                time,
                ok: r.get(1)?,
                status: r.get(2)?,
                ttfb: us(3)?,
                response_time: us(4)?,
                phases: Phases {
                    dns: us(5)?,
                    connect: us(6)?,
                    tls: us(7)?,
                },
                body_bytes: r.get::<_, i64>(8)? as u64,
                body_truncated: r.get(9)?,
                error: kind
                    .map(|k| -> rusqlite::Result<ProbeError> {
                        Ok(ProbeError {
                            kind: ErrorKind::parse(&k).unwrap_or(ErrorKind::Http),
                            message: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                        })
                    })
                    .transpose()?,
                schedule_lag: us(12)?.unwrap_or_default(),
                metrics: parse_metrics(r.get::<_, Option<String>>(13)?.as_deref()),
                tls: r
                    .get::<_, Option<String>>(16)?
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .map(Arc::new),
                maintenance: r.get(15)?,
                duration,
                // Stored probes sit at their wall-clock end: the timeline starts equal to it.
                ended_us: ended.timestamp_micros(),
                generation: 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every (name, URL) that has measurements since `since`, in name order.
    pub fn sites_since(
        &self,
        conn: &Connection,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT s.name, s.url FROM sites s
             WHERE EXISTS (SELECT 1 FROM measurements m WHERE m.site_id = s.id AND m.time_us >= ?1)
             ORDER BY s.name, s.url",
        )?;
        let rows = stmt.query_map([since.timestamp_micros()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stored alerts since `since`, newest first.
    pub fn alerts_since(
        &self,
        conn: &Connection,
        since: DateTime<Utc>,
    ) -> Result<Vec<Alert>, StoreError> {
        Ok(self
            .alerts_with_ids_since(conn, since)?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// The newest `limit` stored alerts, newest first.
    pub fn latest_alerts(&self, conn: &Connection, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts ORDER BY time_us DESC, id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], alert_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stored alerts since `since` with their ids (which notifications refer to), newest first.
    pub fn alerts_with_ids_since(
        &self,
        conn: &Connection,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, Alert)>, StoreError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {ALERT_COLUMNS}, id FROM alerts WHERE time_us >= ?1 ORDER BY time_us DESC, id DESC"
        ))?;
        let rows = stmt.query_map([since.timestamp_micros()], |r| {
            Ok((r.get::<_, i64>(9)?, alert_row(r)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest alert of each condition (down, degraded, certificate) of each site (by name
    /// and URL), for restoring alert states.
    pub fn last_alerts(
        &self,
        conn: &Connection,
    ) -> Result<HashMap<(String, String), Vec<Alert>>, StoreError> {
        let mut out: HashMap<(String, String), Vec<Alert>> = HashMap::new();
        for c in crate::alert::Condition::ALL {
            let [open, close] = c.kinds();
            let mut stmt = conn.prepare(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts a
                 WHERE id = (SELECT MAX(id) FROM alerts b
                             WHERE b.site = a.site AND b.url = a.url AND b.kind IN (?1, ?2))"
            ))?;
            let rows = stmt.query_map([open.as_str(), close.as_str()], alert_row)?;
            for a in rows {
                let a = a?;
                out.entry((a.site.to_string(), a.url.to_string()))
                    .or_default()
                    .push(a);
            }
        }
        Ok(out)
    }

    /// Lines waiting in the InfluxDB outbox, in O(log n) rather than a `COUNT(*)` over millions of
    /// rows: the span of ids from the first line to the last. That is the count because ids grow
    /// by one per line (AUTOINCREMENT: never reused, a rolled-back insert takes none) and lines
    /// only ever leave from the head: the sender resolves a batch in id order, bisection included
    /// (the first half of a refused part is delivered or parked before the second is sent), and
    /// the writer's limit cuts the oldest. Someone deleting rows by hand makes it an upper bound.
    pub fn outbox_len(&self, conn: &Connection) -> Result<u64, StoreError> {
        outbox_len(conn)
    }

    pub(crate) fn outbox_limit(&self) -> u64 {
        self.outbox_limit.load(Ordering::Relaxed)
    }

    pub fn set_outbox_limit(&self, lines: u64) {
        self.outbox_limit.store(lines.max(1), Ordering::Relaxed);
    }

    /// What waits in the outbox, what was parked and what was dropped.
    pub fn outbox_summary(&self, conn: &Connection) -> Result<OutboxSummary, StoreError> {
        let line_time = |id: i64| -> Result<Option<DateTime<Utc>>, StoreError> {
            let line: Option<String> = conn
                .query_row("SELECT line FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            Ok(line.as_deref().and_then(lines::line_time))
        };
        let bounds = outbox_bounds(conn)?;
        let (first_time, last_time) = match bounds {
            Some((first, last)) => (line_time(first)?, line_time(last)?),
            None => (None, None),
        };
        let mut stmt = conn.prepare(
            "SELECT reason, COUNT(*) FROM outbox_parked GROUP BY reason ORDER BY COUNT(*) DESC, reason",
        )?;
        let reasons: Vec<(String, u64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        let (dropped, last_dropped) = conn
            .query_row(
                "SELECT lines, last_us FROM outbox_dropped WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, Some(from_us(r.get(1)?)))),
            )
            .optional()?
            .unwrap_or((0, None));
        Ok(OutboxSummary {
            waiting: span(bounds),
            first_time,
            last_time,
            parked: reasons.iter().map(|r| r.1).sum(),
            reasons,
            dropped,
            last_dropped,
        })
    }

    /// Moves every parked line back to the end of the outbox, in the order they were parked;
    /// returns how many.
    pub fn resend_parked(&self, conn: &mut Connection) -> Result<u64, StoreError> {
        let tx = conn.transaction()?;
        let moved = tx.execute(
            "INSERT INTO outbox (line) SELECT line FROM outbox_parked ORDER BY id",
            [],
        )?;
        tx.execute("DELETE FROM outbox_parked", [])?;
        tx.commit()?;
        Ok(moved as u64)
    }

    /// Deletes every parked line; returns how many.
    pub fn drop_parked(&self, conn: &Connection) -> Result<u64, StoreError> {
        Ok(conn.execute("DELETE FROM outbox_parked", [])? as u64)
    }
}

/// Lines from the first id to the last, both included.
fn span(bounds: Option<(i64, i64)>) -> u64 {
    bounds.map_or(0, |(first, last)| (last - first + 1) as u64)
}

/// The ids of the first and the last line in the outbox. Two subqueries, not
/// `SELECT MIN(id), MAX(id)`: SQLite only answers a lone `MIN` or `MAX` from the b-tree, and scans
/// the whole table for the pair.
pub(crate) fn outbox_bounds(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row(
        "SELECT (SELECT MIN(id) FROM outbox), (SELECT MAX(id) FROM outbox)",
        [],
        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
    )
}

fn parse_metrics(json: Option<&str>) -> Vec<(String, f64)> {
    let Some(Ok(serde_json::Value::Object(map))) =
        json.map(serde_json::from_str::<serde_json::Value>)
    else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect()
}

/// A script run's steps as the `steps` column keeps them, or `None` when there are none.
pub(crate) fn steps_json(steps: &[Step]) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let list: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": &*s.name,
                "us": u64::try_from(s.duration.as_micros()).unwrap_or(u64::MAX),
                "requests": s.requests,
                "failed": s.failed,
            })
        })
        .collect();
    Some(serde_json::Value::Array(list).to_string())
}

/// The steps of a `steps` column (none for NULL, and for what does not parse: a damaged value
/// costs the steps, not the row).
pub(crate) fn parse_steps(json: Option<&str>) -> Vec<Step> {
    let Some(Ok(serde_json::Value::Array(list))) =
        json.map(serde_json::from_str::<serde_json::Value>)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| {
            Some(Step {
                name: v.get("name")?.as_str()?.into(),
                duration: Duration::from_micros(v.get("us")?.as_u64()?),
                requests: u32::try_from(v.get("requests")?.as_u64()?).unwrap_or(u32::MAX),
                failed: v.get("failed")?.as_bool()?,
            })
        })
        .collect()
}

/// An alert from a row whose first columns are [`ALERT_COLUMNS`].
pub(crate) fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let kind: String = r.get(2)?;
    let kind: AlertKind = kind.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let time = from_us(r.get(4)?);
    let down_since = r.get::<_, Option<i64>>(5)?.map(from_us);
    let detail = AlertDetail::parse(r.get::<_, Option<String>>(8)?.as_deref());
    Ok(Alert {
        kind,
        site: r.get::<_, String>(0)?.into(),
        url: r.get::<_, String>(1)?.into(),
        availability: r.get(3)?,
        time,
        down_since,
        down_for: down_since.map(|d| (time - d).to_std().unwrap_or_default()),
        latency: detail.latency,
        cert_expiry: detail.cert_expiry,
        message: r.get(6)?,
        rendered: r.get(7)?,
        held: detail.held,
    })
}

/// An alert as JSON, with the columns the store keeps (for the cluster's alert book and stream).
pub fn alert_json(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "site": &*a.site,
        "url": &*a.url,
        "kind": a.kind.as_str(),
        "availability": a.availability,
        "time_us": a.time.timestamp_micros(),
        "down_since_us": a.down_since.map(|t| t.timestamp_micros()),
        "message": a.message,
        "rendered": a.rendered,
        "detail": AlertDetail::json(a),
    })
}

/// An alert from its [`alert_json`], if it is one.
pub fn alert_from_json(v: &serde_json::Value) -> Option<Alert> {
    let kind: AlertKind = v.get("kind")?.as_str()?.parse().ok()?;
    let time = from_us(v.get("time_us")?.as_i64()?);
    let down_since = v
        .get("down_since_us")
        .and_then(serde_json::Value::as_i64)
        .map(from_us);
    let detail = AlertDetail::parse(v.get("detail").and_then(serde_json::Value::as_str));
    Some(Alert {
        kind,
        site: v.get("site")?.as_str()?.into(),
        url: v.get("url")?.as_str()?.into(),
        availability: v.get("availability")?.as_f64()?,
        time,
        down_since,
        down_for: down_since.map(|d| (time - d).to_std().unwrap_or_default()),
        latency: detail.latency,
        cert_expiry: detail.cert_expiry,
        held: detail.held,
        message: v.get("message")?.as_str()?.to_owned(),
        rendered: v
            .get("rendered")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    })
}

/// The columns [`alert_row`] reads, in its order.
pub(crate) const ALERT_COLUMNS: &str =
    "site, url, kind, availability, time_us, down_since_us, message, rendered, detail";

/// The parts of an alert only some kinds have, as the `detail` column keeps them.
#[derive(Debug, Default)]
pub(crate) struct AlertDetail {
    latency: Option<crate::alert::LatencyBreach>,
    cert_expiry: Option<DateTime<Utc>>,
    /// Why a held alert was held.
    held: Option<String>,
}

impl AlertDetail {
    /// The JSON of an alert's detail, or `None` when it has none.
    pub(crate) fn json(a: &Alert) -> Option<String> {
        let mut v = serde_json::Map::new();
        if let Some(l) = &a.latency {
            v.insert(
                "latency".into(),
                serde_json::json!({"metric": l.metric.key(), "value_ms": l.value_ms,
                                   "limit_ms": l.limit.as_secs_f64() * 1000.0}),
            );
        }
        if let Some(e) = a.cert_expiry {
            v.insert("cert_expiry_us".into(), e.timestamp_micros().into());
        }
        if let Some(h) = &a.held {
            v.insert("held".into(), h.as_str().into());
        }
        (!v.is_empty()).then(|| serde_json::Value::Object(v).to_string())
    }

    fn parse(json: Option<&str>) -> Self {
        let Some(v) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) else {
            return Self::default();
        };
        let latency = v.get("latency").and_then(|l| {
            let key = l.get("metric")?.as_str()?;
            Some(crate::alert::LatencyBreach {
                metric: crate::alert::LatencyMetric::ALL
                    .into_iter()
                    .find(|m| m.key() == key)?,
                value_ms: l.get("value_ms")?.as_f64()?,
                limit: Duration::from_secs_f64(l.get("limit_ms")?.as_f64()?.max(0.0) / 1000.0),
            })
        });
        Self {
            latency,
            cert_expiry: v
                .get("cert_expiry_us")
                .and_then(|e| e.as_i64())
                .map(from_us),
            held: v
                .get("held")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
        }
    }
}

pub(crate) fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open = |path: &Path| -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never block the writer; NORMAL sync: a crash of the process loses nothing
        // committed (an OS crash may lose the last transactions, never corrupt the file).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    };
    open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Creates the schema, or checks that an existing one is one this version reads.
fn init(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
        });
    }
    conn.execute_batch(include_str!("schema.sql"))?;
    // Schema 10: incidents (new tables only).
    conn.execute_batch(incidents::SCHEMA)?;
    if version < 2 && !has_column(&conn, "measurements", "duration_us")? {
        // Schema 1 had no probe duration: old rows keep NULL (read as their response time).
        conn.execute_batch("ALTER TABLE measurements ADD COLUMN duration_us INTEGER")?;
    }
    if version < 4 {
        // Schema 4: older rows were not in maintenance and kept no TLS details.
        for (table, column, decl) in [
            ("measurements", "maintenance", "INTEGER NOT NULL DEFAULT 0"),
            ("measurements", "cert_id", "INTEGER REFERENCES certs (id)"),
            ("alerts", "detail", "TEXT"),
        ] {
            if !has_column(&conn, table, column)? {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
            }
        }
    }
    if version < 7 {
        // Schema 7: older alerts are this node's own; an older cluster node publishes its
        // alerts from the newest one on (set by the cluster outbox's first start).
        for (table, column, decl) in [
            ("alerts", "remote", "INTEGER NOT NULL DEFAULT 0"),
            ("cluster_outbox", "published_alert", "INTEGER"),
        ] {
            if !has_column(&conn, table, column)? {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
            }
        }
    }
    if version < 8 && !has_column(&conn, "notifications", "after_cluster")? {
        // Schema 8: older notifications wait for nothing.
        conn.execute_batch(
            "ALTER TABLE notifications ADD COLUMN after_cluster INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    if version < 9 && !has_column(&conn, "measurements", "steps")? {
        // Schema 9: older rows had no steps (NULL). Their rollup rows read back without steps.
        conn.execute_batch("ALTER TABLE measurements ADD COLUMN steps TEXT")?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(conn)
}

/// Lines waiting in the outbox (its id span: lines leave from the head only).
pub(crate) fn outbox_len(conn: &Connection) -> Result<u64, StoreError> {
    Ok(span(outbox_bounds(conn)?))
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Renames an unreadable store (and its WAL files) aside; returns the new name, which never
/// replaces an earlier one: the time to the millisecond, and a counter when that is taken too.
fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let taken = |p: &Path| {
        ["", "-wal", "-shm"]
            .iter()
            .any(|suffix| PathBuf::from(format!("{}{suffix}", p.display())).exists())
    };
    let mut aside = path.with_file_name(format!("{DB_FILE}.corrupt-{stamp}"));
    let mut n = 1;
    while taken(&aside) {
        n += 1;
        aside = path.with_file_name(format!("{DB_FILE}.corrupt-{stamp}-{n}"));
    }
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{suffix}", aside.display()))?;
        }
    }
    Ok(aside)
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(err)
}

#[cfg(test)]
mod testing;
#[cfg(test)]
pub(crate) mod tests;
