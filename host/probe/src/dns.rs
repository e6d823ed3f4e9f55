//! The DNS probe kind: one query (the site's name and record type) to the site's resolver, or
//! the system's (the first `nameserver` of `/etc/resolv.conf`), over UDP and again over TCP
//! when the answer comes back truncated. The message is built and read by hickory-proto; the
//! exchange is one datagram (or one length-prefixed TCP message) each way. Up when the response
//! code is the expected one and the answers hold the expected ones (or are exactly them); the
//! answers, one per line in their presentation form, are what the site's checks see. Timed:
//! the whole query is the response time.

use crate::config::kind::Dns;
use crate::conn::{Failure, failure, io_failure};
use crate::found::{Clocked, Found, Stopped};
use crate::measurement::{ErrorKind, Measurement, ProbeError};
use crate::{Captured, MonitorFailure, Prober, Target};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::str::FromStr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The largest UDP answer read (EDNS is not offered: a larger answer is truncated, then asked
/// again over TCP).
const UDP_MAX: usize = 4096;

/// Probes `target` (of kind dns, `spec`) once.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &Dns,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let clocked = Clocked::start(prober, scheduled);
    let result = tokio::time::timeout(target.config.timeout, query(prober, spec)).await;
    let mut found = Found::default();
    let stopped = match result {
        Err(_) => Stopped::TimedOut,
        Ok(Err(Failure::Monitor(m))) => return Err(m),
        Ok(Err(Failure::Probe(e))) => Stopped::Failed(e),
        Ok(Ok(answer)) => {
            let took = clocked.start.elapsed();
            (found.ttfb, found.response_time) = (Some(took), Some(took));
            found.metrics = vec![("dns_answer_rrs".to_owned(), answer.records.len() as f64)];
            found.answer = answer.records.join("\n").into_bytes();
            judge(spec, &answer).map_or(Stopped::Done, Stopped::Failed)
        }
    };
    let error = stopped.error(target.config.timeout, || "answer from the resolver");
    Ok(found.into_probe(prober, target, &clocked, error))
}

/// What a resolver answered.
#[derive(Debug)]
struct Answer {
    rcode: &'static str,
    /// The answer section's records of the queried type, in presentation form (normalised).
    records: Vec<String>,
}

/// The judgement of an answer: its response code, then its records.
fn judge(spec: &Dns, answer: &Answer) -> Option<ProbeError> {
    if answer.rcode != spec.expect_rcode {
        return Some(ProbeError {
            kind: ErrorKind::Status,
            message: format!(
                "response code {}, expected {}",
                answer.rcode, spec.expect_rcode
            ),
        });
    }
    if spec.expect_answers.is_empty() {
        return None;
    }
    let want: Vec<String> = spec.expect_answers.iter().map(|a| normalise(a)).collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !answer.records.contains(w))
        .collect();
    let extra: Vec<&String> = answer
        .records
        .iter()
        .filter(|r| spec.exact && !want.contains(r))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let list = |v: &[&String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(&missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", list(&extra)));
    }
    Some(ProbeError {
        kind: ErrorKind::Answer,
        message: format!(
            "the {} answers are not the expected ones: {}; got [{}]",
            spec.record_type,
            parts.join("; "),
            answer.records.join(", ")
        ),
    })
}

/// An answer as compared: words single-spaced, lower case, no trailing dots on names, no
/// quotes around text.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches('"')
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn query(prober: &Prober, spec: &Dns) -> Result<Answer, Failure> {
    let server = match spec.resolver {
        Some(s) => s,
        None => system_resolver().map_err(|m| failure(ErrorKind::Dns, m))?,
    };
    let name = Name::from_ascii(format!("{}.", spec.name))
        .map_err(|e| failure(ErrorKind::Dns, format!("{} is not a name: {e}", spec.name)))?;
    let rtype = RecordType::from_str(&spec.record_type).map_err(|e| {
        failure(
            ErrorKind::Dns,
            format!("record type {}: {e}", spec.record_type),
        )
    })?;
    let id: u16 = fastrand::u16(..);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, rtype));
    let bytes = message
        .to_vec()
        .map_err(|e| failure(ErrorKind::Dns, format!("cannot encode the query: {e}")))?;
    let mut reply = udp(server, &bytes, id, prober.source()).await?;
    if reply.truncated() {
        reply = tcp(server, &bytes, id, prober.source()).await?;
    }
    let rcode = match u16::from(reply.response_code()) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "OTHER",
    };
    let records = reply
        .answers()
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| normalise(&r.data().to_string()))
        .collect();
    Ok(Answer { rcode, records })
}

fn reply_of(bytes: &[u8], id: u16) -> Option<Message> {
    Message::from_vec(bytes)
        .ok()
        .filter(|m| m.id() == id && m.message_type() == MessageType::Response)
}

async fn udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    source: Option<std::net::IpAddr>,
) -> Result<Message, Failure> {
    let local = match source.filter(|ip| ip.is_ipv4() == server.is_ipv4()) {
        Some(ip) => SocketAddr::new(ip, 0),
        None if server.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        None => SocketAddr::from(([0u16; 8], 0)),
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| io_failure(ErrorKind::Connect, "cannot open a UDP socket", &e))?;
    socket.connect(server).await.map_err(|e| {
        io_failure(
            ErrorKind::Connect,
            &format!("cannot reach the resolver {server}"),
            &e,
        )
    })?;
    socket.send(query).await.map_err(|e| {
        io_failure(
            ErrorKind::Connect,
            &format!("cannot send to the resolver {server}"),
            &e,
        )
    })?;
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| {
            io_failure(
                ErrorKind::Connect,
                &format!("no answer from the resolver {server}"),
                &e,
            )
        })?;
        // Anything else (a stray or forged datagram) is not the answer: wait on.
        if let Some(m) = reply_of(&buf[..n], id) {
            return Ok(m);
        }
    }
}

async fn tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    source: Option<std::net::IpAddr>,
) -> Result<Message, Failure> {
    let socket = if server.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| io_failure(ErrorKind::Connect, "cannot open a TCP socket", &e))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == server.is_ipv4()) {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| io_failure(ErrorKind::Connect, &format!("cannot bind to {ip}"), &e))?;
    }
    let mut stream = socket.connect(server).await.map_err(|e| {
        io_failure(
            ErrorKind::Connect,
            &format!("cannot connect to the resolver {server} over TCP"),
            &e,
        )
    })?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    let broken = |e: std::io::Error| {
        io_failure(
            ErrorKind::Connect,
            &format!("the TCP exchange with {server} failed"),
            &e,
        )
    };
    stream.write_all(&framed).await.map_err(broken)?;
    let len = stream.read_u16().await.map_err(broken)? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await.map_err(broken)?;
    reply_of(&buf, id).ok_or_else(|| {
        failure(
            ErrorKind::Dns,
            format!("the resolver {server} sent an answer that is not one to this query"),
        )
    })
}

/// The first `nameserver` of `/etc/resolv.conf`, on port 53.
fn system_resolver() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("no resolver given and /etc/resolv.conf cannot be read: {e}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| "no resolver given and /etc/resolv.conf names none".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(answers: &[&str], exact: bool) -> Dns {
        Dns {
            name: "example.test".into(),
            record_type: "MX".into(),
            resolver: None,
            expect_rcode: "NOERROR".into(),
            expect_answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            exact,
        }
    }

    fn answer(rcode: &'static str, records: &[&str]) -> Answer {
        Answer {
            rcode,
            records: records.iter().map(|r| normalise(r)).collect(),
        }
    }

    #[test]
    fn answers_are_compared_as_sets_in_presentation_form() {
        let got = answer(
            "NOERROR",
            &["10 Mail.Example.Test.", "20 backup.example.test."],
        );
        assert_eq!(judge(&spec(&["10 mail.example.test"], false), &got), None);
        let e = judge(&spec(&["10 mail.example.test"], true), &got).unwrap();
        assert_eq!(e.kind, ErrorKind::Answer);
        assert!(
            e.message.contains("unexpected \"20 backup.example.test\""),
            "{}",
            e.message
        );
        let e = judge(&spec(&["30 other.example.test"], false), &got).unwrap();
        assert!(
            e.message.contains("missing \"30 other.example.test\""),
            "{}",
            e.message
        );
        let e = judge(&spec(&[], false), &answer("NXDOMAIN", &[])).unwrap();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::Status,
                "response code NXDOMAIN, expected NOERROR"
            )
        );
    }
}
