//! The notification services sitewatch delivers alerts to: webhooks, chat (Slack, Discord,
//! Teams, Mattermost, Telegram, ntfy, Gotify), incident tools (PagerDuty, Opsgenie),
//! Alertmanager and email. One module per service holds all of it, in the spirit of Gatus'
//! `alerting/provider/<name>`: its settings and their checks, the requests it is sent (in the
//! shape the service documents, see `docs/NOTIFIERS.md` in the shared notes), and what its
//! answers mean. [`Service`] is the seam the rest of sitewatch sees.
//!
//! What is common to every service lives beside them: [`send`] sends a request and judges the
//! answer, [`reply`] reads an HTTP answer, and a private `text` module words a group of
//! notifications. The config builds a [`Service`] from a notifier's fields with
//! [`Service::resolve`]; delivery from the store's outbox (grouping, rate limits, retries,
//! reminders) is the export crate's `notify`.

// The crates this one builds on, by the names its paths use.
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::field::FieldError;
use sitewatch_core::notice;
use sitewatch_core::secret::{HIDDEN, Secret};

mod alertmanager;
mod discord;
mod email;
mod gotify;
mod mattermost;
mod ntfy;
mod opsgenie;
mod pagerduty;
pub mod reply;
mod request;
pub mod send;
mod slack;
mod teams;
mod telegram;
mod text;
mod webhook;

pub use alertmanager::{Alertmanager, DEFAULT_REPEAT as DEFAULT_ALERTMANAGER_REPEAT};
pub use discord::Discord;
pub use email::{Email, SmtpTls};
pub use gotify::Gotify;
pub use mattermost::Mattermost;
pub use ntfy::Ntfy;
pub use opsgenie::Opsgenie;
pub use pagerduty::PagerDuty;
pub use request::{EmailMessage, HttpRequest, Outgoing, Request};
pub use slack::Slack;
pub use teams::Teams;
pub use telegram::Telegram;
pub use webhook::Webhook;

use notice::Notice;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// The services a notifier can deliver to: the `type` of a notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifierType {
    Webhook,
    Slack,
    Discord,
    Teams,
    Mattermost,
    PagerDuty,
    Opsgenie,
    Ntfy,
    Gotify,
    Telegram,
    Alertmanager,
    Email,
}

/// Where a service's endpoint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRule {
    /// `url` or `url_env`, required.
    Given,
    /// `url_env` only: the webhook URL is the credential (Slack, Discord, Teams, Mattermost).
    Secret,
    /// `url` or `url_env`, or the service's public endpoint.
    Default(&'static str),
    /// No URL: the service is reached another way (email's `smtp`).
    None,
}

/// What a service declares about itself: its name, its endpoint, the fields it takes, and its
/// default pace.
pub(crate) struct About {
    pub name: &'static str,
    pub url: UrlRule,
    /// The service's own fields it takes (of [`Fields`]); any other set is refused.
    pub fields: &'static [&'static str],
    /// At least this long between two messages unless `rate_limit` says otherwise.
    pub min_interval: Duration,
}

impl NotifierType {
    pub const ALL: [Self; 12] = [
        Self::Webhook,
        Self::Slack,
        Self::Discord,
        Self::Teams,
        Self::Mattermost,
        Self::PagerDuty,
        Self::Opsgenie,
        Self::Ntfy,
        Self::Gotify,
        Self::Telegram,
        Self::Alertmanager,
        Self::Email,
    ];

    fn about(self) -> &'static About {
        match self {
            Self::Webhook => &webhook::ABOUT,
            Self::Slack => &slack::ABOUT,
            Self::Discord => &discord::ABOUT,
            Self::Teams => &teams::ABOUT,
            Self::Mattermost => &mattermost::ABOUT,
            Self::PagerDuty => &pagerduty::ABOUT,
            Self::Opsgenie => &opsgenie::ABOUT,
            Self::Ntfy => &ntfy::ABOUT,
            Self::Gotify => &gotify::ABOUT,
            Self::Telegram => &telegram::ABOUT,
            Self::Alertmanager => &alertmanager::ABOUT,
            Self::Email => &email::ABOUT,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.about().name
    }

    /// The type named `name` (`"slack"`), or an error listing the types.
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                FieldError::from((
                    "type",
                    format!("unknown type \"{name}\"; one of {}", known.join(", ")),
                ))
            })
    }

    /// Where its endpoint comes from.
    pub fn url_rule(self) -> UrlRule {
        self.about().url
    }

    /// Chat services take about one message a second per webhook (Slack documents it); the
    /// others take what they are sent.
    pub fn default_min_interval(self) -> Duration {
        self.about().min_interval
    }
}

/// A number or a name, as the file has it: a priority (ntfy 1-5, Gotify 0-10; ntfy's names,
/// Opsgenie's P1-P5), or a Telegram chat id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(i64),
    Text(String),
}

/// A notifier's fields that belong to its service, as the file has them (the config's flat
/// notifier shape, less what every notifier has).
#[derive(Debug, Default)]
pub struct Fields {
    pub method: Option<String>,
    /// Header values may name environment variables as `${VAR}`.
    pub headers: BTreeMap<String, String>,
    pub routing_key_env: Option<String>,
    pub severity: Option<String>,
    pub api_key_env: Option<String>,
    pub priority: Option<NumberOrText>,
    pub token_env: Option<String>,
    pub bot_token_env: Option<String>,
    /// A Telegram chat: its number (as Telegram shows it) or `@channelname`.
    pub chat_id: Option<NumberOrText>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub smtp: Option<String>,
    pub tls: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username_env: Option<String>,
    pub password_env: Option<String>,
}

impl Fields {
    /// The names of the fields that are set, in the order the README lists them.
    fn set(&self) -> Vec<&'static str> {
        [
            ("method", self.method.is_some()),
            ("headers", !self.headers.is_empty()),
            ("routing_key_env", self.routing_key_env.is_some()),
            ("api_key_env", self.api_key_env.is_some()),
            ("bot_token_env", self.bot_token_env.is_some()),
            ("chat_id", self.chat_id.is_some()),
            ("token_env", self.token_env.is_some()),
            ("severity", self.severity.is_some()),
            ("priority", self.priority.is_some()),
            ("channel", self.channel.is_some()),
            ("username", self.username.is_some()),
            ("smtp", self.smtp.is_some()),
            ("tls", self.tls.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("username_env", self.username_env.is_some()),
            ("password_env", self.password_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// What checking a service's fields needs from the config: the environment, read once. Every
/// value read is kept by the config as one of the notifier's secrets, to redact.
pub trait Secrets {
    /// The value of the environment variable `var` that `field` names; an error naming both
    /// (never a value) when it is not set.
    fn read(&mut self, field: &str, var: &str) -> Result<String, FieldError>;
    /// `text` (of `field`) with its `${NAME}` references expanded.
    fn expand(&mut self, field: &str, text: &str) -> Result<String, FieldError>;
}

/// One notifier's service and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    Webhook(Webhook),
    Slack(Slack),
    Discord(Discord),
    Teams(Teams),
    Mattermost(Mattermost),
    PagerDuty(PagerDuty),
    Opsgenie(Opsgenie),
    Ntfy(Ntfy),
    Gotify(Gotify),
    Telegram(Telegram),
    Alertmanager(Alertmanager),
    Email(Email),
}

/// Where a notifier sends and as whom: what a service's requests need besides the
/// notifications.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The notifier's name.
    pub name: &'a str,
    /// Its endpoint (none for email).
    pub url: Option<&'a Url>,
}

impl Endpoint<'_> {
    /// The endpoint of an HTTP service (the config gives each one).
    pub(crate) fn url(&self) -> Url {
        self.url.cloned().expect("every HTTP notifier has a URL")
    }
}

impl Service {
    /// Checks the fields of a notifier of type `kind` and builds its service. A field the
    /// type does not take is refused rather than ignored: a typo'd config would page nobody.
    pub fn resolve(
        kind: NotifierType,
        f: &Fields,
        secrets: &mut dyn Secrets,
    ) -> Result<Self, FieldError> {
        let takes = kind.about().fields;
        if let Some(field) = f.set().into_iter().find(|n| !takes.contains(n)) {
            return Err((
                field,
                format!("a {} notifier takes no {field}", kind.as_str()),
            )
                .into());
        }
        Ok(match kind {
            NotifierType::Webhook => Self::Webhook(Webhook::resolve(f, secrets)?),
            NotifierType::Slack => Self::Slack(Slack),
            NotifierType::Discord => Self::Discord(Discord),
            NotifierType::Teams => Self::Teams(Teams),
            NotifierType::Mattermost => Self::Mattermost(Mattermost::resolve(f)),
            NotifierType::PagerDuty => Self::PagerDuty(PagerDuty::resolve(f, secrets)?),
            NotifierType::Opsgenie => Self::Opsgenie(Opsgenie::resolve(f, secrets)?),
            NotifierType::Ntfy => Self::Ntfy(Ntfy::resolve(f, secrets)?),
            NotifierType::Gotify => Self::Gotify(Gotify::resolve(f, secrets)?),
            NotifierType::Telegram => Self::Telegram(Telegram::resolve(f, secrets)?),
            NotifierType::Alertmanager => Self::Alertmanager(Alertmanager::resolve(f, secrets)?),
            NotifierType::Email => Self::Email(Email::resolve(f, secrets)?),
        })
    }

    pub fn kind(&self) -> NotifierType {
        match self {
            Self::Webhook(_) => NotifierType::Webhook,
            Self::Slack(_) => NotifierType::Slack,
            Self::Discord(_) => NotifierType::Discord,
            Self::Teams(_) => NotifierType::Teams,
            Self::Mattermost(_) => NotifierType::Mattermost,
            Self::PagerDuty(_) => NotifierType::PagerDuty,
            Self::Opsgenie(_) => NotifierType::Opsgenie,
            Self::Ntfy(_) => NotifierType::Ntfy,
            Self::Gotify(_) => NotifierType::Gotify,
            Self::Telegram(_) => NotifierType::Telegram,
            Self::Alertmanager(_) => NotifierType::Alertmanager,
            Self::Email(_) => NotifierType::Email,
        }
    }

    /// The requests that deliver `group` to `to`, in order: pure, so every shape is
    /// unit-tested without a network. Chat services and webhooks get one message per group;
    /// incident APIs (PagerDuty, Opsgenie) one event per notification, since each incident
    /// opens and closes on its own key; Alertmanager the group as one array.
    pub fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        match self {
            Self::Webhook(s) => s.requests(to, group),
            Self::Slack(s) => s.requests(to, group),
            Self::Discord(s) => s.requests(to, group),
            Self::Teams(s) => s.requests(to, group),
            Self::Mattermost(s) => s.requests(to, group),
            Self::PagerDuty(s) => s.requests(to, group),
            Self::Opsgenie(s) => s.requests(to, group),
            Self::Ntfy(s) => s.requests(to, group),
            Self::Gotify(s) => s.requests(to, group),
            Self::Telegram(s) => s.requests(to, group),
            Self::Alertmanager(s) => s.requests(to, group),
            Self::Email(s) => s.requests(to, group),
        }
    }

    /// Its settings for `check-config --print`, every secret as `***`.
    pub fn printed(&self) -> Map<String, Value> {
        let v = match self {
            Self::Slack(_) | Self::Discord(_) | Self::Teams(_) => Value::Object(Map::new()),
            Self::Webhook(s) => s.printed(),
            Self::Mattermost(s) => s.printed(),
            Self::PagerDuty(s) => s.printed(),
            Self::Opsgenie(s) => s.printed(),
            Self::Ntfy(s) => s.printed(),
            Self::Gotify(s) => s.printed(),
            Self::Telegram(s) => s.printed(),
            Self::Alertmanager(s) => s.printed(),
            Self::Email(s) => s.printed(),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Header names and values checked, the values expanded (`${NAME}`) and held as secrets.
pub(crate) fn headers(
    raw: &BTreeMap<String, String>,
    secrets: &mut dyn Secrets,
) -> Result<Vec<(String, Secret<String>)>, FieldError> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let field = format!("headers.{k}");
        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err((field, format!("\"{k}\" is not a header name")).into());
        }
        let value = secrets.expand(&field, v)?;
        if reqwest::header::HeaderValue::from_str(&value).is_err() {
            return Err((field, "is not a valid header value").into());
        }
        out.push((k.clone(), Secret::new(value)));
    }
    Ok(out)
}

/// Headers as `check-config --print` shows them: names, each value `***`.
pub(crate) fn printed_headers(h: &[(String, Secret<String>)]) -> Map<String, Value> {
    h.iter()
        .map(|(k, _)| (k.clone(), Value::from(HIDDEN)))
        .collect()
}

/// The value of a field a service needs.
pub(crate) fn required<T: Clone>(
    kind: &str,
    field: &str,
    value: &Option<T>,
) -> Result<T, FieldError> {
    value
        .clone()
        .ok_or_else(|| (field, format!("a {kind} notifier needs {field}")).into())
}
