//! The HTTP(S) probe kind: one request per probe (redirects followed as the site says), with
//! TTFB, response time and the connection phases (DNS, connect, TLS) timed by the hooks of
//! [`crate::timing`]; every failure becomes a [`Measurement`] with an [`ErrorKind`], never an
//! `Err`. It captures the response's headers and body for the site's checks ([`Captured`]).

use crate::config::SiteConfig;
use crate::measurement::{ErrorKind, Measurement, ProbeError, Redirected};
use crate::timing::{self, PhaseClock};
use crate::{MAX_REDIRECTS, MonitorFailure, Prober, Target, error_chain, monitor_failure};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Probes `target` once over HTTP(S). `scheduled` is when the probe was due, for the lag
/// figure. The response's headers and body are kept only when the site has checks to run on
/// them.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let site = &*target.config;
    let schedule_lag = Instant::now().saturating_duration_since(scheduled);
    let time = prober.clock.now();
    let client = match &target.client {
        Some(c) => c,
        None if site.keep_alive => &prober.pooled,
        None => &prober.fresh,
    };
    let phase_clock = Arc::new(PhaseClock::default());
    let mut progress = Progress {
        captured: (!site.checks.is_empty()).then(Captured::default),
        ..Progress::default()
    };
    let start = Instant::now();
    let request = Request {
        url: site.request_url.expose(),
        method: site.method.clone(),
        headers: &site.headers,
        body: site.body.as_ref(),
        follow: site.follow_redirects,
        max_body: site.max_body,
        allow: None,
    };
    let result = tokio::time::timeout(
        site.timeout,
        Arc::clone(&phase_clock).scope(fetch(client, &request, start, &mut progress)),
    )
    .await;
    let ended = Instant::now();
    let instants = phase_clock.snapshot();
    let error = match result {
        Ok(Ok(())) => match progress.status {
            Some(code) if !site.expect_status.matches(code) => Some(ProbeError {
                kind: ErrorKind::Status,
                message: match &progress.not_followed {
                    Some(to) => format!(
                        "status {code}, expected {}; the redirect to {} was not followed (follow_redirects: {})",
                        site.expect_status,
                        shown_url(to, site),
                        site.follow_redirects.as_str()
                    ),
                    None => format!("status {code}, expected {}", site.expect_status),
                },
            }),
            _ => None,
        },
        Ok(Err(failure)) => {
            if let Failure::Send(e) | Failure::Body(e) = &failure {
                if let Some(ours) = monitor_failure(e) {
                    return Err(ours);
                }
                if let Some(url) = e.url() {
                    progress.last_url = Some(url.clone());
                }
            }
            Some(classify(failure, &instants))
        }
        Err(_) => Some(ProbeError {
            kind: ErrorKind::Timeout,
            message: format!(
                "no complete response within {} ({})",
                humantime::format_duration(site.timeout),
                progress.stage()
            ),
        }),
    };
    let captured = progress.captured.take().filter(|_| error.is_none());
    let tls = prober.tls.select(
        phase_clock.take_handshake(),
        progress.last_url.as_ref(),
        site.request_url.expose(),
        site.keep_alive,
        instants.hop.connect_start.is_some(),
    );
    // An error may quote what was requested (a certificate's name check quotes the host).
    let error = error.map(|mut e| {
        if !site.secrets.is_empty() {
            e.message = site.redact(&e.message);
        }
        e
    });
    let redirect = (progress.hops > 0).then(|| {
        Arc::new(Redirected {
            hops: progress.hops,
            final_url: progress
                .last_url
                .as_ref()
                .map(|u| shown_url(u, site))
                .unwrap_or_default(),
        })
    });
    let measurement = Measurement {
        domain_expiry: None,
        location: None,
        site: Arc::clone(&target.name),
        url: Arc::clone(&target.url),
        time,
        ok: error.is_none(),
        status: progress.status,
        ttfb: progress.ttfb,
        response_time: progress.response_time,
        body_bytes: progress.body_bytes,
        body_truncated: progress.body_truncated,
        phases: instants.phases(),
        error,
        duration: ended.saturating_duration_since(start),
        ended_us: prober.clock.timeline_us(ended.into_std()),
        generation: target.generation,
        schedule_lag,
        metrics: Vec::new(),
        tls,
        maintenance: false,
        redirect,
        probe_id: 0,
        steps: Vec::new(),
    };
    Ok((measurement, captured))
}

/// The parts of a response that checks see.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Up to the site's `max_body` bytes.
    pub body: Vec<u8>,
}

/// How far a probe got; kept outside the timed future so a timeout still reports it.
#[derive(Debug, Default)]
struct Progress {
    status: Option<u16>,
    ttfb: Option<Duration>,
    response_time: Option<Duration>,
    body_bytes: u64,
    body_truncated: bool,
    captured: Option<Captured>,
    /// The URL of the latest hop, when known: the response's (after redirects) or the failed
    /// request's.
    last_url: Option<url::Url>,
    /// Redirects followed.
    hops: u32,
    /// A redirect the site's policy did not follow, where it pointed.
    not_followed: Option<url::Url>,
}

impl Progress {
    fn stage(&self) -> &'static str {
        if self.ttfb.is_some() {
            "while reading the body"
        } else {
            "before the response headers"
        }
    }
}

enum Failure {
    Send(reqwest::Error),
    Body(reqwest::Error),
    TooManyRedirects,
    /// A hop to a URL the request may not reach (a scenario's `allow`).
    Refused(url::Url),
}

/// One request as the prober sends it: a site's probe, or a scenario's request.
pub(crate) struct Request<'a> {
    /// The first hop's URL (its userinfo becomes basic auth, for every hop to its origin).
    pub url: &'a url::Url,
    pub method: reqwest::Method,
    pub headers: &'a reqwest::header::HeaderMap,
    pub body: Option<&'a crate::config::RequestBody>,
    pub follow: crate::config::FollowRedirects,
    pub max_body: u64,
    /// Which URLs a redirect may lead to (`None`: any the policy follows).
    pub allow: Option<&'a (dyn Fn(&url::Url) -> bool + Send + Sync)>,
}

/// The statuses that redirect (with a `Location`).
fn is_redirect(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// `url` as a measurement may show it: the password of its userinfo and the site's secrets
/// replaced by `***`.
fn shown_url(url: &url::Url, site: &SiteConfig) -> String {
    site.redact(&crate::config::values::masked_url(url, false))
}

/// Sends the site's request and follows its redirects by the site's policy, hop by hop (not by
/// reqwest's policy, which would carry the site's own headers, such as an API key, to any host
/// a response names): a hop to the site's own origin gets the method, headers, basic auth and
/// body as the first did (a 303, and a 301 or 302 of a POST, turn into a GET without a body, as
/// browsers do); a hop to another origin gets none of the headers, no basic auth and no body.
/// Reads the final response's body up to the site's `max_body`.
async fn fetch(
    client: &reqwest::Client,
    site: &Request<'_>,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let first = site.url;
    let origin = first.origin();
    let mut url = first.clone();
    let mut method = site.method.clone();
    let mut with_body = site.body.is_some();
    let mut response = loop {
        let own = url.origin() == origin;
        let mut request = client.request(method.clone(), url.clone());
        if own {
            request = request.headers(site.headers.clone());
            // The first hop's userinfo is turned into basic auth by reqwest; a later hop's URL
            // comes from a Location and has none.
            if progress.hops > 0 && !first.username().is_empty() {
                use crate::config::values::userinfo_part;
                request = request.basic_auth(
                    userinfo_part(first.username()),
                    first.password().map(userinfo_part),
                );
            }
            if with_body && let Some(body) = &site.body {
                if let Some(ct) = &body.content_type {
                    request = request.header(reqwest::header::CONTENT_TYPE, ct.clone());
                }
                request = request.body(body.bytes.clone());
            }
        }
        let response = request.send().await.map_err(Failure::Send)?;
        let status = response.status();
        let next = is_redirect(status)
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .filter(|n| matches!(n.scheme(), "http" | "https"))
            .map(|mut n| {
                // A relative Location keeps the base URL's userinfo; a hop's credentials are
                // the explicit basic auth above (to its own origin only), never the URL's.
                let _ = n.set_username("");
                let _ = n.set_password(None);
                n
            });
        let Some(next) = next else {
            break response;
        };
        let follow = match site.follow {
            crate::config::FollowRedirects::Any => true,
            crate::config::FollowRedirects::SameOrigin => next.origin() == origin,
            crate::config::FollowRedirects::Never => false,
        };
        if !follow {
            progress.not_followed = Some(next);
            break response;
        }
        if site.allow.is_some_and(|allow| !allow(&next)) {
            progress.last_url = Some(next.clone());
            return Err(Failure::Refused(next));
        }
        if progress.hops as usize >= MAX_REDIRECTS {
            progress.last_url = Some(next);
            return Err(Failure::TooManyRedirects);
        }
        progress.hops += 1;
        let to_get = status == reqwest::StatusCode::SEE_OTHER && method != reqwest::Method::HEAD
            || matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST;
        if to_get {
            method = reqwest::Method::GET;
            with_body = false;
        }
        progress.last_url = Some(next.clone());
        url = next;
    };
    progress.ttfb = Some(start.elapsed());
    progress.last_url = Some(response.url().clone());
    progress.status = Some(response.status().as_u16());
    if let Some(c) = &mut progress.captured {
        c.headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
    }
    let max_body = site.max_body;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max_body - progress.body_bytes;
                let take = (chunk.len() as u64).min(room) as usize;
                if let Some(c) = &mut progress.captured {
                    c.body.extend_from_slice(&chunk[..take]);
                }
                if chunk.len() as u64 > room {
                    // The cap is reached: stop reading (the connection is dropped, not drained).
                    progress.body_bytes = max_body;
                    progress.body_truncated = true;
                    break;
                }
                progress.body_bytes += chunk.len() as u64;
            }
            Ok(None) => break,
            Err(e) => return Err(Failure::Body(e)),
        }
    }
    progress.response_time = Some(start.elapsed());
    Ok(())
}

fn classify(failure: Failure, phases: &timing::PhaseInstants) -> ProbeError {
    let (kind, err) = match failure {
        Failure::Refused(to) => {
            return ProbeError {
                kind: ErrorKind::Plugin,
                message: format!(
                    "the redirect to {} was refused: its host is not in the site's allow",
                    to.host_str().unwrap_or_default()
                ),
            };
        }
        Failure::TooManyRedirects => {
            return ProbeError {
                kind: ErrorKind::Http,
                message: format!("too many redirects (more than {MAX_REDIRECTS})"),
            };
        }
        Failure::Body(e) => (
            if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Body
            },
            e,
        ),
        Failure::Send(e) => {
            // A connection failure is the latest hop's (a redirect's earlier hops succeeded).
            let hop = &phases.hop;
            let kind = if hop.dns_failed {
                ErrorKind::Dns
            } else if e.is_timeout() {
                ErrorKind::Timeout
            } else if is_tls_error(&e) || (e.is_connect() && hop.tls_start.is_some()) {
                ErrorKind::Tls
            } else if e.is_connect() {
                ErrorKind::Connect
            } else if e.is_body() || e.is_decode() {
                ErrorKind::Body
            } else {
                ErrorKind::Http
            };
            (kind, e)
        }
    };
    ProbeError {
        kind,
        message: error_chain(&err.without_url()),
    }
}

/// Whether a rustls error is anywhere in the error's source chain.
fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// One request of a scenario (a `script` site's run), sent by the prober as a site's probe is:
/// the site's client and TLS trust, its redirect policy and body cap, every hop checked
/// against `allow`.
pub struct Exchange {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: reqwest::header::HeaderMap,
    pub body: Option<Vec<u8>>,
    /// The request's whole time, redirects included.
    pub timeout: Duration,
    /// Which URLs it, and any redirect it follows, may reach.
    pub allow: Arc<dyn Fn(&url::Url) -> bool + Send + Sync>,
}

/// A scenario's request that got a whole response (any status).
#[derive(Debug, Clone)]
pub struct Exchanged {
    pub status: u16,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Up to the site's `max_body` bytes.
    pub body: Vec<u8>,
    pub body_truncated: bool,
    /// The final response's URL, after redirects.
    pub url: url::Url,
    pub ttfb: Duration,
    pub response_time: Duration,
    pub phases: crate::measurement::Phases,
}

/// A scenario's request that got no whole response.
#[derive(Debug, Clone)]
pub struct ExchangeFailed {
    pub error: ProbeError,
    /// The host a redirect led to that `allow` refused.
    pub refused: Option<String>,
    /// The request's time until it failed.
    pub elapsed: Duration,
    pub phases: crate::measurement::Phases,
}

/// Sends one scenario request for `target`.
pub(crate) async fn exchange(
    prober: &Prober,
    target: &Target,
    x: Exchange,
) -> Result<Result<Exchanged, ExchangeFailed>, MonitorFailure> {
    let site = &*target.config;
    let client = match &target.client {
        Some(c) => c,
        None if site.keep_alive => &prober.pooled,
        None => &prober.fresh,
    };
    let phase_clock = Arc::new(PhaseClock::default());
    let mut progress = Progress {
        captured: Some(Captured::default()),
        ..Progress::default()
    };
    let body = x.body.map(|bytes| crate::config::RequestBody {
        bytes,
        content_type: None,
    });
    let request = Request {
        url: &x.url,
        method: x.method,
        headers: &x.headers,
        body: body.as_ref(),
        follow: site.follow_redirects,
        max_body: site.max_body,
        allow: Some(&*x.allow),
    };
    let start = Instant::now();
    let result = tokio::time::timeout(
        x.timeout,
        Arc::clone(&phase_clock).scope(fetch(client, &request, start, &mut progress)),
    )
    .await;
    let elapsed = start.elapsed();
    let instants = phase_clock.snapshot();
    let failed = |error: ProbeError, refused: Option<String>| {
        Ok(Err(ExchangeFailed {
            error,
            refused,
            elapsed,
            phases: instants.phases(),
        }))
    };
    match result {
        Ok(Ok(())) => {
            let captured = progress.captured.take().unwrap_or_default();
            Ok(Ok(Exchanged {
                status: progress.status.unwrap_or_default(),
                headers: captured.headers,
                body: captured.body,
                body_truncated: progress.body_truncated,
                url: progress.last_url.unwrap_or(x.url),
                ttfb: progress.ttfb.unwrap_or(elapsed),
                response_time: progress.response_time.unwrap_or(elapsed),
                phases: instants.phases(),
            }))
        }
        Ok(Err(failure)) => {
            if let Failure::Send(e) | Failure::Body(e) = &failure
                && let Some(ours) = monitor_failure(e)
            {
                return Err(ours);
            }
            let refused = match &failure {
                Failure::Refused(to) => to.host_str().map(str::to_owned),
                _ => None,
            };
            failed(classify(failure, &instants), refused)
        }
        Err(_) => failed(
            ProbeError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "no complete response within {} ({})",
                    humantime::format_duration(x.timeout),
                    progress.stage()
                ),
            },
            None,
        ),
    }
}
