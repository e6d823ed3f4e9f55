use super::*;
use crate::measurement::{ErrorKind, Phases, ProbeError};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::TimeDelta::seconds(secs)
}

/// The timeline position of `at(secs)` (the timeline equals the wall clock here).
fn us(secs: i64) -> i64 {
    at(secs).timestamp_micros()
}

fn ok(secs: i64, status: u16, ttfb_ms: u64, resp_ms: u64) -> Measurement {
    Measurement {
        domain_expiry: None,
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
        site: Arc::from("s"),
        url: Arc::from("http://s/"),
        // Placed at start + response time; start early so the sample lands on `secs`.
        time: at(secs) - chrono::TimeDelta::milliseconds(resp_ms as i64),
        ok: (200..300).contains(&status),
        status: Some(status),
        ttfb: Some(Duration::from_millis(ttfb_ms)),
        response_time: Some(Duration::from_millis(resp_ms)),
        body_bytes: 0,
        body_truncated: false,
        phases: Phases::default(),
        error: (!(200..300).contains(&status)).then(|| ProbeError {
            kind: ErrorKind::Status,
            message: "bad".into(),
        }),
        duration: Duration::from_millis(resp_ms),
        ended_us: us(secs),
        generation: 0,
        schedule_lag: Duration::ZERO,
        metrics: Vec::new(),
        tls: None,
        maintenance: false,
    }
}

fn failed(secs: i64, kind: ErrorKind) -> Measurement {
    Measurement {
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
        time: at(secs),
        ok: false,
        status: None,
        ttfb: None,
        response_time: None,
        error: Some(ProbeError {
            kind,
            message: "x".into(),
        }),
        duration: Duration::ZERO,
        ..ok(secs, 200, 0, 0)
    }
}

fn views() -> SiteWindows {
    SiteWindows::new(&[
        WindowSpec {
            span: Duration::from_secs(120),
            timings: false,
        },
        WindowSpec {
            span: Duration::from_secs(600),
            timings: true,
        },
    ])
}

#[test]
fn empty_window_has_no_data_not_zero() {
    let w = views();
    let s = w.stats(1);
    assert_eq!(s.checks, 0);
    assert_eq!(s.availability, None);
    assert_eq!(s.response_ms, None);
    assert_eq!(s.ttfb_ms, None);
    assert!(s.status_codes.is_empty());
}

#[test]
fn aggregates_match_a_direct_computation() {
    let mut w = views();
    w.push(&ok(1, 200, 10, 20));
    w.push(&ok(2, 200, 30, 40));
    w.push(&ok(3, 503, 5, 6));
    w.push(&failed(4, ErrorKind::Timeout));
    let s = w.stats(1);
    assert_eq!(s.checks, 4);
    assert_eq!(s.ok, 2);
    assert_eq!(s.availability, Some(0.5));
    let r = s.response_ms.unwrap();
    assert_eq!(r.avg, 22.0);
    assert_eq!(r.max, 40.0);
    assert_eq!(r.p50, 20.0);
    assert_eq!(r.p99, 40.0);
    let t = s.ttfb_ms.unwrap();
    assert_eq!(t.avg, 15.0, "timings exclude the probe without a response");
    assert_eq!(t.max, 30.0);
    let codes: Vec<_> = s.status_codes.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(codes, [("200", 2), ("503", 1), ("timeout", 1)]);
    // The alert window keeps counts only.
    assert_eq!(w.stats(0).response_ms, None);
    assert_eq!(w.availability(0), Some(0.5));
}

#[test]
fn samples_leave_each_window_at_its_own_span() {
    let mut w = views();
    w.push(&ok(0, 200, 1, 1));
    w.push(&failed(100, ErrorKind::Connect));
    assert_eq!(w.availability(0), Some(0.5));
    // At 120 s the first sample is exactly one span old: out of the 2-minute window.
    w.advance(us(120));
    assert_eq!(w.availability(0), Some(0.0));
    assert_eq!(w.availability(1), Some(0.5));
    w.advance(us(221));
    assert_eq!(
        w.availability(0),
        None,
        "an empty window has no availability"
    );
    assert_eq!(w.stats(1).checks, 2);
    w.advance(us(700));
    assert_eq!(w.stats(1).checks, 0);
    assert!(w.is_empty(), "samples outside every window are dropped");
}

#[test]
fn max_and_percentiles_roll_with_the_window() {
    let mut w = SiteWindows::new(&[WindowSpec {
        span: Duration::from_secs(10),
        timings: true,
    }]);
    w.push(&ok(0, 200, 900, 1000)); // a spike that will leave the window
    for i in 1..=9 {
        w.push(&ok(i, 200, 5, 10 * i as u64));
    }
    assert_eq!(w.stats(0).response_ms.unwrap().max, 1000.0);
    w.advance(us(10));
    let s = w.stats(0);
    let r = s.response_ms.unwrap();
    assert_eq!(s.checks, 9);
    assert_eq!(r.max, 90.0);
    assert_eq!(r.p50, 50.0);
    assert_eq!(s.ttfb_ms.unwrap().max, 5.0);
}

#[test]
fn out_of_order_completions_keep_the_queue_ordered() {
    let mut w = SiteWindows::new(&[WindowSpec {
        span: Duration::from_secs(10),
        timings: true,
    }]);
    w.push(&ok(5, 200, 1, 1));
    let placed = w.push(&ok(3, 200, 1, 1));
    assert_eq!(
        placed,
        us(5),
        "an older completion is placed beside the newest sample"
    );
    w.advance(us(14));
    assert_eq!(w.stats(0).checks, 2);
    w.advance(us(15));
    assert_eq!(w.stats(0).checks, 0);
}

#[test]
fn matches_a_naive_recompute_over_a_long_random_run() {
    // A deterministic pseudo-random run, checked against recomputing from scratch.
    let mut w = SiteWindows::new(&[WindowSpec {
        span: Duration::from_secs(60),
        timings: true,
    }]);
    let mut all: Vec<(i64, u64, bool)> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..2000i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let resp = x % 500 + 1;
        let good = !x.is_multiple_of(7);
        let secs = i * 3 / 2;
        w.push(&ok(secs, if good { 200 } else { 500 }, resp / 2, resp));
        all.push((secs, resp, good));
        let live: Vec<_> = all.iter().filter(|(s, _, _)| *s > secs - 60).collect();
        let s = w.stats(0);
        assert_eq!(s.checks as usize, live.len());
        let oks = live.iter().filter(|(_, _, g)| *g).count();
        assert_eq!(s.availability, Some(oks as f64 / live.len() as f64));
        let mut r: Vec<u64> = live.iter().map(|(_, r, _)| *r).collect();
        r.sort_unstable();
        let p95 = r[((0.95 * r.len() as f64).ceil() as usize).max(1) - 1];
        assert_eq!(s.response_ms.unwrap().p95, p95 as f64);
        assert_eq!(s.response_ms.unwrap().max, *r.last().unwrap() as f64);
    }
}

#[test]
fn summarize_gives_the_same_figures_as_a_window() {
    let ms: Vec<_> = (0..50)
        .map(|i| {
            if i % 9 == 0 {
                failed(i, ErrorKind::Dns)
            } else {
                ok(i, 200, (i * 7 % 13) as u64, (i * 31 % 97) as u64)
            }
        })
        .collect();
    let mut w = SiteWindows::new(&[WindowSpec {
        span: Duration::from_secs(3600),
        timings: true,
    }]);
    for m in &ms {
        w.push(m);
    }
    assert_eq!(summarize(&ms), w.stats(0));
}

#[test]
fn respan_rebuilds_windows_from_kept_samples() {
    let mut w = views();
    for i in 0..30 {
        w.push(&ok(i * 10, 200, 1, 2));
    }
    assert_eq!(w.stats(1).checks, 30);
    w.respan(&[
        WindowSpec {
            span: Duration::from_secs(60),
            timings: false,
        },
        WindowSpec {
            span: Duration::from_secs(100),
            timings: true,
        },
    ]);
    assert_eq!(w.stats(1).checks, 10, "the samples of the last 100 s");
    assert_eq!(w.availability(0), Some(1.0));
    assert_eq!(w.stats(1).response_ms.unwrap().max, 2.0);
}

fn scripted(secs: i64, steps: &[(&str, u64, bool)]) -> Measurement {
    let mut m = ok(secs, 200, 10, 100);
    m.steps = steps
        .iter()
        .map(|&(name, ms, failed)| Step {
            name: name.into(),
            duration: Duration::from_millis(ms),
            requests: 2,
            failed,
        })
        .collect();
    m
}

/// A window keeps each step's figures over the runs in it: they leave with their probe (also
/// when probes of other kinds sit between), a step gone from every run in the window goes, and
/// a counts-only window keeps none.
#[test]
fn steps_are_figured_per_window_and_leave_with_their_probes() {
    let spec = |s: u64, timings| WindowSpec {
        span: Duration::from_secs(s),
        timings,
    };
    let mut w = SiteWindows::new(&[spec(10, true), spec(100, true), spec(100, false)]);
    w.push(&scripted(1, &[("login", 100, false), ("old", 5, false)]));
    w.push(&ok(2, 200, 10, 100));
    w.push(&scripted(3, &[("login", 300, false), ("order", 50, true)]));
    w.push(&scripted(
        20,
        &[("login", 200, false), ("order", 70, false)],
    ));
    let long = w.stats(1);
    let names: Vec<&str> = long.steps.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["login", "old", "order"]);
    let login = &long.steps[0];
    assert_eq!((login.runs, login.failed), (3, 0));
    assert_eq!(
        (login.avg_ms, login.max_ms, login.p95_ms),
        (200.0, 300.0, 300.0)
    );
    assert_eq!((long.steps[2].runs, long.steps[2].failed), (2, 1));
    // The 10 s window: only the probe at 20 s.
    let short = w.stats(0);
    let names: Vec<(&str, u32)> = short.steps.iter().map(|s| (&*s.name, s.failed)).collect();
    assert_eq!(names, [("login", 0), ("order", 0)]);
    assert!(w.stats(2).steps.is_empty());
    // Past every window: nothing kept, the steps queue included.
    w.advance(us(500));
    assert!(w.stats(1).steps.is_empty());
    assert!(w.steps.is_empty());
    // Respan rebuilds the steps from the kept samples.
    w.push(&scripted(501, &[("login", 10, false)]));
    w.respan(&[spec(50, true)]);
    assert_eq!(w.stats(0).steps[0].runs, 1);
    // The same figures from a whole set at once (reports over raw rows).
    let all = [
        scripted(1, &[("a", 10, false)]),
        scripted(2, &[("a", 30, true)]),
    ];
    let s = summarize(&all);
    assert_eq!(
        (s.steps[0].runs, s.steps[0].failed, s.steps[0].avg_ms),
        (2, 1, 20.0)
    );
}
