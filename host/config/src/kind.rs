//! What a site probes: its `kind` (`http`, the default; `tcp`; `dns`) and each kind's own
//! settings, checked here with the rest of the site. The prober has a module per kind that
//! runs it; everything after the probe (stats, alerts, the store, the outputs) sees only
//! measurements, whatever the kind.

use super::FieldError;
use super::raw::RawSite;
use super::secret::{Env, Secret, env_secret};
use super::values;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

/// A site's kind with its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Kind {
    /// An `http://` or `https://` URL: one request per probe.
    #[default]
    Http,
    /// A TCP connection to `host:port`, optionally TLS, optionally a line sent and the answer
    /// checked.
    Tcp(Tcp),
    /// A DNS query.
    Dns(Dns),
    /// A WebSocket upgrade (`ws://`, `wss://`), optionally a message sent and the answer
    /// checked.
    WebSocket(WebSocket),
    /// gRPC's standard health check, `grpc.health.v1.Health/Check`.
    Grpc(Grpc),
    /// ICMP echo requests.
    Icmp(Icmp),
    /// A heartbeat: not probed; the watched job pings sitewatch's server.
    Push(Push),
    /// A scenario: a WebAssembly plugin that sends its requests through the prober.
    Script(Script),
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp(_) => "tcp",
            Self::Dns(_) => "dns",
            Self::WebSocket(_) => "websocket",
            Self::Grpc(_) => "grpc",
            Self::Icmp(_) => "icmp",
            Self::Push(_) => "push",
            Self::Script(_) => "script",
        }
    }
}

/// The kinds, as `kind` takes them.
pub const KINDS: [&str; 8] = [
    "http",
    "tcp",
    "dns",
    "websocket",
    "grpc",
    "icmp",
    "push",
    "script",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Tcp {
    pub host: String,
    pub port: u16,
    /// TLS right after the connection (`tls: true`), with the certificate checks and expiry
    /// alerts of HTTPS.
    pub tls: bool,
    /// Sent once connected (and after TLS), as written (`\r\n` as the JSON string has it).
    pub send: Option<String>,
    /// What the server's first answer must hold; without it, a connection (and handshake) is
    /// enough.
    pub expect: Option<Expect>,
}

/// What an answer must hold: a substring, or a match of a regular expression.
#[derive(Debug, Clone)]
pub enum Expect {
    Contains(String),
    Regex(regex::Regex),
}

impl PartialEq for Expect {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Contains(a), Self::Contains(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Expect {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Self::Contains(s) => text.contains(s.as_str()),
            Self::Regex(r) => r.is_match(text),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Contains(s) => write!(f, "{s:?}"),
            Self::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebSocket {
    /// The `ws://` or `wss://` URL upgraded.
    pub url: Url,
    pub host: String,
    pub port: u16,
    /// `wss://`: TLS (its chain recorded, as for HTTPS).
    pub tls: bool,
    /// A text message sent once upgraded.
    pub send: Option<String>,
    /// What the first message received must hold; without it, the upgrade is enough.
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grpc {
    pub host: String,
    pub port: u16,
    /// TLS (HTTP/2 by ALPN), its chain recorded as for HTTPS; plaintext HTTP/2 otherwise.
    pub tls: bool,
    /// The service asked about; empty: the server as a whole.
    pub service: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Icmp {
    /// A name or an address.
    pub host: String,
    /// Echo requests per probe.
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The token in the job's ping URL (`/push/<token>`), from the environment.
    pub token: Secret<String>,
    /// When the job is due.
    pub schedule: PushSchedule,
    /// How late a ping may be before the site is down.
    pub grace: Duration,
}

/// When a push site's job is due: every `period`, or at each time of a cron schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum PushSchedule {
    Period(Duration),
    Cron(crate::maintenance::Window),
}

/// A `script` site: the scenario plugin, what its requests may reach and what they may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The scenario plugin, its config (JSON text, `${NAME}` placeholders as written, the
    /// site's `url` as `url` when the config has none) and its limits.
    pub plugin: crate::PluginUse,
    /// Hosts its requests may reach, lower case: a name, an address, or `*.example.com` for
    /// the names under a domain.
    pub allow: Vec<String>,
    /// The most requests one run may send.
    pub max_requests: u32,
    /// The secrets its requests may name as `${NAME}`, by name.
    pub secrets: Vec<(String, Secret<String>)>,
}

impl Script {
    /// Whether a request may go to `host`.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).trim_end_matches('.');
        self.allow.iter().any(|a| match a.strip_prefix("*.") {
            Some(domain) => host.len().checked_sub(domain.len() + 1).is_some_and(|cut| {
                host.is_char_boundary(cut)
                    && host[cut..].eq_ignore_ascii_case(&format!(".{domain}"))
            }),
            None => host.eq_ignore_ascii_case(a),
        })
    }
}

/// A script site's request budget when it sets none.
pub const DEFAULT_MAX_REQUESTS: u32 = 20;
/// The largest request budget a script site may set.
pub const MAX_MAX_REQUESTS: u32 = 1000;

/// A push site's grace when it sets none.
pub const DEFAULT_PUSH_GRACE: Duration = Duration::from_secs(60);
/// The fewest characters of a push token (it is the job's only credential).
pub const MIN_PUSH_TOKEN: usize = 16;

/// The most echo requests a probe sends.
pub const MAX_ICMP_COUNT: u32 = 20;

/// The record types a `dns` site may query.
pub const RECORD_TYPES: [&str; 9] = ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"];

/// The response codes a `dns` site may expect.
pub const RCODES: [&str; 6] = [
    "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    /// The name queried.
    pub name: String,
    /// One of [`RECORD_TYPES`].
    pub record_type: String,
    /// The resolver asked (UDP, then TCP when the answer is truncated); `None`: the system's
    /// (the first `nameserver` of `/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// The response code that is up (`NOERROR` by default).
    pub expect_rcode: String,
    /// Answers that must be there, in their presentation form (`192.0.2.1`, `10 mail.example.`).
    pub expect_answers: Vec<String>,
    /// `expect_answers` is the whole answer set (`exact`) or a part of it (`contains`, the
    /// default).
    pub exact: bool,
}

/// A site's kind from its raw form, with the URL outputs show and the one it stands for.
/// HTTP's own fields on another kind, and another kind's on HTTP, are refused by name.
pub(crate) fn resolve(
    raw: &RawSite,
    env: Env<'_>,
    plugin_limits: crate::PluginLimits,
) -> Result<Option<(Kind, String, Url)>, FieldError> {
    let kind = raw.kind.as_deref().map(str::trim).unwrap_or("http");
    if !KINDS.contains(&kind) {
        return Err((
            "kind",
            format!(
                "{} is not a kind of site; one of {}",
                values::quote(kind),
                KINDS.join(", ")
            ),
        )
            .into());
    }
    // Each field and the kinds that take it: any other kind refuses it by name.
    const HTTP: &[&str] = &["http"];
    const REQUESTS: &[&str] = &["http", "script"];
    const ANSWERS: &[&str] = &["tcp", "websocket"];
    const TLS_TRUST: &[&str] = &["http", "tcp", "websocket", "grpc", "script"];
    const PUSH: &[&str] = &["push"];
    const DNS: &[&str] = &["dns"];
    const SCRIPT: &[&str] = &["script"];
    let fields: [(&str, bool, &[&str]); 36] = [
        ("url", raw.url.is_some(), &["http", "websocket", "script"]),
        ("method", raw.method.is_some(), HTTP),
        ("headers", !raw.headers.is_empty(), HTTP),
        ("expect_status", raw.expect_status.is_some(), HTTP),
        ("keep_alive", raw.keep_alive.is_some(), REQUESTS),
        ("max_body", raw.max_body.is_some(), REQUESTS),
        ("body", raw.body.is_some(), HTTP),
        ("content_type", raw.content_type.is_some(), HTTP),
        ("follow_redirects", raw.follow_redirects.is_some(), REQUESTS),
        ("plugin", raw.plugin.is_some(), SCRIPT),
        ("config", raw.config.is_some(), SCRIPT),
        ("allow", raw.allow.is_some(), SCRIPT),
        ("max_requests", raw.max_requests.is_some(), SCRIPT),
        ("secrets", raw.secrets.is_some(), SCRIPT),
        ("memory_limit", raw.memory_limit.is_some(), SCRIPT),
        ("time_limit", raw.time_limit.is_some(), SCRIPT),
        (
            "checks",
            !raw.checks.is_empty(),
            &["http", "tcp", "dns", "websocket"],
        ),
        (
            "target",
            raw.target.is_some(),
            &["tcp", "dns", "grpc", "icmp"],
        ),
        ("send", raw.send.is_some(), ANSWERS),
        ("expect", raw.expect.is_some(), ANSWERS),
        ("expect_regex", raw.expect_regex.is_some(), ANSWERS),
        ("tls", raw.tls.is_some(), &["tcp", "grpc"]),
        ("tls_insecure", raw.tls_insecure.is_some(), TLS_TRUST),
        ("tls_ca", raw.tls_ca.is_some(), TLS_TRUST),
        ("record_type", raw.record_type.is_some(), DNS),
        ("resolver", raw.resolver.is_some(), DNS),
        ("expect_rcode", raw.expect_rcode.is_some(), DNS),
        ("expect_answers", raw.expect_answers.is_some(), DNS),
        ("answers_match", raw.answers_match.is_some(), DNS),
        ("service", raw.service.is_some(), &["grpc"]),
        ("count", raw.count.is_some(), &["icmp"]),
        ("token_env", raw.token_env.is_some(), PUSH),
        ("period", raw.period.is_some(), PUSH),
        ("cron", raw.cron.is_some(), PUSH),
        ("tz", raw.tz.is_some(), PUSH),
        ("grace", raw.grace.is_some(), PUSH),
    ];
    if let Some((field, ..)) = fields
        .iter()
        .find(|(_, set, takes)| *set && !takes.contains(&kind))
    {
        return Err((*field, format!("a site of kind {kind} takes no {field}")).into());
    }
    match kind {
        "http" => Ok(None),
        "tcp" => tcp(raw).map(Some),
        "websocket" => websocket(raw).map(Some),
        "grpc" => grpc(raw).map(Some),
        "push" => push(raw, env).map(Some),
        "icmp" => icmp(raw).map(Some),
        "script" => script(raw, env, plugin_limits).map(Some),
        _ => dns(raw).map(Some),
    }
}

/// `expect` or `expect_regex`, when either is given.
fn expect(raw: &RawSite) -> Result<Option<Expect>, FieldError> {
    Ok(match (&raw.expect, &raw.expect_regex) {
        (Some(_), Some(_)) => {
            return Err(("expect_regex", "give expect or expect_regex, not both").into());
        }
        (Some(s), None) if s.is_empty() => {
            return Err(("expect", "must not be empty").into());
        }
        (Some(s), None) => Some(Expect::Contains(s.clone())),
        (None, Some(r)) => Some(Expect::Regex(regex::Regex::new(r).map_err(|e| {
            FieldError::from((
                "expect_regex",
                format!("{} is not a regular expression: {e}", values::quote(r)),
            ))
        })?)),
        (None, None) => None,
    })
}

/// `target` as `host:port`, with the URL it is shown as (`<scheme>://host:port`).
fn host_port(raw: &RawSite, scheme: &str, example: &str) -> Result<(String, u16, Url), FieldError> {
    let text = target(raw, example)?;
    let bad = || {
        FieldError::from((
            "target",
            format!(
                "{} is not host:port (an IPv6 address in brackets: [::1]:25)",
                values::quote(&text)
            ),
        ))
    };
    let url = Url::parse(&format!("{scheme}://{text}")).map_err(|_| bad())?;
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Err(bad());
    };
    if !url.username().is_empty() || url.password().is_some() || !matches!(url.path(), "" | "/") {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port, url))
}

fn websocket(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let written = raw.url.as_deref().map(str::trim).ok_or_else(|| {
        FieldError::from((
            "url",
            "a site of kind websocket needs url, e.g. \"wss://example.com/socket\"",
        ))
    })?;
    let url = Url::parse(written)
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .ok_or_else(|| {
            FieldError::from((
                "url",
                format!("{} is not a ws:// or wss:// URL", values::quote(written)),
            ))
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(("url", "must not hold a user or password").into());
    }
    let tls = url.scheme() == "wss";
    let ws = WebSocket {
        host: url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned(),
        port: url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 }),
        tls,
        send: raw.send.clone(),
        expect: expect(raw)?,
        url: url.clone(),
    };
    Ok((Kind::WebSocket(ws), url.as_str().to_owned(), url))
}

fn push(raw: &RawSite, env: Env<'_>) -> Result<(Kind, String, Url), FieldError> {
    let name = raw.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(("name", "a site of kind push needs a name").into());
    }
    let var = raw.token_env.as_deref().ok_or_else(|| {
        FieldError::from((
            "token_env",
            "a site of kind push needs token_env, the environment variable holding its ping token (`sitewatch push-token` makes one)",
        ))
    })?;
    let token = env_secret(env, "token_env", var)?;
    if token.len() < MIN_PUSH_TOKEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err((
            "token_env",
            format!(
                "the token in {var} must be at least {MIN_PUSH_TOKEN} letters, digits, - or _ (`sitewatch push-token` makes one)"
            ),
        )
            .into());
    }
    let positive = |field: &str, d: &super::raw::RawDuration| {
        values::positive_duration(d).map_err(|m| FieldError::from((field, m)))
    };
    let schedule = match (&raw.period, &raw.cron) {
        (Some(_), Some(_)) => return Err(("cron", "give period or cron, not both").into()),
        (Some(p), None) => PushSchedule::Period(positive("period", p)?),
        (None, Some(c)) => PushSchedule::Cron(
            crate::maintenance::Window::recurring(
                None,
                c,
                Duration::from_secs(60),
                raw.tz.as_deref(),
            )
            .map_err(|(field, m)| FieldError::from((field, m)))?,
        ),
        (None, None) => {
            return Err((
                "period",
                "a site of kind push needs period (e.g. \"1h\") or cron (e.g. \"0 3 * * *\")",
            )
                .into());
        }
    };
    if raw.tz.is_some() && raw.cron.is_none() {
        return Err(("tz", "goes with cron").into());
    }
    let grace = match &raw.grace {
        Some(g) => positive("grace", g)?,
        None => DEFAULT_PUSH_GRACE,
    };
    let shown = format!(
        "push:{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    let url = Url::parse(&shown).map_err(|e| FieldError::from(("name", e.to_string())))?;
    Ok((
        Kind::Push(Push {
            token: Secret::new(token),
            schedule,
            grace,
        }),
        shown,
        url,
    ))
}

fn script(
    raw: &RawSite,
    env: Env<'_>,
    plugin_limits: crate::PluginLimits,
) -> Result<(Kind, String, Url), FieldError> {
    let name = raw.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(("name", "a site of kind script needs a name").into());
    }
    let plugin = raw.plugin.clone().ok_or_else(|| {
        FieldError::from((
            "plugin",
            "a site of kind script needs plugin, the scenario plugin (its <name>.wasm in plugins.dir)",
        ))
    })?;
    // The site's own URL: where the scenario goes, the host it may reach by default, and
    // the config's `url` when it has none. Plain: a secret goes in through a placeholder.
    let url = match raw.url.as_deref().map(str::trim) {
        None => None,
        Some(u) => Some(
            Url::parse(u)
                .ok()
                .filter(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some_and(|h| !h.is_empty())
                        && u.username().is_empty()
                        && u.password().is_none()
                        && !u.as_str().contains("${")
                })
                .ok_or_else(|| {
                    FieldError::from((
                        "url",
                        format!(
                            "{} is not an http:// or https:// URL without credentials (put a secret in the config as ${{NAME}})",
                            values::quote(u)
                        ),
                    ))
                })?,
        ),
    };
    let mut config = match &raw.config {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(("config", "must be a JSON object").into()),
    };
    // As written (a parsed URL gains a `/` that `{url}/login` would double).
    if let (Some(_), Some(written)) = (&url, raw.url.as_deref()) {
        config
            .entry("url")
            .or_insert_with(|| serde_json::Value::from(written.trim()));
    }
    let config = serde_json::Value::Object(config);
    let plugin = super::resolve_plugin_use(
        &super::raw::RawPluginUse {
            plugin,
            config: Some(config.clone()),
            memory_limit: raw.memory_limit.clone(),
            time_limit: raw.time_limit.clone(),
        },
        plugin_limits,
    )?;
    let allow: Vec<String> = match (&raw.allow, &url) {
        (Some(list), _) if list.is_empty() => {
            return Err(("allow", "list at least one host the scenario may reach").into());
        }
        (Some(list), _) => list
            .iter()
            .enumerate()
            .map(|(j, h)| allowed_host(h).map_err(|m| FieldError::from((format!("allow[{j}]"), m))))
            .collect::<Result<_, _>>()?,
        (None, Some(u)) => vec![
            u.host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_ascii_lowercase(),
        ],
        (None, None) => {
            return Err((
                "allow",
                "a site of kind script needs allow (the hosts its requests may reach) or url (whose host it may reach)",
            )
                .into());
        }
    };
    let max_requests = raw.max_requests.unwrap_or(DEFAULT_MAX_REQUESTS);
    if !(1..=MAX_MAX_REQUESTS).contains(&max_requests) {
        return Err((
            "max_requests",
            format!("must be from 1 to {MAX_MAX_REQUESTS}, got {max_requests}"),
        )
            .into());
    }
    // The secrets: each `${NAME}` of its config, and those it lists.
    let mut names: Vec<(String, String)> = super::expand::placeholders(&config.to_string())
        .into_iter()
        .map(|n| (n, "config".to_owned()))
        .collect();
    for (j, n) in raw.secrets.iter().flatten().enumerate() {
        let n = n.trim();
        if !super::expand::is_variable_name(n) {
            return Err((
                format!("secrets[{j}]"),
                format!(
                    "{} is not the name of an environment variable (letters, digits and _)",
                    values::quote(n)
                ),
            )
                .into());
        }
        if !names.iter().any(|(have, _)| have == n) {
            names.push((n.to_owned(), format!("secrets[{j}]")));
        }
    }
    let secrets = names
        .into_iter()
        .map(|(n, field)| Ok((n.clone(), Secret::new(env_secret(env, &field, &n)?))))
        .collect::<Result<Vec<_>, FieldError>>()?;
    let shown = format!(
        "script:{}",
        percent_encoding::utf8_percent_encode(name, values::UNRESERVED)
    );
    let shown_url = Url::parse(&shown).map_err(|e| FieldError::from(("name", e.to_string())))?;
    Ok((
        Kind::Script(Script {
            plugin,
            allow,
            max_requests,
            secrets,
        }),
        shown,
        shown_url,
    ))
}

/// One entry of a script site's `allow`: a host name, an address, or `*.` and a domain.
fn allowed_host(text: &str) -> Result<String, String> {
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let bare = name.trim_matches(['[', ']']);
    let valid = bare.parse::<std::net::IpAddr>().is_ok() && !host.starts_with("*.")
        || domain_name(name, b"-_");
    if !valid {
        return Err(format!(
            "{} is not a host: a name (api.example.com), an address (127.0.0.1) or *.example.com, without scheme or port",
            values::quote(text)
        ));
    }
    Ok(if bare.parse::<std::net::IpAddr>().is_ok() {
        bare.to_owned()
    } else {
        host
    })
}

/// Whether `name` is a domain name: at most 253 bytes, labels of 1 to 63 letters, digits and the
/// bytes in `also`.
fn domain_name(name: &str, also: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || also.contains(&b))
        })
}

fn icmp(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let host = target(raw, "\"db.example.com\" or \"192.0.2.1\"")?;
    let host = host.trim_matches(['[', ']']).to_owned();
    let valid = host.parse::<std::net::IpAddr>().is_ok() || domain_name(&host, b"-");
    if !valid {
        return Err((
            "target",
            format!("{} is not a host name or an address", values::quote(&host)),
        )
            .into());
    }
    let count = raw.count.unwrap_or(3);
    if !(1..=MAX_ICMP_COUNT).contains(&count) {
        return Err((
            "count",
            format!("must be from 1 to {MAX_ICMP_COUNT}, got {count}"),
        )
            .into());
    }
    let shown = if host.contains(':') {
        format!("icmp://[{host}]")
    } else {
        format!("icmp://{host}")
    };
    let url = Url::parse(&shown).map_err(|e| FieldError::from(("target", e.to_string())))?;
    Ok((Kind::Icmp(Icmp { host, count }), shown, url))
}

fn grpc(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let (host, port, url) = host_port(raw, "grpc", "\"api.example.com:50051\"")?;
    let service = raw.service.clone().unwrap_or_default().trim().to_owned();
    let shown = if service.is_empty() {
        format!("grpc://{}:{port}", url.host_str().unwrap_or_default())
    } else {
        format!(
            "grpc://{}:{port}/{service}",
            url.host_str().unwrap_or_default()
        )
    };
    let grpc = Grpc {
        host,
        port,
        tls: raw.tls.unwrap_or(false),
        service,
    };
    Ok((Kind::Grpc(grpc), shown, url))
}

fn target(raw: &RawSite, example: &str) -> Result<String, FieldError> {
    match raw.target.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err((
            "target",
            format!(
                "a site of kind {} needs target, e.g. {example}",
                raw.kind.as_deref().unwrap_or_default().trim()
            ),
        )
            .into()),
    }
}

fn tcp(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let (host, port, url) = host_port(raw, "tcp", "\"db.example.com:5432\"")?;
    let shown = format!("tcp://{}:{port}", url.host_str().unwrap_or_default());
    let tcp = Tcp {
        host,
        port,
        tls: raw.tls.unwrap_or(false),
        send: raw.send.clone(),
        expect: expect(raw)?,
    };
    Ok((Kind::Tcp(tcp), shown, url))
}

fn dns(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let name = target(raw, "\"example.com\"")?;
    let name = name.trim_end_matches('.').to_owned();
    if !domain_name(&name, b"-_*") {
        return Err((
            "target",
            format!("{} is not a domain name", values::quote(&name)),
        )
            .into());
    }
    let record_type = raw
        .record_type
        .as_deref()
        .map(|t| t.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "A".into());
    if !RECORD_TYPES.contains(&record_type.as_str()) {
        return Err((
            "record_type",
            format!(
                "{} is not a record type sitewatch queries; one of {}",
                values::quote(&record_type),
                RECORD_TYPES.join(", ")
            ),
        )
            .into());
    }
    let resolver = match raw.resolver.as_deref().map(str::trim) {
        None => None,
        Some(r) => Some(
            r.parse::<SocketAddr>()
                .or_else(|_| r.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    FieldError::from((
                        "resolver",
                        format!(
                            "{} is not an address: an IP, with a port if not 53 (127.0.0.1:5353, [::1]:53)",
                            values::quote(r)
                        ),
                    ))
                })?,
        ),
    };
    let expect_rcode = raw
        .expect_rcode
        .as_deref()
        .map(|r| r.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "NOERROR".into());
    if !RCODES.contains(&expect_rcode.as_str()) {
        return Err((
            "expect_rcode",
            format!(
                "{} is not a response code; one of {}",
                values::quote(&expect_rcode),
                RCODES.join(", ")
            ),
        )
            .into());
    }
    let expect_answers: Vec<String> = raw
        .expect_answers
        .iter()
        .flatten()
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if raw.expect_answers.as_ref().is_some_and(Vec::is_empty) {
        return Err((
            "expect_answers",
            "list at least one answer, or leave it out",
        )
            .into());
    }
    let exact = match raw.answers_match.as_deref().map(str::trim) {
        None | Some("contains") => false,
        Some("exact") => true,
        Some(other) => {
            return Err((
                "answers_match",
                format!("{} is not contains or exact", values::quote(other)),
            )
                .into());
        }
    };
    if raw.answers_match.is_some() && expect_answers.is_empty() {
        return Err(("answers_match", "goes with expect_answers").into());
    }
    let server = resolver.map(|r| r.to_string()).unwrap_or_default();
    let shown = format!("dns://{server}/{name}?type={record_type}");
    let url = Url::parse(&shown).map_err(|e| FieldError::from(("target", e.to_string())))?;
    Ok((
        Kind::Dns(Dns {
            name,
            record_type,
            resolver,
            expect_rcode,
            expect_answers,
            exact,
        }),
        shown,
        url,
    ))
}
