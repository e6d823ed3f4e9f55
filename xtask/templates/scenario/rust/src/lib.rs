//! `{{name}}`: a sitewatch scenario, the probe of a `script` site. One step, `get`: GET the
//! config's `url` and expect 200. Add steps with `scenario_host::step` and more requests with
//! `scenario_host::send` (plugins/login-flow is a longer example). The site's `config` arrives as
//! JSON text, its `${NAME}` placeholders as written: put them in requests, and the host sends the
//! secrets in their place.
//!
//! `cargo xtask build-plugins` builds target/plugins/{{name}}.wasm; run it once with
//! `sitewatch plugin test target/plugins/{{name}}.wasm --config '{"url": "http://127.0.0.1:8080/"}'`.

wit_bindgen::generate!({ path: "../../wit/0.4.0", world: "scenario" });

use exports::sitewatch::plugin::script::{Failure, Guest, Outcome};
use sitewatch::plugin::scenario_host::{self, FailureKind, Request};

/// The config's `url`, apart from the bindings so that `cargo test` runs it natively.
pub fn url_of(config: &str) -> Result<String, String> {
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    match config["url"].as_str() {
        Some(url) => Ok(url.to_owned()),
        None => Err("invalid config: missing field `url`".into()),
    }
}

fn fail(kind: FailureKind, message: String) -> Failure {
    Failure {
        kind,
        message,
        step: None, // the step named last
        metrics: Vec::new(),
    }
}

struct Plugin;

impl Guest for Plugin {
    fn run(config: String) -> Result<Outcome, Failure> {
        let url = url_of(&config).map_err(|e| fail(FailureKind::Config, e))?;
        scenario_host::step("get");
        let request = Request {
            method: "GET".into(),
            url: url.clone(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        };
        // A request that got no answer fails the run with the host's kind and message.
        let response = scenario_host::send(&request).map_err(|e| fail(e.kind, e.message))?;
        if response.status != 200 {
            let message = format!("GET {url}: status {}, expected 200", response.status);
            return Err(fail(FailureKind::Status, message));
        }
        // Metrics: `Metric { name: "{{name}}.something".into(), value: 1.0 }` in the list.
        Ok(Outcome {
            metrics: Vec::new(),
        })
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_url() {
        assert_eq!(url_of(r#"{"url": "http://x/"}"#).unwrap(), "http://x/");
        assert!(url_of("{}").unwrap_err().contains("`url`"));
        assert!(url_of("[").unwrap_err().starts_with("invalid config"));
    }
}
