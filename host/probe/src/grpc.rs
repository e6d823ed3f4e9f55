//! The gRPC probe kind: the standard health check, `grpc.health.v1.Health/Check`, for a service
//! (or, with none, the server as a whole), over HTTP/2 (plaintext, or TLS with `h2` by ALPN and
//! the chain recorded as for HTTPS). One unary call: the request is the service's name as the
//! one field of `HealthCheckRequest`, the answer's one field is its `ServingStatus`. Up when
//! the call's `grpc-status` is 0 (OK) and the status is `SERVING`; anything else fails with kind
//! `status`, naming it. The call's time to the response headers is the TTFB, to its end the
//! response time; the gRPC status code is reported as `probe_grpc_status_code`.
//!
//! The call is written here over hyper's HTTP/2 client (the wire format is gRPC's HTTP/2
//! mapping and two one-field protobuf messages): the connection must be the prober's own, for
//! its timed phases and its recording TLS verifier, and a general gRPC stack (tonic and prost)
//! would be a large dependency for one fixed call.

use crate::config::kind::Grpc;
use crate::conn::{Failure, Reached, failure, open};
use crate::found::{Clocked, Found, within};
use crate::measurement::{ErrorKind, Measurement};
use crate::{Captured, MonitorFailure, Prober, Target, error_chain};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::time::Instant;

/// The health service's path.
const CHECK: &str = "/grpc.health.v1.Health/Check";
/// The most of an answer read.
const ANSWER_MAX: usize = 64 * 1024;

/// Probes `target` (of kind grpc, `spec`) once.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &Grpc,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let clocked = Clocked::start(prober, scheduled);
    let mut progress = Progress::default();
    let (stopped, tls) = within(
        prober,
        target,
        spec.tls,
        call(prober, target, spec, clocked.start, &mut progress),
    )
    .await?;
    let error = stopped.error(target.config.timeout, || progress.waiting_for(spec));
    let found = Found {
        status: progress.http_status,
        ttfb: progress.headers,
        response_time: progress.done,
        phases: progress.reached.phases,
        metrics: progress
            .grpc_status
            .map(|code| vec![(GRPC_STATUS_CODE.to_owned(), f64::from(code))])
            .unwrap_or_default(),
        tls,
        answer: std::mem::take(&mut progress.answer),
    };
    Ok(found.into_probe(prober, target, &clocked, error))
}

/// The name of the figure a grpc probe reports: the call's gRPC status code.
pub const GRPC_STATUS_CODE: &str = "grpc_status_code";

#[derive(Debug, Default)]
struct Progress {
    reached: Reached,
    http_status: Option<u16>,
    grpc_status: Option<u32>,
    headers: Option<Duration>,
    done: Option<Duration>,
    /// The answer's messages as read (up to 64 KiB).
    answer: Vec<u8>,
}

impl Progress {
    fn waiting_for(&self, spec: &Grpc) -> &'static str {
        if let Some(w) = self.reached.waiting_for(&spec.host, spec.tls) {
            w
        } else if self.headers.is_none() {
            "answer to the health check"
        } else {
            "end of the health check's answer"
        }
    }
}

async fn call(
    prober: &Prober,
    target: &Target,
    spec: &Grpc,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let stream = open(
        prober,
        target,
        &spec.host,
        spec.port,
        spec.tls,
        &[b"h2"],
        &mut progress.reached,
    )
    .await?;
    let broken = |what: &str, e: &(dyn std::error::Error + 'static)| -> Failure {
        failure(ErrorKind::Http, format!("{what}: {}", error_chain(e)))
    };
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| broken("the HTTP/2 handshake failed", &e))?;
    // The connection is driven beside the call, and ends with it.
    let driver = tokio::spawn(connection);
    let _stop = AbortOnDrop(driver);
    let authority = if spec.host.contains(':') {
        format!("[{}]:{}", spec.host, spec.port)
    } else {
        format!("{}:{}", spec.host, spec.port)
    };
    let scheme = if spec.tls { "https" } else { "http" };
    let request = hyper::Request::post(format!("{scheme}://{authority}{CHECK}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(request_frame(&spec.service))))
        .map_err(|e| failure(ErrorKind::Http, format!("cannot build the call: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| broken("the health check failed", &e))?;
    progress.headers = Some(start.elapsed());
    progress.http_status = Some(response.status().as_u16());
    if !response.status().is_success() {
        return Err(failure(
            ErrorKind::Status,
            format!(
                "HTTP status {}, expected 200 (is this a gRPC server?)",
                response.status().as_u16()
            ),
        ));
    }
    let mut status = grpc_status(response.headers());
    let mut body = response.into_body();
    let data = &mut progress.answer;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken("the answer broke off", &e))?;
        match frame.into_data() {
            Ok(d) => {
                if data.len() + d.len() <= ANSWER_MAX {
                    data.extend_from_slice(&d);
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    status = grpc_status(&trailers).or(status);
                }
            }
        }
    }
    progress.done = Some(start.elapsed());
    let Some((code, message)) = status else {
        return Err(failure(
            ErrorKind::Http,
            "the answer has no grpc-status (is this a gRPC server?)".into(),
        ));
    };
    progress.grpc_status = Some(code);
    if code != 0 {
        let mut text = format!("gRPC status {code} ({})", code_name(code));
        if !message.is_empty() {
            text.push_str(&format!(": {message}"));
        }
        if code == 12 {
            text.push_str("; the server has no health service");
        }
        return Err(failure(ErrorKind::Status, text));
    }
    match serving_status(&progress.answer) {
        Some(1) => Ok(()),
        Some(s) => Err(failure(
            ErrorKind::Status,
            format!(
                "health status {}{}",
                serving_name(s),
                if spec.service.is_empty() {
                    String::new()
                } else {
                    format!(" for service \"{}\"", spec.service)
                }
            ),
        )),
        None => Err(failure(
            ErrorKind::Answer,
            "the answer is not a HealthCheckResponse".into(),
        )),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A length-prefixed gRPC message holding `HealthCheckRequest { service }` (field 1, a string;
/// left out when empty, as protobuf does).
fn request_frame(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        varint(service.len() as u64, &mut message);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `HealthCheckResponse.status` (field 1, a varint) of the first message of `data`; 0
/// (UNKNOWN) when the field is left out, as protobuf does with a default.
fn serving_status(data: &[u8]) -> Option<u64> {
    let (&compressed, rest) = data.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    let mut message = rest.get(4..4 + len)?;
    let mut status = 0;
    while let Some((&tag, rest)) = message.split_first() {
        let (value, used) = read_varint(rest)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => {
                status = value;
                message = &rest[used..];
            }
            (_, 0) => message = &rest[used..],
            (_, 2) => message = rest.get(used + value as usize..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// `grpc-status` and `grpc-message` (percent-decoded) of a header or trailer block.
fn grpc_status(h: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect()
        })
        .unwrap_or_default();
    Some((code, message))
}

fn code_name(code: u32) -> &'static str {
    [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ]
    .get(code as usize)
    .copied()
    .unwrap_or("unknown code")
}

fn serving_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_and_the_answer_are_the_health_protos_messages() {
        assert_eq!(request_frame(""), [0, 0, 0, 0, 0]);
        assert_eq!(request_frame("db"), [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(
            serving_status(&[0, 0, 0, 0, 0]),
            Some(0),
            "the default, UNKNOWN"
        );
        assert_eq!(serving_status(&[1, 0, 0, 0, 0]), None, "compressed");
        assert_eq!(serving_status(&[0, 0, 0, 0, 9, 0x08]), None, "cut short");
    }
}
