//! `header`: checks a response header, e.g. that HSTS or a cache policy is set.
//!
//! Config: `{"name": "strict-transport-security"}` (must be present),
//! `{"name": "x-debug", "present": false}` (must be absent),
//! `{"name": "cache-control", "contains": "max-age"}`, `{"name": "server", "equals": "nginx"}`,
//! `{"name": "content-type", "matches": "^application/json"}`.

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Header, Response, Verdict};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    #[serde(default = "yes")]
    present: bool,
    equals: Option<String>,
    contains: Option<String>,
    matches: Option<String>,
}

fn yes() -> bool {
    true
}

pub fn judge(config: &str, headers: &[Header]) -> Result<Verdict, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    let name = c.name.to_ascii_lowercase();
    let values: Vec<&str> = headers
        .iter()
        .filter(|h| h.name == name)
        .map(|h| h.value.as_str())
        .collect();
    if !c.present {
        return Ok(if values.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail(format!("header {name} is present"))
        });
    }
    if values.is_empty() {
        return Ok(Verdict::Fail(format!("header {name} is missing")));
    }
    let value = values.join(", ");
    if let Some(want) = &c.equals
        && value != *want
    {
        return Ok(Verdict::Fail(format!(
            "header {name} is \"{value}\", expected \"{want}\""
        )));
    }
    if let Some(part) = &c.contains
        && !value.contains(part.as_str())
    {
        return Ok(Verdict::Fail(format!(
            "header {name} (\"{value}\") does not contain \"{part}\""
        )));
    }
    if let Some(p) = &c.matches {
        let re = regex_lite::Regex::new(p).map_err(|e| format!("invalid regex \"{p}\": {e}"))?;
        if !re.is_match(&value) {
            return Ok(Verdict::Fail(format!(
                "header {name} (\"{value}\") does not match /{p}/"
            )));
        }
    }
    Ok(Verdict::Pass)
}

struct HeaderCheck;

impl Guest for HeaderCheck {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        Ok(CheckResult {
            verdict: judge(&config, &response.headers)?,
            metrics: Vec::new(),
        })
    }
}

export!(HeaderCheck);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<Header> {
        vec![
            Header {
                name: "cache-control".into(),
                value: "public, max-age=60".into(),
            },
            Header {
                name: "strict-transport-security".into(),
                value: "max-age=31536000".into(),
            },
        ]
    }

    fn passes(config: &str) -> bool {
        matches!(judge(config, &headers()).unwrap(), Verdict::Pass)
    }

    #[test]
    fn presence_and_values() {
        assert!(passes(r#"{"name": "Strict-Transport-Security"}"#));
        assert!(!passes(r#"{"name": "x-frame-options"}"#));
        assert!(passes(r#"{"name": "x-debug", "present": false}"#));
        assert!(!passes(r#"{"name": "cache-control", "present": false}"#));
        assert!(passes(
            r#"{"name": "cache-control", "contains": "max-age"}"#
        ));
        assert!(!passes(
            r#"{"name": "cache-control", "equals": "no-store"}"#
        ));
        assert!(passes(
            r#"{"name": "cache-control", "matches": "max-age=\\d+"}"#
        ));
        assert!(judge(r#"{"nam": "x"}"#, &headers()).is_err());
    }
}
