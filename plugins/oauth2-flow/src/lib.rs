//! `oauth2-flow`: a scenario (the probe of a `script` site). It takes a token with the OAuth 2.0
//! client credentials grant (RFC 6749 §4.4, the client authenticating in the body, §2.3.1) and
//! calls an API with it, in two steps:
//!
//! 1. `token`: `POST {token_url}`, form-encoded `grant_type=client_credentials&client_id=...&
//!    client_secret=...&scope=...`; expects 200 and JSON with an `access_token` and a
//!    `token_type` of `Bearer` (any case);
//! 2. `api`: `GET {api_url}` with `authorization: Bearer <access_token>`; expects 200 and, when
//!    the config names a `scope`, a JSON `scope` (space-separated) that holds each of its scopes.
//!
//! Config: `{"token_url": "http://127.0.0.1:8080/oauth/token", "api_url":
//! "http://127.0.0.1:8080/api/me", "client_id": "sitewatch", "client_secret":
//! "${OAUTH_CLIENT_SECRET}", "scope": "read"}` (`scope` optional). A value that is a `${NAME}`
//! placeholder goes into the form as written: the host form-encodes the secret it sends in its
//! place. Records `token.expires_in` when the token answer has it.
//!
//! Run it once (`plugins/scenario-demo/server.py` is a server to run it against):
//!
//! ```sh
//! OAUTH_CLIENT_SECRET=s3cret sitewatch plugin test target/plugins/oauth2-flow.wasm \
//!     --allow 127.0.0.1 --config '{"token_url": "http://127.0.0.1:8080/oauth/token",
//!     "api_url": "http://127.0.0.1:8080/api/me", "client_id": "sitewatch",
//!     "client_secret": "${OAUTH_CLIENT_SECRET}", "scope": "read"}'
//! ```

wit_bindgen::generate!({ path: "../../wit/0.4.0", world: "scenario" });

use exports::sitewatch::plugin::script::{Failure, Guest, Outcome};
use serde_json::Value;
use sitewatch::plugin::scenario_host::{self, FailureKind, Header, Request, Response, SendError};
use sitewatch::plugin::types::Metric;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    token_url: String,
    api_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
}

/// What the scenario needs from the host: the wasm build calls the imports, the unit tests a fake.
pub trait Host {
    fn step(&mut self, name: &str);
    fn send(&mut self, request: Request) -> Result<Response, SendError>;
}

/// The whole run.
pub fn run(host: &mut impl Host, config: &str) -> Result<Outcome, Failure> {
    let config: Config = serde_json::from_str(config)
        .map_err(|e| fail(FailureKind::Config, format!("invalid config: {e}")))?;

    host.step("token");
    let mut form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        form_value(&config.client_id),
        form_value(&config.client_secret)
    );
    if let Some(scope) = &config.scope {
        form += &format!("&scope={}", form_value(scope));
    }
    let headers = vec![
        header("content-type", "application/x-www-form-urlencoded"),
        header("accept", "application/json"),
    ];
    let what = format!("POST {}", config.token_url);
    let token = host.send(request("POST", &config.token_url, headers, Some(form)))?;
    let answer = expect_json(&token, &what)?;
    let Some(access_token) = answer["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(assertion(format!(
            "{what}: no \"access_token\" in the answer"
        )));
    };
    match answer["token_type"].as_str() {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(kind) => {
            let message = format!("{what}: token_type is \"{kind}\", expected \"Bearer\"");
            return Err(assertion(message));
        }
        None => {
            return Err(assertion(format!(
                "{what}: no \"token_type\" in the answer"
            )));
        }
    }
    let mut metrics = Vec::new();
    if let Some(seconds) = answer["expires_in"].as_f64() {
        metrics.push(Metric {
            name: "token.expires_in".into(),
            value: seconds,
        });
    }

    host.step("api");
    let bearer = vec![header("authorization", &format!("Bearer {access_token}"))];
    let what = format!("GET {}", config.api_url);
    let api = host.send(request("GET", &config.api_url, bearer, None))?;
    if let Some(wanted) = &config.scope {
        let answer = expect_json(&api, &what)?;
        let Some(granted) = answer["scope"].as_str() else {
            return Err(assertion(format!("{what}: no \"scope\" in the answer")));
        };
        let scopes: Vec<&str> = granted.split_whitespace().collect();
        if let Some(missing) = wanted.split_whitespace().find(|s| !scopes.contains(s)) {
            let message = format!("{what}: scope \"{missing}\" not granted (scope \"{granted}\")");
            return Err(assertion(message));
        }
    } else if api.status != 200 {
        return Err(wrong_status(&api, &what));
    }
    Ok(Outcome { metrics })
}

/// A form value: percent-encoded, except a `${NAME}` placeholder, which goes in as written (the
/// host form-encodes the secret it sends in its place).
fn form_value(value: &str) -> String {
    let name = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
    let is_placeholder = name.is_some_and(|n| {
        n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if is_placeholder {
        return value.to_owned();
    }
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

fn request(method: &str, url: &str, headers: Vec<Header>, body: Option<String>) -> Request {
    Request {
        method: method.into(),
        url: url.into(),
        headers,
        body: body.map(String::into_bytes),
        timeout_ms: None,
    }
}

fn fail(kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
        step: None, // the step named last
        metrics: Vec::new(),
    }
}

fn assertion(message: impl Into<String>) -> Failure {
    fail(FailureKind::Assertion, message)
}

/// A request that got no answer fails the run with the host's kind and message.
impl From<SendError> for Failure {
    fn from(e: SendError) -> Failure {
        fail(e.kind, e.message)
    }
}

/// Kind `status`, with the OAuth `error` code (RFC 6749 §5.2) when the answer has one.
fn wrong_status(response: &Response, what: &str) -> Failure {
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let code = match answer["error"].as_str() {
        Some(error) => format!(" ({error})"),
        None => String::new(),
    };
    let message = format!("{what}: status {}, expected 200{code}", response.status);
    fail(FailureKind::Status, message)
}

/// The JSON of a 200 answer; another status fails with kind `status`.
fn expect_json(response: &Response, what: &str) -> Result<Value, Failure> {
    if response.status != 200 {
        return Err(wrong_status(response, what));
    }
    serde_json::from_slice(&response.body)
        .map_err(|_| assertion(format!("{what}: the answer is not JSON")))
}

/// The host's imports.
struct Imports;

impl Host for Imports {
    fn step(&mut self, name: &str) {
        scenario_host::step(name);
    }
    fn send(&mut self, request: Request) -> Result<Response, SendError> {
        scenario_host::send(&request)
    }
}

struct OAuth2Flow;

impl Guest for OAuth2Flow {
    fn run(config: String) -> Result<Outcome, Failure> {
        run(&mut Imports, &config)
    }
}

export!(OAuth2Flow);

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch::plugin::types::Timings;

    const CONFIG: &str = r#"{"token_url": "http://auth.test/oauth/token",
        "api_url": "http://api.test/me", "client_id": "site watch&co",
        "client_secret": "${OAUTH_CLIENT_SECRET}", "scope": "read"}"#;

    /// A server: answers each request with `answer(url, request)`, and records what it was sent.
    struct Server<F> {
        answer: F,
        steps: Vec<String>,
        sent: Vec<Request>,
    }

    impl<F: FnMut(&str) -> (u16, String)> Host for Server<F> {
        fn step(&mut self, name: &str) {
            self.steps.push(name.into());
        }
        fn send(&mut self, request: Request) -> Result<Response, SendError> {
            let (status, body) = (self.answer)(&request.url);
            self.sent.push(request);
            Ok(Response {
                status,
                headers: Vec::new(),
                body: body.into_bytes(),
                body_truncated: false,
                url: String::new(),
                timings: Timings {
                    ttfb_ms: 1.0,
                    response_ms: 1.0,
                    dns_ms: None,
                    connect_ms: None,
                    tls_ms: None,
                },
            })
        }
    }

    /// A server whose token answer is `token` and whose API answer is `api`.
    fn server(token: &str, api: &str) -> Server<impl FnMut(&str) -> (u16, String)> {
        let (token, api) = (token.to_owned(), api.to_owned());
        Server {
            answer: move |url: &str| match url {
                "http://auth.test/oauth/token" => (200, token.clone()),
                "http://api.test/me" => (200, api.clone()),
                _ => (404, String::new()),
            },
            steps: Vec::new(),
            sent: Vec::new(),
        }
    }

    const TOKEN: &str = r#"{"access_token": "at", "token_type": "bearer", "expires_in": 3600}"#;

    fn failure(result: Result<Outcome, Failure>) -> (FailureKind, String) {
        let f = result.expect_err("the run should fail");
        (f.kind, f.message)
    }

    #[test]
    fn takes_a_token_and_calls_the_api_with_it() {
        let mut host = server(TOKEN, r#"{"scope": "profile read"}"#);
        let outcome = run(&mut host, CONFIG).unwrap();
        assert_eq!(host.steps, ["token", "api"]);
        assert_eq!(outcome.metrics[0].name, "token.expires_in");
        assert_eq!(outcome.metrics[0].value, 3600.0);
        let form = String::from_utf8(host.sent[0].body.clone().unwrap()).unwrap();
        // The id is form-encoded; the secret's placeholder goes in as written.
        assert_eq!(
            form,
            "grant_type=client_credentials&client_id=site%20watch%26co\
             &client_secret=${OAUTH_CLIENT_SECRET}&scope=read"
        );
        assert_eq!(
            host.sent[0].headers[0].value,
            "application/x-www-form-urlencoded"
        );
        assert_eq!(host.sent[1].headers[0].value, "Bearer at");
    }

    #[test]
    fn a_secret_written_out_is_encoded() {
        assert_eq!(form_value("a b&c=${X"), "a%20b%26c%3D%24%7BX");
        assert_eq!(form_value("${X_1}"), "${X_1}");
        assert_eq!(form_value("${1X}"), "%24%7B1X%7D");
    }

    #[test]
    fn without_a_scope_the_api_need_only_answer_200() {
        let config = CONFIG.replace(r#", "scope": "read""#, "");
        let mut host = server(TOKEN, "not json");
        assert!(run(&mut host, &config).is_ok());
        assert!(!String::from_utf8_lossy(host.sent[0].body.as_ref().unwrap()).contains("scope"));
    }

    #[test]
    fn a_refused_client_fails_with_the_status_and_the_error() {
        let mut host = Server {
            answer: |_: &str| (401, r#"{"error": "invalid_client"}"#.to_owned()),
            steps: Vec::new(),
            sent: Vec::new(),
        };
        let (kind, message) = failure(run(&mut host, CONFIG));
        assert_eq!(kind, FailureKind::Status);
        assert_eq!(
            message,
            "POST http://auth.test/oauth/token: status 401, expected 200 (invalid_client)"
        );
    }

    #[test]
    fn token_and_scope_problems_are_assertions() {
        let cases = [
            (
                r#"{"token_type": "Bearer"}"#,
                "{}",
                "POST http://auth.test/oauth/token: no \"access_token\" in the answer",
            ),
            (
                r#"{"access_token": "at"}"#,
                "{}",
                "POST http://auth.test/oauth/token: no \"token_type\" in the answer",
            ),
            (
                r#"{"access_token": "at", "token_type": "mac"}"#,
                "{}",
                "POST http://auth.test/oauth/token: token_type is \"mac\", expected \"Bearer\"",
            ),
            (
                TOKEN,
                "{}",
                "GET http://api.test/me: no \"scope\" in the answer",
            ),
            (
                TOKEN,
                "[]",
                "GET http://api.test/me: no \"scope\" in the answer",
            ),
            (
                TOKEN,
                "<html>",
                "GET http://api.test/me: the answer is not JSON",
            ),
            (
                TOKEN,
                r#"{"scope": "reader write"}"#,
                "GET http://api.test/me: scope \"read\" not granted (scope \"reader write\")",
            ),
        ];
        for (token, api, expected) in cases {
            let (kind, message) = failure(run(&mut server(token, api), CONFIG));
            assert_eq!((kind, message.as_str()), (FailureKind::Assertion, expected));
        }
    }

    #[test]
    fn a_config_without_a_field_names_it() {
        let (kind, message) = failure(run(&mut server(TOKEN, "{}"), r#"{"token_url": "x"}"#));
        assert_eq!(kind, FailureKind::Config);
        assert!(message.contains("api_url"), "{message}");
    }
}
