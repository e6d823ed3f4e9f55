//! The TCP probe kind: resolve `host`, connect to `port` (from the prober's source address),
//! optionally a TLS handshake (its chain recorded, as for HTTPS, so the certificate alerts
//! apply), optionally a line sent, and the server's first answer read until it holds what the
//! site expects (an SMTP or IMAP banner, Redis' `+PONG`). Timed: DNS, connect, TLS; the first
//! answer byte is the TTFB, and the response time ends when the expectation is met (or, with
//! no expectation, when the connection is set up and the line sent). Every failure becomes a
//! [`Measurement`] with an [`ErrorKind`].

use crate::config::kind::Tcp;
use crate::conn::{Failure, Reached, failure, io_failure, open, shown_answer};
use crate::found::{Clocked, Found, within};
use crate::measurement::{ErrorKind, Measurement};
use crate::{Captured, MonitorFailure, Prober, Target};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        ttfb: progress.first_byte,
        response_time: progress.done,
        phases: progress.reached.phases,
        tls,
        answer: progress.answer,
        ..Found::default()
    };
    Ok(found.into_probe(prober, target, &clocked, error))
}

/// How far a probe got; kept outside the timed future so a timeout still reports it.
#[derive(Debug, Default)]
struct Progress {
    reached: Reached,
    first_byte: Option<Duration>,
    done: Option<Duration>,
    answer: Vec<u8>,
}

impl Progress {
    fn waiting_for(&self, spec: &Tcp) -> &'static str {
        if let Some(w) = self.reached.waiting_for(&spec.host, spec.tls) {
            w
        } else if self.first_byte.is_none() {
            "answer from the server"
        } else {
            "expected answer (the server's answer so far does not hold it)"
        }
    }
}

async fn exchange(
    prober: &Prober,
    target: &Target,
    spec: &Tcp,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let stream = open(
        prober,
        target,
        &spec.host,
        spec.port,
        spec.tls,
        &[],
        &mut progress.reached,
    )
    .await?;
    talk(stream, spec, start, progress).await
}

/// Sends the site's line and reads the answer until it holds what is expected.
async fn talk(
    mut stream: Box<dyn crate::conn::Io>,
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
