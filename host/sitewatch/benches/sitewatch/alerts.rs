//! Alert latency: sites go down (the target answers 500) and come back, three times. For every
//! alert, the latency is the time between the arrival of the probe event that crossed the
//! threshold and the arrival of the alert event, both read from the binary's JSON output. A
//! second run makes the probes of each site overlap (every third answer waits 450 ms, probes
//! every 200 ms), so measurements wait for earlier-started probes to be placed in end order:
//! there the latency is from the crossing probe's end to the alert event.

use crate::harness::{Event, Monitor, scratch_dir, sites_config};
use crate::targets::FastTarget;
use crate::{save, sorted, spread};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SITES: usize = 20;
const CYCLES: usize = 3;

pub async fn run() {
    let (n, s, on_crossing) = cycles(false).await;
    let (n2, s2, _) = cycles(true).await;
    println!("\n== alerts: crossing measurement to alert event (as read from the JSON output)");
    println!(
        "  {} alerts, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} of {} fired on the probe whose result crossed",
        n,
        s["p50"].as_f64().unwrap_or(f64::NAN),
        s["p99"].as_f64().unwrap_or(f64::NAN),
        s["max"].as_f64().unwrap_or(f64::NAN),
        on_crossing,
        n
    );
    println!(
        "  overlapping probes (every 200 ms, every third answer 450 ms late): {} alerts, from the crossing probe's end p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (bounded by a timeout)",
        n2,
        s2["p50"].as_f64().unwrap_or(f64::NAN) / 1e3,
        s2["p99"].as_f64().unwrap_or(f64::NAN) / 1e3,
        s2["max"].as_f64().unwrap_or(f64::NAN) / 1e3,
    );
    save(
        "alerts",
        &serde_json::json!({"alerts": n, "latency_us": s, "fired_on_crossing_probe": on_crossing,
                            "overlapping": {"alerts": n2, "from_crossing_end_us": s2}}),
    );
}

/// Three down/up cycles; with `overlap`, probes every 200 ms against answers of which every
/// third waits 450 ms, and the latency taken from the crossing probe's end.
async fn cycles(overlap: bool) -> (usize, serde_json::Value, usize) {
    let target = FastTarget::start().await;
    if overlap {
        target.set_slow_every_third(Duration::from_millis(450));
    }
    let (interval, window) = if overlap {
        ("200ms", "2s")
    } else {
        ("1s", "10s")
    };
    let config = sites_config(
        SITES,
        interval,
        |i| target.url(i),
        serde_json::json!({"alerting": {"threshold": 0.8, "window": window}}),
    );
    println!(
        "-- alerts: {SITES} sites every {interval}, {window} alert window, {CYCLES} down/up cycles{}",
        if overlap { ", overlapping probes" } else { "" }
    );
    let mut monitor = Monitor::start(scratch_dir(), &config);
    monitor.wait_started(Duration::from_secs(60));
    let _ = monitor.collect_for(Duration::from_secs(11));
    let mut latencies = Vec::new();
    let mut on_crossing = 0;
    let mut last_probe: HashMap<String, (Instant, bool, Option<chrono::DateTime<chrono::Utc>>)> =
        HashMap::new();
    for _ in 0..CYCLES {
        for (status, kind) in [(500, "down"), (200, "recovered")] {
            target.set_status(status);
            let mut seen = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen < SITES && Instant::now() < deadline {
                let Some(line) = monitor.next(Duration::from_secs(1)) else {
                    continue;
                };
                match line.event {
                    Event::Probe(p) => {
                        let ended = p.ended();
                        last_probe.insert(p.site, (line.at, p.ok, ended));
                    }
                    Event::Alert(a) if a.kind == kind => {
                        seen += 1;
                        if let Some((at, ok, ended)) = last_probe.get(&a.site) {
                            let latency = match (overlap, ended) {
                                (true, Some(end)) => (line.wall - *end)
                                    .to_std()
                                    .unwrap_or_default()
                                    .as_secs_f64(),
                                _ => line.at.duration_since(*at).as_secs_f64(),
                            };
                            latencies.push(latency * 1e6);
                            on_crossing += usize::from(ok == &(kind == "recovered"));
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(seen, SITES, "every site raises a `{kind}` alert");
        }
    }
    monitor.stop();
    let n = latencies.len();
    let latencies = sorted(latencies);
    (n, spread(&latencies), on_crossing)
}
