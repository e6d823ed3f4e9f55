//! The push (heartbeat) kind: sitewatch does not probe; the watched job calls
//! `/push/<token>` on sitewatch's server when it succeeds (`/start` when it begins, `/fail`
//! when it fails), as healthchecks.io's ping API has it. The server records each ping on the
//! [`Board`]; each tick of the site turns the board's state into a measurement, so a push site
//! has everything a probed one has (stats, alerts, the store, the outputs):
//! - down with kind `timeout` when no successful ping came within the period and its grace
//!   (a `cron` site: after the first due time since the last success, plus the grace), counted
//!   from when sitewatch started watching before the first ping;
//! - down with kind `answer` when the job's last word was `fail`;
//! - up otherwise, its response time the job's last run (`start` to success).

use crate::config::kind::{Push, PushSchedule};
use crate::found::{Clocked, Found};
use crate::measurement::{ErrorKind, Measurement, ProbeError};
use crate::{Captured, MonitorFailure, Prober, Target};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// The job succeeded (`/push/<token>`).
    Success,
    /// The job started (`/push/<token>/start`).
    Start,
    /// The job failed (`/push/<token>/fail`).
    Fail,
}

impl Ping {
    /// The ping a path's last segment names (none: success).
    pub fn parse(what: Option<&str>) -> Option<Self> {
        match what {
            None | Some("") => Some(Self::Success),
            Some("start") => Some(Self::Start),
            Some("fail") => Some(Self::Fail),
            Some(_) => None,
        }
    }
}

/// The pings of every push site, by its token's SHA-256 (a lookup by the digest takes the same
/// time whatever a guessed token shares with a real one, and the board keeps no token):
/// written by the server, read by each site's tick.
#[derive(Debug, Default)]
pub struct Board {
    sites: Mutex<HashMap<[u8; 32], Pings>>,
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone)]
struct Pings {
    /// When sitewatch started watching the token.
    watched_since: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    started: Option<Instant>,
    last_fail: Option<DateTime<Utc>>,
    /// The last run's time from `start` to success.
    last_run: Option<Duration>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Pings>> {
        self.sites.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches `token` from `now` (a token already watched keeps its pings).
    pub fn watch(&self, token: &str, now: DateTime<Utc>) {
        self.state(token, now);
    }

    /// The pings of `token`, watched from `now` when it was not yet.
    fn state(&self, token: &str, now: DateTime<Utc>) -> Pings {
        self.lock()
            .entry(digest(token))
            .or_insert(Pings {
                watched_since: now,
                last_success: None,
                started: None,
                last_fail: None,
                last_run: None,
            })
            .clone()
    }

    /// Records a ping of `token` at `now`; false when no push site has that token.
    pub fn ping(&self, token: &str, ping: Ping, now: DateTime<Utc>) -> bool {
        let mut sites = self.lock();
        let Some(p) = sites.get_mut(&digest(token)) else {
            return false;
        };
        match ping {
            Ping::Start => p.started = Some(Instant::now()),
            Ping::Success => {
                p.last_success = Some(now);
                p.last_run = p.started.take().map(|s| s.elapsed());
            }
            Ping::Fail => {
                p.last_fail = Some(now);
                p.started = None;
            }
        }
        true
    }
}

/// A new ping token: 20 bytes from the operating system's random source, in hexadecimal (40
/// characters, 160 bits), for `sitewatch push-token`.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(crate::hex(&bytes))
}

/// A push site's tick: its state as a measurement.
pub(crate) async fn run(
    prober: &Prober,
    target: &Target,
    spec: &Push,
    scheduled: Instant,
) -> Result<(Measurement, Option<Captured>), MonitorFailure> {
    let clocked = Clocked::start(prober, scheduled);
    let now = prober.clock.now();
    let pings = prober.push.state(spec.token.expose(), now);
    let (error, response_time) = verdict(spec, &pings, now);
    let found = Found {
        response_time,
        ..Found::default()
    };
    Ok(found.into_probe(prober, target, &clocked, error))
}

fn verdict(spec: &Push, p: &Pings, now: DateTime<Utc>) -> (Option<ProbeError>, Option<Duration>) {
    let shown = |t: DateTime<Utc>| crate::clock::rfc3339_seconds(t);
    if let Some(failed) = p.last_fail
        && p.last_success.is_none_or(|s| failed >= s)
    {
        return (
            Some(ProbeError {
                kind: ErrorKind::Answer,
                message: format!("the job reported a failure (/fail) at {}", shown(failed)),
            }),
            None,
        );
    }
    let since = p.last_success.unwrap_or(p.watched_since);
    let grace = chrono::TimeDelta::from_std(spec.grace).unwrap_or_default();
    let (due, expected) = match &spec.schedule {
        PushSchedule::Period(period) => (
            chrono::TimeDelta::from_std(*period).ok().map(|d| since + d),
            format!("every {}", crate::clock::human_duration(*period)),
        ),
        PushSchedule::Cron(window) => (
            window.next_start_after(since),
            "on its cron schedule".to_owned(),
        ),
    };
    match due {
        Some(due) if now > due + grace => {
            let last = match p.last_success {
                Some(t) => format!("the last at {}", shown(t)),
                None => format!(
                    "none since sitewatch started watching at {}",
                    shown(p.watched_since)
                ),
            };
            (
                Some(ProbeError {
                    kind: ErrorKind::Timeout,
                    message: format!(
                        "no ping since it was due at {} ({last}; expected {expected}, grace {})",
                        shown(due),
                        crate::clock::human_duration(spec.grace)
                    ),
                }),
                None,
            )
        }
        _ => (None, p.last_run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_583_200 + s, 0).unwrap()
    }

    fn every_minute() -> Push {
        Push {
            token: Secret::new("t".repeat(16)),
            schedule: PushSchedule::Period(Duration::from_secs(60)),
            grace: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_push_site_is_down_when_its_ping_is_late_or_says_fail() {
        let board = Board::default();
        let token = "t".repeat(16);
        board.watch(&token, at(0));
        let spec = every_minute();
        let verdict_at = |s| verdict(&spec, &board.state(&token, at(0)), at(s)).0;
        assert_eq!(verdict_at(89), None, "within the period and its grace");
        let late = verdict_at(91).unwrap();
        assert_eq!(late.kind, ErrorKind::Timeout);
        assert!(
            late.message
                .contains("none since sitewatch started watching"),
            "{}",
            late.message
        );
        assert!(board.ping(&token, Ping::Success, at(100)));
        assert_eq!(verdict_at(120), None);
        assert!(board.ping(&token, Ping::Fail, at(130)));
        assert_eq!(verdict_at(131).unwrap().kind, ErrorKind::Answer);
        assert!(board.ping(&token, Ping::Success, at(140)));
        assert_eq!(verdict_at(141), None, "a success after the failure");
        assert!(!board.ping("unknown-token-xyz", Ping::Success, at(150)));
        assert_eq!(Ping::parse(Some("fail")), Some(Ping::Fail));
        assert_eq!(Ping::parse(Some("other")), None);
    }
}
