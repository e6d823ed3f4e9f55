//! A target with a real login flow for the scenario tests (and the scenario examples): log in
//! for a bearer token that expires, call the API with it (401 without one, or with an expired
//! or unknown one), an OAuth2 client-credentials token endpoint, and an echo endpoint that
//! sends back whatever it was sent (a scenario that tries to read a secret through it must
//! see only placeholders). The API can be broken at its third step and the tokens expired at
//! will.
//!
//! - `POST /login` `{"user", "password"}` → 200 `{"token", "expires_in"}`, or 401.
//! - `GET /api/orders` (bearer) → 200 `{"orders": [{"id": 7, "status": "paid"}]}`, or 401.
//! - `GET /api/orders/7` (bearer) → 200 `{"id": 7, "status": "paid"}`; broken: 500.
//! - `POST /oauth/token` (form: grant_type=client_credentials, client_id, client_secret,
//!   scope) → 200 `{"access_token", "token_type": "Bearer", "expires_in", "scope"}`, or 401
//!   `{"error": "invalid_client"}`.
//! - `GET /api/me` (bearer) → 200 `{"client_id", "scope"}`, or 401; broken: 503.
//! - `POST /echo` → 200, the request's headers and body as JSON; also echoed in a header.
//! - `GET /one`, `/two`, `/three` → 200 (`/three` 500 when broken); `GET /away` → a redirect
//!   to `http://127.0.0.2:<port>/one`.

use crate::support::server::{Reply, Request, TestServer};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const CLIENT_ID: &str = "sitewatch";

struct State {
    password: String,
    client_secret: String,
    tokens: HashMap<String, Instant>,
    ttl: Duration,
    broken: bool,
    issued: u64,
    /// Requests that came with a valid token, and those refused for the lack of one.
    authorized: u64,
    unauthorized: u64,
}

pub struct Shop {
    pub server: TestServer,
    state: Arc<Mutex<State>>,
}

impl Shop {
    /// A shop whose `alice` logs in with `password` and whose OAuth2 client `sitewatch` has
    /// `client_secret`; tokens live `ttl`.
    pub async fn start(password: &str, client_secret: &str, ttl: Duration) -> Self {
        let state = Arc::new(Mutex::new(State {
            password: password.to_owned(),
            client_secret: client_secret.to_owned(),
            tokens: HashMap::new(),
            ttl,
            broken: false,
            issued: 0,
            authorized: 0,
            unauthorized: 0,
        }));
        let shared = Arc::clone(&state);
        let server = TestServer::start(move |r| answer(&mut shared.lock().unwrap(), r)).await;
        Self { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url("")
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// Breaks (or mends) the API's third step (`/api/orders/7`, `/api/me`, `/three`).
    pub fn set_broken(&self, broken: bool) {
        self.state.lock().unwrap().broken = broken;
    }

    /// Every token issued so far is expired.
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// Tokens issued, requests with a valid token, requests refused for the lack of one.
    pub fn counts(&self) -> (u64, u64, u64) {
        let s = self.state.lock().unwrap();
        (s.issued, s.authorized, s.unauthorized)
    }
}

fn json_reply(status: u16, body: Value) -> Reply {
    let mut r = Reply::status(status);
    r.headers = vec![("Content-Type".into(), "application/json".into())];
    r.body = body.to_string().into_bytes();
    r
}

fn issue(s: &mut State) -> String {
    s.issued += 1;
    let token = format!("tok-{}-{:x}", s.issued, fastrand::u64(..));
    s.tokens.insert(token.clone(), Instant::now() + s.ttl);
    token
}

/// Whether the request's bearer token is one issued and not expired.
fn authorized(s: &mut State, r: &Request) -> bool {
    let ok = r
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| s.tokens.get(t.trim()))
        .is_some_and(|until| *until > Instant::now());
    if ok {
        s.authorized += 1;
    } else {
        s.unauthorized += 1;
    }
    ok
}

fn answer(s: &mut State, r: &Request) -> Reply {
    let path = r.path.split('?').next().unwrap_or_default();
    let unauthorized = || json_reply(401, json!({"error": "a valid bearer token is needed"}));
    match (r.method.as_str(), path) {
        ("POST", "/login") => {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if body["user"] == USER && body["password"] == s.password.as_str() {
                let token = issue(s);
                json_reply(200, json!({"token": token, "expires_in": s.ttl.as_secs()}))
            } else {
                json_reply(401, json!({"error": "bad credentials"}))
            }
        }
        ("GET", "/api/orders") if authorized(s, r) => json_reply(
            200,
            json!({"orders": [{"id": 7, "status": "paid"}, {"id": 8, "status": "open"}]}),
        ),
        ("GET", "/api/orders/7") if authorized(s, r) => {
            if s.broken {
                json_reply(500, json!({"error": "the order service is down"}))
            } else {
                json_reply(200, json!({"id": 7, "status": "paid"}))
            }
        }
        ("GET", "/api/me") if authorized(s, r) => {
            if s.broken {
                json_reply(503, json!({"error": "unavailable"}))
            } else {
                json_reply(200, json!({"client_id": CLIENT_ID, "scope": "read write"}))
            }
        }
        ("GET", "/api/orders" | "/api/orders/7" | "/api/me") => unauthorized(),
        ("POST", "/oauth/token") => {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let good = form.get("grant_type").map(String::as_str) == Some("client_credentials")
                && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret") == Some(&s.client_secret);
            if good {
                let token = issue(s);
                json_reply(
                    200,
                    json!({
                        "access_token": token, "token_type": "Bearer",
                        "expires_in": s.ttl.as_secs(), "scope": "read write",
                    }),
                )
            } else {
                json_reply(401, json!({"error": "invalid_client"}))
            }
        }
        ("POST", "/echo") => {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let mut reply = json_reply(
                200,
                // The body first: what a check quotes of the echo is cut short.
                json!({
                    "body": String::from_utf8_lossy(&r.body),
                    "path": r.path, "headers": headers,
                }),
            );
            if let Some(pw) = r.header("x-pw") {
                reply.headers.push(("X-Echo".into(), pw.to_owned()));
            }
            reply
        }
        ("GET", "/three") if s.broken => Reply::status(500),
        ("GET", "/one" | "/two" | "/three") => Reply::ok("ok"),
        ("GET", "/away") => Reply::redirect(&format!(
            "http://127.0.0.2:{}/one",
            r.header("host")
                .and_then(|h| h.rsplit(':').next())
                .unwrap_or("80")
        )),
        _ => Reply::status(404),
    }
}
