//! The `notify` list: named notifiers, each of a type (webhook, slack, ... email), with what it
//! sends (filters by site and alert kind, reminders, a formatter) and how (grouping, rate limit,
//! retries, give-up age). Secrets are read from the environment here, once, into [`Secret`]s,
//! which never print (see [`super::secret`]): the file names variables, never holds a secret.

use super::raw::{RawDuration, RawNotifier, RawPriority};
use super::secret::{Env, Secret, env_secret};
use super::{FieldError, PluginLimits, PluginUse, values};
use crate::alert::AlertKind;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use url::Url;

pub(crate) const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub(crate) const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Alertmanager resolves an alert nobody re-sent within its `resolve_timeout` (5 min by
/// default): firing alerts are re-sent this often unless `repeat` says otherwise.
pub(crate) const DEFAULT_ALERTMANAGER_REPEAT: Duration = Duration::from_secs(120);

/// The services a notifier can deliver to.
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

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Teams => "teams",
            Self::Mattermost => "mattermost",
            Self::PagerDuty => "pagerduty",
            Self::Opsgenie => "opsgenie",
            Self::Ntfy => "ntfy",
            Self::Gotify => "gotify",
            Self::Telegram => "telegram",
            Self::Alertmanager => "alertmanager",
            Self::Email => "email",
        }
    }

    /// Chat services take about one message a second per webhook (Slack documents it); the
    /// others take what they are sent.
    fn default_min_interval(self) -> Duration {
        match self {
            Self::Slack | Self::Discord | Self::Teams | Self::Mattermost | Self::Telegram => {
                Duration::from_secs(1)
            }
            _ => Duration::ZERO,
        }
    }

    /// Whose webhook URL carries the credential: it must come from the environment.
    fn url_is_secret(self) -> bool {
        matches!(
            self,
            Self::Slack | Self::Discord | Self::Teams | Self::Mattermost
        )
    }

    /// The endpoint used when the config gives none.
    fn default_url(self) -> Option<&'static str> {
        match self {
            Self::PagerDuty => Some("https://events.pagerduty.com/v2/enqueue"),
            Self::Opsgenie => Some("https://api.opsgenie.com"),
            Self::Telegram => Some("https://api.telegram.org"),
            _ => None,
        }
    }
}

/// One validated notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    pub name: String,
    pub service: Service,
    /// The endpoint (for email: none). A secret when it came from `url_env`.
    pub url: Option<Secret<Url>>,
    /// The endpoint came from `url_env` (it holds the credential).
    pub url_from_env: bool,
    /// The alert kinds it sends.
    pub on: Vec<AlertKind>,
    /// Only these sites, when set.
    pub sites: Option<Vec<String>>,
    /// Only sites with at least one of these tags, when set (with `sites`: either matches).
    pub tags: Option<Vec<String>>,
    /// A reminder this often while a site stays down.
    pub repeat: Option<Duration>,
    /// The plugin that renders its payload (one alert per message then).
    pub formatter: Option<PluginUse>,
    /// Alerts arriving within this of the first waiting one go out as one message.
    pub group_wait: Duration,
    /// At least this long between two messages (from `rate_limit`).
    pub min_interval: Duration,
    /// A notification not delivered within this is given up.
    pub max_age: Duration,
    /// The time limit of one attempt.
    pub timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Every secret value of this notifier, for redacting whatever it reports.
    pub secrets: Vec<Secret<String>>,
}

impl NotifierConfig {
    pub fn kind(&self) -> NotifierType {
        self.service.kind()
    }

    /// Whether an alert of `kind` for `site` (tagged `tags`) goes to this notifier. With
    /// `sites` and `tags` both set, a site named or tagged is enough.
    pub fn wants(&self, kind: AlertKind, site: &str, tags: &[String]) -> bool {
        let named = self.sites.as_ref().map(|s| s.iter().any(|n| n == site));
        let tagged = self
            .tags
            .as_ref()
            .map(|t| t.iter().any(|want| tags.contains(want)));
        self.on.contains(&kind)
            && match (named, tagged) {
                (None, None) => true,
                (Some(a), None) | (None, Some(a)) => a,
                (Some(a), Some(b)) => a || b,
            }
    }

    /// `text` with every secret of this notifier replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if !s.expose().is_empty() {
                out = out.replace(s.expose().as_str(), "[redacted]");
            }
        }
        out
    }
}

/// What each type needs besides the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    Webhook {
        method: String,
        headers: Vec<(String, Secret<String>)>,
    },
    Slack,
    Discord,
    Teams,
    Mattermost {
        channel: Option<String>,
        username: Option<String>,
    },
    PagerDuty {
        routing_key: Secret<String>,
        severity: String,
    },
    Opsgenie {
        api_key: Secret<String>,
        priority: String,
    },
    Ntfy {
        token: Option<Secret<String>>,
        priority: Option<String>,
    },
    Gotify {
        token: Secret<String>,
        priority: Option<i64>,
    },
    Telegram {
        bot_token: Secret<String>,
        chat_id: String,
    },
    Alertmanager {
        headers: Vec<(String, Secret<String>)>,
        severity: String,
    },
    Email(EmailTarget),
}

impl Service {
    pub fn kind(&self) -> NotifierType {
        match self {
            Self::Webhook { .. } => NotifierType::Webhook,
            Self::Slack => NotifierType::Slack,
            Self::Discord => NotifierType::Discord,
            Self::Teams => NotifierType::Teams,
            Self::Mattermost { .. } => NotifierType::Mattermost,
            Self::PagerDuty { .. } => NotifierType::PagerDuty,
            Self::Opsgenie { .. } => NotifierType::Opsgenie,
            Self::Ntfy { .. } => NotifierType::Ntfy,
            Self::Gotify { .. } => NotifierType::Gotify,
            Self::Telegram { .. } => NotifierType::Telegram,
            Self::Alertmanager { .. } => NotifierType::Alertmanager,
            Self::Email(_) => NotifierType::Email,
        }
    }
}

/// How mail is handed to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (the default; port 587).
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// No encryption (a relay on the same host).
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<Secret<String>>,
    pub password: Option<Secret<String>>,
}

/// Resolves the `notify` list; errors name the field under `notify[i]` and the notifier.
pub(super) fn resolve(
    raw: Vec<RawNotifier>,
    site_names: &HashSet<String>,
    plugin_limits: PluginLimits,
    env: Env<'_>,
) -> Result<Vec<NotifierConfig>, FieldError> {
    let mut out: Vec<NotifierConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let name = r.name.trim().to_owned();
        let n = resolve_one(r, site_names, plugin_limits, env).map_err(|e| FieldError {
            field: format!("notify[{i}].{}", e.field),
            message: if name.is_empty() {
                e.message
            } else {
                format!("notifier \"{name}\": {}", e.message)
            },
        })?;
        if out
            .iter()
            .any(|o| super::values::name_key(&o.name) == super::values::name_key(&n.name))
        {
            return Err((
                format!("notify[{i}].name"),
                format!(
                    "another notifier is named \"{}\"; names must be unique",
                    n.name
                ),
            )
                .into());
        }
        out.push(n);
    }
    Ok(out)
}

fn resolve_one(
    r: RawNotifier,
    site_names: &HashSet<String>,
    plugin_limits: PluginLimits,
    env: Env<'_>,
) -> Result<NotifierConfig, FieldError> {
    let name = r.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err((
            "name",
            format!(
                "\"{}\" is not a notifier name (letters, digits, -, _ and .)",
                r.name
            ),
        )
            .into());
    }
    let kind = NotifierType::ALL
        .into_iter()
        .find(|t| t.as_str() == r.kind)
        .ok_or_else(|| {
            let known: Vec<&str> = NotifierType::ALL.iter().map(|t| t.as_str()).collect();
            FieldError::from((
                "type",
                format!("unknown type \"{}\"; one of {}", r.kind, known.join(", ")),
            ))
        })?;
    let mut secrets = Vec::new();
    let mut read = |field: &str, var: &str| -> Result<String, FieldError> {
        let v = env_secret(env, field, var)?;
        secrets.push(Secret::new(v.clone()));
        Ok(v)
    };
    let required = |field: &str, value: Option<String>| -> Result<String, FieldError> {
        value.ok_or_else(|| (field, format!("a {} notifier needs {field}", kind.as_str())).into())
    };

    // The endpoint: `url` or `url_env`, or the service's own.
    let url_text = match (&r.url, &r.url_env) {
        (Some(_), Some(_)) => {
            return Err(("url", "give url or url_env, not both").into());
        }
        (Some(u), None) if kind.url_is_secret() => {
            let _ = u;
            return Err((
                "url",
                format!(
                    "a {} webhook URL holds its credential: put it in an environment variable and name that in url_env",
                    kind.as_str()
                ),
            )
                .into());
        }
        (Some(u), None) => Some((u.trim().to_owned(), "url")),
        (None, Some(var)) => Some((read("url_env", var)?, "url_env")),
        (None, None) => kind.default_url().map(|u| (u.to_owned(), "url")),
    };
    let url = match (kind, url_text) {
        (NotifierType::Email, Some(_)) => {
            return Err(("url", "an email notifier takes smtp, not url").into());
        }
        (NotifierType::Email, None) => None,
        (_, None) => {
            return Err((
                "url",
                format!("a {} notifier needs url or url_env", kind.as_str()),
            )
                .into());
        }
        (_, Some((text, field))) => {
            let shown = if field == "url_env" {
                "the URL in url_env".to_owned()
            } else {
                format!("\"{text}\"")
            };
            let u = Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| {
                    FieldError::from((field, format!("{shown} is not an http:// or https:// URL")))
                })?;
            Some(Secret::new(u))
        }
    };

    let headers = |secrets: &mut Vec<Secret<String>>,
                   raw: &BTreeMap<String, String>|
     -> Result<Vec<(String, Secret<String>)>, FieldError> {
        let mut out = Vec::new();
        for (k, v) in raw {
            let field = format!("headers.{k}");
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err((field, format!("\"{k}\" is not a header name")).into());
            }
            let expanded = super::expand::expand(v, &field, env)?;
            secrets.extend(expanded.secrets);
            let value = expanded.value;
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err((field, "is not a valid header value").into());
            }
            out.push((k.clone(), Secret::new(value)));
        }
        Ok(out)
    };
    let no_headers = |r: &RawNotifier| -> Result<(), FieldError> {
        if r.headers.is_empty() {
            Ok(())
        } else {
            Err((
                "headers",
                format!("a {} notifier takes no headers", kind.as_str()),
            )
                .into())
        }
    };
    if kind != NotifierType::Webhook && r.method.is_some() {
        return Err((
            "method",
            format!("a {} notifier takes no method", kind.as_str()),
        )
            .into());
    }

    let service = match kind {
        NotifierType::Webhook => {
            let method = r
                .method
                .as_deref()
                .unwrap_or("POST")
                .trim()
                .to_ascii_uppercase();
            if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
                return Err(("method", "must be POST, PUT or PATCH").into());
            }
            Service::Webhook {
                method,
                headers: headers(&mut secrets, &r.headers)?,
            }
        }
        NotifierType::Slack => {
            no_headers(&r)?;
            Service::Slack
        }
        NotifierType::Discord => {
            no_headers(&r)?;
            Service::Discord
        }
        NotifierType::Teams => {
            no_headers(&r)?;
            Service::Teams
        }
        NotifierType::Mattermost => {
            no_headers(&r)?;
            Service::Mattermost {
                channel: r.channel.clone(),
                username: r.username.clone(),
            }
        }
        NotifierType::PagerDuty => {
            no_headers(&r)?;
            let var = required("routing_key_env", r.routing_key_env.clone())?;
            let routing_key = read("routing_key_env", &var)?;
            let severity = r.severity.clone().unwrap_or_else(|| "critical".into());
            if !matches!(severity.as_str(), "critical" | "error" | "warning" | "info") {
                return Err(("severity", "must be critical, error, warning or info").into());
            }
            Service::PagerDuty {
                routing_key: Secret::new(routing_key),
                severity,
            }
        }
        NotifierType::Opsgenie => {
            no_headers(&r)?;
            let var = required("api_key_env", r.api_key_env.clone())?;
            let api_key = read("api_key_env", &var)?;
            let priority = match &r.priority {
                None => "P1".to_owned(),
                Some(RawPriority::Text(p))
                    if matches!(p.as_str(), "P1" | "P2" | "P3" | "P4" | "P5") =>
                {
                    p.clone()
                }
                Some(_) => return Err(("priority", "must be P1, P2, P3, P4 or P5").into()),
            };
            Service::Opsgenie {
                api_key: Secret::new(api_key),
                priority,
            }
        }
        NotifierType::Ntfy => {
            no_headers(&r)?;
            let token = match &r.token_env {
                Some(var) => Some(Secret::new(read("token_env", var)?)),
                None => None,
            };
            let priority = match &r.priority {
                None => None,
                Some(RawPriority::Number(n)) if (1..=5).contains(n) => Some(n.to_string()),
                Some(RawPriority::Text(t))
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
            Service::Ntfy { token, priority }
        }
        NotifierType::Gotify => {
            no_headers(&r)?;
            let var = required("token_env", r.token_env.clone())?;
            let token = read("token_env", &var)?;
            let priority = match &r.priority {
                None => None,
                Some(RawPriority::Number(n)) if (0..=10).contains(n) => Some(*n),
                Some(_) => return Err(("priority", "must be a number from 0 to 10").into()),
            };
            Service::Gotify {
                token: Secret::new(token),
                priority,
            }
        }
        NotifierType::Telegram => {
            no_headers(&r)?;
            let var = required("bot_token_env", r.bot_token_env.clone())?;
            let bot_token = read("bot_token_env", &var)?;
            let chat_id = match r.chat_id.clone() {
                Some(RawPriority::Number(n)) => n.to_string(),
                Some(RawPriority::Text(t)) => t,
                None => required("chat_id", None)?,
            };
            if chat_id.trim().is_empty() {
                return Err(("chat_id", "must not be empty").into());
            }
            Service::Telegram {
                bot_token: Secret::new(bot_token),
                chat_id,
            }
        }
        NotifierType::Alertmanager => {
            let severity = r.severity.clone().unwrap_or_else(|| "critical".into());
            if severity.trim().is_empty() {
                return Err(("severity", "must not be empty").into());
            }
            Service::Alertmanager {
                headers: headers(&mut secrets, &r.headers)?,
                severity,
            }
        }
        NotifierType::Email => {
            no_headers(&r)?;
            Service::Email(email(&r, &mut read)?)
        }
    };
    // Fields of other types are refused rather than ignored: a typo'd config would page nobody.
    let foreign: [(&str, bool, &[NotifierType]); 9] = [
        (
            "routing_key_env",
            r.routing_key_env.is_some(),
            &[NotifierType::PagerDuty],
        ),
        (
            "api_key_env",
            r.api_key_env.is_some(),
            &[NotifierType::Opsgenie],
        ),
        (
            "bot_token_env",
            r.bot_token_env.is_some(),
            &[NotifierType::Telegram],
        ),
        ("chat_id", r.chat_id.is_some(), &[NotifierType::Telegram]),
        (
            "token_env",
            r.token_env.is_some(),
            &[NotifierType::Ntfy, NotifierType::Gotify],
        ),
        (
            "severity",
            r.severity.is_some(),
            &[NotifierType::PagerDuty, NotifierType::Alertmanager],
        ),
        (
            "priority",
            r.priority.is_some(),
            &[
                NotifierType::Opsgenie,
                NotifierType::Ntfy,
                NotifierType::Gotify,
            ],
        ),
        ("channel", r.channel.is_some(), &[NotifierType::Mattermost]),
        (
            "username",
            r.username.is_some() && kind != NotifierType::Email,
            &[NotifierType::Mattermost],
        ),
    ];
    for (field, set, types) in foreign {
        if set && !types.contains(&kind) {
            return Err((
                field,
                format!("a {} notifier takes no {field}", kind.as_str()),
            )
                .into());
        }
    }
    if kind != NotifierType::Email {
        for (field, set) in [
            ("smtp", r.smtp.is_some()),
            ("tls", r.tls.is_some()),
            ("from", r.from.is_some()),
            ("to", r.to.is_some()),
            ("username_env", r.username_env.is_some()),
            ("password_env", r.password_env.is_some()),
        ] {
            if set {
                return Err((
                    field,
                    format!("a {} notifier takes no {field}", kind.as_str()),
                )
                    .into());
            }
        }
    }

    let on = match &r.on {
        None => AlertKind::ALL.to_vec(),
        Some(kinds) => {
            let mut out = Vec::new();
            for (j, k) in kinds.iter().enumerate() {
                let kind: AlertKind = k.parse().map_err(|e: crate::alert::UnknownAlertKind| {
                    (format!("on[{j}]"), e.to_string())
                })?;
                if !out.contains(&kind) {
                    out.push(kind);
                }
            }
            if out.is_empty() {
                return Err((
                    "on",
                    "must list at least one alert kind (down, recovered, degraded, degraded_recovered, cert_expiring, cert_renewed)",
                )
                    .into());
            }
            out
        }
    };
    if let Some(sites) = &r.sites {
        if sites.is_empty() {
            return Err((
                "sites",
                "must list at least one site (leave it out for every site)",
            )
                .into());
        }
        for (j, s) in sites.iter().enumerate() {
            if !site_names.contains(s) {
                return Err((format!("sites[{j}]"), format!("no site is named \"{s}\"")).into());
            }
        }
    }
    if let Some(tags) = &r.tags
        && tags.is_empty()
    {
        return Err((
            "tags",
            "must list at least one tag (leave it out for every site)",
        )
            .into());
    }
    let duration = |field: &str, raw: &Option<RawDuration>, default: Duration| match raw {
        Some(d) => values::positive_duration(d).map_err(|m| FieldError::from((field, m))),
        None => Ok(default),
    };
    let repeat = match &r.repeat {
        Some(d) => Some(values::positive_duration(d).map_err(|m| FieldError::from(("repeat", m)))?),
        None if kind == NotifierType::Alertmanager => Some(DEFAULT_ALERTMANAGER_REPEAT),
        None => None,
    };
    let group_wait = match &r.group_wait {
        Some(RawDuration::Seconds(s)) if *s == 0.0 => Duration::ZERO,
        Some(RawDuration::Text(t)) if matches!(t.trim(), "0" | "0s" | "0ms") => Duration::ZERO,
        other => duration("group_wait", other, DEFAULT_GROUP_WAIT)?,
    };
    let min_interval = match &r.rate_limit {
        None => kind.default_min_interval(),
        Some(text) => rate_limit(text).map_err(|m| FieldError::from(("rate_limit", m)))?,
    };
    let backoff_min = duration("backoff_min", &r.backoff_min, DEFAULT_BACKOFF_MIN)?;
    let backoff_max = duration("backoff_max", &r.backoff_max, DEFAULT_BACKOFF_MAX)?;
    if backoff_max < backoff_min {
        return Err(("backoff_max", "must not be shorter than backoff_min").into());
    }
    let formatter = match &r.formatter {
        Some(u) => {
            Some(super::resolve_plugin_use(u, plugin_limits).map_err(|e| e.under("formatter"))?)
        }
        None => None,
    };
    if let Some(u) = &url {
        // The URL's credential parts (userinfo, a token in the path) are redacted with it.
        if r.url_env.is_some() {
            // The whole URL, its path, and each long path segment or query value (a Teams
            // Workflows `sig=`), so a reply that echoes a part of it is redacted too.
            secrets.push(Secret::new(u.expose().as_str().to_owned()));
            let path = u.expose().path().trim_matches('/');
            let parts = std::iter::once(path.to_owned())
                .chain(path.split('/').map(str::to_owned))
                .chain(u.expose().query_pairs().map(|(_, v)| v.into_owned()));
            for part in parts {
                if part.len() >= 8 {
                    secrets.push(Secret::new(part));
                }
            }
        }
        if let Some(p) = u.expose().password() {
            secrets.push(Secret::new(p.to_owned()));
        }
    }
    let max_age = duration("max_age", &r.max_age, DEFAULT_MAX_AGE)?;
    if max_age <= group_wait {
        return Err((
            "max_age",
            "must be longer than group_wait, or every notification is given up before it is sent",
        )
            .into());
    }
    Ok(NotifierConfig {
        name,
        service,
        url,
        url_from_env: r.url_env.is_some(),
        on,
        sites: r.sites,
        tags: r.tags,
        repeat,
        formatter,
        group_wait,
        min_interval,
        max_age,
        timeout: duration("timeout", &r.timeout, DEFAULT_NOTIFY_TIMEOUT)?,
        backoff_min,
        backoff_max,
        secrets,
    })
}

fn email(
    r: &RawNotifier,
    read: &mut dyn FnMut(&str, &str) -> Result<String, FieldError>,
) -> Result<EmailTarget, FieldError> {
    let text = r.smtp.as_deref().ok_or_else(|| {
        FieldError::from((
            "smtp",
            "an email notifier needs smtp, e.g. \"smtp://mail.example.com:587\"",
        ))
    })?;
    let url = Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "smtp" | "smtps") && u.has_host())
        .ok_or_else(|| {
            FieldError::from((
                "smtp",
                format!("\"{text}\" is not an smtp:// or smtps:// URL"),
            ))
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err((
            "smtp",
            "must not hold a user or password: name their variables in username_env and password_env",
        )
            .into());
    }
    let implicit = url.scheme() == "smtps";
    let tls = match r.tls.as_deref() {
        None if implicit => SmtpTls::Implicit,
        None => SmtpTls::StartTls,
        Some("starttls") if !implicit => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Implicit,
        Some("none") if !implicit => SmtpTls::None,
        Some("starttls" | "none") => {
            return Err((
                "tls",
                "an smtps:// server speaks TLS from the start: leave tls out",
            )
                .into());
        }
        Some(_) => return Err(("tls", "must be starttls, tls or none").into()),
    };
    let port = url
        .port()
        .unwrap_or(if tls == SmtpTls::Implicit { 465 } else { 587 });
    let mailbox = |field: &str, text: &str| -> Result<String, FieldError> {
        text.parse::<lettre::message::Mailbox>()
            .map(|_| text.to_owned())
            .map_err(|e| (field, format!("\"{text}\" is not an email address ({e})")).into())
    };
    let from = mailbox(
        "from",
        r.from
            .as_deref()
            .ok_or_else(|| FieldError::from(("from", "an email notifier needs from")))?,
    )?;
    let to = match &r.to {
        Some(to) if !to.is_empty() => to
            .iter()
            .enumerate()
            .map(|(j, t)| mailbox(&format!("to[{j}]"), t))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(("to", "an email notifier needs at least one address in to").into()),
    };
    let username = match &r.username_env {
        Some(var) => Some(Secret::new(read("username_env", var)?)),
        None => None,
    };
    let password = match &r.password_env {
        Some(var) => Some(Secret::new(read("password_env", var)?)),
        None => None,
    };
    if username.is_some() != password.is_some() {
        return Err(("password_env", "username_env and password_env go together").into());
    }
    Ok(EmailTarget {
        host: url.host_str().unwrap_or_default().to_owned(),
        port,
        tls,
        from,
        to,
        username,
        password,
    })
}

/// `"1/s"`, `"30/m"`, `"100/h"`: the least time between two messages.
fn rate_limit(text: &str) -> Result<Duration, String> {
    let bad = || format!("\"{text}\" is not a rate; use e.g. \"1/s\", \"30/m\" or \"100/h\"");
    let (n, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let per = match per.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err("must allow at least one message".into());
    }
    Ok(per / n)
}
