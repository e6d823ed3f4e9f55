//! Phase timing for reqwest probes. reqwest does not report DNS, connect and TLS times, so the
//! prober installs three hooks that record into a per-probe `PhaseClock` found through a
//! task-local: a resolver (DNS), a connector layer (the whole connection setup) and a rustls
//! session store, which rustls consults right when it writes the ClientHello, i.e. at the moment
//! the TCP connection is up and TLS starts. hyper-util polls the connect future inside the
//! request's own task, so the task-local is visible to all three.
//!
//! A probe that follows redirects without a pooled connection sets up one connection per hop.
//! Each phase is then the sum over the hops (as blackbox_exporter sums its phases over a
//! redirect chain): the connector layer's `call` starts a hop, and the DNS, TLS-start and
//! connect-end instants that follow belong to it.
//!
//! The same clock carries what the TLS hooks of [`super::tls`] saw of the latest hop's handshake
//! (its served chain and suite); a new hop forgets the previous one's.

use super::handshake::Handshake;
use crate::measurement::Phases;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static PHASES: Arc<PhaseClock>;
}

/// Instants recorded during one probe's connection setups, and the latest one's handshake.
#[derive(Debug, Default)]
pub(crate) struct PhaseClock {
    inner: Mutex<PhaseInstants>,
    /// What the TLS hooks saw of the latest connection's handshake; `None` until one reached
    /// them.
    handshake: Mutex<Option<Handshake>>,
}

/// One probe's connection setups: the instants of the latest and the summed phases of the
/// earlier ones.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PhaseInstants {
    /// The latest connection setup (in progress, or the last one made). A probe that fails to
    /// connect failed on this hop, so its error is classified by it.
    pub hop: HopInstants,
    /// The phases of the hops before it, each summed over them.
    pub earlier: Phases,
}

/// The instants of one connection setup (one hop of a redirect chain).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HopInstants {
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

    /// A new connection setup starts at `at`: a new hop of the phases, and no handshake seen
    /// for it yet.
    fn new_hop(&self, at: Instant) {
        self.update(|p| p.start_hop(at));
        *self.lock_handshake() = None;
    }

    fn lock_handshake(&self) -> std::sync::MutexGuard<'_, Option<Handshake>> {
        self.handshake.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the TLS hooks saw of the latest connection's handshake, taken out.
    pub(crate) fn take_handshake(&self) -> Option<Handshake> {
        self.lock_handshake().take()
    }

    /// Runs `fut` with this clock visible to the hooks.
    pub async fn scope<F: Future>(self: Arc<Self>, fut: F) -> F::Output {
        PHASES.scope(self, fut).await
    }
}

fn record(f: impl FnOnce(&mut PhaseInstants)) {
    let _ = PHASES.try_with(|c| c.update(f));
}

/// Updates the current probe's record of the latest handshake (nothing outside a probe, e.g.
/// for the notifiers' client or a connection a probe's task no longer polls).
pub(super) fn record_handshake(f: impl FnOnce(&mut Handshake)) {
    let _ = PHASES.try_with(|c| f(c.lock_handshake().get_or_insert_default()));
}

impl PhaseInstants {
    /// A new connection setup starts at `at`: the current hop's phases join the earlier ones and
    /// the new hop starts with no DNS, TLS or end instant of its own.
    pub(crate) fn start_hop(&mut self, at: Instant) {
        self.earlier = sum(self.earlier, self.hop.phases());
        self.hop = HopInstants {
            connect_start: Some(at),
            ..HopInstants::default()
        };
    }

    /// rustls asks the session store several times while writing one ClientHello; the first
    /// ask of the hop is when its handshake started.
    pub(crate) fn tls_started(&mut self, at: Instant) {
        self.hop.tls_start.get_or_insert(at);
    }

    /// Each phase summed over the hops; `None` for a phase no hop had.
    pub fn phases(&self) -> Phases {
        sum(self.earlier, self.hop.phases())
    }
}

impl HopInstants {
    /// This hop's phase durations. TCP connect is the connection setup less DNS and less TLS.
    pub fn phases(&self) -> Phases {
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
        Phases { dns, connect, tls }
    }
}

/// Phase by phase: the sum where both have it, else whichever has it.
fn sum(a: Phases, b: Phases) -> Phases {
    fn add(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    Phases {
        dns: add(a.dns, b.dns),
        connect: add(a.connect, b.connect),
        tls: add(a.tls, b.tls),
    }
}

/// A DNS resolver (the system's, through tokio) that records how long resolution took.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimedResolver;

impl reqwest::dns::Resolve for TimedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            record(|p| p.hop.dns_start = Some(Instant::now()));
            let host = name.as_str().to_owned();
            let result = tokio::net::lookup_host((host.as_str(), 0)).await;
            record(|p| {
                p.hop.dns_end = Some(Instant::now());
                p.hop.dns_failed = result.is_err();
            });
            let addrs: Vec<SocketAddr> = result?.collect();
            if addrs.is_empty() {
                record(|p| p.hop.dns_failed = true);
                return Err(format!("{host} resolved to no address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A tower layer around reqwest's connector that records when connection setup starts and ends;
/// each `call` is a new hop.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TimedConnectLayer;

impl<S> tower_layer::Layer<S> for TimedConnectLayer {
    type Service = TimedConnect<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimedConnect { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TimedConnect<S> {
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
            c.new_hop(Instant::now());
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            if let Some(c) = &clock {
                c.update(|p| p.hop.connect_end = Some(Instant::now()));
            }
            result
        })
    }
}

/// A rustls session store that stores nothing (every probe does a full handshake, as
/// blackbox_exporter does) and records when rustls starts the handshake.
#[derive(Debug, Default)]
pub(crate) struct HandshakeStartRecorder;

impl HandshakeStartRecorder {
    fn mark() {
        let now = Instant::now();
        record(|p| p.tls_started(now));
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Instants `n` milliseconds after a common origin.
    fn clock() -> impl Fn(u64) -> Instant {
        let origin = Instant::now();
        move |n| origin + MS * n as u32
    }

    /// One hop, as the hooks record it: setup starts at `start`, DNS over `dns` if any, TLS from
    /// `tls` if any, setup ends at `end` if it did.
    fn hop(
        p: &mut PhaseInstants,
        at: &impl Fn(u64) -> Instant,
        start: u64,
        dns: Option<(u64, u64)>,
        tls: Option<u64>,
        end: Option<u64>,
    ) {
        p.start_hop(at(start));
        if let Some((s, e)) = dns {
            p.hop.dns_start = Some(at(s));
            p.hop.dns_end = Some(at(e));
        }
        if let Some(t) = tls {
            p.tls_started(at(t));
        }
        p.hop.connect_end = end.map(at);
    }

    fn phases(dns: Option<u32>, connect: Option<u32>, tls: Option<u32>) -> Phases {
        Phases {
            dns: dns.map(|n| MS * n),
            connect: connect.map(|n| MS * n),
            tls: tls.map(|n| MS * n),
        }
    }

    #[test]
    fn one_hop_splits_the_setup_into_dns_connect_and_tls() {
        let at = clock();
        let mut p = PhaseInstants::default();
        hop(&mut p, &at, 0, Some((1, 5)), Some(12), Some(30));
        assert_eq!(p.phases(), phases(Some(4), Some(8), Some(18)));
    }

    #[test]
    fn no_hop_has_no_phases() {
        assert_eq!(PhaseInstants::default().phases(), Phases::default());
    }

    #[test]
    fn http_to_https_sums_connect_and_takes_tls_from_the_second_hop() {
        let at = clock();
        let mut p = PhaseInstants::default();
        // IP literals: no DNS on either hop. Hop 1 (http) connects in 2 ms; the redirect is
        // answered at 10; hop 2 (https) connects in 3 ms and handshakes in 7.
        hop(&mut p, &at, 0, None, None, Some(2));
        hop(&mut p, &at, 10, None, Some(13), Some(20));
        assert_eq!(p.phases(), phases(None, Some(5), Some(7)));
    }

    #[test]
    fn https_to_https_sums_both_handshakes_without_the_exchange_between() {
        let at = clock();
        let mut p = PhaseInstants::default();
        hop(&mut p, &at, 0, Some((0, 1)), Some(3), Some(9));
        // rustls asks the store again later in the first handshake: the start stays.
        p.tls_started(at(5));
        hop(&mut p, &at, 50, Some((50, 52)), Some(55), Some(60));
        assert_eq!(p.phases(), phases(Some(3), Some(5), Some(11)));
        assert_eq!(p.hop.tls_start, Some(at(55)), "the second hop's own start");
    }

    #[test]
    fn a_new_hop_forgets_the_previous_hops_tls_start() {
        let at = clock();
        let mut p = PhaseInstants::default();
        hop(&mut p, &at, 0, None, Some(1), Some(4));
        // The second hop is refused: its setup ends with no handshake started.
        hop(&mut p, &at, 20, None, None, Some(21));
        assert_eq!(p.hop.tls_start, None, "the failed hop never reached TLS");
        assert_eq!(p.phases(), phases(None, Some(2), Some(3)));
    }

    #[test]
    fn a_dns_failure_on_a_later_hop_keeps_the_earlier_hops_phases() {
        let at = clock();
        let mut p = PhaseInstants::default();
        hop(&mut p, &at, 0, Some((0, 2)), Some(4), Some(9));
        hop(&mut p, &at, 30, Some((30, 36)), None, Some(36));
        p.hop.dns_failed = true;
        // The failed lookup's time counts as DNS; there was no connection attempt to time.
        assert_eq!(p.phases(), phases(Some(8), Some(2), Some(5)));
    }

    #[test]
    fn an_unfinished_hop_counts_what_it_reached() {
        let at = clock();
        let mut p = PhaseInstants::default();
        hop(&mut p, &at, 0, None, Some(2), Some(6));
        // The probe timed out during the second handshake: its TCP connect is known, its TLS
        // is not.
        hop(&mut p, &at, 40, None, Some(43), None);
        assert_eq!(p.phases(), phases(None, Some(5), Some(4)));
    }
}
