//! Gotify: a message (title, text, priority by state unless set) to `/message` with the
//! application token in `X-Gotify-Key`.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request, with_path};
use crate::text::Digest;
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, NumberOrText, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "gotify",
    url: UrlRule::Given,
    fields: &["token_env", "priority"],
    min_interval: Duration::ZERO,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Gotify {
    pub token: Secret<String>,
    /// 0 to 10; 8 while anything fires, else 4, when unset.
    pub priority: Option<i64>,
}

impl Gotify {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let var = crate::required(ABOUT.name, "token_env", &f.token_env)?;
        let token = secrets.read("token_env", &var)?;
        let priority = match &f.priority {
            None => None,
            Some(NumberOrText::Number(n)) if (0..=10).contains(n) => Some(*n),
            Some(_) => return Err(("priority", "must be a number from 0 to 10").into()),
        };
        Ok(Self {
            token: Secret::new(token),
            priority,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let d = Digest::of(group, 10_000);
        let body = json!({
            "title": d.title,
            "message": d.text(),
            "priority": self.priority.unwrap_or(if d.firing > 0 { 8 } else { 4 }),
        });
        let h = vec![("X-Gotify-Key".to_owned(), self.token.expose().clone())];
        Outgoing::whole(
            group.len(),
            json_request("POST", with_path(to.url(), "message"), h, &body),
        )
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"token": HIDDEN, "priority": self.priority})
    }
}
