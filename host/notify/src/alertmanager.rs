//! Prometheus Alertmanager: API v2, the group as one array of alerts labelled by site, with
//! `endsAt` on recovery. Alertmanager resolves an alert nobody re-sent within its
//! `resolve_timeout`, so firing alerts are re-sent (`repeat`, two minutes by default).

use crate::alert::Condition;
use crate::notice::Notice;
use crate::request::{Outgoing, json_request, with_path};
use crate::text::{incident_start, notice_text};
use crate::{About, Endpoint, FieldError, Fields, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "alertmanager",
    url: UrlRule::Given,
    fields: &["headers", "severity"],
    min_interval: Duration::ZERO,
};

/// Alertmanager resolves an alert nobody re-sent within its `resolve_timeout` (5 min by
/// default): firing alerts are re-sent this often unless `repeat` says otherwise.
pub const DEFAULT_REPEAT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq)]
pub struct Alertmanager {
    pub headers: Vec<(String, Secret<String>)>,
    /// The `severity` label (critical by default).
    pub severity: String,
}

impl Alertmanager {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let severity = f.severity.clone().unwrap_or_else(|| "critical".into());
        if severity.trim().is_empty() {
            return Err(("severity", "must not be empty").into());
        }
        Ok(Self {
            headers: crate::headers(&f.headers, secrets)?,
            severity,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let alerts: Vec<Value> = group
            .iter()
            .map(|notice| alert(&self.severity, notice))
            .collect();
        let h = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().clone()))
            .collect();
        let u = with_path(to.url(), "api/v2/alerts");
        Outgoing::whole(
            group.len(),
            json_request("POST", u, h, &Value::Array(alerts)),
        )
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"headers": crate::printed_headers(&self.headers), "severity": self.severity})
    }
}

fn alert(severity: &str, notice: &Notice) -> Value {
    let a = &notice.alert;
    let starts = incident_start(notice);
    let mut v = json!({
        "labels": {
            "alertname": match notice.kind.condition() {
                Condition::Down => "SiteDown",
                Condition::Degraded => "SiteDegraded",
                Condition::Cert => "CertificateExpiring",
                Condition::Domain => "DomainExpiring",
                Condition::Flapping => "SiteFlapping",
                Condition::Monitor => "MonitorOffline",
                Condition::Slo => "ErrorBudgetBurn",
            },
            "site": &*a.site,
            "instance": &*a.url,
            "severity": severity,
            "source": "sitewatch",
        },
        "annotations": {
            "summary": notice_text(notice),
            "availability": crate::alert::percent(a.availability),
        },
        "startsAt": crate::clock::rfc3339_millis(starts),
    });
    if !notice.kind.is_firing() {
        v["endsAt"] = json!(crate::clock::rfc3339_millis(a.time));
    }
    v
}
