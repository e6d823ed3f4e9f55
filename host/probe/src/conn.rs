//! A TCP connection as the probe kinds that speak over one make it (`tcp`, `websocket`): the
//! host resolved (unless it is an address), a connection from the prober's source address to
//! the first address that takes it, and optionally a TLS handshake through the prober's
//! recording verifier (so the served chain and its expiry are the site's, as for HTTPS). Each
//! phase is timed into the probe's [`Phases`] as it completes, so a timeout still reports what
//! was reached.

use crate::measurement::{ErrorKind, Phases, ProbeError};
use crate::{MonitorFailure, Prober, Target, error_chain, monitor_failure};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// A probe's connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a probe stopped: the monitor's own shortage, or the site's failure.
pub(crate) enum Failure {
    Monitor(MonitorFailure),
    Probe(ProbeError),
}

pub(crate) fn failure(kind: ErrorKind, message: String) -> Failure {
    Failure::Probe(ProbeError { kind, message })
}

/// An I/O error: the monitor's own shortage (no file descriptor), or the site's failure of
/// `kind`.
pub(crate) fn io_failure(kind: ErrorKind, what: &str, e: &std::io::Error) -> Failure {
    match monitor_failure(e) {
        Some(m) => Failure::Monitor(m),
        None => failure(kind, format!("{what}: {}", error_chain(e))),
    }
}

/// How far a connection got, for the message of a probe that timed out.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reached {
    pub phases: Phases,
    pub connected: bool,
    pub handshaken: bool,
}

impl Reached {
    /// What was awaited when the time ran out, before the exchange itself.
    pub(crate) fn waiting_for(&self, host: &str, tls: bool) -> Option<&'static str> {
        if !self.connected && self.phases.dns.is_none() && host.parse::<std::net::IpAddr>().is_err()
        {
            Some("address for the host")
        } else if !self.connected {
            Some("connection")
        } else if tls && !self.handshaken {
            Some("TLS handshake")
        } else {
            None
        }
    }
}

/// Connects to `host:port` for `target`, with TLS when `tls` (ALPN `alpn` offered, if any).
pub(crate) async fn open(
    prober: &Prober,
    target: &Target,
    host: &str,
    port: u16,
    tls: bool,
    alpn: &[&[u8]],
    reached: &mut Reached,
) -> Result<Box<dyn Io>, Failure> {
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let t = Instant::now();
            let found = tokio::net::lookup_host((host, port)).await;
            reached.phases.dns = Some(t.elapsed());
            let found: Vec<SocketAddr> = found
                .map_err(|e| io_failure(ErrorKind::Dns, &format!("cannot resolve {host}"), &e))?
                .collect();
            if found.is_empty() {
                return Err(failure(
                    ErrorKind::Dns,
                    format!("{host} resolved to no address"),
                ));
            }
            found
        }
    };
    let t = Instant::now();
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match connect(*addr, prober.source()).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    reached.phases.connect = Some(t.elapsed());
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) => {
            return Err(io_failure(
                ErrorKind::Connect,
                &format!("cannot connect to {addr}"),
                &e,
            ));
        }
        (None, None) => {
            return Err(failure(
                ErrorKind::Dns,
                format!("{host} resolved to no address"),
            ));
        }
    };
    reached.connected = true;
    let _ = stream.set_nodelay(true);
    if !tls {
        return Ok(Box::new(stream));
    }
    let mut config = target
        .tls
        .clone()
        .unwrap_or_else(|| Arc::clone(&prober.tcp_tls));
    if !alpn.is_empty() {
        let mut c = (*config).clone();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config = Arc::new(c);
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        failure(
            ErrorKind::Tls,
            format!("{host} is not a name TLS can verify: {e}"),
        )
    })?;
    let t = Instant::now();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| io_failure(ErrorKind::Tls, "TLS handshake failed", &e))?;
    reached.phases.tls = Some(t.elapsed());
    reached.handshaken = true;
    Ok(Box::new(tls))
}

async fn connect(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// The start of a server's answer, on one line: control characters escaped, at most 200
/// characters.
pub(crate) fn shown_answer(text: &str) -> String {
    let shown: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    if shown.is_empty() {
        "(nothing)".into()
    } else {
        format!("\"{shown}\"")
    }
}
