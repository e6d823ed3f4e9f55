//! Storage end to end: restarts, SIGKILL, report/alerts from the store, and InfluxDB export to a
//! real server (VictoriaMetrics) through an outage.

use crate::support::binary::{BIN, Running, alert, cli_ok, is};
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use crate::support::victoria::Victoria;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn write_config(dir: &Path, config: &Value) -> String {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn start(dir: tempfile::TempDir, config: &Value) -> Running {
    Running::start_with(dir, config, &[])
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("sitewatch-data/sitewatch.db")).unwrap()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_outage_neither_repeats_nor_loses_the_alert_and_windows_are_full_at_once() {
    let config = json!({
        "sites": [{"name": "gone", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}],
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "1h", "every": "300ms"}]}
    });
    let mut run = start(tempfile::tempdir().unwrap(), &config);
    run.wait_for(Duration::from_secs(10), alert("down", "gone"))
        .await
        .expect("down alert");
    run.collect_for(Duration::from_millis(500)).await;
    run.signal(Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(5)).await.expect("exited");
    run.drain().await;
    let before = run.of("probe", "gone").len() as u64;
    let dir = run.dir;

    let path = dir.path().join("config.json");
    let mut again = Running::start_in(
        dir,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    let first = again
        .wait_for(Duration::from_secs(5), |e| e["event"] == "stats")
        .await
        .expect("stats");
    let checks = first["sites"][0]["checks"].as_u64().unwrap();
    assert!(
        checks >= before,
        "the 1h view holds the {before} probes from before the restart at once: {first}"
    );
    assert_eq!(
        first["sites"][0]["down"], true,
        "the down state was restored"
    );
    again.collect_for(Duration::from_millis(2000)).await;
    assert!(
        again.of("alert", "gone").is_empty(),
        "no second down alert after the restart"
    );
    again.signal(Signal::SIGTERM);
    again
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exited");

    // The store answers `alerts` and `report` for the whole history.
    let data = again.dir.path().join("sitewatch-data");
    let data = data.to_str().unwrap();
    let alerts: Vec<Value> = cli_ok(&["alerts", "--output", "json", "--data-dir", data])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "down");
    let report = cli_ok(&[
        "report",
        "--since",
        "1h",
        "--site",
        "gone",
        "--output",
        "json",
        "--data-dir",
        data,
    ]);
    let report: Value = serde_json::from_str(&report).unwrap();
    let site = &report["sites"][0];
    let total = before + again.of("probe", "gone").len() as u64;
    assert_eq!(
        site["checks"].as_u64().unwrap(),
        total,
        "every probe of both runs is in the report"
    );
    assert_eq!(site["availability"], 0.0);
    assert_eq!(site["status_codes"]["connect"].as_u64().unwrap(), total);
    let out = std::process::Command::new(BIN)
        .args(["report", "--site", "nope", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no measurements of site \"nope\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_loses_at_most_the_last_second_and_never_corrupts() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let sites: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("s{i}"), "url": server.url(&format!("/{i}")), "interval": "50ms"}))
        .collect();
    let config = json!({"sites": sites, "alerting": {"window": "1s"}, "dashboard": {"views": [{"window": "1m", "every": "1s"}]}});
    let mut run = start(tempfile::tempdir().unwrap(), &config);
    run.collect_for(Duration::from_millis(2500)).await;
    let killed_at = chrono::Utc::now();
    run.signal(Signal::SIGKILL);
    run.wait_exit(Duration::from_secs(5)).await.expect("killed");
    run.drain().await;

    let conn = db(run.dir.path());
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored: HashSet<(String, i64)> = conn
        .prepare(
            "SELECT s.name, m.time_us / 1000 FROM measurements m JOIN sites s ON s.id = m.site_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let cutoff = killed_at - chrono::TimeDelta::seconds(1);
    let mut older = 0;
    for p in run.events.iter().filter(|e| e["event"] == "probe") {
        let t = chrono::DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).unwrap();
        if t < cutoff {
            older += 1;
            let key = (p["site"].as_str().unwrap().to_owned(), t.timestamp_millis());
            assert!(
                stored.contains(&key),
                "probe older than a second before the kill is missing: {p}"
            );
        }
    }
    assert!(
        older > 500,
        "the test wrote heavily: {older} probes checked"
    );

    // It starts again on the same store.
    let dir = run.dir;
    let path = dir.path().join("config.json");
    let mut again = Running::start_in(
        dir,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    again
        .wait_for(Duration::from_secs(5), is("probe", "s0"))
        .await
        .expect("probing again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_export_delivers_every_point_exactly_once_through_an_outage() {
    let Some(mut vm) = Victoria::start().await else {
        return;
    };
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let config = json!({
        "sites": [{"name": "site, \"one\"", "url": server.url("/x"), "interval": "100ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]},
        "storage": {"influxdb": {"url": vm.url(), "org": "sitewatch", "bucket": "probes",
                                  "token_env": "SITEWATCH_TEST_TOKEN", "flush_interval": "200ms", "batch_size": 50}}
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config);
    let mut run = {
        // SAFETY of the environment: the child gets the token; the test process keeps none.
        let mut r = Running::start_in_with_env(
            dir,
            &["--output", "json", "--config", &path],
            &[("SITEWATCH_TEST_TOKEN", "s3cret-token")],
        );
        r.collect_for(Duration::from_millis(1500)).await;
        r
    };
    let selector = r#"{__name__="probe_body_bytes"}"#;
    let before = vm.export(selector).await;
    assert!(
        !before.is_empty() && !before[0].1.is_empty(),
        "points arrive while the server is up"
    );
    assert_eq!(
        before[0].0["site"], "site, \"one\"",
        "tags are escaped and read back intact"
    );

    vm.stop();
    run.collect_for(Duration::from_millis(2000)).await;
    let outage = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "error" && e["source"] == "influxdb"
        })
        .await;
    let outage = outage.or_else(|| {
        run.events
            .iter()
            .find(|e| e["event"] == "error" && e["source"] == "influxdb")
            .cloned()
    });
    let message = outage.expect("the outage is reported")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("cannot write to InfluxDB"), "{message}");
    assert!(
        !message.contains("s3cret-token"),
        "the token never appears: {message}"
    );
    assert!(run.probe_count_in_store() > 0);

    vm.restart().await;
    // Wait for the backlog to drain (the outbox empties), then stop sitewatch.
    let conn = db(run.dir.path());
    let mut drained = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE line LIKE 'probe,%'",
        ) == 0
        {
            drained = true;
            break;
        }
    }
    assert!(drained, "the outbox drained after the server came back");
    run.signal(Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(5)).await.expect("exited");
    assert!(!run.stderr().contains("s3cret-token"));

    let stored = count(&conn, "SELECT COUNT(*) FROM measurements");
    let pending = count(
        &conn,
        "SELECT COUNT(*) FROM outbox WHERE line LIKE 'probe,%'",
    );
    // The server makes fresh points searchable within a moment; wait until the count is stable.
    let mut series = vm.export(selector).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = vm.export(selector).await;
        let settled = again.first().map(|s| s.1.len()) == series.first().map(|s| s.1.len())
            && series.first().map(|s| s.1.len() as i64 + pending) == Some(stored);
        series = again;
        if settled {
            break;
        }
    }
    assert_eq!(series.len(), 1, "{series:?}");
    let timestamps = &series[0].1;
    let unique: HashSet<_> = timestamps.iter().collect();
    assert_eq!(unique.len(), timestamps.len(), "no point arrived twice");
    assert_eq!(
        timestamps.len() as i64 + pending,
        stored,
        "every stored probe is in the server or still queued"
    );
    assert!(pending < 5, "{pending} probes still queued");
    // The numeric fields are real numbers on the server.
    let ok = vm.export(r#"{__name__="probe_status"}"#).await;
    assert!(ok[0].2.iter().all(|v| *v == 200.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sitewatch_on_the_same_data_dir_is_refused_and_the_first_keeps_it() {
    let server = TestServer::start(|_| Reply::ok("fine")).await;
    let config = json!({"sites": [{"name": "a", "url": server.url("/"), "interval": "200ms"}]});
    let mut first = start(tempfile::tempdir().unwrap(), &config);
    first
        .wait_for(Duration::from_secs(10), is("probe", "a"))
        .await
        .expect("probing");
    let d = first.dir.path();
    let (code, _, err) = crate::support::binary::cli_in(
        d,
        &[
            "--output",
            "json",
            "--config",
            d.join("config.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    let pid = first.child.id().unwrap();
    assert!(
        err.contains(&format!(
            "the data directory sitewatch-data is in use by another sitewatch (pid {pid})"
        )),
        "{err}"
    );
    // The first one still writes; once it is gone (even by SIGKILL) the directory is free.
    let before = first.probe_count_in_store();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(first.probe_count_in_store() > before);
    first.signal(Signal::SIGKILL);
    first
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("killed");
    let dir = first.dir;
    let path = dir.path().join("config.json");
    let mut again = Running::start_in(
        dir,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    again
        .wait_for(Duration::from_secs(10), is("probe", "a"))
        .await
        .unwrap_or_else(|| panic!("the directory is free again: {}", again.stderr()));
}
