//! The routes: `/healthz`, `/metrics`, `/api/v1/...`, the event stream and the status page.
//! Errors are JSON `{"error": "..."}`; every path but `/healthz` needs the bearer token when one
//! is set (in `Authorization: Bearer`, or `?access_token=` for a browser's EventSource).

use super::Shared;
use super::access;
use super::page;
use super::write;
use crate::event::{Event, Received};
use crate::wire;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Shared_ = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/api/v1/sites", get(sites).post(write::create_site))
        .route(
            "/api/v1/sites/{name}",
            get(site)
                .put(write::put_site)
                .patch(write::patch_site)
                .delete(write::delete_site),
        )
        .route("/api/v1/sites/{name}/pause", post(write::pause))
        .route("/api/v1/sites/{name}/resume", post(write::resume))
        .route(
            "/api/v1/maintenance",
            post(write::add_maintenance).delete(write::delete_maintenance),
        )
        .route(
            "/api/v1/announcements",
            post(write::add_announcement).delete(write::delete_announcement),
        )
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/report", get(report))
        .route("/api/v1/events", get(events))
        .route("/badge/{site}/{which}", get(badge))
        .route("/feed.atom", get(feed))
        .route(
            "/api/v1/incidents",
            get(super::incidents::list).post(super::incidents::open),
        )
        .route(
            "/api/v1/incidents/{id}/updates",
            post(super::incidents::update),
        )
        .route(
            "/api/v1/incidents/{id}/resolve",
            post(super::incidents::resolve),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            authorize,
        ))
        .route("/healthz", get(|| async { "ok\n" }))
        // A job's ping carries its own credential, the token in the path: no bearer token.
        .route("/push/{token}", get(push).post(push))
        .route("/push/{token}/{what}", get(push_what).post(push_what))
        .with_state(shared)
}

async fn push(State(shared): Shared_, Path(token): Path<String>) -> Response {
    ping(&shared, &token, None)
}

async fn push_what(
    State(shared): Shared_,
    Path((token, what)): Path<(String, String)>,
) -> Response {
    ping(&shared, &token, Some(&what))
}

/// Records a push site's ping. Never says which tokens exist beyond taking or refusing this one,
/// and never echoes the token.
fn ping(shared: &Shared, token: &str, what: Option<&str>) -> Response {
    use sitewatch_probe::push::Ping;
    let Some(ping) = Ping::parse(what) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such ping: /push/<token>, /push/<token>/start or /push/<token>/fail",
        );
    };
    if shared.push.ping(token, ping, shared.bus.clock().now()) {
        (StatusCode::OK, "OK\n").into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no push site has this token")
    }
}

/// A JSON error with its status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path")
}

async fn authorize(State(shared): Shared_, mut request: Request, next: Next) -> Response {
    let access = shared.access.load();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if !access.has_tokens() {
        // No token: only requests addressed to this server's own names (a page of another
        // name that resolves here, DNS rebinding, must not read the API from a browser).
        let host = request
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        if let Some(host) = host
            && !shared.hosts.load().allows(&host)
        {
            access::log(&method, &path, "-", StatusCode::FORBIDDEN);
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "this server does not answer requests addressed to {}: list the name in server.allowed_hosts, or set a token (server.tokens)",
                    crate::config::printable(&host)
                ),
            );
        }
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(access::bearer_token)
        .map(str::to_owned);
    let query = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let given = bearer.or(query);
    let decided = access.decide(&access::Asked {
        method: &method,
        path: &path,
        given: given.as_deref(),
    });
    drop(access);
    match decided {
        Ok(caller) => {
            let name = caller.name().to_owned();
            request.extensions_mut().insert(caller);
            let response = next.run(request).await;
            access::log(&method, &path, &name, response.status());
            response
        }
        Err(refused) => {
            let name = refused.token.clone().unwrap_or_else(|| "-".into());
            access::log(&method, &path, &name, refused.status);
            refused.into_response()
        }
    }
}

async fn metrics(State(shared): Shared_, headers: HeaderMap) -> Response {
    if let Some(f) = shared.in_flight.get() {
        shared.metrics.set_in_flight(f.probes());
    }
    let om = shared.metrics.openmetrics();
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            om,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            super::metrics::prometheus_text(&om),
        )
            .into_response()
    }
}

/// A site's settings from the config, without headers (they may hold credentials).
fn site_settings(s: Option<&crate::config::SiteConfig>) -> Value {
    match s {
        Some(s) => json!({
            "interval_s": s.interval.as_secs_f64(),
            "timeout_s": s.timeout.as_secs_f64(),
            "method": s.method.as_str(),
            "checks": s.checks.iter().map(|c| c.plugin.clone()).collect::<Vec<_>>(),
            "tls_insecure": s.tls_insecure,
            "alerting": {
                "threshold": s.alerting.threshold,
                "window_s": s.alerting.window.as_secs_f64(),
                "degraded": s.alerting.degraded.iter()
                    .map(|o| (o.metric.key().to_owned(), json!(o.limit.as_secs_f64() * 1000.0)))
                    .collect::<serde_json::Map<_, _>>(),
                "cert_warning_s": s.alerting.cert_warning.as_secs_f64(),
            },
            "maintenance": s.maintenance.windows().iter().map(|w| w.describe()).collect::<Vec<_>>(),
        }),
        None => Value::Null,
    }
}

/// The `tag` parameters (repeated, or comma lists) as a filter of the config's sites; a tag
/// no site has is a 400, never an empty list.
fn tag_filter(
    query: Option<&str>,
    config: &crate::config::Config,
) -> Result<Option<crate::report::TagFilter>, Box<Response>> {
    let tags: Vec<String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "tag")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    crate::report::TagFilter::new(config, &tags, "tag")
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("tag: {e}"))))
}

/// The reports and settings by site name, so a listing of every site is O(sites).
struct Lookup<'a> {
    reports: Vec<(String, HashMap<&'a str, &'a crate::event::SiteReport>)>,
    settings: HashMap<&'a str, &'a crate::config::SiteConfig>,
    location: &'a str,
}

impl<'a> Lookup<'a> {
    fn new(
        reports: &'a [Arc<crate::event::StatsReport>],
        config: &'a crate::config::Config,
    ) -> Self {
        Self {
            reports: reports
                .iter()
                .map(|r| {
                    (
                        r.view.clone(),
                        r.sites.iter().map(|x| (&*x.site, x)).collect(),
                    )
                })
                .collect(),
            settings: config.sites.iter().map(|s| (s.name.as_str(), s)).collect(),
            location: &config.location,
        }
    }

    fn summary(&self, s: &super::board::SiteState) -> Value {
        let availability: serde_json::Map<String, Value> = self
            .reports
            .iter()
            .filter_map(|(view, by_site)| {
                let sr = by_site.get(&*s.site)?;
                Some((view.clone(), json!(sr.stats.availability)))
            })
            .collect();
        json!({
            "site": &*s.site,
            "url": &*s.url,
            "kind": crate::measurement::kind_of(&s.url),
            "location": self.location,
            "status": s.status(),
            "down": s.down,
            "down_since": s.down_since.map(crate::clock::rfc3339_millis),
            "held": s.held,
            "flapping": s.flapping,
            "slo": s.slo.map(|o| json!({
                "objective": o.objective,
                "period": humantime::format_duration(o.period).to_string(),
                "error_budget_remaining": o.budget_left,
                "burning": o.burning,
            })),
            "degraded": s.degraded,
            "maintenance": s.maintenance.as_ref().map(|o| json!({
                "start": crate::clock::rfc3339_millis(o.start),
                "end": crate::clock::rfc3339_millis(o.end),
                "name": o.name,
            })),
            "cert_expiry": s.cert_expiry.map(crate::clock::rfc3339_millis),
            "cert_warning": s.cert_warning,
            "domain_warning": s.domain_warning,
            "tags": &*s.tags,
            "availability": availability,
            "last_probe": s.probes.back().map(|m| probe_value(m, self.location)),
            "settings": site_settings(self.settings.get(&*s.site).copied()),
        })
    }
}

impl Lookup<'_> {
    /// One site in full: its summary, each view's figures (a script site's per step among
    /// them), its last probes newest first, and a script site's latest run's `steps`.
    fn detail(&self, s: &super::board::SiteState) -> Value {
        let mut v = self.summary(s);
        let views: serde_json::Map<String, Value> = self
            .reports
            .iter()
            .filter_map(|(view, by_site)| {
                Some((view.clone(), wire::site_value(by_site.get(&*s.site)?)))
            })
            .collect();
        v["views"] = Value::Object(views);
        if let Some(steps) = v["last_probe"]
            .get("steps")
            .filter(|st| st.as_array().is_some_and(|a| !a.is_empty()))
        {
            v["steps"] = steps.clone();
        }
        v["probes"] = s
            .probes
            .iter()
            .rev()
            .map(|m| probe_value(m, self.location))
            .collect();
        v
    }
}

fn probe_value(m: &crate::measurement::Measurement, location: &str) -> Value {
    let mut v = wire::to_value(&Event::Probe(m.clone()), Some(location));
    if let Some(o) = v.as_object_mut() {
        o.remove("event");
    }
    v
}

async fn sites(State(shared): Shared_, RawQuery(query): RawQuery) -> Response {
    let (reports, config) = (shared.board.reports(), shared.config.load());
    let filter = match tag_filter(query.as_deref(), &config) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let lookup = Lookup::new(&reports, &config);
    let all: Vec<Value> = shared.board.with_sites(|sites| {
        sites
            .iter()
            .filter(|s| filter.as_ref().is_none_or(|f| f.matches(&s.site)))
            .map(|s| lookup.summary(s))
            .collect()
    });
    let mut r = Json(json!({ "sites": all, "offline": shared.board.offline() })).into_response();
    if let Some((hash, _)) = write::typed(&shared, None) {
        r.headers_mut().insert(header::ETAG, write::etag(&hash));
    }
    r
}

async fn site(State(shared): Shared_, Path(name): Path<String>) -> Response {
    let Some(s) = shared.board.site(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no site is named \"{name}\""),
        );
    };
    let (reports, config) = (shared.board.reports(), shared.config.load());
    let mut detail = Lookup::new(&reports, &config).detail(&s);
    let typed = write::typed(&shared, Some(&name));
    if let (Value::Object(m), Some((_, Some(site)))) = (&mut detail, &typed) {
        // The site as typed in config.json (secrets hidden): what PUT and PATCH change.
        m.insert("config".into(), site.clone());
    }
    let mut r = Json(detail).into_response();
    if let Some((hash, _)) = typed {
        r.headers_mut().insert(header::ETAG, write::etag(&hash));
    }
    r
}

/// The `since` query parameter, or why it is not a timeframe (for a 400).
fn since(q: &HashMap<String, String>, default: Duration) -> Result<Duration, String> {
    match q.get("since") {
        None => Ok(default),
        Some(t) => crate::report::parse_since(t).map_err(|e| format!("since: {e}")),
    }
}

/// The parameters of `/api/v1/report`, checked: each bad one is a message for a 400.
#[derive(Debug)]
struct ReportQuery {
    request: crate::history::Request,
    csv: bool,
}

impl ReportQuery {
    fn parse(q: &HashMap<String, String>) -> Result<Self, String> {
        use crate::history::{By, Calendar};
        let since = since(q, Duration::from_secs(24 * 3600))?;
        let include_maintenance = match q.get("maintenance").map(String::as_str) {
            None | Some("exclude") => false,
            Some("include") => true,
            Some(other) => {
                return Err(format!(
                    "maintenance=\"{}\": use include or exclude (the default)",
                    crate::config::printable(other)
                ));
            }
        };
        let by = match q.get("by") {
            None => None,
            Some(b) => Some(By::parse(b).ok_or_else(|| {
                format!(
                    "by=\"{}\": use day, week or month",
                    crate::config::printable(b)
                )
            })?),
        };
        let sla = match q.get("sla") {
            None => None,
            Some(v) => Some(v.trim().parse::<f64>().map_err(|_| {
                format!(
                    "sla=\"{}\": give the objective in percent, e.g. 99.9",
                    crate::config::printable(v)
                )
            })?),
        };
        if by.is_some() && sla.is_some() {
            return Err("sla and by cannot be combined".into());
        }
        let calendar = Calendar::parse(
            q.get("tz").map(String::as_str),
            q.get("week_start").map(String::as_str),
            "",
        )?;
        let csv = match q.get("output").map(String::as_str) {
            None | Some("json") => false,
            Some("csv") => true,
            Some(other) => {
                return Err(format!(
                    "output=\"{}\": use json (the default) or csv",
                    crate::config::printable(other)
                ));
            }
        };
        Ok(Self {
            request: crate::history::Request {
                since,
                site: q.get("site").cloned(),
                by,
                sla,
                calendar,
                include_maintenance,
            },
            csv,
        })
    }
}

async fn alerts(
    State(shared): Shared_,
    Query(q): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let location = shared.config.load().location.clone();
    let since = match since(&q, Duration::from_secs(7 * 24 * 3600)) {
        Ok(s) => s,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let filter = match tag_filter(query.as_deref(), &shared.config.load()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let store = shared.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        crate::report::alerts_since(&store, since, chrono::Utc::now())
    })
    .await;
    match found {
        Ok(Ok(alerts)) => {
            let all: Vec<Value> = alerts
                .iter()
                .filter(|(a, _)| filter.as_ref().is_none_or(|f| f.matches(&a.site)))
                .map(|(a, deliveries)| {
                    let mut v = crate::report::alert_value(a, deliveries, Some(&location));
                    if let Some(o) = v.as_object_mut() {
                        o.remove("event");
                    }
                    v
                })
                .collect();
            Json(json!({ "alerts": all })).into_response()
        }
        Ok(Err(e)) => {
            shared.store.note_error(&e);
            error(StatusCode::SERVICE_UNAVAILABLE, crate::error_chain(&e))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn report(
    State(shared): Shared_,
    Query(q): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    use crate::history::{self, Source};
    let location = shared.config.load().location.clone();
    let bad = |why: String| error(StatusCode::BAD_REQUEST, why);
    let ReportQuery { request, csv } = match ReportQuery::parse(&q) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    let (since, site, by, sla, include_maintenance) = (
        request.since,
        request.site.clone(),
        request.by,
        request.sla,
        request.include_maintenance,
    );
    let config = shared.config.load_full();
    let filter = match tag_filter(query.as_deref(), &config) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let retention = config.storage.retention;
    let now = chrono::Utc::now();
    // The messages name the CLI's options; here they are query parameters.
    let param = |m: String| m.replace("--since", "since").replace("--sla", "sla");
    let source = match history::choose(&request, &retention, now) {
        Ok((s, _, _)) => s,
        Err(e) => return bad(param(e.to_string())),
    };
    let tagged = filter
        .as_ref()
        .map(|f| format!(" {}", f.describe()))
        .unwrap_or_default();
    let period = humantime::format_duration(since);
    let classic = by.is_none() && sla.is_none();
    let threshold = config.alerting.threshold;
    let store = shared.store.clone();
    if classic && source == Source::Raw && !csv {
        let wanted = site.clone();
        let found = tokio::task::spawn_blocking(move || {
            crate::report::stats_since(
                &store,
                since,
                wanted.as_deref(),
                now,
                threshold,
                include_maintenance,
            )
        })
        .await;
        return match found {
            Ok(Ok(mut r)) => {
                crate::report::tag_report(&mut r, &config, filter.as_ref());
                if r.sites.is_empty()
                    && let Some(name) = &site
                {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no measurements of site \"{name}\"{tagged} in the last {period}"),
                    );
                }
                if r.sites.is_empty() && filter.is_some() {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no measurements of sites{tagged} in the last {period}"),
                    );
                }
                Json(wire::to_value(&Event::Stats(r), Some(&location))).into_response()
            }
            Ok(Err(e)) => {
                shared.store.note_error(&e);
                error(StatusCode::SERVICE_UNAVAILABLE, crate::error_chain(&e))
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let found =
        tokio::task::spawn_blocking(move || history::report(&store, &request, &retention, now))
            .await;
    let mut answer = match found {
        Ok(Ok(a)) => a,
        Ok(Err(history::HistoryError::NoSite { site, .. })) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no measurements of site \"{site}\"{tagged} in the last {period}"),
            );
        }
        Ok(Err(history::HistoryError::Store(e))) => {
            shared.store.note_error(&e);
            return error(StatusCode::SERVICE_UNAVAILABLE, crate::error_chain(&e));
        }
        Ok(Err(e)) => return bad(param(e.to_string())),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(f) = &filter {
        answer.rows.retain(|r| f.matches(&r.site));
        if answer.rows.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                format!("no measurements of sites{tagged} in the last {period}"),
            );
        }
    }
    if csv {
        let mut body = Vec::new();
        if let Err(e) = history::write(&answer, history::ReportFormat::Csv, &mut body) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        return ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    }
    if classic {
        let mut r = history::to_stats_report(&answer, since, threshold);
        crate::report::tag_report(&mut r, &config, None);
        return Json(history::stats_json(&answer, r)).into_response();
    }
    Json(history::to_json(&answer)).into_response()
}

/// The stored alerts as an Atom feed.
async fn feed(State(shared): Shared_) -> Response {
    let store = shared.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        let conn = store.connect()?;
        store.latest_alerts(&conn, super::feed::MAX_ENTRIES)
    })
    .await;
    let alerts = match found {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            shared.store.note_error(&e);
            return error(StatusCode::SERVICE_UNAVAILABLE, crate::error_chain(&e));
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let incidents = super::incidents::recent(&shared, super::incidents::RECENT).await;
    let location = shared.config.load().location.clone();
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        super::feed::render(&location, &alerts, &incidents, chrono::Utc::now()),
    )
        .into_response()
}

/// A badge: `status.svg` (the live state), `uptime.svg` and `response.svg` (the `report`
/// figures of `?period=`, 24h by default); `?label=` replaces the label. An unknown site or
/// badge is a 404 badge; a period beyond the store's retention a 400 one.
async fn badge(
    State(shared): Shared_,
    Path((site, which)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    use super::badge::{self as b, Badge};
    let answer = |status: StatusCode, svg: String| {
        (
            status,
            [
                (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
                (header::CACHE_CONTROL, "max-age=60"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            svg,
        )
            .into_response()
    };
    let fault = |status: StatusCode, label: &str, value: &str| {
        answer(
            status,
            b::render(&Badge {
                label: label.into(),
                value: value.into(),
                colour: b::colour::LIGHTGREY,
            }),
        )
    };
    let label = |default: String| {
        q.get("label")
            .map(|l| l.chars().take(40).collect::<String>())
            .unwrap_or(default)
    };
    let config = shared.config.load_full();
    if !config.sites.iter().any(|s| s.name == site) {
        return fault(StatusCode::NOT_FOUND, "badge", "no such site");
    }
    let (since, period_text) = match q.get("period") {
        None => (Duration::from_secs(24 * 3600), "24h".to_owned()),
        Some(t) => match crate::report::parse_since(t) {
            Ok(d) => (d, t.trim().to_owned()),
            Err(_) => return fault(StatusCode::BAD_REQUEST, "badge", "bad period"),
        },
    };
    let is_uptime = match which.as_str() {
        "status.svg" => {
            let state = shared.board.site(&site).map_or("unknown", |s| s.status());
            let badge = Badge {
                label: label("status".into()),
                value: state.into(),
                colour: b::state_colour(state),
            };
            return answer(StatusCode::OK, b::render(&badge));
        }
        "uptime.svg" => true,
        "response.svg" => false,
        _ => return fault(StatusCode::NOT_FOUND, "badge", "no such badge"),
    };
    let key = format!(
        "{which}\0{site}\0{}\0{}",
        since.as_secs(),
        label(String::new())
    );
    if let Some(svg) = shared.badges.get(&key) {
        return answer(StatusCode::OK, svg);
    }
    let request = crate::history::Request {
        since,
        site: Some(site.clone()),
        by: None,
        sla: None,
        calendar: crate::history::Calendar::default(),
        include_maintenance: false,
    };
    let store = shared.store.clone();
    let retention = config.storage.retention;
    let found = tokio::task::spawn_blocking(move || {
        crate::history::report(&store, &request, &retention, chrono::Utc::now())
    })
    .await;
    let stats = match found {
        Ok(Ok(a)) => a
            .rows
            .into_iter()
            .find(|r| *r.site == *site)
            .map(|r| r.stats),
        Ok(Err(crate::history::HistoryError::NoSite { .. })) => None,
        Ok(Err(crate::history::HistoryError::Store(e))) => {
            shared.store.note_error(&e);
            return fault(
                StatusCode::SERVICE_UNAVAILABLE,
                "badge",
                "store unavailable",
            );
        }
        Ok(Err(_)) => return fault(StatusCode::BAD_REQUEST, "badge", "bad period"),
        Err(_) => return fault(StatusCode::INTERNAL_SERVER_ERROR, "badge", "error"),
    };
    let badge = if is_uptime {
        b::uptime(
            label(format!("uptime {period_text}")),
            stats.as_ref().and_then(|s| s.availability),
        )
    } else {
        b::response(
            label(format!("response {period_text}")),
            stats
                .as_ref()
                .and_then(|s| s.response_ms.as_ref())
                .map(|r| r.avg),
        )
    };
    let svg = b::render(&badge);
    shared.badges.put(key, svg.clone());
    answer(StatusCode::OK, svg)
}

/// The live events as Server-Sent Events: each `data:` is one object of `--output json`.
///
/// Each client reads a bounded subscription of the bus ([`super::STREAM_BUDGET`]): stats are
/// coalesced to the newest of each view, probes shed beyond the budget (a `dropped` event says
/// how many). A watchdog closes the connection of a client that stays over its budget without
/// reading for [`super::STREAM_PATIENCE`] (a log line and `sitewatch_stream_disconnects_total`),
/// and of every client when the token changes.
async fn events(
    State(shared): Shared_,
    close: Option<axum::Extension<super::CloseConnection>>,
) -> Response {
    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event-stream clients",
        );
    };
    let close = close.map_or_else(tokio_util::sync::CancellationToken::new, |c| c.0.0.clone());
    let sub = shared.bus.subscribe_bounded(super::STREAM_BUDGET);
    let watch = sub.watch();
    let epoch = shared.token_epoch.load_full();
    let metrics = Arc::clone(&shared.metrics);
    let watchdog_close = close.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let reason = loop {
            tokio::select! {
                _ = watchdog_close.cancelled() => return,
                _ = epoch.cancelled() => break "token",
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            match watch.stalled(super::STREAM_PATIENCE) {
                None => {}
                Some(crate::event::Stalled::Evicted) => {
                    tracing::warn!(
                        "an event-stream client fell more than four budgets behind; disconnected"
                    );
                    break "evicted";
                }
                Some(crate::event::Stalled::NotReading(idle)) => {
                    tracing::warn!(
                        "an event-stream client read nothing for {:.1} s while {} KB waited; disconnected",
                        idle.as_secs_f64(),
                        watch.waiting_bytes() / 1024
                    );
                    break "stalled";
                }
            }
        };
        if reason == "token" {
            tracing::info!(
                "the server's tokens changed; an event stream opened with the old ones is closed"
            );
        }
        metrics.stream_disconnected(reason);
        watchdog_close.cancel();
    });
    let stream = futures_util::stream::unfold(
        (sub, close, shared),
        |(mut sub, close, shared): (
            crate::event::Subscription,
            tokio_util::sync::CancellationToken,
            Arc<Shared>,
        )| async move {
            let received = tokio::select! {
                _ = close.cancelled() => None,
                r = sub.recv() => r,
            }?;
            let line = match received {
                Received::Event(e) => {
                    wire::to_value(&e, Some(&shared.config.load().location)).to_string()
                }
                Received::Dropped(n) => json!({"event": "dropped", "probes": n}).to_string(),
            };
            let event = axum::response::sse::Event::default().data(line);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (sub, close, shared),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn status_page(
    State(shared): Shared_,
    caller: Option<axum::Extension<access::Caller>>,
) -> Response {
    let store = shared.store.clone();
    let history = tokio::task::spawn_blocking(move || {
        let conn = store.connect().ok()?;
        store.latest_alerts(&conn, 50).ok()
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    let daily = daily_bars(&shared).await;
    let config = shared.config.load();
    let mut data = super::page_data(&shared.board, &config, &history, &daily);
    data.posted = super::incidents::recent(&shared, super::incidents::RECENT)
        .await
        .iter()
        .map(super::incidents::posted)
        .collect();
    // Read without a token from a server that has tokens: public, without the live stream.
    if shared.access.load().has_tokens() && caller.is_none_or(|c| c.token.is_none()) {
        data.events_path = None;
    }
    let mut r = Html(page::render(&data)).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        ),
    );
    r
}

/// How long the page's daily bars are reused: they change once a day, and a store of thousands
/// of sites takes a moment to read.
const DAILY_BARS_TTL: Duration = Duration::from_secs(60);
/// Days of daily bars on the status page (as Gatus and Upptime show).
pub(crate) const DAILY_BARS: u32 = 90;

/// The last 90 days per site from the day rollups, cached for a minute; empty when the store
/// cannot be read (the page still renders).
async fn daily_bars(shared: &Arc<Shared>) -> Arc<crate::history::DailyBars> {
    if let Some((at, bars)) = &*shared.daily.lock().unwrap_or_else(|e| e.into_inner())
        && at.elapsed() < DAILY_BARS_TTL
    {
        return Arc::clone(bars);
    }
    let store = shared.store.clone();
    let retention = shared.config.load().storage.retention;
    let bars = tokio::task::spawn_blocking(move || {
        crate::history::daily_bars(&store, &retention, chrono::Utc::now(), DAILY_BARS)
    })
    .await;
    let bars = match bars {
        Ok(Ok(b)) => Arc::new(b),
        Ok(Err(e)) => {
            tracing::warn!("the status page's daily bars: {}", crate::error_chain(&e));
            return Arc::default();
        }
        Err(_) => return Arc::default(),
    };
    *shared.daily.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), Arc::clone(&bars)));
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Strings that look like what people type for times, huge numbers included, and noise.
    fn time_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,22}(ns|us|ms|s|m|h|d|w|M|y|years|months)?",
            "[0-9]{1,6}(y|d|h) ?[0-9]{0,6}(m|s)?",
            "-?[0-9]{0,4}\\.?[0-9]{0,4}(e[0-9]{1,4})?",
            "(UTC|Europe/Paris|Mars/Olympus|monday|sunday|Sundae|day|week|month|csv|json|include|exclude)",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

        /// Any value of any parameter of `/api/v1/report` and `/api/v1/alerts`: a 400 with a
        /// message, or a request whose time arithmetic holds; never a panic.
        #[test]
        fn any_report_or_alerts_parameter_is_checked(
            values in proptest::collection::vec(time_text(), 7),
            present in proptest::collection::vec(any::<bool>(), 7),
        ) {
            let keys = ["since", "by", "sla", "tz", "week_start", "output", "maintenance"];
            let q: HashMap<String, String> = keys
                .iter()
                .zip(values.iter().zip(&present))
                .filter(|(_, (_, p))| **p)
                .map(|(k, (v, _))| (k.to_string(), v.clone()))
                .collect();
            let now = chrono::Utc::now();
            match ReportQuery::parse(&q) {
                Ok(r) => {
                    let _ = crate::history::choose(&r.request, &Default::default(), now);
                    let _ = crate::clock::ago(now, r.request.since);
                }
                Err(m) => prop_assert!(!m.is_empty()),
            }
            if let Ok(d) = since(&q, Duration::from_secs(7 * 24 * 3600)) {
                let _ = crate::clock::ago(now, d);
            }
        }
    }

    #[test]
    fn timeframes_beyond_a_century_are_refused_not_overflowed() {
        assert!(
            crate::report::parse_since("300000y")
                .unwrap_err()
                .contains("century")
        );
        assert!(
            crate::report::parse_since("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(crate::report::parse_since("0s").is_err());
        assert_eq!(
            crate::report::parse_since("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        let q: HashMap<String, String> = [("since".to_owned(), "300000y".to_owned())].into();
        assert!(ReportQuery::parse(&q).unwrap_err().starts_with("since: "));
        let now = chrono::Utc::now();
        assert_eq!(
            crate::clock::ago(now, Duration::MAX),
            chrono::DateTime::<chrono::Utc>::MIN_UTC
        );
    }

    /// A script site's detail: its latest run's steps, each view's per-step figures, and the
    /// steps of every probe listed; another kind has neither.
    #[test]
    fn a_script_sites_detail_carries_its_steps() {
        use crate::measurement::Step;
        use std::time::Duration;
        let step = |name: &str, ms: u64, failed: bool| Step {
            name: name.into(),
            duration: Duration::from_millis(ms),
            requests: 2,
            failed,
        };
        let mut older = crate::measurement::testing::sample("shop", true);
        older.steps = vec![step("login", 100, false), step("order", 20, false)];
        let mut newer = crate::measurement::testing::sample("shop", false);
        newer.steps = vec![step("login", 300, false), step("order\"<x>", 5, true)];
        let state = super::super::board::SiteState {
            site: "shop".into(),
            url: "script:shop".into(),
            tags: Arc::from(Vec::new()),
            down: false,
            down_since: None,
            held: None,
            degraded: false,
            maintenance: None,
            cert_expiry: None,
            cert_warning: false,
            domain_warning: false,
            flapping: false,
            slo: None,
            paused: false,
            probes: [older.clone(), newer.clone()].into(),
        };
        let stats = sitewatch_core::stats::summarize([&older, &newer]);
        let site = crate::event::SiteReport::new("shop".into(), "script:shop".into(), stats);
        let lookup = Lookup {
            reports: vec![("10m".into(), [("shop", &site)].into())],
            settings: HashMap::new(),
            location: "lab",
        };
        let v = lookup.detail(&state);
        assert_eq!(v["kind"], "script");
        assert_eq!(
            v["steps"],
            json!([
                {"name": "login", "duration_ms": 300.0, "requests": 2, "failed": false},
                {"name": "order\"<x>", "duration_ms": 5.0, "requests": 2, "failed": true},
            ])
        );
        let login = &v["views"]["10m"]["steps"][0];
        assert_eq!(
            login,
            &json!({"name": "login", "runs": 2, "failed": 0, "avg_ms": 200.0, "max_ms": 300.0, "p95_ms": 300.0})
        );
        // By name: `order` sorts before `order"<x>`.
        assert_eq!(v["views"]["10m"]["steps"][2]["failed"], 1);
        assert_eq!(v["probes"][1]["steps"][1]["name"], "order");
        // Another kind: no steps anywhere but an empty list per probe.
        let mut plain = state.clone();
        plain.probes = [crate::measurement::testing::sample("shop", true)].into();
        let v = lookup.detail(&plain);
        assert!(v.get("steps").is_none(), "{v}");
        assert_eq!(v["probes"][0]["steps"], json!([]));
    }
}
