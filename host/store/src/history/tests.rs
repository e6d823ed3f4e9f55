//! The rollups against the raw rows they come from: every tier, every period kind, the raw
//! tail after the last checkpoint, an upgrade from a store without rollups, a damaged row, and
//! the errors of the report.

use super::*;
use crate::Store;
use crate::clock::SystemClock;
use crate::event::Bus;
use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError};
use crate::writer::{self, Record, WriterOptions};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;

/// `n` probes of `site` every `step` up to about `now`: latencies spread over three orders of
/// magnitude, 5% 503s, 3% timeouts, and some in a maintenance stretch.
fn probes(site: &str, n: i64, step: TimeDelta, now: DateTime<Utc>, seed: u64) -> Vec<Measurement> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|k| {
            let time = now - step * (n - k) as i32 - TimeDelta::milliseconds(rng.i64(0..900));
            let roll = rng.u8(..100);
            let (ok, status, error) = match roll {
                0..=4 => (false, Some(503), Some(ErrorKind::Status)),
                5..=7 => (false, None, Some(ErrorKind::Timeout)),
                _ => (true, Some(200), None),
            };
            let response = (status.is_some()).then(|| {
                let base = rng.u64(800..4000);
                Duration::from_micros(if rng.u8(..20) == 0 {
                    base * rng.u64(10..300)
                } else {
                    base
                })
            });
            let mut m = Measurement {
                domain_expiry: None,
                redirect: None,
                probe_id: 0,
                steps: Vec::new(),
                location: None,
                site: site.into(),
                url: format!("http://{site}.test/").into(),
                time,
                ok,
                status,
                ttfb: response.map(|r| r / 2),
                response_time: response,
                body_bytes: 10,
                body_truncated: false,
                phases: Phases::default(),
                error: error.map(|kind| ProbeError {
                    kind,
                    message: "failed".into(),
                }),
                duration: response.unwrap_or(Duration::from_secs(2)),
                ended_us: 0,
                generation: 0,
                schedule_lag: Duration::ZERO,
                metrics: Vec::new(),
                tls: None,
                maintenance: k % 97 < 6,
            };
            m.ended_us = m.finished_at().timestamp_micros();
            m
        })
        .collect()
}

/// The stored rollups are exactly those of the raw rows (`rebuild-rollups --check`).
fn assert_consistent(store: &Store) {
    let mut conn = store.connect().unwrap();
    let found = rebuild(&mut conn, true).unwrap();
    assert_eq!(found.differing, 0, "{found:?}");
}

/// An empty store in a temporary directory (gone with the directory).
fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn options(rollup_every: Duration) -> WriterOptions {
    WriterOptions {
        flush_every: Duration::from_millis(20),
        retention: Retention::default(),
        rollup_every,
        rollups: true,
        outbox: false,
        location: "test".into(),
    }
}

/// Writes through a writer thread that stays running; returns its handle and thread.
fn writer_with(
    store: &Store,
    rollup_every: Duration,
) -> (
    writer::StoreHandle,
    std::thread::JoinHandle<Result<(), writer::Unsaved>>,
) {
    let clock: crate::clock::SharedClock = Arc::new(SystemClock::new());
    writer::spawn(
        store.clone(),
        options(rollup_every),
        Arc::clone(&clock),
        Bus::new(clock),
    )
}

fn write(store: &Store, ms: &[Measurement]) {
    let (h, t) = writer_with(store, DEFAULT_ROLLUP_EVERY);
    for m in ms {
        h.send(Record::Measurement(m.clone()));
    }
    drop(h);
    t.join().unwrap().expect("every record stored");
}

fn request(since: Duration, by: Option<By>) -> Request {
    Request {
        since,
        site: None,
        by,
        sla: None,
        calendar: Calendar::default(),
        include_maintenance: false,
    }
}

const DAY: Duration = Duration::from_secs(86_400);

/// Each row of `a` against the exact figures of `all` over the same site and span: counts,
/// availability, averages and maxima equal; percentiles within the stated error.
fn assert_exact(a: &Answer, all: &[Measurement], include_maintenance: bool) {
    assert!(!a.rows.is_empty());
    for r in &a.rows {
        let (from, to) = match r.period {
            Some(p) => (p.start, p.end.min(a.to)),
            None => (a.from, a.to),
        };
        let raw: Vec<&Measurement> = all
            .iter()
            .filter(|m| *m.site == *r.site && m.time >= from && m.time < to)
            .filter(|m| include_maintenance || !m.maintenance)
            .collect();
        let exact = crate::stats::summarize(raw.iter().copied());
        let got = &r.stats;
        let at = format!("{} {:?} from {}", r.site, a.source, from);
        assert_eq!(got.checks, exact.checks, "{at}");
        assert_eq!(got.ok, exact.ok, "{at}");
        assert_eq!(got.availability, exact.availability, "{at}");
        assert_eq!(got.status_codes, exact.status_codes, "{at}");
        assert_eq!(got.ttfb_ms, exact.ttfb_ms, "{at}");
        match (got.response_ms, exact.response_ms) {
            (None, None) => {}
            (Some(g), Some(e)) => {
                assert_eq!((g.avg, g.max), (e.avg, e.max), "{at}");
                for (gp, ep) in [(g.p50, e.p50), (g.p95, e.p95), (g.p99, e.p99)] {
                    assert!(
                        (gp - ep).abs() <= ep * RELATIVE_ERROR + 0.001,
                        "{at}: percentile {gp} vs exact {ep}"
                    );
                }
            }
            other => panic!("{at}: {other:?}"),
        }
        let maintenance = all
            .iter()
            .filter(|m| *m.site == *r.site && m.time >= from && m.time < to && m.maintenance)
            .count() as u32;
        assert_eq!(
            r.maintenance_probes,
            if include_maintenance { 0 } else { maintenance },
            "{at}"
        );
    }
}

#[test]
fn every_tier_and_period_agrees_with_the_raw_rows_before_and_after_the_checkpoint() {
    let (_dir, store) = fresh_store();
    let now = Utc::now();
    let mut all = probes("a", 4000, TimeDelta::seconds(60), now, 1);
    all.extend(probes("b", 1500, TimeDelta::seconds(170), now, 2));
    // A writer that does not checkpoint yet: every row is the raw tail.
    let (h, t) = writer_with(&store, Duration::from_secs(3600));
    for m in &all {
        h.send(Record::Measurement(m.clone()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let check = |label: &str| {
        let later = Utc::now();
        let retention = Retention::default();
        for by in [By::Day, By::Week, By::Month] {
            let a = report(&store, &request(5 * DAY, Some(by)), &retention, later).unwrap();
            assert_eq!(
                a.source,
                Source::Tier(Tier::Day),
                "{label} {by:?}: the coarsest aligned tier"
            );
            assert_exact(&a, &all, false);
        }
        // A zone half an hour off UTC: only minute cells line up with its days.
        let mut kolkata = request(3 * DAY, Some(By::Day));
        kolkata.calendar.tz = "Asia/Kolkata".parse().unwrap();
        let a = report(&store, &kolkata, &retention, later).unwrap();
        assert_eq!(a.source, Source::Tier(Tier::Minute), "{label}");
        assert!(a.exact_boundaries);
        assert_exact(&a, &all, false);
        // Totals from the finest covering tier: minute, then hour when minutes are not kept.
        let short = Retention {
            raw: DAY,
            minute: 2 * DAY,
            ..retention
        };
        let a = report(&store, &request(DAY + DAY / 2, None), &short, later).unwrap();
        assert_eq!(a.source, Source::Tier(Tier::Minute));
        assert_exact(&a, &all, false);
        let a = report(&store, &request(3 * DAY, None), &short, later).unwrap();
        assert_eq!(a.source, Source::Tier(Tier::Hour));
        assert_exact(&a, &all, false);
        let mut with = request(3 * DAY, None);
        with.include_maintenance = true;
        let a = report(&store, &with, &short, later).unwrap();
        assert_exact(&a, &all, true);
        // Within the raw retention, raw rows answer: exact.
        let a = report(&store, &request(2 * DAY, None), &retention, later).unwrap();
        assert_eq!(a.source, Source::Raw);
        assert_eq!(a.source.percentile_error(), None);
    };
    check("raw tail");
    drop(h);
    t.join().unwrap().expect("every record stored");
    let conn = store.connect().unwrap();
    let tail: Option<i64> = conn
        .query_row("SELECT tail_from_us FROM rollup_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tail, None, "the shutdown checkpoint leaves no tail");
    check("checkpointed");
    assert_consistent(&store);
}

#[test]
fn a_store_without_rollups_gets_them_and_a_damaged_row_is_rebuilt() {
    let (_dir, store) = fresh_store();
    let now = Utc::now();
    let all = probes("a", 3000, TimeDelta::seconds(30), now, 3);
    write(&store, &all);
    // As a store from before the rollups: raw rows only.
    let conn = store.connect().unwrap();
    conn.execute_batch(
        "DELETE FROM rollup_minute; DELETE FROM rollup_hour; DELETE FROM rollup_day; DELETE FROM rollup_state;",
    )
    .unwrap();
    drop(conn);
    // The next writer rolls the raw rows up before it writes anything.
    write(&store, &[]);
    let a = report(
        &store,
        &request(2 * DAY, Some(By::Day)),
        &Retention::default(),
        Utc::now(),
    )
    .unwrap();
    assert_exact(&a, &all, false);

    assert_consistent(&store);
    let mut conn = store.connect().unwrap();
    conn.execute(
        "UPDATE rollup_hour SET data = x'00ff' WHERE key = (SELECT MAX(key) FROM rollup_hour)",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE rollup_day SET data = (SELECT data FROM rollup_minute LIMIT 1)",
        [],
    )
    .unwrap();
    let found = rebuild(&mut conn, true).unwrap();
    assert!(found.differing > 0, "{found:?}");
    let fixed = rebuild(&mut conn, false).unwrap();
    assert_eq!(fixed.differing, found.differing);
    assert_consistent(&store);
    let a = report(
        &store,
        &request(2 * DAY, Some(By::Day)),
        &Retention::default(),
        Utc::now(),
    )
    .unwrap();
    assert_exact(&a, &all, false);
}

#[test]
fn a_failed_write_loses_no_rollup() {
    let (_dir, store) = fresh_store();
    let now = Utc::now();
    let all = probes("a", 600, TimeDelta::seconds(10), now, 4);
    let clock: crate::clock::SharedClock = Arc::new(SystemClock::new());
    let bus = Bus::new(Arc::clone(&clock));
    let mut events = bus.subscribe();
    let (h, t) = writer::spawn(store.clone(), options(Duration::from_millis(1)), clock, bus);
    for m in &all[..300] {
        h.send(Record::Measurement(m.clone()));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Writes fail while another connection holds the write lock, then succeed again.
    let conn = store.connect().unwrap();
    conn.execute_batch("BEGIN IMMEDIATE;").unwrap();
    for m in &all[300..] {
        h.send(Record::Measurement(m.clone()));
    }
    std::thread::sleep(Duration::from_millis(5500));
    conn.execute_batch("COMMIT").unwrap();
    drop(h);
    t.join().unwrap().expect("every record stored");
    let mut failed = false;
    while let Some(r) = events.try_recv() {
        if let crate::event::Received::Event(e) = r
            && let crate::event::Event::Error(e) = &*e
        {
            failed |= e.message.starts_with("cannot write to the store");
        }
    }
    assert!(failed, "a write failed while the lock was held");
    let a = report(
        &store,
        &request(DAY, Some(By::Day)),
        &Retention::default(),
        Utc::now(),
    )
    .unwrap();
    assert_exact(&a, &all, false);
    assert_consistent(&store);
}

#[test]
fn reports_say_what_they_cannot_answer() {
    let (_dir, store) = fresh_store();
    let now = Utc::now();
    write(
        &store,
        &probes(
            "a",
            100,
            TimeDelta::seconds(60),
            now - TimeDelta::days(3),
            5,
        ),
    );
    let retention = Retention::default();
    let e = report(
        &store,
        &request(2000 * DAY, Some(By::Month)),
        &retention,
        now,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--since 2000d reaches back further than the store keeps anything (raw rows 7d, minute \
         rollups 30d, hour rollups 365d, day rollups 1825d; storage.retention)"
    );
    let mut one = request(10 * DAY, Some(By::Day));
    one.site = Some("nope".into());
    assert_eq!(
        report(&store, &one, &retention, now)
            .unwrap_err()
            .to_string(),
        "no data for site \"nope\" in the last 10d"
    );
    // Days without probes are "no data", never 0%.
    let a = report(&store, &request(10 * DAY, Some(By::Day)), &retention, now).unwrap();
    assert_eq!(a.rows.len(), 11);
    let empty = a
        .rows
        .iter()
        .filter(|r| r.stats.availability.is_none())
        .count();
    assert!(empty >= 8, "{empty}");
    assert!(a.rows.iter().any(|r| r.stats.availability.is_some()));
    let mut plain = Vec::new();
    super::write(&a, ReportFormat::Plain, &mut plain).unwrap();
    let plain = String::from_utf8(plain).unwrap();
    assert!(
        plain.contains("no data") && !plain.contains(" 0.000%"),
        "{plain}"
    );
    let mut sla = request(10 * DAY, None);
    sla.sla = Some(100.0);
    assert!(matches!(
        report(&store, &sla, &retention, now),
        Err(HistoryError::BadSla(_))
    ));
}

#[test]
fn incidents_downtime_and_the_error_budget() {
    let (_dir, store) = fresh_store();
    let now: DateTime<Utc> = "2026-12-02T12:00:00Z".parse().unwrap();
    // 1,000 probes a minute apart yesterday and today, 10 of them failed.
    let day_start: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let ms: Vec<Measurement> = (0..1000)
        .map(|k| {
            let mut m = crate::measurement::testing::sample("a", k % 100 != 0);
            m.time = day_start + TimeDelta::minutes(k);
            m.ended_us = m.finished_at().timestamp_micros();
            m
        })
        .collect();
    let alert = |kind: crate::alert::AlertKind, at: &str, since: Option<&str>| {
        let time: DateTime<Utc> = at.parse().unwrap();
        let down_since = since.map(|s| s.parse::<DateTime<Utc>>().unwrap());
        Record::Alert(
            crate::alert::Alert {
                kind,
                site: "a".into(),
                url: "http://a.test/".into(),
                availability: 0.5,
                time,
                down_since,
                down_for: down_since.map(|d| (time - d).to_std().unwrap()),
                latency: None,
                cert_expiry: None,
                message: "m".into(),
                rendered: None,
                held: None,
            },
            Vec::new(),
        )
    };
    use crate::alert::AlertKind::{Down, Recovered};
    let (h, t) = writer_with(&store, DEFAULT_ROLLUP_EVERY);
    for m in ms {
        h.send(Record::Measurement(m));
    }
    // 23:50 to 00:20 across midnight, and 06:00 to 06:05.
    h.send(alert(Down, "2026-12-01T23:50:00Z", None));
    h.send(alert(
        Recovered,
        "2026-12-02T00:20:00Z",
        Some("2026-12-01T23:50:00Z"),
    ));
    h.send(alert(Down, "2026-12-02T06:00:00Z", None));
    h.send(alert(
        Recovered,
        "2026-12-02T06:05:00Z",
        Some("2026-12-02T06:00:00Z"),
    ));
    drop(h);
    t.join().unwrap().expect("every record stored");
    let retention = Retention::default();
    let a = report(
        &store,
        &request(DAY + DAY / 4, Some(By::Day)),
        &retention,
        now,
    )
    .unwrap();
    let days: Vec<(u64, u32)> = a
        .rows
        .iter()
        .map(|r| (r.downtime.as_secs(), r.incidents))
        .collect();
    assert_eq!(days, [(600, 1), (1500, 2)]);
    let mut sla = request(DAY + DAY / 2, None);
    sla.sla = Some(99.0);
    let a = report(
        &store,
        &sla,
        &Retention {
            raw: DAY,
            ..retention
        },
        now,
    )
    .unwrap();
    let v = to_json(&a);
    let site = &v["sites"][0];
    let span = (now - day_start).num_seconds() as f64;
    assert_eq!(site["uptime"], 0.99);
    assert!((site["allowed_downtime_s"].as_f64().unwrap() - 0.01 * span).abs() < 1e-6);
    assert!((site["downtime_s"].as_f64().unwrap() - 0.01 * span).abs() < 1e-6);
    assert!(site["budget_left_s"].as_f64().unwrap().abs() < 1e-6);
    assert_eq!(site["incidents"], 2);
    assert_eq!(site["longest_incident_s"], 1800.0);
    let mut csv = Vec::new();
    super::write(&a, ReportFormat::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.starts_with("site,url,uptime,probes,objective,allowed_downtime_s,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 2);
}

#[test]
fn rebuild_fills_a_store_that_never_had_rollups() {
    let (_dir, store) = fresh_store();
    let all = probes("a", 2000, TimeDelta::seconds(20), Utc::now(), 6);
    write(&store, &all);
    let conn = store.connect().unwrap();
    conn.execute_batch(
        "DROP TABLE rollup_minute; DROP TABLE rollup_hour; DROP TABLE rollup_day; DROP TABLE rollup_state;",
    )
    .unwrap();
    drop(conn);
    let mut conn = store.connect_for_writing().unwrap();
    let r = rebuild(&mut conn, false).unwrap();
    assert_eq!(r.differing, 0, "{r:?}");
    let a = report(
        &store,
        &request(DAY, Some(By::Day)),
        &Retention::default(),
        Utc::now(),
    )
    .unwrap();
    assert_exact(&a, &all, false);
}

/// `probes` of a script site: each run has a `login` and an `orders` step (which fails when the
/// run does), and every seventh an `order` step too.
fn scripted(
    site: &str,
    n: i64,
    step: TimeDelta,
    now: DateTime<Utc>,
    seed: u64,
) -> Vec<Measurement> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut all = probes(site, n, step, now, seed);
    for (k, m) in all.iter_mut().enumerate() {
        let s = |name: &str, us: u64, failed: bool| crate::measurement::Step {
            name: name.into(),
            duration: Duration::from_micros(us),
            requests: 1,
            failed,
        };
        m.steps = vec![
            s("login", rng.u64(1000..90_000), false),
            s("orders", rng.u64(500..5000), !m.ok),
        ];
        if k % 7 == 0 {
            m.steps.push(s("order", rng.u64(100..300), false));
        }
    }
    all
}

/// Each step's figures in a report agree with the raw rows: runs, failures, average and
/// maximum exactly, the p95 within the sketch's error; before and after the checkpoint, and
/// after the rollups are rebuilt from the raw rows.
#[test]
fn step_figures_roll_up_and_agree_with_the_raw_rows() {
    let (_dir, store) = fresh_store();
    let now = Utc::now();
    let all = scripted("s", 3000, TimeDelta::seconds(90), now, 9);
    let check = |label: &str| {
        let retention = Retention::default();
        for (req, rolled_up) in [
            (request(3 * DAY, Some(By::Day)), true),
            (request(8 * DAY, None), true),
            (request(4 * DAY, None), false),
        ] {
            let a = report(&store, &req, &retention, Utc::now()).unwrap();
            assert_eq!(matches!(a.source, Source::Tier(_)), rolled_up, "{label}");
            for r in &a.rows {
                let (from, to) = match r.period {
                    Some(p) => (p.start, p.end.min(a.to)),
                    None => (a.from, a.to),
                };
                let raw: Vec<&Measurement> = all
                    .iter()
                    .filter(|m| m.time >= from && m.time < to && !m.maintenance)
                    .collect();
                let exact = crate::stats::summarize(raw.iter().copied());
                assert_eq!(r.stats.steps.len(), exact.steps.len(), "{label}");
                assert_eq!(r.stats.steps.len(), 3, "{label}");
                for (g, e) in r.stats.steps.iter().zip(&exact.steps) {
                    assert_eq!(
                        (&g.name, g.runs, g.failed, g.avg_ms, g.max_ms),
                        (&e.name, e.runs, e.failed, e.avg_ms, e.max_ms),
                        "{label}"
                    );
                    assert!(
                        (g.p95_ms - e.p95_ms).abs() <= e.p95_ms * RELATIVE_ERROR + 0.001,
                        "{label} {}: p95 {} vs exact {}",
                        g.name,
                        g.p95_ms,
                        e.p95_ms
                    );
                }
            }
        }
    };
    let (h, t) = writer_with(&store, Duration::from_secs(3600));
    for m in &all {
        h.send(Record::Measurement(m.clone()));
    }
    std::thread::sleep(Duration::from_millis(500));
    check("raw tail");
    drop(h);
    t.join().unwrap().expect("every record stored");
    check("checkpointed");
    assert_consistent(&store);
    // Rolled up again from the raw rows alone.
    store
        .connect()
        .unwrap()
        .execute_batch(
            "DELETE FROM rollup_minute; DELETE FROM rollup_hour; DELETE FROM rollup_day; DELETE FROM rollup_state;",
        )
        .unwrap();
    write(&store, &[]);
    check("caught up");
}
