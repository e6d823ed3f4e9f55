//! Sends one request and judges the answer, for every service: delivered, worth retrying (no connection, a timeout,
//! 408, 429, 5xx, an SMTP 4xx), or refused for good (any other answer; the service's reply is
//! kept).

use crate::Service;
use crate::reply::{Reply, parse_retry_after};
use crate::request::{HttpRequest, Request};
use std::time::Duration;

/// Retry-After values beyond this are capped: a service asking for an hour is retried in 10 min.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);
/// Reply bytes read for a message.
const REPLY_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service took it; its answer (`202 Accepted`).
    Delivered(String),
    /// It may take it later: after `after` if it said so, else with backoff.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// It refused it; retrying would not help.
    Failed(String),
}

/// Sends `request` of a notifier of `service` within `timeout`. What it reports may quote the
/// service's answer: the caller redacts the notifier's secrets from it ([`Outcome::redacted`]).
pub async fn send(
    service: &Service,
    client: &reqwest::Client,
    request: &Request,
    timeout: Duration,
) -> Outcome {
    match request {
        Request::Http(r) => match tokio::time::timeout(timeout, http(client, r, timeout)).await {
            Ok(o) => o,
            Err(_) => timed_out(timeout),
        },
        Request::Email(m) => match service {
            Service::Email(email) => {
                match tokio::time::timeout(timeout, email.send(m, timeout)).await {
                    Ok(o) => o,
                    Err(_) => timed_out(timeout),
                }
            }
            _ => Outcome::Failed("an email for a notifier that is not an email one".into()),
        },
    }
}

impl Outcome {
    /// The same outcome with every text passed through `redact`.
    pub fn redacted(self, redact: impl Fn(&str) -> String) -> Self {
        match self {
            Self::Delivered(s) => Self::Delivered(redact(&s)),
            Self::Retry { after, why } => Self::Retry {
                after,
                why: redact(&why),
            },
            Self::Failed(s) => Self::Failed(redact(&s)),
        }
    }
}

fn timed_out(limit: Duration) -> Outcome {
    Outcome::Retry {
        after: None,
        why: format!(
            "no answer within {} (timeout)",
            crate::clock::human_duration(limit.max(Duration::from_secs(1)))
        ),
    }
}

async fn http(client: &reqwest::Client, r: &HttpRequest, timeout: Duration) -> Outcome {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut req = client
        .request(method, r.url.clone())
        .timeout(timeout)
        .body(r.body.clone());
    for (k, v) in &r.headers {
        req = req.header(k, v);
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => {
            // Never the URL: it may hold the credential (Slack, Telegram).
            let e = e.without_url();
            let why = if e.is_timeout() {
                "no answer in time (timeout)".to_owned()
            } else {
                crate::error_chain(&e)
            };
            return Outcome::Retry { after: None, why };
        }
    };
    let status = resp.status();
    let reply = Reply::read(resp, REPLY_BYTES).await;
    judge(
        status,
        reply.retry_after.as_deref(),
        &reply.body,
        chrono::Utc::now(),
    )
}

/// The verdict on an HTTP answer.
pub fn judge(
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let said = reply_text(body);
    let answer = if said.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {said}")
    };
    if status.is_success() {
        return Outcome::Delivered(answer);
    }
    match status.as_u16() {
        408 | 425 | 429 | 500..=599 => {
            let after = retry_after
                .and_then(|v| parse_retry_after(v, now))
                .or_else(|| crate::telegram::retry_after(body))
                .map(|d| d.min(RETRY_AFTER_MAX));
            Outcome::Retry {
                after,
                why: format!("the service answered {answer}"),
            }
        }
        _ => Outcome::Failed(answer),
    }
}

/// What a service said: the usual message fields of a JSON reply, else the text, on one line
/// and at most 300 characters.
fn reply_text(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => ["message", "description", "error", "errors"]
            .iter()
            .find_map(|k| match v.get(*k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => {
                    Some(other.to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| body.to_owned()),
        _ => body.to_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn a_2xx_is_delivered_with_the_answer() {
        assert_eq!(
            judge(
                StatusCode::ACCEPTED,
                None,
                r#"{"status":"success","message":"Event processed"}"#,
                now()
            ),
            Outcome::Delivered("202 Accepted: Event processed".into())
        );
    }

    #[test]
    fn other_4xx_fail_with_the_services_reply() {
        assert_eq!(
            judge(
                StatusCode::BAD_REQUEST,
                None,
                r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect"]}"#,
                now()
            ),
            Outcome::Failed("400 Bad Request: Event object is invalid".into())
        );
        assert!(
            matches!(judge(StatusCode::NOT_FOUND, None, "no_team", now()), Outcome::Failed(m) if m == "404 Not Found: no_team")
        );
    }

    #[test]
    fn a_429_waits_for_retry_after_or_telegrams_retry_after() {
        assert_eq!(
            judge(StatusCode::TOO_MANY_REQUESTS, Some("7"), "", now()),
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                why: "the service answered 429 Too Many Requests".into()
            }
        );
        let Outcome::Retry { after, .. } = judge(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
            now(),
        ) else {
            panic!("a 429 is retried");
        };
        assert_eq!(after, Some(Duration::from_secs(3)));
        let Outcome::Retry { after, .. } =
            judge(StatusCode::SERVICE_UNAVAILABLE, Some("86400"), "", now())
        else {
            panic!("a 503 is retried");
        };
        assert_eq!(after, Some(RETRY_AFTER_MAX));
    }

    #[test]
    fn a_5xx_and_408_are_retried_with_backoff() {
        for code in [408, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(
                matches!(
                    judge(s, None, "", now()),
                    Outcome::Retry { after: None, .. }
                ),
                "{code}"
            );
        }
    }
}
