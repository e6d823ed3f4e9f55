//! Side by side, same target, same probe rate, same run: the CPU each probe costs in sitewatch
//! (whole pipeline), in Debian's prometheus-blackbox-exporter (http_2xx, driven over keep-alive
//! HTTP like Prometheus scrapes it) and in a `curl -w` loop (one process per probe); and, as the
//! floor, a bare reqwest loop (one shared client, no pooling, nothing recorded) run by this bench
//! binary as a child process. Then the same for two other kinds: sitewatch's `tcp` sites against
//! blackbox's `tcp` prober (a connection to the same target), and its `dns` sites against
//! blackbox's `dns` prober (an A query to a local dnsmasq).

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
    kinds(&target, rate, length, &mut json).await;
    save("peers", &serde_json::Value::Object(json));
}

/// The goal for the other kinds: sitewatch at most this share of blackbox's CPU per probe.
const KINDS_GOAL: f64 = 0.3;

/// sitewatch's `tcp` and `dns` kinds against blackbox_exporter's `tcp` and `dns` probers.
async fn kinds(
    target: &FastTarget,
    rate: u64,
    length: Duration,
    json: &mut serde_json::Map<String, serde_json::Value>,
) {
    let port = url::Url::parse(&target.url(0)).unwrap().port().unwrap();
    let tcp_target = format!("127.0.0.1:{port}");
    let dns = Dnsmasq::start();
    let n = rate as usize * 10;
    println!(
        "\n== peers: other kinds, CPU per probe at {rate} probes/s (goal: sitewatch at most {KINDS_GOAL}x blackbox)"
    );
    println!(
        "  {:<40} {:>8} {:>7} {:>12} {:>14}",
        "", "probes", "failed", "CPU/probe", "vs blackbox"
    );
    let mut parts: Vec<(&str, serde_json::Value, String, &str)> = vec![(
        "tcp",
        kind_sites(
            n,
            |_| serde_json::json!({"kind": "tcp", "target": tcp_target}),
        ),
        tcp_target.clone(),
        "tcp_connect",
    )];
    match &dns {
        Some(d) => parts.push((
            "dns",
            kind_sites(n, |_| {
                serde_json::json!({"kind": "dns", "target": "www.example.test",
                "resolver": format!("127.0.0.1:{}", d.port)})
            }),
            format!("127.0.0.1:{}", d.port),
            "dns_a",
        )),
        None => println!("  dns: skipped (dnsmasq not installed: apt-get install dnsmasq-base)"),
    }
    for (kind, config, probe_target, module) in parts {
        let sitewatch = tokio::task::spawn_blocking(move || sitewatch_cost_of(&config, length))
            .await
            .unwrap();
        let blackbox = if ensure_installed(BLACKBOX, BLACKBOX) {
            Some(blackbox_module_cost(module, &probe_target, rate, length).await)
        } else {
            None
        };
        let ratio = blackbox
            .as_ref()
            .map(|b| sitewatch.per_probe_us() / b.per_probe_us());
        for (name, cost) in [
            (format!("sitewatch {kind} sites"), Some(&sitewatch)),
            (format!("blackbox_exporter {module}"), blackbox.as_ref()),
        ] {
            let Some(c) = cost else {
                println!("  {name:<40} skipped (not installed)");
                continue;
            };
            println!(
                "  {:<40} {:>8} {:>7} {:>10.0}µs {:>14}",
                name,
                c.probes,
                c.failed,
                c.per_probe_us(),
                if name.starts_with("sitewatch") {
                    ratio.map_or("-".into(), |r| format!("{r:.2}x"))
                } else {
                    "1.00x".into()
                }
            );
        }
        json.insert(
            format!("{kind}_kind"),
            serde_json::json!({
                "sitewatch": {"probes": sitewatch.probes, "failed": sitewatch.failed,
                    "cpu_per_probe_us": sitewatch.per_probe_us()},
                "blackbox": blackbox.as_ref().map(|b| serde_json::json!({"probes": b.probes,
                    "failed": b.failed, "cpu_per_probe_us": b.per_probe_us()})),
                "sitewatch_ratio": ratio, "goal": KINDS_GOAL,
            }),
        );
    }
}

/// `n` sites of a kind every 10 s (`rate` probes a second).
fn kind_sites(n: usize, site: impl Fn(usize) -> serde_json::Value) -> serde_json::Value {
    let sites: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut s = site(i);
            s["name"] = format!("k{i}").into();
            s["interval"] = "10s".into();
            s["timeout"] = "5s".into();
            s
        })
        .collect();
    serde_json::json!({ "sites": sites })
}

/// A local dnsmasq answering `www.example.test` (None when it is not installed).
struct Dnsmasq {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start() -> Option<Self> {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = scratch_dir();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "192.0.2.10 www.example.test\n").unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file=",
                "--local=/example.test/",
                "--user=root",
                "--cache-size=0",
            ])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(Self {
            port,
            child,
            _dir: dir,
        })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    sitewatch_cost_of(&config, length)
}

/// sitewatch running `config`, its probes counted in its store.
fn sitewatch_cost_of(config: &serde_json::Value, length: Duration) -> Cost {
    let mut monitor = Monitor::start_quiet(scratch_dir(), config);
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
    let urls: Arc<Vec<String>> = Arc::new((0..rate as usize * 10).map(|i| target.url(i)).collect());
    blackbox_probes(rate, length, move |i| {
        format!("module=http_2xx&target={}", urls[i as usize % urls.len()])
    })
    .await
}

/// blackbox_exporter's `module` probing `target` (a `tcp` or `dns` module of [`BLACKBOX_YML`]).
async fn blackbox_module_cost(module: &str, target: &str, rate: u64, length: Duration) -> Cost {
    let query = format!("module={module}&target={target}");
    blackbox_probes(rate, length, move |_| query.clone()).await
}

/// The modules the benches drive.
const BLACKBOX_YML: &str = "modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: www.example.test
      query_type: A
      transport_protocol: udp
      preferred_ip_protocol: ip4
";

/// blackbox_exporter probing `rate` times a second, each `/probe?<query(i)>`.
async fn blackbox_probes(rate: u64, length: Duration, query: impl Fn(u64) -> String) -> Cost {
    let dir = scratch_dir();
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, BLACKBOX_YML).unwrap();
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
    let probe = |i: u64| {
        let client = client.clone();
        let url = format!("{base}/probe?{}", query(i));
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
