//! Push: 10,000 push (heartbeat) sites whose jobs ping every 10 s (1,000 pings a second over
//! keep-alive HTTP, sent by this bench process), each site judged every 10 s: sitewatch's CPU
//! (its share of one core, and per ping) and memory, and whether every site stayed up.

use crate::harness::{Monitor, scratch_dir};
use crate::{run_length, save};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SITES: usize = 10_000;
/// Each job pings this often.
const EVERY: Duration = Duration::from_secs(10);

pub async fn run() {
    let length = run_length(Duration::from_secs(30));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokens: Vec<String> = (0..SITES)
        .map(|i| format!("bench-push-token-{i:08}"))
        .collect();
    let vars: Vec<String> = (0..SITES).map(|i| format!("PUSH_TOKEN_{i}")).collect();
    let sites: Vec<serde_json::Value> = (0..SITES)
        .map(|i| {
            serde_json::json!({"name": format!("job{i}"), "kind": "push", "token_env": vars[i],
                "period": "10s", "grace": "20s", "interval": "10s"})
        })
        .collect();
    let config = serde_json::json!({
        "sites": sites,
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let env: Vec<(&str, &str)> = vars
        .iter()
        .zip(&tokens)
        .map(|(v, t)| (v.as_str(), t.as_str()))
        .collect();
    let mut monitor = Monitor::start_with_env(scratch_dir(), &config, &env);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/push");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{base}/{}", tokens[0]))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "sitewatch's server did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tokens = Arc::new(tokens);
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // One warm-up round of pings, then the measured span.
    let pinger = {
        let (tokens, ok, failed, client) = (
            Arc::clone(&tokens),
            Arc::clone(&ok),
            Arc::clone(&failed),
            client.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY / SITES as u32);
            let mut i = 0usize;
            loop {
                tick.tick().await;
                let url = format!("{base}/{}", tokens[i % SITES]);
                let (client, ok, failed) = (client.clone(), Arc::clone(&ok), Arc::clone(&failed));
                tokio::spawn(async move {
                    let good = client
                        .post(url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if good { ok } else { failed }.fetch_add(1, Ordering::Relaxed);
                });
                i += 1;
            }
        })
    };
    tokio::time::sleep(EVERY + Duration::from_secs(2)).await;
    let (ok0, failed0) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let cpu0 = monitor.cpu_time();
    let from = chrono::Utc::now();
    tokio::time::sleep(length).await;
    let cpu = (monitor.cpu_time() - cpu0).as_secs_f64();
    let to = chrono::Utc::now();
    let pings = ok.load(Ordering::Relaxed) - ok0;
    let refused = failed.load(Ordering::Relaxed) - failed0;
    let (rss_kb, peak_kb) = monitor.rss_kb();
    pinger.abort();
    monitor.stop();
    let ticks = monitor.probes_in_store(from, to);
    let down = ticks.iter().filter(|(_, ok)| !ok).count();
    let secs = length.as_secs_f64();
    println!(
        "\n== push: {SITES} push sites, a ping each every {} s, {} s measured",
        EVERY.as_secs(),
        length.as_secs()
    );
    println!(
        "  pings taken            {pings:>10} ({:.0}/s; {refused} refused)",
        pings as f64 / secs
    );
    println!("  site ticks judged      {:>10} ({down} down)", ticks.len());
    println!(
        "  CPU                    {:>9.1}% of a core",
        cpu / secs * 100.0
    );
    println!(
        "  CPU per ping           {:>9.1} µs (the ticks' cost included)",
        cpu / pings.max(1) as f64 * 1e6
    );
    println!(
        "  RSS                    {:>9.1} MiB (peak {:.1} MiB)",
        rss_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    save(
        "push",
        &serde_json::json!({"sites": SITES, "ping_every_s": EVERY.as_secs(), "seconds": secs,
            "pings": pings, "refused": refused, "ticks": ticks.len(), "down_ticks": down,
            "cpu_core_share": cpu / secs, "cpu_per_ping_us": cpu / pings.max(1) as f64 * 1e6,
            "rss_mib": rss_kb as f64 / 1024.0, "peak_rss_mib": peak_kb as f64 / 1024.0}),
    );
}
