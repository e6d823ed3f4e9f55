//! Opsgenie: Alert API v2, one request per notification: a firing one creates an alert whose
//! alias is the incident key, a recovery closes it by that alias.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{cut, incident_key, notice_text, title};
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, NumberOrText, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;
use url::Url;

pub(crate) const ABOUT: About = About {
    name: "opsgenie",
    url: UrlRule::Default("https://api.opsgenie.com"),
    fields: &["api_key_env", "priority"],
    min_interval: Duration::ZERO,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Opsgenie {
    pub api_key: Secret<String>,
    /// P1 (the default) to P5.
    pub priority: String,
}

impl Opsgenie {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let var = crate::required(ABOUT.name, "api_key_env", &f.api_key_env)?;
        let api_key = secrets.read("api_key_env", &var)?;
        let priority = match &f.priority {
            None => "P1".to_owned(),
            Some(NumberOrText::Text(p))
                if matches!(p.as_str(), "P1" | "P2" | "P3" | "P4" | "P5") =>
            {
                p.clone()
            }
            Some(_) => return Err(("priority", "must be P1, P2, P3, P4 or P5").into()),
        };
        Ok(Self {
            api_key: Secret::new(api_key),
            priority,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        group
            .iter()
            .enumerate()
            .map(|(i, notice)| {
                let (u, body) = request(to.url(), &self.priority, notice);
                let h = vec![(
                    "Authorization".to_owned(),
                    format!("GenieKey {}", self.api_key.expose()),
                )];
                Outgoing {
                    covers: i..i + 1,
                    request: json_request("POST", u, h, &body),
                }
            })
            .collect()
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"api_key": HIDDEN, "priority": self.priority})
    }
}

fn request(base: Url, priority: &str, notice: &Notice) -> (Url, Value) {
    let alias = incident_key(notice);
    let mut u = base;
    let root = u.path().trim_end_matches('/').to_owned();
    if notice.kind.is_firing() {
        u.set_path(&format!("{root}/v2/alerts"));
        let body = json!({
            "message": cut(&title(notice), 130),
            "alias": alias,
            "description": cut(&notice_text(notice), 15_000),
            "entity": &*notice.alert.site,
            "source": "sitewatch",
            "priority": priority,
            "tags": ["sitewatch"],
            "details": {
                "url": &*notice.alert.url,
                "availability": crate::alert::percent(notice.alert.availability),
            }
        });
        (u, body)
    } else {
        // The alias is one path segment: `/` and the rest percent-encoded.
        let mut segments = u.clone();
        segments.set_path(&root);
        if let Ok(mut s) = segments.path_segments_mut() {
            s.extend(["v2", "alerts", alias.as_str(), "close"]);
        }
        segments.set_query(Some("identifierType=alias"));
        let body = json!({
            "source": "sitewatch",
            "note": cut(&notice_text(notice), 25_000),
        });
        (segments, body)
    }
}
