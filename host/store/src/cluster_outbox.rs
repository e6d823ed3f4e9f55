//! The node's outbox for the cluster stream is its own store: every probe the node makes is a
//! measurement row (rowids only grow: pruning keeps the newest row), and `cluster_outbox` holds
//! the newest row the stream has acknowledged. The publisher reads the rows after it, so what a
//! node probes while NATS is unreachable, or while it is stopped and started again, reaches the
//! stream when NATS is back; only rows more than `buffer` behind, or pruned by retention first,
//! are skipped (and counted). The mark is set when a node first runs as a cluster node, so an
//! older store's history is not published.
//!
//! The node's own alerts (not the ones it keeps from other nodes) are the outbox of the alert
//! stream the same way ([`AlertOutbox`]): the mark is the newest alert id the stream has, so an
//! alert committed while NATS is away, or just before the node stops, is published later.

use crate::alert::Alert;
use crate::measurement::sample::Sample;
use crate::measurement::{ErrorKind, TlsDetails};
use crate::{Store, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Rows published per batch.
pub(crate) const BATCH: usize = 512;

/// The marks, set to the newest measurement and alert on a node's first start as a cluster
/// node; returns the measurement mark.
pub fn init(store: &Store) -> Result<i64, StoreError> {
    let conn = store.connect_for_writing()?;
    conn.execute(
        "INSERT OR IGNORE INTO cluster_outbox (id, published_rowid)
         SELECT 1, IFNULL(MAX(rowid), 0) FROM measurements",
        [],
    )?;
    conn.execute(
        "UPDATE cluster_outbox SET published_alert = (SELECT IFNULL(MAX(id), 0) FROM alerts)
         WHERE id = 1 AND published_alert IS NULL",
        [],
    )?;
    Ok(conn.query_row(
        "SELECT published_rowid FROM cluster_outbox WHERE id = 1",
        [],
        |r| r.get(0),
    )?)
}

/// Reads the rows after the mark and moves the mark.
/// Each call opens its own connection: a connection kept open would keep the old file's WAL
/// name when a damaged store is set aside and replaced (and SQLite, closing the last connection
/// of the old file, would delete the new one's WAL).
pub struct Reader {
    store: Store,
    /// The store's generation the mark was read in: a damaged store set aside and replaced is
    /// read afresh, from its (salvaged) mark.
    generation: u64,
    /// The newest row published.
    pub mark: i64,
    /// Earliest certificate expiry per stored chain (`certs.id`), parsed once.
    expiries: HashMap<i64, Option<i64>>,
}

impl Reader {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let mark = init(store)?;
        Ok(Self {
            store: store.clone(),
            generation: store.generation(),
            mark,
            expiries: HashMap::new(),
        })
    }

    /// Up to `BATCH` rows after the mark as samples of `node` in `location`, with their rowids.
    /// When more than `buffer` rows wait, the oldest are skipped first; returns how many.
    pub fn next(
        &mut self,
        node: &str,
        location: &str,
        buffer: usize,
    ) -> Result<(Vec<(i64, Sample)>, u64), StoreError> {
        if self.store.generation() != self.generation {
            *self = Self::open(&self.store)?;
        }
        let conn = self.store.connect_for_writing()?;
        let newest: i64 =
            conn.query_row("SELECT IFNULL(MAX(rowid), 0) FROM measurements", [], |r| {
                r.get(0)
            })?;
        let mut skipped = 0;
        let buffer = i64::try_from(buffer).unwrap_or(i64::MAX);
        if newest - self.mark > buffer {
            skipped = (newest - buffer - self.mark) as u64;
            self.commit_on(&conn, newest - buffer)?;
        }
        let mut stmt = conn.prepare_cached(
            "SELECT m.rowid, s.name, m.time_us, m.duration_us, m.ok, m.status, m.ttfb_us,
                    m.response_us, m.dns_us, m.connect_us, m.tls_us, m.body_bytes, m.error_kind,
                    m.error_message, m.cert_id
             FROM measurements m JOIN sites s ON s.id = m.site_id
             WHERE m.rowid > ?1 ORDER BY m.rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![self.mark, BATCH as i64], |r| {
            let us = |i: usize| -> rusqlite::Result<Option<u64>> {
                Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
            };
            let kind: Option<String> = r.get(12)?;
            Ok((
                r.get::<_, i64>(0)?,
                Sample {
                    node: node.to_owned(),
                    location: location.to_owned(),
                    site: r.get(1)?,
                    time_us: r.get(2)?,
                    duration_us: us(3)?.or(us(7)?).unwrap_or_default(),
                    ok: r.get(4)?,
                    status: r.get(5)?,
                    ttfb_us: us(6)?,
                    response_us: us(7)?,
                    dns_us: us(8)?,
                    connect_us: us(9)?,
                    tls_us: us(10)?,
                    body_bytes: us(11)?.unwrap_or_default(),
                    error: kind
                        .map(|k| -> rusqlite::Result<_> {
                            Ok((k, r.get::<_, Option<String>>(13)?.unwrap_or_default()))
                        })
                        .transpose()?,
                    cert_expiry_us: None,
                },
                r.get::<_, Option<i64>>(14)?,
            ))
        })?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        let mut out = Vec::with_capacity(rows.len());
        for (rowid, mut sample, cert) in rows {
            let tls_failed = sample
                .error
                .as_ref()
                .is_some_and(|(k, _)| k == ErrorKind::Tls.as_str());
            if let Some(id) = cert.filter(|_| !tls_failed) {
                sample.cert_expiry_us = self.expiry(&conn, id)?;
            }
            out.push((rowid, sample));
        }
        Ok((out, skipped))
    }

    fn expiry(&mut self, conn: &Connection, cert: i64) -> Result<Option<i64>, StoreError> {
        if let Some(e) = self.expiries.get(&cert) {
            return Ok(*e);
        }
        let details: Option<String> = conn
            .query_row("SELECT details FROM certs WHERE id = ?1", [cert], |r| {
                r.get(0)
            })
            .optional()?;
        let expiry = details
            .and_then(|d| serde_json::from_str::<TlsDetails>(&d).ok())
            .and_then(|t| t.earliest_expiry())
            .map(|e| e.timestamp_micros());
        self.expiries.insert(cert, expiry);
        Ok(expiry)
    }

    /// The stream has every row up to `rowid`.
    pub fn commit(&mut self, rowid: i64) -> Result<(), StoreError> {
        let conn = self.store.connect_for_writing()?;
        self.commit_on(&conn, rowid)
    }

    fn commit_on(&mut self, conn: &Connection, rowid: i64) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE cluster_outbox SET published_rowid = ?1 WHERE id = 1",
            [rowid],
        )?;
        self.mark = rowid;
        Ok(())
    }
}

/// Alerts published per read.
pub const ALERT_BATCH: usize = 64;

/// This node's committed alerts the alert stream has not acknowledged, oldest first (see the
/// module's documentation). Like [`Reader`], each call opens its own connection.
pub struct AlertOutbox {
    store: Store,
    generation: u64,
    /// The newest alert (`alerts.id`) published.
    mark: i64,
}

impl AlertOutbox {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        init(store)?;
        let conn = store.connect_for_writing()?;
        let mark = conn.query_row(
            "SELECT IFNULL(published_alert, 0) FROM cluster_outbox WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(Self {
            store: store.clone(),
            generation: store.generation(),
            mark,
        })
    }

    /// Up to [`ALERT_BATCH`] of this node's alerts after the mark, with their ids.
    /// With each alert, whether notifications of it wait for the stream (a leader's alert;
    /// see [`crate::notices::pending`]).
    #[allow(clippy::type_complexity)]
    pub fn waiting(&mut self) -> Result<Vec<(i64, Alert, bool)>, StoreError> {
        if self.store.generation() != self.generation {
            *self = Self::open(&self.store)?;
        }
        let conn = self.store.connect_for_writing()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {}, id, EXISTS (SELECT 1 FROM notifications n WHERE n.alert_id = alerts.id
                 AND n.state = 'pending' AND n.after_cluster = 1)
             FROM alerts WHERE id > ?1 AND remote = 0 ORDER BY id LIMIT ?2",
            crate::ALERT_COLUMNS
        ))?;
        let rows = stmt.query_map(params![self.mark, ALERT_BATCH as i64], |r| {
            Ok((
                r.get::<_, i64>(9)?,
                crate::alert_row(r)?,
                r.get::<_, bool>(10)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stream has every alert of this node up to `id`.
    pub fn commit(&mut self, id: i64) -> Result<(), StoreError> {
        if self.store.generation() != self.generation {
            // Set aside meanwhile: the fresh store's mark stands.
            return Ok(());
        }
        let conn = self.store.connect_for_writing()?;
        conn.execute(
            "UPDATE cluster_outbox SET published_alert = ?1 WHERE id = 1",
            [id],
        )?;
        self.mark = id;
        // A leader's notifications up to here may go now.
        self.store.notifications_queued();
        Ok(())
    }

    /// Another node delivered this node's alert `id` (see [`crate::notices::supersede`]).
    pub fn supersede(&self, id: i64, why: &str) -> Result<(), StoreError> {
        let conn = self.store.connect_for_writing()?;
        crate::notices::supersede(&conn, id, chrono::Utc::now(), why)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::Record;

    fn alert(site: &str, secs: i64) -> Alert {
        crate::alert::Transition::Down {
            availability: 0.5,
            time: chrono::DateTime::from_timestamp(1_700_000_000 + secs, 123_456_789).unwrap(),
        }
        .into_alert(&site.into(), &"http://a.test/".into())
    }

    #[test]
    fn own_alerts_after_the_mark_wait_until_the_stream_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("data")).unwrap();
        // Before the node first runs in a cluster: history, not published.
        crate::testing::write_all(&store, vec![Record::Alert(alert("old", 0), Vec::new())]);
        let mut outbox = AlertOutbox::open(&store).unwrap();
        assert!(outbox.waiting().unwrap().is_empty());
        crate::testing::write_all(
            &store,
            vec![
                Record::Alert(alert("a", 1), Vec::new()),
                Record::Remote(alert("theirs", 2)),
                Record::Alert(alert("b", 3), Vec::new()),
            ],
        );
        let got = outbox.waiting().unwrap();
        let sites: Vec<&str> = got.iter().map(|(_, a, _)| &*a.site).collect();
        assert_eq!(sites, ["a", "b"], "this node's alerts only, in order");
        assert_eq!(
            got[0].1.time.timestamp_micros(),
            alert("a", 1).time.timestamp_micros()
        );
        // Not acknowledged: a restart finds them again.
        outbox.commit(got[0].0).unwrap();
        let mut again = AlertOutbox::open(&store).unwrap();
        let left: Vec<String> = again
            .waiting()
            .unwrap()
            .into_iter()
            .map(|(_, a, _)| a.site.to_string())
            .collect();
        assert_eq!(left, ["b"]);
        let last = again.waiting().unwrap()[0].0;
        again.commit(last).unwrap();
        assert!(
            AlertOutbox::open(&store)
                .unwrap()
                .waiting()
                .unwrap()
                .is_empty()
        );
    }
}
