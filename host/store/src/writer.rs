//! The store's writer thread. Records arrive on a channel and are written in batches, one
//! transaction every `flush_every` (200 ms) or every `BATCH` records, so a measurement is durable
//! well within a second. When a write fails (disk full, read-only directory), the records stay in
//! memory (up to `MAX_PENDING`), an error event says so once, and writing is retried with backoff;
//! the monitor keeps probing and deciding meanwhile (its alerts are shown once stored).
//!
//! An alert is published on the bus only once the transaction holding it and its notifications
//! has committed, so no output shows an alert that a restart would not know; an alert waiting
//! in memory is written at once rather than with the next batch.
//!
//! The writer also holds the InfluxDB outbox to its limit (`storage.influxdb.max_outbox_lines`),
//! in the same transaction as the insert: beyond it the oldest lines are dropped and counted.

use super::{Store, lines};
use crate::alert::Alert;
use crate::clock::SharedClock;
use crate::event::Bus;
use crate::history::{Probe, Retention, Rollups};
use crate::measurement::Measurement;
use crate::retry::Backoff;
use rusqlite::{Connection, params};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

/// Records per transaction, at most.
const BATCH: usize = 5_000;
/// Records kept in memory while the store cannot be written; the oldest go first beyond this.
#[cfg(not(test))]
pub(super) const MAX_PENDING: usize = 500_000;
#[cfg(test)]
pub(super) const MAX_PENDING: usize = 20_000;
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// A damaged store is set aside at most this often (see `Writer::may_recover`).
const RECOVER_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// How long the writer keeps trying at shutdown while the store cannot be written (a full
/// disk), before it gives up, spills what it holds to a store of its own elsewhere, and makes
/// sitewatch exit non-zero ([`Unsaved`]).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the writer could not store before it stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{records} records ({measurements} measurements, {alerts} alerts) were not stored in {store}: {why}{}",
    match spilled {
        Some(p) => format!("; they were written to {} instead (a store of their own: `sitewatch report --data-dir {}` reads it)", p.display(), p.display()),
        None => "; they could not be written anywhere else either".into(),
    }
)]
pub struct Unsaved {
    pub records: usize,
    pub measurements: usize,
    pub alerts: usize,
    pub store: String,
    /// The last error writing the store gave.
    pub why: String,
    /// The data directory of the spill store, when one could be written.
    pub spilled: Option<std::path::PathBuf>,
}

/// Plugin metrics as a JSON object, or `None` when there are none.
fn metrics_json(metrics: &[(String, f64)]) -> Option<String> {
    if metrics.is_empty() {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> = metrics
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    Some(serde_json::Value::Object(map).to_string())
}

/// What gets stored.
#[derive(Debug)]
pub enum Record {
    Measurement(Measurement),
    /// An alert and the notifications it queues, written in one transaction.
    Alert(Alert, Vec<Queued>),
    /// An alert another cluster node decided and stored (from the cluster's alert stream):
    /// kept for `alerts` and the API, once, without notifications and not shown again.
    Remote(Alert),
    /// New options from a config reload.
    Configure(WriterOptions),
}

/// A notification of an alert for one notifier, with the notifier's rendering of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub notifier: Arc<str>,
    pub body: Option<String>,
    /// A cluster leader's notification: sent only once the cluster's alert stream has the
    /// alert (see `notices::pending`).
    pub after_cluster: bool,
}

/// Sends records to the writer thread. Dropping every handle stops the thread after a last flush.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: Sender<Record>,
    /// The writer thread, woken for an alert (it waits out a batch's time otherwise).
    writer: std::thread::Thread,
}

impl StoreHandle {
    pub fn send(&self, record: Record) {
        let alert = matches!(record, Record::Alert(..));
        // The writer only stops after every handle is gone, so this cannot fail while we hold one.
        let _ = self.tx.send(record);
        if alert {
            self.writer.unpark();
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub flush_every: Duration,
    /// How long raw rows, rollups and alerts are kept.
    pub retention: Retention,
    /// How often the rollups are checkpointed ([`crate::history::Rollups`]).
    pub rollup_every: Duration,
    /// Build the rollups; false only to measure what they cost (the storage bench).
    pub rollups: bool,
    /// Also queue every record as line protocol in the InfluxDB outbox.
    pub outbox: bool,
    /// The `location` tag of those lines.
    pub location: Arc<str>,
}

/// Starts the writer thread.
pub fn spawn(
    store: Store,
    options: WriterOptions,
    clock: SharedClock,
    bus: Bus,
) -> (StoreHandle, std::thread::JoinHandle<Result<(), Unsaved>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("sitewatch-store".into())
        .spawn(move || Writer::new(store, options, clock, bus).run(rx))
        .expect("spawning the store writer thread");
    let writer = thread.thread().clone();
    (StoreHandle { tx, writer }, thread)
}

struct Writer {
    store: Store,
    options: WriterOptions,
    clock: SharedClock,
    bus: Bus,
    conn: Option<Connection>,
    pending: VecDeque<Record>,
    site_ids: HashMap<(Arc<str>, Arc<str>), i64>,
    /// The `certs` id of each TLS summary written lately, by its JSON.
    cert_ids: HashMap<String, i64>,
    /// `Some` while writes fail: when to try again.
    retry: Option<Instant>,
    /// The waits between attempts while writes fail (the one retry policy).
    backoff: Backoff,
    dropped: u64,
    last_prune: Option<Instant>,
    /// `Some(lines dropped so far)` while the outbox is held at its limit.
    outbox_full: Option<u64>,
    /// The rollup deltas since the last checkpoint.
    rollups: Rollups,
    /// Alerts among `pending`.
    alerts_pending: usize,
    /// The last error a write gave, while writes fail.
    last_error: Option<String>,
    /// Whether stored alerts are published on the bus (not for a spill store).
    publish: bool,
    /// When a damaged store was last set aside, and last checked for damage.
    last_recovery: Option<Instant>,
    last_check: Option<Instant>,
}

impl Writer {
    fn new(store: Store, options: WriterOptions, clock: SharedClock, bus: Bus) -> Self {
        Self {
            store,
            clock,
            bus,
            conn: None,
            pending: VecDeque::new(),
            site_ids: HashMap::new(),
            cert_ids: HashMap::new(),
            retry: None,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            dropped: 0,
            last_prune: None,
            outbox_full: None,
            rollups: Rollups::default(),
            alerts_pending: 0,
            last_error: None,
            publish: true,
            last_recovery: None,
            last_check: None,
            options,
        }
    }

    fn run(mut self, rx: Receiver<Record>) -> Result<(), Unsaved> {
        self.catch_up();
        let mut last_flush = Instant::now();
        loop {
            let due = match self.retry {
                Some(at) => at,
                None => last_flush + self.options.flush_every,
            };
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(r) => {
                    self.push(r);
                    let mut connected = self.take_batch(&rx);
                    let now = Instant::now();
                    // An alert is shown only once it is stored: it is written at once, not
                    // with the next batch.
                    let alert = self.alert_waiting();
                    if connected
                        && !alert
                        && self.retry.is_none()
                        && now < due
                        && self.pending.len() < BATCH
                    {
                        // Sleep until the flush is due rather than waking for every record: at
                        // a steady probe rate that is one wake-up per flush, not per probe. An
                        // alert wakes it (`StoreHandle::send` unparks it).
                        std::thread::park_timeout(due - now);
                        connected = self.take_batch(&rx);
                    }
                    if !connected {
                        return self.finish();
                    }
                    let alert = alert || self.alert_waiting();
                    if !(alert && self.retry.is_none())
                        && Instant::now() < due
                        && self.pending.len() < BATCH
                    {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            if self.store.take_suspicion() {
                self.check_integrity();
            }
            if self.retry.is_none_or(|at| Instant::now() >= at) {
                self.flush_all();
            }
            last_flush = Instant::now();
            if self.retry.is_none() && self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                self.prune();
            }
        }
    }

    /// Moves queued records into `pending`, up to a batch: a burst waits in the channel rather
    /// than overflowing the in-memory queue, which is only for outages. False once every sender
    /// is gone and the channel is empty.
    fn take_batch(&mut self, rx: &Receiver<Record>) -> bool {
        while self.pending.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => self.push(r),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// Rolls up what the rollups lack (everything, in a store from before them) at start,
    /// before any record waits behind it; on failure the first write tries again.
    fn catch_up(&mut self) {
        if !self.options.rollups {
            return;
        }
        let result = (|| -> Result<u64, super::StoreError> {
            if self.conn.is_none() {
                self.conn = Some(self.store.connect_for_writing()?);
            }
            let conn = self.conn.as_mut().expect("just connected");
            Ok(self.rollups.catch_up(conn)?)
        })();
        if let Err(e) = result {
            self.conn = None;
            tracing::warn!(
                "rolling up the stored measurements failed ({}); trying again at the first write",
                crate::error_chain(&e)
            );
        }
    }

    /// The last flush at shutdown, with a rollup checkpoint so the next start has nothing to
    /// catch up. While the store cannot be written it keeps trying for [`SHUTDOWN_GRACE`]; then
    /// what it still holds goes to a spill store elsewhere, if one can be written, and the
    /// error says how much was not stored and why.
    fn finish(&mut self) -> Result<(), Unsaved> {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        self.flush_all();
        while !self.pending.is_empty() && Instant::now() < deadline {
            let at = self.retry.unwrap_or_else(Instant::now).min(deadline);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            self.flush_all();
        }
        if !self.pending.is_empty() {
            return Err(self.spill());
        }
        if self.retry.is_none()
            && self.rollups.has_deltas()
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(
                "storing the rollups at shutdown failed ({}); the next start rolls up the raw rows again",
                crate::error_chain(&e)
            );
        }
        Ok(())
    }

    /// Writes what could not be stored to a store of its own under the system's temporary
    /// directory (another disk, usually), and says what was lost where.
    fn spill(&mut self) -> Unsaved {
        let alerts = self.alerts_pending;
        let records = self.pending.len();
        let measurements = self
            .pending
            .iter()
            .filter(|r| matches!(r, Record::Measurement(_)))
            .count();
        let mut unsaved = Unsaved {
            records,
            measurements,
            alerts,
            store: self.store.path().display().to_string(),
            why: self
                .last_error
                .clone()
                .unwrap_or_else(|| "the store could not be written".into()),
            spilled: None,
        };
        let dir = std::env::temp_dir().join(format!(
            "sitewatch-spill-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ));
        if let Ok((store, _)) = Store::open(&dir) {
            let options = WriterOptions {
                rollups: false,
                outbox: false,
                ..self.options.clone()
            };
            let mut spill = Writer::new(store, options, Arc::clone(&self.clock), self.bus.clone());
            spill.publish = false;
            spill.alerts_pending = self.alerts_pending;
            spill.pending = std::mem::take(&mut self.pending);
            spill.flush_all();
            if spill.pending.is_empty() {
                unsaved.spilled = Some(dir);
            } else {
                self.pending = std::mem::take(&mut spill.pending);
            }
        }
        tracing::error!("{unsaved}");
        unsaved
    }

    fn checkpoint(&mut self) -> Result<(), super::StoreError> {
        let conn = self.conn.as_mut().ok_or(rusqlite::Error::InvalidQuery)?;
        let tx = conn.transaction()?;
        self.rollups.finish(&tx, Duration::ZERO)?;
        tx.commit()?;
        Ok(())
    }

    fn push(&mut self, r: Record) {
        if let Record::Configure(options) = r {
            self.options = options;
            self.last_prune = None;
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            // The oldest measurement goes, never an alert: an alert carries its notifications.
            match self
                .pending
                .iter()
                .position(|r| matches!(r, Record::Measurement(_)))
            {
                Some(i) => {
                    self.pending.remove(i);
                    self.dropped += 1;
                }
                None if matches!(r, Record::Measurement(_)) => {
                    self.dropped += 1;
                    return;
                }
                None => {}
            }
        }
        if matches!(r, Record::Alert(..)) {
            self.alerts_pending += 1;
        }
        self.pending.push_back(r);
    }

    /// Whether a damaged store may be set aside now: at most once a minute, so a disk that
    /// damages every new file too is retried with backoff instead of set aside in a loop.
    fn may_recover(&self) -> bool {
        self.last_recovery
            .is_none_or(|t| t.elapsed() >= RECOVER_AT_MOST_EVERY)
    }

    /// A reader found the file damaged: checks it (`quick_check`, a full read, so at most once a
    /// minute) and recovers if it is.
    fn check_integrity(&mut self) {
        if self
            .last_check
            .is_some_and(|t| t.elapsed() < RECOVER_AT_MOST_EVERY)
        {
            return;
        }
        self.last_check = Some(Instant::now());
        let result = (|| -> Result<Vec<String>, super::StoreError> {
            if self.conn.is_none() {
                self.conn = Some(self.store.connect_for_writing()?);
            }
            let conn = self.conn.as_ref().expect("just connected");
            let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
            let lines = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines)
        })();
        let damaged = match result {
            Ok(lines) if lines == ["ok"] => None,
            Ok(lines) => Some(lines.join("; ")),
            Err(e) if e.is_corruption() => Some(crate::error_chain(&e)),
            Err(_) => None,
        };
        if let Some(why) = damaged
            && self.may_recover()
        {
            self.recover(&why);
        }
    }

    /// Sets the damaged store aside, starts a fresh one with what can be read of it (the
    /// records held in memory are written to it next), and says so: an error event, a
    /// `store_recovered` event and the log. The rollups' deltas are dropped and rolled up again
    /// from the kept raw rows; the alert state is in the kept alerts.
    fn recover(&mut self, why: &str) {
        self.last_recovery = Some(Instant::now());
        self.conn = None;
        self.site_ids.clear();
        self.cert_ids.clear();
        self.rollups.lost();
        let (aside, mut conn) = match self.store.replace_damaged() {
            Ok(r) => r,
            Err(e) => {
                self.report(format!(
                    "the store {} is damaged ({why}) and cannot be set aside: {}; keeping {} records in memory and retrying",
                    self.store.path().display(),
                    crate::error_chain(&e),
                    self.pending.len()
                ));
                self.retry = Some(Instant::now() + self.backoff.next_delay());
                return;
            }
        };
        let salvaged = super::salvage::salvage(&aside, &mut conn).unwrap_or_else(|e| {
            super::salvage::Salvaged {
                lost: vec![format!("the salvage stopped: {e}")],
                ..Default::default()
            }
        });
        self.conn = Some(conn);
        self.backoff.reset();
        if self.retry.take().is_some() {
            self.status(true);
        }
        self.report(format!(
            "the store {} is damaged ({why}): set aside as {}; a fresh store holds what could be read of it ({}) and the {} records held in memory; SQLite's check of the damaged file: {}",
            self.store.path().display(),
            aside.display(),
            salvaged.describe(),
            self.pending.len(),
            salvaged.check.join("; ")
        ));
        self.bus.send(crate::event::Event::StoreRecovered(
            crate::event::StoreRecovery {
                time: self.clock.now(),
                set_aside: aside.display().to_string(),
                kept: salvaged.copied,
                lost: salvaged.lost,
                check: salvaged.check,
            },
        ));
        // Notifications salvaged from the old file wait in the new one.
        self.store.notifications_queued();
    }

    /// Whether an alert waits to be written.
    fn alert_waiting(&self) -> bool {
        self.alerts_pending > 0
    }

    fn flush_all(&mut self) {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(BATCH);
            match self.write(n) {
                Ok(outbox) => {
                    // Committed: the alerts of the batch (with their notifications) are durable,
                    // and only now do the outputs and the server hear of them, in order.
                    self.last_error = None;
                    for record in self.pending.drain(..n) {
                        if let Record::Alert(alert, _) = record {
                            self.alerts_pending -= 1;
                            if self.publish {
                                self.bus.send(crate::event::Event::Alert(alert));
                            }
                        }
                    }
                    if let Some(dropped) = outbox {
                        self.outbox_trimmed(dropped);
                    }
                    self.backoff.reset();
                    if self.retry.take().is_some() {
                        self.report(format!(
                            "writing to the store {} again",
                            self.store.path().display()
                        ));
                        self.status(true);
                    }
                    if self.dropped > 0 {
                        let dropped = std::mem::take(&mut self.dropped);
                        self.report(format!(
                            "{dropped} records were dropped while the store could not be written"
                        ));
                    }
                }
                Err(e) if e.is_corruption() && self.may_recover() => {
                    // The file is damaged: set it aside, keep what can be read, and write on
                    // into a fresh one (what failed is still pending).
                    self.recover(&crate::error_chain(&e));
                }
                Err(e) => {
                    self.conn = None;
                    self.last_error = Some(crate::error_chain(&e));
                    // Ids first seen in a transaction that did not commit may not exist.
                    self.site_ids.clear();
                    self.cert_ids.clear();
                    // The deltas hold rows that were not written: roll up from the store again.
                    self.rollups.lost();
                    if self.retry.is_none() {
                        self.report(format!(
                                "cannot write to the store {}: {}; keeping {} records in memory and retrying",
                                self.store.path().display(),
                                crate::error_chain(&e),
                                self.pending.len()
                            ));
                        self.status(false);
                    }
                    self.retry = Some(Instant::now() + self.backoff.next_delay());
                    return;
                }
            }
        }
    }

    fn report(&self, message: String) {
        self.bus.error("storage", None, message);
    }

    /// Publishes whether the store takes writes, and how many records wait in memory.
    fn status(&self, healthy: bool) {
        self.bus
            .send(crate::event::Event::Sink(crate::event::SinkStatus {
                time: self.clock.now(),
                sink: crate::event::SinkName::Store,
                healthy,
                backlog: self.pending.len() as u64,
            }));
    }

    /// Says once per episode that the outbox is full, and when it has room again.
    fn outbox_trimmed(&mut self, dropped: u64) {
        let limit = self.store.outbox_limit();
        match (self.outbox_full, dropped) {
            (None, 0) => {}
            (None, n) => {
                self.outbox_full = Some(n);
                self.report_outbox(format!(
                    "the InfluxDB outbox is full ({limit} lines, storage.influxdb.max_outbox_lines): \
                     dropped the {n} oldest lines to make room, and drops more until InfluxDB takes them"
                ));
            }
            (Some(total), 0) => {
                self.outbox_full = None;
                self.report_outbox(format!(
                    "the InfluxDB outbox has room again; {total} lines were dropped while it was full \
                     (`sitewatch outbox` shows the running count)"
                ));
            }
            (Some(total), n) => self.outbox_full = Some(total + n),
        }
    }

    fn report_outbox(&self, message: String) {
        lines::report(&self.bus, message);
    }

    /// Writes the first `n` pending records in one transaction. Returns, when it queued lines in
    /// the outbox, how many old ones it dropped to hold the limit.
    fn write(&mut self, n: usize) -> Result<Option<u64>, super::StoreError> {
        if self.conn.is_none() {
            self.conn = Some(self.store.connect_for_writing()?);
        }
        let conn = self.conn.as_mut().expect("just connected");
        if self.options.rollups && self.rollups.needs_catch_up() {
            self.rollups.catch_up(conn)?;
        }
        let tx = conn.transaction()?;
        let mut queued = false;
        let mut rang = false;
        {
            let mut site =
                tx.prepare_cached("INSERT OR IGNORE INTO sites (name, url) VALUES (?1, ?2)")?;
            let mut site_id =
                tx.prepare_cached("SELECT id FROM sites WHERE name = ?1 AND url = ?2")?;
            let mut measurement = tx.prepare_cached(
                "INSERT INTO measurements (site_id, time_us, ok, status, ttfb_us, response_us, dns_us,
                     connect_us, tls_us, body_bytes, truncated, error_kind, error_message, lag_us, metrics,
                     duration_us, maintenance, cert_id, steps)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?;
            let mut alert = tx.prepare_cached(
                "INSERT INTO alerts (site, url, kind, availability, time_us, down_since_us, message, rendered, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut remote = tx.prepare_cached(
                "INSERT INTO alerts (site, url, kind, availability, time_us, down_since_us, message, rendered, detail, remote)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1
                 WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE site = ?1 AND url = ?2 AND kind = ?3 AND time_us = ?5)",
            )?;
            let mut outbox = tx.prepare_cached("INSERT INTO outbox (line) VALUES (?1)")?;
            let mut notification = tx.prepare_cached(
                "INSERT INTO notifications (notifier, alert_id, kind, created_us, body, after_cluster)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for record in self.pending.iter().take(n) {
                match record {
                    Record::Measurement(m) => {
                        let key = (Arc::clone(&m.site), Arc::clone(&m.url));
                        let id = match self.site_ids.get(&key) {
                            Some(id) => *id,
                            None => {
                                site.execute(params![&*m.site, &*m.url])?;
                                let id: i64 =
                                    site_id.query_row(params![&*m.site, &*m.url], |r| r.get(0))?;
                                self.site_ids.insert(key, id);
                                id
                            }
                        };
                        let us = |d: Option<Duration>| d.map(|d| d.as_micros() as i64);
                        let cert_id = match &m.tls {
                            None => None,
                            Some(t) => Some(cert_id(&tx, &mut self.cert_ids, t)?),
                        };
                        measurement.execute(params![
                            id,
                            m.time.timestamp_micros(),
                            m.ok,
                            m.status,
                            us(m.ttfb),
                            us(m.response_time),
                            us(m.phases.dns),
                            us(m.phases.connect),
                            us(m.phases.tls),
                            m.body_bytes as i64,
                            m.body_truncated,
                            m.error.as_ref().map(|e| e.kind.as_str()),
                            m.error.as_ref().map(|e| e.message.as_str()),
                            m.schedule_lag.as_micros() as i64,
                            metrics_json(&m.metrics),
                            m.duration.as_micros() as i64,
                            m.maintenance,
                            cert_id,
                            crate::steps_json(&m.steps),
                        ])?;
                        self.rollups
                            .add(id, tx.last_insert_rowid(), &Probe::from(m));
                        if self.options.outbox {
                            outbox.execute([lines::probe_line(m, &self.options.location)])?;
                            for line in lines::step_lines(m, &self.options.location) {
                                outbox.execute([line])?;
                            }
                            queued = true;
                        }
                    }
                    Record::Alert(a, notifications) => {
                        alert.execute(rusqlite::params_from_iter(alert_params(a)))?;
                        let alert_id = tx.last_insert_rowid();
                        for q in notifications {
                            notification.execute(params![
                                &*q.notifier,
                                alert_id,
                                a.kind.as_str(),
                                a.time.timestamp_micros(),
                                q.body,
                                q.after_cluster,
                            ])?;
                            rang = true;
                        }
                        if self.options.outbox {
                            outbox.execute([lines::alert_line(a, &self.options.location)])?;
                            queued = true;
                        }
                    }
                    Record::Remote(a) => {
                        remote.execute(rusqlite::params_from_iter(alert_params(a)))?;
                    }
                    Record::Configure(_) => {}
                }
            }
        }
        if self.options.rollups {
            self.rollups.finish(&tx, self.options.rollup_every)?;
        }
        let trimmed = if queued {
            Some(trim_outbox(
                &tx,
                self.store.outbox_limit(),
                self.clock.now().timestamp_micros(),
            )?)
        } else {
            None
        };
        tx.commit()?;
        if rang {
            self.store.notifications_queued();
        }
        Ok(trimmed)
    }

    /// Deletes what is older than each retention: raw rows, rollup rows, and alerts when they
    /// have a retention. Each statement deletes a bounded slice, so no write lock is held long.
    fn prune(&mut self) {
        self.last_prune = Some(Instant::now());
        let now = self.clock.now();
        let retention = self.options.retention;
        let result = (|| -> Result<(usize, usize, usize), super::StoreError> {
            if self.conn.is_none() {
                self.conn = Some(self.store.connect()?);
            }
            let conn = self.conn.as_ref().expect("just connected");
            let raw = prune_raw(conn, cutoff_us(now, retention.raw))?;
            let rollups = crate::history::prune(conn, &retention, now.timestamp_micros())?;
            let alerts = match retention.alerts {
                Some(keep) => prune_alerts(conn, cutoff_us(now, keep))?,
                None => 0,
            };
            Ok((raw, rollups, alerts))
        })();
        match result {
            Ok((0, 0, 0)) => {}
            Ok((raw, rollups, alerts)) => tracing::info!(
                "pruned {raw} measurements, {rollups} rollup rows and {alerts} alerts older than their retention"
            ),
            Err(e) => tracing::warn!("pruning the store failed: {}", crate::error_chain(&e)),
        }
    }
}

fn cutoff_us(now: chrono::DateTime<chrono::Utc>, keep: Duration) -> i64 {
    crate::clock::ago(now, keep).timestamp_micros()
}

/// Raw rows deleted per statement, at most.
const PRUNE_SLICE: i64 = 10_000;

/// Deletes measurements before `cutoff_us`, site by site and a slice at a time. The newest row
/// of the table is never deleted: rowids then never repeat, and the rollups' checkpoint mark
/// (a rowid) stays meaningful.
fn prune_raw(conn: &Connection, cutoff_us: i64) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM sites")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    let mut stmt = conn.prepare_cached(
        "DELETE FROM measurements WHERE rowid IN (
             SELECT rowid FROM measurements WHERE site_id = ?1 AND time_us < ?2 LIMIT ?3)
           AND rowid < (SELECT MAX(rowid) FROM measurements)",
    )?;
    for id in ids {
        loop {
            let n = stmt.execute(params![id, cutoff_us, PRUNE_SLICE])?;
            deleted += n;
            if (n as i64) < PRUNE_SLICE {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Deletes alerts before `cutoff_us` with the record of their notifications, a slice at a time.
/// The newest alert of each condition of each site is kept: restoring alert states (an open
/// incident) and reminders read it.
fn prune_alerts(conn: &Connection, cutoff_us: i64) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    loop {
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT a.id FROM alerts a WHERE a.time_us < ?1
                   AND a.id <> (SELECT MAX(b.id) FROM alerts b
                                WHERE b.site = a.site AND b.url = a.url
                                  AND (CASE WHEN b.kind IN ('down', 'recovered') THEN 0
                                            WHEN b.kind IN ('degraded', 'degraded_recovered') THEN 1
                                            ELSE 2 END)
                                    = (CASE WHEN a.kind IN ('down', 'recovered') THEN 0
                                            WHEN a.kind IN ('degraded', 'degraded_recovered') THEN 1
                                            ELSE 2 END))
                 ORDER BY a.id LIMIT ?2",
            )?
            .query_map(params![cutoff_us, PRUNE_SLICE], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            break;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM notifications WHERE alert_id IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(&ids).unwrap_or_default()],
        )?;
        deleted += tx.execute(
            "DELETE FROM alerts WHERE id IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(&ids).unwrap_or_default()],
        )?;
        tx.commit()?;
        if (ids.len() as i64) < PRUNE_SLICE {
            break;
        }
    }
    Ok(deleted)
}

/// Drops the oldest outbox lines beyond `limit` and adds them to the running count; returns how
/// many. O(log n) per call: the length is the id span ([`super::outbox_bounds`]), never a
/// `COUNT(*)`, and the cut is an id range at the head.
fn trim_outbox(conn: &Connection, limit: u64, now_us: i64) -> rusqlite::Result<u64> {
    let Some((first, last)) = super::outbox_bounds(conn)? else {
        return Ok(0);
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if last - first < limit {
        return Ok(0);
    }
    let dropped = conn.execute("DELETE FROM outbox WHERE id <= ?1", [last - limit])? as u64;
    if dropped > 0 {
        conn.execute(
            "INSERT INTO outbox_dropped (id, lines, last_us) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET lines = lines + excluded.lines, last_us = excluded.last_us",
            params![dropped as i64, now_us],
        )?;
    }
    Ok(dropped)
}

/// TLS summaries remembered by the writer; a site set of thousands serves far fewer chains.
const CERT_CACHE: usize = 4096;

/// The `certs` id of a TLS summary, adding it the first time it is seen. Chains repeat on
/// every probe: each is stored once, keyed by a SHA-256 of its JSON.
fn cert_id(
    tx: &rusqlite::Transaction<'_>,
    cache: &mut HashMap<String, i64>,
    tls: &crate::measurement::TlsDetails,
) -> rusqlite::Result<i64> {
    use sha2::Digest;
    let json = serde_json::to_string(tls).unwrap_or_default();
    if let Some(id) = cache.get(&json) {
        return Ok(*id);
    }
    let fingerprint = format!("{:x}", sha2::Sha256::digest(json.as_bytes()));
    tx.prepare_cached("INSERT OR IGNORE INTO certs (fingerprint, details) VALUES (?1, ?2)")?
        .execute(params![fingerprint, json])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM certs WHERE fingerprint = ?1")?
        .query_row([&fingerprint], |r| r.get(0))?;
    if cache.len() >= CERT_CACHE {
        cache.clear();
    }
    cache.insert(json, id);
    Ok(id)
}

/// An alert's columns, in the order of the alert inserts' parameters (?1 to ?9).
fn alert_params(a: &Alert) -> [Box<dyn rusqlite::ToSql + '_>; 9] {
    [
        Box::new(&*a.site),
        Box::new(&*a.url),
        Box::new(a.kind.as_str()),
        Box::new(a.availability),
        Box::new(a.time.timestamp_micros()),
        Box::new(a.down_since.map(|t| t.timestamp_micros())),
        Box::new(&a.message),
        Box::new(&a.rendered),
        Box::new(crate::AlertDetail::json(a)),
    ]
}
