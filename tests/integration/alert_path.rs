//! End-to-end tests of the alert path through the real binary: restarts after a gap, failures
//! placed when they end, check failures counted as such, reports that are not live views, and
//! overload (a cap on probes in flight, and the monitor's own descriptor exhaustion) never
//! counted against a site.

use crate::support::binary::{BIN, Running, alert, cli_ok, is};
use crate::support::server::{Reply, TestServer};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_gap_waits_for_a_whole_window_of_new_probes() {
    let status = Arc::new(AtomicU16::new(200));
    let s = Arc::clone(&status);
    let server = TestServer::start(move |_| Reply::status(s.load(Ordering::SeqCst))).await;
    let config = json!({
        "sites": [{"name": "web", "url": server.url("/"), "interval": "100ms", "timeout": "300ms"}],
        "alerting": {"window": "2s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_millis(2500)).await;
    assert!(run.of("alert", "web").is_empty());
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    let dir = run.dir;

    // Stopped for longer than the alert window; back with the site failing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    status.store(500, Ordering::SeqCst);
    let args = ["--output", "json", "--config", "config.json"];
    let mut run = Running::start_in(dir, &args);
    let first = run
        .wait_for(Duration::from_secs(10), is("probe", "web"))
        .await
        .expect("a probe after the restart");
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "web"))
        .await
        .expect("the outage is reported once the window is covered again");
    let covered = time(&down["time"]) - time(&first["time"]);
    assert!(
        covered >= chrono::TimeDelta::milliseconds(1900),
        "fired {covered} after the first new probe, on a window of old probes and a gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_placed_when_it_ended() {
    let server =
        TestServer::start(|_| Reply::ok("late").delayed(Duration::from_secs(30), Duration::ZERO))
            .await;
    let mut run = Running::start(&json!({
        "sites": [{"name": "slow", "url": server.url("/"), "interval": "200ms", "timeout": "700ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    }));
    let probe = run
        .wait_for(Duration::from_secs(10), is("probe", "slow"))
        .await
        .expect("a probe");
    assert_eq!(probe["error"]["kind"], "timeout");
    let took = probe["duration_ms"].as_f64().unwrap();
    assert!((700.0..1500.0).contains(&took), "duration {took} ms");
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "slow"))
        .await
        .expect("down");
    // The alert is timed at the end of the probe that crossed, not a whole timeout earlier.
    let probes = run.of("probe", "slow");
    let last = probes.last().unwrap();
    let last_end = time(&last["time"])
        + chrono::TimeDelta::microseconds((last["duration_ms"].as_f64().unwrap() * 1000.0) as i64);
    let diff = (time(&down["time"]) - last_end).abs();
    assert!(
        diff <= chrono::TimeDelta::milliseconds(1),
        "alert at {}, last probe ended {last_end}",
        down["time"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_counts_under_check_and_names_itself() {
    let server = TestServer::start(|_| Reply::ok("all is well")).await;
    let mut run = Running::start(&json!({
        "sites": [{"name": "checked", "url": server.url("/"), "interval": "100ms",
                   "checks": [{"plugin": "keyword", "config": {"contains": "MISSING-WORD"}}]}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "plugins": {"dir": crate::support::plugins::examples_dir()}
    }));
    let stats = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "stats" && v["sites"][0]["checks"].as_u64().unwrap_or(0) >= 3
        })
        .await
        .expect("stats");
    let site = &stats["sites"][0];
    let codes = site["status_codes"].as_object().unwrap();
    assert!(codes.contains_key("check"), "{codes:?}");
    assert!(
        !codes.contains_key("200"),
        "a rejected response is not a 200: {codes:?}"
    );
    let why = site["last_error"].as_str().unwrap();
    assert!(why.starts_with("check: keyword"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_not_a_live_view_and_uses_the_configured_threshold() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let config = json!({
        "sites": [{"name": "r", "url": server.url("/"), "interval": "100ms"}],
        "alerting": {"threshold": 0.25},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_millis(1200)).await;
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    let dir = run.dir.path();
    let data = dir.join("sitewatch-data");
    let config_path = dir.join("config.json");
    let args = |output: &'static str| {
        vec![
            "report".to_owned(),
            "--since".into(),
            "1h".into(),
            "--output".into(),
            output.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--config".into(),
            config_path.display().to_string(),
        ]
    };
    let text = cli_ok(&args("plain").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.starts_with("== report: the 1h until "), "{text}");
    assert!(!text.contains("refreshed"), "{text}");
    let json: Value = serde_json::from_str(
        cli_ok(&args("json").iter().map(String::as_str).collect::<Vec<_>>()).trim(),
    )
    .unwrap();
    assert_eq!(json["every_s"], Value::Null);
    assert_eq!(json["threshold"], 0.25);
}

/// 40 sites whose server never answers, 5 probes allowed in flight: sitewatch is overloaded.
fn hanging_sites(server: &TestServer, max_in_flight: Option<u32>) -> Value {
    let sites: Vec<Value> = (0..40)
        .map(|i| json!({"name": format!("h{i}"), "url": server.url(&format!("/{i}")), "interval": "200ms", "timeout": "10s"}))
        .collect();
    let mut config = json!({
        "sites": sites,
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    });
    if let Some(n) = max_in_flight {
        config["probing"] = json!({"max_in_flight": n});
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_cap_on_probes_in_flight_ticks_are_skipped_not_sites_marked_down() {
    let server =
        TestServer::start(|_| Reply::ok("late").delayed(Duration::from_secs(60), Duration::ZERO))
            .await;
    let mut run = Running::start(&hanging_sites(&server, Some(5)));
    let started = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "overload" && v["state"] == "started"
        })
        .await
        .expect("one overload event");
    assert!(
        started["detail"]
            .as_str()
            .unwrap()
            .contains("5 probes in flight"),
        "{started}"
    );
    let stats = run
        .wait_for(Duration::from_secs(10), |v| v["event"] == "stats")
        .await
        .expect("stats");
    assert_eq!(stats["overloaded"], true);
    assert!(stats["skipped_overload"].as_u64().unwrap() > 0);
    run.collect_for(Duration::from_secs(2)).await;
    let overloads = run
        .events
        .iter()
        .filter(|e| e["event"] == "overload")
        .count();
    assert_eq!(overloads, 1, "one event per episode");
    // No probe has timed out yet (10 s): nothing may count against any site, no alert.
    assert!(run.events.iter().all(|e| e["event"] != "alert"));
    assert!(
        run.events
            .iter()
            .filter(|e| e["event"] == "probe")
            .all(|e| e["error"]["kind"] != "connect")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_the_monitors_failure_not_the_sites() {
    let server =
        TestServer::start(|_| Reply::ok("late").delayed(Duration::from_secs(60), Duration::ZERO))
            .await;
    // 64 descriptors and a cap of 200: connections run out of descriptors first.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        hanging_sites(&server, Some(200)).to_string(),
    )
    .unwrap();
    let mut child = tokio::process::Command::new("prlimit")
        .args(["--nofile=64", "--", BIN, "--output", "json", "--config"])
        .arg(dir.path().join("config.json"))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit (util-linux) runs sitewatch");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        events.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let overload = events
        .iter()
        .find(|e| e["event"] == "overload")
        .unwrap_or_else(|| panic!("no overload event in {events:?}"));
    assert!(
        overload["detail"]
            .as_str()
            .unwrap()
            .contains("sitewatch could not probe"),
        "{overload}"
    );
    for e in &events {
        assert_ne!(
            e["event"], "alert",
            "a false alert caused by the monitor: {e}"
        );
        if e["event"] == "probe" {
            let message = e["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains("Too many open files"), "{e}");
        }
    }
}
