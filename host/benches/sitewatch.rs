//! sitewatch's benchmarks: `cargo xtask bench [plugins|storage|views]` (all parts by default).
//! Each part prints a table and writes `target/bench/<part>.json`.

use sitewatch::clock::SystemClock;
use sitewatch::config::{Config, PluginLimits};
use sitewatch::measurement::{Measurement, Phases};
use sitewatch::plugin::PluginHost;
use sitewatch::plugin::bindings::types;
use sitewatch::probe::ProbeTarget;
use sitewatch::recorder::Recorder;
use sitewatch::store::Store;
use sitewatch::store::writer::{self, Record, WriterOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
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
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = parts.is_empty();
    let want = |p: &str| all || parts.iter().any(|x| x == p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if want("plugins") {
        rt.block_on(plugins());
    }
    if want("storage") {
        rt.block_on(storage());
    }
    if want("views") {
        views();
    }
}

// ---------------------------------------------------------------------------------------------

/// The keyword check written natively, as the baseline for the plugin's per-call cost.
fn native_keyword(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body).contains(needle)
}

async fn plugins() {
    let wasm = root().join("target/plugins/keyword.wasm");
    assert!(wasm.is_file(), "run `cargo xtask build-plugins` first");
    let cache = tempfile::tempdir().unwrap();
    let limits = PluginLimits {
        memory: 32 << 20,
        time: Duration::from_millis(100),
    };

    // Cold load: compile with an empty cache. Cached load: a new engine over the same cache.
    let t = Instant::now();
    let host = PluginHost::new(Some(cache.path())).unwrap();
    let plugin = host.load_file(&wasm).await.unwrap();
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut cached = Vec::new();
    for _ in 0..10 {
        let h = PluginHost::new(Some(cache.path())).unwrap();
        let t = Instant::now();
        h.load_file(&wasm).await.unwrap();
        cached.push(t.elapsed().as_secs_f64() * 1e3);
    }
    cached.sort_by(f64::total_cmp);

    let mut body = "lorem ipsum dolor sit amet ".repeat(380).into_bytes();
    body.truncate(10 * 1024 - 6);
    body.extend_from_slice(b"needle");
    let response = types::Response {
        url: "http://127.0.0.1/".into(),
        method: "GET".into(),
        status: 200,
        headers: vec![types::Header {
            name: "content-type".into(),
            value: "text/plain".into(),
        }],
        body: body.clone(),
        body_truncated: false,
        timings: types::Timings {
            ttfb_ms: 1.0,
            response_ms: 2.0,
            dns_ms: None,
            connect_ms: Some(0.1),
            tls_ms: None,
        },
    };
    let config = r#"{"contains": "needle"}"#;
    for _ in 0..200 {
        host.check(&plugin, limits, config, &response)
            .await
            .unwrap()
            .unwrap();
    }
    let mut calls = Vec::new();
    for _ in 0..5000 {
        let t = Instant::now();
        let r = host
            .check(&plugin, limits, config, &response)
            .await
            .unwrap()
            .unwrap();
        calls.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(matches!(r.verdict, types::Verdict::Pass));
    }
    calls.sort_by(f64::total_cmp);
    let mut native = Vec::new();
    for _ in 0..5000 {
        let t = Instant::now();
        let hit = native_keyword(std::hint::black_box(&body), "needle");
        native.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(hit);
    }
    native.sort_by(f64::total_cmp);

    println!(
        "\n== plugins: keyword check, 10 KiB body, fresh store per call (pooling: {})",
        host.pooling
    );
    println!("  {:<34} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "  {:<34} {:>8.1}µs {:>8.1}µs",
        "plugin call (instantiate + check)",
        percentile(&calls, 0.5),
        percentile(&calls, 0.99)
    );
    println!(
        "  {:<34} {:>8.2}µs {:>8.2}µs",
        "native Rust check",
        percentile(&native, 0.5),
        percentile(&native, 0.99)
    );
    println!("  {:<34} {:>8.1}ms", "cold load (compile)", cold_ms);
    println!(
        "  {:<34} {:>8.2}ms {:>8.2}ms",
        "cached load",
        percentile(&cached, 0.5),
        percentile(&cached, 0.99)
    );
    save(
        "plugins",
        &serde_json::json!({
            "call_us": {"p50": percentile(&calls, 0.5), "p99": percentile(&calls, 0.99)},
            "native_us": {"p50": percentile(&native, 0.5), "p99": percentile(&native, 0.99)},
            "cold_load_ms": cold_ms,
            "cached_load_ms": {"p50": percentile(&cached, 0.5), "p99": percentile(&cached, 0.99)},
            "pooling": host.pooling,
        }),
    );
}

// ---------------------------------------------------------------------------------------------

fn measurement(
    site: &Arc<str>,
    url: &Arc<str>,
    time: chrono::DateTime<chrono::Utc>,
    i: u64,
) -> Measurement {
    Measurement {
        site: Arc::clone(site),
        url: Arc::clone(url),
        time,
        ok: !i.is_multiple_of(50),
        status: Some(if i.is_multiple_of(50) { 503 } else { 200 }),
        ttfb: Some(Duration::from_micros(800 + i % 700)),
        response_time: Some(Duration::from_micros(1200 + i % 900)),
        body_bytes: 1256,
        body_truncated: false,
        phases: Phases {
            dns: Some(Duration::from_micros(300)),
            connect: Some(Duration::from_micros(90)),
            tls: Some(Duration::from_micros(900)),
        },
        error: None,
        schedule_lag: Duration::from_micros(150),
        metrics: Vec::new(),
    }
}

fn write_all(
    store: &Store,
    outbox: bool,
    records: impl Iterator<Item = Measurement>,
) -> (u64, Duration) {
    let (events, _) = tokio::sync::broadcast::channel(16);
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(200),
            retention: Duration::from_secs(3650 * 86400),
            outbox,
        },
        Arc::new(SystemClock),
        events,
    );
    let t = Instant::now();
    let mut n = 0;
    for m in records {
        handle.send(Record::Measurement(m));
        n += 1;
    }
    drop(handle);
    thread.join().unwrap();
    (n, t.elapsed())
}

async fn storage() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let sites: Vec<(Arc<str>, Arc<str>)> = (0..1000)
        .map(|i| {
            (
                Arc::from(format!("site-{i}")),
                Arc::from(format!("http://127.0.0.1:8080/{i}")),
            )
        })
        .collect();

    // An hour of 10 s data for 1,000 sites: 360,000 measurements, written through the writer.
    let now = chrono::Utc::now();
    let per_site = 360u64;
    let data = (0..per_site).flat_map(|k| {
        let t = now - chrono::TimeDelta::seconds(3600 - 10 * k as i64);
        sites.iter().enumerate().map(move |(i, (s, u))| {
            measurement(s, u, t + chrono::TimeDelta::milliseconds(i as i64), k)
        })
    });
    let (n, took) = write_all(&store, false, data);
    let rate = n as f64 / took.as_secs_f64();
    let size = std::fs::metadata(store.path()).unwrap().len()
        + std::fs::metadata(format!("{}-wal", store.path().display()))
            .map(|m| m.len())
            .unwrap_or(0);
    let per_million_mb = size as f64 / n as f64 * 1e6 / (1 << 20) as f64;

    // With the InfluxDB outbox as well (each record also queued as line protocol).
    let dir2 = tempfile::tempdir().unwrap();
    let (store2, _) = Store::open(dir2.path()).unwrap();
    let data2 = (0..100_000u64).map(|k| {
        let (s, u) = &sites[(k % 1000) as usize];
        measurement(s, u, now + chrono::TimeDelta::milliseconds(k as i64), k)
    });
    let (n2, took2) = write_all(&store2, true, data2);
    let rate_outbox = n2 as f64 / took2.as_secs_f64();

    // Restart rebuild: load the hour back into the windows of 1,000 sites.
    let (config, targets) =
        sites_every_10s(sites.iter().map(|(s, u)| (s.to_string(), u.to_string())));
    let (events, _) = tokio::sync::broadcast::channel(16);
    let t = Instant::now();
    let mut recorder = Recorder::new(&config, Arc::new(SystemClock), events, None);
    recorder.set_sites(&targets);
    let since = now - chrono::TimeDelta::seconds(3700);
    let history = sitewatch::monitor::load_history(&store, &targets, since)
        .await
        .unwrap();
    let loaded: usize = history.iter().map(|h| h.1.len()).sum();
    for (target, ms, alert) in &history {
        recorder.restore(&target.name, ms, alert.as_ref());
    }
    let rebuild = t.elapsed();
    assert_eq!(loaded as u64, n);

    // To the server, if VictoriaMetrics is installed: drain an outbox of 100,000 lines.
    let server_rate = server_throughput(&store2, n2).await;

    println!("\n== storage: embedded SQLite store (WAL, 200 ms batches)");
    println!("  {:<44} {:>12.0}/s", "measurements written", rate);
    println!(
        "  {:<44} {:>12.0}/s",
        "measurements written with the InfluxDB outbox", rate_outbox
    );
    println!(
        "  {:<44} {:>11.1} MB",
        "store size per million measurements", per_million_mb
    );
    println!(
        "  {:<44} {:>11.0} ms",
        "rebuild 1,000 sites x 1 h of 10 s data",
        rebuild.as_secs_f64() * 1e3
    );
    match server_rate {
        Some(r) => println!(
            "  {:<44} {:>12.0}/s",
            "outbox drained to VictoriaMetrics", r
        ),
        None => println!(
            "  {:<44} {:>14}",
            "outbox drained to VictoriaMetrics", "skipped"
        ),
    }
    save(
        "storage",
        &serde_json::json!({
            "write_per_s": rate, "write_with_outbox_per_s": rate_outbox, "mb_per_million": per_million_mb,
            "rebuild_ms_1000_sites_1h_10s": rebuild.as_secs_f64() * 1e3, "server_per_s": server_rate,
        }),
    );
}

/// Lines per second the InfluxDB sender delivers to a local VictoriaMetrics.
async fn server_throughput(store: &Store, lines: u64) -> Option<f64> {
    let bin = Path::new("/usr/bin/victoria-metrics");
    if !bin.is_file() {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin)
        .arg(format!("-storageDataPath={}", data.path().display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = sitewatch::config::InfluxConfig {
        url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        org: "o".into(),
        bucket: "b".into(),
        token_env: None,
        batch_size: 5000,
        flush_interval: Duration::from_millis(100),
    };
    let (events, _) = tokio::sync::broadcast::channel(16);
    let sender = sitewatch::store::influx::Sender {
        store: store.clone(),
        config,
        token: None,
        client,
        clock: Arc::new(SystemClock),
        events,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let t = Instant::now();
    let task = tokio::spawn(sender.run(stop.clone()));
    let conn = store.connect().unwrap();
    while store.outbox_len(&conn).unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if t.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let took = t.elapsed();
    stop.cancel();
    let _ = task.await;
    let _ = child.kill();
    let _ = child.wait();
    Some(lines as f64 / took.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------

/// The cost of one 1-hour view refresh for 10,000 sites with full windows (10 s data).
fn views() {
    let n = 10_000;
    let (config, targets) =
        sites_every_10s((0..n).map(|i| (format!("s{i}"), format!("http://127.0.0.1/{i}"))));
    let (events, _) = tokio::sync::broadcast::channel(16);
    let mut recorder = Recorder::new(&config, Arc::new(SystemClock), events, None);
    recorder.set_sites(&targets);
    let now = chrono::Utc::now();
    let t = Instant::now();
    for k in 0..360u64 {
        let at = now - chrono::TimeDelta::seconds(3590 - 10 * k as i64);
        for tg in &targets {
            recorder.record(measurement(&tg.name, &tg.url, at, k));
        }
    }
    let fill = t.elapsed();
    let per_measurement_us = fill.as_secs_f64() * 1e6 / (n as f64 * 360.0);
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
        "  {:<40} {:>9.2} ms (p50), {:.2} ms (max)",
        "one 1 h view refresh",
        percentile(&times, 0.5),
        times[times.len() - 1]
    );
    save(
        "views",
        &serde_json::json!({"record_us": per_measurement_us, "refresh_1h_10k_ms": {"p50": percentile(&times, 0.5), "max": times[times.len() - 1]}}),
    );
}
