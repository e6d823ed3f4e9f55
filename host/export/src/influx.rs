//! InfluxDB 2 export. Lines are written to the store's outbox in the same transaction as the
//! measurement, and a sender task posts them to `/api/v2/write` in batches, oldest first, deleting
//! them only once the server has accepted them. While the server is unreachable they wait on disk
//! (memory stays bounded, the outbox itself is capped) and are retried with backoff. What the
//! server refuses for good is found line by line and parked in `outbox_parked`, so one bad line
//! never blocks the lines behind it. The rules are in [`Verdict`]; `docs/ARCHITECTURE.md` says
//! what they guarantee.
//!
//! This is a thin writer on the project's own reqwest rather than the `influxdb2` crate: that
//! crate pulls a second HTTP stack (reqwest 0.11, hyper 0.14, rustls 0.21); see
//! `docs/ARCHITECTURE.md` for the figures.

use crate::config::InfluxConfig;
use crate::event::Bus;
use crate::store::lines::{Lines, report};
use crate::store::outbox::Queue;
use crate::store::{Store, StoreError};
use sitewatch_core::retry::Backoff;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the export's status (health, backlog) is looked at.
const STATUS_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a POST in flight may still finish once the sender is stopped, so that a batch the
/// server is taking is not sent again at the next start; then it is abandoned.
const STOP_GRACE: Duration = Duration::from_millis(500);
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a refusal's body read for its message.
const MESSAGE_BYTES: usize = 4096;

/// How long the sender waits between attempts while the server cannot take the lines. A server
/// that refuses every write (401, 403, 404) is retried at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub min: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min: BACKOFF_MIN,
            max: BACKOFF_MAX,
        }
    }
}

/// What an answer to one write means for its lines: the sender's retry rules, kept apart from
/// the sending so they can be read (and tested) on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the server has the points; they leave the outbox.
    Delivered,
    /// The server cannot take them now (no connection, timeout, 408, 429, 5xx): the same lines
    /// are sent again, after `after` when the server said (`Retry-After`), else with backoff.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// 413: the batch is larger than the server takes; it is halved, and a line refused alone is
    /// parked.
    TooLarge { message: String },
    /// 400 or 422: the server refuses some line of the batch (bad syntax, a field type conflict,
    /// outside the retention); found by bisection and parked, the rest is delivered.
    Rejected { message: String },
    /// 401 or 403: the token is missing, wrong or may not write to the bucket.
    Unauthorized { message: String },
    /// 404: the organisation or the bucket does not exist.
    NotFound { message: String },
    /// Any other answer (another 4xx, 501, a 3xx): the URL does not lead to an InfluxDB 2 write
    /// endpoint.
    Misdirected { message: String },
}

impl Verdict {
    /// The verdict on an HTTP answer: its status, its `Retry-After` header and its body. `now`
    /// dates a `Retry-After` given as an HTTP date.
    pub(crate) fn of_answer(
        status: reqwest::StatusCode,
        retry_after: Option<&str>,
        body: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        if status.is_success() {
            return Self::Delivered;
        }
        let message = match crate::reply::said(body) {
            m if m.is_empty() => status.to_string(),
            m => format!("{status}: {m}"),
        };
        match status.as_u16() {
            413 => Self::TooLarge { message },
            400 | 422 => Self::Rejected { message },
            401 | 403 => Self::Unauthorized { message },
            404 => Self::NotFound { message },
            501 => Self::Misdirected { message },
            _ if crate::reply::retryable(status) => Self::Retry {
                after: crate::reply::wait_asked(retry_after, now),
                why: format!("the server answered {message}"),
            },
            _ => Self::Misdirected { message },
        }
    }

    /// The verdict on a request that got no answer: connection refused or reset, timeout.
    pub(crate) fn of_transport_error(e: reqwest::Error) -> Self {
        Self::Retry {
            after: None,
            why: crate::error_chain(&e.without_url()),
        }
    }

    /// For an answer that refuses every write until the user fixes something: the settings to
    /// look at and what they must be.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized { .. } => Some(
                "storage.influxdb.token_env must name a variable holding a token that may write to the bucket",
            ),
            Self::NotFound { .. } => Some(
                "storage.influxdb.org and storage.influxdb.bucket must name an existing organisation and bucket",
            ),
            Self::Misdirected { .. } => {
                Some("storage.influxdb.url must be the base URL of an InfluxDB 2 server")
            }
            _ => None,
        }
    }
}

/// Posts the outbox to the server until `stop` is cancelled.
pub struct Sender {
    pub store: Store,
    pub config: InfluxConfig,
    pub token: Option<String>,
    pub client: reqwest::Client,
    pub bus: Bus,
}

impl Sender {
    fn write_url(&self) -> url::Url {
        let mut url = self.config.url.clone();
        url.set_path(&format!(
            "{}/api/v2/write",
            url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("org", &self.config.org)
            .append_pair("bucket", &self.config.bucket)
            .append_pair("precision", "ns");
        url
    }

    fn report(&self, message: String) {
        report(&self.bus, message);
    }

    /// Sends until `stop` is cancelled, with the default `RetryPolicy`.
    pub async fn run(self, stop: CancellationToken) {
        self.run_with(stop, RetryPolicy::default()).await
    }

    /// Sends until `stop` is cancelled, and returns within a second of it: a POST in flight gets
    /// half a second to finish, then is abandoned, its lines kept for the next start.
    pub(crate) async fn run_with(self, stop: CancellationToken, policy: RetryPolicy) {
        self.store.set_outbox_limit(self.config.max_outbox_lines);
        let mut run = Run {
            url: self.write_url(),
            batch_limit: self.config.batch_size.max(1),
            sender: &self,
            queue: Queue::new(&self.store, Lines),
            backoff: Backoff::new(policy.min, policy.max),
            policy,
            refused: None,
            unreachable: false,
            outbox_failing: false,
            parking: false,
            status_at: None,
            status: None,
        };
        run.run(&stop).await;
    }

    /// Posts one batch and judges the answer. The verdict never holds the token.
    async fn post(&self, url: &url::Url, body: String) -> Verdict {
        let mut req = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .timeout(POST_TIMEOUT)
            .body(body);
        if let Some(token) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Token {token}"));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Verdict::of_transport_error(e),
        };
        let status = resp.status();
        if status.is_success() {
            return Verdict::Delivered;
        }
        let reply = crate::reply::Reply::read(resp, MESSAGE_BYTES).await;
        Verdict::of_answer(
            status,
            reply.retry_after.as_deref(),
            &reply.body,
            self.bus.clock().now(),
        )
    }
}

/// What became of one batch.
enum Outcome {
    /// Every line was delivered or parked (`parked` of them, the first for `reason`).
    Done {
        parked: usize,
        reason: String,
    },
    /// The server cannot take the lines now; what was not delivered waits at the head.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// The server refuses every write until a setting is fixed; nothing more was sent.
    Refused(Verdict),
    Stopped,
}

/// One run of the sender: its connection and what it has told the user.
struct Run<'a> {
    sender: &'a Sender,
    /// The outbox it empties.
    queue: Queue<Lines>,
    url: url::Url,
    policy: RetryPolicy,
    /// Lines per request: the configured batch size; after a 413, half the size refused, and
    /// doubled again by each batch that goes through without one.
    batch_limit: usize,
    /// The waits while the server is unreachable (the one retry policy).
    backoff: Backoff,
    /// When the export's status was last looked at, and what was published.
    status_at: Option<std::time::Instant>,
    status: Option<(bool, u64)>,
    /// The refusal (by the settings to fix) reported in this episode.
    refused: Option<&'static str>,
    unreachable: bool,
    outbox_failing: bool,
    /// A parking was reported, and no batch has gone through whole since.
    parking: bool,
}

impl Run<'_> {
    async fn run(&mut self, stop: &CancellationToken) {
        let flush = self.sender.config.flush_interval;
        loop {
            if stop.is_cancelled() {
                return;
            }
            self.publish_status().await;
            let limit = self.batch_limit;
            let wait = match self.queue.waiting(limit).await {
                Ok(rows) if rows.is_empty() => {
                    self.outbox_readable();
                    flush
                }
                Ok(rows) => {
                    self.outbox_readable();
                    match self.deliver(&rows, stop).await {
                        Ok(Outcome::Done { parked, reason }) => {
                            self.accepted(parked, &reason);
                            if self.batch_limit == limit {
                                // No 413 in this batch: let the size grow back.
                                self.batch_limit =
                                    (limit * 2).min(self.sender.config.batch_size.max(1));
                            }
                            if rows.len() >= limit {
                                continue;
                            }
                            flush
                        }
                        Ok(Outcome::Retry { after, why }) => self.unreachable(after, &why),
                        Ok(Outcome::Refused(verdict)) => self.refused(&verdict),
                        Ok(Outcome::Stopped) => return,
                        Err(e) => match self.outbox_failed(e) {
                            Some(wait) => wait,
                            None => return,
                        },
                    }
                }
                Err(e) => match self.outbox_failed(e) {
                    Some(wait) => wait,
                    None => return,
                },
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends `rows` (the head of the outbox, in id order). A refused part is halved until the
    /// refused lines stand alone, and those are parked; an accepted part is deleted at once.
    /// Parts go out in order, so the lines the server takes arrive in their order.
    async fn deliver(
        &mut self,
        rows: &[(i64, String)],
        stop: &CancellationToken,
    ) -> Result<Outcome, StoreError> {
        // Ranges of `rows` still to send, the next on top.
        let mut todo = Vec::with_capacity(64);
        todo.push(0..rows.len());
        let mut parked = 0;
        let mut first_reason = String::new();
        while let Some(range) = todo.pop() {
            if stop.is_cancelled() {
                return Ok(Outcome::Stopped);
            }
            let half = range.len() / 2;
            if range.len() > self.batch_limit {
                // Larger than the server took after a 413 earlier in this batch.
                todo.push(range.start + half..range.end);
                todo.push(range.start..range.start + half);
                continue;
            }
            let part = &rows[range.clone()];
            let body = part
                .iter()
                .map(|r| r.1.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let Some(verdict) = Self::send(self.sender, &self.url, body, stop).await else {
                return Ok(Outcome::Stopped);
            };
            match verdict {
                Verdict::Delivered => {
                    let (first, last) = (part[0].0, part[part.len() - 1].0);
                    let now = self.sender.bus.clock().now();
                    self.queue.delivered(first, last, "", now).await?;
                }
                Verdict::TooLarge { message } | Verdict::Rejected { message }
                    if part.len() == 1 =>
                {
                    let id = part[0].0;
                    let now = self.sender.bus.clock().now();
                    if first_reason.is_empty() {
                        first_reason.clone_from(&message);
                    }
                    self.queue.refused(id, id, &message, now).await?;
                    parked += 1;
                }
                Verdict::TooLarge { .. } | Verdict::Rejected { .. } => {
                    if matches!(verdict, Verdict::TooLarge { .. }) {
                        self.batch_limit = self.batch_limit.min(half);
                    }
                    // The first half goes first: popped next.
                    todo.push(range.start + half..range.end);
                    todo.push(range.start..range.start + half);
                }
                Verdict::Retry { after, why } => return Ok(Outcome::Retry { after, why }),
                refused => return Ok(Outcome::Refused(refused)),
            }
        }
        Ok(Outcome::Done {
            parked,
            reason: first_reason,
        })
    }

    /// Posts one part, racing it against `stop`; `None` when stopped without an answer. (Not a
    /// method of `Run`, whose connection must not be shared across the await.)
    async fn send(
        sender: &Sender,
        url: &url::Url,
        body: String,
        stop: &CancellationToken,
    ) -> Option<Verdict> {
        let post = sender.post(url, body);
        tokio::pin!(post);
        tokio::select! {
            verdict = &mut post => Some(verdict),
            _ = stop.cancelled() => tokio::time::timeout(STOP_GRACE, post).await.ok(),
        }
    }

    /// Publishes how the export is doing (whether the server takes writes, and how many lines
    /// wait) when that changed, at most once a second: the display's summary reads it.
    async fn publish_status(&mut self) {
        if self.status_at.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return;
        }
        self.status_at = Some(std::time::Instant::now());
        let Ok(backlog) = self.queue.backlog().await else {
            return;
        };
        let healthy = !self.unreachable && self.refused.is_none();
        if self.status == Some((healthy, backlog)) {
            return;
        }
        self.status = Some((healthy, backlog));
        self.sender
            .bus
            .send(crate::event::Event::Sink(crate::event::SinkStatus {
                time: self.sender.bus.clock().now(),
                sink: crate::event::SinkName::InfluxDb,
                healthy,
                backlog,
            }));
    }

    /// A batch went through (its refused lines parked): ends the trouble episodes.
    fn accepted(&mut self, parked: usize, reason: &str) {
        self.backoff.reset();
        if self.unreachable || self.refused.is_some() {
            self.unreachable = false;
            self.refused = None;
            self.sender.report(format!(
                "InfluxDB at {} accepts writes again",
                self.sender.config.url
            ));
        }
        if parked == 0 {
            self.parking = false;
        } else if !self.parking {
            self.parking = true;
            self.sender.report(format!(
                "InfluxDB at {} refused {parked} line(s) for good ({reason}); they are parked in the \
                 store and the rest was sent (`sitewatch outbox` lists them, `sitewatch outbox \
                 --resend-parked` sends them again once the cause is fixed)",
                self.sender.config.url
            ));
        } else {
            tracing::warn!("InfluxDB refused {parked} more line(s), parked: {reason}");
        }
    }

    /// The server cannot take the lines now: says so once, returns how long to wait.
    fn unreachable(&mut self, after: Option<Duration>, why: &str) -> Duration {
        if !self.unreachable {
            self.unreachable = true;
            self.refused = None;
            self.sender.report(format!(
                "cannot write to InfluxDB at {}: {why}; points wait in the outbox and are retried",
                self.sender.config.url
            ));
        }
        let next = self.backoff.next_delay();
        after.unwrap_or(next)
    }

    /// The server refuses every write: says so once (again if the reason changes), and retries
    /// at the longest backoff, since the fix may be made on the server.
    fn refused(&mut self, verdict: &Verdict) -> Duration {
        let fix = verdict.fix().unwrap_or("storage.influxdb");
        if self.refused != Some(fix) {
            self.refused = Some(fix);
            self.unreachable = false;
            let message = match verdict {
                Verdict::Unauthorized { message }
                | Verdict::NotFound { message }
                | Verdict::Misdirected { message } => message.as_str(),
                _ => "",
            };
            self.sender.report(format!(
                "InfluxDB at {} refuses the writes ({message}): {fix}; the points are kept in the \
                 outbox and sent again every {}",
                self.sender.config.url,
                humantime::format_duration(self.policy.max)
            ));
        }
        self.policy.max
    }

    fn outbox_readable(&mut self) {
        if std::mem::take(&mut self.outbox_failing) {
            self.sender
                .report("the InfluxDB outbox can be read again".to_owned());
        }
    }

    /// Says once that the outbox cannot be used; `None` when the runtime is going away.
    fn outbox_failed(&mut self, e: StoreError) -> Option<Duration> {
        if let StoreError::Stopped = e {
            return None;
        }
        if !std::mem::replace(&mut self.outbox_failing, true) {
            self.sender.report(format!(
                "cannot use the InfluxDB outbox: {}; retrying",
                crate::error_chain(&e)
            ));
        }
        Some(self.sender.config.flush_interval.max(self.policy.min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_separate_passing_failures_from_permanent_ones() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let v = |status: u16, retry_after: Option<&str>, body: &str| {
            Verdict::of_answer(
                reqwest::StatusCode::from_u16(status).unwrap(),
                retry_after,
                body,
                now,
            )
        };
        let retry = |after: Option<u64>, why: &str| Verdict::Retry {
            after: after.map(Duration::from_secs),
            why: why.into(),
        };
        assert_eq!(v(204, None, ""), Verdict::Delivered);
        assert_eq!(v(200, Some("5"), "x"), Verdict::Delivered);
        assert_eq!(
            v(
                503,
                None,
                "{\"code\":\"unavailable\",\"message\":\"  starting\\n up \"}"
            ),
            retry(
                None,
                "the server answered 503 Service Unavailable: starting up"
            )
        );
        assert_eq!(
            v(500, Some("7"), ""),
            retry(Some(7), "the server answered 500 Internal Server Error")
        );
        assert_eq!(
            v(429, Some("Tue, 14 Nov 2023 22:13:50 GMT"), ""),
            retry(Some(30), "the server answered 429 Too Many Requests"),
            "an HTTP date is counted from now"
        );
        assert_eq!(
            v(429, Some("86400"), ""),
            retry(Some(600), "the server answered 429 Too Many Requests"),
            "a long Retry-After is cut to ten minutes"
        );
        assert_eq!(
            v(429, Some("soon"), ""),
            retry(None, "the server answered 429 Too Many Requests")
        );
        assert_eq!(
            v(408, None, ""),
            retry(None, "the server answered 408 Request Timeout")
        );
        assert_eq!(
            v(
                413,
                None,
                "{\"code\":\"request too large\",\"message\":\"points batch is too large\"}"
            ),
            Verdict::TooLarge {
                message: "413 Payload Too Large: points batch is too large".into()
            }
        );
        let bad = v(
            400,
            None,
            "{\"code\":\"invalid\",\"message\":\"unable to parse 'x': missing fields\"}",
        );
        assert_eq!(
            bad,
            Verdict::Rejected {
                message: "400 Bad Request: unable to parse 'x': missing fields".into()
            }
        );
        assert_eq!(bad.fix(), None);
        assert!(matches!(
            v(422, None, "partial write"),
            Verdict::Rejected { .. }
        ));
        for status in [401, 403] {
            let v = v(
                status,
                None,
                "{\"code\":\"unauthorized\",\"message\":\"unauthorized access\"}",
            );
            assert!(
                matches!(&v, Verdict::Unauthorized { message } if message.ends_with(": unauthorized access")),
                "{v:?}"
            );
            assert!(v.fix().unwrap().contains("storage.influxdb.token_env"));
        }
        let missing = v(
            404,
            None,
            "{\"code\":\"not found\",\"message\":\"bucket \\\"b\\\" not found\"}",
        );
        assert_eq!(
            missing,
            Verdict::NotFound {
                message: "404 Not Found: bucket \"b\" not found".into()
            }
        );
        let fix = missing.fix().unwrap();
        assert!(fix.contains("storage.influxdb.org") && fix.contains("storage.influxdb.bucket"));
        for status in [405, 501, 302] {
            let v = v(status, None, "<html>nope</html>");
            assert!(matches!(v, Verdict::Misdirected { .. }), "{status}: {v:?}");
            assert!(v.fix().unwrap().contains("storage.influxdb.url"));
        }
        let long = "x".repeat(1000);
        let Verdict::Rejected { message } = v(400, None, &long) else {
            panic!()
        };
        assert_eq!(message.len(), "400 Bad Request: ".len() + 300);
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = chrono::DateTime::from_timestamp(784_111_777, 0).unwrap(); // Sun, 06 Nov 1994 08:49:37 GMT
        let p = |v: &str| crate::reply::parse_retry_after(v, now);
        assert_eq!(p("120"), Some(Duration::from_secs(120)));
        assert_eq!(p(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            p("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            p("Sunday, 06-Nov-94 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("Sun Nov  6 08:50:07 1994"), Some(Duration::from_secs(30)));
        assert_eq!(
            p("Sun, 06 Nov 1994 08:00:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    /// The sender against a scripted server.
    mod sending {
        use super::*;
        use crate::clock::SystemClock;
        use bytes::Bytes;
        use http_body_util::{BodyExt, Full};
        use std::sync::Arc;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Instant;

        /// Short waits, so a test of retries takes milliseconds.
        const QUICK: RetryPolicy = RetryPolicy {
            min: Duration::from_millis(20),
            max: Duration::from_millis(100),
        };

        /// What the scripted server answers.
        struct Answer {
            status: u16,
            headers: Vec<(&'static str, String)>,
            body: String,
            delay: Duration,
        }

        impl Answer {
            fn status(status: u16) -> Self {
                Self {
                    status,
                    headers: Vec::new(),
                    body: String::new(),
                    delay: Duration::ZERO,
                }
            }

            fn influx(status: u16, code: &str, message: &str) -> Self {
                Self {
                    body: serde_json::json!({"code": code, "message": message}).to_string(),
                    ..Self::status(status)
                }
            }
        }

        type Script = dyn Fn(usize, &str) -> Answer + Send + Sync;

        #[derive(Default)]
        struct Log {
            /// Every request: when its body had arrived, and the body.
            seen: Vec<(Instant, String)>,
            /// The lines of the requests answered 2xx, in the order answered.
            accepted: Vec<String>,
        }

        /// An HTTP server on 127.0.0.1 that answers request `n` with body `b` as `script(n, b)`.
        struct Scripted {
            url: url::Url,
            log: Arc<Mutex<Log>>,
            task: tokio::task::JoinHandle<()>,
        }

        impl Drop for Scripted {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        impl Scripted {
            async fn start(script: impl Fn(usize, &str) -> Answer + Send + Sync + 'static) -> Self {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", listener.local_addr().unwrap())
                    .parse()
                    .unwrap();
                let log = Arc::new(Mutex::new(Log::default()));
                let script: Arc<Script> = Arc::new(script);
                let shared = Arc::clone(&log);
                let task = tokio::spawn(async move {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        let (log, script) = (Arc::clone(&shared), Arc::clone(&script));
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(
                                move |req: hyper::Request<hyper::body::Incoming>| {
                                    let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                                    async move {
                                        let body = req.into_body().collect().await;
                                        let body = body.map(|b| b.to_bytes()).unwrap_or_default();
                                        let body = String::from_utf8_lossy(&body).into_owned();
                                        let n = {
                                            let mut log = log.lock().unwrap();
                                            log.seen.push((Instant::now(), body.clone()));
                                            log.seen.len() - 1
                                        };
                                        let answer = script(n, &body);
                                        tokio::time::sleep(answer.delay).await;
                                        if (200..300).contains(&answer.status) {
                                            let mut log = log.lock().unwrap();
                                            log.accepted.extend(body.lines().map(str::to_owned));
                                        }
                                        let mut resp =
                                            hyper::Response::builder().status(answer.status);
                                        for (k, v) in &answer.headers {
                                            resp = resp.header(*k, v);
                                        }
                                        Ok::<_, std::convert::Infallible>(
                                            resp.body(Full::new(Bytes::from(answer.body))).unwrap(),
                                        )
                                    }
                                },
                            );
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                                .await;
                        });
                    }
                });
                Self { url, log, task }
            }

            fn seen(&self) -> Vec<(Instant, String)> {
                self.log.lock().unwrap().seen.clone()
            }

            fn accepted(&self) -> Vec<String> {
                self.log.lock().unwrap().accepted.clone()
            }
        }

        fn store() -> (tempfile::TempDir, Store) {
            let dir = tempfile::tempdir().unwrap();
            let (store, _) = Store::open(&dir.path().join("data")).unwrap();
            (dir, store)
        }

        /// `n` distinct lines; `special(i)` may replace line `i`.
        fn lines(n: usize, special: impl Fn(usize) -> Option<&'static str>) -> Vec<String> {
            (0..n)
                .map(|i| match special(i) {
                    Some(s) => s.to_owned(),
                    None => format!("m,k=v i={i}i {}", 1_700_000_000_000_000_000 + i as i64),
                })
                .collect()
        }

        fn fill(store: &Store, lines: &[String]) {
            let mut conn = store.connect().unwrap();
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx.prepare("INSERT INTO outbox (line) VALUES (?1)").unwrap();
                for l in lines {
                    insert.execute([l]).unwrap();
                }
            }
            tx.commit().unwrap();
        }

        fn count(store: &Store, table: &str) -> u64 {
            let conn = store.connect().unwrap();
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        }

        fn parked(store: &Store) -> Vec<(String, String)> {
            let conn = store.connect().unwrap();
            let mut stmt = conn
                .prepare("SELECT line, reason FROM outbox_parked ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }

        struct Running {
            stop: CancellationToken,
            task: tokio::task::JoinHandle<()>,
            events: crate::event::Subscription,
            messages: Vec<String>,
        }

        impl Running {
            /// Error messages sent so far.
            fn errors(&mut self) -> &[String] {
                while let Some(crate::event::Received::Event(e)) = self.events.try_recv() {
                    if let crate::event::Event::Error(r) = &*e {
                        assert_eq!(r.source, "influxdb");
                        self.messages.push(r.message.clone());
                    }
                }
                &self.messages
            }

            fn errors_with(&mut self, text: &str) -> Vec<String> {
                self.errors()
                    .iter()
                    .filter(|m| m.contains(text))
                    .cloned()
                    .collect()
            }

            /// Stops the sender; returns how long it took.
            async fn stop(&mut self) -> Duration {
                let t = Instant::now();
                self.stop.cancel();
                (&mut self.task).await.unwrap();
                t.elapsed()
            }
        }

        fn start(store: &Store, server: &Scripted, batch_size: usize) -> Running {
            let clock: crate::clock::SharedClock = Arc::new(SystemClock::new());
            let bus = Bus::new(Arc::clone(&clock));
            let rx = bus.subscribe();
            let sender = Sender {
                store: store.clone(),
                config: InfluxConfig {
                    url: server.url.clone(),
                    org: "o".into(),
                    bucket: "b".into(),
                    token_env: None,
                    batch_size,
                    flush_interval: Duration::from_millis(20),
                    max_outbox_lines: crate::config::DEFAULT_MAX_OUTBOX_LINES,
                },
                token: Some("s3cret".into()),
                client: crate::probe::Prober::new(Arc::clone(&clock))
                    .unwrap()
                    .plain_client(),
                bus,
            };
            let stop = CancellationToken::new();
            Running {
                task: tokio::spawn(sender.run_with(stop.clone(), QUICK)),
                stop,
                events: rx,
                messages: Vec::new(),
            }
        }

        /// Runs the sender until the outbox is empty, then stops it.
        async fn deliver_all(store: &Store, server: &Scripted, batch_size: usize) -> Running {
            let mut run = start(store, server, batch_size);
            until(Duration::from_secs(10), || count(store, "outbox") == 0).await;
            run.stop().await;
            run
        }

        fn without(all: &[String], marker: &str) -> Vec<String> {
            all.iter()
                .filter(|l| !l.contains(marker))
                .cloned()
                .collect()
        }

        async fn until(within: Duration, what: impl Fn() -> bool) {
            let deadline = Instant::now() + within;
            while !what() {
                assert!(Instant::now() < deadline, "not within {within:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stop_ends_the_sender_within_a_second_mid_backlog_and_mid_post() {
            let (_dir, store) = store();
            fill(&store, &lines(200_000, |_| None));
            // Each write takes 2 s: the second is in flight when the sender is stopped.
            let server = Scripted::start(|_, _| Answer {
                delay: Duration::from_secs(2),
                ..Answer::status(204)
            })
            .await;
            let mut run = start(&store, &server, 5_000);
            until(Duration::from_secs(10), || server.seen().len() >= 2).await;
            let took = run.stop().await;
            assert!(took < Duration::from_secs(1), "stopping took {took:?}");
            assert_eq!(server.accepted().len(), 5_000);
            assert_eq!(
                count(&store, "outbox"),
                195_000,
                "only the accepted batch left the outbox; the rest waits for the next start"
            );
            let conn = store.connect().unwrap();
            assert_eq!(store.outbox_len(&conn).unwrap(), 195_000);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_5xx_is_retried_and_every_line_arrives_once_in_order() {
            let (_dir, store) = store();
            let all = lines(30, |_| None);
            fill(&store, &all);
            let server = Scripted::start(|n, _| match n {
                0 => Answer::influx(503, "unavailable", "the server is starting"),
                1 => Answer::status(500),
                _ => Answer::status(204),
            })
            .await;
            let mut run = deliver_all(&store, &server, 10).await;
            assert_eq!(server.accepted(), all);
            assert_eq!(server.seen().len(), 5, "two refusals, then three batches");
            let outage = run.errors_with("cannot write to InfluxDB");
            assert_eq!(outage.len(), 1, "{:?}", run.errors());
            assert!(
                outage[0].contains("503 Service Unavailable: the server is starting"),
                "{outage:?}"
            );
            assert!(!outage[0].contains("s3cret"));
            assert_eq!(run.errors_with("accepts writes again").len(), 1);
            assert_eq!(count(&store, "outbox_parked"), 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_429_waits_as_long_as_retry_after_says() {
            let (_dir, store) = store();
            let all = lines(5, |_| None);
            fill(&store, &all);
            let server = Scripted::start(|n, _| match n {
                0 => Answer {
                    headers: vec![("retry-after", "1".into())],
                    ..Answer::influx(429, "too many requests", "slow down")
                },
                _ => Answer::status(204),
            })
            .await;
            deliver_all(&store, &server, 10).await;
            let seen = server.seen();
            assert_eq!(seen.len(), 2);
            let gap = seen[1].0 - seen[0].0;
            assert!(
                gap >= Duration::from_millis(950) && gap < Duration::from_millis(1600),
                "the retry came {gap:?} after the 429, not after the 20 ms backoff"
            );
            assert_eq!(server.accepted(), all);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_batch_too_large_is_halved_until_taken_and_a_line_too_large_alone_is_parked() {
            let (_dir, store) = store();
            let all = lines(50, |i| (i == 25).then_some("m,k=huge i=0i 1"));
            fill(&store, &all);
            let server = Scripted::start(|_, body| {
                if body.lines().count() > 7 || body.contains("huge") {
                    Answer::influx(413, "request too large", "points batch is too large")
                } else {
                    Answer::status(204)
                }
            })
            .await;
            let mut run = deliver_all(&store, &server, 20).await;
            let good = without(&all, "huge");
            assert_eq!(
                server.accepted(),
                good,
                "every other line arrives once, in order"
            );
            let sizes: Vec<usize> = server.seen().iter().map(|s| s.1.lines().count()).collect();
            let oversize = sizes.iter().filter(|n| **n > 7).count();
            assert!(
                oversize <= 4,
                "requests of {sizes:?} lines: more than 7 only for 20 and 10 in the first batch \
                 (its rest goes at 5, the size taken), and once each time the size grows back \
                 past 7 (10 and 8)"
            );
            let p = parked(&store);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].0, "m,k=huge i=0i 1");
            assert_eq!(p[0].1, "413 Payload Too Large: points batch is too large");
            assert_eq!(run.errors_with("refused 1 line(s) for good").len(), 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_bad_line_is_found_and_parked_and_every_good_line_is_delivered() {
            let (_dir, store) = store();
            let all = lines(120, |i| (i == 37).then_some("bad line without fields"));
            fill(&store, &all);
            // At every request, the outbox's cheap length (its id span) is also its row count.
            let spans = Arc::new(Mutex::new(Vec::new()));
            let (seen_store, seen_spans) = (store.clone(), Arc::clone(&spans));
            let server = Scripted::start(move |_, body| {
                let conn = seen_store.connect().unwrap();
                let rows: i64 = conn
                    .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
                    .unwrap();
                let span = seen_store.outbox_len(&conn).unwrap();
                seen_spans.lock().unwrap().push((span, rows as u64));
                if body.contains("bad") {
                    Answer::influx(
                        400,
                        "invalid",
                        "unable to parse 'bad line without fields': missing fields",
                    )
                } else {
                    Answer::status(204)
                }
            })
            .await;
            let mut run = deliver_all(&store, &server, 50).await;
            let good = without(&all, "bad");
            assert_eq!(
                server.accepted(),
                good,
                "every good line arrives once, in order"
            );
            assert_eq!(
                parked(&store),
                [(
                    "bad line without fields".to_owned(),
                    "400 Bad Request: unable to parse 'bad line without fields': missing fields"
                        .to_owned()
                )]
            );
            let requests = server.seen().len();
            assert!(
                requests <= 2 + 2 * 6,
                "bisection: {requests} requests for a batch of 50 with one bad line, and two more batches"
            );
            let spans = spans.lock().unwrap();
            assert!(spans.iter().all(|(span, rows)| span == rows), "{spans:?}");
            let parking = run.errors_with("refused 1 line(s) for good");
            assert_eq!(parking.len(), 1, "{:?}", run.errors());
            assert!(parking[0].contains("unable to parse"), "{parking:?}");
            assert!(parking[0].contains("sitewatch outbox"), "{parking:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unauthorized_keeps_the_points_says_so_once_and_resumes_when_fixed() {
            let (_dir, store) = store();
            let all = lines(20, |_| None);
            fill(&store, &all);
            let accept = Arc::new(AtomicBool::new(false));
            let fixed = Arc::clone(&accept);
            let server = Scripted::start(move |_, _| {
                if fixed.load(Ordering::SeqCst) {
                    Answer::status(204)
                } else {
                    Answer::influx(401, "unauthorized", "unauthorized access")
                }
            })
            .await;
            let mut run = start(&store, &server, 10);
            until(Duration::from_secs(10), || server.seen().len() >= 5).await;
            assert_eq!(count(&store, "outbox"), 20, "nothing is deleted");
            assert_eq!(count(&store, "outbox_parked"), 0, "nothing is parked");
            let refusals = run.errors().to_vec();
            assert_eq!(refusals.len(), 1, "said once, not per retry: {refusals:?}");
            assert!(
                refusals[0].contains("storage.influxdb.token_env"),
                "{refusals:?}"
            );
            assert!(
                refusals[0].contains("401 Unauthorized: unauthorized access"),
                "{refusals:?}"
            );
            let seen = server.seen();
            let gap = seen[4].0 - seen[3].0;
            assert!(
                gap >= Duration::from_millis(90),
                "retried at the longest backoff: {gap:?}"
            );

            accept.store(true, Ordering::SeqCst);
            until(Duration::from_secs(10), || count(&store, "outbox") == 0).await;
            run.stop().await;
            assert_eq!(server.accepted(), all, "nothing was lost");
            assert_eq!(run.errors_with("accepts writes again").len(), 1);
            assert_eq!(run.errors().len(), 2, "{:?}", run.errors());
        }
    }
}
