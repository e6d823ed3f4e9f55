//! `keyword`: checks the response body for a string or a regular expression.
//!
//! Config (at least one key):
//! `{"contains": "OK"}`, `{"lacks": "error"}`, `{"matches": "version \\d+"}`,
//! `{"not_matches": "(?i)maintenance"}`, `{"case_insensitive": true}` (for contains/lacks).

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Verdict};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    contains: Option<String>,
    lacks: Option<String>,
    matches: Option<String>,
    not_matches: Option<String>,
    #[serde(default)]
    case_insensitive: bool,
}

/// Judges `body` against `config`; `Err` when the config is unusable.
pub fn judge(config: &str, body: &[u8]) -> Result<Verdict, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    if c.contains.is_none() && c.lacks.is_none() && c.matches.is_none() && c.not_matches.is_none() {
        return Err(
            "config needs one of \"contains\", \"lacks\", \"matches\", \"not_matches\"".into(),
        );
    }
    let text = String::from_utf8_lossy(body);
    let fold = |s: &str| {
        if c.case_insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let haystack = fold(&text);
    if let Some(s) = &c.contains
        && !haystack.contains(&fold(s))
    {
        return Ok(Verdict::Fail(format!("body does not contain \"{s}\"")));
    }
    if let Some(s) = &c.lacks
        && haystack.contains(&fold(s))
    {
        return Ok(Verdict::Fail(format!("body contains \"{s}\"")));
    }
    let regex =
        |p: &str| regex_lite::Regex::new(p).map_err(|e| format!("invalid regex \"{p}\": {e}"));
    if let Some(p) = &c.matches
        && !regex(p)?.is_match(&text)
    {
        return Ok(Verdict::Fail(format!("body does not match /{p}/")));
    }
    if let Some(p) = &c.not_matches
        && regex(p)?.is_match(&text)
    {
        return Ok(Verdict::Fail(format!("body matches /{p}/")));
    }
    Ok(Verdict::Pass)
}

struct Keyword;

impl Guest for Keyword {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        Ok(CheckResult {
            verdict: judge(&config, &response.body)?,
            metrics: Vec::new(),
        })
    }
}

export!(Keyword);

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(config: &str, body: &str) -> bool {
        matches!(judge(config, body.as_bytes()).unwrap(), Verdict::Pass)
    }

    #[test]
    fn contains_and_lacks() {
        assert!(passes(r#"{"contains": "UP"}"#, "status: UP"));
        assert!(!passes(r#"{"contains": "UP"}"#, "status: DOWN"));
        assert!(passes(
            r#"{"contains": "up", "case_insensitive": true}"#,
            "status: UP"
        ));
        assert!(!passes(r#"{"lacks": "error"}"#, "an error happened"));
        assert!(passes(r#"{"lacks": "error"}"#, "all good"));
    }

    #[test]
    fn regexes() {
        assert!(passes(
            r#"{"matches": "version \\d+\\.\\d+"}"#,
            "version 1.2"
        ));
        assert!(!passes(r#"{"matches": "^ok$"}"#, "not ok"));
        assert!(!passes(
            r#"{"not_matches": "(?i)maintenance"}"#,
            "Down for MAINTENANCE"
        ));
    }

    #[test]
    fn bad_config_is_an_error_not_a_verdict() {
        assert!(judge("{}", b"").unwrap_err().contains("needs one of"));
        assert!(
            judge(r#"{"contain": "x"}"#, b"")
                .unwrap_err()
                .contains("invalid config")
        );
        assert!(
            judge(r#"{"matches": "("}"#, b"")
                .unwrap_err()
                .contains("invalid regex")
        );
    }

    #[test]
    fn failure_reasons_name_the_keyword() {
        let Verdict::Fail(reason) = judge(r#"{"contains": "healthy"}"#, b"sick").unwrap() else {
            panic!()
        };
        assert_eq!(reason, "body does not contain \"healthy\"");
    }
}
