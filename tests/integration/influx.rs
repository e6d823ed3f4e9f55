//! The InfluxDB export end to end: the outbox limit and the `outbox` command through the real
//! binary, and the delivery guarantee (a batch resent after a crash is kept once) against a real
//! server. The retry rules themselves are tested against scripted servers in `store::influx`.

use crate::support::binary::{BIN, Running, check_config, cli_ok};
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use crate::support::victoria::Victoria;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("sitewatch-data/sitewatch.db")).unwrap()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The first column of every row `sql` returns.
fn column<T: rusqlite::types::FromSql, C: FromIterator<T>>(
    conn: &rusqlite::Connection,
    sql: &str,
) -> C {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<T>, _>>()
        .unwrap()
        .into_iter()
        .collect()
}

const PROBE_LINES: &str = "SELECT COUNT(*) FROM outbox WHERE line LIKE 'probe,%'";

/// Polls `what` every 50 ms until it holds, for at most `within`.
async fn until(within: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    what()
}

fn config(site: &str, influx: Value) -> Value {
    json!({
        "sites": [{"name": "crash", "url": site, "interval": "50ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]},
        "storage": {"influxdb": influx}
    })
}

/// The point time of a line in milliseconds, as VictoriaMetrics keeps it.
fn line_ms(line: &str) -> i64 {
    let ns: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    ns / 1_000_000
}

#[test]
fn max_outbox_lines_is_checked() {
    let with = |v: Value| {
        json!({"sites": [], "storage": {"influxdb": {"url": "http://127.0.0.1:8086", "org": "o",
            "bucket": "b", "max_outbox_lines": v}}})
        .to_string()
    };
    let (code, text) = check_config(&with(json!(0)));
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("storage.influxdb.max_outbox_lines") && text.contains("at least 1"),
        "{text}"
    );
    let (code, text) = check_config(&with(json!("many")));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("storage.influxdb.max_outbox_lines"), "{text}");
    let (code, text) = check_config(&with(json!(1000)));
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_held_to_its_limit_and_the_outbox_command_shows_and_resends_parked_lines() {
    let site = TestServer::start(|_| Reply::ok("ok")).await;
    let influx = json!({"url": format!("http://127.0.0.1:{}", closed_port()), "org": "o",
        "bucket": "b", "flush_interval": "100ms", "max_outbox_lines": 10});
    let mut run = Running::start(&config(&site.url("/"), influx));
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "probe")
        .await
        .expect("probing");
    let conn = db(run.dir.path());
    let written = until(Duration::from_secs(10), || {
        count(&conn, "SELECT COUNT(*) FROM measurements") >= 25
    })
    .await;
    assert!(written, "probes are stored");
    let full = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "error"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("storage.influxdb.max_outbox_lines"))
        })
        .await;
    assert!(full.is_some(), "the full outbox is reported");
    run.signal(Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(5)).await.expect("exited");

    let data = run.dir.path().join("sitewatch-data");
    let data = data.to_str().unwrap();
    let stored = count(&conn, "SELECT COUNT(*) FROM measurements");
    let waiting = count(&conn, "SELECT COUNT(*) FROM outbox");
    assert_eq!(waiting, 10, "the newest 10 lines wait");
    let summary: Value =
        serde_json::from_str(&cli_ok(&["outbox", "--output", "json", "--data-dir", data])).unwrap();
    assert_eq!(summary["waiting"], 10);
    assert_eq!(
        summary["dropped"].as_i64().unwrap(),
        stored - 10,
        "every line over the limit is counted: {summary}"
    );
    assert_eq!(summary["parked"], 0);

    // As if InfluxDB had refused the first three lines for good.
    let head: Vec<(i64, String)> = conn
        .prepare("SELECT id, line FROM outbox ORDER BY id LIMIT 3")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (i, (id, line)) in head.iter().enumerate() {
        let reason = if i == 1 {
            "413 Payload Too Large: points batch is too large"
        } else {
            "400 Bad Request: field type conflict"
        };
        conn.execute(
            "INSERT INTO outbox_parked (line, reason, parked_us) VALUES (?1, ?2, 0)",
            [line.as_str(), reason],
        )
        .unwrap();
        conn.execute("DELETE FROM outbox WHERE id = ?1", [id])
            .unwrap();
    }
    let summary: Value =
        serde_json::from_str(&cli_ok(&["outbox", "--output", "json", "--data-dir", data])).unwrap();
    assert_eq!(summary["waiting"], 7);
    assert_eq!(summary["parked"], 3);
    assert_eq!(
        summary["reasons"],
        json!([
            {"reason": "400 Bad Request: field type conflict", "lines": 2},
            {"reason": "413 Payload Too Large: points batch is too large", "lines": 1}
        ])
    );
    let first = summary["first_time"].as_str().unwrap();
    let last = summary["last_time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(first).unwrap()
            < chrono::DateTime::parse_from_rfc3339(last).unwrap(),
        "{summary}"
    );
    let plain = cli_ok(&["outbox", "--data-dir", data]);
    for part in [
        "waiting: 7 lines for InfluxDB",
        "parked:  3 lines InfluxDB refused",
        "2  400 Bad Request: field type conflict",
        "--resend-parked",
        &format!(
            "dropped: {} lines over storage.influxdb.max_outbox_lines",
            stored - 10
        ),
    ] {
        assert!(plain.contains(part), "{part:?} in:\n{plain}");
    }

    let resent: Value = serde_json::from_str(&cli_ok(&[
        "outbox",
        "--resend-parked",
        "--output",
        "json",
        "--data-dir",
        data,
    ]))
    .unwrap();
    assert_eq!(resent, json!({"resent": 3}));
    let tail: Vec<String> = column(&conn, "SELECT line FROM outbox ORDER BY id DESC LIMIT 3");
    let mut parked_lines: Vec<String> = head.into_iter().map(|h| h.1).collect();
    parked_lines.reverse();
    assert_eq!(tail, parked_lines, "back at the end of the queue");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox_parked"), 0);

    conn.execute(
        "INSERT INTO outbox_parked (line, reason, parked_us) VALUES ('x', 'y', 0)",
        [],
    )
    .unwrap();
    assert_eq!(
        cli_ok(&["outbox", "--drop-parked", "--data-dir", data]).trim(),
        "1 parked lines deleted"
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox_parked"), 0);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 10);

    let both = std::process::Command::new(BIN)
        .args([
            "outbox",
            "--resend-parked",
            "--drop-parked",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(!both.status.success(), "resend and drop exclude each other");
    let none = std::process::Command::new(BIN)
        .args(["outbox", "--data-dir"])
        .arg(run.dir.path().join("nothing-here"))
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("run sitewatch there first"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}

/// A crash between the server's 2xx and the outbox `DELETE` sends that batch again at the next
/// start. The server keeps one point per series and timestamp, so each probe is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_resent_after_a_crash_between_the_2xx_and_the_delete_is_kept_once() {
    let Some(mut vm) = Victoria::start_deduplicating().await else {
        return;
    };
    vm.stop();
    let site = TestServer::start(|_| Reply::ok("ok")).await;
    let influx = json!({"url": vm.url(), "org": "sitewatch", "bucket": "probes",
        "flush_interval": "200ms", "batch_size": 50});
    let config = config(&site.url("/"), influx);

    // The server is down: lines pile up in the outbox. Then the process dies.
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "probe")
        .await
        .expect("probing");
    let conn = db(run.dir.path());
    let piled = until(Duration::from_secs(10), || count(&conn, PROBE_LINES) >= 20).await;
    assert!(piled, "lines wait in the outbox");
    run.signal(Signal::SIGKILL);
    run.wait_exit(Duration::from_secs(5)).await.expect("killed");

    // The state a crash right after the server's 2xx leaves: the server has the points, the
    // outbox still holds them.
    let queued: Vec<String> = column(&conn, "SELECT line FROM outbox ORDER BY id");
    let crash_last = count(&conn, "SELECT MAX(id) FROM outbox");
    vm.restart().await;
    let resp = crate::support::http_client()
        .post(format!(
            "{}/api/v2/write?org=sitewatch&bucket=probes&precision=ns",
            vm.url()
        ))
        .body(queued.join("\n"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // The next start sends them again, with the new probes.
    let dir = run.dir;
    let path = dir.path().join("config.json");
    let mut again = Running::start_in(
        dir,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    let resent_all = until(Duration::from_secs(15), || {
        count(
            &conn,
            &format!("SELECT COUNT(*) FROM outbox WHERE id <= {crash_last}"),
        ) == 0
    })
    .await;
    assert!(resent_all, "the lines kept at the crash were sent again");
    again.signal(Signal::SIGTERM);
    again
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exited");

    // Each stored probe is on the server exactly once, or still queued if it came last (a line
    // can be both only if a stop abandoned a POST the server had taken).
    let pending: HashSet<i64> =
        column::<String, Vec<_>>(&conn, "SELECT line FROM outbox WHERE line LIKE 'probe,%'")
            .iter()
            .map(|l| line_ms(l))
            .collect();
    let stored: HashSet<i64> = column(&conn, "SELECT time_us / 1000 FROM measurements");
    let resent: Vec<i64> = queued
        .iter()
        .filter(|l| l.starts_with("probe,"))
        .map(|l| line_ms(l))
        .collect();
    assert!(resent.len() >= 20);
    assert!(
        resent.iter().all(|t| stored.contains(t)),
        "the resent lines are stored probes"
    );
    let selector = r#"{__name__="probe_body_bytes"}"#;
    let mut timestamps = Vec::new();
    for _ in 0..30 {
        let series = vm.export(selector).await;
        assert!(series.len() <= 1, "one site, one series: {series:?}");
        timestamps = series.first().map(|s| s.1.clone()).unwrap_or_default();
        if stored
            .iter()
            .all(|t| pending.contains(t) || timestamps.contains(t))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unique: HashSet<i64> = timestamps.iter().copied().collect();
    assert_eq!(
        unique.len(),
        timestamps.len(),
        "no probe twice, though {} lines were sent twice",
        resent.len()
    );
    assert!(
        unique.iter().all(|t| stored.contains(t)),
        "nothing but stored probes"
    );
    let missing: Vec<_> = stored
        .iter()
        .filter(|t| !pending.contains(t) && !unique.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "stored probes not on the server: {missing:?}"
    );
    assert_eq!(
        unique.len() + pending.difference(&unique).count(),
        stored.len(),
        "the server's count is the store's"
    );
}
