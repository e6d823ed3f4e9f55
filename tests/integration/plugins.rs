//! The plugin host: sandbox limits with hostile components, and plugins end to end.

use crate::support::binary::{Running, alert, is};
use crate::support::plugins::{example, examples_dir, test_plugin};
use crate::support::server::{Reply, TestServer};
use crate::support::tls::TestCa;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sitewatch::config::PluginLimits;
use sitewatch::measurement::{CertInfo, TlsDetails};
use sitewatch::plugin::bindings::{self, types};
use sitewatch::plugin::cli::{read_cases, run_cases, sample_response};
use sitewatch::plugin::{PluginError, PluginHost, PluginKind, WitVersion};
use std::path::PathBuf;
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
        Err(f) => Err(f.message),
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
            && text.contains("a WIT version this host speaks (0.1.0, 0.2.0, 0.3.0, 0.4.0)")
            && text.contains("rebuild it against sitewatch:plugin@0.4.0"),
        "{text}"
    );
}

/// A TLS session of one certificate per `not_after` (the leaf first), as a probe records it.
fn tls_details(not_after: &[DateTime<Utc>]) -> TlsDetails {
    TlsDetails {
        version: Some("TLS 1.3".into()),
        cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
        chain: not_after
            .iter()
            .enumerate()
            .map(|(i, &not_after)| CertInfo {
                subject: if i == 0 {
                    "CN=localhost".into()
                } else {
                    format!("CN=Intermediate {i}")
                },
                issuer: format!("CN=Intermediate {}", i + 1),
                sans: if i == 0 {
                    vec!["localhost".into(), "127.0.0.1".into()]
                } else {
                    vec![]
                },
                not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
                not_after,
                serial: format!("0{}ab", i + 1),
                fingerprint_sha256: format!("{i:02x}").repeat(32),
            })
            .collect(),
    }
}

/// The canned response over HTTPS, with `tls`.
fn https_response(tls: &TlsDetails) -> types::Response {
    let mut r = response();
    r.url = "https://localhost/".into();
    r.body = b"status: OK".to_vec();
    r.tls = Some(bindings::tls_info(tls));
    r
}

/// Now plus `days` and `hours`, to the second (certificates have no finer times).
fn in_days(days: i64, hours: i64) -> DateTime<Utc> {
    let t = Utc::now() + TimeDelta::days(days) + TimeDelta::hours(hours);
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

fn reason(result: &types::CheckResult) -> Option<&str> {
    match &result.verdict {
        types::Verdict::Pass => None,
        types::Verdict::Fail(why) => Some(why),
    }
}

#[tokio::test]
async fn todays_0_1_0_plugins_load_and_run_beside_0_2_0_ones() {
    let host = PluginHost::new(None).unwrap();
    let response = https_response(&tls_details(&[in_days(60, 0)]));
    // Every example built against 0.1.0, checks and formatters, keeps loading and answering.
    for name in ["keyword", "json-field", "latency-budget", "header"] {
        let plugin = host.load_file(&example(name)).await.unwrap();
        assert_eq!(
            (plugin.kind, plugin.wit),
            (PluginKind::Check, WitVersion::V0_1),
            "{name}"
        );
        assert!(
            plugin
                .exports
                .contains(&"sitewatch:plugin/check@0.1.0".to_owned()),
            "{name}: {:?}",
            plugin.exports
        );
        host.check(&plugin, LIMITS, "{}", &response)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .ok();
    }
    let keyword = host.load_file(&example("keyword")).await.unwrap();
    let verdict = |config: &'static str| {
        let (host, keyword, response) = (&host, &keyword, &response);
        async move {
            host.check(keyword, LIMITS, config, response)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(reason(&verdict(r#"{"contains": "OK"}"#).await), None);
    assert_eq!(
        reason(&verdict(r#"{"contains": "DOWN"}"#).await),
        Some("body does not contain \"DOWN\"")
    );
    for name in ["slack", "markdown", "json"] {
        let plugin = host.load_file(&example(name)).await.unwrap();
        assert_eq!(
            (plugin.kind, plugin.wit),
            (PluginKind::Formatter, WitVersion::V0_1),
            "{name}"
        );
        let text = host
            .format(
                &plugin,
                LIMITS,
                "{}",
                &sitewatch::plugin::cli::sample_alert(),
            )
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains("example"), "{name}: {text}");
    }
    // The other languages' keyword builds, where their toolchain built them.
    for file in ["keyword-c", "keyword-python", "keyword-js"] {
        let wasm = examples_dir().join(format!("{file}.wasm"));
        if !wasm.is_file() {
            continue;
        }
        let plugin = host.load_file(&wasm).await.unwrap();
        assert_eq!(plugin.wit, WitVersion::V0_1, "{file}");
        let r = host
            .check(&plugin, LIMITS, r#"{"contains": "OK"}"#, &response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reason(&r), None, "{file}");
    }
    // And beside them, in the same host, a check built against 0.2.0.
    let tls_expiry = host.load_file(&example("tls-expiry")).await.unwrap();
    assert_eq!(
        (tls_expiry.kind, tls_expiry.wit),
        (PluginKind::Check, WitVersion::V0_2)
    );
    let r = host
        .check(&tls_expiry, LIMITS, "{}", &response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason(&r), None);
    assert_eq!(r.metrics[0].name, "days_left");
}

#[tokio::test]
async fn a_0_2_0_check_receives_the_tls_session_and_chain() {
    let host = PluginHost::new(None).unwrap();
    let plugin = host.load_file(&test_plugin("tls-echo")).await.unwrap();
    assert_eq!(plugin.wit, WitVersion::V0_2);
    let leaf_expiry: DateTime<Utc> = "2027-03-01T12:00:00Z".parse().unwrap();
    let intermediate_expiry: DateTime<Utc> = "2026-12-24T00:00:00Z".parse().unwrap();
    let tls = tls_details(&[leaf_expiry, intermediate_expiry]);
    let result = host
        .check(&plugin, LIMITS, r#"{"echo": true}"#, &https_response(&tls))
        .await
        .unwrap()
        .unwrap();
    let seen: serde_json::Value = serde_json::from_str(reason(&result).unwrap()).unwrap();
    assert_eq!(
        seen,
        json!({
            "status": 200,
            "tls": {
                "version": "TLS 1.3",
                "cipher": "TLS13_AES_256_GCM_SHA384",
                // The intermediate expires first.
                "earliest_expiry": intermediate_expiry.timestamp(),
                "chain": [
                    {"subject": "CN=localhost", "issuer": "CN=Intermediate 1",
                     "sans": ["localhost", "127.0.0.1"],
                     "not_before": 1_767_225_600, "not_after": leaf_expiry.timestamp(),
                     "serial": "01ab"},
                    {"subject": "CN=Intermediate 1", "issuer": "CN=Intermediate 2", "sans": [],
                     "not_before": 1_767_225_600, "not_after": intermediate_expiry.timestamp(),
                     "serial": "02ab"},
                ]
            }
        })
    );
    // Plain HTTP: no session.
    let plain = host
        .check(&plugin, LIMITS, "{}", &response())
        .await
        .unwrap()
        .unwrap();
    let metrics: Vec<_> = plain.metrics.iter().map(|m| (&*m.name, m.value)).collect();
    assert_eq!(metrics, [("echo.has_tls", 0.0), ("echo.chain_len", 0.0)]);
}

#[tokio::test]
async fn tls_expiry_fails_at_3_days_and_passes_at_60_days() {
    let host = PluginHost::new(None).unwrap();
    let plugin = host.load_file(&example("tls-expiry")).await.unwrap();
    let check = |config: &'static str, tls: TlsDetails| {
        let (host, plugin) = (&host, &plugin);
        async move {
            host.check(plugin, LIMITS, config, &https_response(&tls))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let soon = in_days(3, 1);
    let r = check("{}", tls_details(&[soon])).await;
    assert_eq!(
        reason(&r).map(str::to_owned),
        Some(format!(
            "certificate expires in 3 days (not after {})",
            soon.format("%Y-%m-%dT%H:%M:%SZ")
        ))
    );
    let days_left = r.metrics.iter().find(|m| m.name == "days_left").unwrap();
    assert!(
        (days_left.value - (3.0 + 1.0 / 24.0)).abs() < 0.001,
        "{}",
        days_left.value
    );

    let r = check(r#"{"min_days": 14}"#, tls_details(&[in_days(60, 0)])).await;
    assert_eq!(reason(&r), None);
    let days_left = r.metrics.iter().find(|m| m.name == "days_left").unwrap();
    assert!(
        (days_left.value - 60.0).abs() < 0.001,
        "{}",
        days_left.value
    );

    // A leaf good for 60 days behind an intermediate that expires in 3: the intermediate decides.
    let r = check("{}", tls_details(&[in_days(60, 0), soon])).await;
    assert!(
        reason(&r).is_some_and(|why| why.starts_with("certificate expires in 3 days")
            && why.ends_with(": the chain's certificate 2, CN=Intermediate 1")),
        "{:?}",
        reason(&r)
    );
    // Plain HTTP passes, unless TLS is required.
    let plain = |config| {
        let (host, plugin) = (&host, &plugin);
        async move {
            host.check(plugin, LIMITS, config, &response())
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(reason(&plain("{}").await), None);
    assert_eq!(
        reason(&plain(r#"{"require_tls": true}"#).await),
        Some("no TLS session: the response came over plain HTTP")
    );
}

#[tokio::test]
async fn the_tls_expiry_cases_file_passes() {
    let cases = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/tls-expiry/tests.json"
    ));
    let host = PluginHost::new(None).unwrap();
    let results = run_cases(
        &host,
        &example("tls-expiry"),
        read_cases(&cases).unwrap(),
        LIMITS,
    )
    .await
    .unwrap();
    assert!(results.len() >= 6);
    for r in &results {
        assert_eq!(r.mismatch, None, "case `{}`", r.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_and_a_0_2_0_plugin_check_the_same_https_site() {
    let ca = TestCa::new();
    let server =
        TestServer::start_tls(ca.issue(&["localhost"], false), |_| Reply::ok("status: OK")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    // Today's 0.1.0 build of keyword beside the 0.2.0 checks, in one plugin folder.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for wasm in [
        example("keyword"),
        example("tls-expiry"),
        test_plugin("tls-echo"),
    ] {
        std::fs::copy(&wasm, plugins.join(wasm.file_name().unwrap())).unwrap();
    }
    let site = |name: &str, checks: serde_json::Value| {
        json!({"name": name, "url": server.localhost_url("/"), "interval": "200ms",
               "timeout": "2s", "tls_ca": "ca.pem", "checks": checks})
    };
    let config = json!({
        "sites": [
            site("both", json!([
                {"plugin": "keyword", "config": {"contains": "OK"}},
                {"plugin": "tls-expiry", "config": {"min_days": 14}},
                {"plugin": "tls-echo"}
            ])),
            // The 0.1.0 check runs after the 0.2.0 ones, and its verdict counts.
            site("old-fails", json!([
                {"plugin": "tls-expiry"},
                {"plugin": "tls-echo"},
                {"plugin": "keyword", "config": {"contains": "MISSING"}}
            ])),
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "plugins": {"dir": plugins}
    });
    let mut run = Running::start_with(dir, &config, &[]);
    let both = run
        .wait_for(Duration::from_secs(10), is("probe", "both"))
        .await
        .expect("a probe of `both`");
    assert_eq!(both["ok"], true, "{both}");
    // The 0.2.0 echo ran: it reports whether the probe carried a TLS session. The prober records
    // one once it fills `Measurement.tls`; then tls-expiry reports the days left too (rcgen's
    // default certificates are good for centuries).
    let has_tls = both["metrics"]["echo.has_tls"].as_f64().expect("echo ran");
    if has_tls == 1.0 {
        assert!(
            both["metrics"]["echo.chain_len"].as_f64() >= Some(1.0),
            "{both}"
        );
        assert!(both["metrics"]["days_left"].as_f64() > Some(14.0), "{both}");
    } else {
        assert_eq!(has_tls, 0.0, "{both}");
    }
    let failed = run
        .wait_for(Duration::from_secs(10), is("probe", "old-fails"))
        .await
        .expect("a probe of `old-fails`");
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["error"]["kind"], "check", "{failed}");
    assert_eq!(
        failed["error"]["message"],
        "keyword: body does not contain \"MISSING\""
    );
    assert!(failed["metrics"]["echo.has_tls"].is_number(), "{failed}");
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
