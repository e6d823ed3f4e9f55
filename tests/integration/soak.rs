//! A simulated day: 1,000 sites probed every minute for 24 hours, 100 of them flapping every
//! half hour, through the recorder (windows, alerts, reports) on a paused clock. The footprint
//! must level off after the longest window and stay there, every crossing must alert once, and
//! no task may be left behind. (File descriptors are process-wide, shared with the tests running
//! beside this one, so they are not counted here.)

use chrono::TimeZone;
use sitewatch::clock::TokioClock;
use sitewatch::config::Config;
use sitewatch::measurement::{ErrorKind, Measurement, Phases, ProbeError};
use sitewatch::probe::ProbeTarget;
use sitewatch::recorder::Recorder;
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
    let (events, _) = tokio::sync::broadcast::channel(16);
    let mut recorder = Recorder::new(&config, Arc::new(TokioClock::starting_at(t0)), events, None);
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
            recorder.record(Measurement {
                site: Arc::clone(&t.name),
                url: Arc::clone(&t.url),
                time: at + chrono::TimeDelta::milliseconds(i as i64),
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
                schedule_lag: Duration::ZERO,
                metrics: Vec::new(),
            });
        }
        tokio::time::advance(Duration::from_secs(60)).await;
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
    let alerts = recorder.history();
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
