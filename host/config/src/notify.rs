//! The `notify` list: named notifiers, each of a type (webhook, slack, ... email), with what it
//! sends (filters by site and alert kind, reminders, a formatter) and how (grouping, rate limit,
//! retries, give-up age). Secrets are read from the environment here, once, into [`Secret`]s,
//! which never print (see [`super::secret`]): the file names variables, never holds a secret.

use super::raw::{RawDuration, RawNotifier};
use super::secret::{Env, Secret, env_secret};
use super::{FieldError, PluginLimits, PluginUse, values};
use crate::alert::AlertKind;
pub use sitewatch_notify::{
    Email as EmailTarget, Endpoint, NotifierType, Service, SmtpTls, UrlRule,
};
use std::collections::HashSet;
use std::time::Duration;
use url::Url;

pub(crate) const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub(crate) const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);

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

    /// Where it sends and as whom, for its service's requests.
    pub fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            name: &self.name,
            url: self.url.as_ref().map(Secret::expose),
        }
    }

    /// Whether an alert of `kind` for `site` (tagged `tags`) goes to this notifier. With
    /// `sites` and `tags` both set, a site named or tagged is enough. The monitor's own alerts
    /// (`monitor_offline`, `monitor_online`) concern every site: only `on` filters them.
    pub fn wants(&self, kind: AlertKind, site: &str, tags: &[String]) -> bool {
        if kind.condition() == crate::alert::Condition::Monitor {
            return self.on.contains(&kind);
        }
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
    let kind = NotifierType::parse(&r.kind)?;
    let mut secrets = Vec::new();
    let mut read = |field: &str, var: &str| -> Result<String, FieldError> {
        let v = env_secret(env, field, var)?;
        secrets.push(Secret::new(v.clone()));
        Ok(v)
    };

    // The endpoint: `url` or `url_env`, or the service's own.
    let rule = kind.url_rule();
    let url_text = match (&r.url, &r.url_env) {
        (Some(_), Some(_)) => {
            return Err(("url", "give url or url_env, not both").into());
        }
        (Some(_), None) if rule == UrlRule::Secret => {
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
        (None, None) => match rule {
            UrlRule::Default(u) => Some((u.to_owned(), "url")),
            _ => None,
        },
    };
    let url = match (rule, url_text) {
        (UrlRule::None, Some(_)) => {
            return Err((
                "url",
                format!("an {} notifier takes smtp, not url", kind.as_str()),
            )
                .into());
        }
        (UrlRule::None, None) => None,
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

    let service = Service::resolve(
        kind,
        &r.service_fields(),
        &mut ServiceSecrets {
            env,
            secrets: &mut secrets,
        },
    )?;

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
                    "must list at least one alert kind (down, recovered, degraded, degraded_recovered, cert_expiring, cert_renewed, domain_expiring, domain_renewed, flapping, flapping_stopped)",
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
        None if kind == NotifierType::Alertmanager => {
            Some(sitewatch_notify::DEFAULT_ALERTMANAGER_REPEAT)
        }
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

/// The environment, for a service's fields: what it reads is kept among the notifier's
/// secrets.
struct ServiceSecrets<'a, 'e> {
    env: Env<'e>,
    secrets: &'a mut Vec<Secret<String>>,
}

impl sitewatch_notify::Secrets for ServiceSecrets<'_, '_> {
    fn read(&mut self, field: &str, var: &str) -> Result<String, FieldError> {
        let v = env_secret(self.env, field, var)?;
        self.secrets.push(Secret::new(v.clone()));
        Ok(v)
    }

    fn expand(&mut self, field: &str, text: &str) -> Result<String, FieldError> {
        let expanded = super::expand::expand(text, field, self.env)?;
        self.secrets.extend(expanded.secrets);
        Ok(expanded.value)
    }
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
