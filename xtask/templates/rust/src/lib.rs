//! `{{name}}`: a sitewatch check. It fails when the response body is empty; change `judge` to
//! decide what you need. The site's `config` for this check arrives as JSON text.

wit_bindgen::generate!({ path: "../../wit/0.3.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Verdict};

/// The decision, apart from the bindings so that `cargo test` runs it natively.
pub fn judge(_config: &str, body: &[u8]) -> Verdict {
    if body.is_empty() {
        Verdict::Fail("the body is empty".into())
    } else {
        Verdict::Pass
    }
}

struct Plugin;

impl Guest for Plugin {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        Ok(CheckResult {
            verdict: judge(&config, &response.body),
            metrics: Vec::new(),
        })
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_fails_and_any_other_passes() {
        assert!(matches!(judge("{}", b""), Verdict::Fail(r) if r == "the body is empty"));
        assert!(matches!(judge("{}", b"ok"), Verdict::Pass));
    }
}
