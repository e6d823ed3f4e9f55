//! Microsoft Teams: a Workflows webhook (its URL, with its `sig=`, is the credential) that
//! takes an Adaptive Card, not the retired MessageCard.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{Digest, rendered_json};
use crate::{About, Endpoint, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "teams",
    url: UrlRule::Secret,
    fields: &[],
    min_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Teams;

impl Teams {
    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let body = rendered_json(group).unwrap_or_else(|| card(&Digest::of(group, 20_000)));
        Outgoing::whole(group.len(), json_request("POST", to.url(), vec![], &body))
    }
}

fn card(d: &Digest) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": d.title,
        "weight": "Bolder",
        "size": "Medium",
        "color": if d.firing > 0 { "Attention" } else { "Good" },
        "wrap": true,
    })];
    for line in &d.lines {
        body.push(json!({ "type": "TextBlock", "text": line, "wrap": true }));
    }
    if d.more > 0 {
        body.push(json!({
            "type": "TextBlock",
            "text": format!("… and {} more", d.more),
            "isSubtle": true,
            "wrap": true,
        }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}
