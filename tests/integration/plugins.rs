//! The plugin host: sandbox limits with hostile components, and plugins end to end.

use crate::support::binary::{Running, alert, is};
use crate::support::plugins::{example, examples_dir, test_plugin};
use crate::support::server::{Reply, TestServer};
use serde_json::json;
use sitewatch::config::PluginLimits;
use sitewatch::plugin::bindings::types;
use sitewatch::plugin::cli::sample_response;
use sitewatch::plugin::{PluginError, PluginHost};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMITS: PluginLimits = PluginLimits {
    memory: 16 * 1024 * 1024,
    time: Duration::from_millis(100),
};

fn response() -> types::Response {
    sitewatch::plugin::cli::CannedResponse::default().into()
}

/// Calls the hostile plugin in `mode` while a second task ticks every 5 ms; returns the call's
/// outcome, how long it took and how many ticks the other task got meanwhile.
async fn call_hostile(host: &Arc<PluginHost>, mode: &str) -> (Result<(), String>, Duration, u64) {
    let plugin = host.load_file(&test_plugin("hostile")).await.unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, done) = (Arc::clone(&ticks), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    let config = json!({ "mode": mode }).to_string();
    let result = host.check(&plugin, LIMITS, &config, &response()).await;
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    ticker.await.unwrap();
    let result = match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("plugin error: {e}")),
        Err(f) => Err(f.0),
    };
    (result, took, ticks.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_the_time_limit_without_blocking_the_runtime() {
    let host = PluginHost::new(None).unwrap();
    let (result, took, ticks) = call_hostile(&host, "loop").await;
    let reason = result.unwrap_err();
    assert!(
        reason.contains("exceeded its time limit of 100ms"),
        "{reason}"
    );
    assert!(took < Duration::from_millis(600), "stopped after {took:?}");
    assert!(
        ticks >= 8,
        "the runtime kept running other tasks: {ticks} ticks in {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let host = PluginHost::new(None).unwrap();
    let (result, _, _) = call_hostile(&host, "alloc").await;
    let reason = result.unwrap_err();
    assert!(
        reason.contains("exceeded its memory limit of 16.0 MiB"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_shows_the_plugins_message_and_a_trap_is_named() {
    let host = PluginHost::new(None).unwrap();
    let (result, _, _) = call_hostile(&host, "panic").await;
    let reason = result.unwrap_err();
    assert!(reason.starts_with("trapped:"), "{reason}");
    assert!(
        reason.contains("hostile plugin panicked on purpose"),
        "the panic message reaches the user: {reason}"
    );
    let (result, _, _) = call_hostile(&host, "trap").await;
    assert!(result.unwrap_err().contains("unreachable"));
    // The host is healthy afterwards: the same plugin answers the next call.
    let (result, _, _) = call_hostile(&host, "pass").await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_plugin_that_opens_a_connection_is_denied_at_run_time() {
    // Language runtimes link wasi:sockets whether or not a plugin uses it, so the import loads;
    // the sandbox refuses the connection itself. A listener proves nothing reached it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host = PluginHost::new(None).unwrap();
    let plugin = host.load_file(&test_plugin("net-client")).await.unwrap();
    assert!(
        plugin
            .imports
            .iter()
            .any(|i| i.starts_with("wasi:sockets/")),
        "{:?}",
        plugin.imports
    );
    let addr = listener.local_addr().unwrap().to_string();
    let result = host
        .check(&plugin, LIMITS, &addr, &sample_response())
        .await
        .expect("the call completes");
    let err = result.expect_err("the connection must fail");
    assert!(err.to_lowercase().contains("denied"), "{err}");
    assert!(
        listener.accept().is_err(),
        "no connection may reach the listener"
    );
}

#[tokio::test]
async fn a_plugin_built_for_another_wit_version_is_refused_with_the_version() {
    let host = PluginHost::new(None).unwrap();
    let err = host
        .load_file(&test_plugin("future-wit"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PluginError::WrongInterface { .. }), "{text}");
    assert!(
        text.contains("sitewatch:plugin/check@0.9.0")
            && text.contains("a WIT version this host speaks (0.1.0, 0.2.0)")
            && text.contains("rebuild it against sitewatch:plugin@0.2.0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm this is not wasm").unwrap();
    let host = PluginHost::new(None).unwrap();
    let err = host.load_file(&bogus).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin bogus: not a valid WebAssembly component"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_verdicts_and_metric_names_are_sanitised() {
    let dir = tempfile::tempdir().unwrap();
    let report = sitewatch::plugin::cli::test(
        &PluginHost::new(Some(dir.path())).unwrap(),
        &test_plugin("hostile"),
        r#"{"mode": "fail"}"#,
        response(),
        sitewatch::plugin::cli::sample_alert(),
        LIMITS,
    )
    .await
    .unwrap();
    let reason = report.reason.unwrap();
    assert!(
        !reason.contains('\x1b') && !reason.contains('\x07'),
        "{reason:?}"
    );
    assert!(reason.contains("red alert"));
    assert_eq!(report.metrics.keys().collect::<Vec<_>>(), ["evil_name__0m"]);
}

#[tokio::test]
async fn the_compiled_artifact_cache_makes_a_second_load_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cold = {
        let host = PluginHost::new(Some(dir.path())).unwrap();
        let t = Instant::now();
        host.load_file(&example("json-field")).await.unwrap();
        t.elapsed()
    };
    let host = PluginHost::new(Some(dir.path())).unwrap();
    let t = Instant::now();
    host.load_file(&example("json-field")).await.unwrap();
    let warm = t.elapsed();
    assert!(
        warm * 3 < cold,
        "cached load {warm:?} should be far below the cold {cold:?}"
    );
}

#[tokio::test]
async fn a_relative_cache_dir_is_used() {
    // `--data-dir` defaults to a relative path; wasmtime's cache refuses those unless the host
    // makes them absolute, which once left the cache silently off.
    let base = tempfile::tempdir_in(".").unwrap();
    let name = base.path().file_name().unwrap().to_owned();
    let relative = std::path::Path::new(&name).join("plugin-cache");
    assert!(relative.is_relative());
    let host = PluginHost::new(Some(&relative)).unwrap();
    host.load_file(&example("keyword")).await.unwrap();
    let cached = walk_files(&base.path().join("plugin-cache"));
    assert!(cached > 0, "the compiled plugin is in the cache");
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { walk_files(&p) } else { 1 }
            })
            .sum()
    })
}

fn plugin_config(sites: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "sites": sites,
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "plugins": {"dir": examples_dir()}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_check_fails_when_the_body_changes_and_slack_renders_the_alert() {
    let healthy = Arc::new(AtomicBool::new(true));
    let h = Arc::clone(&healthy);
    let server = TestServer::start(move |_| {
        Reply::ok(if h.load(Ordering::SeqCst) {
            "status: OK"
        } else {
            "status: DEGRADED"
        })
    })
    .await;
    let mut run = Running::start(&plugin_config(
        json!([{"name": "api", "url": server.url("/"), "interval": "100ms",
                "checks": [{"plugin": "keyword", "config": {"contains": "OK"}}]}]),
        json!({"alerting": {"threshold": 0.8, "window": "1s",
                            "formatter": {"plugin": "slack", "config": {"channel": "#ops"}}}}),
    ));
    let first = run
        .wait_for(Duration::from_secs(10), is("probe", "api"))
        .await
        .expect("a probe");
    assert_eq!(first["ok"], true, "{first}");
    run.collect_for(Duration::from_millis(1200)).await;
    healthy.store(false, Ordering::SeqCst);
    let failed = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "probe" && e["ok"] == false
        })
        .await
        .expect("a failed probe");
    assert_eq!(failed["error"]["kind"], "check", "{failed}");
    assert_eq!(
        failed["error"]["message"],
        "keyword: body does not contain \"OK\""
    );
    assert_eq!(failed["status"], 200);
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "api"))
        .await
        .expect("down alert");
    let rendered: serde_json::Value =
        serde_json::from_str(down["rendered"].as_str().expect("rendered")).unwrap();
    assert_eq!(rendered["channel"], "#ops");
    assert_eq!(rendered["text"], down["message"]);
    assert_eq!(rendered["attachments"][0]["color"], "danger");
    let errors = rendered["attachments"][0]["fields"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        errors.contains("keyword: body does not contain"),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_fails_its_own_check_while_other_sites_keep_their_schedule() {
    let server = TestServer::start(|_| Reply::ok("fine")).await;
    let hostile_dir = test_plugin("hostile").parent().unwrap().to_owned();
    let mut run = Running::start(&json!({
        "sites": [
            {"name": "victim", "url": server.url("/a"), "interval": "200ms",
             "checks": [{"plugin": "hostile", "config": {"mode": "loop"}, "time_limit": "50ms"}]},
            {"name": "healthy", "url": server.url("/b"), "interval": "100ms"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "plugins": {"dir": hostile_dir}
    }));
    run.collect_for(Duration::from_millis(2500)).await;
    let victim = run.of("probe", "victim");
    assert!(victim.len() >= 5, "{} victim probes", victim.len());
    for p in &victim {
        assert_eq!(p["error"]["kind"], "plugin", "{p}");
        assert!(
            p["error"]["message"]
                .as_str()
                .unwrap()
                .contains("exceeded its time limit of 50ms"),
            "{p}"
        );
    }
    let healthy = run.of("probe", "healthy");
    assert!(
        healthy.len() >= 20,
        "the healthy site kept its 100 ms schedule: {} probes",
        healthy.len()
    );
    assert!(healthy.iter().all(|p| p["ok"] == true));
    let lag: f64 = healthy
        .iter()
        .map(|p| p["lag_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        lag < 50.0,
        "probes of the healthy site started on time (max lag {lag} ms)"
    );
}

#[tokio::test]
async fn a_missing_plugin_is_a_config_error_naming_the_site() {
    let config = json!({"sites": [{"name": "api", "url": "http://127.0.0.1:1/", "checks": [{"plugin": "no-such-plugin"}]}],
                        "plugins": {"dir": examples_dir()}});
    let (code, text) = crate::support::binary::check_config(&config.to_string());
    assert_eq!(code, 2);
    assert!(
        text.contains("sites[0].checks[0].plugin (site \"api\"): no plugin \"no-such-plugin\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_formatter_falls_back_to_the_built_in_message_and_says_why() {
    let mut run = Running::start(&plugin_config(
        json!([{"name": "gone", "url": format!("http://127.0.0.1:{}/", crate::support::closed_port()), "interval": "100ms"}]),
        // The slack formatter rejects an unknown config key with an error.
        json!({"alerting": {"window": "1s", "formatter": {"plugin": "slack", "config": {"chanel": "#typo"}}}}),
    ));
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "gone"))
        .await
        .expect("down alert");
    assert_eq!(down["rendered"], serde_json::Value::Null);
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .starts_with("Website gone is down.")
    );
    let error = run
        .events
        .iter()
        .find(|e| e["event"] == "error" && e["source"] == "formatter")
        .cloned()
        .or(run
            .wait_for(Duration::from_secs(2), |e| {
                e["event"] == "error" && e["source"] == "formatter"
            })
            .await)
        .expect("the formatter failure is reported");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("formatter slack failed, the built-in message is used")
            && message.contains("invalid config"),
        "{message}"
    );
}
