//! Hostile HTTP servers, one behaviour each, on 127.0.0.1: reusable fixtures for tests that
//! attack the prober. Each is written on bare sockets so it can break the protocol on purpose.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Sends a status line, then trickles one header byte every 100 ms, forever.
    SlowlorisHeaders,
    /// Sends headers, then one body byte every 50 ms, forever.
    TrickleBody,
    /// Sends a chunked body of 64 KiB chunks as fast as it can, forever.
    EndlessBody,
    /// Announces and sends a 1 GiB body.
    HugeBody,
    /// A gzip-encoded body that inflates from ~200 KB to 200 MB.
    GzipBomb,
    /// Redirects to itself.
    RedirectLoop,
    /// Redirects 15 times before answering, beyond the 10-redirect limit.
    LongRedirectChain,
    /// Accepts the connection, then resets it.
    ResetAfterAccept,
    /// Answers 200 with lines that are not headers.
    GarbageHeaders,
    /// Answers a HEAD request with a body.
    HeadWithBody,
}

/// A running hostile server; stops when dropped.
pub struct HostileServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HostileServer {
    pub async fn start(kind: Hostile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bomb = if kind == Hostile::GzipBomb {
            Some(gzip_bomb())
        } else {
            None
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let bomb = bomb.clone();
                tokio::spawn(async move {
                    let _ = serve(kind, stream, bomb).await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// 200 MB of zeros, gzipped (about 200 KB).
fn gzip_bomb() -> std::sync::Arc<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        enc.write_all(&zeros).unwrap();
    }
    std::sync::Arc::new(enc.finish().unwrap())
}

/// Reads the request head; returns its first line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

async fn serve(
    kind: Hostile,
    mut s: TcpStream,
    bomb: Option<std::sync::Arc<Vec<u8>>>,
) -> std::io::Result<()> {
    if kind == Hostile::ResetAfterAccept {
        // Linger zero: closing sends RST instead of FIN.
        s.set_zero_linger()?;
        drop(s);
        return Ok(());
    }
    let request_line = read_head(&mut s).await?;
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    match kind {
        Hostile::SlowlorisHeaders => {
            s.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ").await?;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                s.write_all(b"a").await?;
            }
        }
        Hostile::TrickleBody => {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .await?;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                s.write_all(b"x").await?;
            }
        }
        Hostile::EndlessBody => {
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = [b'x'; 64 * 1024];
            loop {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                s.write_all(&chunk).await?;
                s.write_all(b"\r\n").await?;
            }
        }
        Hostile::HugeBody => {
            s.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 30).as_bytes(),
            )
            .await?;
            let block = vec![0u8; 64 * 1024];
            for _ in 0..(1 << 14) {
                s.write_all(&block).await?;
            }
            Ok(())
        }
        Hostile::GzipBomb => {
            let body = bomb.expect("made at start");
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body).await
        }
        Hostile::RedirectLoop => {
            s.write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            )
            .await
        }
        Hostile::LongRedirectChain => {
            let n: u32 = path.trim_start_matches("/r/").parse().unwrap_or(0);
            if n >= 15 {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
            } else {
                let next = format!("/r/{}", n + 1);
                s.write_all(
                    format!("HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\n\r\n")
                        .as_bytes(),
                )
                .await
            }
        }
        Hostile::GarbageHeaders => {
            s.write_all(b"HTTP/1.1 200 OK\r\nthis is not a header\r\n\x01\x02 also not\r\n\r\nbody")
                .await
        }
        Hostile::HeadWithBody => {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .await
        }
        Hostile::ResetAfterAccept => Ok(()),
    }
}
