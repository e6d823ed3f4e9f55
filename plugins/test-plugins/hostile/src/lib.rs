//! A misbehaving check for the host's sandbox tests. Config `{"mode": ...}`:
//! `loop` spins forever, `alloc` allocates until it is stopped, `panic` panics with a message,
//! `trap` executes `unreachable`, `pass` passes, `fail` (or no mode) fails with an escape-laden
//! reason.

wit_bindgen::generate!({ path: "../../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Metric, Response, Verdict};

struct Hostile;

impl Guest for Hostile {
    fn check(config: String, _response: Response) -> Result<CheckResult, String> {
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
