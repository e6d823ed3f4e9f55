//! The WebSocket probe kind: the connection as `tcp` makes it (DNS, connect, TLS for `wss://`,
//! the chain recorded), then the HTTP upgrade by tokio-tungstenite (its time is the TTFB: the
//! server's `101`), then optionally a text message sent and the first message received checked.
//! The response time ends when the answer holds what is expected (or at the upgrade, without
//! `expect`). Every failure becomes a [`Measurement`] with an [`ErrorKind`].

use crate::config::kind::WebSocket;
use crate::conn::{Failure, Reached, failure, open, shown_answer};
use crate::measurement::{ErrorKind, Measurement, ProbeError};
use crate::timing::PhaseClock;
use crate::{Captured, MonitorFailure, Prober, Target, error_chain};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Probes `target` (of kind websocket, `spec`) once.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &WebSocket,
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
        body: progress.answer.clone().into_bytes(),
    });
    let measurement = Measurement {
        domain_expiry: None,
        location: None,
        site: Arc::clone(&target.name),
        url: Arc::clone(&target.url),
        time,
        ok: error.is_none(),
        status: progress.status,
        ttfb: progress.upgraded,
        response_time: progress.done,
        body_bytes: progress.answer.len() as u64,
        body_truncated: false,
        phases: progress.reached.phases,
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

#[derive(Debug, Default)]
struct Progress {
    reached: Reached,
    /// The upgrade's status (`101`), or the refusal's.
    status: Option<u16>,
    upgraded: Option<Duration>,
    done: Option<Duration>,
    answer: String,
}

impl Progress {
    fn waiting_for(&self, spec: &WebSocket) -> &'static str {
        if let Some(w) = self.reached.waiting_for(&spec.host, spec.tls) {
            w
        } else if self.upgraded.is_none() {
            "upgrade to a WebSocket"
        } else {
            "expected message from the server"
        }
    }
}

async fn exchange(
    prober: &Prober,
    target: &Target,
    spec: &WebSocket,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let stream = open(
        prober,
        target,
        &spec.host,
        spec.port,
        spec.tls,
        &[b"http/1.1"],
        &mut progress.reached,
    )
    .await?;
    let (mut ws, response) = tokio_tungstenite::client_async(spec.url.as_str(), stream)
        .await
        .map_err(|e| {
            use tokio_tungstenite::tungstenite::Error;
            match e {
                Error::Http(r) => {
                    progress.status = Some(r.status().as_u16());
                    failure(
                        ErrorKind::Status,
                        format!(
                            "status {}, expected 101 (a WebSocket upgrade)",
                            r.status().as_u16()
                        ),
                    )
                }
                Error::Io(e) => failure(
                    ErrorKind::Connect,
                    format!("the upgrade failed: {}", error_chain(&e)),
                ),
                other => failure(
                    ErrorKind::Http,
                    format!("the upgrade failed: {}", error_chain(&other)),
                ),
            }
        })?;
    progress.status = Some(response.status().as_u16());
    progress.upgraded = Some(start.elapsed());
    if let Some(text) = &spec.send {
        ws.send(Message::Text(text.as_str().into()))
            .await
            .map_err(|e| {
                failure(
                    ErrorKind::Connect,
                    format!("cannot send: {}", error_chain(&e)),
                )
            })?;
    }
    let Some(expect) = &spec.expect else {
        progress.done = Some(start.elapsed());
        let _ = ws.close(None).await;
        return Ok(());
    };
    loop {
        let message = match ws.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                return Err(failure(
                    ErrorKind::Connect,
                    format!(
                        "the connection failed while waiting for a message: {}",
                        error_chain(&e)
                    ),
                ));
            }
            None => {
                return Err(failure(
                    ErrorKind::Answer,
                    format!("the server closed the WebSocket before a message holding {expect}"),
                ));
            }
        };
        let text = match &message {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            Message::Close(_) => {
                return Err(failure(
                    ErrorKind::Answer,
                    format!("the server closed the WebSocket before a message holding {expect}"),
                ));
            }
            // Pings are answered by the library; they are not the server's answer.
            _ => continue,
        };
        progress.answer = text;
        if expect.matches(&progress.answer) {
            progress.done = Some(start.elapsed());
            let _ = ws.close(None).await;
            return Ok(());
        }
        return Err(failure(
            ErrorKind::Answer,
            format!(
                "the message does not hold {expect}: {}",
                shown_answer(&progress.answer)
            ),
        ));
    }
}
