//! Accuracy: a target that sends its headers 50 ms after the request and its body 100 ms after
//! that. The error of each measured TTFB and response time is the measurement minus the known
//! delay; curl's `time_starttransfer` and `time_total`, taken at the same rate, are the reference.

use crate::harness::{Event, Monitor, ensure_installed, scratch_dir, sites_config};
use crate::targets::DelayedTarget;
use crate::{percentile, run_length, save, sorted};
use std::time::Duration;

const HEADER_DELAY_MS: f64 = 50.0;
const BODY_DELAY_MS: f64 = 100.0;
/// 20 sites every second: moderate load, about three probes in flight at a time.
const SITES: usize = 20;

pub async fn run() {
    let length = run_length(Duration::from_secs(30));
    let target = DelayedTarget::start(
        Duration::from_secs_f64(HEADER_DELAY_MS / 1e3),
        Duration::from_secs_f64(BODY_DELAY_MS / 1e3),
    );
    println!(
        "-- accuracy: {SITES} sites every 1 s for {} s",
        length.as_secs()
    );
    let url = target.url();
    let (ttfb, response) = tokio::task::spawn_blocking(move || sitewatch_errors(&url, length))
        .await
        .unwrap();
    let server = std::mem::take(&mut *target.actual.lock().unwrap());
    let curl = if ensure_installed("curl", "curl") {
        Some(curl_errors(&target.url(), length).await)
    } else {
        None
    };

    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("sitewatch TTFB - 50 ms", ttfb),
        ("sitewatch response time - 150 ms", response),
    ];
    if let Some((t, total)) = curl {
        rows.push(("curl time_starttransfer - 50 ms", t));
        rows.push(("curl time_total - 150 ms", total));
    }
    rows.push((
        "server's own header delay - 50 ms",
        server.iter().map(|d| d.0 - HEADER_DELAY_MS).collect(),
    ));
    rows.push((
        "server's own body delay - 100 ms",
        server.iter().map(|d| d.1 - BODY_DELAY_MS).collect(),
    ));
    rows.push((
        "server: accept to headers sent - 50 ms",
        server.iter().map(|d| d.2 - HEADER_DELAY_MS).collect(),
    ));
    println!("\n== accuracy: measured minus known delay, loopback");
    println!(
        "  {:<36} {:>7} {:>9} {:>9} {:>9}",
        "", "n", "p50", "p99", "max"
    );
    let mut json = serde_json::Map::new();
    for (name, errors) in rows {
        let errors = sorted(errors);
        let (p50, p99, max) = (
            percentile(&errors, 0.5),
            percentile(&errors, 0.99),
            errors.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "  {:<36} {:>7} {:>7.3}ms {:>7.3}ms {:>7.3}ms",
            name,
            errors.len(),
            p50,
            p99,
            max
        );
        json.insert(
            name.into(),
            serde_json::json!({"n": errors.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
        );
    }
    save("accuracy", &serde_json::Value::Object(json));
}

/// sitewatch's (TTFB error, response-time error) samples, in ms.
fn sitewatch_errors(url: &str, length: Duration) -> (Vec<f64>, Vec<f64>) {
    let config = sites_config(SITES, "1s", |i| format!("{url}/{i}"), serde_json::json!({}));
    let mut monitor = Monitor::start(scratch_dir(), &config);
    monitor.wait_started(Duration::from_secs(60));
    let _ = monitor.collect_for(Duration::from_secs(2));
    let (mut ttfb, mut response) = (Vec::new(), Vec::new());
    for line in monitor.collect_for(length) {
        if let Event::Probe(p) = line.event
            && let (Some(t), Some(r)) = (p.ttfb_ms, p.response_ms)
        {
            ttfb.push(t - HEADER_DELAY_MS);
            response.push(r - HEADER_DELAY_MS - BODY_DELAY_MS);
        }
    }
    monitor.stop();
    (ttfb, response)
}

/// curl's (time_starttransfer error, time_total error) samples at the same rate, in ms.
async fn curl_errors(url: &str, length: Duration) -> (Vec<f64>, Vec<f64>) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / SITES as f64));
    let mut tasks = tokio::task::JoinSet::new();
    let end = tokio::time::Instant::now() + length;
    let mut i = 0;
    while tokio::time::Instant::now() < end {
        ticker.tick().await;
        let url = format!("{url}/{}", i % SITES);
        i += 1;
        tasks.spawn(async move {
            let out = tokio::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{time_starttransfer} %{time_total}",
                ])
                .arg(url)
                .output()
                .await
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            let (t, total) = text.split_once(' ')?;
            Some((
                t.parse::<f64>().ok()? * 1e3,
                total.parse::<f64>().ok()? * 1e3,
            ))
        });
    }
    let (mut ttfb, mut total) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some((t, all))) = r {
            ttfb.push(t - HEADER_DELAY_MS);
            total.push(all - HEADER_DELAY_MS - BODY_DELAY_MS);
        }
    }
    (ttfb, total)
}
