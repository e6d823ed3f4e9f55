//! The ICMP probe kind: `count` echo requests to the host (resolved first when it is a name),
//! one after the other, each waiting for its reply until the probe's timeout is spread out.
//! Up when at least one reply came back; the loss and the round trips (min, average, max) are
//! reported, the average being the response time. The socket is an unprivileged ICMP socket
//! where the kernel allows one (`net.ipv4.ping_group_range`), else a raw socket (root, or
//! `CAP_NET_RAW`); when neither is possible the failure names both.

use crate::config::kind::Icmp;
use crate::conn::{Failure, failure, io_failure};
use crate::found::{Clocked, Found};
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError};
use crate::{Captured, MonitorFailure, Prober, Target};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// The figures an icmp probe reports with its measurement.
pub const ICMP_LOSS_RATIO: &str = "icmp_loss_ratio";
pub const ICMP_RTT_MIN: &str = "icmp_rtt_min_seconds";
pub const ICMP_RTT_MAX: &str = "icmp_rtt_max_seconds";

/// The pause between two echo requests of one probe.
const GAP: Duration = Duration::from_millis(50);

pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &Icmp,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let site = &*target.config;
    let clocked = Clocked::start(prober, scheduled);
    let deadline = clocked.start + site.timeout;
    let mut phases = Phases::default();
    let mut rtts = Vec::new();
    let result = echoes(prober, spec, deadline, &mut phases, &mut rtts).await;
    let error = match result {
        Err(Failure::Monitor(m)) => return Err(m),
        Err(Failure::Probe(e)) => Some(e),
        Ok(()) if rtts.is_empty() => Some(ProbeError {
            kind: ErrorKind::Timeout,
            message: format!(
                "no echo reply to {} request{} within {}",
                spec.count,
                if spec.count == 1 { "" } else { "s" },
                humantime::format_duration(site.timeout)
            ),
        }),
        Ok(()) => None,
    };
    let mut metrics = Vec::new();
    let avg = (!rtts.is_empty()).then(|| rtts.iter().sum::<Duration>() / rtts.len() as u32);
    if error.as_ref().is_none_or(|e| e.kind == ErrorKind::Timeout) {
        let loss = 1.0 - rtts.len() as f64 / f64::from(spec.count);
        metrics.push((ICMP_LOSS_RATIO.to_owned(), loss));
        if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
            metrics.push((ICMP_RTT_MIN.to_owned(), min.as_secs_f64()));
            metrics.push((ICMP_RTT_MAX.to_owned(), max.as_secs_f64()));
        }
    }
    let found = Found {
        ttfb: rtts.first().copied(),
        response_time: avg,
        phases,
        metrics,
        ..Found::default()
    };
    Ok(found.into_probe(prober, target, &clocked, error))
}

async fn echoes(
    prober: &Prober,
    spec: &Icmp,
    deadline: Instant,
    phases: &mut Phases,
    rtts: &mut Vec<Duration>,
) -> Result<(), Failure> {
    let ip = match spec.host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let t = Instant::now();
            let found =
                tokio::time::timeout_at(deadline, tokio::net::lookup_host((spec.host.as_str(), 0)))
                    .await
                    .map_err(|_| {
                        failure(
                            ErrorKind::Timeout,
                            format!("no address for {} in time", spec.host),
                        )
                    })?;
            phases.dns = Some(t.elapsed());
            found
                .map_err(|e| {
                    io_failure(ErrorKind::Dns, &format!("cannot resolve {}", spec.host), &e)
                })?
                .next()
                .ok_or_else(|| {
                    failure(
                        ErrorKind::Dns,
                        format!("{} resolved to no address", spec.host),
                    )
                })?
                .ip()
        }
    };
    let (socket, raw) = open(ip, prober.source())?;
    let ident: u16 = fastrand::u16(..);
    let per_echo = deadline.saturating_duration_since(Instant::now()) / spec.count;
    for seq in 0..spec.count as u16 {
        if seq > 0 {
            tokio::time::sleep(GAP.min(per_echo / 4)).await;
        }
        let request = echo_request(ip.is_ipv6(), ident, seq);
        let sent = Instant::now();
        socket.send(&request).await.map_err(|e| {
            io_failure(
                ErrorKind::Connect,
                &format!("cannot send an echo request to {ip}"),
                &e,
            )
        })?;
        let wait_until = (sent + per_echo).min(deadline);
        let mut buf = [0u8; 1500];
        loop {
            match tokio::time::timeout_at(wait_until, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    return Err(io_failure(
                        ErrorKind::Connect,
                        &format!("the echo to {ip} failed"),
                        &e,
                    ));
                }
                Ok(Ok(n)) => {
                    if is_reply(&buf[..n], ip.is_ipv6(), raw, ident, seq) {
                        rtts.push(sent.elapsed());
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// An ICMP socket connected to `ip`: unprivileged (datagram) where allowed, else raw. Whether
/// it is raw (a raw IPv4 socket's replies carry their IP header, and the kernel does not keep
/// other processes' echo replies from it).
fn open(ip: IpAddr, source: Option<IpAddr>) -> Result<(tokio::net::UdpSocket, bool), Failure> {
    let (domain, protocol) = if ip.is_ipv6() {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let (socket, raw) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, false),
        Err(dgram) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, true),
            Err(raw) if matches!(raw.raw_os_error(), Some(1 | 13)) => {
                return Err(failure(
                    ErrorKind::Connect,
                    format!(
                        "cannot open an ICMP socket: unprivileged ICMP is not allowed for this group ({dgram}; the kernel setting net.ipv4.ping_group_range must include it, e.g. `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`) and a raw socket needs root or CAP_NET_RAW ({raw})"
                    ),
                ));
            }
            Err(e) => {
                return Err(io_failure(
                    ErrorKind::Connect,
                    "cannot open an ICMP socket",
                    &e,
                ));
            }
        },
    };
    let setup =
        |e: std::io::Error| io_failure(ErrorKind::Connect, "cannot set up the ICMP socket", &e);
    if let Some(src) = source.filter(|s| s.is_ipv6() == ip.is_ipv6()) {
        socket
            .bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .map_err(setup)?;
    }
    socket
        .connect(&SockAddr::from(SocketAddr::new(ip, 0)))
        .map_err(setup)?;
    socket.set_nonblocking(true).map_err(setup)?;
    let socket =
        tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(setup)?;
    Ok((socket, raw))
}

/// An echo request: type 8 (ICMPv6: 128), code 0, the identifier and sequence number, and a
/// payload naming sitewatch. The IPv4 checksum is computed here; the kernel computes ICMPv6's.
fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"sitewatch echo  ");
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` is the echo reply to request `seq` of this probe. An unprivileged socket's
/// identifier is the kernel's (it filters replies itself); a raw socket sees every echo reply,
/// and, for IPv4, the IP header before it.
fn is_reply(packet: &[u8], v6: bool, raw: bool, ident: u16, seq: u16) -> bool {
    let icmp = if raw && !v6 {
        let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        match packet.get(header..) {
            Some(p) => p,
            None => return false,
        }
    } else {
        packet
    };
    if icmp.len() < 8 || icmp[0] != if v6 { 129 } else { 0 } {
        return false;
    }
    let got_ident = u16::from_be_bytes([icmp[4], icmp[5]]);
    let got_seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    got_seq == seq && (!raw || got_ident == ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_checks_out_and_its_reply_is_told_from_others() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        let mut reply = p.clone();
        reply[0] = 0;
        let mut with_ip = vec![0x45; 1];
        with_ip.extend_from_slice(&[0; 19]);
        with_ip.extend_from_slice(&reply);
        assert!(is_reply(&with_ip, false, true, 0x1234, 7));
        assert!(
            !is_reply(&with_ip, false, true, 0x9999, 7),
            "another process' echo"
        );
        assert!(
            !is_reply(&with_ip, false, true, 0x1234, 8),
            "another request"
        );
        assert!(
            is_reply(&reply, false, false, 0x9999, 7),
            "the kernel's identifier"
        );
        assert!(
            !is_reply(&p, false, false, 0x1234, 7),
            "a request is no reply"
        );
    }
}
