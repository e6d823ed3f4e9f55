//! Alert latency: sites go down (the target answers 500) and come back, three times. For every
//! alert, the latency is the time between the arrival of the probe event that crossed the
//! threshold and the arrival of the alert event, both read from the binary's JSON output.

use crate::harness::{Event, Monitor, scratch_dir, sites_config};
use crate::targets::FastTarget;
use crate::{save, sorted, spread};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SITES: usize = 20;
const CYCLES: usize = 3;

pub async fn run() {
    let target = FastTarget::start().await;
    let config = sites_config(
        SITES,
        "1s",
        |i| target.url(i),
        serde_json::json!({"alerting": {"threshold": 0.8, "window": "10s"}}),
    );
    println!("-- alerts: {SITES} sites every 1 s, 10 s alert window, {CYCLES} down/up cycles");
    let mut monitor = Monitor::start(scratch_dir(), &config);
    monitor.wait_started(Duration::from_secs(60));
    let _ = monitor.collect_for(Duration::from_secs(11));
    let mut latencies = Vec::new();
    let mut on_crossing = 0;
    let mut last_probe: HashMap<String, (Instant, bool)> = HashMap::new();
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
                        last_probe.insert(p.site, (line.at, p.ok));
                    }
                    Event::Alert(a) if a.kind == kind => {
                        seen += 1;
                        if let Some((at, ok)) = last_probe.get(&a.site) {
                            latencies.push(line.at.duration_since(*at).as_secs_f64() * 1e6);
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
    let s = spread(&latencies);
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
    save(
        "alerts",
        &serde_json::json!({"alerts": n, "latency_us": s, "fired_on_crossing_probe": on_crossing}),
    );
}
