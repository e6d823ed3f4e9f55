//! Discord: a webhook (its URL is the credential) with one embed per group: a title, the
//! lines, and a decimal colour by state, cut to Discord's limits.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request};
use crate::text::{Digest, cut, rendered_json};
use crate::{About, Endpoint, UrlRule};
use serde_json::json;
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "discord",
    url: UrlRule::Secret,
    fields: &[],
    min_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Discord;

impl Discord {
    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let body = rendered_json(group).unwrap_or_else(|| {
            let d = Digest::of(group, 3500);
            json!({
                "username": "sitewatch",
                "embeds": [{
                    "title": cut(&d.title, 256),
                    "description": cut(&d.text(), 4096),
                    "color": d.colour(),
                }]
            })
        });
        Outgoing::whole(group.len(), json_request("POST", to.url(), vec![], &body))
    }
}
