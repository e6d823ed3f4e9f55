//! Store writes, size on disk, history rebuild and the InfluxDB outbox's throughput.

use crate::{save, sites_every_10s};
use sitewatch::clock::SystemClock;
use sitewatch::measurement::{Measurement, Phases};
use sitewatch::recorder::Recorder;
use sitewatch::store::Store;
use sitewatch::store::writer::{self, Record, WriterOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A made-up measurement of `site`: mostly fine, every 50th a 503.
pub fn measurement(
    site: &Arc<str>,
    url: &Arc<str>,
    time: chrono::DateTime<chrono::Utc>,
    i: u64,
) -> Measurement {
    Measurement {
        domain_expiry: None,
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
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
        duration: Duration::from_micros(1200 + i % 900),
        ended_us: time.timestamp_micros() + 1200 + (i % 900) as i64,
        generation: 0,
        schedule_lag: Duration::from_micros(150),
        metrics: Vec::new(),
        tls: None,
        maintenance: false,
    }
}

/// The store's writer thread on `store`, as sitewatch runs it (200 ms batches).
pub fn writer(
    store: &Store,
    outbox: bool,
    rollups: bool,
) -> (
    writer::StoreHandle,
    std::thread::JoinHandle<Result<(), writer::Unsaved>>,
) {
    let clock: sitewatch::clock::SharedClock = Arc::new(SystemClock::new());
    writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(200),
            retention: sitewatch::history::Retention::default(),
            rollup_every: sitewatch::history::DEFAULT_ROLLUP_EVERY,
            rollups,
            outbox,
            location: "bench".into(),
        },
        Arc::clone(&clock),
        sitewatch::event::Bus::new(clock),
    )
}

/// Writes `records` through the store's writer thread; returns how many and how long it took.
pub fn write_all(
    store: &Store,
    outbox: bool,
    records: impl Iterator<Item = Measurement>,
) -> (u64, Duration) {
    let (handle, thread) = writer(store, outbox, true);
    let t = Instant::now();
    let mut n = 0;
    for m in records {
        handle.send(Record::Measurement(m));
        n += 1;
    }
    drop(handle);
    thread.join().unwrap().expect("every record stored");
    (n, t.elapsed())
}

/// `n` made-up sites: `site-0` at `http://127.0.0.1:8080/0` and on.
pub fn sites(n: usize) -> Vec<(Arc<str>, Arc<str>)> {
    (0..n)
        .map(|i| {
            (
                Arc::from(format!("site-{i}")),
                Arc::from(format!("http://127.0.0.1:8080/{i}")),
            )
        })
        .collect()
}

pub async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let sites = sites(1000);

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
    let t = Instant::now();
    let clock: sitewatch::clock::SharedClock = Arc::new(SystemClock::new());
    let bus = sitewatch::event::Bus::new(Arc::clone(&clock));
    let mut recorder = Recorder::new(&config, clock, bus, None);
    recorder.set_sites(&targets);
    let since = now - chrono::TimeDelta::seconds(3700);
    let loaded = sitewatch::monitor::load_history(&store, &targets, since, |t, ms, alert, _| {
        recorder.restore(&t.name, ms, alert)
    })
    .await
    .unwrap();
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
        max_outbox_lines: sitewatch::config::DEFAULT_MAX_OUTBOX_LINES,
    };
    let sender = sitewatch::store::influx::Sender {
        store: store.clone(),
        config,
        token: None,
        client,
        bus: sitewatch::event::Bus::new(Arc::new(SystemClock::new())),
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
