//! The headless Chromium fixture: the DOM it returns is the one after the page's scripts ran,
//! an `EventSource` included (one event from the receiver; a live stream from a raw server),
//! and a screenshot is a PNG of the asked size (see `support::chromium`).

use crate::support::chromium;
use crate::support::receiver::{Answer, Receiver};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGE: &str = r#"<!doctype html>
<html><head><title>selftest</title></head>
<body><p id="out" data-got="nothing">waiting</p>
<script>
  console.log("script ran");
  const out = document.getElementById("out");
  const es = new EventSource("/events");
  es.onmessage = (e) => { out.setAttribute("data-got", e.data); out.textContent = "got " + e.data; };
</script></body></html>"#;

fn html(body: &str) -> Answer {
    Answer::Reply(
        200,
        vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body.into(),
    )
}

/// The page at `/`; `/events` answers one event (then ends: EventSource would reconnect after
/// `retry`, a minute).
async fn site() -> Receiver {
    Receiver::start(|req, _| match req.path.as_str() {
        "/" => html(PAGE),
        "/events" => Answer::Reply(
            200,
            vec![
                ("Content-Type".into(), "text/event-stream".into()),
                ("Cache-Control".into(), "no-cache".into()),
            ],
            "retry: 60000\ndata: hello\n\n".into(),
        ),
        _ => Answer::status(404, "not here"),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_dom_shows_what_the_scripts_and_an_event_did() {
    let site = site().await;
    let Some(page) = chromium::load(&site.url("/"), Duration::from_secs(2)).await else {
        return;
    };
    assert!(
        page.dom.contains(r#"data-got="hello""#) && page.dom.contains("got hello"),
        "the DOM after 2 s:\n{}\nconsole: {:?}\nrequests: {:?}",
        page.dom,
        page.console,
        site.requests()
            .iter()
            .map(|r| r.summary())
            .collect::<Vec<_>>()
    );
    assert!(page.dom.starts_with("<!DOCTYPE html>"), "{}", page.dom);
    assert!(
        page.console.iter().any(|l| l == "console.log: script ran"),
        "{:?}",
        page.console
    );
    assert_eq!(site.on("/events").len(), 1, "EventSource connected once");
}

/// A raw server: `/` is a page counting the events of `/events`, a stream that never ends and
/// sends one event every 200 ms.
async fn live_site() -> (u16, tokio::task::JoinHandle<()>) {
    const COUNTER: &str = r#"<!doctype html><html><body><p id="n" data-n="0">0</p><script>
        let n = 0; const p = document.getElementById("n");
        new EventSource("/events").onmessage = () => { n++; p.setAttribute("data-n", String(n)); p.textContent = String(n); };
        </script></body></html>"#;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            conns.spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                if path == "/events" {
                    let _ = tcp
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                              Cache-Control: no-cache\r\n\r\n",
                        )
                        .await;
                    for i in 1.. {
                        let event = format!("data: tick {i}\n\n");
                        if tcp.write_all(event.as_bytes()).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                } else {
                    let (status, body) = if path == "/" {
                        ("200 OK", COUNTER)
                    } else {
                        ("404 Not Found", "not here")
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_waits_real_time_while_an_event_stream_is_live() {
    let (port, server) = live_site().await;
    let url = format!("http://127.0.0.1:{port}/");
    let started = std::time::Instant::now();
    let Some(dom) = chromium::dump_dom(&url, Duration::from_secs(3)).await else {
        return;
    };
    server.abort();
    let n: u32 = dom
        .split(r#"data-n=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no counter in the DOM:\n{dom}"));
    // 3 s of a stream with an event every 200 ms: about 15 (fewer if the browser was slow).
    assert!(n >= 3, "only {n} events counted in 3 s:\n{dom}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_screenshot_is_a_png_of_the_asked_size() {
    let site = site().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shot.png");
    let Some(written) =
        chromium::screenshot(&site.url("/"), &path, 400, 300, Duration::from_millis(500)).await
    else {
        return;
    };
    assert!(written, "the screenshot was not written");
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (400, 300));
}
