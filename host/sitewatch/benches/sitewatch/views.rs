//! The cost of one 1-hour view refresh for 10,000 sites.

use crate::storage::measurement;
use crate::{percentile, save, sites_every_10s};
use sitewatch::clock::SystemClock;
use sitewatch::recorder::Recorder;
use std::sync::Arc;
use std::time::Instant;

/// The cost of one 1-hour view refresh for 10,000 sites with full windows (10 s data).
pub fn run() {
    let n = 10_000;
    let (config, targets) =
        sites_every_10s((0..n).map(|i| (format!("s{i}"), format!("http://127.0.0.1/{i}"))));
    let t = Instant::now();
    let mut recorder = filled_for_an_hour(&config, &targets);
    let fill = t.elapsed();
    let per_measurement_us = fill.as_secs_f64() * 1e6 / (n as f64 * 360.0);
    let with_rules_us = record_with_rules(n / 10);
    let view = config
        .dashboard
        .views
        .iter()
        .position(|v| v.name == "1h")
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let report = recorder.report(view, false);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(report.sites.len(), n);
        assert!(report.sites[0].stats.checks >= 359);
    }
    times.sort_by(f64::total_cmp);
    println!("\n== views: 10,000 sites, full 1 h windows of 10 s data");
    println!(
        "  {:<40} {:>9.2} µs",
        "record one measurement (all windows)", per_measurement_us
    );
    println!(
        "  {:<40} {:>9.2} µs",
        "… with a latency objective and 2 windows", with_rules_us
    );
    println!(
        "  {:<40} {:>9.2} ms (p50), {:.2} ms (max)",
        "one 1 h view refresh",
        percentile(&times, 0.5),
        times[times.len() - 1]
    );
    // The live display's redraw of that report: sort for attention, fit 80x24 and 200x60.
    let report = Arc::new(recorder.report(view, false));
    let mut screen = sitewatch::output::tty::Screen {
        views: vec![report.view.clone()],
        sites: n,
        ..Default::default()
    };
    screen.report(report);
    let mut redraws = Vec::new();
    for i in 0..50 {
        let (w, h) = if i % 2 == 0 { (80, 24) } else { (200, 60) };
        let t = Instant::now();
        let lines = screen.render(w, h, std::time::Duration::from_secs(60));
        redraws.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(lines.len() < h);
    }
    redraws.sort_by(f64::total_cmp);
    println!(
        "  {:<40} {:>9.2} ms (p50), {:.2} ms (max)",
        "one display redraw (attention order)",
        percentile(&redraws, 0.5),
        redraws[redraws.len() - 1]
    );
    save(
        "views",
        &serde_json::json!({
            "record_us": per_measurement_us,
            "record_with_rules_us": with_rules_us,
            "refresh_1h_10k_ms": {"p50": percentile(&times, 0.5), "max": times[times.len() - 1]},
            "display_redraw_10k_ms": {"p50": percentile(&redraws, 0.5), "max": redraws[redraws.len() - 1]},
        }),
    );
}

/// The cost of one measurement for `n` sites that each have a latency objective (the alert
/// window then keeps latency figures and is summarised on every probe) and two maintenance
/// windows (a recurring one in a time zone and a one-off), with full 1-hour windows.
fn record_with_rules(n: usize) -> f64 {
    let sites: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"name": format!("s{i}"), "url": format!("http://127.0.0.1/{i}"),
                               "interval": "10s", "alerting": {"degraded": {"response_p95": "800ms"}}})
        })
        .collect();
    let text = serde_json::json!({
        "sites": sites,
        "maintenance": [
            {"cron": "0 3 * * SUN", "duration": "2h", "tz": "Europe/Paris"},
            {"start": "2030-01-01T00:00:00Z", "end": "2030-01-01T01:00:00Z"}
        ]
    })
    .to_string();
    let config =
        sitewatch::config::Config::parse(std::path::Path::new("bench.json"), text.as_bytes())
            .unwrap();
    let targets: Vec<_> = config
        .sites
        .iter()
        .cloned()
        .map(sitewatch::target::ProbeTarget::new)
        .collect();
    let t = Instant::now();
    let recorder = filled_for_an_hour(&config, &targets);
    let per_measurement_us = t.elapsed().as_secs_f64() * 1e6 / (n as f64 * 360.0);
    drop(recorder);
    per_measurement_us
}

/// A recorder of `targets` given an hour of 10 s probes of each, oldest first.
fn filled_for_an_hour(
    config: &sitewatch::config::Config,
    targets: &[sitewatch::target::ProbeTarget],
) -> Recorder {
    let clock: sitewatch::clock::SharedClock = Arc::new(SystemClock::new());
    let bus = sitewatch::event::Bus::new(Arc::clone(&clock));
    let mut recorder = Recorder::new(config, clock, bus, None);
    recorder.set_sites(targets);
    let now = chrono::Utc::now();
    for k in 0..360u64 {
        let at = now - chrono::TimeDelta::seconds(3590 - 10 * k as i64);
        for tg in targets {
            recorder.record(measurement(&tg.name, &tg.url, at, k));
        }
    }
    recorder
}
