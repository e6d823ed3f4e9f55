//! Long-term history through the real binary: rollups that survive SIGKILL consistent with the
//! raw rows, `report --by/--sla/--tz/--week-start` in plain, JSON and CSV, `store
//! rebuild-rollups`, the API's report and the status page's daily bars, and the errors.

use crate::support::binary::{BIN, Running, alert, cli_in as cli};
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = cli(dir, args);
    assert_eq!(code, 0, "sitewatch {args:?}: {err}");
    out
}

fn by_site<'a>(rows: &'a Value, key: &str) -> std::collections::BTreeMap<String, &'a Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[key].as_str().unwrap().to_owned(), r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_stay_consistent_through_sigkill_and_reports_agree_with_the_raw_rows() {
    // One site up, one failing every third probe, one down (for an incident).
    let n = AtomicU32::new(0);
    let server = TestServer::start(move |req| {
        if req.path == "/flaky" && n.fetch_add(1, Ordering::SeqCst).is_multiple_of(3) {
            Reply::status(500)
        } else {
            Reply::ok("fine")
        }
    })
    .await;
    let port = closed_port();
    let mut sites: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("s{i:02}"), "url": server.url(&format!("/s{i}")), "interval": "50ms"}))
        .collect();
    sites.push(json!({"name": "flaky", "url": server.url("/flaky"), "interval": "50ms"}));
    sites.push(json!({"name": "dead", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "50ms"}));
    let config = json!({
        "sites": sites,
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        // A checkpoint at nearly every write: the kills below land on and between them.
        "storage": {"rollup_every": "50ms"},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(15), alert("down", "dead"))
        .await
        .unwrap_or_else(|| panic!("down alert; stderr: {}", run.stderr()));
    run.signal(Signal::SIGKILL);
    run.wait_exit(Duration::from_secs(5)).await.expect("killed");
    let mut dir = run.dir;
    let args = |dir: &tempfile::TempDir| {
        let config = dir.path().join("config.json");
        vec![
            "--output".to_owned(),
            "json".to_owned(),
            "--config".to_owned(),
            config.to_str().unwrap().to_owned(),
        ]
    };
    // SIGKILL at uneven moments, five times, each time checking the store as it was left.
    for k in 0..5u64 {
        let a = args(&dir);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut again = Running::start_in(dir, &a);
        again
            .wait_for(Duration::from_secs(10), |e| e["event"] == "probe")
            .await
            .expect("probing");
        tokio::time::sleep(Duration::from_millis(300 + 137 * k)).await;
        again.signal(Signal::SIGKILL);
        again
            .wait_exit(Duration::from_secs(5))
            .await
            .expect("killed");
        dir = again.dir;
        let (code, out, err) = cli(dir.path(), &["store", "rebuild-rollups", "--check"]);
        assert_eq!(code, 0, "after kill {k}: {out}{err}");
        assert!(out.contains(" 0 differ from the raw rows"), "{out}");
        let cells: u64 = out.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(
            cells >= 22 * 3,
            "every site's minute, hour and day cells were compared: {out}"
        );
    }

    // A last run, stopped cleanly, with the server to ask.
    let a = args(&dir);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut last = Running::start_in(dir, &a);
    last.wait_for(Duration::from_secs(10), |e| e["event"] == "stats")
        .await
        .expect("stats");
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::support::http_client();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client.get(path).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let (status, body) = get(format!("{base}/api/v1/report?since=2d&by=day")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["report"], "periods");
    assert_eq!(v["source"], "day");
    assert!(v["rows"].as_array().unwrap().len() >= 22 * 3, "{v}");
    let (status, body) = get(format!("{base}/api/v1/report?since=2d&by=year")).await;
    assert_eq!(
        (
            status,
            body.contains("by=\\\"year\\\": use day, week or month")
        ),
        (400, true),
        "{body}"
    );
    let (status, body) = get(format!(
        "{base}/api/v1/report?since=30d&sla=99.9&output=csv"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("site,url,uptime,probes,objective,"),
        "{body}"
    );
    let (status, body) = get(format!("{base}/api/v1/report?since=3000d&by=month")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("since 3000d reaches back further than the store keeps anything"),
        "{body}"
    );
    let (status, page) = get(format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"class="days""#) && page.contains(r#"data-days="90""#),
        "the daily bars"
    );
    last.signal(Signal::SIGTERM);
    last.wait_exit(Duration::from_secs(10))
        .await
        .expect("stopped");
    let dir = last.dir;
    let d = dir.path();

    // Raw rows (exact) and the day rollups agree: counts and availability exactly.
    let raw: Value =
        serde_json::from_str(&ok(d, &["report", "--since", "1d", "--output", "json"])).unwrap();
    let days: Value = serde_json::from_str(&ok(
        d,
        &["report", "--since", "1d", "--by", "day", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(days["source"], "day");
    assert_eq!(days["percentile_error"], 0.01);
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for r in days["rows"].as_array().unwrap() {
        let t = totals
            .entry(r["site"].as_str().unwrap().to_owned())
            .or_default();
        t.0 += r["probes"].as_u64().unwrap();
        t.1 += r["up"].as_u64().unwrap();
    }
    let raw_sites = by_site(&raw["sites"], "site");
    assert_eq!(raw_sites.len(), 22);
    for (site, r) in &raw_sites {
        let (probes, up) = totals[site];
        assert_eq!(
            (probes, up),
            (r["checks"].as_u64().unwrap(), r["ok"].as_u64().unwrap()),
            "{site}"
        );
        assert!(probes > 20, "{site}: {probes}");
    }
    let flaky = raw_sites["flaky"]["availability"].as_f64().unwrap();
    assert!((0.5..0.8).contains(&flaky), "{flaky}");
    let dead: Vec<&Value> = days["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["site"] == "dead")
        .collect();
    assert!(
        dead.iter()
            .map(|r| r["incidents"].as_u64().unwrap())
            .sum::<u64>()
            >= 1
    );
    assert!(
        dead.iter()
            .map(|r| r["downtime_s"].as_f64().unwrap())
            .sum::<f64>()
            > 1.0
    );

    // Plain, CSV, weeks from Sunday in a zone, and a report older than the raw rows.
    let plain = ok(
        d,
        &[
            "report",
            "--since",
            "3d",
            "--by",
            "week",
            "--week-start",
            "sunday",
            "--tz",
            "Europe/Paris",
        ],
    );
    assert!(
        plain.starts_with("History by week (Europe/Paris, weeks from sunday)")
            && plain.contains("flaky"),
        "{plain}"
    );
    let csv = ok(
        d,
        &[
            "report", "--since", "2d", "--by", "day", "--site", "flaky", "--output", "csv",
        ],
    );
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "site,url,period,start,end,availability,probes,up,response_avg_ms,response_max_ms,response_p95_ms,ttfb_avg_ms,ttfb_max_ms,downtime_s,incidents,maintenance_probes"
    );
    assert!(lines.all(|l| l.starts_with("flaky,")));
    let older = ok(d, &["report", "--since", "45d"]);
    assert!(
        older.starts_with("from the day and hour rollups since "),
        "{older}"
    );
    let sla = ok(d, &["report", "--since", "30d", "--sla", "99.9"]);
    assert!(
        sla.contains("BUDGET LEFT") && sla.contains("over by"),
        "flaky spent it: {sla}"
    );

    // A reader that stops early (`| head`) is no error.
    let mut child = std::process::Command::new(BIN)
        .args(["report", "--since", "60d", "--by", "day"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 64];
    std::io::Read::read_exact(&mut child.stdout.take().unwrap(), &mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad input: each names what is wrong.
    let (code, _, err) = cli(d, &["report", "--by", "year"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value 'year' for '--by") && err.contains("day, week, month"),
        "{err}"
    );
    let (code, _, err) = cli(d, &["report", "--since", "7000d", "--by", "month"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "--since 7000d reaches back further than the store keeps anything (raw rows 7d"
        ),
        "{err}"
    );
    let (code, _, err) = cli(
        d,
        &[
            "report",
            "--since",
            "10d",
            "--by",
            "day",
            "--tz",
            "Mars/Olympus",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--tz \"Mars/Olympus\" is not a time zone"),
        "{err}"
    );
    let (code, _, err) = cli(d, &["report", "--since", "10d", "--sla", "120"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--sla 120: give the objective in percent"),
        "{err}"
    );
    let (code, _, err) = cli(
        d,
        &["report", "--since", "10d", "--by", "day", "--site", "nope"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no data for site \"nope\" in the last 10d"),
        "{err}"
    );

    // An upgrade: a store whose rollups are gone gets them back from the raw rows.
    let conn = rusqlite::Connection::open(d.join("sitewatch-data/sitewatch.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE rollup_minute; DROP TABLE rollup_hour; DROP TABLE rollup_day; DROP TABLE rollup_state;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    let rebuilt = ok(d, &["store", "rebuild-rollups"]);
    assert!(
        rebuilt.starts_with("rebuilt ") && rebuilt.contains("of 22 sites"),
        "{rebuilt}"
    );
    let again: Value = serde_json::from_str(&ok(
        d,
        &["report", "--since", "1d", "--by", "day", "--output", "json"],
    ))
    .unwrap();
    // The open incident of "dead" grows with the clock; everything else is as before.
    let still = |v: &Value| -> Vec<Value> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("downtime_s");
                r
            })
            .collect()
    };
    assert_eq!(still(&again), still(&days), "the same figures as before");
}
