//! The alert state machine of one site. Evaluated on every measurement, so an alert fires on the
//! very probe that crosses the threshold. Pure: it is given the time and the availability.

use crate::clock::{human_duration, rfc3339_seconds};
use crate::config::AlertingConfig;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Down,
    Recovered,
}

/// A raised or cleared alert, with its message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub site: Arc<str>,
    pub url: Arc<str>,
    /// Availability over the alert window when the alert fired, 0..=1.
    pub availability: f64,
    #[serde(serialize_with = "crate::event::ser_time")]
    pub time: DateTime<Utc>,
    /// For a recovery: when the site went down.
    #[serde(serialize_with = "crate::event::ser_opt_time")]
    pub down_since: Option<DateTime<Utc>>,
    /// For a recovery: how long it was down, in seconds.
    #[serde(rename = "down_for_s", serialize_with = "ser_opt_secs")]
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

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
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

/// One site's alert state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    /// When the first measurement of the site arrived.
    watched_since: Option<DateTime<Utc>>,
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
    /// A state restored from storage.
    pub fn restored(
        watched_since: Option<DateTime<Utc>>,
        down_since: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            watched_since,
            down_since,
        }
    }

    pub fn down_since(&self) -> Option<DateTime<Utc>> {
        self.down_since
    }

    /// Evaluates the state at `now`, given the availability over the alert window (`None` when the
    /// window holds no probes). Returns the transition, if one happened.
    pub fn evaluate(
        &mut self,
        now: DateTime<Utc>,
        availability: Option<f64>,
        rule: &AlertingConfig,
    ) -> Option<Transition> {
        let since = *self.watched_since.get_or_insert(now);
        // A window with no probes says nothing about the site.
        let availability = availability?;
        // Stay silent until the site has been watched for one whole window.
        let window = chrono::TimeDelta::from_std(rule.window).unwrap_or(chrono::TimeDelta::MAX);
        if now - since < window {
            return None;
        }
        match self.down_since {
            None if availability < rule.threshold => {
                self.down_since = Some(now);
                Some(Transition::Down {
                    availability,
                    time: now,
                })
            }
            Some(down_since) if availability >= rule.threshold => {
                self.down_since = None;
                Some(Transition::Recovered {
                    availability,
                    time: now,
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

    /// A watched site: first seen at 0, so the window is covered from 120 s on.
    fn watched() -> AlertState {
        let mut s = AlertState::default();
        assert_eq!(s.evaluate(at(0), Some(1.0), &rule()), None);
        s
    }

    #[test]
    fn no_records_means_no_alert() {
        let mut s = AlertState::default();
        for t in [0, 200, 400] {
            assert_eq!(s.evaluate(at(t), None, &rule()), None);
        }
        let mut s = watched();
        assert_eq!(
            s.evaluate(at(500), None, &rule()),
            None,
            "an empty window changes nothing"
        );
    }

    #[test]
    fn window_not_yet_covered_means_no_alert() {
        let mut s = AlertState::default();
        assert_eq!(s.evaluate(at(0), Some(0.0), &rule()), None);
        assert_eq!(s.evaluate(at(119), Some(0.0), &rule()), None);
        assert!(matches!(
            s.evaluate(at(120), Some(0.0), &rule()),
            Some(Transition::Down { .. })
        ));
    }

    #[test]
    fn above_threshold_while_up_means_nothing() {
        let mut s = watched();
        for t in 120..200 {
            assert_eq!(
                s.evaluate(at(t), Some(0.8), &rule()),
                None,
                "exactly at the threshold is up"
            );
        }
    }

    #[test]
    fn below_while_up_is_one_down_alert_and_below_while_down_is_nothing_more() {
        let mut s = watched();
        assert_eq!(
            s.evaluate(at(130), Some(0.5), &rule()),
            Some(Transition::Down {
                availability: 0.5,
                time: at(130)
            })
        );
        for t in 131..300 {
            assert_eq!(s.evaluate(at(t), Some(0.1), &rule()), None);
        }
        assert_eq!(s.down_since(), Some(at(130)));
    }

    #[test]
    fn at_or_above_while_down_is_one_recovery() {
        let mut s = watched();
        s.evaluate(at(130), Some(0.5), &rule());
        assert_eq!(
            s.evaluate(at(400), Some(0.8), &rule()),
            Some(Transition::Recovered {
                availability: 0.8,
                time: at(400),
                down_since: at(130)
            })
        );
        assert_eq!(s.evaluate(at(401), Some(1.0), &rule()), None);
        assert_eq!(s.down_since(), None);
    }

    #[test]
    fn flapping_gives_one_message_per_crossing() {
        let mut s = watched();
        let series = [0.9, 0.7, 0.6, 0.85, 0.9, 0.79, 0.5, 0.8, 0.81, 0.2];
        let fired: Vec<_> = series
            .iter()
            .enumerate()
            .filter_map(|(i, a)| s.evaluate(at(200 + i as i64), Some(*a), &rule()))
            .map(|t| matches!(t, Transition::Down { .. }))
            .collect();
        // down at 0.7, up at 0.85, down at 0.79, up at 0.8, down at 0.2
        assert_eq!(fired, [true, false, true, false, true]);
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
