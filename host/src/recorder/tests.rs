use super::*;
use crate::alert::AlertKind;
use crate::clock::TokioClock;
use crate::config::SiteConfig;
use crate::measurement::{ErrorKind, Phases, ProbeError};
use chrono::{DateTime, TimeZone, Utc};
use std::path::Path;
use std::time::Duration;

fn config() -> Config {
    Config::parse(
        Path::new("test.json"),
        br#"{"sites": [{"name": "a", "url": "http://a.test/"}, {"name": "b", "url": "http://b.test/"}],
            "alerting": {"threshold": 0.8, "window": "60s"},
            "dashboard": {"views": [{"window": "5m", "every": "10s"}]}}"#,
    )
    .unwrap()
}

fn targets(c: &Config) -> Vec<ProbeTarget> {
    c.sites.iter().cloned().map(ProbeTarget::new).collect()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

fn probe(site: &str, secs: i64, up: bool) -> Measurement {
    Measurement {
        site: site.into(),
        url: format!("http://{site}.test/").into(),
        time: t0() + chrono::TimeDelta::seconds(secs),
        ok: up,
        status: up.then_some(200),
        ttfb: up.then(|| Duration::from_millis(3)),
        response_time: up.then_some(Duration::ZERO),
        body_bytes: 0,
        body_truncated: false,
        phases: Phases::default(),
        error: (!up).then(|| ProbeError {
            kind: ErrorKind::Connect,
            message: "refused".into(),
        }),
        schedule_lag: Duration::ZERO,
        metrics: Vec::new(),
    }
}

fn recorder() -> (Recorder, broadcast::Receiver<Arc<Event>>) {
    let c = config();
    let (tx, rx) = broadcast::channel(10_000);
    let mut r = Recorder::new(&c, Arc::new(TokioClock::starting_at(t0())), tx, None);
    r.set_sites(&targets(&c));
    (r, rx)
}

fn alerts(rx: &mut broadcast::Receiver<Arc<Event>>) -> Vec<Alert> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Event::Alert(a) = &*e {
            out.push(a.clone());
        }
    }
    out
}

#[tokio::test]
async fn an_outage_gives_one_down_and_one_recovery_and_other_sites_are_untouched() {
    let (mut r, mut rx) = recorder();
    // 10 s probes: up for 2 minutes, down for 2 minutes, up again for 3 minutes.
    for i in 0..42 {
        let secs = i * 10;
        let a_up = !(12..24).contains(&i);
        r.record(probe("a", secs, a_up));
        r.record(probe("b", secs, true));
    }
    let fired = alerts(&mut rx);
    let kinds: Vec<_> = fired.iter().map(|a| (a.site.to_string(), a.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("a".into(), AlertKind::Down),
            ("a".into(), AlertKind::Recovered)
        ]
    );
    // The 60 s window holds the 6 probes after `now - 60 s`: the second failure (at 130 s)
    // leaves 4 of 6 up, 66.67% < 80%; the first left 5 of 6 = 83%.
    let down = &fired[0];
    assert_eq!(down.time, t0() + chrono::TimeDelta::seconds(130));
    assert!(
        (down.availability - 4.0 / 6.0).abs() < 1e-9,
        "{}",
        down.availability
    );
    assert!(
        down.message
            .starts_with("Website a is down. availability=66.67%"),
        "{}",
        down.message
    );
    let up = &fired[1];
    assert_eq!(up.down_since, Some(down.time));
    assert!(up.availability >= 0.8);
    assert!(
        up.message.contains("down since 2026-11-24T09:02:10Z"),
        "{}",
        up.message
    );
    assert_eq!(r.history().len(), 2);
}

#[tokio::test]
async fn reports_cover_each_site_and_say_no_data_for_silent_ones() {
    let (mut r, _rx) = recorder();
    r.record(probe("a", 0, true));
    r.record(probe("a", 10, false));
    let report = r.report(0, false);
    assert_eq!(report.view, "5m");
    assert_eq!(report.window_s, 300);
    let a = &report.sites[0];
    assert_eq!(
        (&*a.site, a.stats.checks, a.stats.availability),
        ("a", 2, Some(0.5))
    );
    assert_eq!(a.stats.status_codes.get("200"), Some(&1));
    assert_eq!(a.stats.status_codes.get("connect"), Some(&1));
    let b = &report.sites[1];
    assert_eq!(
        (&*b.site, b.stats.checks, b.stats.availability),
        ("b", 0, None)
    );
}

#[tokio::test]
async fn set_sites_keeps_unchanged_sites_and_resets_a_changed_url() {
    let (mut r, _rx) = recorder();
    r.record(probe("a", 0, true));
    r.record(probe("b", 0, true));
    let mut c = config();
    c.sites[1].url = "http://b2.test/".parse().unwrap();
    c.sites.push(SiteConfig {
        name: "c".into(),
        ..c.sites[0].clone()
    });
    r.set_sites(&targets(&c));
    let report = r.report(0, false);
    let checks: Vec<_> = report
        .sites
        .iter()
        .map(|s| (s.site.to_string(), s.stats.checks))
        .collect();
    assert_eq!(checks, [("a".into(), 1), ("b".into(), 0), ("c".into(), 0)]);
    r.record(probe("gone", 0, true)); // a removed site's late measurement is dropped
}

#[tokio::test]
async fn restore_rebuilds_windows_and_a_down_state_without_repeating_the_alert() {
    let (mut r, mut rx) = recorder();
    // The clock reads t0; history from the minute before, all failures, and a stored down alert.
    let history: Vec<_> = (-60..0).step_by(10).map(|s| probe("a", s, false)).collect();
    let down = crate::alert::Transition::Down {
        availability: 0.0,
        time: t0() - chrono::TimeDelta::seconds(5),
    }
    .into_alert(&Arc::from("a"), &Arc::from("http://a.test/"));
    r.restore("a", &history, Some(&down));
    let report = r.report(0, false);
    assert_eq!(
        report.sites[0].stats.checks, 6,
        "the windows are full at once"
    );
    assert!(report.sites[0].down);
    // Still failing after the restart: no second down alert.
    r.record(probe("a", 1, false));
    assert!(alerts(&mut rx).is_empty());
    // Recovery is reported against the stored down time.
    for s in (10..130).step_by(10) {
        r.record(probe("a", s, true));
    }
    let fired = alerts(&mut rx);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, AlertKind::Recovered);
    assert_eq!(fired[0].down_since, Some(down.time));
}
