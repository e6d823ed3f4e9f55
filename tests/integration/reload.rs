//! Hot reload, end to end: the real binary, real files edited while it runs.

use crate::support::binary::{Running, is};
use crate::support::plugins::{example, test_plugin};
use crate::support::server::{Reply, TestServer};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Writes `value` to `path` the way editors do: a new file renamed over the old one.
fn save(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(sites: Value) -> Value {
    json!({"sites": sites, "alerting": {"window": "1s"}, "dashboard": {"views": [{"window": "10s", "every": "1s"}]}})
}

fn reload(result: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "reload" && e["what"] == "config" && e["result"] == result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_are_added_and_removed_live_and_a_bad_edit_keeps_the_last_good_config() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let a = json!({"name": "a", "url": server.url("/a"), "interval": "100ms"});
    let b = json!({"name": "b", "url": server.url("/b"), "interval": "100ms"});
    let mut run = Running::start(&config(json!([a])));
    run.wait_for(Duration::from_secs(5), is("probe", "a"))
        .await
        .expect("a is probed");
    let path = run.config_path();

    // Add b: its probes appear within 2 s, and a keeps its history.
    save(&path, &serde_json::to_vec(&config(json!([a, b]))).unwrap());
    let applied = run
        .wait_for(Duration::from_secs(3), reload("applied"))
        .await
        .expect("reload applied");
    assert!(
        applied["detail"].as_str().unwrap().contains("added b"),
        "{applied}"
    );
    run.wait_for(Duration::from_secs(2), is("probe", "b"))
        .await
        .expect("b probed within 2 s");

    // Broken JSON: rejected with the start-up message, and both sites keep being probed.
    save(&path, b"{\"sites\": [");
    let rejected = run
        .wait_for(Duration::from_secs(3), reload("rejected"))
        .await
        .expect("reload rejected");
    let detail = rejected["detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid JSON") && detail.contains("config.json:1:"),
        "{detail}"
    );
    let seen = run.events.len();
    run.collect_for(Duration::from_millis(600)).await;
    let later = &run.events[seen..];
    for site in ["a", "b"] {
        assert!(
            later
                .iter()
                .any(|e| e["event"] == "probe" && e["site"] == site),
            "{site} still probed"
        );
    }

    // Invalid values are rejected too.
    let mut bad = config(json!([a, b]));
    bad["sites"][1]["interval"] = json!("0s");
    save(&path, &serde_json::to_vec(&bad).unwrap());
    let rejected = run
        .wait_for(Duration::from_secs(3), reload("rejected"))
        .await
        .expect("rejected");
    assert!(
        rejected["detail"]
            .as_str()
            .unwrap()
            .contains("sites[1].interval (site \"b\")"),
        "{rejected}"
    );

    // Fixed, without b and with another view: applied, b's probes stop, the new view reports.
    let mut fixed = config(json!([a]));
    fixed["dashboard"]["views"] =
        json!([{"window": "10s", "every": "1s"}, {"window": "5s", "every": "300ms"}]);
    save(&path, &serde_json::to_vec(&fixed).unwrap());
    let applied = run
        .wait_for(Duration::from_secs(3), reload("applied"))
        .await
        .expect("applied");
    assert!(
        applied["detail"].as_str().unwrap().contains("removed b"),
        "{applied}"
    );
    assert!(
        applied["detail"]
            .as_str()
            .unwrap()
            .contains("dashboard settings changed"),
        "{applied}"
    );
    let a_before = run.of("probe", "a").len() as u64;
    run.collect_for(Duration::from_millis(400)).await; // probes in flight at the change
    let seen = run.events.len();
    run.collect_for(Duration::from_millis(800)).await;
    let later = &run.events[seen..];
    assert!(
        !later
            .iter()
            .any(|e| e["event"] == "probe" && e["site"] == "b"),
        "b is no longer probed"
    );
    assert!(
        later
            .iter()
            .any(|e| e["event"] == "probe" && e["site"] == "a")
    );
    assert!(
        later
            .iter()
            .any(|e| e["event"] == "stats" && e["view"] == "5s"),
        "the new view refreshes"
    );
    let stats = later
        .iter()
        .rev()
        .find(|e| e["event"] == "stats" && e["view"] == "10s")
        .expect("stats");
    assert_eq!(stats["sites"].as_array().unwrap().len(), 1);
    assert!(
        stats["sites"][0]["checks"].as_u64().unwrap() >= a_before,
        "a kept its {a_before} probes: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_plugin_changes_verdicts_and_a_broken_build_keeps_the_old_one() {
    let server = TestServer::start(|_| Reply::ok("all OK")).await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let check = plugins.join("check.wasm");
    std::fs::copy(example("keyword"), &check).unwrap();
    let cfg = json!({
        "sites": [{"name": "api", "url": server.url("/"), "interval": "100ms",
                   "checks": [{"plugin": "check", "config": {"contains": "OK"}}]}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "plugins": {"dir": "plugins"}
    });
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let path = dir.path().join("config.json");
    let mut run = Running::start_in(
        dir,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    let p = run
        .wait_for(Duration::from_secs(10), is("probe", "api"))
        .await
        .expect("probe");
    assert_eq!(p["ok"], true, "{p}");

    // A different build: it fails every response.
    save(&check, &std::fs::read(test_plugin("hostile")).unwrap());
    let swapped = run
        .wait_for(Duration::from_secs(3), |e| {
            e["event"] == "reload" && e["what"] == "plugin"
        })
        .await
        .expect("plugin reload");
    assert_eq!(swapped["result"], "applied", "{swapped}");
    let failed = run
        .wait_for(Duration::from_secs(2), |e| {
            e["event"] == "probe" && e["ok"] == false
        })
        .await
        .expect("verdicts change within 2 s");
    assert_eq!(failed["error"]["kind"], "check", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("red alert")
    );

    // A broken build: rejected, and the previous one keeps serving.
    save(&check, b"\0asm\x01\0\0\0 garbage");
    let rejected = run
        .wait_for(Duration::from_secs(3), |e| {
            e["event"] == "reload" && e["what"] == "plugin"
        })
        .await
        .expect("plugin reload");
    assert_eq!(rejected["result"], "rejected", "{rejected}");
    assert!(
        rejected["detail"]
            .as_str()
            .unwrap()
            .contains("keeps serving"),
        "{rejected}"
    );
    run.collect_for(Duration::from_millis(800)).await;
    let probes = run.of("probe", "api");
    assert!(!probes.is_empty());
    // No probe was lost or failed for want of a plugin across both swaps.
    assert!(
        probes.iter().all(|p| p["error"]["kind"] != "plugin"),
        "{probes:?}"
    );
    let tail: Vec<_> = probes.iter().rev().take(5).collect();
    assert!(tail.iter().all(|p| {
        p["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("red alert"))
    }));
    let lags: Vec<f64> = probes
        .iter()
        .map(|p| p["lag_ms"].as_f64().unwrap())
        .collect();
    assert!(
        lags.iter().all(|l| *l < 100.0),
        "no tick was delayed by a swap: {lags:?}"
    );
}
