//! Tags as filters, through the real binary: `report --tag` and `alerts --tag` read the tags
//! from the config (the store keeps none), and so do `/api/v1/sites`, `/alerts` and `/report`
//! with `?tag=`; a tag no site has, or a `--tag` without a config, is an error, never an empty
//! answer.

use crate::support::binary::{Running, alert};
use crate::support::server::{Reply, TestServer};
use crate::support::{closed_port, http_client};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

async fn get_json(url: &str) -> (u16, Value) {
    let r = http_client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"));
    (status, v)
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|s| s[key].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    crate::support::binary::cli_in(dir, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_alerts_filter_by_tag_on_the_command_line_and_the_api() {
    let server = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let config = json!({
        "sites": [
            {"name": "shop", "url": server.url("/shop"), "interval": "200ms", "tags": ["prod", "eu"]},
            {"name": "dead", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "200ms",
             "tags": ["prod"]},
            {"name": "beta", "url": server.url("/beta"), "interval": "200ms", "tags": ["staging"]},
            {"name": "plain", "url": server.url("/plain"), "interval": "200ms"},
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(15), alert("down", "dead"))
        .await
        .unwrap_or_else(|| panic!("down alert; stderr: {}", run.stderr()));
    run.wait_for(Duration::from_secs(5), |e| e["event"] == "stats")
        .await
        .expect("stats");

    // The API.
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let (status, v) = get_json(&format!("{base}/sites?tag=prod")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(names(&v["sites"], "site"), ["dead", "shop"]);
    assert_eq!(v["sites"][0]["tags"], json!(["prod", "eu"]));
    let (_, v) = get_json(&format!("{base}/sites?tag=staging,eu")).await;
    assert_eq!(names(&v["sites"], "site"), ["beta", "shop"]);
    let (_, v) = get_json(&format!("{base}/sites?tag=staging&tag=prod")).await;
    assert_eq!(names(&v["sites"], "site"), ["beta", "dead", "shop"]);
    let (_, v) = get_json(&format!("{base}/sites")).await;
    assert_eq!(v["sites"].as_array().unwrap().len(), 4);
    let (status, v) = get_json(&format!("{base}/sites?tag=qa")).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"],
        "tag: no site has the tag \"qa\" (the tags are eu, prod, staging)"
    );
    let (status, v) = get_json(&format!("{base}/alerts?tag=prod")).await;
    assert_eq!(status, 200);
    assert_eq!(names(&v["alerts"], "site"), ["dead"]);
    let (_, v) = get_json(&format!("{base}/alerts?tag=staging")).await;
    assert_eq!(v["alerts"], json!([]), "a known tag without alerts");
    let (status, _) = get_json(&format!("{base}/alerts?tag=qa")).await;
    assert_eq!(status, 400);
    let (status, v) = get_json(&format!("{base}/report?since=1h&tag=eu")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(names(&v["sites"], "site"), ["shop"]);
    assert_eq!(v["sites"][0]["tags"], json!(["prod", "eu"]));
    let (status, v) = get_json(&format!("{base}/report?since=1h&tag=qa")).await;
    assert_eq!((status, v["error"].as_str().is_some()), (400, true));

    run.signal(Signal::SIGTERM);
    run.drain().await;
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");

    // The command line, in the run's directory (config.json is the default).
    let dir = run.dir.path();
    let (code, out, err) = cli(
        dir,
        &["report", "--since", "1h", "--tag", "prod", "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(names(&v["sites"], "site"), ["dead", "shop"]);
    let (code, out, err) = cli(
        dir,
        &["report", "--since", "1h", "--tag", "staging", "--tag", "eu"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("beta") && out.contains("shop"), "{out}");
    assert!(!out.contains("plain") && !out.contains("dead"), "{out}");
    assert!(out.contains("[staging]"), "tags from the config: {out}");
    let (code, _, err) = cli(dir, &["report", "--tag", "qa"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no site has the tag \"qa\" (the tags are eu, prod, staging)"),
        "{err}"
    );

    let (code, out, err) = cli(dir, &["alerts", "--tag", "prod,staging", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let sites: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !sites.is_empty() && sites.iter().all(|a| a["site"] == "dead"),
        "{out}"
    );
    let (code, out, _) = cli(dir, &["alerts", "--tag", "staging"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "no alerts of sites tagged staging in the last 7days"
    );
    let (code, _, err) = cli(dir, &["alerts", "--tag", "qa"]);
    assert_eq!(code, 1);
    assert!(err.contains("no site has the tag \"qa\""), "{err}");

    // Without a config: tags are not in the store.
    let data = dir.join("sitewatch-data");
    let elsewhere = tempfile::tempdir().unwrap();
    for command in ["report", "alerts"] {
        let (code, _, err) = cli(
            elsewhere.path(),
            &[
                command,
                "--tag",
                "prod",
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 1, "{command}");
        assert!(
            err.contains("--tag needs the config, where tags are (the store keeps none): config.json does not exist"),
            "{command}: {err}"
        );
    }
    // And without --tag nothing changes: the whole store.
    let (code, out, err) = cli(
        elsewhere.path(),
        &["alerts", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Website dead is down"), "{out}");
}
