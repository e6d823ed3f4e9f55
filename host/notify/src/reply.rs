//! What an HTTP service answered, for the senders that judge answers (the InfluxDB export, the
//! notifiers): its `Retry-After` and the start of its body.

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
