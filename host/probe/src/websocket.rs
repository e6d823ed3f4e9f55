//! The WebSocket probe kind: the connection as `tcp` makes it (DNS, connect, TLS for `wss://`,
//! the chain recorded), then the HTTP upgrade by tokio-tungstenite (its time is the TTFB: the
//! server's `101`), then optionally a text message sent and the first message received checked.
//! The response time ends when the answer holds what is expected (or at the upgrade, without
//! `expect`). Every failure becomes a [`Measurement`] with an [`ErrorKind`].

use crate::config::kind::WebSocket;
use crate::conn::{Failure, Reached, failure, open, shown_answer};
use crate::found::{Clocked, Found, within};
use crate::measurement::{ErrorKind, Measurement};
use crate::{Captured, MonitorFailure, Prober, Target, error_chain};
use futures_util::{SinkExt, StreamExt};
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
    let clocked = Clocked::start(prober, scheduled);
    let mut progress = Progress::default();
    let (stopped, tls) = within(
        prober,
        target,
        spec.tls,
        exchange(prober, target, spec, clocked.start, &mut progress),
    )
    .await?;
    let error = stopped.error(target.config.timeout, || progress.waiting_for(spec));
    let found = Found {
        status: progress.status,
        ttfb: progress.upgraded,
        response_time: progress.done,
        phases: progress.reached.phases,
        tls,
        answer: progress.answer.into_bytes(),
        ..Found::default()
    };
    Ok(found.into_probe(prober, target, &clocked, error))
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
