//! A scenario for the host's sandbox tests. Config `{"url": "http://127.0.0.1:PORT", "mode": ...}`:
//! `echo` sends `${PW}` in a header, the URL and a JSON body to `{url}/echo` and fails with
//! what came back (so the test sees what the plugin saw); `guess` names `${HOME}`, a secret
//! the site does not give; `outside` sends to `other` (a host not allowed) and then passes
//! anyway; `many` sends to `{url}/ok` 100 times, ignoring refusals, and passes; `sleep`
//! sleeps `ms`; `spin` loops for ever; `trap` panics; `steps` sends one request to `{url}/ok`
//! in each of the steps `one`, `two` and `three`, and fails in `three` when it does not get
//! 200; `redirect` follows `{url}/away`, a redirect to a host not allowed.

wit_bindgen::generate!({ path: "../../../wit/0.4.0", world: "scenario" });

use exports::sitewatch::plugin::script::{Failure, Guest, Outcome};
use sitewatch::plugin::scenario_host::{self as net, FailureKind, Request};
use sitewatch::plugin::types::{Header, Metric};

struct Hostile;

fn get(url: String) -> Request {
    Request {
        method: "GET".into(),
        url,
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    }
}

fn fail(kind: FailureKind, message: String) -> Failure {
    Failure {
        kind,
        message,
        step: None,
        metrics: Vec::new(),
    }
}

impl Guest for Hostile {
    fn run(config: String) -> Result<Outcome, Failure> {
        let v: serde_json::Value =
            serde_json::from_str(&config).map_err(|e| fail(FailureKind::Config, e.to_string()))?;
        let url = v["url"].as_str().unwrap_or_default().to_owned();
        let passed = Ok(Outcome {
            metrics: vec![Metric {
                name: "hostile.ran".into(),
                value: 1.0,
            }],
        });
        match v["mode"].as_str().unwrap_or_default() {
            "echo" => {
                net::step("echo");
                let r = net::send(&Request {
                    method: "POST".into(),
                    url: format!("{url}/echo?pw=${{PW}}"),
                    headers: vec![
                        Header {
                            name: "x-pw".into(),
                            value: "${PW}".into(),
                        },
                        Header {
                            name: "content-type".into(),
                            value: "application/json".into(),
                        },
                    ],
                    body: Some(br#"{"pw": "${PW}"}"#.to_vec()),
                    timeout_ms: None,
                })
                .map_err(|e| fail(e.kind, e.message))?;
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|h| format!("{}={}", h.name, h.value))
                    .collect();
                Err(fail(
                    FailureKind::Assertion,
                    format!(
                        "saw url={} headers={} body={}",
                        r.url,
                        headers.join(";"),
                        String::from_utf8_lossy(&r.body)
                    ),
                ))
            }
            "guess" => {
                net::send(&get(format!("{url}/ok?h=${{HOME}}")))
                    .map_err(|e| fail(e.kind, e.message))?;
                passed
            }
            "outside" => {
                let other = v["other"].as_str().unwrap_or_default().to_owned();
                let _ = net::send(&get(other));
                passed
            }
            "many" => {
                for _ in 0..100 {
                    let _ = net::send(&get(format!("{url}/ok")));
                }
                passed
            }
            "sleep" => {
                net::sleep(v["ms"].as_u64().unwrap_or(60_000) as u32);
                passed
            }
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "trap" => panic!("the hostile scenario panics"),
            "steps" | "" => {
                for step in ["one", "two", "three"] {
                    net::step(step);
                    let r = net::send(&get(format!("{url}/{step}")))
                        .map_err(|e| fail(e.kind, e.message))?;
                    if r.status != 200 {
                        return Err(fail(
                            FailureKind::Status,
                            format!("GET /{step}: status {}, expected 200", r.status),
                        ));
                    }
                }
                passed
            }
            "redirect" => {
                net::step("away");
                let _ = net::send(&get(format!("{url}/away")));
                passed
            }
            other => Err(fail(FailureKind::Config, format!("unknown mode {other:?}"))),
        }
    }
}

export!(Hostile);
