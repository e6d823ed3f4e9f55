//! Plugin load and call cost: the keyword check built in each language (Rust, C, Python, JS),
//! beside the same check written natively. Size, cold load (compile into an empty cache),
//! cached load (a new engine over the filled cache, as after a restart) and the cost of one call
//! (a fresh instance, then the check of a 10 KiB body).

use crate::{percentile, root, save, sorted};
use sitewatch::config::PluginLimits;
use sitewatch::plugin::PluginHost;
use sitewatch::plugin::bindings::types;
use std::time::{Duration, Instant};

/// (language, built file) of each build of the keyword check.
const BUILDS: &[(&str, &str)] = &[
    ("Rust", "keyword"),
    ("C", "keyword-c"),
    ("Python", "keyword-python"),
    ("JavaScript", "keyword-js"),
];

/// The same limits for every language, roomy enough for the interpreters.
const LIMITS: PluginLimits = PluginLimits {
    memory: 256 << 20,
    time: Duration::from_secs(1),
};

/// The keyword check written natively, as the baseline for the plugin's per-call cost.
fn native_keyword(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body).contains(needle)
}

fn response() -> types::Response {
    let mut body = "lorem ipsum dolor sit amet ".repeat(380).into_bytes();
    body.truncate(10 * 1024 - 6);
    body.extend_from_slice(b"needle");
    types::Response {
        kind: "http".into(),
        observed: types::Observed::Http,
        url: "http://127.0.0.1/".into(),
        method: "GET".into(),
        status: 200,
        headers: vec![types::Header {
            name: "content-type".into(),
            value: "text/plain".into(),
        }],
        body,
        body_truncated: false,
        timings: types::Timings {
            ttfb_ms: 1.0,
            response_ms: 2.0,
            dns_ms: None,
            connect_ms: Some(0.1),
            tls_ms: None,
        },
        tls: None,
    }
}

pub async fn run() {
    let response = response();
    let config = r#"{"contains": "needle"}"#;
    let mut rows = Vec::new();
    for (language, file) in BUILDS {
        let wasm = root().join(format!("target/plugins/{file}.wasm"));
        if !wasm.is_file() {
            println!(
                "  skipped {language}: {} is not built (see `cargo xtask build-plugins`)",
                wasm.display()
            );
            continue;
        }
        let size_kib = std::fs::metadata(&wasm).unwrap().len() as f64 / 1024.0;
        let cache = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let host = PluginHost::new(Some(cache.path())).unwrap();
        let plugin = host.load_file(&wasm).await.unwrap();
        let cold_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut cached = Vec::new();
        for _ in 0..10 {
            let h = PluginHost::new(Some(cache.path())).unwrap();
            let t = Instant::now();
            h.load_file(&wasm).await.unwrap();
            cached.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let cached = sorted(cached);
        // Warm up, then time calls for about two seconds (at most 5,000).
        for _ in 0..20 {
            host.check(&plugin, LIMITS, config, &response)
                .await
                .unwrap()
                .unwrap();
        }
        let mut calls = Vec::new();
        let until = Instant::now() + Duration::from_secs(2);
        while calls.len() < 5000 && (calls.len() < 50 || Instant::now() < until) {
            let t = Instant::now();
            let r = host
                .check(&plugin, LIMITS, config, &response)
                .await
                .unwrap()
                .unwrap();
            calls.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(matches!(r.verdict, types::Verdict::Pass));
        }
        let calls = sorted(calls);
        rows.push(serde_json::json!({
            "language": language,
            "file": format!("{file}.wasm"),
            "size_kib": size_kib,
            "cold_load_ms": cold_ms,
            "cached_load_ms": {"p50": percentile(&cached, 0.5), "max": cached[cached.len() - 1]},
            "call_us": {"p50": percentile(&calls, 0.5), "p99": percentile(&calls, 0.99), "n": calls.len()},
            "pooling": host.pooling,
        }));
    }
    let body = response.body;
    let mut native = Vec::new();
    for _ in 0..5000 {
        let t = Instant::now();
        let hit = native_keyword(std::hint::black_box(&body), "needle");
        native.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(hit);
    }
    let native = sorted(native);

    println!("\n== plugins: keyword check on a 10 KiB body, a fresh instance per call");
    println!(
        "  {:<12} {:>10} {:>11} {:>12} {:>12} {:>12}",
        "", "size", "cold load", "cached load", "call p50", "call p99"
    );
    for r in &rows {
        println!(
            "  {:<12} {:>7.0}KiB {:>9.0}ms {:>10.2}ms {:>10.1}µs {:>10.1}µs",
            r["language"].as_str().unwrap(),
            r["size_kib"].as_f64().unwrap(),
            r["cold_load_ms"].as_f64().unwrap(),
            r["cached_load_ms"]["p50"].as_f64().unwrap(),
            r["call_us"]["p50"].as_f64().unwrap(),
            r["call_us"]["p99"].as_f64().unwrap(),
        );
    }
    println!(
        "  {:<12} {:>10} {:>11} {:>12} {:>10.2}µs {:>10.2}µs",
        "native Rust",
        "",
        "",
        "",
        percentile(&native, 0.5),
        percentile(&native, 0.99)
    );
    save(
        "plugins",
        &serde_json::json!({
            "builds": rows,
            "native_us": {"p50": percentile(&native, 0.5), "p99": percentile(&native, 0.99)},
        }),
    );
}
