//! A storm: 1,000 sites go down together. Two notifiers with the default `group_wait` (10 s)
//! receive them on a local HTTP receiver: a webhook (no rate limit) and a Slack webhook (one
//! message a second). Figures: how many messages each got, and for each alert the time from
//! its alert event (in the binary's JSON output) to the webhook message that carried it; the
//! target is every alert within `group_wait` plus a second.

use crate::harness::{Event, Monitor, scratch_dir, sites_config};
use crate::targets::FastTarget;
use crate::{save, sorted, spread};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SITES: usize = 1_000;
const GROUP_WAIT: Duration = Duration::from_secs(10);

/// One request the receiver got: when, its path, its body.
type Got = (Instant, String, Vec<u8>);

/// A minimal HTTP/1.1 receiver: reads the head and a `Content-Length` body, answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    sink.lock().unwrap().push((Instant::now(), path, body));
                    buf.drain(..end + 4 + len);
                    let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, got)
}

pub async fn run() {
    let storm = storm().await;
    let behind = behind_parents().await;
    let evaluation = dependency_cost();
    save(
        "notify",
        &serde_json::json!({"storm": storm, "behind_parents": behind, "dependency_cost": evaluation}),
    );
}

/// How many sites sit behind the parents.
const CHILDREN: usize = 1_000;
const PARENTS: usize = 10;

/// The storm behind dependencies (issue 30): 1,000 sites behind 10 parents, all down at once.
/// Figures: the down alerts decided, held, and carried by the webhook (goal: at most 10).
async fn behind_parents() -> serde_json::Value {
    let target = FastTarget::start().await;
    let (base, got) = receiver().await;
    let mut config = sites_config(
        PARENTS + CHILDREN,
        "1s",
        |i| target.url(i),
        serde_json::json!({
            "alerting": {"window": "5s"},
            "notify": [{"name": "hook", "type": "webhook", "url": format!("{base}/hook"),
                        "group_wait": "2s"}],
        }),
    );
    for i in PARENTS..PARENTS + CHILDREN {
        config["sites"][i]["depends_on"] = serde_json::json!([format!("s{}", i % PARENTS)]);
    }
    println!(
        "-- notify: {CHILDREN} sites behind {PARENTS} parents (depends_on), every 1 s, go down together"
    );
    let mut monitor = Monitor::start(scratch_dir(), &config);
    monitor.wait_started(Duration::from_secs(60));
    let _ = monitor.collect_for(Duration::from_secs(7));
    target.set_status(500);
    let (mut downs, mut held) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while downs < PARENTS + CHILDREN && Instant::now() < deadline {
        if let Some(line) = monitor.next(Duration::from_secs(1))
            && let Event::Alert(a) = line.event
            && a.kind == "down"
        {
            downs += 1;
            held += usize::from(a.held.is_some());
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    monitor.stop();
    let requests = got.lock().unwrap().clone();
    let mut notified = 0;
    for (_, path, body) in &requests {
        if path == "/hook" {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            notified += v["alerts"].as_array().map_or(0, Vec::len);
        }
    }
    println!(
        "\n== notify: {CHILDREN} sites behind {PARENTS} parents down together: {downs} down alerts decided, {held} held, {notified} notified in {} webhook messages (goal: at most {PARENTS} notified)",
        requests.len()
    );
    serde_json::json!({"downs": downs, "held": held, "notified": notified,
                       "messages": requests.len()})
}

/// The recorder's dependency evaluation per probe, at 10,000 sites: 1,000 parents, each with 9
/// children, two levels (goal: under 1 µs a probe).
fn dependency_cost() -> serde_json::Value {
    use sitewatch::recorder::Recorder;
    const SITES: usize = 10_000;
    let sites: Vec<serde_json::Value> = (0..SITES)
        .map(|i| {
            let mut s = serde_json::json!({"name": format!("s{i}"),
                "url": format!("http://127.0.0.1:1/{i}"), "interval": "10s"});
            if i >= 1_000 {
                s["depends_on"] = serde_json::json!([format!("s{}", i % 1_000)]);
            }
            s
        })
        .collect();
    let flat: Vec<serde_json::Value> = sites
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("depends_on");
            s
        })
        .collect();
    let per_probe = |sites: Vec<serde_json::Value>| {
        let text = serde_json::json!({"sites": sites}).to_string();
        let config =
            sitewatch::config::Config::parse(std::path::Path::new("bench.json"), text.as_bytes())
                .unwrap();
        let clock: sitewatch::clock::SharedClock =
            Arc::new(sitewatch::clock::SystemClock::default());
        let bus = sitewatch::event::Bus::new(Arc::clone(&clock));
        let mut r = Recorder::new(&config, Arc::clone(&clock), bus, None);
        let targets: Vec<sitewatch::target::ProbeTarget> = config
            .sites
            .iter()
            .cloned()
            .map(sitewatch::target::ProbeTarget::new)
            .collect();
        r.set_sites(&targets);
        let t0 = clock.now();
        let rounds = 20;
        let started = Instant::now();
        for round in 0..rounds {
            for (i, t) in targets.iter().enumerate() {
                let mut m = sitewatch::measurement::testing::at(
                    &t.name,
                    t0 + chrono::TimeDelta::seconds(round * 10),
                    !(i + round as usize).is_multiple_of(7),
                );
                m.url = Arc::clone(&t.url);
                r.record(m);
            }
        }
        started.elapsed().as_secs_f64() * 1e6 / (rounds as usize * SITES) as f64
    };
    let with = per_probe(sites);
    let without = per_probe(flat);
    println!(
        "\n== notify: recording a probe at {SITES} sites, 9,000 of them behind 1,000 parents: {with:.2} µs, without dependencies {without:.2} µs: the evaluation costs {:.2} µs a probe (goal < 1 µs)",
        with - without
    );
    serde_json::json!({"with_us": with, "without_us": without, "evaluation_us": with - without})
}

async fn storm() -> serde_json::Value {
    let target = FastTarget::start().await;
    let (base, got) = receiver().await;
    let config = sites_config(
        SITES,
        "1s",
        |i| target.url(i),
        serde_json::json!({
            "alerting": {"window": "5s"},
            "notify": [
                {"name": "hook", "type": "webhook", "url": format!("{base}/hook")},
                {"name": "chat", "type": "slack", "url_env": "SITEWATCH_BENCH_SLACK"},
            ]
        }),
    );
    println!(
        "-- notify: {SITES} sites every 1 s go down together; a webhook and a Slack notifier, group_wait 10 s"
    );
    let slack = format!("{base}/slack/T/B/x");
    let mut monitor =
        Monitor::start_with_env(scratch_dir(), &config, &[("SITEWATCH_BENCH_SLACK", &slack)]);
    monitor.wait_started(Duration::from_secs(60));
    let _ = monitor.collect_for(Duration::from_secs(7));
    target.set_status(500);
    let mut alerted: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerted.len() < SITES && Instant::now() < deadline {
        if let Some(line) = monitor.next(Duration::from_secs(1))
            && let Event::Alert(a) = line.event
            && a.kind == "down"
        {
            alerted.entry(a.site).or_insert(line.at);
        }
    }
    assert_eq!(alerted.len(), SITES, "every site goes down");
    // Wait for the webhook to carry every alert.
    let deadline = Instant::now() + GROUP_WAIT * 4;
    let mut delivered: HashMap<String, Instant> = HashMap::new();
    while Instant::now() < deadline {
        delivered.clear();
        for (at, path, body) in got.lock().unwrap().iter() {
            if path != "/hook" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            for a in v["alerts"].as_array().unwrap() {
                delivered
                    .entry(a["site"].as_str().unwrap().to_owned())
                    .or_insert(*at);
            }
        }
        if delivered.len() >= SITES {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    monitor.stop();
    let requests = got.lock().unwrap().clone();
    let hook_messages = requests.iter().filter(|r| r.1 == "/hook").count();
    let chat: Vec<&Got> = requests
        .iter()
        .filter(|r| r.1.starts_with("/slack"))
        .collect();
    let chat_gaps: Vec<f64> = chat
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64())
        .collect();
    let first = alerted.values().min().copied().unwrap();
    let last = alerted.values().max().copied().unwrap();
    let latencies: Vec<f64> = alerted
        .iter()
        .filter_map(|(site, at)| Some(delivered.get(site)?.duration_since(*at).as_secs_f64()))
        .collect();
    let within = latencies
        .iter()
        .filter(|l| **l <= (GROUP_WAIT + Duration::from_secs(1)).as_secs_f64())
        .count();
    let latencies = sorted(latencies);
    let s = spread(&latencies);
    println!(
        "\n== notify: a storm of {SITES} down alerts (decided over {:.1} s)",
        last.duration_since(first).as_secs_f64()
    );
    println!(
        "  webhook: {hook_messages} messages carried {} of {SITES} alerts; alert event to message p50 {:.2} s, p99 {:.2} s, max {:.2} s; {within} within group_wait + 1 s",
        delivered.len(),
        s["p50"].as_f64().unwrap_or(f64::NAN),
        s["p99"].as_f64().unwrap_or(f64::NAN),
        s["max"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "  slack:   {} messages, least gap between two {:.2} s (rate limit 1/s)",
        chat.len(),
        chat_gaps.iter().copied().fold(f64::INFINITY, f64::min)
    );
    serde_json::json!({
            "sites": SITES,
            "storm_s": last.duration_since(first).as_secs_f64(),
            "webhook_messages": hook_messages,
            "webhook_alerts": delivered.len(),
            "latency_s": s,
            "within_group_wait_plus_1s": within,
            "slack_messages": chat.len(),
            "slack_min_gap_s": chat_gaps.iter().copied().fold(f64::INFINITY, f64::min),
    })
}
