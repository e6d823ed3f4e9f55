//! ntfy: the text as a plain body to the topic URL, with the title, priority and tags as
//! headers, and a bearer token when the topic needs one.

use crate::notice::Notice;
use crate::request::{HttpRequest, Outgoing, Request};
use crate::text::Digest;
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, NumberOrText, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "ntfy",
    url: UrlRule::Given,
    fields: &["token_env", "priority"],
    min_interval: Duration::ZERO,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Ntfy {
    pub token: Option<Secret<String>>,
    /// 1 to 5 or min, low, default, high, max, urgent; by state when unset.
    pub priority: Option<String>,
}

impl Ntfy {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let token = match &f.token_env {
            Some(var) => Some(Secret::new(secrets.read("token_env", var)?)),
            None => None,
        };
        let priority = match &f.priority {
            None => None,
            Some(NumberOrText::Number(n)) if (1..=5).contains(n) => Some(n.to_string()),
            Some(NumberOrText::Text(t))
                if matches!(
                    t.as_str(),
                    "min" | "low" | "default" | "high" | "max" | "urgent"
                ) =>
            {
                Some(t.clone())
            }
            Some(_) => {
                return Err((
                    "priority",
                    "must be 1 to 5 or min, low, default, high, max, urgent",
                )
                    .into());
            }
        };
        Ok(Self { token, priority })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let d = Digest::of(group, 3800);
        let mut h = vec![
            ("Title".to_owned(), header_text(&d.title)),
            (
                "Priority".to_owned(),
                self.priority
                    .clone()
                    .unwrap_or_else(|| if d.firing > 0 { "high" } else { "default" }.into()),
            ),
            (
                "Tags".to_owned(),
                if d.firing > 0 {
                    "rotating_light"
                } else {
                    "white_check_mark"
                }
                .into(),
            ),
            (
                "Content-Type".to_owned(),
                "text/plain; charset=utf-8".into(),
            ),
        ];
        if let Some(t) = &self.token {
            h.push(("Authorization".into(), format!("Bearer {}", t.expose())));
        }
        Outgoing::whole(
            group.len(),
            Request::Http(HttpRequest {
                method: "POST".into(),
                url: to.url(),
                headers: h,
                body: d.text().into_bytes(),
            }),
        )
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"token": self.token.as_ref().map(|_| HIDDEN), "priority": self.priority})
    }
}

/// A header value: ASCII is sent as is; other text as an RFC 2047 encoded word (which ntfy
/// decodes), since HTTP header values are ASCII.
fn header_text(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return s.to_owned();
    }
    use base64::Engine;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    )
}
