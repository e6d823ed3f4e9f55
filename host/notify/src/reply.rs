//! What an HTTP service answered, for every sink that judges answers (the notifiers, the
//! InfluxDB export): its `Retry-After` and the start of its body, and the one retry policy's
//! line between an answer worth another attempt and a refusal for good ([`retryable`]). How
//! long to wait between attempts is core's `retry::Backoff`; a `Retry-After` comes first.

use std::time::Duration;

/// A refusal's parts that say why and when to try again.
pub struct Reply {
    pub retry_after: Option<String>,
    /// The first bytes of the body (lossy UTF-8).
    pub body: String,
}

impl Reply {
    /// Reads the `Retry-After` header and at most `cap` bytes of the body.
    pub async fn read(mut resp: reqwest::Response, cap: usize) -> Self {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while body.len() < cap {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(cap);
        Self {
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (IMF-fixdate, or the obsolete RFC 850 and
/// asctime forms, which RFC 9110 asks recipients to accept). A date in the past means now.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value)
        .map(|d| d.to_utc())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT")
                .map(|d| d.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y")
                .map(|d| d.and_utc())
        })
        .ok()?;
    Some((date - now).to_std().unwrap_or_default())
}

/// `Retry-After` values beyond this are capped: a service asking for an hour is retried in 10
/// minutes.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);

/// Whether an answer with `status` is worth another attempt: 408 Request Timeout, 425 Too Early,
/// 429 Too Many Requests and every 5xx (the server may take it later). Any other refusal stands:
/// retrying the same request cannot help. (A sink may know more of its service: the InfluxDB
/// export reads 501 as a URL that leads to no write endpoint.)
pub fn retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429 | 500..=599)
}

/// How long a refusal asked to wait: its `Retry-After` (seconds or an HTTP date, read at
/// `now`), at most [`RETRY_AFTER_MAX`].
pub fn wait_asked(
    retry_after: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    retry_after
        .and_then(|v| parse_retry_after(v, now))
        .map(|d| d.min(RETRY_AFTER_MAX))
}

/// What a service said: the usual message fields of a JSON reply (`message`, `description`,
/// `error`, `errors`), else the text, on one line and at most 300 characters.
pub fn said(body: &str) -> String {
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
