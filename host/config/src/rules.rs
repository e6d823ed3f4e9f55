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

/// Checks the sites' `depends_on` and writes each name as its site is named: every name is
/// another site's, and no site depends on itself through others. The error is (site index,
/// position in its list, message); a cycle is named site by site.
pub(super) fn dependencies(sites: &mut [super::SiteConfig]) -> Result<(), (usize, usize, String)> {
    use super::values::{name_key, quote};
    let index: std::collections::HashMap<String, usize> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (name_key(&s.name), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); sites.len()];
    for (i, site) in sites.iter().enumerate() {
        for (j, name) in site.depends_on.iter().enumerate() {
            let Some(&k) = index.get(&name_key(name.trim())) else {
                return Err((i, j, format!("{} is not the name of a site", quote(name))));
            };
            if k == i {
                return Err((i, j, "a site cannot depend on itself".into()));
            }
            if !edges[i].contains(&k) {
                edges[i].push(k);
            }
        }
    }
    // Each name as its site has it.
    let names: Vec<String> = sites.iter().map(|s| s.name.clone()).collect();
    for (i, site) in sites.iter_mut().enumerate() {
        site.depends_on = edges[i].iter().map(|&k| names[k].clone()).collect();
    }
    // A cycle: depth-first, with the path on the stack.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        at: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[at] = Mark::OnPath;
        path.push(at);
        for &next in &edges[at] {
            match marks[next] {
                Mark::OnPath => {
                    let from = path.iter().position(|&p| p == next).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, edges, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[at] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; sites.len()];
    for start in 0..sites.len() {
        if marks[start] == Mark::New
            && let Some(cycle) = visit(start, &edges, &mut marks, &mut Vec::new())
        {
            let first = cycle[0];
            let j = edges[first]
                .iter()
                .position(|&k| k == cycle[1])
                .unwrap_or(0);
            let shown: Vec<&str> = cycle.iter().map(|&k| names[k].as_str()).collect();
            return Err((
                first,
                j,
                format!(
                    "the sites depend on each other in a cycle: {}",
                    shown.join(" -> ")
                ),
            ));
        }
    }
    Ok(())
}

/// The flapping rule as given: `false` is off, an object is on with its defaults filled.
pub(super) fn flapping(
    raw: &super::raw::RawFlapping,
) -> Result<Option<crate::alert::Flapping>, FieldError> {
    use super::raw::RawFlapping;
    let rule = match raw {
        RawFlapping::Off(false) => return Ok(None),
        RawFlapping::Off(true) => super::raw::RawFlappingRule::default(),
        RawFlapping::On(r) => r.clone(),
    };
    let changes = rule.changes.unwrap_or(DEFAULT_FLAPPING_CHANGES);
    if changes == 0 {
        return Err(("flapping.changes", "must be at least 1").into());
    }
    let within = match &rule.within {
        Some(d) => super::values::positive_duration(d).map_err(|m| ("flapping.within", m))?,
        None => DEFAULT_FLAPPING_WITHIN,
    };
    Ok(Some(crate::alert::Flapping { changes, within }))
}

/// More changes between down and up than this within [`DEFAULT_FLAPPING_WITHIN`] is flapping.
pub const DEFAULT_FLAPPING_CHANGES: u32 = 4;
/// The window flapping is counted in, and the quiet that settles it.
pub const DEFAULT_FLAPPING_WITHIN: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A service level objective: `None` when turned off (`false`).
pub(super) fn slo(raw: &super::raw::RawSlo) -> Result<Option<crate::alert::Slo>, FieldError> {
    use super::raw::{RawObjective, RawSlo};
    let rule = match raw {
        RawSlo::Off(false) => return Ok(None),
        RawSlo::Off(true) => {
            return Err((
                "slo",
                "give the objective: {\"objective\": \"99.9%\", \"period\": \"30d\"} (or false for none)",
            )
                .into());
        }
        RawSlo::On(r) => r,
    };
    let percent = match &rule.objective {
        RawObjective::Percent(p) => Some(*p),
        RawObjective::Text(t) => t.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
    };
    let objective = match percent {
        // Rounded to the billionth: 99.9 / 100 is 0.9990000000000001 in binary.
        Some(p) if p > 0.0 && p < 100.0 => (p * 1e7).round() / 1e9,
        _ => {
            let shown = match &rule.objective {
                RawObjective::Percent(p) => p.to_string(),
                RawObjective::Text(t) => super::values::quote(t),
            };
            return Err((
                "slo.objective",
                format!("{shown} is not a percentage above 0 and below 100 (e.g. \"99.9%\")"),
            )
                .into());
        }
    };
    let period = match &rule.period {
        Some(d) => super::values::positive_duration(d).map_err(|m| ("slo.period", m))?,
        None => DEFAULT_SLO_PERIOD,
    };
    if period < std::time::Duration::from_secs(3600) || period > MAX_SLO_PERIOD {
        return Err((
            "slo.period",
            "must be between 1h and 400d (30d is usual; the slow burn-rate alert looks 3d back)",
        )
            .into());
    }
    Ok(Some(crate::alert::Slo { objective, period }))
}

/// The period an objective is judged over when none is given.
pub const DEFAULT_SLO_PERIOD: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
const MAX_SLO_PERIOD: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);
