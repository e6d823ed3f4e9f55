//! PagerDuty: Events API v2, one event per notification: `trigger` with a summary and its
//! details, `resolve` on the same `dedup_key` (the incident key), so each incident opens and
//! closes on its own.

use crate::alert::Condition;
use crate::clock::rfc3339_seconds;
use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{cut, incident_key, notice_text};
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;
use url::Url;

pub(crate) const ABOUT: About = About {
    name: "pagerduty",
    url: UrlRule::Default("https://events.pagerduty.com/v2/enqueue"),
    fields: &["routing_key_env", "severity"],
    min_interval: Duration::ZERO,
};

#[derive(Debug, Clone, PartialEq)]
pub struct PagerDuty {
    pub routing_key: Secret<String>,
    /// critical (the default), error, warning or info.
    pub severity: String,
}

impl PagerDuty {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let var = crate::required(ABOUT.name, "routing_key_env", &f.routing_key_env)?;
        let routing_key = secrets.read("routing_key_env", &var)?;
        let severity = f.severity.clone().unwrap_or_else(|| "critical".into());
        if !matches!(severity.as_str(), "critical" | "error" | "warning" | "info") {
            return Err(("severity", "must be critical, error, warning or info").into());
        }
        Ok(Self {
            routing_key: Secret::new(routing_key),
            severity,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        group
            .iter()
            .enumerate()
            .map(|(i, notice)| {
                let body = event(self.routing_key.expose(), &self.severity, notice);
                Outgoing {
                    covers: i..i + 1,
                    request: json_request("POST", to.url(), vec![], &body),
                }
            })
            .collect()
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"routing_key": HIDDEN, "severity": self.severity})
    }
}

fn event(routing_key: &str, severity: &str, notice: &Notice) -> Value {
    let key = incident_key(notice);
    if !notice.kind.is_firing() {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": key,
        });
    }
    let source = Url::parse(&notice.alert.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| notice.alert.site.to_string());
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "sitewatch",
        "payload": {
            "summary": cut(&notice_text(notice), 1024),
            "source": source,
            "severity": severity,
            "timestamp": rfc3339_seconds(notice.alert.time),
            "component": &*notice.alert.site,
            "class": match notice.kind.condition() {
                Condition::Down => "availability",
                Condition::Degraded => "latency",
                Condition::Cert => "certificate",
                Condition::Domain => "domain",
                Condition::Flapping => "flapping",
                Condition::Monitor => "monitor",
                Condition::Slo => "slo",
            },
            "custom_details": {
                "url": &*notice.alert.url,
                "availability": notice.alert.availability,
                "message": notice.alert.message,
            }
        }
    })
}
