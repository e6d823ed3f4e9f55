//! A notifier's outbox in the store (the `notifications` table): what waits, in id order, and
//! what became of each notification. The writer adds a notification in the alert's own
//! transaction; the notifier reads its queue, marks outcomes and adds reminders here.

use crate::outbox::{Outbox, Settled};
use crate::{StoreError, from_us};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

pub use sitewatch_core::notice::{Notice, NoticeKind};

/// The alert's columns first (as [`crate::alert_row`] reads them), then the notification's.
const NOTICE_COLUMNS: &str = "a.site, a.url, a.kind, a.availability, a.time_us, a.down_since_us,
     a.message, a.rendered, a.detail, n.id, n.alert_id, n.kind, n.created_us, n.body, n.attempts";

fn notice_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notice> {
    Ok(Notice {
        alert: crate::alert_row(r)?,
        id: r.get(9)?,
        alert_id: r.get(10)?,
        kind: NoticeKind::parse(&r.get::<_, String>(11)?),
        created: from_us(r.get(12)?),
        body: r.get(13)?,
        attempts: r.get::<_, i64>(14)? as u32,
    })
}

/// One notifier's outbox: its notifications in id order. A cluster leader's notification
/// waits, and every later one behind it, until the cluster's alert stream has its alert
/// (`after_cluster`): a new leader can then tell whether it went out. Delivered or refused,
/// each keeps the service's answer; the notifier's other outcomes (an attempt that will be
/// retried, one given up) are [`mark`]ed.
pub struct Notifications {
    pub notifier: String,
}

impl Outbox for Notifications {
    type Item = Notice;

    fn waiting(
        &mut self,
        conn: &mut Connection,
        limit: usize,
    ) -> Result<Vec<(i64, Notice)>, StoreError> {
        Ok(pending(conn, &self.notifier, limit)?
            .into_iter()
            .map(|n| (n.id, n))
            .collect())
    }

    fn settle(
        &mut self,
        conn: &mut Connection,
        first: i64,
        last: i64,
        how: Settled<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, result) = match how {
            Settled::Delivered(answer) => ("delivered", answer),
            Settled::Refused(why) => ("failed", why),
        };
        conn.execute(
            "UPDATE notifications SET state = ?4, attempts = attempts + 1, updated_us = ?5,
                 result = ?6
             WHERE notifier = ?1 AND state = 'pending' AND id BETWEEN ?2 AND ?3",
            params![
                self.notifier,
                first,
                last,
                state,
                now.timestamp_micros(),
                result
            ],
        )?;
        Ok(())
    }

    fn len(&mut self, conn: &mut Connection) -> Result<u64, StoreError> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM notifications WHERE notifier = ?1 AND state = 'pending'",
            [&self.notifier],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

/// The first `limit` notifications waiting for `notifier`, oldest first (see
/// [`Notifications`]).
pub(crate) fn pending(
    conn: &Connection,
    notifier: &str,
    limit: usize,
) -> Result<Vec<Notice>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTICE_COLUMNS} FROM notifications n JOIN alerts a ON a.id = n.alert_id
         WHERE n.notifier = ?1 AND n.state = 'pending'
           AND n.id < IFNULL((SELECT MIN(w.id) FROM notifications w
                WHERE w.notifier = ?1 AND w.state = 'pending' AND w.after_cluster = 1
                  AND w.alert_id > IFNULL((SELECT published_alert FROM cluster_outbox WHERE id = 1), 0)),
                9223372036854775807)
         ORDER BY n.id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![notifier, limit as i64], notice_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A cluster leader's alert `alert_id` that another node delivered (this node died, or lost
/// NATS, before the cluster's alert stream had it): its notifications here are not sent.
pub fn supersede(
    conn: &Connection,
    alert_id: i64,
    now: DateTime<Utc>,
    why: &str,
) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE notifications SET state = 'superseded', updated_us = ?2, result = ?3
         WHERE alert_id = ?1 AND state = 'pending' AND after_cluster = 1",
        params![alert_id, now.timestamp_micros(), why],
    )?)
}

/// A node that runs without a cluster now: its notifications that waited for the cluster's
/// alert stream go out. Returns how many.
pub fn release_cluster_waits(conn: &Connection) -> Result<usize, StoreError> {
    // A store that never ran as a cluster node has nothing waiting: no scan at its start.
    let clustered = conn
        .query_row("SELECT 1 FROM cluster_outbox WHERE id = 1", [], |_| Ok(()))
        .optional()?
        .is_some();
    if !clustered {
        return Ok(0);
    }
    Ok(conn.execute(
        "UPDATE notifications SET after_cluster = 0 WHERE state = 'pending' AND after_cluster = 1",
        [],
    )?)
}

/// What happened to notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A request delivered them.
    Delivered,
    /// A request was refused for good.
    Failed,
    /// No request was made: they are too old to send (`max_age`).
    GaveUp,
    /// An attempt failed; they stay pending.
    Attempted,
}

/// Records an outcome of the notifications `ids`, with the service's answer or the reason.
pub fn mark(
    conn: &mut Connection,
    ids: &[i64],
    mark: Mark,
    now: DateTime<Utc>,
    result: &str,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let sql = match mark {
            Mark::Delivered => {
                "UPDATE notifications SET state = 'delivered', attempts = attempts + 1,
                 updated_us = ?2, result = ?3 WHERE id = ?1"
            }
            Mark::Failed => {
                "UPDATE notifications SET state = 'failed', attempts = attempts + 1,
                 updated_us = ?2, result = ?3 WHERE id = ?1"
            }
            Mark::GaveUp => {
                "UPDATE notifications SET state = 'failed', updated_us = ?2, result = ?3 WHERE id = ?1"
            }
            Mark::Attempted => {
                "UPDATE notifications SET attempts = attempts + 1, updated_us = ?2, result = ?3
                 WHERE id = ?1"
            }
        };
        let mut stmt = tx.prepare_cached(sql)?;
        for id in ids {
            stmt.execute(params![id, now.timestamp_micros(), result])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A site this notifier told about going down, which has not recovered since.
#[derive(Debug, Clone, PartialEq)]
pub struct StillDown {
    pub alert_id: i64,
    pub site: String,
    /// The newest notification of it (the down alert or a reminder).
    pub last_notice: DateTime<Utc>,
}

/// The down alerts `notifier` was given that are still their site's newest down or recovered
/// alert (by site name, whatever its URL now; degraded and certificate alerts do not end it) and have no notification of it waiting.
pub fn still_down(conn: &Connection, notifier: &str) -> Result<Vec<StillDown>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.site, MAX(n.created_us) FROM notifications n JOIN alerts a ON a.id = n.alert_id
         WHERE n.notifier = ?1 AND a.kind = 'down'
           AND a.id = (SELECT MAX(b.id) FROM alerts b
                       WHERE b.site = a.site AND b.kind IN ('down', 'recovered'))
           AND NOT EXISTS (SELECT 1 FROM notifications p
                           WHERE p.notifier = ?1 AND p.alert_id = a.id AND p.state = 'pending')
         GROUP BY a.id",
    )?;
    let rows = stmt.query_map([notifier], |r| {
        Ok(StillDown {
            alert_id: r.get(0)?,
            site: r.get(1)?,
            last_notice: from_us(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Queues a reminder of the down alert `alert_id` for `notifier`, if it is still its site's
/// newest alert and nothing of it waits. Checked and written in one write transaction, so a
/// recovery committed meanwhile is either seen (no reminder) or comes after the reminder.
/// Returns whether it queued one.
pub fn add_reminder(
    conn: &mut Connection,
    notifier: &str,
    alert_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let added = tx.execute(
        "INSERT INTO notifications (notifier, alert_id, kind, created_us)
         SELECT ?1, ?2, 'reminder', ?3
         WHERE ?2 = (SELECT MAX(b.id) FROM alerts b
                     WHERE b.site = (SELECT site FROM alerts WHERE id = ?2)
                       AND b.kind IN ('down', 'recovered'))
           AND NOT EXISTS (SELECT 1 FROM notifications
                           WHERE notifier = ?1 AND alert_id = ?2 AND state = 'pending')",
        params![notifier, alert_id, now.timestamp_micros()],
    )?;
    tx.commit()?;
    Ok(added > 0)
}

/// A notifier's queue and last outcome, for `sitewatch notify list`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSummary {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    /// The newest outcome: state, when, and the answer.
    pub last: Option<(String, DateTime<Utc>, String)>,
}

/// Every notifier that has notifications in the store, by name.
pub fn summaries(conn: &Connection) -> Result<HashMap<String, QueueSummary>, StoreError> {
    let mut out: HashMap<String, QueueSummary> = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT notifier, state, COUNT(*) FROM notifications GROUP BY notifier, state")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (notifier, state, n) = row?;
        let s = out.entry(notifier).or_default();
        match state.as_str() {
            "pending" => s.pending = n as u64,
            "delivered" => s.delivered = n as u64,
            // Another node of the cluster sent them.
            "superseded" => {}
            _ => s.failed += n as u64,
        }
    }
    let mut last = conn.prepare(
        "SELECT state, updated_us, result FROM notifications
         WHERE notifier = ?1 AND updated_us IS NOT NULL ORDER BY updated_us DESC, id DESC LIMIT 1",
    )?;
    for (name, s) in out.iter_mut() {
        s.last = last
            .query_row([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    from_us(r.get(1)?),
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })
            .optional()?;
    }
    Ok(out)
}

/// One notification of an alert, as `sitewatch alerts` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub notifier: String,
    pub kind: NoticeKind,
    pub state: String,
    pub attempts: u32,
    pub updated: Option<DateTime<Utc>>,
    pub result: Option<String>,
}

/// The notifications of the alert `alert_id`, in the order they were queued.
pub fn deliveries(conn: &Connection, alert_id: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT notifier, kind, state, attempts, updated_us, result FROM notifications
         WHERE alert_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([alert_id], |r| {
        Ok(DeliveryRecord {
            notifier: r.get(0)?,
            kind: NoticeKind::parse(&r.get::<_, String>(1)?),
            state: r.get(2)?,
            attempts: r.get::<_, i64>(3)? as u32,
            updated: r.get::<_, Option<i64>>(4)?.map(from_us),
            result: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl DeliveryRecord {
    /// `delivered to ops-slack at 2026-12-01T10:00:03Z`, `pager failed: 400 ...`,
    /// `mail waiting (3 attempts; last: connection refused)`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            NoticeKind::Reminder => " (reminder)",
            _ => "",
        };
        let when = self
            .updated
            .map(crate::clock::rfc3339_seconds)
            .unwrap_or_default();
        let result = self.result.as_deref().unwrap_or("");
        match self.state.as_str() {
            "delivered" => format!("delivered to {}{what} at {when}", self.notifier),
            "failed" => format!("{}{what} failed: {result}", self.notifier),
            "superseded" => format!("{}{what} superseded: {result}", self.notifier),
            _ if self.attempts == 0 => format!("{}{what} waiting", self.notifier),
            _ => format!(
                "{}{what} waiting ({} attempt{}; last: {result})",
                self.notifier,
                self.attempts,
                if self.attempts == 1 { "" } else { "s" }
            ),
        }
    }
}
