//! End-to-end tests of monitoring depth through the real binary: latency objectives (degraded),
//! maintenance windows, per-site alert rules, request bodies and notification routing by tag.

use crate::support::binary::{Running, alert, check_config, cli_ok, is};
use crate::support::receiver::{Answer, Receiver};
use crate::support::server::{Reply, TestServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

/// A server whose every other answer is a 500: 50% availability.
async fn half_failing() -> TestServer {
    let count = AtomicU16::new(0);
    TestServer::start(move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        Reply::status(if n.is_multiple_of(2) { 200 } else { 500 })
    })
    .await
}

async fn get(url: &str) -> String {
    let r = crate::support::http_client().get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.text().await.unwrap()
}

fn config(sites: Value) -> Value {
    json!({
        "sites": sites,
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
    })
}

/// The kinds of the alerts of `site` so far, in order.
fn kinds(run: &Running, site: &str) -> Vec<String> {
    run.of("alert", site)
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_site_is_degraded_then_down_wins_then_it_recovers_from_both() {
    let slow = Arc::new(AtomicBool::new(false));
    let status = Arc::new(AtomicU16::new(200));
    let (s, st) = (Arc::clone(&slow), Arc::clone(&status));
    let server = TestServer::start(move |_| {
        let reply = Reply::status(st.load(Ordering::SeqCst));
        if s.load(Ordering::SeqCst) {
            reply.delayed(Duration::from_millis(700), Duration::ZERO)
        } else {
            reply
        }
    })
    .await;
    let mut run = Running::start(&config(json!([
        {"name": "shop", "url": server.url("/"), "interval": "100ms", "timeout": "2s",
         "alerting": {"window": "2s", "degraded": {"response_p95": "350ms"}}}
    ])));
    run.collect_for(Duration::from_millis(1500)).await;
    assert!(kinds(&run, "shop").is_empty(), "fast and up: nothing");

    slow.store(true, Ordering::SeqCst);
    let degraded = run
        .wait_for(Duration::from_secs(10), alert("degraded", "shop"))
        .await
        .expect("a degraded alert");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.starts_with("Website shop is degraded. p95 response=")
            && message.contains(" over 350ms, time="),
        "{message}"
    );
    assert_eq!(degraded["condition"], "degraded");
    assert_eq!(degraded["latency"]["metric"], "response_p95");
    assert!(degraded["latency"]["value_ms"].as_f64().unwrap() > 350.0);
    run.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "stats" && v["sites"][0]["degraded"] == true
    })
    .await
    .expect("the report says degraded");

    // Now failing (fast 500s): down wins over degraded.
    slow.store(false, Ordering::SeqCst);
    status.store(500, Ordering::SeqCst);
    run.wait_for(Duration::from_secs(10), alert("down", "shop"))
        .await
        .expect("a down alert");
    run.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "stats" && v["sites"][0]["down"] == true && v["sites"][0]["degraded"] == false
    })
    .await
    .expect("down, not degraded, while down");

    status.store(200, Ordering::SeqCst);
    run.wait_for(Duration::from_secs(10), alert("degraded_recovered", "shop"))
        .await
        .expect("no longer degraded once up and fast");
    // Degraded first; while down no latency verdict; recovered, then no longer degraded. (A
    // loaded machine may add a flap later: the order is what counts.)
    let got = kinds(&run, "shop");
    let at = |k: &str| got.iter().position(|g| g == k).unwrap_or(usize::MAX);
    assert_eq!(got[0], "degraded", "{got:?}");
    assert!(
        at("down") < at("recovered") && at("recovered") < at("degraded_recovered"),
        "{got:?}"
    );
    assert!(
        got[at("down")..at("recovered")]
            .iter()
            .all(|k| !k.starts_with("degraded")),
        "down wins over degraded: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_down_alert_fires_in_a_maintenance_window_and_the_report_leaves_it_out() {
    let server = TestServer::start(|_| Reply::status(503)).await;
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let now = chrono::Utc::now();
    let start = now - chrono::TimeDelta::seconds(1);
    let end = now + chrono::TimeDelta::seconds(4);
    let port = crate::support::closed_port();
    let mut run = Running::start(&json!({
        "server": {"listen": format!("127.0.0.1:{port}")},
        "sites": [
            {"name": "db", "url": server.url("/"), "interval": "100ms",
             "maintenance": [{"name": "upgrade", "start": start.to_rfc3339(), "end": end.to_rfc3339()}]},
            {"name": "web", "url": up.url("/"), "interval": "100ms"}
        ],
        "maintenance": [{"name": "weekly", "cron": "0 3 * * SUN", "duration": "1h", "tz": "Europe/Paris"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "500ms"}]}
    }));
    let started = run
        .wait_for(Duration::from_secs(5), is("maintenance", "db"))
        .await
        .expect("the window opens");
    assert_eq!(started["state"], "started");
    assert_eq!(started["window"]["name"], "upgrade");
    run.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "stats" && v["sites"][0]["maintenance"]["name"] == "upgrade"
    })
    .await
    .expect("the report shows the open window");
    // The server says so too: the API's status and the maintenance gauge.
    let base = format!("http://127.0.0.1:{port}");
    let sites: Value = serde_json::from_str(&get(&format!("{base}/api/v1/sites")).await).unwrap();
    assert_eq!(sites["sites"][0]["status"], "maintenance", "{sites}");
    assert_eq!(sites["sites"][0]["maintenance"]["name"], "upgrade");
    let metrics = get(&format!("{base}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sitewatch_site_maintenance{")
                && l.contains("site=\"db\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let page = get(&format!("{base}/")).await;
    assert!(
        page.contains(">MAINTENANCE</td>"),
        "the status page says it in words"
    );
    // Failing all along, inside the window: no alert.
    let ended = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "maintenance" && v["site"] == "db" && v["state"] == "ended"
        })
        .await
        .expect("the window closes");
    assert!(kinds(&run, "db").is_empty(), "{:?}", kinds(&run, "db"));
    let in_window: Vec<bool> = run
        .of("probe", "db")
        .iter()
        .map(|p| p["maintenance"].as_bool().unwrap())
        .collect();
    assert!(
        in_window.iter().filter(|m| **m).count() >= 10,
        "probes go on, marked"
    );
    // Still down when it ends: the down alert fires then, on the first probe after.
    let down = run
        .wait_for(Duration::from_secs(5), alert("down", "db"))
        .await
        .expect("down after the window");
    let (down_at, ended_at) = (
        down["time"].as_str().unwrap(),
        ended["time"].as_str().unwrap(),
    );
    assert!(down_at >= ended_at, "{down_at} before {ended_at}");
    run.collect_for(Duration::from_millis(300)).await;
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");

    let dir = run.dir.path();
    let data = dir.join("sitewatch-data").display().to_string();
    let config = dir.join("config.json").display().to_string();
    let report = |extra: &[&str]| -> Value {
        let mut args = vec![
            "report", "--since", "1h", "--output", "json", "--site", "db",
        ];
        args.extend_from_slice(&["--data-dir", &data, "--config", &config]);
        args.extend_from_slice(extra);
        serde_json::from_str(cli_ok(&args).trim()).unwrap()
    };
    let excluded = report(&[]);
    let included = report(&["--include-maintenance"]);
    let (e, i) = (&excluded["sites"][0], &included["sites"][0]);
    let (e_checks, i_checks) = (e["checks"].as_u64().unwrap(), i["checks"].as_u64().unwrap());
    assert_eq!(
        i_checks - e_checks,
        e["maintenance_probes"].as_u64().unwrap(),
        "the maintenance probes are left out by default: {e} / {i}"
    );
    assert!(e["maintenance_probes"].as_u64().unwrap() >= 10);
    assert!(i.get("maintenance_probes").is_none());

    // `maintenance list` computes the next windows from the config.
    let listed = cli_ok(&["maintenance", "list", "--config", &config]);
    assert!(
        listed.contains("db:") && listed.contains("(weekly)"),
        "{listed}"
    );
    assert!(
        listed.contains("web:"),
        "global windows apply to every site: {listed}"
    );
    let json_list = cli_ok(&[
        "maintenance",
        "list",
        "--config",
        &config,
        "--output",
        "json",
    ]);
    let web: Value = serde_json::from_str(json_list.lines().nth(1).unwrap()).unwrap();
    assert_eq!(web["site"], "web");
    assert_eq!(web["windows"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_rule_overrides_the_threshold_and_a_post_sends_its_body() {
    let server = half_failing().await;
    let receiver = Receiver::start(|r, _| {
        if r.method == "POST"
            && r.header("content-type") == Some("application/json")
            && r.json() == json!({"query": "{ health }"})
        {
            Answer::ok()
        } else {
            Answer::status(400, "bad request")
        }
    })
    .await;
    let mut run = Running::start(&config(json!([
        {"name": "strict", "url": server.url("/a"), "interval": "100ms"},
        {"name": "lenient", "url": server.url("/b"), "interval": "100ms",
         "alerting": {"threshold": 0.3}},
        {"name": "graphql", "url": receiver.url("/graphql"), "interval": "100ms",
         "method": "POST", "body": {"query": "{ health }"}}
    ])));
    run.wait_for(Duration::from_secs(10), alert("down", "strict"))
        .await
        .expect("50% is down under the global 80%");
    run.collect_for(Duration::from_millis(1500)).await;
    assert!(
        kinds(&run, "lenient").is_empty(),
        "50% is up under its own 30%"
    );
    let posts = run.of("probe", "graphql");
    assert!(posts.len() >= 5);
    assert!(
        posts.iter().all(|p| p["ok"] == true && p["status"] == 200),
        "the server got the body and its type: {:?}",
        posts.last()
    );
}

#[test]
fn an_alert_window_shorter_than_two_intervals_is_refused() {
    let (code, text) = check_config(
        r#"{"sites": [{"name": "rare", "url": "http://127.0.0.1:1/", "interval": "5m"}],
            "alerting": {"window": "2m"}}"#,
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("sites[0].interval (site \"rare\")")
            && text.contains("shorter than two intervals"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifiers_route_by_tag() {
    let down = TestServer::start(|_| Reply::status(500)).await;
    let hook = Receiver::accepting().await;
    let mut run = Running::start(&json!({
        "sites": [
            {"name": "pay", "url": down.url("/pay"), "interval": "100ms", "tags": ["payments", "prod"]},
            {"name": "blog", "url": down.url("/blog"), "interval": "100ms", "tags": ["marketing"]}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "payments-team", "type": "webhook", "url": hook.url("/hook"),
                    "tags": ["payments"], "group_wait": 0}]
    }));
    run.seen_or_wait_for(Duration::from_secs(10), alert("down", "pay"))
        .await
        .expect("pay down");
    run.seen_or_wait_for(Duration::from_secs(10), alert("down", "blog"))
        .await
        .expect("blog down");
    let got = hook.wait_for("/hook", 1, Duration::from_secs(10)).await;
    run.collect_for(Duration::from_millis(1500)).await;
    let sites: Vec<String> = hook
        .on("/hook")
        .iter()
        .flat_map(|r| {
            let body = r.json();
            body["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["site"].as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    assert!(!got.is_empty());
    assert_eq!(sites, ["pay"], "only the tagged site reaches the team");
    let stats = run.latest("stats");
    assert_eq!(stats["sites"][0]["tags"], json!(["payments", "prod"]));
}

/// Writes `bytes` to `path` the way editors do: a new file renamed over the old one.
fn save(path: &std::path::Path, value: &Value) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, serde_json::to_vec(value).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_a_sites_rule_and_windows_without_restarting_it() {
    let server = half_failing().await;
    let site = json!({"name": "half", "url": server.url("/"), "interval": "100ms"});
    let mut run = Running::start(&config(json!([site.clone()])));
    run.wait_for(Duration::from_secs(10), alert("down", "half"))
        .await
        .expect("50% is down under 80%");
    let generation_probes = run.of("probe", "half").len();

    // Its own threshold of 30%, and a maintenance window open now: applied live.
    let mut edited = site.clone();
    edited["alerting"] = json!({"threshold": 0.3});
    let now = chrono::Utc::now();
    edited["maintenance"] = json!([{"start": (now - chrono::TimeDelta::seconds(5)).to_rfc3339(),
                                    "end": (now + chrono::TimeDelta::hours(1)).to_rfc3339()}]);
    edited["tags"] = json!(["batch"]);
    save(&run.config_path(), &config(json!([edited])));
    let applied = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "reload" && e["result"] == "applied"
        })
        .await
        .expect("reload applied");
    assert_eq!(
        applied["detail"], "alerting settings changed",
        "the site is not restarted"
    );
    run.wait_for(Duration::from_secs(5), alert("recovered", "half"))
        .await
        .expect("50% is up under its own 30%");
    run.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "stats" && v["sites"][0]["tags"] == json!(["batch"])
    })
    .await
    .expect("the new tags are reported");
    let opened = run.of("maintenance", "half");
    assert!(
        opened.first().is_some_and(|m| m["state"] == "started"),
        "the new window opens: {opened:?}"
    );
    // Probes went on through the reload.
    assert!(run.of("probe", "half").len() > generation_probes);
}
