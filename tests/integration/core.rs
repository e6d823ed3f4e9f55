//! End-to-end tests of the core monitor: the real binary against local servers.

use crate::support::binary::{Running, alert, is};
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use nix::sys::signal::Signal;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A short alert window and fast probes, so an outage plays out in seconds.
fn fast_config(sites: serde_json::Value) -> serde_json::Value {
    json!({
        "sites": sites,
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_gives_exactly_one_down_and_one_recovery_alert() {
    let status = Arc::new(AtomicU16::new(200));
    let s = Arc::clone(&status);
    let server = TestServer::start(move |_| Reply::status(s.load(Ordering::SeqCst))).await;
    let mut run = Running::start(&fast_config(json!([
        {"name": "flaky", "url": server.url("/"), "interval": "100ms", "timeout": "1s"}
    ])));

    // Healthy for more than a whole alert window: no alert.
    run.collect_for(Duration::from_millis(1500)).await;
    assert!(
        run.of("probe", "flaky").len() >= 8,
        "probes should arrive every 100 ms"
    );
    assert!(run.of("alert", "flaky").is_empty());

    status.store(500, Ordering::SeqCst);
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "flaky"))
        .await
        .expect("down alert");
    let message = down["message"].as_str().unwrap();
    assert!(
        message.starts_with("Website flaky is down. availability="),
        "{message}"
    );
    assert!(down["availability"].as_f64().unwrap() < 0.8);

    // Still failing: nothing more.
    run.collect_for(Duration::from_millis(1200)).await;
    status.store(200, Ordering::SeqCst);
    let up = run
        .wait_for(Duration::from_secs(10), alert("recovered", "flaky"))
        .await
        .expect("recovery");
    let message = up["message"].as_str().unwrap();
    assert!(
        message.starts_with("Website flaky recovered. availability="),
        "{message}"
    );
    assert!(
        message.contains(", down since ") && message.contains(", down for "),
        "{message}"
    );
    assert_eq!(up["down_since"], down["time"]);
    assert!(up["availability"].as_f64().unwrap() >= 0.8);

    // Healthy again: no further alert.
    run.collect_for(Duration::from_millis(1500)).await;
    let kinds: Vec<_> = run
        .of("alert", "flaky")
        .iter()
        .map(|a| a["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("down"), json!("recovered")]);
    // The 500s were counted by status code in the stats.
    let saw_500 = run.events.iter().any(|e| {
        e["event"] == "stats" && e["sites"][0]["status_codes"]["500"].as_u64().unwrap_or(0) > 0
    });
    assert!(saw_500, "stats should count the 500s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_down_without_harming_a_healthy_site() {
    let server = TestServer::start(|_| Reply::ok("fine")).await;
    let mut run = Running::start(&fast_config(json!([
        {"name": "healthy", "url": server.url("/"), "interval": "100ms"},
        {"name": "closed", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}
    ])));
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "closed"))
        .await
        .expect("down alert");
    assert_eq!(down["availability"], 0.0);
    run.collect_for(Duration::from_millis(1000)).await;

    let closed = run.of("probe", "closed");
    assert!(
        closed
            .iter()
            .all(|p| p["ok"] == false && p["error"]["kind"] == "connect"),
        "{closed:?}"
    );
    let healthy = run.of("probe", "healthy");
    assert!(
        healthy.len() >= 15,
        "the healthy site kept its schedule: {} probes",
        healthy.len()
    );
    assert!(
        healthy
            .iter()
            .all(|p| p["ok"] == true && p["status"] == 200)
    );
    assert!(run.of("alert", "healthy").is_empty());
    let stats = run
        .events
        .iter()
        .rev()
        .find(|e| e["event"] == "stats")
        .unwrap();
    let closed_stats = stats["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "closed")
        .unwrap();
    assert_eq!(closed_stats["availability"], 0.0);
    assert!(closed_stats["status_codes"]["connect"].as_u64().unwrap() > 0);
    assert_eq!(
        closed_stats["response_ms"],
        serde_json::Value::Null,
        "no timings without a response"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttfb_and_response_time_match_known_server_delays() {
    let header_delay = Duration::from_millis(150);
    let body_delay = Duration::from_millis(100);
    let server =
        TestServer::start(move |_| Reply::ok("slow body").delayed(header_delay, body_delay)).await;
    let mut run = Running::start(&fast_config(json!([
        {"name": "slow", "url": server.url("/"), "interval": "400ms", "timeout": "2s"}
    ])));
    // The client's overhead on loopback beyond what the server saw: its connect before the
    // server's accept, and its reading after the server's write. A few milliseconds; this leaves
    // room for a loaded machine and is still less than the body delay, so TTFB is not confused
    // with the body's end.
    let slack = 50.0;
    let ms =
        |from: Instant, to: Option<Instant>| to.unwrap().duration_since(from).as_secs_f64() * 1e3;
    for i in 0..3 {
        let p = run
            .wait_for(Duration::from_secs(5), is("probe", "slow"))
            .await
            .expect("probe");
        let ttfb = p["ttfb_ms"].as_f64().unwrap();
        let response = p["response_ms"].as_f64().unwrap();
        let connect = p["connect_ms"].as_f64().unwrap();
        // Probes do not overlap (each takes ~250 ms every 400 ms): the i-th probe is the i-th
        // connection. The server's own instants bound the client's figures: the client started
        // before the server accepted and read the headers (body) after the server began
        // writing them, whatever the server's sleeps really took on a busy machine.
        let e = server.exchanges()[i];
        let headers = ms(e.accepted, e.headers_sent);
        let body = ms(e.accepted, e.body_sent);
        let waited = ms(e.request_read.unwrap(), e.headers_sent);
        assert!(waited >= 150.0, "the server slept {waited} ms");
        // Microsecond rounding of the reported figures.
        let eps = 0.001;
        assert!(
            ttfb + eps >= headers && ttfb <= headers + slack,
            "ttfb {ttfb} ms, the server sent the headers {headers} ms after the accept"
        );
        assert!(
            response + eps >= body && response <= body + slack,
            "response {response} ms, the server sent the body {body} ms after the accept"
        );
        // The connection was set up before the request went out, so before the server's wait.
        assert!(
            connect > 0.0 && connect <= ttfb - waited + eps,
            "connect {connect} ms, ttfb {ttfb} ms, server wait {waited} ms"
        );
        assert_eq!(
            p["dns_ms"],
            serde_json::Value::Null,
            "an IP-literal URL has no DNS phase"
        );
        assert_eq!(p["body_bytes"], 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_within_a_second_with_final_stats() {
    let server = TestServer::start(|_| Reply::ok("x")).await;
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut run = Running::start(&fast_config(json!([
            {"name": "s", "url": server.url("/"), "interval": "100ms"}
        ])));
        run.wait_for(Duration::from_secs(5), is("probe", "s"))
            .await
            .expect("a probe");
        let sent = std::time::Instant::now();
        run.signal(signal);
        let status = run.wait_exit(Duration::from_secs(5)).await.expect("exited");
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{signal}: took {:?}",
            sent.elapsed()
        );
        assert!(status.success(), "{signal}: {status:?}");
        run.drain().await;
        let last = run.events.last().expect("events");
        assert_eq!(
            last["event"], "stats",
            "{signal}: the last line is the final stats"
        );
        assert_eq!(last["final"], true);
        assert!(last["sites"][0]["checks"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_site_skips_ticks_instead_of_piling_up() {
    // Each answer takes 1 s; probes every 100 ms with at most 2 in flight.
    let server =
        TestServer::start(|_| Reply::ok("late").delayed(Duration::from_secs(1), Duration::ZERO))
            .await;
    let fast = TestServer::start(|_| Reply::ok("quick")).await;
    let mut run = Running::start(&fast_config(json!([
        {"name": "slow", "url": server.url("/"), "interval": "100ms", "timeout": "3s", "max_in_flight": 2},
        {"name": "fast", "url": fast.url("/"), "interval": "100ms"}
    ])));
    run.collect_for(Duration::from_millis(2600)).await;
    let stats = run.latest("stats");
    let slow = stats["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "slow")
        .unwrap();
    assert!(slow["skipped_ticks"].as_u64().unwrap() >= 10, "{slow}");
    assert!(
        server.hits() <= 6,
        "at most 2 probes at a time: {} requests",
        server.hits()
    );
    assert!(
        run.of("probe", "fast").len() >= 20,
        "the other site kept its schedule"
    );
}
