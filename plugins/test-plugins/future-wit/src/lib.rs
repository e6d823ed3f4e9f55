//! A check built against a future version of the WIT package (0.9.0). The host speaks 0.1 and 0.2
//! must refuse it at load time with a message naming the version.

wit_bindgen::generate!({ path: "wit", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Verdict};

struct Future;

impl Guest for Future {
    fn check(_config: String, _response: Response) -> Result<CheckResult, String> {
        Ok(CheckResult {
            verdict: Verdict::Pass,
            metrics: vec![],
        })
    }
}

export!(Future);
