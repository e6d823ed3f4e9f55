//! Hostile targets: each gets a measurement with the right error kind, in bounded time and memory,
//! and none of them disturbs a healthy site probed by the same process.

use crate::support::binary::Running;
use crate::support::hostile::{Hostile, HostileServer};
use crate::support::server::{Reply, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_get_the_right_error_kinds_without_harming_others() {
    let cases = [
        (Hostile::SlowlorisHeaders, "slowloris", "/", "GET"),
        (Hostile::TrickleBody, "trickle", "/", "GET"),
        (Hostile::EndlessBody, "endless", "/", "GET"),
        (Hostile::HugeBody, "huge", "/", "GET"),
        (Hostile::GzipBomb, "bomb", "/", "GET"),
        (Hostile::RedirectLoop, "loop", "/loop", "GET"),
        (Hostile::LongRedirectChain, "chain", "/r/0", "GET"),
        (Hostile::ResetAfterAccept, "reset", "/", "GET"),
        (Hostile::GarbageHeaders, "garbage", "/", "GET"),
        (Hostile::HeadWithBody, "head", "/", "HEAD"),
    ];
    let mut servers = Vec::new();
    let mut sites = Vec::new();
    for (kind, name, path, method) in cases {
        let server = HostileServer::start(kind).await;
        sites.push(
            json!({"name": name, "url": server.url(path), "method": method,
                          "interval": "500ms", "timeout": "1s"}),
        );
        servers.push(server);
    }
    let healthy = TestServer::start(|_| Reply::ok("fine")).await;
    sites.push(json!({"name": "healthy", "url": healthy.url("/"), "interval": "100ms"}));
    let mut run = Running::start(&json!({
        "sites": sites,
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    }));
    run.collect_for(Duration::from_millis(4500)).await;
    let pid = run.child.id().unwrap();

    let probes =
        |site: &str| -> Vec<Value> { run.of("probe", site).into_iter().cloned().collect() };
    let kinds = |site: &str| -> Vec<String> {
        probes(site)
            .iter()
            .map(|p| p["error"]["kind"].as_str().unwrap_or("ok").to_owned())
            .collect()
    };
    let only = |site: &str, kind: &str| {
        let k = kinds(site);
        assert!(
            k.len() >= 3,
            "{site}: only {} probes in 4.5 s: the schedule stalled",
            k.len()
        );
        assert!(
            k.iter().all(|x| x == kind),
            "{site}: expected every probe to be {kind}, got {k:?}"
        );
    };
    only("slowloris", "timeout");
    only("trickle", "timeout");
    only("loop", "http");
    only("chain", "http");
    // A reset right after accept lands either while the connection is being set up or as the
    // request is sent, depending on timing: both are the right kind.
    let reset = kinds("reset");
    assert!(
        reset.len() >= 3 && reset.iter().all(|k| k == "http" || k == "connect"),
        "reset: {reset:?}"
    );
    only("garbage", "http");
    only("head", "ok");
    for site in ["endless", "huge", "bomb"] {
        only(site, "ok");
        for p in probes(site) {
            assert_eq!(p["body_truncated"], true, "{site}: {p}");
            assert_eq!(
                p["body_bytes"],
                1 << 20,
                "{site}: the read stops at the 1 MiB cap: {p}"
            );
            assert!(p["response_ms"].as_f64().unwrap() < 1000.0, "{site}: {p}");
        }
    }
    assert!(
        probes("loop")[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    assert!(probes("head").iter().all(|p| p["body_bytes"] == 0));
    let slow = &probes("slowloris")[0];
    assert!(
        slow["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before the response headers"),
        "{slow}"
    );

    let healthy_probes = probes("healthy");
    assert!(
        healthy_probes.len() >= 40,
        "the healthy site kept its 100 ms schedule: {}",
        healthy_probes.len()
    );
    assert!(healthy_probes.iter().all(|p| p["ok"] == true));
    let max_lag = healthy_probes
        .iter()
        .map(|p| p["lag_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        max_lag < 50.0,
        "healthy probes started on time (max lag {max_lag} ms)"
    );
    let peak = peak_rss_mib(pid);
    assert!(
        peak < 200,
        "memory stayed bounded against a 1 GiB body and a gzip bomb: peak {peak} MiB"
    );
}
