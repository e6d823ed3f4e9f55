//! Slack: an incoming webhook (its URL is the credential, so it comes from `url_env`), one
//! text message per group with Slack's control characters escaped, at most one a second.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{Digest, rendered_json};
use crate::{About, Endpoint, UrlRule};
use serde_json::json;
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "slack",
    url: UrlRule::Secret,
    fields: &[],
    min_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Slack;

impl Slack {
    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let body = rendered_json(group).unwrap_or_else(|| {
            let d = Digest::of(group, 3000);
            json!({ "text": escape(&d.titled(|t| format!("*{t}*"))) })
        });
        Outgoing::whole(group.len(), json_request("POST", to.url(), vec![], &body))
    }
}

/// Slack's control characters (`&`, `<`, `>`) escaped, as its message formatting asks.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
