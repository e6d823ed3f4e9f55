//! Scale: the whole binary (probes, stats views, alerts, store, JSON output to /dev/null)
//! watching 1,000 and 10,000 sites on a local target, at 10 s and 1 s intervals. What it probed
//! and each probe's scheduling lag are read back from its store after the run.

use crate::harness::{Monitor, scratch_dir, sites_config};
use crate::storage::{measurement, write_all};
use crate::targets::FastTarget;
use crate::{percentile, run_length, save, sorted, spread};
use sitewatch::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: &[(usize, u64)] = &[(1_000, 10), (10_000, 10), (1_000, 1), (10_000, 1)];

/// The runs: `SITEWATCH_BENCH_SCALE` (e.g. `10000@10,1000@1`), else [`RUNS`].
fn runs() -> Vec<(usize, u64)> {
    let Ok(spec) = std::env::var("SITEWATCH_BENCH_SCALE") else {
        return RUNS.to_vec();
    };
    spec.split(',')
        .map(|run| {
            run.split_once('@')
                .and_then(|(n, s)| Some((n.trim().parse().ok()?, s.trim().parse().ok()?)))
                .unwrap_or_else(|| panic!("SITEWATCH_BENCH_SCALE: `{run}` is not SITES@SECONDS"))
        })
        .collect()
}

pub async fn run() {
    let target = FastTarget::start().await;
    let length = run_length(Duration::from_secs(60));
    let mut rows = Vec::new();
    for (sites, interval) in runs() {
        // Blocking here is fine: the target's tasks run on the runtime's worker threads.
        rows.push(one(&target, sites, interval, length));
    }
    println!(
        "\n== scale: whole pipeline, fresh connection per probe, {} s per run",
        length.as_secs()
    );
    println!(
        "  {:<16} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>7} {:>8} {:>8} {:>9}  probes per site min/p1/p50/max",
        "sites @ every",
        "sched/s",
        "probes/s",
        "ok %",
        "lag p50",
        "lag p99",
        "lag max",
        "cores",
        "CPU/1k",
        "RSS MB",
        "KB/site",
    );
    for r in &rows {
        println!(
            "  {:<16} {:>9.0} {:>9.0} {:>7.2}% {:>6.2}ms {:>6.2}ms {:>8.1}ms {:>7.2} {:>7.3}s {:>8.0} {:>9.1}  {}/{}/{}/{}   windows: {}",
            format!("{} @ {}s", r["sites"], r["interval_s"]),
            r["scheduled_per_s"].as_f64().unwrap(),
            r["probes_per_s"].as_f64().unwrap(),
            r["ok_fraction"].as_f64().unwrap() * 100.0,
            r["lag_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            r["lag_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
            r["lag_ms"]["max"].as_f64().unwrap_or(f64::NAN),
            r["cpu_cores"].as_f64().unwrap(),
            r["cpu_s_per_1000_probes"].as_f64().unwrap(),
            r["peak_rss_mb"].as_f64().unwrap(),
            r["rss_kb_per_site"].as_f64().unwrap(),
            r["probes_per_site"]["min"],
            r["probes_per_site"]["p1"],
            r["probes_per_site"]["p50"],
            r["probes_per_site"]["max"],
            r["windows"].as_str().unwrap(),
        );
    }
    save("scale", &serde_json::json!({ "runs": rows }));
}

/// Writes an hour of 10 s measurements for every site of `config` into the store in `dir`, so
/// the binary starts with full one-hour windows (it rebuilds them from the store at start).
fn preload_hour(dir: &std::path::Path, sites: usize, url: impl Fn(usize) -> String) {
    let (store, _) = Store::open(&Monitor::data_dir(dir)).unwrap();
    let names: Vec<(Arc<str>, Arc<str>)> = (0..sites)
        .map(|i| (Arc::from(format!("s{i}")), Arc::from(url(i))))
        .collect();
    let now = chrono::Utc::now();
    let records = (0..360u64).flat_map(|k| {
        let at = now - chrono::TimeDelta::seconds(3600 - 10 * k as i64);
        names
            .iter()
            .map(move |(site, url)| measurement(site, url, at, k))
    });
    let (n, took) = write_all(&store, false, records);
    let (site, url) = &names[sites - 1];
    let kept = store
        .measurements(
            &store.connect().unwrap(),
            site,
            url,
            now - chrono::TimeDelta::hours(2),
        )
        .unwrap()
        .len();
    assert_eq!(kept, 360, "the store holds the preloaded hour");
    println!(
        "  (preloaded {n} measurements in {:.1} s: one hour of history)",
        took.as_secs_f64()
    );
}

fn one(target: &FastTarget, sites: usize, interval: u64, length: Duration) -> serde_json::Value {
    println!("-- scale: {sites} sites every {interval} s");
    let dir = scratch_dir();
    let full_hour = interval == 10;
    if full_hour {
        preload_hour(dir.path(), sites, |i| target.url(i));
    }
    // `SITEWATCH_BENCH_MAX_IN_FLIGHT` sets `probing.max_in_flight` (else the default).
    let probing = match std::env::var("SITEWATCH_BENCH_MAX_IN_FLIGHT") {
        Ok(n) => {
            serde_json::json!({"probing": {"max_in_flight": n.parse::<u32>().expect("a number")}})
        }
        Err(_) => serde_json::json!({}),
    };
    let config = sites_config(sites, &format!("{interval}s"), |i| target.url(i), probing);
    let mut monitor = Monitor::start_quiet(dir, &config);
    let t = Instant::now();
    monitor.wait_probing(chrono::Utc::now(), Duration::from_secs(300));
    let startup = t.elapsed();
    // The first interval spreads the sites' first probes; measure after it.
    std::thread::sleep(Duration::from_secs(interval + 2));
    let cpu0 = monitor.cpu_time();
    let (from, t0) = (chrono::Utc::now(), Instant::now());
    std::thread::sleep(length);
    let cpu = (monitor.cpu_time() - cpu0).as_secs_f64();
    let (elapsed, to) = (t0.elapsed().as_secs_f64(), chrono::Utc::now());
    let (rss_kb, peak_kb) = monitor.rss_kb();
    monitor.stop();
    let stored = monitor.probes_in_store(from, to);
    // Fairness under overload: how the probes that ran spread over the sites (a site never
    // probed is a starved site).
    let mut per_site = monitor.probes_per_site(from, to);
    per_site.resize(sites.max(per_site.len()), 0);
    let per_site = sorted(per_site.into_iter().map(|n| n as f64).collect());
    let ok = stored.iter().filter(|(_, ok)| *ok).count();
    let lags: Vec<f64> = stored.into_iter().map(|(lag, _)| lag).collect();
    let stderr = std::fs::read_to_string(monitor.dir.path().join("stderr.log")).unwrap_or_default();
    let probes = lags.len() as f64;
    let lags = sorted(lags);
    if !stderr.trim().is_empty() {
        println!(
            "  sitewatch stderr: {}",
            stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
        );
    }
    serde_json::json!({
        "sites": sites,
        "interval_s": interval,
        "seconds": elapsed,
        "startup_s": startup.as_secs_f64(),
        "scheduled_per_s": sites as f64 / interval as f64,
        "probes_per_s": probes / elapsed,
        "ok_fraction": ok as f64 / probes.max(1.0),
        "lag_ms": spread(&lags),
        "lag_p999_ms": percentile(&lags, 0.999),
        "cpu_cores": cpu / elapsed,
        "cpu_s_per_1000_probes": cpu / probes.max(1.0) * 1000.0,
        "rss_mb": rss_kb as f64 / 1024.0,
        "peak_rss_mb": peak_kb as f64 / 1024.0,
        "rss_kb_per_site": rss_kb as f64 / sites as f64,
        "skipped_per_s": (sites as f64 / interval as f64 - probes / elapsed).max(0.0),
        "probes_per_site": {
            "min": per_site.first().copied().unwrap_or(0.0),
            "p1": percentile(&per_site, 0.01),
            "p50": percentile(&per_site, 0.5),
            "max": per_site.last().copied().unwrap_or(0.0),
        },
        "windows": if full_hour { "1 h preloaded" } else { "filling" },
    })
}
