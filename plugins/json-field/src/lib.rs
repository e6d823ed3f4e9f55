//! `json-field`: parses the body as JSON and checks one field.
//!
//! Config: `{"path": "status", "equals": "UP"}`; `path` is dot-separated with numeric indexes
//! (`checks.0.status`). One or more of: `equals` (any JSON value), `matches` (a regex over a
//! string value), `min` / `max` (for a number). With `"metric": "name"` a numeric field is also
//! recorded as a metric (default name: `json.<path>`).

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use serde_json::Value;
use sitewatch::plugin::types::{CheckResult, Metric, Response, Verdict};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: String,
    equals: Option<Value>,
    matches: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    metric: Option<String>,
}

/// Looks up a dot-separated path (`a.b.0.c`).
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, part| match v {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?),
            Value::Object(map) => map.get(part),
            _ => None,
        })
}

pub fn judge(config: &str, body: &[u8]) -> Result<CheckResult, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    let fail = |reason: String| {
        Ok(CheckResult {
            verdict: Verdict::Fail(reason),
            metrics: Vec::new(),
        })
    };
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return fail(format!("body is not JSON: {e}")),
    };
    let Some(value) = lookup(&doc, &c.path) else {
        return fail(format!("no field \"{}\"", c.path));
    };
    let metrics = match value.as_f64() {
        Some(n) => vec![Metric {
            name: c
                .metric
                .clone()
                .unwrap_or_else(|| format!("json.{}", c.path)),
            value: n,
        }],
        None => Vec::new(),
    };
    let verdict = (|| {
        if let Some(want) = &c.equals
            && value != want
        {
            return Verdict::Fail(format!("{} is {value}, expected {want}", c.path));
        }
        if let Some(p) = &c.matches {
            let Some(s) = value.as_str() else {
                return Verdict::Fail(format!("{} is {value}, not a string", c.path));
            };
            match regex_lite::Regex::new(p) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => {
                    return Verdict::Fail(format!(
                        "{} is \"{s}\", which does not match /{p}/",
                        c.path
                    ));
                }
                Err(e) => return Verdict::Fail(format!("invalid regex \"{p}\": {e}")),
            }
        }
        if c.min.is_some() || c.max.is_some() {
            let Some(n) = value.as_f64() else {
                return Verdict::Fail(format!("{} is {value}, not a number", c.path));
            };
            if c.min.is_some_and(|min| n < min) || c.max.is_some_and(|max| n > max) {
                let range = format!(
                    "{}..{}",
                    c.min.map(|v| v.to_string()).unwrap_or_default(),
                    c.max.map(|v| v.to_string()).unwrap_or_default()
                );
                return Verdict::Fail(format!("{} is {n}, outside {range}", c.path));
            }
        }
        Verdict::Pass
    })();
    Ok(CheckResult { verdict, metrics })
}

struct JsonField;

impl Guest for JsonField {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        judge(&config, &response.body)
    }
}

export!(JsonField);

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(config: &str, body: &str) -> Verdict {
        judge(config, body.as_bytes()).unwrap().verdict
    }

    #[test]
    fn equals_on_nested_paths() {
        let body = r#"{"status": "UP", "checks": [{"name": "db", "ok": true}]}"#;
        assert!(matches!(
            verdict(r#"{"path": "status", "equals": "UP"}"#, body),
            Verdict::Pass
        ));
        assert!(matches!(
            verdict(r#"{"path": "checks.0.ok", "equals": true}"#, body),
            Verdict::Pass
        ));
        let Verdict::Fail(r) = verdict(r#"{"path": "status", "equals": "DOWN"}"#, body) else {
            panic!()
        };
        assert_eq!(r, r#"status is "UP", expected "DOWN""#);
        let Verdict::Fail(r) = verdict(r#"{"path": "nope.x", "equals": 1}"#, body) else {
            panic!()
        };
        assert_eq!(r, r#"no field "nope.x""#);
    }

    #[test]
    fn ranges_matches_and_metrics() {
        let body = r#"{"latency": 12.5, "version": "v1.4"}"#;
        let r = judge(r#"{"path": "latency", "max": 100}"#, body.as_bytes()).unwrap();
        assert!(matches!(r.verdict, Verdict::Pass));
        assert_eq!(r.metrics.len(), 1);
        assert_eq!(
            (r.metrics[0].name.as_str(), r.metrics[0].value),
            ("json.latency", 12.5)
        );
        assert!(matches!(
            verdict(r#"{"path": "latency", "min": 20}"#, body),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            verdict(r#"{"path": "version", "matches": "^v1\\."}"#, body),
            Verdict::Pass
        ));
        assert!(matches!(
            verdict(r#"{"path": "version", "min": 1}"#, body),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn non_json_bodies_fail_and_bad_config_errors() {
        assert!(matches!(
            verdict(r#"{"path": "a", "equals": 1}"#, "<html>"),
            Verdict::Fail(_)
        ));
        assert!(
            judge(r#"{"equals": 1}"#, b"{}")
                .unwrap_err()
                .contains("invalid config")
        );
    }
}
