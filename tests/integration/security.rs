//! Security at the edges, through the real binary: event-stream clients that never read cost
//! bounded memory and are disconnected; a redirect to another origin carries none of a site's
//! secrets; a password in a URL is sent and shown nowhere; the server's door (the bearer
//! scheme, DNS rebinding, a rotated token, the 503 beyond the connection cap); one memory budget
//! for all plugin calls; names counted in characters, hidden characters refused.

use crate::support::binary::{Running, alert, check_config, cli_in};
use crate::support::server::{Reply, Request, TestServer};
use crate::support::{closed_port, http_client, plugins::test_plugin};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The value of a counter or gauge series in Prometheus text (`name{labels} value`), summed over
/// the series whose line contains `filter`.
fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn get_text(url: &str) -> (u16, String) {
    let r = http_client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A client of `/api/v1/events` that sends its request and then never reads, with a receive
/// buffer as small as the kernel allows.
async fn stuck_client(port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    s
}

/// How many of sitewatch's sockets go to the client ports `peers`, once that is `want` or 5 s
/// have passed (the events read meanwhile are kept).
async fn sockets_become(run: &mut Running, peers: &[u16], want: usize) -> usize {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let n = run.sockets_to(peers);
        if n == want || Instant::now() >= end {
            return n;
        }
        run.collect_for(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_clients_that_never_read_cost_bounded_memory_and_are_disconnected() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    // 400 sites and two views refreshed four times a second: a stats event of ~200 KB eight
    // times a second, which a client that never reads used to keep in full.
    let sites: Vec<Value> = (0..400)
        .map(|i| {
            json!({"name": format!("site-{i:03}"), "url": target.url(&format!("/{i}")),
                         "interval": "1s", "timeout": "500ms"})
        })
        .collect();
    let config = json!({
        "sites": sites,
        "dashboard": {"views": [{"window": "10s", "every": "250ms"}, {"window": "1m", "every": "250ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(20), |e| {
        e["event"] == "stats" && e["sites"].as_array().is_some_and(|s| s.len() == 400)
    })
    .await
    .unwrap_or_else(|| panic!("a stats event; stderr: {}", run.stderr()));

    // A client that reads, beside the stuck ones: it keeps its stream.
    let reader = http_client()
        .get(format!("http://127.0.0.1:{port}/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status().as_u16(), 200);
    let stats_seen = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = Arc::clone(&stats_seen);
    let reading = tokio::spawn(async move {
        let mut reader = reader;
        let mut pending = String::new();
        while let Ok(Some(chunk)) = reader.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find("\n\n") {
                if pending[..end].contains("\"event\":\"stats\"") {
                    seen.lock().unwrap().push(Instant::now());
                }
                pending.drain(..end + 2);
            }
        }
    });

    run.collect_for(Duration::from_secs(2)).await;
    let baseline = run.rss_mib();
    let mut stuck = Vec::new();
    for _ in 0..16 {
        stuck.push(stuck_client(port).await);
    }
    let stuck_ports: Vec<u16> = stuck
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    // Accepted by the server (on a busy machine the accept loop may take a moment).
    let sockets_with_stuck = sockets_become(&mut run, &stuck_ports, 16).await;
    let t0 = Instant::now();
    let mut peak = baseline;
    while t0.elapsed() < Duration::from_secs(15) {
        run.collect_for(Duration::from_millis(500)).await;
        peak = peak.max(run.rss_mib());
    }
    let growth = peak - baseline;

    let (_, metrics) = get_text(&format!("http://127.0.0.1:{port}/metrics")).await;
    let disconnected = metric_sum(&metrics, "sitewatch_stream_disconnects_total", "");
    // Each stuck client's connection was closed by the server: reading what the kernel held
    // ends in EOF or a reset.
    // Each stuck client's connection was closed by the server: sitewatch holds no socket for
    // it any more (how soon the client sees the end depends on TCP's persist timer with a
    // window this small, not on sitewatch).
    let sockets_left = sockets_become(&mut run, &stuck_ports, 0).await;
    drop(stuck);
    let recent = stats_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.elapsed() < Duration::from_secs(5))
        .count();
    reading.abort();
    eprintln!(
        "16 stuck clients: resident memory {baseline:.1} MiB, peak {peak:.1} MiB; {disconnected} disconnected"
    );
    assert!(
        growth < 60.0,
        "16 stuck clients grew the resident memory by {growth:.1} MiB (from {baseline:.1})"
    );
    assert!(
        disconnected >= 16.0,
        "every stuck client is disconnected and counted: {disconnected}\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("stream"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        (sockets_with_stuck, sockets_left),
        (16, 0),
        "the server holds a socket for each stuck client, then none once they are disconnected"
    );
    assert!(
        recent > 0,
        "a client that reads keeps its stream and gets stats"
    );
    assert!(
        run.stderr().contains("disconnected"),
        "a log line says so: {}",
        run.stderr()
    );
}

/// What a receiving server saw: each request's path, headers and body.
type Seen = Arc<Mutex<Vec<Request>>>;

async fn recording(
    reply: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> (TestServer, Seen) {
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let server = TestServer::start(move |r| {
        log.lock().unwrap().push(r.clone());
        reply(r)
    })
    .await;
    (server, seen)
}

/// A 307 (which keeps the method and body) to `to`.
fn temporary_redirect(to: &str) -> Reply {
    let mut r = Reply::status(307);
    r.headers.push(("Location".into(), to.into()));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_carries_none_of_the_sites_headers_body_or_password() {
    const KEY: &str = "k3y-never-elsewhere";
    // Another origin (another port of the same address): it must see none of the secrets.
    let (elsewhere, elsewhere_saw) = recording(|_| Reply::ok("landed")).await;
    let there = elsewhere.url("/landing");
    let (home, home_saw) = recording(move |r| match r.path.as_str() {
        "/away" => temporary_redirect(&there),
        "/hop" => temporary_redirect("/final"),
        "/final" => Reply::ok("home"),
        _ => Reply::status(404),
    })
    .await;
    let url_with = |path: &str| {
        format!(
            "http://alice:pa55-{KEY}@{}{path}",
            home.url("/")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        )
    };
    let site = |name: &str, path: &str, follow: Value| {
        json!({"name": name, "url": url_with(path), "method": "POST", "body": {"secret": KEY},
               "headers": {"X-Api-Key": "${SW_KEY}"}, "interval": "300ms",
               "follow_redirects": follow})
    };
    let config = json!({
        "sites": [
            site("away", "/away", json!(true)),
            site("hop", "/hop", json!(true)),
            site("never", "/away", json!(false)),
            site("same", "/away", json!("same-origin")),
            site("same-hop", "/hop", json!("same-origin")),
        ],
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
    });
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        &[("SW_KEY", KEY)],
    );
    let mut probes = std::collections::HashMap::new();
    for name in ["away", "hop", "never", "same", "same-hop"] {
        let p = run
            .wait_for(Duration::from_secs(10), |e| {
                e["event"] == "probe" && e["site"] == name
            })
            .await
            .unwrap_or_else(|| panic!("a probe of {name}; stderr: {}", run.stderr()));
        probes.insert(name, p);
    }
    run.collect_for(Duration::from_secs(1)).await;

    // The other origin got the request without the key, the body or the password.
    let landed = elsewhere_saw.lock().unwrap().clone();
    assert!(!landed.is_empty(), "the redirect was followed");
    for r in &landed {
        assert_eq!(r.header("x-api-key"), None, "{r:?}");
        assert_eq!(r.header("authorization"), None, "{r:?}");
        assert!(r.body.is_empty(), "no body went elsewhere: {r:?}");
        assert!(!format!("{r:?}").contains(KEY), "{r:?}");
    }
    // The site's own origin got all of it, on every hop (307 keeps the method and body).
    let home_requests = home_saw.lock().unwrap().clone();
    let finals: Vec<&Request> = home_requests
        .iter()
        .filter(|r| r.path == "/final")
        .collect();
    assert!(!finals.is_empty());
    for r in finals {
        assert_eq!(r.header("x-api-key"), Some(KEY), "{r:?}");
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );
        assert_eq!(r.method, "POST");
        assert!(String::from_utf8_lossy(&r.body).contains(KEY));
    }

    // The measurement shows where it ended and after how many hops, without the password.
    let away = &probes["away"];
    assert_eq!(away["ok"], true, "{away}");
    assert_eq!(away["redirects"], 1);
    assert_eq!(away["final_url"], elsewhere.url("/landing"));
    let hop = &probes["hop"];
    assert_eq!(hop["redirects"], 1);
    // Where the last request went (its credentials went as basic auth, not in the URL).
    assert_eq!(hop["final_url"], home.url("/final"), "{hop}");
    // Not followed: the 3xx is the answer, and the message says why.
    for name in ["never", "same"] {
        let p = &probes[name];
        assert_eq!(p["ok"], false, "{p}");
        assert_eq!(p["status"], 307);
        assert_eq!(p["redirects"], 0);
        assert!(
            p["error"]["message"]
                .as_str()
                .unwrap()
                .contains("was not followed"),
            "{p}"
        );
    }
    assert_eq!(probes["same-hop"]["ok"], true, "same origin is followed");
    assert_eq!(probes["same-hop"]["redirects"], 1);
    run.signal(Signal::SIGTERM);
    run.drain().await;
    let everything = serde_json::to_string(&run.events).unwrap() + &run.stderr();
    assert!(!everything.contains(KEY), "no output holds the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_a_url_is_sent_and_shown_nowhere() {
    const PASSWORD: &str = "pa55w0rd-in-the-url";
    let auth_seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&auth_seen);
    let target = TestServer::start(move |r| {
        if let Some(a) = r.header("authorization") {
            log.lock().unwrap().push(a.to_owned());
        }
        Reply::status(500)
    })
    .await;
    let port = closed_port();
    let url = format!("http://alice:{PASSWORD}@{}/health", target.addr);
    let shown = format!("http://alice:***@{}/health", target.addr);
    let config = json!({
        "sites": [{"name": "guarded", "url": url, "interval": "200ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("sitewatch.log");
    let mut run = Running::start_with(dir, &config, &["--log-file", log_file.to_str().unwrap()]);
    let down = run
        .wait_for(Duration::from_secs(15), alert("down", "guarded"))
        .await
        .unwrap_or_else(|| panic!("a down alert; stderr: {}", run.stderr()));
    assert_eq!(down["url"], shown.as_str());
    run.wait_for(Duration::from_secs(5), |e| e["event"] == "stats")
        .await
        .unwrap();
    // Sent as basic auth.
    let basic = format!("Basic {}", base64_of(&format!("alice:{PASSWORD}")));
    assert!(
        auth_seen.lock().unwrap().contains(&basic),
        "the site got the credentials"
    );

    let base = format!("http://127.0.0.1:{port}");
    let mut served = String::new();
    for path in [
        "/",
        "/metrics",
        "/api/v1/sites",
        "/api/v1/sites/guarded",
        "/api/v1/alerts?since=1h",
        "/api/v1/report?since=1h",
    ] {
        let (status, text) = get_text(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {text}");
        served.push_str(&text);
    }
    assert!(
        served.contains("alice:***@"),
        "shown with the password masked"
    );
    run.signal(Signal::SIGTERM);
    assert!(
        run.wait_exit(Duration::from_secs(15))
            .await
            .unwrap()
            .success()
    );
    run.drain().await;
    let dir = run.dir.path().to_owned();
    let (_, alerts, _) = cli_in(&dir, &["alerts", "--since", "1h"]);
    let (_, report, _) = cli_in(&dir, &["report", "--since", "1h"]);
    let (_, printed, _) = cli_in(
        &dir,
        &["check-config", "--print", "--config", "config.json"],
    );
    assert!(printed.contains("alice:***@"), "{printed}");
    assert!(alerts.contains("guarded"), "{alerts}");
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.join("sitewatch-data"))
        .unwrap()
        .flatten()
    {
        if entry.path().is_file() {
            stored.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    for (what, text) in [
        ("stdout", serde_json::to_string(&run.events).unwrap()),
        ("stderr", run.stderr()),
        ("the server", served),
        ("alerts", alerts),
        ("report", report),
        ("check-config --print", printed),
        ("the store and log", stored.into_owned()),
    ] {
        assert!(!text.contains(PASSWORD), "{what} shows the password");
    }
}

fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends `request` (a whole HTTP/1.1 request) and reads the answer until the server closes or
/// 5 s pass.
async fn raw(port: u16, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_requests_addressed_to_the_server_are_answered() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "up", "url": target.url("/"), "interval": "200ms"}],
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}"), "allowed_hosts": ["status.example.test"]},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "stats")
        .await
        .unwrap_or_else(|| panic!("stats; stderr: {}", run.stderr()));
    let ask = |host: &str| {
        format!("GET /api/v1/sites HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        format!("status.example.test:{port}"),
        "STATUS.Example.Test".to_owned(),
    ] {
        let answer = raw(port, &ask(&host)).await;
        assert_eq!(status_of(&answer), 200, "Host: {host}: {answer}");
    }
    // A page of another name that resolves to this machine (DNS rebinding).
    for host in [
        format!("rebind.attacker.test:{port}"),
        "127.0.0.1.attacker.test".to_owned(),
        "localhost.attacker.test".to_owned(),
    ] {
        let answer = raw(port, &ask(&host)).await;
        assert_eq!(status_of(&answer), 403, "Host: {host}: {answer}");
        assert!(answer.contains("allowed_hosts"), "{answer}");
        assert!(!answer.contains("\"up\""), "no site is shown: {answer}");
    }
    // The page and the stream too; /healthz stays open to probes.
    let page = raw(
        port,
        "GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&page), 403);
    let health = raw(
        port,
        "GET /healthz HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&health), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_a_rotated_token_closes_old_streams() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let mut config = json!({
        "sites": [{"name": "up", "url": target.url("/"), "interval": "200ms"}],
        "dashboard": {"views": [{"window": "10s", "every": "300ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}"), "auth_token_env": "SW_OLD"},
    });
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        &[("SW_OLD", "old-token-1234"), ("SW_NEW", "new-token-5678")],
    );
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "stats")
        .await
        .unwrap_or_else(|| panic!("stats; stderr: {}", run.stderr()));
    let sites = |auth: &str| {
        format!(
            "GET /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
    };
    for auth in [
        "Bearer old-token-1234",
        "bearer old-token-1234",
        "BEARER old-token-1234",
        "BeArEr   old-token-1234",
    ] {
        assert_eq!(status_of(&raw(port, &sites(auth)).await), 200, "{auth}");
    }
    for auth in [
        "Bearer old-token-123",
        "Bearer old-token-12345",
        "Basic old-token-1234",
        "Bearerold-token-1234",
        "Bearer",
    ] {
        assert_eq!(status_of(&raw(port, &sites(auth)).await), 401, "{auth}");
    }

    // A stream opened with the old token ends when a reload rotates it.
    let stream = http_client()
        .get(format!("http://127.0.0.1:{port}/api/v1/events"))
        .bearer_auth("old-token-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let ended = tokio::spawn(async move {
        let mut stream = stream;
        let mut events = 0u32;
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => events += 1,
                Ok(None) | Err(_) => return (events, Instant::now()),
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    config["server"]["auth_token_env"] = json!("SW_NEW");
    std::fs::write(run.config_path(), config.to_string()).unwrap();
    let changed = Instant::now();
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "reload" && e["result"] == "applied"
    })
    .await
    .unwrap_or_else(|| panic!("the reload; stderr: {}", run.stderr()));
    let (events, at) = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the old token's stream ends")
        .unwrap();
    assert!(events > 0, "it streamed before");
    assert!(at.duration_since(changed) < Duration::from_secs(8));
    assert_eq!(
        status_of(&raw(port, &sites("Bearer old-token-1234")).await),
        401
    );
    assert_eq!(
        status_of(&raw(port, &sites("bearer new-token-5678")).await),
        200
    );
    let (_, metrics) = {
        let r = http_client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth("new-token-5678")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(
        metric_sum(
            &metrics,
            "sitewatch_stream_disconnects_total",
            "reason=\"token\""
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_the_503_is_whole() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "up", "url": target.url("/"), "interval": "500ms"}],
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("a probe; stderr: {}", run.stderr()));
    // Hold every connection slot (the header timeout frees them after 5 s).
    let mut held = Vec::new();
    for _ in 0..512 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = raw(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_eq!(status_of(&answer), 503, "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(
        length,
        body.len(),
        "Content-Length matches the body: {answer:?}"
    );
    let v: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(v["error"], "too many connections");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_plugin_calls_share_one_memory_budget() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(test_plugin("hostile"), plugins.join("hostile.wasm")).unwrap();
    // Each call holds 20 MiB for 300 ms; four sites every 100 ms overlap, and a total of
    // 48 MiB holds two of them, never four.
    let hold = json!({"plugin": "hostile", "config": {"mode": "hold", "mib": 20, "ms": 300}});
    let sites: Vec<Value> = (0..4)
        .map(|i| {
            json!({"name": format!("s{i}"), "url": target.url("/"), "interval": "100ms",
                         "timeout": "2s", "checks": [hold]})
        })
        .collect();
    let config = json!({
        "sites": sites,
        "plugins": {"dir": "plugins", "memory_limit": "32MiB", "time_limit": "2s", "total_memory": "48MiB"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
    });
    let mut run = Running::start_with(dir, &config, &[]);
    run.collect_for(Duration::from_secs(6)).await;
    let probes: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["event"] == "probe")
        .collect();
    let budget_failures: Vec<&&Value> = probes
        .iter()
        .filter(|p| {
            p["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("plugins.total_memory"))
        })
        .collect();
    let passed = probes.iter().filter(|p| p["ok"] == true).count();
    assert!(
        !budget_failures.is_empty(),
        "calls beyond the budget fail naming it; stderr: {}",
        run.stderr()
    );
    assert_eq!(budget_failures[0]["error"]["kind"], "plugin");
    assert!(passed > 0, "the calls within the budget pass");
    assert!(
        !probes.iter().any(|p| p["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("exceeded its memory limit"))),
        "no call hit its own limit"
    );
    assert!(
        budget_failures[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("48.0 MiB"),
        "{}",
        budget_failures[0]
    );

    // A plugin's own limit above the total can never run: a config error.
    let (code, out) = check_config(
        &json!({"sites": [{"url": "http://127.0.0.1/", "checks": [
                    {"plugin": "hostile", "memory_limit": "64MiB"}]}],
                "plugins": {"total_memory": "32MiB"}})
        .to_string(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sites[0].checks[0].memory_limit") && out.contains("plugins.total_memory"),
        "{out}"
    );
}

#[test]
fn names_are_measured_in_characters_and_hidden_characters_are_refused() {
    let site = |name: &str, tags: Value| {
        json!({"sites": [{"name": name, "url": "http://127.0.0.1:9/", "tags": tags}]}).to_string()
    };
    // 64 characters of two bytes each are a valid tag and location.
    let long = "é".repeat(64);
    let (code, out) = check_config(&site("ok", json!([long])));
    assert_eq!(code, 0, "{out}");
    let (code, out) = check_config(
        &json!({"sites": [{"url": "http://127.0.0.1:9/"}], "location": long}).to_string(),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = check_config(&site("ok", json!(["é".repeat(65)])));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("tags[0]"), "{out}");

    // Control characters, bidi overrides and zero-width characters, named by field; the
    // message never carries the raw character.
    for (name, shown) in [
        ("evil\u{202E}gnp.exe", "\\u{202e}"),
        ("zero\u{200B}width", "\\u{200b}"),
        ("esc\u{1b}[31mred", "\\u{1b}"),
        ("isolate\u{2066}x", "\\u{2066}"),
    ] {
        let (code, out) = check_config(&site(name, json!([])));
        assert_eq!(code, 2, "{name:?}: {out}");
        assert!(out.contains("sites[0].name"), "{out}");
        assert!(out.contains(shown), "the character is shown escaped: {out}");
        assert!(
            !out.contains(['\u{202E}', '\u{200B}', '\u{1b}', '\u{2066}']),
            "no raw hidden character in {out:?}"
        );
        let (code, out) = check_config(&site("fine", json!([name])));
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("tags[0]"), "{out}");
        assert!(!out.contains(['\u{202E}', '\u{200B}', '\u{1b}', '\u{2066}']));
    }
    // An unknown field's name is shown escaped too.
    let (code, out) = check_config(r#"{"sites": [], "bad\u001b[2Jfield": 1}"#);
    assert_eq!(code, 2);
    assert!(!out.contains('\u{1b}'), "{out:?}");

    // Two names equal after NFC are one name.
    let (code, out) = check_config(
        &json!({"sites": [
            {"name": "caf\u{e9}", "url": "http://127.0.0.1:9/a"},
            {"name": "cafe\u{301}", "url": "http://127.0.0.1:9/b"},
        ]})
        .to_string(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sites[1].name") && out.contains("unique"),
        "{out}"
    );
}

/// `server.tokens` with scopes and `server.public`: a read token reads and is refused changes
/// (403), no token or a wrong one is a 401, the public page opens without one (and does not
/// stream), the API does not; the access log names the token, never its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_tokens_read_write_and_public_parts() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "shop", "url": target.url("/"), "interval": "200ms"}],
        "dashboard": {"views": [{"window": "10s", "every": "300ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}"),
                   "tokens": [{"name": "grafana", "env": "SW_READ", "scope": "read"},
                              {"name": "ci", "env": "SW_WRITE", "scope": "write"}],
                   "public": ["page"]},
    });
    let (read, write) = ("read-token-3f9a1c", "write-token-77b2e0");
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        &[("SW_READ", read), ("SW_WRITE", write)],
    );
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "stats")
        .await
        .unwrap_or_else(|| panic!("stats; stderr: {}", run.stderr()));
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client();
    let status = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut r = client.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method;
    // Reads: either token; none or a wrong one is a 401.
    for token in [Some(read), Some(write)] {
        assert_eq!(status(Method::GET, "/api/v1/sites", token).await, 200);
        assert_eq!(status(Method::GET, "/metrics", token).await, 200);
    }
    for token in [None, Some("read-token-3f9a1"), Some("nope")] {
        assert_eq!(
            status(Method::GET, "/api/v1/sites", token).await,
            401,
            "{token:?}"
        );
    }
    // Changes: a read token is a 403, no token a 401; a write token passes the gate.
    let change = "/api/v1/sites/shop";
    assert_eq!(status(Method::DELETE, change, Some(read)).await, 403);
    assert_eq!(status(Method::DELETE, change, None).await, 401);
    assert_ne!(status(Method::DELETE, change, Some(write)).await, 401);
    assert_ne!(status(Method::DELETE, change, Some(write)).await, 403);
    // The public page opens without a token and refreshes instead of streaming; what it does
    // not open stays closed.
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("shop"), "the page lists the site");
    assert!(
        !html.contains("data-events"),
        "no live stream without a token"
    );
    assert!(html.contains(r#"http-equiv="refresh""#));
    let with_token = client
        .get(format!("{base}/"))
        .bearer_auth(read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(with_token.contains(r#"data-events="/api/v1/events""#));
    assert_eq!(status(Method::GET, "/api/v1/events", None).await, 401);
    assert_eq!(
        status(Method::GET, "/badge/shop/status.svg", None).await,
        401
    );
    assert_eq!(status(Method::GET, "/feed.atom", None).await, 401);
    assert_eq!(status(Method::GET, "/healthz", None).await, 200);
    // The access log: the refused change names the read token; no value anywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stderr = run.stderr();
    assert!(
        stderr.lines().any(|l| l.contains("sitewatch::access")
            && l.contains("grafana")
            && l.contains("DELETE")
            && l.contains("403")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("sitewatch::access")
            && l.contains("\"ci\"")
            && l.contains("DELETE")),
        "{stderr}"
    );
    for secret in [read, write] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
    run.collect_for(Duration::from_millis(200)).await;
    let out = serde_json::to_string(&run.events).unwrap();
    assert!(!out.contains(read) && !out.contains(write));
}
