//! Phase timing for reqwest probes. reqwest does not report DNS, connect and TLS times, so the
//! prober installs three hooks that record into a per-probe [`PhaseClock`] found through a
//! task-local: a resolver (DNS), a connector layer (the whole connection setup) and a rustls
//! session store, which rustls consults right when it writes the ClientHello, i.e. at the moment
//! the TCP connection is up and TLS starts. hyper-util polls the connect future inside the
//! request's own task, so the task-local is visible to all three.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

tokio::task_local! {
    static PHASES: Arc<PhaseClock>;
}

/// Instants recorded during one probe's connection setup.
#[derive(Debug, Default)]
pub struct PhaseClock {
    inner: Mutex<PhaseInstants>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PhaseInstants {
    pub connect_start: Option<Instant>,
    pub dns_start: Option<Instant>,
    pub dns_end: Option<Instant>,
    pub dns_failed: bool,
    pub tls_start: Option<Instant>,
    pub connect_end: Option<Instant>,
}

impl PhaseClock {
    fn update(&self, f: impl FnOnce(&mut PhaseInstants)) {
        // A poisoned lock only means another hook panicked; the instants are still usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    pub fn snapshot(&self) -> PhaseInstants {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fut` with this clock visible to the hooks.
    pub async fn scope<F: Future>(self: Arc<Self>, fut: F) -> F::Output {
        PHASES.scope(self, fut).await
    }
}

fn record(f: impl FnOnce(&mut PhaseInstants)) {
    let _ = PHASES.try_with(|c| c.update(f));
}

impl PhaseInstants {
    /// Turns the instants into phase durations. TCP connect is the connection setup less DNS and
    /// less TLS.
    pub fn phases(&self) -> crate::measurement::Phases {
        let dns = match (self.dns_start, self.dns_end) {
            (Some(s), Some(e)) => Some(e.saturating_duration_since(s)),
            _ => None,
        };
        let tcp_end = self.tls_start.or(self.connect_end);
        let connect = match (self.connect_start, tcp_end) {
            // With no address there was no connection attempt to time.
            _ if self.dns_failed => None,
            (Some(s), Some(e)) => Some(
                e.saturating_duration_since(s)
                    .saturating_sub(dns.unwrap_or_default()),
            ),
            _ => None,
        };
        let tls = match (self.tls_start, self.connect_end) {
            (Some(s), Some(e)) => Some(e.saturating_duration_since(s)),
            _ => None,
        };
        crate::measurement::Phases { dns, connect, tls }
    }
}

/// A DNS resolver (the system's, through tokio) that records how long resolution took.
#[derive(Debug, Default, Clone)]
pub struct TimedResolver;

impl reqwest::dns::Resolve for TimedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            record(|p| p.dns_start = Some(Instant::now()));
            let host = name.as_str().to_owned();
            let result = tokio::net::lookup_host((host.as_str(), 0)).await;
            record(|p| {
                p.dns_end = Some(Instant::now());
                p.dns_failed = result.is_err();
            });
            let addrs: Vec<SocketAddr> = result?.collect();
            if addrs.is_empty() {
                record(|p| p.dns_failed = true);
                return Err(format!("{host} resolved to no address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A tower layer around reqwest's connector that records when connection setup starts and ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimedConnectLayer;

impl<S> tower_layer::Layer<S> for TimedConnectLayer {
    type Service = TimedConnect<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimedConnect { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TimedConnect<S> {
    inner: S,
}

impl<S, R> tower_service::Service<R> for TimedConnect<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let clock = PHASES.try_with(Arc::clone).ok();
        if let Some(c) = &clock {
            c.update(|p| p.connect_start = Some(Instant::now()));
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            if let Some(c) = &clock {
                c.update(|p| p.connect_end = Some(Instant::now()));
            }
            result
        })
    }
}

/// A rustls session store that stores nothing (every probe does a full handshake, as
/// blackbox_exporter does) and records when rustls starts the handshake.
#[derive(Debug, Default)]
pub struct HandshakeStartRecorder;

impl HandshakeStartRecorder {
    fn mark() {
        record(|p| {
            p.tls_start.get_or_insert_with(Instant::now);
        });
    }
}

impl rustls::client::ClientSessionStore for HandshakeStartRecorder {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::NamedGroup) {}

    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        Self::mark();
        None
    }

    fn set_tls12_session(
        &self,
        _: rustls::pki_types::ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(
        &self,
        _: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        Self::mark();
        None
    }

    fn remove_tls12_session(&self, _: &rustls::pki_types::ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _: rustls::pki_types::ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
    }

    fn take_tls13_ticket(
        &self,
        _: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        Self::mark();
        None
    }
}
