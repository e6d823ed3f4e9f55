//! The alert state machine of one site. Evaluated on every measurement, so an alert fires on the
//! very probe that crosses the threshold. Pure: it is given the time and the availability.

use crate::clock::{human_duration, rfc3339_seconds};
use crate::config::AlertingConfig;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Down,
    Recovered,
}

/// A kind name that is not an [`AlertKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an alert kind (down, recovered)")]
pub struct UnknownAlertKind(pub String);

impl AlertKind {
    pub const ALL: [AlertKind; 2] = [Self::Down, Self::Recovered];

    /// The kind's name in events, the store and line protocol: `down`, `recovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Recovered => "recovered",
        }
    }
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownAlertKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAlertKind(s.to_owned()))
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raised or cleared alert, with its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// Availability over the alert window when the alert fired, 0..=1.
    pub availability: f64,
    pub time: DateTime<Utc>,
    /// For a recovery: when the site went down.
    pub down_since: Option<DateTime<Utc>>,
    /// For a recovery: how long it was down, in seconds.
    pub down_for: Option<Duration>,
    pub message: String,
    /// The alert as the configured formatter plugin rendered it, if there is one.
    pub rendered: Option<String>,
}

impl Alert {
    /// The text to show: the formatter's rendering, or the built-in message.
    pub fn text(&self) -> &str {
        self.rendered.as_deref().unwrap_or(&self.message)
    }
}

/// `66.67%`: availability as a percentage with two decimals.
pub fn percent(availability: f64) -> String {
    format!("{:.2}%", availability * 100.0)
}

/// The spec's down message, word for word.
pub fn down_message(site: &str, availability: f64, time: DateTime<Utc>) -> String {
    format!(
        "Website {site} is down. availability={}, time={}",
        percent(availability),
        rfc3339_seconds(time)
    )
}

pub fn recovered_message(
    site: &str,
    availability: f64,
    time: DateTime<Utc>,
    down_since: DateTime<Utc>,
) -> String {
    format!(
        "Website {site} recovered. availability={}, time={}, down since {}, down for {}",
        percent(availability),
        rfc3339_seconds(time),
        rfc3339_seconds(down_since),
        human_duration((time - down_since).to_std().unwrap_or_default())
    )
}

/// One site's alert state. Times of the alert engine are positions on the monotonic timeline
/// (microseconds, see [`crate::clock`]); wall times only label the alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    /// Since when probes have covered the site without a gap (`None` before the first probe).
    covered_since: Option<i64>,
    /// The newest probe's position.
    last_probe: Option<i64>,
    /// `Some` while the site is down: when the down alert fired.
    down_since: Option<DateTime<Utc>>,
}

/// A state change, before it is dressed as an [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    Down {
        availability: f64,
        time: DateTime<Utc>,
    },
    Recovered {
        availability: f64,
        time: DateTime<Utc>,
        down_since: DateTime<Utc>,
    },
}

impl AlertState {
    /// A site that is down since `down_since` (restored from storage), not yet covered by probes.
    pub fn down_since_restored(down_since: Option<DateTime<Utc>>) -> Self {
        Self {
            down_since,
            ..Self::default()
        }
    }

    pub fn down_since(&self) -> Option<DateTime<Utc>> {
        self.down_since
    }

    /// Notes a probe at `at_us` without deciding anything (history replayed at start). Probes
    /// further apart than `max_gap_us` break the coverage: after a gap (sitewatch was stopped,
    /// or the site was not probed), the alert window must fill with new probes again before
    /// anything fires, so a window of one sample never decides.
    pub fn observe(&mut self, at_us: i64, max_gap_us: i64) {
        let gap = self
            .last_probe
            .is_none_or(|last| at_us.saturating_sub(last) > max_gap_us);
        if gap {
            self.covered_since = Some(at_us);
        }
        self.last_probe = Some(self.last_probe.map_or(at_us, |l| l.max(at_us)));
    }

    /// Evaluates the state after a probe at `at_us` (timeline) that ended at `time` (wall),
    /// given the availability over the alert window (`None` when the window holds no probes).
    /// Returns the transition, if one happened.
    pub fn evaluate(
        &mut self,
        at_us: i64,
        time: DateTime<Utc>,
        availability: Option<f64>,
        rule: &AlertingConfig,
        max_gap_us: i64,
    ) -> Option<Transition> {
        self.observe(at_us, max_gap_us);
        // A window with no probes says nothing about the site.
        let availability = availability?;
        // Stay silent until probes have covered one whole window.
        let window = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX);
        let covered = self.covered_since.unwrap_or(at_us);
        if at_us.saturating_sub(covered) < window {
            return None;
        }
        match self.down_since {
            None if availability < rule.threshold => {
                self.down_since = Some(time);
                Some(Transition::Down { availability, time })
            }
            Some(down_since) if availability >= rule.threshold => {
                self.down_since = None;
                Some(Transition::Recovered {
                    availability,
                    time,
                    down_since,
                })
            }
            _ => None,
        }
    }
}

impl Transition {
    pub fn into_alert(self, site: &Arc<str>, url: &Arc<str>) -> Alert {
        match self {
            Transition::Down { availability, time } => Alert {
                kind: AlertKind::Down,
                site: Arc::clone(site),
                url: Arc::clone(url),
                availability,
                time,
                down_since: None,
                down_for: None,
                message: down_message(site, availability, time),
                rendered: None,
            },
            Transition::Recovered {
                availability,
                time,
                down_since,
            } => Alert {
                kind: AlertKind::Recovered,
                site: Arc::clone(site),
                url: Arc::clone(url),
                availability,
                time,
                down_since: Some(down_since),
                down_for: Some((time - down_since).to_std().unwrap_or_default()),
                message: recovered_message(site, availability, time, down_since),
                rendered: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule() -> AlertingConfig {
        AlertingConfig {
            threshold: 0.8,
            window: Duration::from_secs(120),
            formatter: None,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
    }

    /// A gap longer than this breaks the coverage (30 s: e.g. a 10 s interval, 10 s timeout).
    const GAP: i64 = 30_000_000;

    trait Eval {
        fn eval(&mut self, secs: i64, availability: Option<f64>) -> Option<Transition>;
    }

    impl Eval for AlertState {
        /// Evaluates at `secs` on a timeline equal to the wall clock.
        fn eval(&mut self, secs: i64, availability: Option<f64>) -> Option<Transition> {
            let t = at(secs);
            self.evaluate(t.timestamp_micros(), t, availability, &rule(), GAP)
        }
    }

    /// A site probed every 10 s from 0 to 120 s (up), so the window is covered.
    fn watched() -> AlertState {
        let mut s = AlertState::default();
        for t in (0..=120).step_by(10) {
            assert_eq!(s.eval(t, Some(1.0)), None);
        }
        s
    }

    #[test]
    fn no_records_means_no_alert() {
        let mut s = AlertState::default();
        for t in [0, 200, 400] {
            assert_eq!(s.eval(t, None), None);
        }
        let mut s = watched();
        assert_eq!(s.eval(500, None), None, "an empty window changes nothing");
    }

    #[test]
    fn window_not_yet_covered_means_no_alert() {
        let mut s = AlertState::default();
        for t in (0..120).step_by(10) {
            assert_eq!(s.eval(t, Some(0.0)), None);
        }
        assert_eq!(s.eval(119, Some(0.0)), None);
        assert!(matches!(
            s.eval(120, Some(0.0)),
            Some(Transition::Down { .. })
        ));
    }

    #[test]
    fn above_threshold_while_up_means_nothing() {
        let mut s = watched();
        for t in 120..200 {
            assert_eq!(s.eval(t, Some(0.8)), None, "exactly at the threshold is up");
        }
    }

    #[test]
    fn below_while_up_is_one_down_alert_and_below_while_down_is_nothing_more() {
        let mut s = watched();
        assert_eq!(
            s.eval(130, Some(0.5)),
            Some(Transition::Down {
                availability: 0.5,
                time: at(130)
            })
        );
        for t in 131..300 {
            assert_eq!(s.eval(t, Some(0.1)), None);
        }
        assert_eq!(s.down_since(), Some(at(130)));
    }

    #[test]
    fn at_or_above_while_down_is_one_recovery() {
        let mut s = watched();
        s.eval(130, Some(0.5));
        for t in (140..400).step_by(10) {
            assert_eq!(s.eval(t, Some(0.5)), None);
        }
        assert_eq!(
            s.eval(400, Some(0.8)),
            Some(Transition::Recovered {
                availability: 0.8,
                time: at(400),
                down_since: at(130)
            })
        );
        assert_eq!(s.eval(401, Some(1.0)), None);
        assert_eq!(s.down_since(), None);
    }

    #[test]
    fn flapping_gives_one_message_per_crossing() {
        let mut s = watched();
        let series = [0.9, 0.7, 0.6, 0.85, 0.9, 0.79, 0.5, 0.8, 0.81, 0.2];
        let fired: Vec<_> = series
            .iter()
            .enumerate()
            .filter_map(|(i, a)| s.eval(121 + i as i64, Some(*a)))
            .map(|t| matches!(t, Transition::Down { .. }))
            .collect();
        // down at 0.7, up at 0.85, down at 0.79, up at 0.8, down at 0.2
        assert_eq!(fired, [true, false, true, false, true]);
    }

    #[test]
    fn after_a_gap_nothing_fires_until_new_probes_cover_the_window_again() {
        // Up and covered until 120 s, then nothing for 5 minutes (sitewatch was stopped).
        let mut s = watched();
        let back = 420;
        // Failing from the first probe after the gap: a window of one probe decides nothing.
        for t in (back..back + 120).step_by(10) {
            assert_eq!(s.eval(t, Some(0.0)), None, "at {t}");
        }
        assert!(matches!(
            s.eval(back + 120, Some(0.0)),
            Some(Transition::Down { .. })
        ));
        // The same for a recovery after another gap.
        let back = back + 600;
        for t in (back..back + 120).step_by(10) {
            assert_eq!(s.eval(t, Some(1.0)), None, "at {t}");
        }
        assert!(matches!(
            s.eval(back + 120, Some(1.0)),
            Some(Transition::Recovered { .. })
        ));
    }

    #[test]
    fn replayed_history_counts_as_coverage_until_a_gap() {
        let mut s = AlertState::down_since_restored(None);
        for t in (0..=120).step_by(10) {
            s.observe(at(t).timestamp_micros(), GAP);
        }
        // Right after the replayed history: covered, so the next probe decides.
        assert!(matches!(
            s.eval(130, Some(0.0)),
            Some(Transition::Down { .. })
        ));
    }

    #[test]
    fn kinds_have_one_text_form_and_unknown_text_is_an_error() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert!("up".parse::<AlertKind>().is_err());
    }

    #[test]
    fn messages_use_the_spec_wording() {
        let site: Arc<str> = "example".into();
        let url: Arc<str> = "https://example.com/".into();
        let down = Transition::Down {
            availability: 2.0 / 3.0,
            time: at(0),
        }
        .into_alert(&site, &url);
        assert_eq!(
            down.message,
            "Website example is down. availability=66.67%, time=2026-11-24T10:00:00Z"
        );
        let up = Transition::Recovered {
            availability: 0.9,
            time: at(192),
            down_since: at(0),
        }
        .into_alert(&site, &url);
        assert_eq!(
            up.message,
            "Website example recovered. availability=90.00%, time=2026-11-24T10:03:12Z, \
             down since 2026-11-24T10:00:00Z, down for 3m 12s"
        );
        assert_eq!(up.down_for, Some(Duration::from_secs(192)));
    }
}
