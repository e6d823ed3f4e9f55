//! Mattermost: an incoming webhook (its URL is the credential) with a Markdown text, and the
//! channel and user name it may post as.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{Digest, rendered_json};
use crate::{About, Endpoint, Fields, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "mattermost",
    url: UrlRule::Secret,
    fields: &["channel", "username"],
    min_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Mattermost {
    pub channel: Option<String>,
    pub username: Option<String>,
}

impl Mattermost {
    pub(crate) fn resolve(f: &Fields) -> Self {
        Self {
            channel: f.channel.clone(),
            username: f.username.clone(),
        }
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let body = rendered_json(group).unwrap_or_else(|| {
            let d = Digest::of(group, 12_000);
            let mut v = json!({ "text": d.titled(|t| format!("#### {t}")) });
            if let Some(c) = &self.channel {
                v["channel"] = json!(c);
            }
            v["username"] = json!(self.username.as_deref().unwrap_or("sitewatch"));
            v
        });
        Outgoing::whole(group.len(), json_request("POST", to.url(), vec![], &body))
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"channel": self.channel, "username": self.username})
    }
}
