//! A webhook: the group as JSON (every alert with its fields, a title and a text) to any URL,
//! with an `Idempotency-Key` that is the same for every attempt, and the headers the config
//! gives (their values may expand `${NAME}`).

use crate::clock::rfc3339_seconds;
use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{Digest, idempotency_key, notice_text, rendered_json};
use crate::{About, Endpoint, FieldError, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "webhook",
    url: UrlRule::Given,
    fields: &["method", "headers"],
    min_interval: Duration::ZERO,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// POST (the default), PUT or PATCH.
    pub method: String,
    pub headers: Vec<(String, Secret<String>)>,
}

impl Webhook {
    pub(crate) fn resolve(
        f: &crate::Fields,
        secrets: &mut dyn Secrets,
    ) -> Result<Self, FieldError> {
        let method = f
            .method
            .as_deref()
            .unwrap_or("POST")
            .trim()
            .to_ascii_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            return Err(("method", "must be POST, PUT or PATCH").into());
        }
        Ok(Self {
            method,
            headers: crate::headers(&f.headers, secrets)?,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let body = rendered_json(group).unwrap_or_else(|| body(to.name, group));
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().clone()))
            .collect();
        if !h
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
        {
            h.push(("Idempotency-Key".into(), idempotency_key(group)));
        }
        Outgoing::whole(group.len(), json_request(&self.method, to.url(), h, &body))
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"method": self.method, "headers": crate::printed_headers(&self.headers)})
    }
}

fn body(notifier: &str, group: &[Notice]) -> Value {
    let d = Digest::of(group, usize::MAX);
    let alerts: Vec<Value> = group
        .iter()
        .map(|x| {
            json!({
                "notification_id": x.id,
                "alert_id": x.alert_id,
                "kind": x.kind.as_str(),
                "condition": x.kind.condition().as_str(),
                "site": &*x.alert.site,
                "url": &*x.alert.url,
                "availability": x.alert.availability,
                "time": rfc3339_seconds(x.alert.time),
                "down_since": x.alert.down_since.map(rfc3339_seconds),
                "down_for_seconds": x.alert.down_for.map(|d| d.as_secs_f64()),
                "message": notice_text(x),
            })
        })
        .collect();
    json!({
        "notifier": notifier,
        "title": d.title,
        "text": d.text(),
        "alerts": alerts,
    })
}
