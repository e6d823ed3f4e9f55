//! Sends one request and judges the answer, for every service: delivered, worth retrying (no connection, a timeout,
//! 408, 429, 5xx, an SMTP 4xx), or refused for good (any other answer; the service's reply is
//! kept).

use crate::Service;
use crate::reply::{Reply, retryable, said, wait_asked};
use crate::request::{HttpRequest, Request};
use std::time::Duration;

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
    let said = said(body);
    let answer = if said.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {said}")
    };
    if status.is_success() {
        return Outcome::Delivered(answer);
    }
    if !retryable(status) {
        return Outcome::Failed(answer);
    }
    let after = wait_asked(retry_after, now).or_else(|| {
        crate::telegram::retry_after(body).map(|d| d.min(crate::reply::RETRY_AFTER_MAX))
    });
    Outcome::Retry {
        after,
        why: format!("the service answered {answer}"),
    }
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
        assert_eq!(after, Some(crate::reply::RETRY_AFTER_MAX));
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
