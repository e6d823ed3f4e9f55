//! The TCP probe kind: resolve `host`, connect to `port` (from the prober's source address),
//! optionally a TLS handshake (its chain recorded, as for HTTPS, so the certificate alerts
//! apply), optionally a line sent, and the server's first answer read until it holds what the
//! site expects (an SMTP or IMAP banner, Redis' `+PONG`). Timed: DNS, connect, TLS; the first
//! answer byte is the TTFB, and the response time ends when the expectation is met (or, with
//! no expectation, when the connection is set up and the line sent). Every failure becomes a
//! [`Measurement`] with an [`ErrorKind`].

use crate::config::kind::Tcp;
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError};
use crate::timing::PhaseClock;
use crate::{Captured, MonitorFailure, Prober, Target, error_chain, monitor_failure};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The most of the server's answer read while waiting for the expected text.
const ANSWER_MAX: usize = 64 * 1024;

/// Probes `target` (of kind tcp, `spec`) once.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &Tcp,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let site = &*target.config;
    let schedule_lag = Instant::now().saturating_duration_since(scheduled);
    let time = prober.clock.now();
    let phase_clock = Arc::new(PhaseClock::default());
    let mut progress = Progress::default();
    let start = Instant::now();
    let result = tokio::time::timeout(
        site.timeout,
        Arc::clone(&phase_clock).scope(exchange(prober, target, spec, start, &mut progress)),
    )
    .await;
    let ended = Instant::now();
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(Failure::Monitor(m))) => return Err(m),
        Ok(Err(Failure::Probe(e))) => Some(e),
        Err(_) => Some(ProbeError {
            kind: ErrorKind::Timeout,
            message: format!(
                "no {} within {}",
                progress.waiting_for(spec),
                humantime::format_duration(site.timeout)
            ),
        }),
    };
    let tls = phase_clock
        .take_handshake()
        .filter(|_| spec.tls)
        .map(|h| prober.tls.details(&h));
    let captured = (!site.checks.is_empty() && error.is_none()).then(|| Captured {
        headers: Vec::new(),
        body: progress.answer.clone(),
    });
    let measurement = Measurement {
        location: None,
        site: Arc::clone(&target.name),
        url: Arc::clone(&target.url),
        time,
        ok: error.is_none(),
        status: None,
        ttfb: progress.first_byte,
        response_time: progress.done,
        body_bytes: progress.answer.len() as u64,
        body_truncated: false,
        phases: progress.phases,
        error,
        duration: ended.saturating_duration_since(start),
        ended_us: prober.clock.timeline_us(ended.into_std()),
        generation: target.generation,
        schedule_lag,
        metrics: Vec::new(),
        tls,
        maintenance: false,
        redirect: None,
        probe_id: 0,
    };
    Ok((measurement, captured))
}

/// How far a probe got; kept outside the timed future so a timeout still reports it.
#[derive(Debug, Default)]
struct Progress {
    phases: Phases,
    connected: bool,
    handshaken: bool,
    first_byte: Option<Duration>,
    done: Option<Duration>,
    answer: Vec<u8>,
}

impl Progress {
    fn waiting_for(&self, spec: &Tcp) -> &'static str {
        if self.phases.dns.is_none()
            && !self.connected
            && spec.host.parse::<std::net::IpAddr>().is_err()
        {
            "address for the host"
        } else if !self.connected {
            "connection"
        } else if spec.tls && !self.handshaken {
            "TLS handshake"
        } else if self.first_byte.is_none() {
            "answer from the server"
        } else {
            "expected answer (the server's answer so far does not hold it)"
        }
    }
}

enum Failure {
    Monitor(MonitorFailure),
    Probe(ProbeError),
}

fn failure(kind: ErrorKind, message: String) -> Failure {
    Failure::Probe(ProbeError { kind, message })
}

/// An I/O error: the monitor's own shortage, or the site's failure of `kind`.
fn io_failure(kind: ErrorKind, what: &str, e: &std::io::Error) -> Failure {
    match monitor_failure(e) {
        Some(m) => Failure::Monitor(m),
        None => failure(kind, format!("{what}: {}", error_chain(e))),
    }
}

async fn exchange(
    prober: &Prober,
    target: &Target,
    spec: &Tcp,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let addrs: Vec<SocketAddr> = match spec.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, spec.port)],
        Err(_) => {
            let t = Instant::now();
            let found = tokio::net::lookup_host((spec.host.as_str(), spec.port)).await;
            progress.phases.dns = Some(t.elapsed());
            let found: Vec<SocketAddr> = found
                .map_err(|e| {
                    io_failure(ErrorKind::Dns, &format!("cannot resolve {}", spec.host), &e)
                })?
                .collect();
            if found.is_empty() {
                return Err(failure(
                    ErrorKind::Dns,
                    format!("{} resolved to no address", spec.host),
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
    progress.phases.connect = Some(t.elapsed());
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) => {
            return Err(io_failure(
                ErrorKind::Connect,
                &format!("cannot connect to {addr}"),
                &e,
            ));
        }
        (None, None) => unreachable!("at least one address"),
    };
    progress.connected = true;
    let _ = stream.set_nodelay(true);
    if spec.tls {
        let config = target
            .tls
            .clone()
            .unwrap_or_else(|| Arc::clone(&prober.tcp_tls));
        let name = rustls::pki_types::ServerName::try_from(spec.host.clone()).map_err(|e| {
            failure(
                ErrorKind::Tls,
                format!("{} is not a name TLS can verify: {e}", spec.host),
            )
        })?;
        let t = Instant::now();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| io_failure(ErrorKind::Tls, "TLS handshake failed", &e))?;
        progress.phases.tls = Some(t.elapsed());
        progress.handshaken = true;
        talk(tls, spec, start, progress).await
    } else {
        talk(stream, spec, start, progress).await
    }
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

/// Sends the site's line and reads the answer until it holds what is expected.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    spec: &Tcp,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    if let Some(line) = &spec.send {
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| io_failure(ErrorKind::Connect, "cannot send", &e))?;
        let _ = stream.flush().await;
    }
    let Some(expect) = &spec.expect else {
        progress.done = Some(start.elapsed());
        return Ok(());
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| {
            io_failure(
                ErrorKind::Connect,
                "the connection failed while reading the answer",
                &e,
            )
        })?;
        if n > 0 && progress.first_byte.is_none() {
            progress.first_byte = Some(start.elapsed());
        }
        let room = ANSWER_MAX - progress.answer.len();
        progress.answer.extend_from_slice(&buf[..n.min(room)]);
        let text = String::from_utf8_lossy(&progress.answer);
        if expect.matches(&text) {
            progress.done = Some(start.elapsed());
            return Ok(());
        }
        if n == 0 || progress.answer.len() >= ANSWER_MAX {
            return Err(failure(
                ErrorKind::Answer,
                format!(
                    "the answer does not hold {expect}{}: {}",
                    if n == 0 {
                        " (the server closed the connection)"
                    } else {
                        ""
                    },
                    shown_answer(&text)
                ),
            ));
        }
    }
}

/// The start of an answer, on one line: control characters escaped, at most 200 characters.
fn shown_answer(text: &str) -> String {
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
