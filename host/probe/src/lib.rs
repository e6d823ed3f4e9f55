//! The prober: the shared clients and the [`Prober::probe`] seam that runs a site's probe
//! kind (the config's `kind::Kind`), one module each: `http` (one request per probe, with
//! TTFB, response time and connection phases measured), `tcp` (a connection, optionally TLS,
//! a line and the expected answer), `dns` (a query and its answers). Every failure becomes a
//! [`Measurement`] with an [`ErrorKind`](crate::measurement::ErrorKind), never an `Err`.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::hex;
use sitewatch_core::measurement;

mod conn;
mod dns;
mod found;
mod grpc;
pub(crate) mod handshake;
pub(crate) mod http;
mod icmp;
pub mod push;
mod rdap;
mod tcp;
pub(crate) mod timing;
pub(crate) mod tls;
mod websocket;

use crate::clock::SharedClock;
use crate::config::SiteConfig;
use crate::config::kind::Kind;
use crate::measurement::Measurement;
use std::sync::Arc;
use timing::{HandshakeStartRecorder, TimedConnectLayer, TimedResolver};
use tokio::time::Instant;

/// Redirects followed before a probe fails with kind `http`.
pub(crate) const MAX_REDIRECTS: usize = 10;

pub use grpc::GRPC_STATUS_CODE;
pub use http::{Captured, Exchange, ExchangeFailed, Exchanged};
pub use icmp::{ICMP_LOSS_RATIO, ICMP_RTT_MAX, ICMP_RTT_MIN};

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
    /// The TLS settings of a `tcp` site with its own TLS trust; `None` uses the shared ones.
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
            tls: None,
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
    /// The TLS settings of `tcp` sites (the platform's trust, no ALPN).
    tcp_tls: Arc<rustls::ClientConfig>,
    /// The pings of the push sites (the server writes them).
    push: Arc<push::Board>,
    /// Domain registrations, for `domain_expiry` sites.
    rdap: Arc<rdap::Rdap>,
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
        let tcp_tls = Arc::new(without_alpn(tls.clone()));
        Ok(Self {
            tcp_tls,
            push: Arc::default(),
            rdap: Arc::new(rdap::Rdap::new(build_client(
                tls.clone(),
                usize::MAX,
                source,
            )?)),
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
        if let Kind::Push(p) = &site.kind {
            // Its pings are taken from now on, before its first tick.
            self.push.watch(p.token.expose(), self.clock.now());
        }
        let trust = if site.tls_insecure {
            Trust::Anything
        } else if let Some(ca) = &site.tls_ca {
            Trust::Roots(crate::config::read_ca_file(ca)?)
        } else {
            target.client = None;
            target.tls = None;
            return Ok(());
        };
        match &site.kind {
            Kind::Tcp(_) | Kind::WebSocket(_) | Kind::Grpc(_) => {
                target.tls = Some(Arc::new(without_alpn(tls_config(trust)?)));
            }
            _ => {
                let idle = if site.keep_alive { usize::MAX } else { 0 };
                target.client = Some(build_client(tls_config(trust)?, idle, self.source)?);
            }
        }
        Ok(())
    }

    /// Where now is on the timeline measurements are placed on.
    pub fn timeline_now_us(&self) -> i64 {
        self.clock.timeline_now_us()
    }

    /// Where domain registrations are looked up (at start and at each reload).
    pub fn configure_rdap(&self, config: &crate::config::RdapConfig) {
        self.rdap.configure(config);
    }

    /// The push sites' pings, which the server records.
    pub fn push_board(&self) -> Arc<push::Board> {
        Arc::clone(&self.push)
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

    /// Sends one request of `target`'s scenario (a `script` site), as its probes are sent.
    /// `Err` when sitewatch itself could not (no file descriptor, no memory).
    pub async fn exchange(
        &self,
        target: &Target,
        request: Exchange,
    ) -> Result<Result<Exchanged, ExchangeFailed>, MonitorFailure> {
        http::exchange(self, target, request).await
    }

    /// Where now is on the wall clock measurements are stamped with.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// `instant` on the timeline measurements are placed on.
    pub fn timeline_us(&self, instant: std::time::Instant) -> i64 {
        self.clock.timeline_us(instant)
    }

    /// Probes `target` once with its kind's run. `scheduled` is when the probe was due, for
    /// the lag figure. What the probe captured for the site's checks comes with it.
    pub async fn probe(
        &self,
        target: &Target,
        scheduled: Instant,
    ) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
        let mut probed = match &target.config.kind {
            Kind::Http => http::run(self, target, scheduled).await,
            Kind::Tcp(spec) => tcp::run(self, target, spec, scheduled).await,
            Kind::Dns(spec) => dns::run(self, target, spec, scheduled).await,
            Kind::WebSocket(spec) => websocket::run(self, target, spec, scheduled).await,
            Kind::Grpc(spec) => grpc::run(self, target, spec, scheduled).await,
            Kind::Icmp(spec) => icmp::run(self, target, spec, scheduled).await,
            Kind::Push(spec) => push::run(self, target, spec, scheduled).await,
            // A scenario runs on the plugin host, which sends its requests through
            // [`Prober::exchange`]; the scheduler gives it script sites.
            Kind::Script(_) => {
                return Err(MonitorFailure(format!(
                    "site {} is a script site: its scenario runs on the plugin host",
                    target.name
                )));
            }
        };
        if target.config.domain_expiry
            && let Ok((m, _)) = &mut probed
            && let Some(host) = host_of(&target.config)
        {
            m.domain_expiry = self.rdap.expiry(&host);
        }
        probed
    }
}

/// The host whose domain a site's registration is: what it probes.
fn host_of(site: &SiteConfig) -> Option<String> {
    match &site.kind {
        Kind::Http => site.request_url.expose().host_str().map(str::to_owned),
        Kind::Tcp(t) => Some(t.host.clone()),
        Kind::WebSocket(w) => Some(w.host.clone()),
        Kind::Grpc(g) => Some(g.host.clone()),
        Kind::Icmp(i) => Some(i.host.clone()),
        Kind::Dns(d) => Some(d.name.clone()),
        Kind::Push(_) | Kind::Script(_) => None,
    }
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

/// TLS settings for a raw TCP connection: no application protocol offered.
fn without_alpn(mut config: rustls::ClientConfig) -> rustls::ClientConfig {
    config.alpn_protocols.clear();
    config
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
