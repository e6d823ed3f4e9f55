//! Telegram: the Bot API's `sendMessage` (the bot token is in the path), to a chat by number
//! or `@channelname`. It says how long to wait in its body when it limits a bot.

use crate::notice::Notice;
use crate::request::{Outgoing, json_request, with_path};
use crate::text::{Digest, cut, rendered_json};
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, NumberOrText, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const ABOUT: About = About {
    name: "telegram",
    url: UrlRule::Default("https://api.telegram.org"),
    fields: &["bot_token_env", "chat_id"],
    min_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Telegram {
    pub bot_token: Secret<String>,
    pub chat_id: String,
}

impl Telegram {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let var = crate::required(ABOUT.name, "bot_token_env", &f.bot_token_env)?;
        let bot_token = secrets.read("bot_token_env", &var)?;
        let chat_id = match crate::required(ABOUT.name, "chat_id", &f.chat_id)? {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t,
        };
        if chat_id.trim().is_empty() {
            return Err(("chat_id", "must not be empty").into());
        }
        Ok(Self {
            bot_token: Secret::new(bot_token),
            chat_id,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let mut body = rendered_json(group).unwrap_or_else(|| {
            let d = Digest::of(group, 3800);
            json!({ "text": cut(&d.titled(str::to_owned), 4096) })
        });
        if body.get("chat_id").is_none() {
            body["chat_id"] = match self.chat_id.parse::<i64>() {
                Ok(id) => json!(id),
                Err(_) => json!(self.chat_id),
            };
        }
        let u = with_path(
            to.url(),
            &format!("bot{}/sendMessage", self.bot_token.expose()),
        );
        Outgoing::whole(group.len(), json_request("POST", u, vec![], &body))
    }

    pub(crate) fn printed(&self) -> Value {
        json!({"bot_token": HIDDEN, "chat_id": self.chat_id})
    }
}

/// Telegram says how long to wait in the body: `{"parameters": {"retry_after": 5}}`.
pub(crate) fn retry_after(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(Duration::from_secs(
        v.get("parameters")?.get("retry_after")?.as_u64()?,
    ))
}
