//! The cluster: three nodes (two in location a, one in b) on a 3-server NATS JetStream cluster,
//! 10,000 sites every 10 s probed from both locations (2,000 probes a second in all), against
//! the local fast target. Measured: each node's CPU and RSS in the steady state beside one
//! sitewatch probing a node's share alone; what publishing a probe to JetStream costs (in
//! process, pipelined as the node does it); the time from the probe that makes a site down to
//! the leader's alert event; and the failover after the leader is SIGKILLed (the new lease, and
//! the gap in the probes of the dead node's sites).
//!
//! `SITEWATCH_BENCH_CLUSTER_SITES` sets the number of sites.

use crate::harness::{Event, Monitor, scratch_dir, sites_config};
use crate::targets::FastTarget;
use crate::{run_length, save, sorted, spread};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub async fn run() {
    if xtask::nats::binary().is_none() {
        println!(
            "\n== cluster: skipped, nats-server is not installed (apt-get install nats-server)"
        );
        return;
    }
    let sites: usize = std::env::var("SITEWATCH_BENCH_CLUSTER_SITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let length = run_length(Duration::from_secs(30));
    let target = FastTarget::start().await;
    let nats_dir = scratch_dir();
    let nats = xtask::nats::NatsServers::start(nats_dir.path(), 3, None).unwrap();
    tokio::task::block_in_place(|| nats.wait_all_healthy(Duration::from_secs(30))).unwrap();
    println!("\n== cluster: {sites} sites every 10 s from 2 locations, 3 nodes, 3 NATS servers");

    let publish = publish_cost(&nats.urls()).await;

    let solo = tokio::task::block_in_place(|| solo(&target, sites / 2, length));

    let cluster = serde_json::json!({
        "nats": nats.urls(), "confirm": 2, "heartbeat_ttl": "5s", "lease_ttl": "10s",
    });
    let config = sites_config(
        sites,
        "10s",
        |i| target.url(i),
        serde_json::json!({"cluster": cluster, "alerting": {"window": "1m"}}),
    );
    let node = |name: &str, location: &str, source: &str, read: bool| {
        Monitor::start_args(
            scratch_dir(),
            &config,
            read,
            &[
                "--node",
                name,
                "--location",
                location,
                "--source-address",
                source,
            ],
        )
    };
    // a1 first: it leads (its output is read for the alerts); then the others.
    let leader = node("a1", "a", "127.0.0.2", true);
    let url = nats.urls()[0].clone();
    wait_leader(&url, |v| v.starts_with("a1 "), Duration::from_secs(60))
        .await
        .expect("a1 leads");
    let mut nodes = [
        leader,
        node("a2", "a", "127.0.0.3", false),
        node("b1", "b", "127.0.0.4", false),
    ];
    // Every node probing, every site placed, the first interval behind.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let cpu0: Vec<_> = nodes.iter().map(Monitor::cpu_time).collect();
    let (from, t0) = (chrono::Utc::now(), Instant::now());
    // The leader's output is read meanwhile: it must not back up.
    let end = Instant::now() + length;
    tokio::task::block_in_place(|| {
        while Instant::now() < end {
            nodes[0].next(Duration::from_millis(100));
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let to = chrono::Utc::now();
    let mut rows = Vec::new();
    for (i, (n, name)) in nodes.iter().zip(["a1", "a2", "b1"]).enumerate() {
        let cpu = (n.cpu_time() - cpu0[i]).as_secs_f64();
        let probes = n.probes_in_store(from, to).len() as f64;
        let (rss, peak) = n.rss_kb();
        rows.push(serde_json::json!({
            "node": name,
            "own_probes_per_s": probes / elapsed,
            "cpu_cores": cpu / elapsed,
            "cpu_s_per_1000_own_probes": cpu / probes.max(1.0) * 1000.0,
            "rss_mb": rss as f64 / 1024.0,
            "peak_rss_mb": peak as f64 / 1024.0,
        }));
    }

    // The crossing: every site down from both locations at once; the leader alerts each one.
    let flipped = chrono::Utc::now();
    target.set_status(503);
    let latency = tokio::task::block_in_place(|| alert_latencies(&nodes[0], sites));
    target.set_status(200);

    // Failover: SIGKILL the leader. The lease moves when it expires; a1's sites move to a2 when
    // a1's heartbeat expires.
    let a1_sites = nodes[0].sites_probed(from, to);
    let killed = chrono::Utc::now();
    // a1's last probe of each site before the kill (the store is read after it dies).
    let probed_last = |n: &Monitor| n.last_probes_before(killed);
    let t_kill = Instant::now();
    nodes[0].kill();
    let new_leader = wait_leader(&url, |v| !v.starts_with("a1 "), Duration::from_secs(60)).await;
    let takeover = t_kill.elapsed();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let firsts = nodes[1].first_probes_since(killed);
    let lasts = probed_last(&nodes[0]);
    // Between a1's last probe of a site and a2's first: 10 s when nothing is lost.
    let gaps = sorted(
        a1_sites
            .iter()
            .filter_map(|s| Some((*firsts.get(s)? - *lasts.get(s)?).as_seconds_f64()))
            .collect(),
    );
    let moved = gaps.len();
    for n in nodes.iter_mut().skip(1) {
        n.stop();
    }
    drop(nats);

    println!(
        "  publish to JetStream (R3, in process, batches of 512): {:.1} µs CPU a probe, {:.0} probes/s",
        publish["cpu_us_per_probe"].as_f64().unwrap(),
        publish["per_s"].as_f64().unwrap()
    );
    println!(
        "  one sitewatch alone with {} sites (a node's share): {:.3} cores, {:.3} s CPU per 1,000 probes, RSS {:.0} MB",
        sites / 2,
        solo["cpu_cores"].as_f64().unwrap(),
        solo["cpu_s_per_1000_probes"].as_f64().unwrap(),
        solo["rss_mb"].as_f64().unwrap()
    );
    println!(
        "  {:<6} {:>12} {:>8} {:>16} {:>8} {:>9}",
        "node", "own probes/s", "cores", "CPU/1k own", "RSS MB", "peak MB"
    );
    for r in &rows {
        println!(
            "  {:<6} {:>12.0} {:>8.3} {:>15.3}s {:>8.0} {:>9.0}",
            r["node"].as_str().unwrap(),
            r["own_probes_per_s"].as_f64().unwrap(),
            r["cpu_cores"].as_f64().unwrap(),
            r["cpu_s_per_1000_own_probes"].as_f64().unwrap(),
            r["rss_mb"].as_f64().unwrap(),
            r["peak_rss_mb"].as_f64().unwrap(),
        );
    }
    println!(
        "  crossing probe to the leader's alert: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} sites ({} alerts seen {:.1} s after the flip)",
        latency["ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        latency["ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        latency["ms"]["max"].as_f64().unwrap_or(f64::NAN),
        latency["ms"]["n"],
        latency["alerts"],
        (chrono::Utc::now() - flipped)
            .as_seconds_f64()
            .min(latency["last_alert_s"].as_f64().unwrap_or(f64::NAN)),
    );
    println!(
        "  failover: new lease {} after SIGKILL ({:.2} s; lease TTL 10 s); {moved} of a1's {} sites probed by a2, {:.2} s p50, {:.2} s max between a1's last probe and a2's first (interval 10 s, heartbeat TTL 5 s)",
        new_leader.as_deref().unwrap_or("none"),
        takeover.as_secs_f64(),
        a1_sites.len(),
        crate::percentile(&gaps, 0.5),
        gaps.last().copied().unwrap_or(f64::NAN),
    );
    save(
        "cluster",
        &serde_json::json!({
            "sites": sites,
            "publish": publish,
            "solo": solo,
            "nodes": rows,
            "alert_latency": latency,
            "failover": {
                "takeover_s": takeover.as_secs_f64(),
                "new_leader": new_leader,
                "site_gap_s": spread(&gaps),
                "sites_moved": moved,
                "sites_of_a1": a1_sites.len(),
            },
        }),
    );
}

/// The leader key's value once `pred` holds for it.
async fn wait_leader(url: &str, pred: impl Fn(&str) -> bool, within: Duration) -> Option<String> {
    let client = async_nats::connect(url).await.ok()?;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(kv) = js.get_key_value("sitewatch_leader").await
            && let Ok(Some(v)) = kv.get("leader").await
        {
            let v = String::from_utf8_lossy(&v).into_owned();
            if pred(&v) {
                return Some(v);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// CPU and rate of publishing probes to an R3 stream from this process, pipelined in batches
/// of 512 (all sent, then all acknowledgements awaited), as a node's publisher does.
async fn publish_cost(urls: &[String]) -> serde_json::Value {
    use async_nats::jetstream::{self, stream};
    let client = async_nats::connect(urls[0].as_str()).await.unwrap();
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(10_000)
        .backpressure_on_inflight(true)
        .build(client);
    js.get_or_create_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let m = sitewatch::measurement::Measurement {
        domain_expiry: None,
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
        site: "site-1234".into(),
        url: "http://127.0.0.1/site/1234".into(),
        time: chrono::Utc::now(),
        ok: true,
        status: Some(200),
        ttfb: Some(Duration::from_micros(812)),
        response_time: Some(Duration::from_micros(901)),
        body_bytes: 3,
        body_truncated: false,
        phases: Default::default(),
        error: None,
        duration: Duration::from_micros(901),
        ended_us: 0,
        generation: 0,
        schedule_lag: Duration::ZERO,
        metrics: Vec::new(),
        tls: None,
        maintenance: false,
    };
    let sample = sitewatch::measurement::sample::Sample::of(&m, "a1", "a");
    let n = 50_000;
    let cpu0 = self_cpu();
    let t = Instant::now();
    for batch in 0..n / 512 {
        let mut acks = Vec::with_capacity(512);
        for i in 0..512 {
            let id = format!("bench:{batch}:{i}");
            let msg = async_nats::jetstream::message::PublishMessage::build()
                .payload(sample.encode().into())
                .message_id(id);
            acks.push(
                js.send_publish(format!("bench.a.{}", i % 64), msg)
                    .await
                    .unwrap(),
            );
        }
        for a in acks {
            a.await.unwrap();
        }
    }
    let sent = (n / 512 * 512) as f64;
    let wall = t.elapsed().as_secs_f64();
    let cpu = (self_cpu() - cpu0).as_secs_f64();
    serde_json::json!({
        "probes": sent,
        "bytes_per_probe": sample.encode().len(),
        "per_s": sent / wall,
        "cpu_us_per_probe": cpu / sent * 1e6,
    })
}

/// This process's CPU time (user + system).
fn self_cpu() -> Duration {
    crate::harness::cpu_time(std::process::id())
}

/// One sitewatch without a cluster probing `sites` sites every 10 s: the baseline of a node.
fn solo(target: &FastTarget, sites: usize, length: Duration) -> serde_json::Value {
    let config = sites_config(sites, "10s", |i| target.url(i), serde_json::json!({}));
    let monitor = Monitor::start_quiet(scratch_dir(), &config);
    monitor.wait_probing(chrono::Utc::now(), Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(12));
    let cpu0 = monitor.cpu_time();
    let (from, t0) = (chrono::Utc::now(), Instant::now());
    std::thread::sleep(length);
    let cpu = (monitor.cpu_time() - cpu0).as_secs_f64();
    let elapsed = t0.elapsed().as_secs_f64();
    let probes = monitor.probes_in_store(from, chrono::Utc::now()).len() as f64;
    let (rss, _) = monitor.rss_kb();
    let mut monitor = monitor;
    monitor.stop();
    serde_json::json!({
        "sites": sites,
        "probes_per_s": probes / elapsed,
        "cpu_cores": cpu / elapsed,
        "cpu_s_per_1000_probes": cpu / probes.max(1.0) * 1000.0,
        "rss_mb": rss as f64 / 1024.0,
    })
}

/// Reads the leader's events until every site is down (or 120 s pass): for each alert, the
/// time from the end of the site's probe just before it (the probe whose evaluation decided
/// it) to the alert event's arrival here.
fn alert_latencies(leader: &Monitor, sites: usize) -> serde_json::Value {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    let mut last_probe: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut ms = Vec::new();
    let mut alerts = 0;
    let mut last_alert = Duration::ZERO;
    while alerts < sites && Instant::now() < deadline {
        let Some(line) = leader.next(Duration::from_millis(500)) else {
            continue;
        };
        match line.event {
            Event::Probe(p) => {
                if let Some(end) = p.ended() {
                    last_probe.insert(p.site, end);
                }
            }
            Event::Alert(a) if a.kind == "down" => {
                alerts += 1;
                last_alert = start.elapsed();
                let now = chrono::Utc::now();
                if let Some(end) = last_probe.get(&a.site) {
                    ms.push((now - *end).as_seconds_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }
    serde_json::json!({
        "alerts": alerts,
        "last_alert_s": last_alert.as_secs_f64(),
        "ms": spread(&sorted(ms)),
    })
}
