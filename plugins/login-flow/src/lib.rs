//! `login-flow`: a scenario (the probe of a `script` site). It logs in to a shop, lists the
//! orders with the token it got, and checks the status of the first order, in three steps:
//!
//! 1. `login`: `POST {url}/login` with `{"user": ..., "password": ...}`; expects 200 and a
//!    `token` in the JSON answer;
//! 2. `orders`: `GET {url}/api/orders` with `authorization: Bearer <token>`; expects 200 and
//!    `{"orders": [{"id": 7, ...}, ...]}`, at least one;
//! 3. `order`: `GET {url}/api/orders/<first id>`; expects 200 and a `status` equal to
//!    `expect_status` (`paid` by default).
//!
//! Config: `{"url": "http://127.0.0.1:8080", "user": "alice", "password": "${SHOP_PASSWORD}"}`,
//! optionally `"expect_status": "paid"`. The plugin sees `${SHOP_PASSWORD}` as written and puts
//! it in the body; the host sends the secret in its place. Records `orders.count`.
//!
//! Run it once (`plugins/scenario-demo/server.py` is a shop to run it against):
//!
//! ```sh
//! SHOP_PASSWORD=s3cret sitewatch plugin test target/plugins/login-flow.wasm --allow 127.0.0.1 \
//!     --config '{"url": "http://127.0.0.1:8080", "user": "alice", "password": "${SHOP_PASSWORD}"}'
//! ```

wit_bindgen::generate!({ path: "../../wit/0.4.0", world: "scenario" });

use exports::sitewatch::plugin::script::{Failure, Guest, Outcome};
use serde_json::{Value, json};
use sitewatch::plugin::scenario_host::{self, FailureKind, Header, Request, Response, SendError};
use sitewatch::plugin::types::Metric;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    user: String,
    password: String,
    #[serde(default = "paid")]
    expect_status: String,
}

fn paid() -> String {
    "paid".into()
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
    let base = config.url.trim_end_matches('/');

    host.step("login");
    let body = json!({"user": config.user, "password": config.password}).to_string();
    let json_type = vec![header("content-type", "application/json")];
    let login = host.send(request(
        "POST",
        format!("{base}/login"),
        json_type,
        Some(body),
    ))?;
    let answer = expect_json(&login, "POST /login")?;
    let Some(token) = answer["token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(assertion("POST /login: no \"token\" in the answer"));
    };
    let bearer = vec![header("authorization", &format!("Bearer {token}"))];

    host.step("orders");
    let list = host.send(request(
        "GET",
        format!("{base}/api/orders"),
        bearer.clone(),
        None,
    ))?;
    let answer = expect_json(&list, "GET /api/orders")?;
    let Some(orders) = answer["orders"].as_array() else {
        return Err(assertion(
            "GET /api/orders: no \"orders\" list in the answer",
        ));
    };
    let id = match orders.first().map(|order| &order["id"]) {
        None => return Err(assertion("GET /api/orders: no orders")),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(assertion("GET /api/orders: the first order has no \"id\"")),
    };

    host.step("order");
    let path = format!("/api/orders/{}", pct_encode(&id));
    let order = host.send(request("GET", format!("{base}{path}"), bearer, None))?;
    let answer = expect_json(&order, &format!("GET {path}"))?;
    let want = &config.expect_status;
    match answer["status"].as_str() {
        Some(status) if status == want => {}
        Some(status) => {
            return Err(assertion(format!(
                "order {id} is \"{status}\", expected \"{want}\""
            )));
        }
        None => return Err(assertion(format!("order {id} has no \"status\""))),
    }
    let count = Metric {
        name: "orders.count".into(),
        value: orders.len() as f64,
    };
    Ok(Outcome {
        metrics: vec![count],
    })
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

fn request(method: &str, url: String, headers: Vec<Header>, body: Option<String>) -> Request {
    Request {
        method: method.into(),
        url,
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

/// The JSON of a 200 answer; another status fails with kind `status`.
fn expect_json(response: &Response, what: &str) -> Result<Value, Failure> {
    if response.status != 200 {
        let message = format!("{what}: status {}, expected 200", response.status);
        return Err(fail(FailureKind::Status, message));
    }
    serde_json::from_slice(&response.body)
        .map_err(|_| assertion(format!("{what}: the answer is not JSON")))
}

/// `text` for a URL's path: bytes other than letters, digits and `-._~` as `%XX`.
fn pct_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

struct LoginFlow;

impl Guest for LoginFlow {
    fn run(config: String) -> Result<Outcome, Failure> {
        run(&mut Imports, &config)
    }
}

export!(LoginFlow);

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch::plugin::types::Timings;

    const CONFIG: &str =
        r#"{"url": "http://shop.test/", "user": "alice", "password": "${SHOP_PASSWORD}"}"#;

    /// A shop: answers each request with `answer(method, url)`, and records what it was sent.
    struct Shop<F> {
        answer: F,
        steps: Vec<String>,
        sent: Vec<Request>,
    }

    impl<F: FnMut(&str, &str) -> Result<(u16, String), SendError>> Host for Shop<F> {
        fn step(&mut self, name: &str) {
            self.steps.push(name.into());
        }
        fn send(&mut self, request: Request) -> Result<Response, SendError> {
            let (status, body) = (self.answer)(&request.method, &request.url)?;
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

    fn shop<F>(answer: F) -> Shop<F> {
        Shop {
            answer,
            steps: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// A shop whose order 7 has `status`.
    fn good(status: &'static str) -> impl FnMut(&str, &str) -> Result<(u16, String), SendError> {
        move |method, url| {
            let answer = match (method, url) {
                ("POST", "http://shop.test/login") => {
                    r#"{"token": "t0k", "expires_in": 60}"#.into()
                }
                ("GET", "http://shop.test/api/orders") => {
                    r#"{"orders": [{"id": 7}, {"id": 8}]}"#.into()
                }
                ("GET", "http://shop.test/api/orders/7") => {
                    format!(r#"{{"id": 7, "status": "{status}"}}"#)
                }
                _ => return Ok((404, "{}".into())),
            };
            Ok((200, answer))
        }
    }

    fn failure(result: Result<Outcome, Failure>) -> (FailureKind, String) {
        let f = result.expect_err("the run should fail");
        (f.kind, f.message)
    }

    #[test]
    fn logs_in_lists_the_orders_and_checks_the_first() {
        let mut host = shop(good("paid"));
        let outcome = run(&mut host, CONFIG).unwrap();
        assert_eq!(host.steps, ["login", "orders", "order"]);
        assert_eq!(outcome.metrics[0].name, "orders.count");
        assert_eq!(outcome.metrics[0].value, 2.0);
        // The password goes out as the placeholder, in a JSON body.
        let login = &host.sent[0];
        let body: Value = serde_json::from_slice(login.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"user": "alice", "password": "${SHOP_PASSWORD}"})
        );
        assert_eq!(login.headers[0].value, "application/json");
        for later in &host.sent[1..] {
            assert_eq!(later.headers[0].name, "authorization");
            assert_eq!(later.headers[0].value, "Bearer t0k");
        }
    }

    #[test]
    fn the_body_is_json_whatever_the_user_name() {
        let mut host = shop(good("paid"));
        let config = r#"{"url": "http://shop.test", "user": "a\"l\\ice\n", "password": "x"}"#;
        run(&mut host, config).unwrap();
        let body: Value = serde_json::from_slice(host.sent[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(body["user"], "a\"l\\ice\n");
    }

    #[test]
    fn an_order_in_another_state_fails_unless_expected() {
        let (kind, message) = failure(run(&mut shop(good("failed")), CONFIG));
        assert_eq!(kind, FailureKind::Assertion);
        assert_eq!(message, "order 7 is \"failed\", expected \"paid\"");
        let config = CONFIG.replace(r#""user""#, r#""expect_status": "failed", "user""#);
        assert!(run(&mut shop(good("failed")), &config).is_ok());
    }

    #[test]
    fn a_refused_login_fails_with_its_status() {
        let mut host = shop(|_: &str, _: &str| Ok((401, "{}".to_owned())));
        let (kind, message) = failure(run(&mut host, CONFIG));
        assert_eq!(kind, FailureKind::Status);
        assert_eq!(message, "POST /login: status 401, expected 200");
        assert_eq!(host.steps, ["login"]);
    }

    #[test]
    fn missing_answers_are_assertions() {
        let cases = [
            (
                r#"{"expires_in": 60}"#,
                "POST /login: no \"token\" in the answer",
            ),
            ("<html>", "POST /login: the answer is not JSON"),
            (
                r#"{"token": "t", "orders": []}"#,
                "GET /api/orders: no orders",
            ),
            (
                r#"{"token": "t"}"#,
                "GET /api/orders: no \"orders\" list in the answer",
            ),
            (
                r#"{"token": "t", "orders": [{"no": 1}]}"#,
                "GET /api/orders: the first order has no \"id\"",
            ),
        ];
        for (answer, expected) in cases {
            // One answer for every request: it is the login's and the orders' answer at once.
            let mut host = shop(move |_: &str, _: &str| Ok((200, answer.to_owned())));
            let (kind, message) = failure(run(&mut host, CONFIG));
            assert_eq!((kind, message.as_str()), (FailureKind::Assertion, expected));
        }
    }

    #[test]
    fn a_send_error_is_the_failure() {
        let mut host = shop(|_: &str, _: &str| {
            Err(SendError {
                kind: FailureKind::Connect,
                message: "connection refused".into(),
            })
        });
        let (kind, message) = failure(run(&mut host, CONFIG));
        assert_eq!(
            (kind, message.as_str()),
            (FailureKind::Connect, "connection refused")
        );
    }

    #[test]
    fn a_config_without_a_field_names_it() {
        let (kind, message) = failure(run(&mut shop(good("paid")), r#"{"url": "x", "user": "a"}"#));
        assert_eq!(kind, FailureKind::Config);
        assert!(message.contains("password"), "{message}");
    }
}
