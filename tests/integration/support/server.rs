//! A raw-TCP HTTP/1.1 test server whose every answer is programmable: status, headers, body, and
//! delays before the headers and before the body; over plain TCP or TLS (with a delay before the
//! handshake, to make it measurable). Written on bare sockets (not a framework) so tests control
//! exactly what goes on the wire and when, and it records when it did each thing.

use crate::support::tls::{Identity, server_config, server_config_versions};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The parts of a request a handler sees.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body, when the request gave a `Content-Length` (at most 64 KiB are read).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long after reading the request before sending the headers.
    pub header_delay: Duration,
    /// Wait this long after the headers before sending the body.
    pub body_delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("status {status}\n").into_bytes(),
            header_delay: Duration::ZERO,
            body_delay: Duration::ZERO,
        }
    }

    pub fn ok(body: &str) -> Self {
        Self {
            body: body.as_bytes().to_vec(),
            ..Self::status(200)
        }
    }

    pub fn delayed(mut self, header_delay: Duration, body_delay: Duration) -> Self {
        self.header_delay = header_delay;
        self.body_delay = body_delay;
        self
    }

    /// `302 Found` to `location`.
    pub fn redirect(location: &str) -> Self {
        let mut r = Self::status(302);
        r.headers.push(("Location".into(), location.into()));
        r
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// What the server did on one connection, and when (the test process's monotonic clock, the
/// same as the binary's: a figure measured by the client can be bounded by these).
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The connection was accepted (after the client's connect began).
    pub accepted: Instant,
    /// The request's head had been read.
    pub request_read: Option<Instant>,
    /// Just before the first byte of the response headers was written.
    pub headers_sent: Option<Instant>,
    /// Just before the first byte of the body was written.
    pub body_sent: Option<Instant>,
}

type Exchanges = Arc<Mutex<Vec<Exchange>>>;

/// TLS on the server's connections.
#[derive(Clone)]
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Slept after the TCP accept, before the handshake: the client's TLS phase lasts at least
    /// this long.
    handshake_delay: Duration,
}

/// A running test server; it stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    scheme: &'static str,
    hits: Arc<AtomicU64>,
    exchanges: Exchanges,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::listen(None, Arc::new(handler)).await
    }

    /// An HTTPS server with `identity`'s certificate (HTTP/1.1 by ALPN).
    pub async fn start_tls(
        identity: Identity,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_tls_delayed(identity, Duration::ZERO, handler).await
    }

    /// An HTTPS server that speaks TLS 1.2 only (HTTP/1.1 by ALPN).
    pub async fn start_tls12(
        identity: Identity,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let config =
            server_config_versions(identity, b"http/1.1".to_vec(), &[&rustls::version::TLS12]);
        let tls = Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_delay: Duration::ZERO,
        };
        Self::listen(Some(tls), Arc::new(handler)).await
    }

    /// An HTTPS server that waits `handshake_delay` after accepting a connection before its TLS
    /// handshake.
    pub async fn start_tls_delayed(
        identity: Identity,
        handshake_delay: Duration,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let config = server_config(identity, b"http/1.1".to_vec());
        let tls = Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_delay,
        };
        Self::listen(Some(tls), Arc::new(handler)).await
    }

    async fn listen(tls: Option<Tls>, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let exchanges = Exchanges::default();
        let (counter, log) = (Arc::clone(&hits), Arc::clone(&exchanges));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = Record::new(&log);
                let (handler, counter, tls) =
                    (Arc::clone(&handler), Arc::clone(&counter), tls.clone());
                tokio::spawn(async move {
                    let _ = match tls {
                        None => serve(stream, handler, counter, record).await,
                        Some(tls) => {
                            tokio::time::sleep(tls.handshake_delay).await;
                            match tls.acceptor.accept(stream).await {
                                Ok(stream) => serve(stream, handler, counter, record).await,
                                Err(e) => Err(e),
                            }
                        }
                    };
                });
            }
        });
        Self {
            addr,
            scheme,
            hits,
            exchanges,
            task,
        }
    }

    /// The URL of `path` by IP address (no DNS phase).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// The URL of `path` by host name (`localhost`), as certificates usually name it.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("{}://localhost:{}{}", self.scheme, self.addr.port(), path)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every connection so far, in the order they were accepted.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }
}

/// One connection's entry in the server's log of exchanges.
struct Record {
    log: Exchanges,
    index: usize,
}

impl Record {
    fn new(log: &Exchanges) -> Self {
        let mut l = log.lock().unwrap();
        l.push(Exchange {
            accepted: Instant::now(),
            request_read: None,
            headers_sent: None,
            body_sent: None,
        });
        Self {
            log: Arc::clone(log),
            index: l.len() - 1,
        }
    }

    /// Notes the present instant in one field of this exchange.
    fn now(&self, field: impl FnOnce(&mut Exchange) -> &mut Option<Instant>) {
        *field(&mut self.log.lock().unwrap()[self.index]) = Some(Instant::now());
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    handler: Handler,
    hits: Arc<AtomicU64>,
    record: Record,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let mut request = Request {
        method: first.next().unwrap_or_default().to_owned(),
        path: first.next().unwrap_or_default().to_owned(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: Vec::new(),
    };
    let length = request
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    record.now(|e| &mut e.request_read);
    hits.fetch_add(1, Ordering::SeqCst);
    let reply = handler(&request);
    tokio::time::sleep(reply.header_delay).await;
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    record.now(|e| &mut e.headers_sent);
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    tokio::time::sleep(reply.body_delay).await;
    record.now(|e| &mut e.body_sent);
    if request.method != "HEAD" {
        stream.write_all(&reply.body).await?;
    }
    stream.shutdown().await
}
