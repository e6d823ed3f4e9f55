//! `tls-expiry`: fails when the served certificate chain expires within `min_days`. Built
//! against WIT 0.2.0, whose response carries the TLS session and the chain.
//!
//! Config: `{"min_days": 14}` (the default) and `{"require_tls": true}` (default `false`).
//!
//! - The chain's earliest `not-after` decides (an intermediate that expires before the leaf
//!   counts), measured against the plugin's wall clock.
//! - It fails with `certificate expires in N days (not after DATE)`, N the whole days left and
//!   DATE the RFC 3339 UTC time, when fewer than `min_days` days are left (`... expired N days
//!   ago ...` once past); an intermediate is named after the date.
//! - It records the metric `days_left` (fractional days until the earliest expiry).
//! - A plain-HTTP response has no TLS session: it passes, with no metric and a debug log line,
//!   so the check can be set on every site; with `"require_tls": true` it fails instead.

wit_bindgen::generate!({ path: "../../wit/0.2.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::host::{Level, log};
use sitewatch::plugin::types::{CheckResult, Metric, Response, TlsInfo, Verdict};

const DAY: i64 = 86_400;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    min_days: f64,
    require_tls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_days: 14.0,
            require_tls: false,
        }
    }
}

/// Judges the TLS session `tls` at `now` (Unix seconds); `Err` when the config is unusable.
pub fn judge(config: &str, tls: Option<&TlsInfo>, now: i64) -> Result<CheckResult, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    if !c.min_days.is_finite() || c.min_days < 0.0 {
        return Err(format!(
            "invalid config: min_days must be a number of days, 0 or more (got {})",
            c.min_days
        ));
    }
    let result = |verdict, metrics| Ok(CheckResult { verdict, metrics });
    let Some(tls) = tls else {
        if c.require_tls {
            return result(
                Verdict::Fail("no TLS session: the response came over plain HTTP".into()),
                vec![],
            );
        }
        return result(Verdict::Pass, vec![]);
    };
    let Some(earliest) = tls.earliest_expiry else {
        return result(
            Verdict::Fail("the server presented no certificate".into()),
            vec![],
        );
    };
    let left = earliest - now;
    let days_left = left as f64 / DAY as f64;
    let metrics = vec![Metric {
        name: "days_left".into(),
        value: days_left,
    }];
    if days_left >= c.min_days {
        return result(Verdict::Pass, metrics);
    }
    let days = |n: i64| {
        if n == 1 {
            "1 day".into()
        } else {
            format!("{n} days")
        }
    };
    let mut reason = if left > 0 {
        format!(
            "certificate expires in {} (not after {})",
            days(left / DAY),
            rfc3339(earliest)
        )
    } else {
        format!(
            "certificate expired {} ago (not after {})",
            days(-left / DAY),
            rfc3339(earliest)
        )
    };
    // Name the certificate when it is not the server's own.
    if let Some(position) = tls.chain.iter().position(|x| x.not_after == earliest)
        && position > 0
    {
        reason.push_str(&format!(
            ": the chain's certificate {}, {}",
            position + 1,
            tls.chain[position].subject
        ));
    }
    result(Verdict::Fail(reason), metrics)
}

/// `2026-12-24T10:00:00Z` for Unix seconds (days to a civil date: Howard Hinnant's algorithm).
pub fn rfc3339(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct TlsExpiry;

impl Guest for TlsExpiry {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        if response.tls.is_none() {
            log(
                Level::Debug,
                "no TLS session (plain HTTP): nothing to check",
            );
        }
        judge(&config, response.tls.as_ref(), now())
    }
}

export!(TlsExpiry);

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch::plugin::types::Certificate;

    const NOW: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

    fn cert(subject: &str, not_after: i64) -> Certificate {
        Certificate {
            subject: subject.into(),
            issuer: "CN=Test CA".into(),
            sans: vec!["localhost".into()],
            not_before: NOW - 30 * DAY,
            not_after,
            serial: "01".into(),
        }
    }

    fn tls(chain: Vec<Certificate>) -> TlsInfo {
        TlsInfo {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            earliest_expiry: chain.iter().map(|c| c.not_after).min(),
            chain,
        }
    }

    fn reason(r: &CheckResult) -> Option<&str> {
        match &r.verdict {
            Verdict::Pass => None,
            Verdict::Fail(why) => Some(why),
        }
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(NOW), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn three_days_left_fails_and_sixty_pass() {
        let soon = tls(vec![cert("CN=localhost", NOW + 3 * DAY + 3600)]);
        let r = judge("{}", Some(&soon), NOW).unwrap();
        assert_eq!(
            reason(&r),
            Some("certificate expires in 3 days (not after 2026-11-21T12:06:40Z)")
        );
        assert_eq!(r.metrics[0].name, "days_left");
        assert!((r.metrics[0].value - (3.0 + 1.0 / 24.0)).abs() < 1e-9);

        let later = tls(vec![cert("CN=localhost", NOW + 60 * DAY)]);
        let r = judge(r#"{"min_days": 14}"#, Some(&later), NOW).unwrap();
        assert_eq!(reason(&r), None);
        assert_eq!(r.metrics[0].value, 60.0);
        // The threshold is configurable.
        let r = judge(r#"{"min_days": 90}"#, Some(&later), NOW).unwrap();
        assert!(
            reason(&r)
                .unwrap()
                .starts_with("certificate expires in 60 days")
        );
    }

    #[test]
    fn an_intermediate_that_expires_first_decides_and_is_named() {
        let chain = tls(vec![
            cert("CN=localhost", NOW + 80 * DAY),
            cert("CN=Intermediate", NOW + DAY + 60),
        ]);
        let r = judge("{}", Some(&chain), NOW).unwrap();
        assert_eq!(
            reason(&r),
            Some(
                "certificate expires in 1 day (not after 2026-11-19T11:07:40Z): the chain's certificate 2, CN=Intermediate"
            )
        );
    }

    #[test]
    fn an_expired_chain_says_since_when() {
        let r = judge("{}", Some(&tls(vec![cert("CN=x", NOW - 2 * DAY)])), NOW).unwrap();
        assert_eq!(
            reason(&r),
            Some("certificate expired 2 days ago (not after 2026-11-16T11:06:40Z)")
        );
    }

    #[test]
    fn plain_http_passes_unless_tls_is_required() {
        let r = judge("{}", None, NOW).unwrap();
        assert_eq!(reason(&r), None);
        assert!(r.metrics.is_empty());
        let r = judge(r#"{"require_tls": true}"#, None, NOW).unwrap();
        assert_eq!(
            reason(&r),
            Some("no TLS session: the response came over plain HTTP")
        );
        let r = judge("{}", Some(&tls(vec![])), NOW).unwrap();
        assert_eq!(reason(&r), Some("the server presented no certificate"));
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(judge(r#"{"min_days": -1}"#, None, NOW).is_err());
        assert!(judge(r#"{"min_dayz": 3}"#, None, NOW).is_err());
        assert!(judge(r#"{"min_days": "14"}"#, None, NOW).is_err());
    }
}
