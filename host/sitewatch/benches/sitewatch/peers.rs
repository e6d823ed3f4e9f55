//! Side by side, same target, same probe rate, same run: the CPU each probe costs in sitewatch
//! (whole pipeline), in Debian's prometheus-blackbox-exporter (http_2xx, driven over keep-alive
//! HTTP like Prometheus scrapes it) and in a `curl -w` loop (one process per probe); and, as the
//! floor, a bare reqwest loop (one shared client, no pooling, nothing recorded) run by this bench
//! binary as a child process.

use crate::harness::{
    Monitor, cpu_time, ensure_installed, scratch_dir, sites_config, waited_children_cpu,
};
use crate::targets::FastTarget;
use crate::{run_length, save};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BLACKBOX: &str = "prometheus-blackbox-exporter";

/// The probe rate of every peer: `SITEWATCH_BENCH_RATE` probes a second, 200 by default.
fn rate() -> u64 {
    std::env::var("SITEWATCH_BENCH_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// (probes, CPU seconds) of the measured span.
struct Cost {
    probes: u64,
    failed: u64,
    cpu: f64,
}

impl Cost {
    fn per_probe_us(&self) -> f64 {
        self.cpu / self.probes.max(1) as f64 * 1e6
    }
}

pub async fn run() {
    let rate = rate();
    let length = run_length(Duration::from_secs(30));
    let target = FastTarget::start().await;
    println!(
        "-- peers: {rate} probes/s each, {} s each",
        length.as_secs()
    );
    let sitewatch = tokio::task::spawn_blocking({
        let urls: Vec<String> = (0..rate as usize * 10).map(|i| target.url(i)).collect();
        move || sitewatch_cost(&urls, length)
    })
    .await
    .unwrap();
    let blackbox = if ensure_installed(BLACKBOX, BLACKBOX) {
        Some(blackbox_cost(&target, rate, length).await)
    } else {
        None
    };
    let bare = bare_reqwest_cost(&target, rate, length);
    let curl = if ensure_installed("curl", "curl") {
        Some(curl_cost(&target, rate, length).await)
    } else {
        None
    };

    println!("\n== peers: CPU per probe at {rate} probes/s, same target (fresh connection each)");
    println!(
        "  {:<40} {:>8} {:>7} {:>12} {:>14}",
        "", "probes", "failed", "CPU/probe", "sitewatch is"
    );
    let base = sitewatch.per_probe_us();
    let mut json = serde_json::Map::new();
    for (name, cost) in [
        ("sitewatch (whole pipeline)", Some(&sitewatch)),
        ("blackbox_exporter http_2xx", blackbox.as_ref()),
        ("bare reqwest loop (no pipeline)", Some(&bare)),
        ("curl -w loop (process per probe)", curl.as_ref()),
    ] {
        let Some(c) = cost else {
            println!("  {name:<40} skipped (not installed)");
            continue;
        };
        let ratio = base / c.per_probe_us();
        println!(
            "  {:<40} {:>8} {:>7} {:>10.0}µs {:>13.2}x",
            name,
            c.probes,
            c.failed,
            c.per_probe_us(),
            ratio
        );
        json.insert(
            name.into(),
            serde_json::json!({"probes": c.probes, "failed": c.failed, "cpu_s": c.cpu,
                "cpu_per_probe_us": c.per_probe_us(), "sitewatch_ratio": ratio}),
        );
    }
    json.insert("rate_per_s".into(), rate.into());
    json.insert("seconds".into(), length.as_secs().into());
    save("peers", &serde_json::Value::Object(json));
}

/// sitewatch with `urls.len()` sites every 10 s (so `rate` probes a second) and the whole
/// pipeline on, its JSON output to /dev/null; the probes are counted in its store.
fn sitewatch_cost(urls: &[String], length: Duration) -> Cost {
    let config = sites_config(
        urls.len(),
        "10s",
        |i| urls[i].clone(),
        serde_json::json!({}),
    );
    let mut monitor = Monitor::start_quiet(scratch_dir(), &config);
    monitor.wait_probing(chrono::Utc::now(), Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(12));
    let cpu0 = monitor.cpu_time();
    let from = chrono::Utc::now();
    std::thread::sleep(length);
    let cpu = (monitor.cpu_time() - cpu0).as_secs_f64();
    let to = chrono::Utc::now();
    monitor.stop();
    let stored = monitor.probes_in_store(from, to);
    let probes = stored.len() as u64;
    let failed = stored.iter().filter(|(_, ok)| !ok).count() as u64;
    Cost {
        probes,
        failed,
        cpu,
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Calls `probe` `rate` times a second for `length`, each call in its own task; returns how many
/// succeeded and failed.
async fn drive<F, Fut>(rate: u64, length: Duration, probe: F) -> (u64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let end = Instant::now() + length;
    let mut i = 0;
    while Instant::now() < end {
        ticker.tick().await;
        let fut = probe(i);
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        tasks.spawn(async move {
            let counter = if fut.await { ok } else { failed };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        i += 1;
    }
    while tasks.join_next().await.is_some() {}
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

async fn blackbox_cost(target: &FastTarget, rate: u64, length: Duration) -> Cost {
    let dir = scratch_dir();
    let config = dir.path().join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting blackbox_exporter");
    // Plain HTTP only, but reqwest wants a TLS provider chosen before it builds a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/metrics")).send().await.is_err() {
        assert!(Instant::now() < deadline, "blackbox_exporter did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let urls: Arc<Vec<String>> = Arc::new((0..rate as usize * 10).map(|i| target.url(i)).collect());
    let probe = |i: u64| {
        let client = client.clone();
        let url = format!(
            "{base}/probe?module=http_2xx&target={}",
            urls[i as usize % urls.len()]
        );
        async move {
            match client.get(url).send().await {
                Ok(r) => r
                    .text()
                    .await
                    .is_ok_and(|body| body.contains("probe_success 1")),
                Err(_) => false,
            }
        }
    };
    let _ = drive(rate, Duration::from_secs(3), &probe).await;
    let cpu0 = cpu_time(child.id());
    let (probes, failed) = drive(rate, length, &probe).await;
    let cpu = (cpu_time(child.id()) - cpu0).as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Cost {
        probes: probes + failed,
        failed,
        cpu,
    }
}

async fn curl_cost(target: &FastTarget, rate: u64, length: Duration) -> Cost {
    let urls: Arc<Vec<String>> = Arc::new((0..rate as usize * 10).map(|i| target.url(i)).collect());
    let probe = |i: u64| {
        let url = urls[i as usize % urls.len()].clone();
        async move {
            tokio::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(url)
                .output()
                .await
                .is_ok_and(|o| o.stdout == b"200")
        }
    };
    // Every earlier child has been waited for, so the children's CPU now is only curl's.
    let cpu0 = waited_children_cpu();
    let (probes, failed) = drive(rate, length, probe).await;
    let cpu = (waited_children_cpu() - cpu0).as_secs_f64();
    Cost {
        probes: probes + failed,
        failed,
        cpu,
    }
}

/// Set in the environment of the bench binary's own child to make it the bare prober:
/// `RATE,SECONDS,URL_FILE`.
pub const BARE_PROBER: &str = "SITEWATCH_BENCH_BARE_PROBER";

/// The bare reqwest prober, as a child process of this bench binary, at the same rate.
fn bare_reqwest_cost(target: &FastTarget, rate: u64, length: Duration) -> Cost {
    let dir = scratch_dir();
    let urls: Vec<String> = (0..rate as usize * 10).map(|i| target.url(i)).collect();
    let list = dir.path().join("urls.txt");
    std::fs::write(&list, urls.join("\n")).unwrap();
    let warmup = 3;
    let child = Command::new(std::env::current_exe().unwrap())
        .env(
            BARE_PROBER,
            format!("{rate},{},{}", warmup + length.as_secs(), list.display()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the bare prober");
    std::thread::sleep(Duration::from_secs(warmup));
    let cpu0 = cpu_time(child.id());
    std::thread::sleep(length);
    let cpu = (cpu_time(child.id()) - cpu0).as_secs_f64();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = text
        .trim()
        .split_once(' ')
        .map(|(a, b)| (a.parse().unwrap_or(0), b.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    // Scale the counts of the whole run to the measured span.
    let share = length.as_secs_f64() / (warmup as f64 + length.as_secs_f64());
    Cost {
        probes: ((ok + failed) as f64 * share) as u64,
        failed: (failed as f64 * share) as u64,
        cpu,
    }
}

/// The bare prober's body: `rate` GETs a second over the URLs, each read to the end, for the
/// given seconds; prints "OK FAILED".
pub fn bare_prober(spec: &str) {
    let mut parts = spec.splitn(3, ',');
    let rate: u64 = parts.next().and_then(|s| s.parse().ok()).expect("rate");
    let secs: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
    let urls: Vec<String> = std::fs::read_to_string(parts.next().expect("url file"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ok, failed) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        drive(rate, Duration::from_secs(secs), |i| {
            let request = client.get(&urls[i as usize % urls.len()]).send();
            async move {
                match request.await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await
    });
    println!("{ok} {failed}");
}
