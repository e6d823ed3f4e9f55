//! The incidents' routes: `GET /api/v1/incidents` (read), and opening, updating and resolving
//! one (write scope), as `sitewatch incident` does. What is stored is what the page, the API and
//! the feed show.

use super::Shared;
use crate::store::incidents::{self, IncidentError, Status};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Shared_ = State<Arc<Shared>>;

/// How far back resolved incidents are shown by default (the page shows the same).
pub(crate) const RECENT: Duration = Duration::from_secs(7 * 24 * 3600);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn refused(e: &IncidentError) -> Response {
    let status = match e {
        IncidentError::NoIncident(_) => StatusCode::NOT_FOUND,
        IncidentError::Resolved(_) => StatusCode::CONFLICT,
        IncidentError::Bad(_) => StatusCode::BAD_REQUEST,
        IncidentError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, crate::error_chain(e))
}

/// The incidents open now or resolved within `since`, newest first; empty when the store
/// cannot be read (the page still renders).
pub(crate) async fn recent(shared: &Shared, since: Duration) -> Vec<incidents::Incident> {
    let store = shared.store.clone();
    let from = crate::clock::ago(chrono::Utc::now(), since);
    tokio::task::spawn_blocking(move || {
        let conn = store.connect().ok()?;
        incidents::recent(&conn, from).ok()
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// The page's form of an incident: its timeline newest first.
pub(crate) fn posted(i: &incidents::Incident) -> super::page::Posted {
    super::page::Posted {
        id: i.id,
        title: i.title.clone(),
        sites: i.sites.clone(),
        status: i.status.as_str(),
        opened: i.opened,
        resolved: i.resolved,
        updates: i
            .updates
            .iter()
            .rev()
            .map(|u| (u.time, u.status.as_str(), u.message.clone()))
            .collect(),
    }
}

pub(crate) async fn list(
    State(shared): Shared_,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = match q.get("since") {
        None => RECENT,
        Some(t) => match crate::report::parse_since(t) {
            Ok(d) => d,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("since: {e}")),
        },
    };
    let list = recent(&shared, since).await;
    Json(json!({ "incidents": list.iter().map(|i| i.to_json()).collect::<Vec<_>>() }))
        .into_response()
}

/// A JSON object body, or the 400 saying why not.
#[allow(clippy::result_large_err, reason = "the error is the answer itself")]
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    match super::write::json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(error(StatusCode::BAD_REQUEST, "the body is a JSON object")),
    }
}

fn text<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key}: is not text")),
    }
}

fn status_of(m: &serde_json::Map<String, Value>) -> Result<Option<Status>, String> {
    text(m, "status")?
        .map(|s| Status::parse(s).map_err(|e| format!("status: {e}")))
        .transpose()
}

/// Runs a store change off the async threads and answers with the incident as it is then.
async fn write(
    shared: &Shared,
    change: impl FnOnce(&mut crate::store::Connection) -> Result<i64, IncidentError> + Send + 'static,
    created: bool,
) -> Response {
    let store = shared.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = store.connect_for_writing().map_err(IncidentError::from)?;
        let id = change(&mut conn)?;
        Ok::<_, IncidentError>(incidents::get(&conn, id)?)
    })
    .await;
    match result {
        Ok(Ok(Some(i))) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "incident": i.to_json() }))).into_response()
        }
        Ok(Ok(None)) => error(StatusCode::INTERNAL_SERVER_ERROR, "the incident vanished"),
        Ok(Err(e)) => refused(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn open(State(shared): Shared_, body: Bytes) -> Response {
    let m = match object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let parsed = (|| {
        let title = text(&m, "title")?
            .ok_or("title: an incident needs a title")?
            .to_owned();
        let message = text(&m, "message")?.map(str::to_owned);
        let status = status_of(&m)?.unwrap_or(Status::Investigating);
        let sites: Vec<String> = match m.get("sites") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                .collect::<Option<_>>()
                .ok_or("sites: give a list of site names")?,
            Some(_) => return Err("sites: give a list of site names".to_owned()),
        };
        Ok::<_, String>((title, message, status, sites))
    })();
    let (title, message, status, sites) = match parsed {
        Ok(p) => p,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let config = shared.config.load();
    if let Some(s) = sites
        .iter()
        .find(|s| !config.sites.iter().any(|c| c.name == **s))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "sites: no site is named \"{}\"",
                crate::config::printable(s)
            ),
        );
    }
    let now = chrono::Utc::now();
    write(
        &shared,
        move |conn| incidents::open(conn, &title, &sites, status, message.as_deref(), now),
        true,
    )
    .await
}

pub(crate) async fn update(State(shared): Shared_, Path(id): Path<i64>, body: Bytes) -> Response {
    let m = match object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (message, status) = match (text(&m, "message"), status_of(&m)) {
        (Ok(Some(msg)), Ok(s)) => (msg.to_owned(), s),
        (Ok(None), _) => {
            return error(StatusCode::BAD_REQUEST, "message: an update says something");
        }
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = chrono::Utc::now();
    write(
        &shared,
        move |conn| incidents::update(conn, id, status, &message, now).map(|_| id),
        false,
    )
    .await
}

pub(crate) async fn resolve(State(shared): Shared_, Path(id): Path<i64>, body: Bytes) -> Response {
    let message = if body.is_empty() {
        "Resolved".to_owned()
    } else {
        match object(&body).map(|m| text(&m, "message").map(|t| t.map(str::to_owned))) {
            Ok(Ok(t)) => t.unwrap_or_else(|| "Resolved".into()),
            Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
            Err(r) => return r,
        }
    };
    let now = chrono::Utc::now();
    write(
        &shared,
        move |conn| incidents::update(conn, id, Some(Status::Resolved), &message, now).map(|_| id),
        false,
    )
    .await
}
