//! A check built against WIT 0.2.0 that reports what it was given, so that tests can assert the
//! TLS fields a plugin sees. It passes with the metrics `echo.has_tls` (0 or 1) and
//! `echo.chain_len`; with the config `{"echo": true}` it fails instead, its reason the response's
//! `status` and `tls` as JSON.

wit_bindgen::generate!({ path: "../../../wit/0.2.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use serde_json::json;
use sitewatch::plugin::types::{CheckResult, Metric, Response, Verdict};

struct Echo;

impl Guest for Echo {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        let config: serde_json::Value =
            serde_json::from_str(&config).map_err(|e| format!("invalid config: {e}"))?;
        let tls = response.tls.as_ref().map(|t| {
            json!({
                "version": t.version,
                "cipher": t.cipher,
                "earliest_expiry": t.earliest_expiry,
                "chain": t.chain.iter().map(|c| json!({
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "sans": c.sans,
                    "not_before": c.not_before,
                    "not_after": c.not_after,
                    "serial": c.serial,
                })).collect::<Vec<_>>(),
            })
        });
        let metrics = vec![
            Metric {
                name: "echo.has_tls".into(),
                value: f64::from(u8::from(response.tls.is_some())),
            },
            Metric {
                name: "echo.chain_len".into(),
                value: response.tls.as_ref().map_or(0, |t| t.chain.len()) as f64,
            },
        ];
        let verdict = if config["echo"] == true {
            Verdict::Fail(json!({"status": response.status, "tls": tls}).to_string())
        } else {
            Verdict::Pass
        };
        Ok(CheckResult { verdict, metrics })
    }
}

export!(Echo);
