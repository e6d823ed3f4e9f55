//! The server's cost for 10,000 sites: one `/metrics` scrape (OpenMetrics encoding plus the
//! Prometheus text conversion) and one status-page render, each after the server has seen 30
//! probes of every site and a report of both views; and what scraping every 15 s costs beside
//! probing (a scrape's CPU time over 15 s). Then the whole binary with 1,500 sites and 16
//! event-stream clients that never read: its resident memory over the run (target: growth under
//! 50 MB, and flat once the clients are disconnected).

use crate::{percentile, save, sorted};
use sitewatch::event::{Event, SiteReport, StatsReport, WatchedSite, Watching};
use sitewatch::measurement::{Measurement, Phases};
use sitewatch::serve::board::Board;
use sitewatch::serve::metrics::{Metrics, prometheus_text};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SITES: usize = 10_000;
const RUNS: usize = 20;

fn measurement(site: &Arc<str>, url: &Arc<str>, i: u32) -> Measurement {
    let ms = |v: u64| Some(Duration::from_micros(v));
    Measurement {
        domain_expiry: None,
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
        site: Arc::clone(site),
        url: Arc::clone(url),
        time: chrono::Utc::now(),
        ok: !i.is_multiple_of(17),
        status: Some(if i.is_multiple_of(17) { 503 } else { 200 }),
        ttfb: ms(20_000 + u64::from(i) * 37),
        response_time: ms(25_000 + u64::from(i) * 41),
        phases: Phases {
            dns: ms(1_000),
            connect: ms(3_000),
            tls: ms(8_000),
        },
        body_bytes: 1024,
        body_truncated: false,
        error: None,
        schedule_lag: Duration::from_micros(300),
        metrics: Vec::new(),
        tls: None,
        maintenance: false,
        duration: Duration::from_micros(25_000),
        ended_us: 0,
        generation: 0,
    }
}

pub fn run() {
    println!("-- serve: {SITES} sites, 30 probes each seen, two views reported");
    let names: Vec<(Arc<str>, Arc<str>)> = (0..SITES)
        .map(|i| {
            (
                Arc::from(format!("site-{i:05}")),
                Arc::from(format!("https://site-{i:05}.example.com/health")),
            )
        })
        .collect();
    let board = Board::default();
    let metrics = Metrics::new("bench");
    let watching = Event::Watching(Watching {
        time: chrono::Utc::now(),
        sites: names
            .iter()
            .map(|(s, u)| WatchedSite {
                site: Arc::clone(s),
                url: Arc::clone(u),
                down: false,
                tags: Arc::from([]),
                paused: false,
            })
            .collect(),
        views: vec!["10m".into(), "1h".into()],
    });
    board.observe(&watching);
    let feed_start = Instant::now();
    for i in 0..30 {
        for (s, u) in &names {
            let e = Event::Probe(measurement(s, u, i));
            board.observe(&e);
            metrics.observe(&e);
        }
    }
    let per_probe = feed_start.elapsed().as_secs_f64() * 1e6 / (30 * SITES) as f64;
    for (view, window_s) in [("10m", 600), ("1h", 3600)] {
        let report = Event::Stats(StatsReport {
            view: view.into(),
            window_s,
            every_s: Some(10.0),
            time: chrono::Utc::now(),
            r#final: false,
            threshold: 0.8,
            overloaded: false,
            skipped_overload: 0,
            probes_total: 0,
            sites: names
                .iter()
                .map(|(s, u)| {
                    SiteReport::new(
                        Arc::clone(s),
                        Arc::clone(u),
                        sitewatch::stats::WindowStats {
                            checks: 30,
                            ok: 28,
                            availability: Some(28.0 / 30.0),
                            response_ms: None,
                            ttfb_ms: None,
                            status_codes: [("200", 28), ("503", 2)].into_iter().collect(),
                            steps: Vec::new(),
                        },
                    )
                })
                .collect(),
        });
        board.observe(&report);
        metrics.observe(&report);
    }
    let config = sitewatch::config::Config::parse(
        std::path::Path::new("bench.json"),
        br#"{"sites": [], "location": "bench"}"#,
    )
    .unwrap();
    let mut scrape = Vec::new();
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let text = prometheus_text(&metrics.openmetrics());
        scrape.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = text.len();
    }
    let mut page = Vec::new();
    let mut page_bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let html = sitewatch::serve::page::render(&sitewatch::serve::page_data(
            &board,
            &config,
            &[],
            &Default::default(),
        ));
        page.push(t.elapsed().as_secs_f64() * 1e3);
        page_bytes = html.len();
    }
    let (scrape, page) = (sorted(scrape), sorted(page));
    let scrape_p50 = percentile(&scrape, 0.5);
    // One scrape's CPU over a 15 s scrape interval (one core = 100%).
    let share = scrape_p50 / 15_000.0 * 100.0;
    println!("\n== serve: 10,000 sites");
    println!(
        "  /metrics scrape: p50 {:.1} ms, max {:.1} ms, {:.1} MB (target < 50 ms); every 15 s that is {share:.2}% of a core",
        scrape_p50,
        scrape.last().unwrap(),
        bytes as f64 / 1e6
    );
    println!(
        "  status page:     p50 {:.1} ms, max {:.1} ms, {:.1} MB (target < 100 ms)",
        percentile(&page, 0.5),
        page.last().unwrap(),
        page_bytes as f64 / 1e6
    );
    println!("  taking one probe event into the board and the metrics: {per_probe:.2} µs");
    save(
        "serve",
        &serde_json::json!({
            "sites": SITES,
            "scrape_ms": {"p50": scrape_p50, "max": scrape.last()},
            "scrape_bytes": bytes,
            "scrape_core_share_at_15s": share,
            "page_ms": {"p50": percentile(&page, 0.5), "max": page.last()},
            "page_bytes": page_bytes,
            "probe_event_us": per_probe,
        }),
    );
}

/// 16 event-stream clients that never read, against the binary watching 1,500 sites every
/// second with both views refreshed every second (a stats event of ~0.7 MB each).
pub async fn stuck_streams() {
    use crate::harness::{Monitor, scratch_dir, sites_config};
    use tokio::io::AsyncWriteExt;
    const STUCK: usize = 16;
    const STREAM_SITES: usize = 1_500;
    let length = crate::run_length(Duration::from_secs(60));
    let target = crate::targets::FastTarget::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sites_config(
        STREAM_SITES,
        "1s",
        |i| target.url(i),
        serde_json::json!({
            "dashboard": {"views": [{"window": "1m", "every": "1s"}, {"window": "10m", "every": "1s"}]},
            "server": {"listen": format!("127.0.0.1:{port}")},
        }),
    );
    println!(
        "-- serve: {STREAM_SITES} sites every 1 s, {STUCK} event-stream clients that never read, {} s",
        length.as_secs()
    );
    let mut monitor = Monitor::start_quiet(scratch_dir(), &config);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let baseline = monitor.rss_kb().0 as f64 / 1024.0;
    let mut clients = Vec::new();
    for _ in 0..STUCK {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
        s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        clients.push(s);
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((
            start.elapsed().as_secs_f64(),
            monitor.rss_kb().0 as f64 / 1024.0,
        ));
    }
    let peak = samples.iter().map(|s| s.1).fold(baseline, f64::max);
    let half = samples.len() / 2;
    let second_half_growth = samples[half..].iter().map(|s| s.1).fold(0.0, f64::max)
        - samples[..half].iter().map(|s| s.1).fold(0.0, f64::max);
    let metrics = reqwest_get(port, "/metrics").await;
    let disconnected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sitewatch_stream_disconnects_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    monitor.stop();
    drop(clients);
    println!("\n== serve: {STUCK} stuck event-stream clients, {STREAM_SITES} sites");
    println!(
        "  resident memory: {baseline:.1} MiB before, peak {peak:.1} MiB: growth {:.1} MiB (target < 50 MB); second half vs first: {second_half_growth:+.1} MiB (target: stops growing); {disconnected} clients disconnected",
        peak - baseline
    );
    save(
        "serve-stuck-streams",
        &serde_json::json!({
            "sites": STREAM_SITES,
            "stuck_clients": STUCK,
            "seconds": length.as_secs(),
            "rss_mib": {"baseline": baseline, "peak": peak, "growth": peak - baseline,
                        "second_half_growth": second_half_growth},
            "disconnected": disconnected,
            "samples": samples,
        }),
    );
}

/// A GET on the local server, its body as text.
async fn reqwest_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}
