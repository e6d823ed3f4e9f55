//! Local probe targets for the benches: a fast HTTP/1.1 server on several loopback addresses
//! (so 10,000 fresh connections a second do not run out of ports), whose status can be flipped
//! to make sites go down, and a server that delays its headers and body by known amounts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How many loopback addresses (127.0.0.1 ..) the fast target listens on.
const ADDRESSES: u8 = 8;

/// Reads a request head (up to the blank line). False when the peer closed first.
async fn read_head(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
}

/// Answers every request with a short body and the current status, then closes the connection
/// (the client sees a fresh connection per probe, as monitors make).
pub struct FastTarget {
    addrs: Vec<SocketAddr>,
    status: Arc<AtomicU16>,
    /// Every third answer waits this long (ms) before its headers: probes of a site then
    /// overlap and end out of the order they started in. 0: none waits.
    slow_every_third_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl FastTarget {
    /// Starts on the current tokio runtime.
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let slow = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut addrs = Vec::new();
        for k in 1..=ADDRESSES {
            let listener = tokio::net::TcpListener::bind((format!("127.0.0.{k}"), 0))
                .await
                .unwrap();
            addrs.push(listener.local_addr().unwrap());
            let status = Arc::clone(&status);
            let (slow, served) = (Arc::clone(&slow), Arc::clone(&served));
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let status = Arc::clone(&status);
                    let (slow, served) = (Arc::clone(&slow), Arc::clone(&served));
                    tokio::spawn(async move {
                        let mut buf = Vec::with_capacity(1024);
                        if !read_head(&mut stream, &mut buf).await {
                            return;
                        }
                        let wait = slow.load(Ordering::Relaxed);
                        if wait > 0 && served.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) {
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        let code = status.load(Ordering::Relaxed);
                        let reply = format!(
                            "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                        );
                        let _ = stream.write_all(reply.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
        }
        Self {
            addrs,
            status,
            slow_every_third_ms: slow,
        }
    }

    /// Makes every third answer wait `d` before its headers (zero: none).
    pub fn set_slow_every_third(&self, d: Duration) {
        self.slow_every_third_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// The URL of site `i`: its own path, spread over the loopback addresses.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}/site/{i}", self.addrs[i % self.addrs.len()])
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }
}

/// Connections the delayed target serves at once.
const WORKERS: usize = 64;

/// Delays the headers by `header_delay` after reading the request and the body by a further
/// `body_delay`. Each connection has an OS thread of its own, so the delays are as exact as
/// `thread::sleep`; each request's actual delays are kept, to tell the server's own error from
/// the client's.
pub struct DelayedTarget {
    pub addr: SocketAddr,
    /// (header delay, body delay, accept to headers) of each request served, in ms.
    pub actual: Arc<std::sync::Mutex<Vec<(f64, f64, f64)>>>,
}

impl DelayedTarget {
    pub fn start(header_delay: Duration, body_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let actual = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&actual);
        // Threads started up front, each taking connections from the shared listener: starting
        // a thread per connection costs milliseconds here, which would blur the delays.
        for _ in 0..WORKERS {
            let listener = listener.try_clone().unwrap();
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                loop {
                    let Ok((stream, _)) = listener.accept() else {
                        continue;
                    };
                    let accepted = Instant::now();
                    if let Some(d) = serve_delayed(stream, accepted, header_delay, body_delay) {
                        log.lock().unwrap().push(d);
                    }
                }
            });
        }
        Self { addr, actual }
    }

    pub fn url(&self) -> String {
        format!("http://{}/slow", self.addr)
    }
}

fn serve_delayed(
    mut stream: TcpStream,
    accepted: Instant,
    header_delay: Duration,
    body_delay: Duration,
) -> Option<(f64, f64, f64)> {
    stream.set_nodelay(true).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let t = Instant::now();
    std::thread::sleep(header_delay);
    let headers_at = t.elapsed();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .ok()?;
    let headers_sent = Instant::now();
    std::thread::sleep(body_delay);
    let body_at = t.elapsed();
    stream.write_all(b"done\n").ok()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Some((
        headers_at.as_secs_f64() * 1e3,
        (body_at - headers_at).as_secs_f64() * 1e3,
        headers_sent.duration_since(accepted).as_secs_f64() * 1e3,
    ))
}
