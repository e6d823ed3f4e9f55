//! A simulated day: 1,000 sites probed every minute for 24 hours, 100 of them flapping every
//! half hour, through the recorder (windows, alerts, reports) on a paused clock. The footprint
//! must level off after the longest window and stay there, every crossing must alert once, and
//! no task may be left behind. (File descriptors are process-wide, shared with the tests running
//! beside this one, so they are not counted here.)

use chrono::TimeZone;
use sitewatch::config::Config;
use sitewatch::measurement::{ErrorKind, Measurement, Phases, ProbeError};
use sitewatch::recorder::Recorder;
use sitewatch::target::ProbeTarget;
use sitewatch::tokio_clock::TokioClock;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_simulated_day_of_a_thousand_sites_keeps_a_steady_footprint() {
    let sites: Vec<_> = (0..1000).map(|i| serde_json::json!({"name": format!("s{i}"), "url": format!("http://h{i}/"), "interval": "60s"})).collect();
    let config = Config::parse(
        Path::new("soak.json"),
        serde_json::json!({"sites": sites}).to_string().as_bytes(),
    )
    .unwrap();
    let targets: Vec<ProbeTarget> = config.sites.iter().cloned().map(ProbeTarget::new).collect();
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock: sitewatch::clock::SharedClock = Arc::new(TokioClock::starting_at(t0));
    let bus = sitewatch::event::Bus::new(Arc::clone(&clock));
    let mut events = bus.subscribe();
    let mut alerts = Vec::new();
    // The alerts shown, read as the outputs read them (the probe events are let go).
    let mut take_alerts = move |alerts: &mut Vec<sitewatch::alert::Alert>| {
        while let Some(r) = events.try_recv() {
            if let sitewatch::event::Received::Event(e) = r
                && let sitewatch::event::Event::Alert(a) = &*e
            {
                alerts.push(a.clone());
            }
        }
    };
    let mut recorder = Recorder::new(&config, Arc::clone(&clock), bus, None);
    recorder.set_sites(&targets);
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let mut held_per_hour = Vec::new();
    for minute in 0..24 * 60i64 {
        let at = t0 + chrono::TimeDelta::minutes(minute);
        for (i, t) in targets.iter().enumerate() {
            // Sites 0, 10, 20, … fail for the second half of every hour.
            let up = i % 10 != 0 || minute % 60 < 30;
            let time = at + chrono::TimeDelta::milliseconds(i as i64);
            let duration = Duration::from_millis(30);
            recorder.record(Measurement {
                domain_expiry: None,
                redirect: None,
                probe_id: 0,
                steps: Vec::new(),
                location: None,
                site: Arc::clone(&t.name),
                url: Arc::clone(&t.url),
                time,
                ok: up,
                status: up.then_some(200),
                ttfb: up.then_some(Duration::from_millis(20)),
                response_time: up.then_some(Duration::from_millis(30)),
                body_bytes: 100,
                body_truncated: false,
                phases: Phases::default(),
                error: (!up).then(|| ProbeError {
                    kind: ErrorKind::Connect,
                    message: "refused".into(),
                }),
                duration,
                ended_us: (time + chrono::TimeDelta::from_std(duration).unwrap())
                    .timestamp_micros(),
                generation: 0,
                schedule_lag: Duration::ZERO,
                metrics: Vec::new(),
                tls: None,
                maintenance: false,
            });
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        take_alerts(&mut alerts);
        if minute % 60 == 59 {
            // The views are read as the display would read them.
            for view in 0..config.dashboard.views.len() {
                let report = recorder.report(view, false);
                assert_eq!(report.sites.len(), 1000);
            }
            held_per_hour.push(recorder.samples_held());
        }
    }
    // After the first hour (the longest window), the footprint is flat: 60 samples a site.
    assert!(
        held_per_hour[1..].iter().all(|h| *h == held_per_hour[1]),
        "{held_per_hour:?}"
    );
    assert!(held_per_hour[1] <= 1000 * 61, "{}", held_per_hour[1]);
    // Each flapping site: down at :30 and recovered at :01 of the next hour, every hour; the
    // last recovery falls after the day ends.
    recorder.flush_alerts().await;
    take_alerts(&mut alerts);
    assert_eq!(recorder.decided(), alerts.len() as u64);
    assert_eq!(
        alerts.len(),
        100 * (24 + 23),
        "one alert per crossing, none repeated"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a.site.trim_start_matches('s').parse::<usize>().unwrap() % 10 == 0)
    );
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks_before
    );
}

/// The real binary under load for a few seconds: 50 sites every 200 ms (250 probes a second, kept
/// modest because tests run beside each other) with the store writing. Its open file descriptors and resident memory must level off, not
/// climb with the probes made. (The simulated day above covers the long run of the recorder.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_under_load_keeps_its_descriptors_and_memory_level() {
    use crate::support::binary::Running;
    use crate::support::server::{Reply, TestServer};
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let sites: Vec<_> = (0..50)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "url": server.url(&format!("/{i}")), "interval": "200ms"}))
        .collect();
    let mut run = Running::start(&serde_json::json!({
        "sites": sites,
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]}
    }));
    let pid = run.child.id().unwrap();
    let sample = || {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss_kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        (fds, rss_kib)
    };
    // Warm up past the 10 s view's first fill, then compare two later samples.
    run.collect_for(Duration::from_secs(3)).await;
    let (fds_a, rss_a) = sample();
    run.collect_for(Duration::from_secs(4)).await;
    let (fds_b, rss_b) = sample();
    let probes = run.events.iter().filter(|e| e["event"] == "probe").count();
    assert!(probes > 1_500, "the load was real: {probes} probes");
    assert!(
        fds_b <= fds_a + 20,
        "descriptors climbed from {fds_a} to {fds_b}"
    );
    assert!(
        rss_b < rss_a + rss_a / 4,
        "memory climbed from {rss_a} KiB to {rss_b} KiB"
    );
}
