//! What a notifier sends: an HTTP request or an email, with the notifications it delivers.

use serde_json::Value;
use std::ops::Range;
use url::Url;

/// One request and the notices (indices into the group) it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub covers: Range<usize>,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Http(HttpRequest),
    Email(EmailMessage),
}

#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Prints neither the URL, the headers nor the body: each may hold a secret (a PagerDuty
/// routing key is in the body).
impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub subject: String,
    pub body: String,
    /// A Message-ID derived from the notifications: a resent mail is recognisably the same.
    pub message_id: String,
}

impl Outgoing {
    /// One request that delivers the whole group of `len` notices.
    pub(crate) fn whole(len: usize, request: Request) -> Vec<Self> {
        vec![Self {
            covers: 0..len,
            request,
        }]
    }
}

/// A JSON request (`Content-Type: application/json` unless a header says otherwise).
pub(crate) fn json_request(
    method: &str,
    url: Url,
    mut headers: Vec<(String, String)>,
    body: &Value,
) -> Request {
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Request::Http(HttpRequest {
        method: method.to_owned(),
        url,
        headers,
        body: body.to_string().into_bytes(),
    })
}

/// `url` with `tail` appended to its path (`https://ntfy.example/` + `message`).
pub(crate) fn with_path(mut url: Url, tail: &str) -> Url {
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{tail}"));
    url
}
