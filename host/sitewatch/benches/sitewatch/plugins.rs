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
    let scenarios = scenario().await;
    save(
        "plugins",
        &serde_json::json!({
            "builds": rows,
            "native_us": {"p50": percentile(&native, 0.5), "p99": percentile(&native, 0.99)},
            "scenario": scenarios,
        }),
    );
}

/// (language, built file) of each build of the login-flow scenario.
const SCENARIOS: &[(&str, &str)] = &[
    ("Rust", "login-flow"),
    ("C", "login-flow-c"),
    ("Python", "login-flow-python"),
    ("JavaScript", "login-flow-js"),
];

/// The shop's three answers, served by a Python process (its CPU is not ours).
const SHOP: &str = r#"
import http.server, sys
ANSWERS = {
    ("POST", "/login"): b'{"token": "t0k", "expires_in": 60}',
    ("GET", "/api/orders"): b'{"orders": [{"id": 7, "status": "paid"}]}',
    ("GET", "/api/orders/7"): b'{"id": 7, "status": "paid"}',
}
class Shop(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        body = ANSWERS.get((self.command, self.path))
        self.send_response(200 if body else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")
    do_GET = do_POST = answer
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Shop)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The CPU this process spent on `runs` calls of `run`, per call, in µs.
async fn cpu_per_run<F: Future<Output = ()>>(runs: u32, mut run: impl FnMut() -> F) -> f64 {
    for _ in 0..10 {
        run().await;
    }
    let before = crate::harness::cpu_time(std::process::id());
    for _ in 0..runs {
        run().await;
    }
    let spent = crate::harness::cpu_time(std::process::id()) - before;
    spent.as_secs_f64() * 1e6 / f64::from(runs)
}

/// A 3-step scenario (the login-flow example of each language: log in, list the orders, read
/// one) against the same three requests sent as three HTTP probes: the CPU of sitewatch per
/// run. The scenario's overhead is what it costs beyond its requests.
async fn scenario() -> serde_json::Value {
    use sitewatch::probe::{Prober, Target};
    let mut shop = std::process::Command::new("python3")
        .args(["-c", SHOP])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 serves the shop");
    let port: u16 = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(shop.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse().unwrap()
    };
    let url = format!("http://127.0.0.1:{port}");
    let clock: sitewatch::clock::SharedClock =
        std::sync::Arc::new(sitewatch::clock::SystemClock::default());
    let prober = Prober::new(clock).unwrap();
    let host = PluginHost::new(None).unwrap();
    let sites = |extra: serde_json::Value| {
        let text =
            serde_json::json!({"sites": extra, "plugins": {"dir": root().join("target/plugins")}})
                .to_string();
        sitewatch::config::Config::parse(&root().join("bench.json"), text.as_bytes()).unwrap()
    };
    // The same three requests as HTTP sites.
    let probes = sites(serde_json::json!([
        {"name": "login", "url": format!("{url}/login"), "method": "POST",
         "body": {"user": "alice", "password": "pw"}},
        {"name": "orders", "url": format!("{url}/api/orders"),
         "headers": {"authorization": "Bearer t0k"}},
        {"name": "order", "url": format!("{url}/api/orders/7"),
         "headers": {"authorization": "Bearer t0k"}},
    ]));
    let targets: Vec<Target> = probes.sites.iter().cloned().map(Target::new).collect();
    // The CPU clock ticks every 10 ms: enough runs that a tick is under 1% of the total.
    const RUNS: u32 = 2000;
    let requests_us = cpu_per_run(RUNS, || async {
        for t in &targets {
            let (m, _) = prober.probe(t, tokio::time::Instant::now()).await.unwrap();
            assert!(m.ok, "{:?}", m.error);
        }
    })
    .await;
    let mut rows = Vec::new();
    for (language, file) in SCENARIOS {
        let wasm = root().join(format!("target/plugins/{file}.wasm"));
        if !wasm.is_file() {
            println!(
                "  skipped the {language} scenario: {} is not built",
                wasm.display()
            );
            continue;
        }
        let c = sites(serde_json::json!([{
            "name": "checkout", "kind": "script", "plugin": file, "url": url,
            "config": {"user": "alice", "password": "pw"},
            "memory_limit": LIMITS.memory, "time_limit": LIMITS.time.as_secs_f64(),
        }]));
        let plugin = host.load_file(&wasm).await.unwrap();
        let set = sitewatch::plugin::set::PluginSet::of(std::sync::Arc::clone(&host), plugin);
        let target = Target::new(c.sites[0].clone());
        let shared = sitewatch::plugin::scenario::SiteScenario::new(&target.config);
        let run_us = cpu_per_run(RUNS, || async {
            let m = sitewatch::plugin::scenario::probe(
                &set,
                &prober,
                &target,
                &shared,
                tokio::time::Instant::now(),
            )
            .await
            .unwrap();
            assert!(m.ok, "{file}: {:?}", m.error);
            assert_eq!(m.steps.len(), 3);
        })
        .await;
        rows.push(serde_json::json!({
            "language": language,
            "file": format!("{file}.wasm"),
            "run_cpu_us": run_us,
            "overhead": (run_us - requests_us) / requests_us,
        }));
    }
    let _ = shop.kill();
    let _ = shop.wait();
    println!(
        "\n== plugins: a 3-step scenario (log in, list, read) against the same 3 requests as HTTP probes; CPU of sitewatch per run"
    );
    println!("  {:<22} {:>10}   {:>9}", "", "CPU/run", "overhead");
    println!("  {:<22} {:>8.0}µs", "3 HTTP probes", requests_us);
    for r in &rows {
        let language = r["language"].as_str().unwrap();
        let goal = if matches!(language, "Rust" | "C") {
            "(goal < 10%)"
        } else {
            ""
        };
        println!(
            "  {:<22} {:>8.0}µs   {:>+8.1}% {goal}",
            format!("scenario, {language}"),
            r["run_cpu_us"].as_f64().unwrap(),
            r["overhead"].as_f64().unwrap() * 100.0,
        );
    }
    serde_json::json!({"requests_cpu_us": requests_us, "runs": RUNS, "builds": rows})
}
