//! The HTTP prober: one request per probe, with TTFB, response time and connection phases
//! measured. Every failure becomes a [`Measurement`] with an [`ErrorKind`], never an `Err`.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::hex;
use sitewatch_core::measurement;

pub mod handshake;
pub mod timing;
pub mod tls;

use crate::clock::SharedClock;
use crate::config::SiteConfig;
use crate::measurement::{ErrorKind, Measurement, ProbeError, Redirected};
use std::sync::Arc;
use std::time::Duration;
use timing::{HandshakeStartRecorder, PhaseClock, TimedConnectLayer, TimedResolver};
use tokio::time::Instant;

/// Redirects followed before a probe fails with kind `http`.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// A site as the prober sees it: its config plus the shared strings every measurement carries.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: Arc<str>,
    /// The URL as shown (`SiteConfig::url`), never the one requested.
    pub url: Arc<str>,
    pub config: Arc<SiteConfig>,
    /// A client of the site's own, for sites with their own TLS trust (`tls_ca`,
    /// `tls_insecure`); `None` uses the shared clients.
    pub client: Option<reqwest::Client>,
    /// The configuration generation this target belongs to: a reload that changes the site
    /// gives it a new one, and probes of the old one are dropped.
    pub generation: u64,
}

impl Target {
    pub fn new(config: SiteConfig) -> Self {
        Self {
            name: config.name.as_str().into(),
            url: config.url.as_str().into(),
            config: Arc::new(config),
            client: None,
            generation: 0,
        }
    }
}

/// sitewatch itself could not run a probe (no file descriptor, no memory): the monitor's
/// failure, which must never count against the site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MonitorFailure(pub String);

/// The error codes that mean the monitor, not the site, ran out of something.
const MONITOR_ERRNOS: [nix::errno::Errno; 4] = [
    nix::errno::Errno::EMFILE,
    nix::errno::Errno::ENFILE,
    nix::errno::Errno::ENOMEM,
    nix::errno::Errno::ENOBUFS,
];

/// Whether `err` (or a cause of it) is the monitor running out of resources.
fn monitor_failure(err: &(dyn std::error::Error + 'static)) -> Option<MonitorFailure> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(code) = io.raw_os_error()
            && MONITOR_ERRNOS.iter().any(|n| *n as i32 == code)
        {
            return Some(MonitorFailure(io.to_string()));
        }
        cur = e.source();
    }
    None
}

#[derive(Debug, thiserror::Error)]
pub enum ProberSetupError {
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    CaFile(#[from] crate::config::CaFileError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Sends probes. Build one and share it: building the HTTP clients costs milliseconds of CPU.
#[derive(Clone)]
pub struct Prober {
    /// No idle connections kept: every probe resolves, connects and handshakes afresh.
    fresh: reqwest::Client,
    /// Keeps connections alive, for sites with `keep_alive: true`.
    pooled: reqwest::Client,
    /// For notification services: never follows a redirect (a 3xx is the service's answer, and
    /// a redirect would carry the notifier's headers elsewhere), honours the proxy variables.
    services: reqwest::Client,
    clock: SharedClock,
    /// Parsed chains, and the last TLS details of each keep-alive origin.
    tls: Arc<tls::Memory>,
    /// The local address probes connect from (`probing.source_address`).
    source: Option<std::net::IpAddr>,
}

impl Prober {
    pub fn new(clock: SharedClock) -> Result<Self, ProberSetupError> {
        Self::with_source(clock, None)
    }

    /// A prober whose probes connect from `source` (any local address when `None`).
    pub fn with_source(
        clock: SharedClock,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, ProberSetupError> {
        let tls = tls_config(Trust::Platform)?;
        Ok(Self {
            fresh: build_client(tls.clone(), 0, source)?,
            services: reqwest::Client::builder()
                .tls_backend_preconfigured(tls.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            pooled: build_client(tls, usize::MAX, source)?,
            clock,
            tls: Arc::default(),
            source,
        })
    }

    /// Gives a site with its own TLS trust (`tls_ca`, `tls_insecure`) a client of its own.
    pub fn prepare(&self, target: &mut Target) -> Result<(), ProberSetupError> {
        let site = &target.config;
        let trust = if site.tls_insecure {
            Trust::Anything
        } else if let Some(ca) = &site.tls_ca {
            Trust::Roots(crate::config::read_ca_file(ca)?)
        } else {
            target.client = None;
            return Ok(());
        };
        let idle = if site.keep_alive { usize::MAX } else { 0 };
        target.client = Some(build_client(tls_config(trust)?, idle, self.source)?);
        Ok(())
    }

    /// Where now is on the timeline measurements are placed on.
    pub fn timeline_now_us(&self) -> i64 {
        self.clock.timeline_now_us()
    }

    /// The local address probes connect from.
    pub fn source(&self) -> Option<std::net::IpAddr> {
        self.source
    }

    /// A plain client for the program's own requests (e.g. to InfluxDB): pooled, same TLS.
    pub fn plain_client(&self) -> reqwest::Client {
        self.pooled.clone()
    }

    /// The client of the notifiers: pooled, same TLS, no redirects, proxies from the
    /// environment (`HTTPS_PROXY`, `NO_PROXY`).
    pub fn service_client(&self) -> reqwest::Client {
        self.services.clone()
    }

    /// Probes `target` once. `scheduled` is when the probe was due, for the lag figure. The
    /// response's headers and body are kept only when the site has checks to run on them.
    pub async fn probe(
        &self,
        target: &Target,
        scheduled: Instant,
    ) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
        let site = &*target.config;
        let schedule_lag = Instant::now().saturating_duration_since(scheduled);
        let time = self.clock.now();
        let client = match &target.client {
            Some(c) => c,
            None if site.keep_alive => &self.pooled,
            None => &self.fresh,
        };
        let phase_clock = Arc::new(PhaseClock::default());
        let mut progress = Progress {
            captured: (!site.checks.is_empty()).then(Captured::default),
            ..Progress::default()
        };
        let start = Instant::now();
        let result = tokio::time::timeout(
            site.timeout,
            Arc::clone(&phase_clock).scope(fetch(client, site, start, &mut progress)),
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
                            "status {code}, expected {}; the redirect to {to} was not followed (follow_redirects: {})",
                            site.expect_status,
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
        let tls = self.tls.select(
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
            ended_us: self.clock.timeline_us(ended.into_std()),
            generation: target.generation,
            schedule_lag,
            metrics: Vec::new(),
            tls,
            maintenance: false,
            redirect,
            probe_id: 0,
        };
        Ok((measurement, captured))
    }
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
    /// A redirect the site's policy did not follow, where it pointed (shown, redacted).
    not_followed: Option<String>,
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
    site: &SiteConfig,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let first = site.request_url.expose();
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
        let follow = match site.follow_redirects {
            crate::config::FollowRedirects::Any => true,
            crate::config::FollowRedirects::SameOrigin => next.origin() == origin,
            crate::config::FollowRedirects::Never => false,
        };
        if !follow {
            progress.not_followed = Some(shown_url(&next, site));
            break response;
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

fn build_client(
    tls: rustls::ClientConfig,
    idle: usize,
    source: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder().local_address(source);
    if idle == 0 {
        // A connection that lives for one probe needs no TCP keepalive or user timeout (the
        // probe's own timeout bounds it): five setsockopt calls a probe saved. All four must be
        // unset, or hyper-util still turns keepalive on for the interval and count.
        builder = builder
            .tcp_keepalive(None)
            .tcp_keepalive_interval(None)
            .tcp_keepalive_retries(None)
            .tcp_user_timeout(None);
    }
    builder
        .tls_backend_preconfigured(tls)
        .dns_resolver(Arc::new(TimedResolver))
        .connector_layer(TimedConnectLayer)
        // Redirects are followed by `fetch`, by the site's policy.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(idle)
        .build()
}

/// Which server certificates a client accepts.
enum Trust {
    /// The platform's trust store (the default).
    Platform,
    /// Only these CAs.
    Roots(Vec<rustls::pki_types::CertificateDer<'static>>),
    /// Any certificate; signatures are still checked. Only when the operator asks.
    Anything,
}

/// The TLS settings of a probe: ring crypto (its suites recording themselves, see [`tls`]), the
/// given trust behind a verifier that records the served chain, HTTP/2 and 1.1 by ALPN, and no
/// session resumption, so each probe measures a full handshake.
fn tls_config(trust: Trust) -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let provider = tls::provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Platform => Arc::new(rustls_platform_verifier::Verifier::new(Arc::clone(
            &provider,
        ))?),
        Trust::Roots(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots.add(c)?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
        }
        Trust::Anything => Arc::new(AcceptAnyCertificate(Arc::clone(&provider))),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(tls::RecordingVerifier(verifier)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::store(Arc::new(HandshakeStartRecorder));
    Ok(config)
}

/// Accepts any server certificate but still checks the handshake signatures. Used only for sites
/// with `tls_insecure: true`.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
