//! The write API: sites created, replaced, patched, paused, resumed and deleted, and one-off
//! maintenance windows added and removed, each as a change to config.json ([`crate::config::edit`]):
//! checked like `check-config` (a 400 naming the field), written atomically, and applied by the
//! running monitor's reload of the file. Only a `write` token gets here ([`super::access`]).
//!
//! Writers: one change at a time in this process; `If-Match` with the config's hash (the
//! `ETag` of every answer and of `GET /api/v1/sites[/{name}]`) makes a change conditional (a
//! stale one is a 412). Without it, a change is made on the file as it is when the change is
//! made, so an edit made by hand in between is kept.

use super::Shared;
use crate::config::edit::{self, Document, EditError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Shared_ = State<Arc<Shared>>;

/// Tries of a change whose file was replaced by hand while it was being made.
const TRIES: usize = 3;

/// What a change did, for its answer.
struct Done {
    status: StatusCode,
    body: Value,
}

/// The `ETag` form of a config hash.
pub(crate) fn etag(hash: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The hash an `If-Match` names (`*` and absent: any).
fn if_match(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    if v == "*" {
        return None;
    }
    Some(v.trim_start_matches("W/").trim_matches('"').to_owned())
}

fn refused(e: &EditError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match e {
        EditError::Invalid(c) => crate::error_chain(c),
        other => other.to_string(),
    };
    let mut r = (status, Json(json!({ "error": message }))).into_response();
    if let EditError::Stale { now } = e {
        r.headers_mut().insert(header::ETAG, etag(now));
    }
    r
}

/// Makes one change to config.json: reads it, applies `change`, checks the result and writes
/// it; on a file replaced meanwhile, again on the new one (or a 412 under `If-Match`).
async fn change<F>(shared: &Arc<Shared>, headers: &HeaderMap, change: F) -> Response
where
    F: Fn(&mut Document) -> Result<Done, EditError> + Send + 'static,
{
    let Some(path) = shared.config_path.clone() else {
        return refused(&EditError::Bad(
            "this server has no config file to change".into(),
        ));
    };
    let expected = if_match(headers);
    let _one_at_a_time = shared.edits.lock().await;
    let result = tokio::task::spawn_blocking(move || {
        let mut last = None;
        for _ in 0..TRIES {
            let mut doc = Document::read(&path)?;
            if let Some(e) = &expected
                && e != doc.hash()
            {
                return Err(EditError::Stale {
                    now: doc.hash().to_owned(),
                });
            }
            let done = change(&mut doc)?;
            doc.check(&path)?;
            match edit::write(&path, &doc.text(), doc.hash()) {
                Ok(hash) => return Ok((done, hash)),
                Err(e @ EditError::Stale { .. }) if expected.is_none() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EditError::Bad("the change could not be made".into())))
    })
    .await;
    match result {
        Ok(Ok((mut done, hash))) => {
            if let Value::Object(m) = &mut done.body {
                m.insert("etag".into(), Value::String(hash.clone()));
            }
            let mut r = (done.status, Json(done.body)).into_response();
            r.headers_mut().insert(header::ETAG, etag(&hash));
            r
        }
        Ok(Err(e)) => refused(&e),
        Err(e) => refused(&EditError::Bad(format!("the change failed: {e}"))),
    }
}

/// The body as JSON, or a 400 saying why not.
#[allow(clippy::result_large_err, reason = "the error is the answer itself")]
pub(crate) fn json_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| refused(&EditError::Bad(format!("the body is not JSON: {e}"))))
}

fn site_answer(doc: &Document, name: &str, status: StatusCode) -> Result<Done, EditError> {
    let site = doc
        .site(name)
        .ok_or_else(|| EditError::NoSite(name.to_owned()))?;
    Ok(Done {
        status,
        body: json!({ "site": edit::shown_site(site) }),
    })
}

pub(crate) async fn create_site(
    State(shared): Shared_,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let site = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    change(&shared, &headers, move |doc| {
        let name = doc.add_site(site.clone())?;
        site_answer(doc, &name, StatusCode::CREATED)
    })
    .await
}

pub(crate) async fn put_site(
    State(shared): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_site(&shared, name, &headers, &body, Document::replace_site).await
}

pub(crate) async fn patch_site(
    State(shared): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_site(&shared, name, &headers, &body, Document::patch_site).await
}

/// Changes the site `name` with `edit` and the body (a whole site, or a merge patch).
async fn change_site(
    shared: &Arc<Shared>,
    name: String,
    headers: &HeaderMap,
    body: &Bytes,
    edit: fn(&mut Document, &str, Value) -> Result<(), EditError>,
) -> Response {
    let given = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    change(shared, headers, move |doc| {
        edit(doc, &name, given.clone())?;
        site_answer(doc, &name, StatusCode::OK)
    })
    .await
}

pub(crate) async fn delete_site(
    State(shared): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(&shared, &headers, move |doc| {
        doc.delete_site(&name)?;
        Ok(Done {
            status: StatusCode::OK,
            body: json!({ "deleted": name.trim() }),
        })
    })
    .await
}

pub(crate) async fn pause(
    State(shared): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(shared, name, headers, true).await
}

pub(crate) async fn resume(
    State(shared): Shared_,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(shared, name, headers, false).await
}

async fn set_paused(
    shared: Arc<Shared>,
    name: String,
    headers: HeaderMap,
    paused: bool,
) -> Response {
    change(&shared, &headers, move |doc| {
        doc.set_paused(&name, paused)?;
        site_answer(doc, &name, StatusCode::OK)
    })
    .await
}

/// Adds a named item (a one-off maintenance window, an announcement) with `add`: `201` with
/// the name it got.
async fn add_named(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: &Bytes,
    add: fn(&mut Document, Value) -> Result<String, EditError>,
) -> Response {
    let item = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    change(shared, headers, move |doc| {
        let name = add(doc, item.clone())?;
        Ok(Done {
            status: StatusCode::CREATED,
            body: json!({ "name": name }),
        })
    })
    .await
}

/// Deletes the items named `?name=` with `delete` (`what` names them in messages): `200` with
/// how many went, under the key `counted`.
async fn delete_named(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    what: &'static str,
    counted: &'static str,
    delete: fn(&mut Document, &str) -> Result<usize, EditError>,
) -> Response {
    let Some(name) = q.get("name").cloned() else {
        return refused(&EditError::Bad(format!(
            "name: say which {what} to delete (?name=...)"
        )));
    };
    change(shared, headers, move |doc| {
        let removed = delete(doc, &name)?;
        Ok(Done {
            status: StatusCode::OK,
            body: json!({ "deleted": name.trim(), counted: removed }),
        })
    })
    .await
}

pub(crate) async fn add_maintenance(
    State(shared): Shared_,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    add_named(&shared, &headers, &body, Document::add_maintenance).await
}

pub(crate) async fn delete_maintenance(
    State(shared): Shared_,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let delete = Document::delete_maintenance;
    delete_named(&shared, &headers, &q, "one-off window", "windows", delete).await
}

pub(crate) async fn add_announcement(
    State(shared): Shared_,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    add_named(&shared, &headers, &body, Document::add_announcement).await
}

pub(crate) async fn delete_announcement(
    State(shared): Shared_,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let delete = Document::delete_announcement;
    delete_named(
        &shared,
        &headers,
        &q,
        "announcement",
        "announcements",
        delete,
    )
    .await
}

/// The config file's hash now and the site as typed in it (secrets hidden), for the reads.
pub(crate) fn typed(shared: &Shared, name: Option<&str>) -> Option<(String, Option<Value>)> {
    let path = shared.config_path.as_deref()?;
    let Some(name) = name else {
        // The hash alone: the file is not parsed.
        return edit::current_hash(path).ok().map(|h| (h, None));
    };
    let doc = Document::read(path).ok()?;
    let site = doc.site(name).map(edit::shown_site);
    Some((doc.hash().to_owned(), site))
}
