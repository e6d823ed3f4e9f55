//! What a site probes: its `kind` (`http`, the default; `tcp`; `dns`) and each kind's own
//! settings, checked here with the rest of the site. The prober has a module per kind that
//! runs it; everything after the probe (stats, alerts, the store, the outputs) sees only
//! measurements, whatever the kind.

use super::FieldError;
use super::raw::RawSite;
use super::values;
use std::net::SocketAddr;
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
        }
    }
}

/// The kinds, as `kind` takes them.
pub const KINDS: [&str; 6] = ["http", "tcp", "dns", "websocket", "grpc", "icmp"];

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
pub(crate) fn resolve(raw: &RawSite) -> Result<Option<(Kind, String, Url)>, FieldError> {
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
    let http_fields = [
        ("url", raw.url.is_some()),
        ("method", raw.method.is_some()),
        ("headers", !raw.headers.is_empty()),
        ("expect_status", raw.expect_status.is_some()),
        ("keep_alive", raw.keep_alive.is_some()),
        ("max_body", raw.max_body.is_some()),
        ("body", raw.body.is_some()),
        ("content_type", raw.content_type.is_some()),
        ("follow_redirects", raw.follow_redirects.is_some()),
        ("checks", !raw.checks.is_empty()),
    ];
    let answer_fields = [
        ("send", raw.send.is_some()),
        ("expect", raw.expect.is_some()),
        ("expect_regex", raw.expect_regex.is_some()),
    ];
    let tls_field = [("tls", raw.tls.is_some())];
    let trust_fields = [
        ("tls_insecure", raw.tls_insecure.is_some()),
        ("tls_ca", raw.tls_ca.is_some()),
    ];
    let target_field = [("target", raw.target.is_some())];
    let service_field = [("service", raw.service.is_some())];
    let count_field = [("count", raw.count.is_some())];
    let http_but_url = &http_fields[1..];
    let dns_fields = [
        ("record_type", raw.record_type.is_some()),
        ("resolver", raw.resolver.is_some()),
        ("expect_rcode", raw.expect_rcode.is_some()),
        ("expect_answers", raw.expect_answers.is_some()),
        ("answers_match", raw.answers_match.is_some()),
    ];
    let refuse = |fields: &[(&str, bool)]| -> Result<(), FieldError> {
        match fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => {
                Err((*field, format!("a site of kind {kind} takes no {field}")).into())
            }
            None => Ok(()),
        }
    };
    match kind {
        "http" => {
            for group in [
                &answer_fields[..],
                &tls_field,
                &dns_fields,
                &target_field,
                &service_field,
            ] {
                refuse(group)?;
            }
            Ok(None)
        }
        "tcp" => {
            for group in [&http_fields[..], &dns_fields, &service_field, &count_field] {
                refuse(group)?;
            }
            tcp(raw).map(Some)
        }
        "websocket" => {
            for group in [
                http_but_url,
                &dns_fields,
                &tls_field,
                &target_field,
                &service_field,
            ] {
                refuse(group)?;
            }
            websocket(raw).map(Some)
        }
        "grpc" => {
            for group in [&http_fields[..], &dns_fields, &answer_fields, &count_field] {
                refuse(group)?;
            }
            grpc(raw).map(Some)
        }
        "icmp" => {
            for group in [
                &http_fields[..],
                &dns_fields,
                &answer_fields,
                &tls_field,
                &trust_fields,
                &service_field,
            ] {
                refuse(group)?;
            }
            icmp(raw).map(Some)
        }
        _ => {
            for group in [
                &http_fields[..],
                &answer_fields,
                &tls_field,
                &trust_fields,
                &service_field,
            ] {
                refuse(group)?;
            }
            dns(raw).map(Some)
        }
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

fn icmp(raw: &RawSite) -> Result<(Kind, String, Url), FieldError> {
    let host = target(raw, "\"db.example.com\" or \"192.0.2.1\"")?;
    let host = host.trim_matches(['[', ']']).to_owned();
    let valid = host.parse::<std::net::IpAddr>().is_ok()
        || (host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
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
    if name.is_empty()
        || name.len() > 253
        || !name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
        })
    {
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
