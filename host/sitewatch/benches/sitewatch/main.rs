//! sitewatch's benchmarks: `cargo xtask bench [PART..]`, every part by default. Each part prints a
//! table and writes `target/bench/<part>.json`.
//!
//! - `plugins`: load and call cost of the keyword check, per plugin language.
//! - `storage`: store writes, size, history rebuild, outbox throughput; then `history`.
//! - `history`: the rollups' cost to the writer, and a simulated year: size and report times.
//! - `views`: one 1-hour view refresh for 10,000 sites.
//! - `scale`: the whole binary watching 1,000 and 10,000 local sites at 10 s and 1 s.
//! - `peers`: CPU per probe of sitewatch, blackbox_exporter and a curl loop at the same rate;
//!   then sitewatch's `tcp` and `dns` kinds against blackbox's `tcp` and `dns` probers.
//! - `accuracy`: TTFB and response-time error against a target with known delays.
//! - `alerts`: the time from the measurement that crosses the threshold to the alert event.
//! - `notify`: 1,000 sites down at once, grouped into few messages within `group_wait`.
//! - `serve`: a `/metrics` scrape and a status-page render for 10,000 sites; the binary's memory
//!   with 16 event-stream clients that never read.
//! - `cluster`: 3 nodes in 2 locations on 3 NATS servers, 10,000 sites: CPU and RSS per node,
//!   the cost of publishing, the crossing probe to the leader's alert, and the failover.
//!
//! - `push`: 10,000 push sites pinged every 10 s: CPU and memory.
//!
//! `SITEWATCH_BENCH_SECS` shortens or lengthens the timed runs (default 60 s for scale, half that
//! for the others).

mod accuracy;
mod alerts;
mod cluster;
mod harness;
mod history;
mod notify;
mod peers;
mod plugins;
mod push;
mod scale;
mod serve;
mod storage;
mod targets;
mod views;

use sitewatch::config::Config;
use sitewatch::target::ProbeTarget;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PARTS: &[&str] = &[
    "plugins", "storage", "history", "views", "scale", "peers", "accuracy", "alerts", "notify",
    "serve", "cluster", "push",
];

fn root() -> PathBuf {
    // host/sitewatch is two folders below the repository's root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// A config of the given (name, URL) sites probed every 10 s, and its probe targets.
fn sites_every_10s(sites: impl Iterator<Item = (String, String)>) -> (Config, Vec<ProbeTarget>) {
    let sites: Vec<_> = sites
        .map(|(name, url)| serde_json::json!({"name": name, "url": url, "interval": "10s"}))
        .collect();
    let text = serde_json::json!({ "sites": sites }).to_string();
    let config = Config::parse(Path::new("bench.json"), text.as_bytes()).unwrap();
    let targets = config.sites.iter().cloned().map(ProbeTarget::new).collect();
    (config, targets)
}

/// The value at quantile `p` of sorted samples (nearest rank); NaN when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Sorts samples for [`percentile`].
fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// p50, p99 and max of samples, as JSON.
fn spread(sorted: &[f64]) -> serde_json::Value {
    serde_json::json!({
        "p50": percentile(sorted, 0.5),
        "p99": percentile(sorted, 0.99),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
        "n": sorted.len(),
    })
}

/// How long a timed run lasts: `SITEWATCH_BENCH_SECS`, else `default`.
fn run_length(default: Duration) -> Duration {
    std::env::var("SITEWATCH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(default, Duration::from_secs)
}

fn save(part: &str, value: &serde_json::Value) {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{part}.json")),
        serde_json::to_vec_pretty(value).unwrap(),
    )
    .unwrap();
}

fn main() {
    if let Ok(spec) = std::env::var(peers::BARE_PROBER) {
        return peers::bare_prober(&spec);
    }
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(bad) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        eprintln!("unknown bench part `{bad}`; parts: {}", PARTS.join(", "));
        std::process::exit(2);
    }
    let want = |p: &str| parts.is_empty() || parts.iter().any(|x| x == p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("machine: {}", harness::machine());
    if want("plugins") {
        rt.block_on(plugins::run());
    }
    if want("storage") {
        rt.block_on(storage::run());
    }
    if want("storage") || want("history") {
        history::run();
    }
    if want("views") {
        // In the runtime: an alert, if one fired, leaves through a task.
        let _runtime = rt.enter();
        views::run();
    }
    if want("scale") {
        rt.block_on(scale::run());
    }
    if want("peers") {
        rt.block_on(peers::run());
    }
    if want("accuracy") {
        rt.block_on(accuracy::run());
    }
    if want("alerts") {
        rt.block_on(alerts::run());
    }
    if want("notify") {
        rt.block_on(notify::run());
    }
    if want("serve") {
        serve::run();
        rt.block_on(serve::stuck_streams());
    }
    if want("cluster") {
        rt.block_on(cluster::run());
    }
    if want("push") {
        rt.block_on(push::run());
    }
}
