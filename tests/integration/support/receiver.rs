//! A scriptable HTTP/1.1 receiver standing in for a notification service (Slack, PagerDuty, ...):
//! it listens on 127.0.0.1, records every request once its whole body was read, then answers
//! as the test's closure says. Recording comes before answering, so a request the receiver
//! never answers (`Answer::Hang`) is recorded too. Stopped when dropped.
//!
//! Built on hyper (not the raw-socket `server` module) because notifiers are ordinary HTTP
//! clients: keep-alive, chunked bodies and `Expect: 100-continue` must just work.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the receiver read it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query (after `?`), if any.
    pub query: Option<String>,
    /// In the order sent; names in lower case (as hyper reads them).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole body had been read.
    pub at: Instant,
}

impl Received {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (invalid bytes replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics naming the path and showing the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {:?}",
                self.method,
                self.path,
                self.text()
            )
        })
    }

    /// The value of query parameter `name` (percent-decoded), if present.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// One line for failure messages: method, path, query and the first 300 bytes of the body.
    pub fn summary(&self) -> String {
        let end = self.body.len().min(300);
        let more = if self.body.len() > end { "..." } else { "" };
        let query = self
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        format!(
            "{} {}{} {:?}{more}",
            self.method,
            self.path,
            query,
            String::from_utf8_lossy(&self.body[..end])
        )
    }
}

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// status, extra headers, body
    Reply(u16, Vec<(String, String)>, String),
    /// never answers (holds the connection until the client gives up)
    Hang,
}

impl Answer {
    /// `200` with body `ok`.
    pub fn ok() -> Self {
        Self::status(200, "ok")
    }

    /// `code` with `body` (text/plain).
    pub fn status(code: u16, body: &str) -> Self {
        Self::Reply(code, Vec::new(), body.to_owned())
    }

    /// `429 Too Many Requests` with `Retry-After: secs`.
    pub fn retry_after(secs: u64) -> Self {
        Self::Reply(
            429,
            vec![("Retry-After".into(), secs.to_string())],
            "rate limited".into(),
        )
    }

    /// `code` with a JSON body (`Content-Type: application/json`).
    pub fn json(code: u16, body: &serde_json::Value) -> Self {
        Self::Reply(
            code,
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string(),
        )
    }
}

type AnswerFn = dyn Fn(&Received, usize) -> Answer + Send + Sync;
type Log = Arc<Mutex<Vec<Received>>>;

/// A running receiver; it stops (closes its port and every connection) when dropped.
pub struct Receiver {
    port: u16,
    log: Log,
    task: JoinHandle<()>,
}

impl Receiver {
    /// A receiver on a free port. `answer(request, n)`: n = how many requests to the same path
    /// (query aside) came before this one (0-based).
    pub async fn start(
        answer: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Arc::new(answer))
    }

    /// A receiver on `port` (one a product was already configured with). Retries the bind for
    /// up to 5 s: the port may still be held by a process or receiver that is going away.
    pub async fn start_on(
        port: u16,
        answer: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the receiver cannot listen on 127.0.0.1:{port}: {e}"),
            }
        };
        Self::serve(listener, Arc::new(answer))
    }

    /// A receiver that answers `200 ok` to everything.
    pub async fn accepting() -> Self {
        Self::start(|_, _| Answer::ok()).await
    }

    fn serve(listener: TcpListener, answer: Arc<AnswerFn>) -> Self {
        let port = listener.local_addr().unwrap().port();
        let log = Log::default();
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection with it.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (answer, log) = (Arc::clone(&answer), Arc::clone(&shared));
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
                        async move { Ok::<_, Infallible>(handle(req, &*answer, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { port, log, task }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request so far, in arrival order, answered or not.
    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Every request so far whose path starts with `path_prefix`.
    pub fn on(&self, path_prefix: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests whose path starts with `path_prefix` arrived, and
    /// returns all of them; on timeout panics listing what did arrive.
    pub async fn wait_for(&self, path_prefix: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.on(path_prefix);
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= deadline {
                let all = self.requests();
                let listing = if all.is_empty() {
                    "  (nothing)".to_owned()
                } else {
                    all.iter()
                        .map(|r| format!("  {}", r.summary()))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                panic!(
                    "waited {timeout:?} for {n} request(s) to {path_prefix}*, got {}; \
                     the receiver on port {} got:\n{listing}",
                    got.len(),
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    answer: &AnswerFn,
    log: &Log,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        // The client went away mid-body: nothing complete to record.
        Err(e) => return reply(400, &[], format!("reading the body: {e}")),
    };
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        at: Instant::now(),
    };
    let before = {
        let mut log = log.lock().unwrap();
        let before = log.iter().filter(|r| r.path == received.path).count();
        log.push(received.clone());
        before
    };
    let chosen =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(&received, before)));
    match chosen {
        Ok(Answer::Reply(status, headers, body)) => reply(status, &headers, body),
        Ok(Answer::Hang) => std::future::pending().await,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            eprintln!(
                "receiver: the answer closure panicked on {}: {why}",
                received.summary()
            );
            reply(
                500,
                &[],
                format!("the test's answer closure panicked: {why}"),
            )
        }
    }
}

fn reply(status: u16, headers: &[(String, String)], body: String) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(status);
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        builder = builder.header("Content-Type", "text/plain");
    }
    for (n, v) in headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .expect("a valid scripted answer (status and headers)")
}
