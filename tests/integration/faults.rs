//! Faults of the machine, end to end: a full disk under the data directory, and a corrupt store.

use crate::support::binary::{Running, alert, is};
use crate::support::closed_port;
use crate::support::disk::{SmallDisk, fill};
use crate::support::server::{Reply, TestServer};
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_deciding_goes_on_and_nothing_is_lost_when_space_returns() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let data = disk.path().join("data");
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "sites": [
            {"name": "up", "url": server.url("/"), "interval": "50ms"},
            {"name": "gone", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    let mut run = Running::start_with(dir, &config, &["--data-dir", data.to_str().unwrap()]);
    run.wait_for(Duration::from_secs(5), is("probe", "up"))
        .await
        .expect("probing");
    fill(disk.path(), 0);
    let full = run
        .wait_for(Duration::from_secs(10), |e| {
            e["event"] == "error" && e["source"] == "storage"
        })
        .await
        .expect("the full disk is reported");
    let message = full["message"].as_str().unwrap();
    assert!(
        message.contains("cannot write to the store") && message.contains("keeping"),
        "{message}"
    );
    // Probing and deciding go on in memory; the down alert is decided (the stats say the site
    // is down) but not shown, since a restart would not know it: it waits for the store.
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "stats"
            && e["sites"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x["site"] == "gone" && x["down"] == true))
    })
    .await
    .expect("the site is down in the stats");
    let seen = run.events.len();
    run.collect_for(Duration::from_millis(500)).await;
    assert!(
        run.events[seen..]
            .iter()
            .any(|e| e["event"] == "probe" && e["site"] == "up")
    );
    assert!(
        !run.events.iter().any(|e| e["event"] == "alert"),
        "no alert is shown before it is stored"
    );

    // Space returns: the writer catches up by itself.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let back = run
        .wait_for(Duration::from_secs(40), |e| {
            e["event"] == "error"
                && e["source"] == "storage"
                && e["message"].as_str().unwrap_or("").contains("again")
        })
        .await
        .expect("recovery is reported");
    assert!(
        back["message"]
            .as_str()
            .unwrap()
            .contains("writing to the store")
    );
    // Now stored, the alert is shown (with the batch that catches up, before the message).
    if !run.events.iter().any(alert("down", "gone")) {
        run.wait_for(Duration::from_secs(10), alert("down", "gone"))
            .await
            .expect("the alert is shown once stored");
    }
    run.signal(Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10))
        .await
        .expect("exited");
    run.drain().await;
    let conn = rusqlite::Connection::open(data.join("sitewatch.db")).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
        .unwrap();
    let probes = run.events.iter().filter(|e| e["event"] == "probe").count() as i64;
    assert_eq!(
        stored, probes,
        "every probe of the run reached the store after the disk came back"
    );
    let alerts: i64 = conn
        .query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(alerts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_set_aside_with_a_clear_message_and_a_fresh_one_started() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sitewatch-data");
    std::fs::create_dir(&data).unwrap();
    let garbage = b"definitely not SQLite ".repeat(500);
    std::fs::write(data.join("sitewatch.db"), &garbage).unwrap();
    let config = json!({"sites": [{"name": "up", "url": server.url("/"), "interval": "100ms"}],
                        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}});
    let mut run = Running::start_with(dir, &config, &[]);
    let error = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "error" && e["source"] == "storage"
        })
        .await
        .expect("the corrupt store is reported");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("could not be read")
            && message.contains("set aside as")
            && message.contains("fresh store"),
        "{message}"
    );
    run.wait_for(Duration::from_secs(5), is("probe", "up"))
        .await
        .expect("probing goes on");
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sitewatch.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(data.join(&aside[0])).unwrap(),
        garbage,
        "the old file is kept as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_full_disk_keeps_trying_then_spills_and_exits_non_zero_naming_the_loss() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let data = disk.path().join("data");
    let spill_dir = tempfile::tempdir().unwrap();
    let config = json!({
        "sites": [
            {"name": "up", "url": server.url("/"), "interval": "50ms"},
            {"name": "gone", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &["--data-dir", data.to_str().unwrap()],
        &[("TMPDIR", spill_dir.path().to_str().unwrap())],
    );
    run.wait_for(Duration::from_secs(5), is("probe", "up"))
        .await
        .expect("probing");
    fill(disk.path(), 0);
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "error" && e["source"] == "storage"
    })
    .await
    .expect("the full disk is reported");
    run.collect_for(Duration::from_secs(2)).await;
    let t0 = std::time::Instant::now();
    run.signal(Signal::SIGTERM);
    let status = run
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("exits after its grace");
    let took = t0.elapsed();
    run.drain().await;
    let stderr = run.stderr();
    assert!(!status.success(), "a loss is not exit 0: {stderr}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(25),
        "kept trying for the grace (10 s), then stopped: {took:?}"
    );
    assert!(
        stderr.contains("were not stored") && stderr.contains("disk is full"),
        "names the loss and why: {stderr}"
    );
    // The records went to a spill store on another disk, and together with the main store they
    // are every probe the run printed.
    let spill = std::fs::read_dir(spill_dir.path())
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("sitewatch-spill-")
        })
        .unwrap_or_else(|| panic!("a spill store; {stderr}"))
        .path();
    assert!(stderr.contains(&spill.display().to_string()), "{stderr}");
    let count = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
            .unwrap()
    };
    let spilled = count(&spill.join("sitewatch.db"));
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let stored = count(&data.join("sitewatch.db"));
    let printed = run.events.iter().filter(|e| e["event"] == "probe").count() as i64;
    assert!(spilled > 0);
    assert_eq!(
        stored + spilled,
        printed,
        "stored {stored} + spilled {spilled} = printed {printed}"
    );
    let (records, _) = stderr
        .split_once(" records (")
        .and_then(|(head, _)| head.rsplit(' ').next().map(|n| (n.to_owned(), ())))
        .expect("the count of records not stored");
    assert!(records.parse::<i64>().unwrap() >= spilled, "{stderr}");
}

/// Overwrites, in the store file at `db`, every page of the measurements table and its index
/// with garbage, after moving the WAL into the file; then writes through SQLite so that every
/// other connection drops its page cache and reads the file again.
fn damage_measurements(db: &Path) -> usize {
    use std::io::{Seek, SeekFrom, Write};
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let page_size = page_size as u64;
    let pages: Vec<i64> = conn
        .prepare(
            "SELECT pageno FROM dbstat WHERE name IN ('measurements', 'measurements_by_site_time')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for p in &pages {
        file.seek(SeekFrom::Start((*p as u64 - 1) * page_size))
            .unwrap();
        file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    }
    file.sync_all().unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("PRAGMA user_version = 6").unwrap();
    pages.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_damaged_while_running_is_set_aside_and_a_fresh_one_keeps_everything_readable() {
    use crate::support::receiver::{Answer, Receiver};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let accept = Arc::new(AtomicBool::new(false));
    let open = Arc::clone(&accept);
    let receiver = Receiver::start(move |_, _| {
        if open.load(Ordering::SeqCst) {
            Answer::ok()
        } else {
            Answer::status(503, "busy")
        }
    })
    .await;
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let port = closed_port();
    let config = json!({
        "sites": [
            {"name": "up", "url": server.url("/"), "interval": "50ms"},
            {"name": "gone", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "group_wait": "0s",
                    "backoff_min": "200ms", "backoff_max": "400ms", "on": ["down"]}],
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(15), alert("down", "gone"))
        .await
        .unwrap_or_else(|| panic!("down; stderr: {}", run.stderr()));
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "delivery" && e["result"] == "retrying"
    })
    .await
    .expect("the notification waits (503)");
    run.collect_for(Duration::from_secs(1)).await;
    let db = run.dir.path().join("sitewatch-data/sitewatch.db");
    let damaged_pages = damage_measurements(&db);
    assert!(damaged_pages > 0);
    let damaged_at = chrono::Utc::now();
    // A read that meets the damage (the report reads the raw rows) tells the writer, which
    // checks the file; a write that meets it does the same.
    let r = crate::support::http_client()
        .get(format!("http://127.0.0.1:{port}/api/v1/report?since=1h"))
        .send()
        .await
        .unwrap();
    let _ = r.status();
    let recovered = run
        .wait_for(Duration::from_secs(15), |e| e["event"] == "store_recovered")
        .await
        .unwrap_or_else(|| panic!("the damage is found and handled; stderr: {}", run.stderr()));
    let aside = recovered["set_aside"].as_str().unwrap().to_owned();
    assert!(Path::new(&aside).is_file(), "{recovered}");
    assert!(aside.contains("sitewatch.db.corrupt-"));
    assert!(
        recovered["kept"]["alerts"].as_u64().unwrap() >= 1,
        "{recovered}"
    );
    assert!(recovered["kept"]["notifications"].as_u64().unwrap() >= 1);
    assert!(!recovered["check"].as_array().unwrap().is_empty());
    let said = run
        .events
        .iter()
        .find(|e| {
            e["event"] == "error"
                && e["source"] == "storage"
                && e["message"].as_str().unwrap_or("").contains("is damaged")
        })
        .cloned()
        .expect("an error event says so");
    assert!(said["message"].as_str().unwrap().contains(&aside), "{said}");
    assert!(run.stderr().contains("is damaged"), "and the log");
    let metrics = crate::support::http_client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sitewatch_store_recoveries_total") && l.ends_with(" 1")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("recover"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The salvaged notification is still owed: delivered once the service takes it.
    accept.store(true, Ordering::SeqCst);
    run.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "delivery" && e["notifier"] == "hook" && e["result"] == "delivered"
    })
    .await
    .expect("the salvaged notification is delivered");
    run.collect_for(Duration::from_secs(1)).await;
    run.signal(Signal::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(15)).await.expect("exits");
    assert!(status.success(), "{}", run.stderr());
    run.drain().await;
    // Every probe made after the damage is in the fresh store, which is sound, and so is the
    // alert of the outage.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored: std::collections::HashSet<(String, i64)> = conn
        .prepare("SELECT s.name, m.time_us FROM measurements m JOIN sites s ON s.id = m.site_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let after: Vec<(String, i64)> = run
        .events
        .iter()
        .filter(|e| e["event"] == "probe")
        .filter_map(|e| {
            let t = chrono::DateTime::parse_from_rfc3339(e["time"].as_str()?).ok()?;
            let site = e["site"].as_str()?.to_owned();
            (t > damaged_at + chrono::TimeDelta::milliseconds(300))
                .then(|| (site, t.timestamp_micros() / 1000))
        })
        .collect();
    assert!(after.len() > 10, "probing went on: {}", after.len());
    let stored_ms: std::collections::HashSet<(String, i64)> =
        stored.into_iter().map(|(s, us)| (s, us / 1000)).collect();
    let missing: Vec<_> = after.iter().filter(|p| !stored_ms.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} probes after the damage are not stored: {:?}",
        missing.len(),
        after.len(),
        &missing[..missing.len().min(5)]
    );
    let alerts: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM alerts WHERE site = 'gone' AND kind = 'down'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alerts, 1, "the outage's alert survived, once");
    let delivered: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE state = 'delivered'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(delivered, 1);
    assert!(
        receiver
            .on("/hook")
            .iter()
            .any(|r| r.text().contains("gone")),
        "the service got the salvaged notification"
    );
}
