//! The per-site parts of the config that decide alerts: the alert rule (threshold, window,
//! latency objective, certificate warning), maintenance windows, and the request body.

use super::FieldError;
use super::raw::{RawDegraded, RawMaintenance};
use super::values;
use crate::alert::{LatencyMetric, LatencyObjective};
use crate::maintenance::Window;

/// Resolves a latency objective; errors name `degraded.<key>`.
pub(super) fn degraded(raw: &RawDegraded) -> Result<Vec<LatencyObjective>, FieldError> {
    let mut out = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let Some(metric) = LatencyMetric::ALL.into_iter().find(|m| m.key() == key) else {
            let keys: Vec<_> = LatencyMetric::ALL.iter().map(|m| m.key()).collect();
            return Err((
                format!("degraded.{key}"),
                format!(
                    "\"{key}\" is not a latency figure; use one of {}",
                    keys.join(", ")
                ),
            )
                .into());
        };
        let limit = values::positive_duration(value).map_err(|m| (format!("degraded.{key}"), m))?;
        out.push(LatencyObjective { metric, limit });
    }
    if out.is_empty() {
        return Err((
            "degraded",
            "names no latency figure; e.g. {\"response_p95\": \"800ms\"}",
        )
            .into());
    }
    Ok(out)
}

/// Resolves maintenance windows; errors name `maintenance[i].<field>`.
pub(super) fn maintenance(list: &[RawMaintenance]) -> Result<Vec<Window>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, w)| maintenance_window(w).map_err(|e| e.under(&format!("maintenance[{i}]"))))
        .collect()
}

fn maintenance_window(w: &RawMaintenance) -> Result<Window, FieldError> {
    let name = w
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let time = |field: &str, text: &str| -> Result<chrono::DateTime<chrono::Utc>, FieldError> {
        chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.to_utc())
            .map_err(|_| {
                (
                    field,
                    format!("\"{text}\" is not an RFC 3339 time such as \"2026-12-24T22:00:00Z\""),
                )
                    .into()
            })
    };
    match (&w.start, &w.end, &w.cron) {
        (Some(start), Some(end), None) => {
            if w.duration.is_some() || w.tz.is_some() {
                return Err((
                    "duration",
                    "a one-off window (start, end) takes no duration or tz",
                )
                    .into());
            }
            Window::once(name, time("start", start)?, time("end", end)?)
                .map_err(|m| ("end", m).into())
        }
        (None, None, Some(cron)) => {
            let Some(duration) = &w.duration else {
                return Err((
                    "duration",
                    "a recurring window needs a duration, e.g. \"2h\"",
                )
                    .into());
            };
            let duration = values::positive_duration(duration).map_err(|m| ("duration", m))?;
            Window::recurring(name, cron, duration, w.tz.as_deref()).map_err(|e| e.into())
        }
        _ => Err((
            "(window)",
            "give either start and end (one-off) or cron and duration (recurring)",
        )
            .into()),
    }
}

/// A request body with its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBody {
    pub bytes: Vec<u8>,
    /// `None` when the site's `headers` set `Content-Type` themselves.
    pub content_type: Option<reqwest::header::HeaderValue>,
}

/// Resolves `body` and `content_type` of a site sending `method`.
pub(super) fn body(
    body: Option<&serde_json::Value>,
    content_type: Option<&str>,
    method: &reqwest::Method,
    has_content_type_header: bool,
) -> Result<Option<RequestBody>, FieldError> {
    let Some(body) = body else {
        if content_type.is_some() {
            return Err(("content_type", "is set but there is no body").into());
        }
        return Ok(None);
    };
    if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        return Err((
            "body",
            format!("a body needs method POST, PUT or PATCH (the method is {method})"),
        )
            .into());
    }
    if has_content_type_header && content_type.is_some() {
        return Err((
            "content_type",
            "is set twice: here and in headers; keep one",
        )
            .into());
    }
    let (bytes, default_type) = match body {
        serde_json::Value::String(text) => (text.clone().into_bytes(), "text/plain; charset=utf-8"),
        json => (json.to_string().into_bytes(), "application/json"),
    };
    let content_type = match (content_type, has_content_type_header) {
        (None, true) => None,
        (text, _) => {
            let text = text.unwrap_or(default_type);
            Some(
                reqwest::header::HeaderValue::from_str(text.trim()).map_err(|_| {
                    (
                        "content_type",
                        format!("\"{text}\" is not a valid header value"),
                    )
                })?,
            )
        }
    };
    Ok(Some(RequestBody {
        bytes,
        content_type,
    }))
}
