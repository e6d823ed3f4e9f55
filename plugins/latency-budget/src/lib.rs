//! `latency-budget`: fails a response that was slower than its budget.
//!
//! Config: `{"ttfb_ms": 200}`, `{"response_ms": 500}` or both.

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Timings, Verdict};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    ttfb_ms: Option<f64>,
    response_ms: Option<f64>,
}

pub fn judge(config: &str, t: &Timings) -> Result<Verdict, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    if c.ttfb_ms.is_none() && c.response_ms.is_none() {
        return Err("config needs \"ttfb_ms\" or \"response_ms\"".into());
    }
    if let Some(budget) = c.ttfb_ms
        && t.ttfb_ms > budget
    {
        return Ok(Verdict::Fail(format!(
            "TTFB {:.1} ms is over the {budget} ms budget",
            t.ttfb_ms
        )));
    }
    if let Some(budget) = c.response_ms
        && t.response_ms > budget
    {
        return Ok(Verdict::Fail(format!(
            "response time {:.1} ms is over the {budget} ms budget",
            t.response_ms
        )));
    }
    Ok(Verdict::Pass)
}

struct LatencyBudget;

impl Guest for LatencyBudget {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        Ok(CheckResult {
            verdict: judge(&config, &response.timings)?,
            metrics: Vec::new(),
        })
    }
}

export!(LatencyBudget);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ttfb_ms: f64, response_ms: f64) -> Timings {
        Timings {
            ttfb_ms,
            response_ms,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
        }
    }

    #[test]
    fn budgets() {
        assert!(matches!(
            judge(r#"{"ttfb_ms": 100}"#, &t(50.0, 500.0)).unwrap(),
            Verdict::Pass
        ));
        let Verdict::Fail(r) = judge(r#"{"ttfb_ms": 100}"#, &t(150.0, 200.0)).unwrap() else {
            panic!()
        };
        assert_eq!(r, "TTFB 150.0 ms is over the 100 ms budget");
        assert!(matches!(
            judge(r#"{"response_ms": 100}"#, &t(10.0, 101.0)).unwrap(),
            Verdict::Fail(_)
        ));
        assert!(judge("{}", &t(0.0, 0.0)).is_err());
    }
}
