//! The node's outbox for the cluster stream is its own store: every probe the node makes is a
//! measurement row (rowids only grow: pruning keeps the newest row), and `cluster_outbox` holds
//! the newest row the stream has acknowledged. The publisher reads the rows after it, so what a
//! node probes while NATS is unreachable, or while it is stopped and started again, reaches the
//! stream when NATS is back; only rows more than `buffer` behind, or pruned by retention first,
//! are skipped (and counted). The mark is set when a node first runs as a cluster node, so an
//! older store's history is not published.
//!
//! The node's own alerts (not the ones it keeps from other nodes) are the outbox of the alert
//! stream the same way ([`Alerts`]). Both are [`Outbox`]es: the mark is the newest alert id the stream has, so an
//! alert committed while NATS is away, or just before the node stops, is published later.

use crate::alert::Alert;
use crate::measurement::sample::{Sample, SampleStep};
use crate::measurement::{ErrorKind, TlsDetails};
use crate::outbox::{Outbox, Settled};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Rows published per batch.
pub const SAMPLE_BATCH: usize = 512;

/// The marks, set to the newest measurement and alert on a node's first start as a cluster
/// node; returns the measurement mark.
pub fn init(conn: &Connection) -> Result<i64, StoreError> {
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

/// This node's probes as the outbox of the cluster's measurement stream: the rows after the
/// mark, as samples of the node. When more than `buffer` rows wait, the oldest are skipped
/// (they stay in the node's store; [`Samples::take_skipped`] counts them for a warning).
pub struct Samples {
    node: String,
    location: String,
    buffer: usize,
    /// The newest row published.
    mark: i64,
    /// Rows skipped since the count was last taken.
    skipped: u64,
    /// Earliest certificate expiry per stored chain (`certs.id`), parsed once.
    expiries: HashMap<i64, Option<i64>>,
}

impl Samples {
    pub fn new(node: &str, location: &str, buffer: usize) -> Self {
        Self {
            node: node.to_owned(),
            location: location.to_owned(),
            buffer,
            mark: 0,
            skipped: 0,
            expiries: HashMap::new(),
        }
    }

    /// Rows skipped over the buffer since the last call.
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
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

    fn commit(&mut self, conn: &Connection, rowid: i64) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE cluster_outbox SET published_rowid = ?1 WHERE id = 1",
            [rowid],
        )?;
        self.mark = rowid;
        Ok(())
    }
}

impl Outbox for Samples {
    type Item = Sample;

    fn reopen(&mut self, conn: &mut Connection) -> Result<(), StoreError> {
        self.mark = init(conn)?;
        self.expiries.clear();
        Ok(())
    }

    fn waiting(
        &mut self,
        conn: &mut Connection,
        limit: usize,
    ) -> Result<Vec<(i64, Sample)>, StoreError> {
        let newest: i64 =
            conn.query_row("SELECT IFNULL(MAX(rowid), 0) FROM measurements", [], |r| {
                r.get(0)
            })?;
        let buffer = i64::try_from(self.buffer).unwrap_or(i64::MAX);
        if newest - self.mark > buffer {
            self.skipped += (newest - buffer - self.mark) as u64;
            self.commit(conn, newest - buffer)?;
        }
        let mut stmt = conn.prepare_cached(
            "SELECT m.rowid, s.name, m.time_us, m.duration_us, m.ok, m.status, m.ttfb_us,
                    m.response_us, m.dns_us, m.connect_us, m.tls_us, m.body_bytes, m.error_kind,
                    m.error_message, m.cert_id, m.steps
             FROM measurements m JOIN sites s ON s.id = m.site_id
             WHERE m.rowid > ?1 ORDER BY m.rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![self.mark, limit as i64], |r| {
            let us = |i: usize| -> rusqlite::Result<Option<u64>> {
                Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
            };
            let kind: Option<String> = r.get(12)?;
            Ok((
                r.get::<_, i64>(0)?,
                Sample {
                    node: self.node.clone(),
                    location: self.location.clone(),
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
                    steps: crate::parse_steps(r.get::<_, Option<String>>(15)?.as_deref())
                        .iter()
                        .map(SampleStep::from)
                        .collect(),
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
                sample.cert_expiry_us = self.expiry(conn, id)?;
            }
            out.push((rowid, sample));
        }
        Ok(out)
    }

    /// The stream has every row up to `last` (it refuses none for good: a refusal is retried).
    fn settle(
        &mut self,
        conn: &mut Connection,
        _first: i64,
        last: i64,
        _how: Settled<'_>,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.commit(conn, last)
    }

    fn len(&mut self, conn: &mut Connection) -> Result<u64, StoreError> {
        let newest: i64 =
            conn.query_row("SELECT IFNULL(MAX(rowid), 0) FROM measurements", [], |r| {
                r.get(0)
            })?;
        Ok((newest - self.mark).max(0) as u64)
    }
}

/// Alerts published per read.
pub const ALERT_BATCH: usize = 64;

/// This node's committed alerts the alert stream has not acknowledged, oldest first (see the
/// module's documentation), each with whether notifications of it wait for the stream (a
/// leader's alert; see [`crate::notices::Notifications`]). An alert refused by the stream
/// because another node delivered it is superseded: its notifications here are not sent.
pub struct Alerts {
    /// Rings the notifiers when the mark moves: a leader's notifications up to it may go.
    store: Store,
    /// The newest alert (`alerts.id`) published.
    mark: i64,
}

impl Alerts {
    pub fn new(store: &Store) -> Self {
        Self {
            store: store.clone(),
            mark: 0,
        }
    }
}

impl Outbox for Alerts {
    type Item = (Alert, bool);

    fn reopen(&mut self, conn: &mut Connection) -> Result<(), StoreError> {
        init(conn)?;
        self.mark = conn.query_row(
            "SELECT IFNULL(published_alert, 0) FROM cluster_outbox WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(())
    }

    fn waiting(
        &mut self,
        conn: &mut Connection,
        limit: usize,
    ) -> Result<Vec<(i64, (Alert, bool))>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {}, id, EXISTS (SELECT 1 FROM notifications n WHERE n.alert_id = alerts.id
                 AND n.state = 'pending' AND n.after_cluster = 1)
             FROM alerts WHERE id > ?1 AND remote = 0 ORDER BY id LIMIT ?2",
            crate::ALERT_COLUMNS
        ))?;
        let rows = stmt.query_map(params![self.mark, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(9)?,
                (crate::alert_row(r)?, r.get::<_, bool>(10)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stream has every alert of this node up to `last`; a refused one (`first` = `last`)
    /// was delivered by another node, and its notifications here are superseded.
    fn settle(
        &mut self,
        conn: &mut Connection,
        first: i64,
        last: i64,
        how: Settled<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Settled::Refused(why) = how {
            for id in first..=last {
                crate::notices::supersede(conn, id, now, why)?;
            }
        }
        conn.execute(
            "UPDATE cluster_outbox SET published_alert = ?1 WHERE id = 1",
            [last],
        )?;
        self.mark = last;
        // A leader's notifications up to here may go now.
        self.store.notifications_queued();
        Ok(())
    }

    fn len(&mut self, conn: &mut Connection) -> Result<u64, StoreError> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM alerts WHERE id > ?1 AND remote = 0",
            [self.mark],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Queue;
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
        let open = || Queue::new(&store, Alerts::new(&store));
        let waiting = |q: &Queue<Alerts>| q.call(|o, c| o.waiting(c, ALERT_BATCH)).unwrap();
        let delivered = |q: &Queue<Alerts>, id: i64| {
            q.call(|o, c| o.settle(c, id, id, Settled::Delivered(""), chrono::Utc::now()))
                .unwrap()
        };
        // Before the node first runs in a cluster: history, not published.
        crate::testing::write_all(&store, vec![Record::Alert(alert("old", 0), Vec::new())]);
        let outbox = open();
        assert!(waiting(&outbox).is_empty());
        crate::testing::write_all(
            &store,
            vec![
                Record::Alert(alert("a", 1), Vec::new()),
                Record::Remote(alert("theirs", 2)),
                Record::Alert(alert("b", 3), Vec::new()),
            ],
        );
        let got = waiting(&outbox);
        let sites: Vec<&str> = got.iter().map(|(_, (a, _))| &*a.site).collect();
        assert_eq!(sites, ["a", "b"], "this node's alerts only, in order");
        assert_eq!(outbox.call(|o, c| o.len(c)).unwrap(), 2);
        assert_eq!(
            got[0].1.0.time.timestamp_micros(),
            alert("a", 1).time.timestamp_micros()
        );
        // Not acknowledged: a restart finds them again.
        delivered(&outbox, got[0].0);
        let again = open();
        let left: Vec<String> = waiting(&again)
            .into_iter()
            .map(|(_, (a, _))| a.site.to_string())
            .collect();
        assert_eq!(left, ["b"]);
        let last = waiting(&again)[0].0;
        delivered(&again, last);
        assert!(waiting(&open()).is_empty());
    }
}
