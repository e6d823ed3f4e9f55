//! A raw-TCP HTTP/1.1 test server whose every answer is programmable: status, headers, body, and
//! delays before the headers and before the body. Written on bare sockets (not a framework) so
//! tests control exactly what goes on the wire and when.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The parts of a request a handler sees.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
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
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running test server; it stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let handler: Handler = Arc::new(handler);
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, counter) = (Arc::clone(&handler), Arc::clone(&counter));
                tokio::spawn(async move {
                    let _ = serve(stream, handler, counter).await;
                });
            }
        });
        Self { addr, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    handler: Handler,
    hits: Arc<AtomicU64>,
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
    let request = Request {
        method: first.next().unwrap_or_default().to_owned(),
        path: first.next().unwrap_or_default().to_owned(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
    };
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
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    tokio::time::sleep(reply.body_delay).await;
    if request.method != "HEAD" {
        stream.write_all(&reply.body).await?;
    }
    stream.shutdown().await
}
