//! The rollups' half of the storage bench: what building them adds to the store writer's CPU,
//! and a simulated year of 1,000 sites at 30 s (made by a generator, not by waiting): its size on
//! disk and how fast the year-long reports answer.

use crate::save;
use crate::storage::measurement;
use sitewatch::history::{self, By, Calendar, Cell, Probe, Request, Retention, Row, Tier};
use sitewatch::measurement::{ErrorKind, Outcome};
use sitewatch::store::Store;
use sitewatch::store::writer::Record;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds the thread named `name` of this process has used so far (utime + stime).
fn thread_cpu(name: &str) -> Option<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()?? as f64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        return Some((utime + stime) / ticks);
    }
    None
}

/// Writes 10 minutes of 1,000 sites at 1 s (600,000 measurements: what the writer sees in
/// 10 minutes at 1,000 probes per second, with the one checkpoint of that time) as fast as the
/// writer takes them; returns the writer thread's CPU seconds.
fn writer_cpu(rollups: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let sites = crate::storage::sites(1000);
    let (handle, thread) = crate::storage::writer(&store, false, rollups);
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    // The writer thread is looked up by name while it runs.
    std::thread::sleep(Duration::from_millis(50));
    let before = thread_cpu("sitewatch-store").unwrap_or(0.0);
    let mut cpu = 0.0;
    for k in 0..600u64 {
        let t = start + chrono::TimeDelta::seconds(k as i64);
        for (i, (s, u)) in sites.iter().enumerate() {
            handle.send(Record::Measurement(measurement(
                s,
                u,
                t + chrono::TimeDelta::microseconds(i as i64 * 900),
                k * 1000 + i as u64,
            )));
        }
        if k == 599 {
            // Just before the end: what the thread used up to its last record.
            cpu = thread_cpu("sitewatch-store").unwrap_or(0.0);
        }
    }
    // Until it has written everything: read its CPU while it still runs.
    let conn = store.connect().unwrap();
    loop {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
            .unwrap_or(0);
        if let Some(c) = thread_cpu("sitewatch-store") {
            cpu = c;
        }
        if n >= 600_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(handle);
    // The shutdown checkpoint is the one a 10-minute stretch has: count it too.
    let t = Instant::now();
    thread.join().unwrap().expect("every record stored");
    let last = t.elapsed().as_secs_f64();
    cpu - before + last
}

/// The rollup work alone for the same 10 minutes: adding 600,000 probes to the deltas, and the
/// checkpoint that merges them into the stored rows. Returns (seconds adding, seconds
/// checkpointing).
fn rollup_work() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let mut conn = store.connect_for_writing().unwrap();
    let mut rollups = history::Rollups::default();
    rollups.catch_up(&mut conn).unwrap();
    let (s, u): (Arc<str>, Arc<str>) = ("s".into(), "u".into());
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let probes: Vec<(i64, Probe)> = (0..600_000u64)
        .map(|k| {
            let t = start + chrono::TimeDelta::microseconds(k as i64 * 1000);
            (
                (k % 1000) as i64 + 1,
                Probe::from(&measurement(&s, &u, t, k)),
            )
        })
        .collect();
    let t = Instant::now();
    for (rowid, (site, p)) in probes.iter().enumerate() {
        rollups.add(*site, rowid as i64 + 1, p);
    }
    let adding = t.elapsed().as_secs_f64();
    let tx = conn.transaction().unwrap();
    let t = Instant::now();
    rollups.finish(&tx, Duration::ZERO).unwrap();
    tx.commit().unwrap();
    (adding, t.elapsed().as_secs_f64())
}

/// A rollup cell of `n` probes: latencies around a per-site level with a slow tail, 0.5% failed.
fn cell(rng: &mut fastrand::Rng, n: u32, level_us: u32) -> Cell {
    let mut c = Cell::default();
    for _ in 0..n {
        let failed = rng.u16(..1000) < 5;
        let mut r = level_us + rng.u32(..level_us / 2);
        if rng.u8(..50) == 0 {
            r *= rng.u32(2..10);
        }
        c.add(&Probe {
            time_us: 0,
            ok: !failed,
            outcome: if failed {
                Outcome::Error(ErrorKind::Timeout)
            } else {
                Outcome::Status(200)
            },
            response_us: (!failed).then_some(r),
            ttfb_us: (!failed).then_some(r / 3),
            maintenance: false,
            steps: Vec::new(),
        });
    }
    c
}

const SITES: i64 = 1000;
const DAY_US: i64 = 86_400_000_000;

/// Builds a year of 1,000 sites at 30 s in `store` as a year of running leaves it with the
/// default retention: 7 days of raw rows, 30 days of minutes, 365 days of hours and days.
fn simulate_year(store: &Store, now_us: i64) -> (u64, u64) {
    let mut conn = store.connect_for_writing().unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    // Pools of cells to draw from (building each of the year's cells from its own probes would
    // take an hour): 1,024 minutes of 2 probes, 1,024 hours of 120, 256 days of 2,880.
    let levels = [90_000u32, 150_000, 240_000, 400_000];
    let minutes: Vec<Cell> = (0..1024)
        .map(|i| cell(&mut rng, 2, levels[i % 4]))
        .collect();
    let hours: Vec<Cell> = (0..1024)
        .map(|i| cell(&mut rng, 120, levels[i % 4]))
        .collect();
    let days: Vec<Cell> = (0..256)
        .map(|i| {
            let mut d = Cell::default();
            for _ in 0..24 {
                d.merge(&hours[(rng.usize(..256) * 4 + i % 4) % hours.len()]);
            }
            d
        })
        .collect();
    let pick = |pool: &[Cell], site: i64, bucket: i64| -> Cell {
        let h = (site.wrapping_mul(0x9E37_79B9) ^ bucket.wrapping_mul(0x85EB_CA6B)) as u64;
        // The same latency level for a site throughout, as real sites keep theirs.
        let variants = pool.len() as u64 / 4;
        pool[((h % variants) * 4 + site as u64 % 4) as usize].clone()
    };
    let mut rows = 0u64;
    let tx = conn.transaction().unwrap();
    for site in 0..SITES {
        tx.execute(
            "INSERT INTO sites (id, name, url) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                site + 1,
                format!("site-{site:04}"),
                format!("http://127.0.0.1:8080/{site}")
            ],
        )
        .unwrap();
    }
    for (tier, keep_days, pool) in [
        (Tier::Minute, 30, &minutes),
        (Tier::Hour, 365, &hours),
        (Tier::Day, 365, &days),
    ] {
        let first = tier.bucket(now_us - keep_days * DAY_US);
        let last = tier.bucket(now_us);
        for site in 0..SITES {
            let mut row: Row = Vec::new();
            let mut at = tier.row_of(first).0;
            for b in first..=last {
                let (r, offset) = tier.row_of(b);
                if r != at {
                    history::store_row(&tx, tier, site + 1, at, &row).unwrap();
                    rows += 1;
                    row.clear();
                    at = r;
                }
                row.push((offset, pick(pool, site, b)));
            }
            history::store_row(&tx, tier, site + 1, at, &row).unwrap();
            rows += 1;
        }
    }
    tx.commit().unwrap();
    // Raw rows: 7 days at 30 s.
    let mut raw = 0u64;
    let per_site = 7 * 86_400 / 30;
    let start = now_us - 7 * DAY_US;
    for chunk in (0..per_site).collect::<Vec<i64>>().chunks(2016) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO measurements (site_id, time_us, ok, status, ttfb_us, response_us, dns_us,
                         connect_us, tls_us, body_bytes, truncated, error_kind, error_message, lag_us,
                         metrics, duration_us, maintenance, cert_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 300, 90, 900, 1256, 0, NULL, NULL, 150, NULL, ?6, 0, NULL)",
                )
                .unwrap();
            for &k in chunk {
                for site in 0..SITES {
                    let r = 90_000 + rng.i64(..60_000);
                    stmt.execute(rusqlite::params![
                        site + 1,
                        start + k * 30_000_000 + site * 1000,
                        true,
                        200,
                        r / 3,
                        r
                    ])
                    .unwrap();
                    raw += 1;
                }
            }
        }
        tx.commit().unwrap();
    }
    conn.execute(
        "INSERT OR REPLACE INTO rollup_state (id, raw_rowid, tail_from_us) VALUES (1, (SELECT MAX(rowid) FROM measurements), NULL)",
        [],
    )
    .unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    (rows, raw)
}

fn size_of(store: &Store) -> u64 {
    let wal = std::fs::metadata(format!("{}-wal", store.path().display())).map_or(0, |m| m.len());
    std::fs::metadata(store.path()).unwrap().len() + wal
}

/// Best of `n` runs of `f`, in ms.
fn best_ms(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

pub fn run() {
    // 1. The writer's CPU with and without rollups, alternating, three times each.
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..3 {
        without.push(writer_cpu(false));
        with.push(writer_cpu(true));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, wo) = (median(&mut with), median(&mut without));
    let added = (w / wo - 1.0) * 100.0;
    let (adding, checkpoint) = rollup_work();
    let work_pct = (adding + checkpoint) / wo * 100.0;

    // 2. A simulated year.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let now = chrono::Utc::now();
    let t = Instant::now();
    let (rows, raw) = simulate_year(&store, now.timestamp_micros());
    let built = t.elapsed();
    let size = size_of(&store);
    let per_table = |table: &str| -> f64 {
        let conn = store.connect().unwrap();
        conn.query_row(
            "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = ?1 AND type = 'index')",
            [table],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten()
        .unwrap_or(0) as f64
            / (1 << 20) as f64
    };
    let tables: Vec<(&str, f64)> = ["measurements", "rollup_minute", "rollup_hour", "rollup_day"]
        .into_iter()
        .map(|t| (t, per_table(t)))
        .collect();
    let retention = Retention::default();
    let request = |since_days: u64, by: By, site: Option<&str>| Request {
        since: Duration::from_secs(since_days * 86_400),
        site: site.map(str::to_owned),
        by: Some(by),
        sla: None,
        calendar: Calendar::default(),
        include_maintenance: false,
    };
    let year = request(365, By::Month, None);
    let mut rows_year = 0;
    let year_ms = best_ms(3, || {
        let a = history::report(&store, &year, &retention, now).unwrap();
        let mut out = Vec::new();
        history::write(&a, history::ReportFormat::Plain, &mut out).unwrap();
        rows_year = a.rows.len();
    });
    let one = request(90, By::Day, Some("site-0500"));
    let mut rows_one = 0;
    let one_ms = best_ms(5, || {
        let a = history::report(&store, &one, &retention, now).unwrap();
        let mut out = Vec::new();
        history::write(&a, history::ReportFormat::Plain, &mut out).unwrap();
        rows_one = a.rows.len();
    });
    let sla = Request {
        sla: Some(99.9),
        by: None,
        ..request(30, By::Day, None)
    };
    let sla_ms = best_ms(3, || {
        history::report(&store, &sla, &retention, now).unwrap();
    });
    let bars_ms = best_ms(3, || {
        history::daily_bars(&store, &retention, now, 90).unwrap();
    });

    println!("\n== storage: rollups (long-term history)");
    println!(
        "  {:<58} {:>9.2} s",
        "store writer CPU, 10 min at 1,000 probes/s, no rollups", wo
    );
    println!("  {:<58} {:>9.2} s", "the same with rollups", w);
    println!(
        "  {:<58} {:>9.1} %",
        "difference, whole writer (noise is about ±5%)", added
    );
    println!(
        "  {:<58} {:>9.3} s",
        "the rollup work alone: 600,000 probes into the deltas", adding
    );
    println!(
        "  {:<58} {:>9.3} s",
        "  and the checkpoint of 1,000 sites' rows", checkpoint
    );
    println!(
        "  {:<58} {:>9.1} %",
        "rollup work / writer CPU without rollups (target < 10%)", work_pct
    );
    println!(
        "  {:<58} {:>9.0} s",
        "simulated year built",
        built.as_secs_f64()
    );
    println!("  {:<58} {:>9} / {}", "rollup rows / raw rows", rows, raw);
    println!(
        "  {:<58} {:>9.0} MB",
        "store size, 1,000 sites at 30 s for a year (target < 2 GB)",
        size as f64 / (1 << 20) as f64
    );
    for (t, mb) in &tables {
        println!(
            "  {:<58} {:>9.0} MB",
            format!("  of which {t} (with its indexes)"),
            mb
        );
    }
    println!(
        "  {:<58} {:>9.0} ms",
        format!("report --since 365d --by month, all sites ({rows_year} rows; < 1 s)"),
        year_ms
    );
    println!(
        "  {:<58} {:>9.1} ms",
        format!("report --since 90d --by day, one site ({rows_one} rows; < 50 ms)"),
        one_ms
    );
    println!(
        "  {:<58} {:>9.0} ms",
        "report --since 30d --sla 99.9, all sites", sla_ms
    );
    println!(
        "  {:<58} {:>9.0} ms",
        "the status page's 90 daily bars, all sites", bars_ms
    );
    save(
        "history",
        &serde_json::json!({
            "writer_cpu_s_without": wo, "writer_cpu_s_with": w, "added_pct": added,
            "rollup_add_s": adding, "rollup_checkpoint_s": checkpoint, "rollup_work_pct": work_pct,
            "writer_cpu_runs_with": with, "writer_cpu_runs_without": without,
            "year_size_mb": size as f64 / (1 << 20) as f64,
            "tables_mb": tables.iter().map(|(t, mb)| (t.to_string(), *mb)).collect::<std::collections::BTreeMap<_, _>>(),
            "year_by_month_all_ms": year_ms, "ninety_days_by_day_one_site_ms": one_ms,
            "sla_30d_all_ms": sla_ms, "daily_bars_ms": bars_ms, "rollup_rows": rows, "raw_rows": raw,
        }),
    );
}
