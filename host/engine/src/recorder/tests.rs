use super::*;
use crate::alert::AlertKind;
use crate::clock::Clock;
use crate::config::SiteConfig;
use crate::event::{Received, Subscription};
use crate::tokio_clock::{SteppingClock, TokioClock};
use chrono::{DateTime, TimeZone, Utc};
use std::path::Path;
use std::time::Duration;

fn config() -> Config {
    Config::parse(
        Path::new("test.json"),
        br#"{"sites": [{"name": "a", "url": "http://a.test/", "interval": "10s", "timeout": "5s"},
                       {"name": "b", "url": "http://b.test/", "interval": "10s", "timeout": "5s"}],
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

/// A probe of `site` that started `secs` after t0 and ended 1 ms later.
fn probe(site: &str, secs: i64, up: bool) -> Measurement {
    crate::measurement::testing::at(site, t0() + chrono::TimeDelta::seconds(secs), up)
}

fn recorder_with(clock: SharedClock) -> (Recorder, Subscription) {
    recorder_of(&config(), clock)
}

/// A recorder of `c`'s sites on `clock`, and a subscription to what it publishes.
fn recorder_of(c: &Config, clock: SharedClock) -> (Recorder, Subscription) {
    let bus = Bus::new(Arc::clone(&clock));
    let sub = bus.subscribe();
    let mut r = Recorder::new(c, clock, bus, None);
    r.set_sites(&targets(c));
    (r, sub)
}

fn recorder() -> (Recorder, Subscription) {
    recorder_with(Arc::new(TokioClock::starting_at(t0())))
}

/// The alerts published so far, after the ordered stream has delivered them.
async fn alerts(r: &mut Recorder, sub: &mut Subscription) -> Vec<Alert> {
    r.flush_alerts().await;
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        if let Received::Event(e) = e
            && let Event::Alert(a) = &*e
        {
            out.push(a.clone());
        }
    }
    out
}

/// Every event published so far.
fn events(sub: &mut Subscription) -> Vec<Arc<Event>> {
    std::iter::from_fn(|| sub.try_recv())
        .filter_map(|r| match r {
            Received::Event(e) => Some(e),
            Received::Dropped(_) => None,
        })
        .collect()
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
    let fired = alerts(&mut r, &mut rx).await;
    let kinds: Vec<_> = fired.iter().map(|a| (a.site.to_string(), a.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("a".into(), AlertKind::Down),
            ("a".into(), AlertKind::Recovered)
        ]
    );
    // The 60 s window holds the 6 probes after `now - 60 s`: the second failure (at 130 s)
    // leaves 4 of 6 up, 66.67% < 80%; the first left 5 of 6 = 83%. The alert is timed when the
    // crossing probe ended.
    let down = &fired[0];
    assert_eq!(
        down.time,
        t0() + chrono::TimeDelta::seconds(130) + chrono::TimeDelta::milliseconds(1)
    );
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
    assert_eq!(r.decided(), 2);
}

/// A formatter that takes longer for down alerts than for recoveries, as a cold plugin does.
struct SlowForDown;

impl AlertFormatter for SlowForDown {
    fn name(&self) -> &str {
        "slow-for-down"
    }

    fn render<'a>(
        &'a self,
        alert: &'a Alert,
        _: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>
    {
        Box::pin(async move {
            if alert.kind == AlertKind::Down {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(format!("rendered {}", alert.kind))
        })
    }
}

#[tokio::test]
async fn an_slo_pages_on_a_fast_burn_within_the_workbooks_detection_time_and_resets() {
    let c = Config::parse(
        Path::new("test.json"),
        br#"{"sites": [{"name": "api", "url": "http://api.test/", "interval": "60s", "timeout": "5s",
                        "slo": {"objective": "99.9%", "period": "30d"}},
                       {"name": "web", "url": "http://web.test/", "interval": "60s", "timeout": "5s"}],
            "alerting": {"threshold": 0.5, "window": "3m"},
            "dashboard": {"views": [{"window": "5m", "every": "10s"}]}}"#,
    )
    .unwrap();
    let (mut r, mut rx) = recorder_of(&c, Arc::new(TokioClock::starting_at(t0())));
    // Three simulated days of a probe a minute, all passing.
    let minute = |i: i64| i * 60;
    let healthy = 3 * 1440;
    for i in 0..healthy {
        r.record(probe("api", minute(i), true));
        r.record(probe("web", minute(i), true));
    }
    // Ten minutes of errors, then seven healthy hours.
    for i in healthy..healthy + 10 {
        r.record(probe("api", minute(i), false));
    }
    let during = r.report(0, false);
    assert_eq!(during.sites[0].slo.unwrap().burning, Some("page"));
    for i in healthy + 10..healthy + 10 + 7 * 60 {
        r.record(probe("api", minute(i), true));
    }
    let fired = alerts(&mut r, &mut rx).await;
    let slo: Vec<&Alert> = fired
        .iter()
        .filter(|a| a.kind.condition() == crate::alert::Condition::Slo)
        .collect();
    let kinds: Vec<(AlertKind, bool)> = slo
        .iter()
        .map(|a| (a.kind, a.message.contains("(page")))
        .collect();
    assert_eq!(
        kinds,
        [
            (AlertKind::SloBurn, true),
            (AlertKind::SloBurn, false),
            (AlertKind::SloBurnRecovered, true),
            (AlertKind::SloBurnRecovered, false),
        ],
        "a page, a ticket, each reset once: {slo:#?}"
    );
    let start = t0() + chrono::TimeDelta::seconds(minute(healthy));
    // 100% errors burn at 1000x: the workbook's detection time is 0.864 min; the first
    // failed probe pages.
    assert!(
        slo[0].time - start < chrono::TimeDelta::seconds(60),
        "{:?}",
        slo[0]
    );
    assert!(
        // One failure among the hour's 60 probes is 16.7x; among the 5 minutes', 200x.
        slo[0].message.starts_with("Website api burns its error budget: 16.7x over 1h and 200.0x over 5m (page: objective 99.9% over 30d, 77% of the budget left)"),
        "{}",
        slo[0].message
    );
    // The page resets within 30 minutes of the last error (6x over 6h and 30m holds until the
    // 30-minute window empties); the ticket once the errors leave the 6-hour window.
    let end = start + chrono::TimeDelta::minutes(10);
    assert!(
        slo[2].time - end <= chrono::TimeDelta::minutes(30),
        "{:?}",
        slo[2]
    );
    assert_eq!(slo[2].down_since, Some(slo[0].time));
    assert!(
        (slo[3].time - end - chrono::TimeDelta::hours(6)).abs() <= chrono::TimeDelta::minutes(2),
        "{:?}",
        slo[3]
    );
    assert!(
        fired.iter().all(|a| a.site.as_ref() == "api"),
        "web has no objective"
    );
    // 10 failed of 4,750 probes against 0.1% allowed: overspent 2.1 times.
    let report = r.report(0, false);
    let status = report.sites[0].slo.unwrap();
    assert_eq!(status.burning, None);
    let left = status.budget_left.unwrap();
    assert!(
        (left - (1.0 - (10.0 / 4750.0) / 0.001)).abs() < 1e-9,
        "{left}"
    );
    assert!(report.sites[1].slo.is_none());
}

#[tokio::test]
async fn a_flapping_site_says_so_once_holds_its_flips_and_says_when_it_settles() {
    let c = Config::parse(
        Path::new("test.json"),
        br#"{"sites": [{"name": "a", "url": "http://a.test/", "interval": "10s", "timeout": "5s"}],
            "alerting": {"threshold": 0.8, "window": "60s",
                         "flapping": {"changes": 2, "within": "10m"}},
            "dashboard": {"views": [{"window": "5m", "every": "10s"}]}}"#,
    )
    .unwrap();
    let (mut r, mut rx) = recorder_of(&c, Arc::new(TokioClock::starting_at(t0())));
    // Four cycles of 30 s down and 90 s up (8 changes in 8 minutes), then 15 minutes up.
    let mut secs = 0;
    for _ in 0..4 {
        for i in 0..12 {
            r.record(probe("a", secs, i >= 3));
            secs += 10;
        }
    }
    for _ in 0..90 {
        r.record(probe("a", secs, true));
        secs += 10;
    }
    let fired = alerts(&mut r, &mut rx).await;
    let kinds: Vec<(AlertKind, Option<&str>)> =
        fired.iter().map(|a| (a.kind, a.held.as_deref())).collect();
    let flapping = AlertKind::Flapping;
    let held = Some("flapping");
    assert_eq!(
        kinds,
        [
            (AlertKind::Down, None),
            (AlertKind::Recovered, None),
            // The third change: flapping, and that down is held.
            (flapping, None),
            (AlertKind::Down, held),
            (AlertKind::Recovered, held),
            (AlertKind::Down, held),
            (AlertKind::Recovered, held),
            (AlertKind::Down, held),
            (AlertKind::Recovered, held),
            (AlertKind::FlappingStopped, None),
        ],
        "{fired:#?}"
    );
    assert!(
        fired[2].message.contains("is flapping: 3 changes"),
        "{}",
        fired[2].message
    );
    assert!(
        fired[9].message.contains("it is up"),
        "{}",
        fired[9].message
    );
}

fn dependent_config() -> Config {
    Config::parse(
        Path::new("test.json"),
        br#"{"sites": [
              {"name": "router", "url": "http://router.test/", "interval": "10s", "timeout": "5s"},
              {"name": "db", "url": "http://db.test/", "interval": "10s", "timeout": "5s",
               "depends_on": ["router"]},
              {"name": "api", "url": "http://api.test/", "interval": "10s", "timeout": "5s",
               "depends_on": ["db"]}],
            "alerting": {"threshold": 0.8, "window": "60s"},
            "dashboard": {"views": [{"window": "5m", "every": "10s"}]}}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn a_down_behind_a_down_site_it_depends_on_is_held_and_alerts_if_it_outlasts_it() {
    let c = dependent_config();
    let (mut r, mut rx) = recorder_of(&c, Arc::new(TokioClock::starting_at(t0())));
    // Up for a minute, then all three down together for a minute (the router's probe first,
    // as it happens); then the router and the db come back, the api stays down a minute more.
    for i in 0..30 {
        let secs = i * 10;
        let down = (6..12).contains(&i);
        r.record(probe("router", secs, !down));
        r.record(probe("db", secs, !down));
        r.record(probe("api", secs, !(6..18).contains(&i)));
    }
    let fired = alerts(&mut r, &mut rx).await;
    let seen: Vec<(String, AlertKind, Option<String>)> = fired
        .iter()
        .map(|a| (a.site.to_string(), a.kind, a.held.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("router".into(), AlertKind::Down, None),
            ("db".into(), AlertKind::Down, Some("router down".into())),
            // Transitive: the db is down (held) too.
            ("api".into(), AlertKind::Down, Some("db down".into())),
            ("router".into(), AlertKind::Recovered, None),
            (
                "db".into(),
                AlertKind::Recovered,
                Some("its down alert was held (router down)".into())
            ),
            // The api outlasts what held it: it alerts at its next probe, and its recovery is
            // sent too.
            ("api".into(), AlertKind::Down, None),
            ("api".into(), AlertKind::Recovered, None),
        ],
        "{fired:#?}"
    );
    assert!(
        fired[1].message.ends_with("(held: router down)"),
        "{}",
        fired[1].message
    );
    assert!(
        fired[5]
            .message
            .contains("its alert was held while db down"),
        "{}",
        fired[5].message
    );
}

#[tokio::test]
async fn a_scenarios_outage_names_the_step_it_failed_in() {
    let (mut r, mut rx) = recorder();
    let step = |name: &str, failed: bool| crate::measurement::Step {
        name: name.into(),
        duration: std::time::Duration::from_millis(5),
        requests: 1,
        failed,
    };
    for i in 0..12 {
        let up = i < 6;
        let mut m = probe("a", i * 10, up);
        m.steps = vec![step("login", false), step("order", !up)];
        r.record(m);
    }
    let fired = alerts(&mut r, &mut rx).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(
        fired[0]
            .message
            .starts_with("Website a is down. availability=")
            && fired[0].message.contains(", failed step=order"),
        "{}",
        fired[0].message
    );
}

#[tokio::test(start_paused = true)]
async fn alerts_leave_in_the_order_they_were_decided_even_when_rendering_takes_longer() {
    let c = config();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0()));
    let bus = Bus::new(Arc::clone(&clock));
    let mut sub = bus.subscribe();
    let mut r = Recorder::new(&c, clock, bus, None).with_formatter(Arc::new(SlowForDown));
    r.set_sites(&targets(&c));
    // Covered for a minute, then a quick down and recovery: the recovery renders at once, the
    // down alert takes 200 ms.
    for s in (0..=60).step_by(10) {
        r.record(probe("a", s, true));
    }
    for s in [70, 80] {
        r.record(probe("a", s, false));
    }
    for s in (90..=200).step_by(10) {
        r.record(probe("a", s, true));
    }
    let fired = alerts(&mut r, &mut sub).await;
    let kinds: Vec<_> = fired.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::Down, AlertKind::Recovered]);
    assert_eq!(fired[0].rendered.as_deref(), Some("rendered down"));
    assert_eq!(fired[1].rendered.as_deref(), Some("rendered recovered"));
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
    assert_eq!(a.last_error.as_deref(), Some("connect: refused"));
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
    let checks = |r: &mut Recorder| -> Vec<(String, u32)> {
        r.report(0, false)
            .sites
            .iter()
            .map(|s| (s.site.to_string(), s.stats.checks))
            .collect()
    };
    assert_eq!(
        checks(&mut r),
        [("a".into(), 1), ("b".into(), 0), ("c".into(), 0)]
    );
    // A removed site's late measurement is dropped: nothing changes.
    r.record(probe("gone", 0, true));
    assert_eq!(
        checks(&mut r),
        [("a".into(), 1), ("b".into(), 0), ("c".into(), 0)]
    );
    assert_eq!(r.samples_held(), 1);
}

#[tokio::test]
async fn a_probe_of_an_earlier_generation_is_dropped() {
    let (mut r, _rx) = recorder();
    let c = config();
    let mut next = targets(&c);
    next[0].generation = 1;
    r.set_sites(&next);
    // Late: started under generation 0 (another URL or check), ended after the reload.
    r.record(probe("a", 0, false));
    let mut current = probe("a", 1, true);
    current.generation = 1;
    r.record(current);
    let a = &r.report(0, false).sites[0];
    assert_eq!((a.stats.checks, a.stats.availability), (1, Some(1.0)));
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
    r.restore("a", &history, std::slice::from_ref(&down));
    let report = r.report(0, false);
    assert_eq!(
        report.sites[0].stats.checks, 6,
        "the windows are full at once"
    );
    assert!(report.sites[0].down);
    // Still failing after the restart: no second down alert.
    r.record(probe("a", 1, false));
    assert!(alerts(&mut r, &mut rx).await.is_empty());
    // Recovery is reported against the stored down time.
    for s in (10..130).step_by(10) {
        r.record(probe("a", s, true));
    }
    let fired = alerts(&mut r, &mut rx).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, AlertKind::Recovered);
    assert_eq!(fired[0].down_since, Some(down.time));
}

#[tokio::test(start_paused = true)]
async fn a_restart_after_a_gap_waits_for_a_whole_window_of_new_probes() {
    let (mut r, mut rx) = recorder();
    // Stored history: up, ending 10 minutes ago (sitewatch was stopped since).
    let history: Vec<_> = (-900..=-600)
        .step_by(10)
        .map(|s| probe("a", s, true))
        .collect();
    r.restore("a", &history, &[]);
    // Restarted with the site failing: the first probe alone must not decide.
    for s in (0..60).step_by(10) {
        r.record(probe("a", s, false));
        assert!(alerts(&mut r, &mut rx).await.is_empty(), "fired at {s} s");
    }
    // Once new probes cover the 60 s window, the outage is reported.
    r.record(probe("a", 60, false));
    let fired = alerts(&mut r, &mut rx).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, AlertKind::Down);
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_step_neither_freezes_nor_empties_the_windows() {
    let clock = Arc::new(SteppingClock::starting_at(t0()));
    let (mut r, _rx) = recorder_with(clock.clone());
    // A probe every 10 s for a minute, placed on the clock's timeline.
    let record_now = |r: &mut Recorder| {
        let mut m = crate::measurement::testing::at("a", clock.now(), true);
        m.ended_us = clock.timeline_now_us();
        r.record(m);
    };
    for _ in 0..6 {
        record_now(&mut r);
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    let checks = |r: &mut Recorder| r.report(0, false).sites[0].stats.checks;
    assert_eq!(checks(&mut r), 6);
    // NTP steps the wall clock an hour forward: nothing leaves the 5-minute view.
    clock.step(chrono::TimeDelta::hours(1));
    assert_eq!(checks(&mut r), 6);
    // And an hour back: eviction still runs on time (5 minutes later everything has left).
    clock.step(chrono::TimeDelta::hours(-2));
    record_now(&mut r);
    assert_eq!(checks(&mut r), 7);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(checks(&mut r), 0);
}

#[tokio::test(start_paused = true)]
async fn overload_skips_are_one_episode_and_never_count_against_a_site() {
    let (r, mut rx) = recorder();
    let skips = Arc::new(Skips::new(8));
    let mut r = r.with_skips(Arc::clone(&skips));
    let c = config();
    let t = targets(&c);
    r.set_sites(&t);
    for _ in 0..100 {
        t[0].skipped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        skips.overloaded();
    }
    r.check_overload();
    skips.failed("Too many open files".into());
    r.record(probe("b", 0, true));
    let report = r.report(0, false);
    assert!(report.overloaded);
    assert_eq!(report.skipped_overload, 101);
    assert_eq!(report.sites[0].skipped_ticks, 100);
    assert_eq!(
        report.sites[0].stats.checks, 0,
        "a skipped tick is no probe"
    );
    tokio::time::advance(OVERLOAD_QUIET + Duration::from_secs(1)).await;
    r.record(probe("a", 0, true));
    let overloads: Vec<(OverloadState, u64, String)> = events(&mut rx)
        .iter()
        .filter_map(|e| match &**e {
            Event::Overload(o) => Some((o.state, o.skipped, o.detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(overloads.len(), 2, "{overloads:?}");
    assert_eq!(
        (overloads[0].0, overloads[0].1),
        (OverloadState::Started, 100)
    );
    assert!(
        overloads[0].2.contains("8 probes in flight"),
        "{}",
        overloads[0].2
    );
    assert_eq!(
        (overloads[1].0, overloads[1].1),
        (OverloadState::Ended, 101)
    );
    assert!(!r.report(0, false).overloaded);
}

#[tokio::test]
async fn a_reconfigure_publishes_what_is_watched_now() {
    let (mut r, mut rx) = recorder();
    let mut c = config();
    c.sites.remove(1);
    r.reconfigure(c.alerting.clone(), c.dashboard.views.clone(), &targets(&c));
    let watching: Vec<_> = events(&mut rx)
        .iter()
        .filter_map(|e| match &**e {
            Event::Watching(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(watching.len(), 1);
    let sites: Vec<&str> = watching[0].sites.iter().map(|s| &*s.site).collect();
    assert_eq!(sites, ["a"]);
    assert_eq!(watching[0].views, ["5m"]);
}

/// One site probed every 10 s, judged over 60 s, with a latency objective, a certificate
/// warning of 14 days and a maintenance window from 60 s to 180 s after t0.
fn rules_config() -> Config {
    let window_start = t0() + chrono::TimeDelta::seconds(60);
    let window_end = t0() + chrono::TimeDelta::seconds(180);
    let text = format!(
        r#"{{"sites": [{{"name": "a", "url": "https://a.test/", "interval": "10s", "timeout": "5s",
                       "alerting": {{"degraded": {{"response_p95": "500ms"}}}},
                       "maintenance": [{{"name": "upgrade", "start": "{}", "end": "{}"}}]}}],
            "alerting": {{"threshold": 0.8, "window": "60s"}},
            "dashboard": {{"views": [{{"window": "5m", "every": "10s"}}]}}}}"#,
        window_start.to_rfc3339(),
        window_end.to_rfc3339()
    );
    Config::parse(Path::new("test.json"), text.as_bytes()).unwrap()
}

fn rules_recorder() -> (Recorder, Subscription) {
    recorder_of(&rules_config(), Arc::new(TokioClock::starting_at(t0())))
}

/// (opened?, seconds after t0) of each maintenance event in `evs`.
fn maintenance_changes(evs: &[Arc<Event>]) -> Vec<(bool, i64)> {
    evs.iter()
        .filter_map(|e| match &**e {
            Event::Maintenance(m) => Some((m.started, (m.time - t0()).num_seconds())),
            _ => None,
        })
        .collect()
}

/// A probe of `a` at `secs` that took `ms` milliseconds (or failed), serving a chain that
/// expires at `expiry`.
fn timed(secs: i64, up: bool, ms: u64, expiry: Option<DateTime<Utc>>) -> Measurement {
    let mut m = probe("a", secs, up);
    if up {
        m.response_time = Some(Duration::from_millis(ms));
        m.ttfb = Some(Duration::from_millis(ms / 2));
    }
    m.tls = expiry.map(|not_after| {
        Arc::new(crate::measurement::TlsDetails {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            chain: vec![crate::measurement::CertInfo {
                subject: "CN=a.test".into(),
                issuer: "CN=test CA".into(),
                sans: vec!["a.test".into()],
                not_before: t0() - chrono::TimeDelta::days(30),
                not_after,
                serial: "01".into(),
                fingerprint_sha256: "ab".repeat(32),
            }],
        })
    });
    m
}

fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, i64)> {
    alerts
        .iter()
        .map(|a| (a.kind, (a.time - t0()).num_seconds()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn maintenance_holds_the_down_alert_until_the_window_ends_and_marks_its_probes() {
    let (mut r, mut sub) = rules_recorder();
    // Up until 100 s, then down to the end; the window is 60 s to 180 s.
    for i in 0..=25 {
        r.record(timed(i * 10, i * 10 < 100, 50, None));
    }
    let evs = events(&mut sub);
    let marked: Vec<i64> = evs
        .iter()
        .filter_map(|e| match &**e {
            Event::Probe(m) if m.maintenance => Some((m.time - t0()).num_seconds()),
            _ => None,
        })
        .collect();
    assert_eq!(marked, (60..180).step_by(10).collect::<Vec<_>>());
    let changes = maintenance_changes(&evs);
    assert_eq!(changes, [(true, 60), (false, 180)]);
    // Down from 100 s: the window would have fired at 120 s; it fires at the first probe after
    // the maintenance ends.
    let fired = alerts(&mut r, &mut sub).await;
    assert_eq!(kinds(&fired), [(AlertKind::Down, 180)]);
}

#[tokio::test(start_paused = true)]
async fn degraded_then_down_then_up_is_three_alerts_and_down_wins_meanwhile() {
    let (mut r, mut sub) = rules_recorder();
    // Out of the maintenance window: from 200 s. Fast until 300, slow until 400, down until
    // 500, then up and fast.
    for i in 20..=70 {
        let s = i * 10;
        let (up, ms) = match s {
            _ if s < 300 => (true, 50),
            _ if s < 400 => (true, 900),
            _ if s < 500 => (false, 0),
            _ => (true, 50),
        };
        r.record(timed(s, up, ms, None));
        if s == 450 {
            let report = r.report(0, false);
            assert!(
                report.sites[0].down && !report.sites[0].degraded,
                "down wins"
            );
        }
    }
    let fired = alerts(&mut r, &mut sub).await;
    let got: Vec<AlertKind> = fired.iter().map(|a| a.kind).collect();
    assert_eq!(
        got,
        [
            AlertKind::Degraded,
            AlertKind::Down,
            AlertKind::Recovered,
            AlertKind::DegradedRecovered
        ]
    );
    let degraded = &fired[0];
    assert!(
        degraded
            .message
            .starts_with("Website a is degraded. p95 response=900ms over 500ms"),
        "{}",
        degraded.message
    );
    assert_eq!(degraded.latency.map(|l| l.value_ms), Some(900.0));
    // The slow probes fill the 6-probe window's p95 on the first slow one.
    assert_eq!((degraded.time - t0()).num_seconds(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_certificate_close_to_expiry_warns_once_and_a_renewal_clears_it() {
    let (mut r, mut sub) = rules_recorder();
    let soon = t0() + chrono::TimeDelta::days(3);
    let renewed = t0() + chrono::TimeDelta::days(90);
    for i in 20..=40 {
        let s = i * 10;
        r.record(timed(
            s,
            true,
            50,
            Some(if s < 300 { soon } else { renewed }),
        ));
    }
    let fired = alerts(&mut r, &mut sub).await;
    assert_eq!(
        kinds(&fired),
        [
            (AlertKind::CertExpiring, 200),
            (AlertKind::CertRenewed, 300)
        ]
    );
    assert!(
        fired[0]
            .message
            .starts_with("Website a certificate expires in 2 days (not after"),
        "{}",
        fired[0].message
    );
    assert_eq!(fired[0].cert_expiry, Some(soon));
    let report = r.report(0, false);
    assert_eq!(report.sites[0].cert_expiry, Some(renewed));
    assert!(!report.sites[0].cert_warning);
}

#[tokio::test(start_paused = true)]
async fn an_expired_certificate_is_a_tls_failure_not_a_certificate_warning() {
    let (mut r, mut sub) = rules_recorder();
    for i in 20..=30 {
        let mut m = timed(i * 10, false, 0, Some(t0() - chrono::TimeDelta::days(1)));
        m.error = Some(crate::measurement::ProbeError {
            kind: crate::measurement::ErrorKind::Tls,
            message: "invalid peer certificate: Expired".into(),
        });
        r.record(m);
    }
    let fired = alerts(&mut r, &mut sub).await;
    assert_eq!(kinds(&fired), [(AlertKind::Down, 260)]);
}

#[tokio::test(start_paused = true)]
async fn a_late_probe_from_inside_a_closed_window_is_marked_but_does_not_reopen_it() {
    let (mut r, mut sub) = rules_recorder();
    for i in 0..=17 {
        r.record(timed(i * 10, true, 50, None));
    }
    // The report at 185 s sees the window (60 s to 180 s) closed.
    tokio::time::advance(Duration::from_secs(185)).await;
    r.report(0, false);
    // A probe that ended at 175 s arrives only now.
    r.record(timed(175, true, 50, None));
    let evs = events(&mut sub);
    let late = evs
        .iter()
        .rev()
        .find_map(|e| match &**e {
            Event::Probe(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert!(late.maintenance, "marked by its own time");
    let changes = maintenance_changes(&evs);
    assert_eq!(changes, [(true, 60), (false, 185)]);
}

/// The probe events published so far, as (site, ended_us).
fn placed(sub: &mut Subscription) -> Vec<(String, i64)> {
    events(sub)
        .iter()
        .filter_map(|e| match &**e {
            Event::Probe(m) => Some((m.site.to_string(), m.ended_us)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_measurement_waits_for_a_probe_that_started_before_it_ended_and_all_are_placed_in_end_order()
 {
    let c = config();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0()));
    let bus = Bus::new(Arc::clone(&clock));
    let mut sub = bus.subscribe();
    let mut r = Recorder::new(&c, Arc::clone(&clock), bus, None);
    let ts = targets(&c);
    r.set_sites(&ts);
    let running = Arc::clone(&ts[0].running);
    let base = probe("a", 0, true).ended_us;
    // Probe 1 starts at +0 s; probe 2 at +1 s. Probe 2 (ended +2 s) arrives first: probe 1,
    // whose slow check is still running, may end before it.
    let p1 = running.begin(base);
    let p2 = running.begin(base + 1_000_000);
    let mut m2 = probe("a", 0, true);
    m2.ended_us = base + 2_000_000;
    m2.probe_id = p2.id();
    p2.handed_over();
    r.record(m2);
    assert!(placed(&mut sub).is_empty(), "held while probe 1 runs");
    // A probe of another site is not held by it.
    r.record(probe("b", 0, true));
    assert_eq!(placed(&mut sub).len(), 1);
    // Probe 1 arrives (it ended at +1.5 s): both are placed, in end order.
    let mut m1 = probe("a", 0, false);
    m1.ended_us = base + 1_500_000;
    m1.probe_id = p1.id();
    p1.handed_over();
    r.record(m1);
    assert_eq!(
        placed(&mut sub),
        [
            ("a".to_owned(), base + 1_500_000),
            ("a".to_owned(), base + 2_000_000)
        ]
    );
    // A probe that ends without a measurement (aborted) lets what waited go at the next look.
    let p3 = running.begin(base + 3_000_000);
    let mut m4 = probe("a", 0, true);
    m4.ended_us = base + 4_000_000;
    let p4 = running.begin(base + 3_500_000);
    m4.probe_id = p4.id();
    p4.handed_over();
    r.record(m4);
    assert!(placed(&mut sub).is_empty());
    drop(p3);
    r.release_all(false);
    assert_eq!(placed(&mut sub), [("a".to_owned(), base + 4_000_000)]);
    // Probes that do not overlap are placed at once.
    let p5 = running.begin(base + 5_000_000);
    let mut m5 = probe("a", 0, true);
    m5.ended_us = base + 5_100_000;
    m5.probe_id = p5.id();
    p5.handed_over();
    r.record(m5);
    assert_eq!(placed(&mut sub).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_held_longer_than_the_longest_a_probe_can_run() {
    let c = config();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0()));
    let bus = Bus::new(Arc::clone(&clock));
    let mut sub = bus.subscribe();
    let mut r = Recorder::new(&c, Arc::clone(&clock), bus, None);
    let ts = targets(&c);
    r.set_sites(&ts);
    let now = clock.timeline_now_us();
    // A probe that started long ago never reports (and its guard is kept).
    let _stuck = ts[0].running.begin(now - 60_000_000);
    let mut m = probe("a", 0, true);
    m.ended_us = now;
    r.record(m);
    assert!(placed(&mut sub).is_empty());
    // The timeout (5 s) and a second later, it is placed anyway.
    tokio::time::advance(Duration::from_secs(7)).await;
    r.release_all(false);
    assert_eq!(placed(&mut sub).len(), 1);
}
