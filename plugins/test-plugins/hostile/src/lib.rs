//! A misbehaving check for the host's sandbox tests. Config `{"mode": ...}`:
//! `loop` spins forever, `alloc` allocates until it is stopped, `hold` allocates `mib` MiB and
//! keeps it for `ms` milliseconds (spinning) before it passes, `slow-if` spins `ms` milliseconds
//! and fails when the body contains `marker` (and passes at once otherwise), `panic` panics
//! with a message,
//! `trap` executes `unreachable`, `pass` passes, `fail` (or no mode) fails with an escape-laden
//! reason.

wit_bindgen::generate!({ path: "../../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Metric, Response, Verdict};

struct Hostile;

impl Guest for Hostile {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        let v: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        match v["mode"].as_str().unwrap_or("") {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "hold" => {
                let mib = v["mib"].as_u64().unwrap_or(1) as usize;
                let ms = v["ms"].as_u64().unwrap_or(100);
                let hoard = vec![1u8; mib << 20];
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_millis(ms) {
                    std::hint::black_box(&hoard);
                }
                Ok(CheckResult {
                    verdict: Verdict::Pass,
                    metrics: vec![],
                })
            }
            "slow-if" => {
                let marker = v["marker"].as_str().unwrap_or("SLOW").as_bytes();
                let slow = response.body.windows(marker.len()).any(|w| w == marker);
                if !slow {
                    return Ok(CheckResult {
                        verdict: Verdict::Pass,
                        metrics: vec![],
                    });
                }
                let ms = v["ms"].as_u64().unwrap_or(100);
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_millis(ms) {
                    std::hint::black_box(&marker);
                }
                Ok(CheckResult {
                    verdict: Verdict::Fail("slow to judge, and failed".into()),
                    metrics: vec![],
                })
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "trap" => std::process::abort(),
            "fail" | "" => Ok(CheckResult {
                verdict: Verdict::Fail("\x1b[2J\x1b[31mred alert\x07".into()),
                metrics: vec![Metric {
                    name: "Evil Name\x1b[0m".into(),
                    value: 1.0,
                }],
            }),
            "pass" => Ok(CheckResult {
                verdict: Verdict::Pass,
                metrics: vec![],
            }),
            other => Err(format!("unknown mode \"{other}\"")),
        }
    }
}

export!(Hostile);
