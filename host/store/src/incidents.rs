//! Incidents: what people tell the status page's readers about an outage, with a timeline of
//! updates (Statuspage's statuses: investigating, identified, monitoring, resolved). Opened,
//! updated and resolved by `sitewatch incident` and the write API; read by the page, the API
//! and the feed. People's words, not the monitor's decisions: written straight to the store (a
//! few rows, SQLite's own locking), not through the recorder.

use crate::{StoreError, from_us};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// The tables, created by the store's schema and before each write (a store made by an older
/// sitewatch gets them from the first incident on).
pub(crate) const SCHEMA: &str = include_str!("incidents.sql");

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Investigating,
        Status::Identified,
        Status::Monitoring,
        Status::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    /// From its name; the error lists the names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not an incident status (investigating, identified, monitoring, resolved)"
                )
            })
    }
}

/// One update of an incident's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub time: DateTime<Utc>,
    pub status: Status,
    pub message: String,
}

/// An incident with its timeline (oldest update first).
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub sites: Vec<String>,
    pub status: Status,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    pub updates: Vec<Update>,
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Incident {
    /// As the API and `incident list --output json` give it: the timeline newest first.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "title": self.title,
            "sites": self.sites,
            "status": self.status.as_str(),
            "opened": time_text(self.opened),
            "resolved": self.resolved.map(time_text),
            "updates": self.updates.iter().rev().map(|u| serde_json::json!({
                "time": time_text(u.time),
                "status": u.status.as_str(),
                "message": u.message,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Why an incident change was refused.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident has the id {0}")]
    NoIncident(i64),
    #[error("incident {0} is resolved; open a new one")]
    Resolved(i64),
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for IncidentError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The most characters of a title or an update's message.
const MAX_TEXT: usize = 4000;

fn text(what: &str, t: &str) -> Result<String, IncidentError> {
    let t = t.trim();
    if t.is_empty() {
        return Err(IncidentError::Bad(format!("{what}: must not be empty")));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(IncidentError::Bad(format!(
            "{what}: at most {MAX_TEXT} characters"
        )));
    }
    Ok(t.to_owned())
}

/// Opens an incident; its first update says `message` (or the title). Returns its id.
pub fn open(
    conn: &mut Connection,
    title: &str,
    sites: &[String],
    status: Status,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, IncidentError> {
    let title = text("title", title)?;
    let message = text("message", message.unwrap_or(&title))?;
    if status == Status::Resolved {
        return Err(IncidentError::Bad(
            "status: an incident opens as investigating, identified or monitoring".into(),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO incidents (title, sites, status, opened_us) VALUES (?1, ?2, ?3, ?4)",
        params![
            title,
            serde_json::to_string(sites).unwrap_or_else(|_| "[]".into()),
            status.as_str(),
            now.timestamp_micros()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO incident_updates (incident_id, time_us, status, message) VALUES (?1, ?2, ?3, ?4)",
        params![id, now.timestamp_micros(), status.as_str(), message],
    )?;
    tx.commit()?;
    Ok(id)
}

/// Adds an update (its status, else the incident's current one); `resolved` closes it.
pub fn update(
    conn: &mut Connection,
    id: i64,
    status: Option<Status>,
    message: &str,
    now: DateTime<Utc>,
) -> Result<Status, IncidentError> {
    let message = text("message", message)?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    let current: Option<(String, Option<i64>)> = tx
        .query_row(
            "SELECT status, resolved_us FROM incidents WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((current, resolved)) = current else {
        return Err(IncidentError::NoIncident(id));
    };
    if resolved.is_some() {
        return Err(IncidentError::Resolved(id));
    }
    let status = match status {
        Some(s) => s,
        None => Status::parse(&current).unwrap_or(Status::Investigating),
    };
    tx.execute(
        "INSERT INTO incident_updates (incident_id, time_us, status, message) VALUES (?1, ?2, ?3, ?4)",
        params![id, now.timestamp_micros(), status.as_str(), message],
    )?;
    let resolved_us = (status == Status::Resolved).then(|| now.timestamp_micros());
    tx.execute(
        "UPDATE incidents SET status = ?2, resolved_us = ?3 WHERE id = ?1",
        params![id, status.as_str(), resolved_us],
    )?;
    tx.commit()?;
    Ok(status)
}

/// The incidents open now or resolved since `since`, newest first, each with its timeline.
pub fn recent(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<Incident>, StoreError> {
    select(
        conn,
        "WHERE resolved_us IS NULL OR resolved_us >= ?1 ORDER BY opened_us DESC, id DESC LIMIT 100",
        since.timestamp_micros(),
    )
}

/// The incident `id` with its timeline, if there is one.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Incident>, StoreError> {
    Ok(select(conn, "WHERE id = ?1", id)?.pop())
}

/// The incidents `filter` (an SQL tail with one parameter) selects, with their timelines.
fn select(conn: &Connection, filter: &str, param: i64) -> Result<Vec<Incident>, StoreError> {
    // A store no incident was ever written to (an older one, read-only) has none.
    let exists: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'incidents'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT id, title, sites, status, opened_us, resolved_us FROM incidents {filter}"
    ))?;
    let rows = stmt.query_map([param], |r| {
        Ok(Incident {
            id: r.get(0)?,
            title: r.get(1)?,
            sites: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
            status: Status::parse(&r.get::<_, String>(3)?).unwrap_or(Status::Investigating),
            opened: from_us(r.get(4)?),
            resolved: r.get::<_, Option<i64>>(5)?.map(from_us),
            updates: Vec::new(),
        })
    })?;
    let mut incidents: Vec<Incident> = rows.collect::<Result<_, _>>()?;
    let mut updates = conn.prepare(
        "SELECT time_us, status, message FROM incident_updates WHERE incident_id = ?1 ORDER BY id",
    )?;
    for i in &mut incidents {
        let rows = updates.query_map([i.id], |r| {
            Ok(Update {
                time: from_us(r.get(0)?),
                status: Status::parse(&r.get::<_, String>(1)?).unwrap_or(Status::Investigating),
                message: r.get(2)?,
            })
        })?;
        i.updates = rows.collect::<Result<_, _>>()?;
    }
    Ok(incidents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_opens_is_updated_and_resolves_with_its_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = crate::Store::open(dir.path()).unwrap();
        let mut conn = store.connect_for_writing().unwrap();
        let t0 = Utc::now();
        let id = open(
            &mut conn,
            "Database failover",
            &["db".into()],
            Status::Investigating,
            None,
            t0,
        )
        .unwrap();
        let t1 = t0 + chrono::Duration::minutes(5);
        update(
            &mut conn,
            id,
            Some(Status::Monitoring),
            "Fixed, watching",
            t1,
        )
        .unwrap();
        assert_eq!(
            update(&mut conn, id, None, "still fine", t1).unwrap(),
            Status::Monitoring
        );
        let t2 = t1 + chrono::Duration::minutes(5);
        update(&mut conn, id, Some(Status::Resolved), "Resolved", t2).unwrap();
        assert!(matches!(
            update(&mut conn, id, None, "again", t2),
            Err(IncidentError::Resolved(_))
        ));
        assert!(matches!(
            update(&mut conn, 99, None, "x", t2),
            Err(IncidentError::NoIncident(99))
        ));
        // Read back by id, however old.
        assert_eq!(get(&conn, id).unwrap().map(|i| i.updates.len()), Some(4));
        assert_eq!(get(&conn, 99).unwrap(), None);
        let all = recent(&conn, t0).unwrap();
        assert_eq!(all.len(), 1);
        let i = &all[0];
        assert_eq!(
            (i.title.as_str(), i.status),
            ("Database failover", Status::Resolved)
        );
        assert_eq!(i.sites, ["db"]);
        assert_eq!(i.updates.len(), 4);
        assert_eq!(i.updates[0].message, "Database failover");
        assert_eq!(
            i.resolved.map(|r| r.timestamp_micros()),
            Some(t2.timestamp_micros())
        );
        // Resolved before the window: not recent.
        assert!(
            recent(&conn, t2 + chrono::Duration::minutes(1))
                .unwrap()
                .is_empty()
        );
        assert!(Status::parse("nope").unwrap_err().contains("investigating"));
        assert!(matches!(
            open(&mut conn, " ", &[], Status::Investigating, None, t0),
            Err(IncidentError::Bad(_))
        ));
    }
}
