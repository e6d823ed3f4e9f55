//! Gatus (`config.yaml`, documented at gatus.io and in TwiN/gatus' README): `endpoints` with a
//! `url` whose scheme says the kind (http, https, tcp, tls, icmp, ws, wss, grpc; `dns` with a
//! resolver URL), `interval`, `method`, `headers`, `body`, `client.timeout` and
//! `client.insecure`, `conditions` (`[STATUS]`, `[CERTIFICATE_EXPIRATION]`, `[DNS_RCODE]`,
//! `[CONNECTED]` map; the rest is listed), `alerts` by provider type; `alerting` providers.

use super::{Imported, email_fields, go_duration, ntfy_url, status_range};
use serde_json::{Map, Value, json};

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Imports a Gatus config's text.
pub fn import(text: &str) -> Result<Imported, String> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut out = Imported::default();
    let endpoints = doc
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if endpoints.is_empty() {
        return Err("no endpoints: a Gatus config lists them under `endpoints`".into());
    }
    // Which endpoints use each alerting provider.
    let mut routes: Vec<(String, Vec<String>)> = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        let Some(name) = s(e, "name") else {
            out.unmapped
                .push(format!("endpoints[{i}]: no name; left out"));
            continue;
        };
        let label = format!("endpoint \"{name}\"");
        if e.get("enabled") == Some(&Value::Bool(false)) {
            out.unmapped
                .push(format!("{label}: enabled: false; imported paused"));
        }
        let Some(site) = site(e, name, &label, &mut out) else {
            continue;
        };
        out.sites.push(site);
        for a in e
            .get("alerts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = s(a, "type") {
                match routes.iter_mut().find(|(p, _)| p == t) {
                    Some((_, sites)) => sites.push(name.to_owned()),
                    None => routes.push((t.to_owned(), vec![name.to_owned()])),
                }
            }
        }
    }
    let alerting = doc.get("alerting").cloned().unwrap_or(Value::Null);
    if let Some(providers) = alerting.as_object() {
        for (kind, cfg) in providers {
            let used = routes
                .iter()
                .find(|(p, _)| p == kind)
                .map(|(_, s)| s.clone());
            let Some(sites) = used else {
                out.unmapped.push(format!(
                    "alerting.{kind}: no endpoint alerts through it; left out"
                ));
                continue;
            };
            if let Some(mut n) = notifier(kind, cfg, &mut out) {
                n.insert("sites".into(), json!(sites));
                out.notify.push(Value::Object(n));
            }
        }
    }
    for (p, _) in &routes {
        if !alerting.get(p).is_some_and(Value::is_object) {
            out.unmapped.push(format!(
                "alerts of type {p}: no alerting.{p} provider is configured"
            ));
        }
    }
    Ok(out)
}

fn site(e: &Value, name: &str, label: &str, out: &mut Imported) -> Option<Value> {
    let mut site = Map::new();
    site.insert("name".into(), json!(name));
    let url = s(e, "url").unwrap_or_default().trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some(dns) = e.get("dns") {
        site.insert("kind".into(), json!("dns"));
        site.insert(
            "target".into(),
            json!(s(dns, "query-name").unwrap_or_default()),
        );
        if let Some(t) = s(dns, "query-type") {
            site.insert("record_type".into(), json!(t));
        }
        let resolver = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:53")
        };
        site.insert("resolver".into(), json!(resolver));
    } else {
        match scheme {
            "http" | "https" => {
                site.insert("url".into(), json!(url));
            }
            "tcp" | "tls" => {
                site.insert("kind".into(), json!("tcp"));
                site.insert("target".into(), json!(host_port));
                if scheme == "tls" {
                    site.insert("tls".into(), json!(true));
                }
            }
            "icmp" => {
                site.insert("kind".into(), json!("icmp"));
                site.insert("target".into(), json!(host_port));
            }
            "ws" | "wss" => {
                site.insert("kind".into(), json!("websocket"));
                site.insert("url".into(), json!(url));
            }
            "grpc" | "grpcs" => {
                site.insert("kind".into(), json!("grpc"));
                site.insert("target".into(), json!(host_port));
                if scheme == "grpcs" {
                    site.insert("tls".into(), json!(true));
                }
            }
            other => {
                out.unmapped.push(format!(
                    "{label}: url scheme {other:?} (udp, ssh, starttls, sctp have no sitewatch kind); left out"
                ));
                return None;
            }
        }
    }
    let http = !site.contains_key("kind");
    if let Some(group) = s(e, "group") {
        site.insert("tags".into(), json!([group]));
    }
    match s(e, "interval") {
        Some(t) => match go_duration(t) {
            Some(d) => {
                site.insert("interval".into(), json!(d));
            }
            None => out
                .unmapped
                .push(format!("{label}: interval {t:?} is not a duration")),
        },
        // Gatus' default.
        None => {
            site.insert("interval".into(), json!("1m"));
        }
    }
    if let Some(client) = e.get("client") {
        if let Some(t) = s(client, "timeout").and_then(go_duration) {
            site.insert("timeout".into(), json!(t));
        }
        if client.get("insecure") == Some(&Value::Bool(true)) {
            site.insert("tls_insecure".into(), json!(true));
        }
    }
    if http {
        if let Some(m) = s(e, "method") {
            site.insert("method".into(), json!(m.to_ascii_uppercase()));
        }
        if let Some(h) = e.get("headers").and_then(Value::as_object) {
            site.insert("headers".into(), Value::Object(h.clone()));
        }
        if let Some(b) = s(e, "body") {
            site.insert("body".into(), json!(b));
        }
    } else {
        for field in ["method", "headers", "body"] {
            if e.get(field).is_some() {
                out.unmapped.push(format!(
                    "{label}: {field} (not taken by a {} site)",
                    site["kind"]
                ));
            }
        }
    }
    let mut statuses = Vec::new();
    for c in e
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(c) = c.as_str() else { continue };
        if !condition(c, &mut site, &mut statuses) {
            out.unmapped.push(format!(
                "{label}: condition {c:?} (a check plugin can test it: docs/PLUGINS.md)"
            ));
        }
    }
    if http && !statuses.is_empty() {
        site.insert("expect_status".into(), Value::Array(statuses));
    }
    if e.get("enabled") == Some(&Value::Bool(false)) {
        site.insert("paused".into(), json!(true));
    }
    Some(Value::Object(site))
}

/// Maps one condition onto the site; false when it does not map.
fn condition(c: &str, site: &mut Map<String, Value>, statuses: &mut Vec<Value>) -> bool {
    let mut parts = c.trim().splitn(3, char::is_whitespace);
    let (Some(lhs), Some(op), Some(rhs)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let rhs = rhs.trim();
    match (lhs, op) {
        ("[STATUS]", "==") => {
            if let Some(list) = rhs.strip_prefix("any(").and_then(|r| r.strip_suffix(')')) {
                for code in list.split(',') {
                    match code.trim().parse::<u16>() {
                        Ok(code) => statuses.push(json!(code)),
                        Err(_) => return false,
                    }
                }
                return true;
            }
            rhs.parse::<u16>().map(|c| statuses.push(json!(c))).is_ok()
        }
        ("[STATUS]", "<") | ("[STATUS]", "<=") => {
            let Ok(n) = rhs.parse::<u16>() else {
                return false;
            };
            let top = if op == "<" { n.saturating_sub(1) } else { n };
            match status_range(100, top).or_else(|| status_range(200, top)) {
                Some(r) if top >= 200 => {
                    // Below 200 nothing is an answer a site gives on purpose.
                    statuses.extend(r.into_iter().filter(|v| v != "1xx"));
                    true
                }
                _ => false,
            }
        }
        ("[CERTIFICATE_EXPIRATION]", ">") => match go_duration(rhs) {
            Some(d) => {
                let alerting = site
                    .entry("alerting")
                    .or_insert_with(|| Value::Object(Map::new()));
                alerting["cert_warning"] = json!(d);
                true
            }
            None => false,
        },
        ("[CONNECTED]", "==") => rhs == "true",
        ("[DNS_RCODE]", "==") => {
            site.insert("expect_rcode".into(), json!(rhs.to_ascii_uppercase()));
            true
        }
        _ => false,
    }
}

/// Puts a secret of provider `kind` (its `field`) in the environment variable the notifier's
/// `our` field names.
fn secret(
    n: &mut Map<String, Value>,
    out: &mut Imported,
    kind: &str,
    our: &str,
    field: &str,
    var: &str,
) {
    let v = out.secret("GATUS", kind, var, format!("alerting.{kind}.{field}"));
    n.insert(our.into(), json!(v));
}

/// A notifier from an alerting provider, or `None` (listed) when its type does not map.
fn notifier(kind: &str, cfg: &Value, out: &mut Imported) -> Option<Map<String, Value>> {
    let mut n = Map::new();
    n.insert("name".into(), json!(kind));
    let typ = match kind {
        "slack" | "discord" | "mattermost" => {
            secret(&mut n, out, kind, "url_env", "webhook-url", "URL");
            kind
        }
        "teams" | "teams-workflows" => {
            secret(&mut n, out, kind, "url_env", "webhook-url", "URL");
            "teams"
        }
        "pagerduty" => {
            secret(
                &mut n,
                out,
                kind,
                "routing_key_env",
                "integration-key",
                "KEY",
            );
            kind
        }
        "opsgenie" => {
            secret(&mut n, out, kind, "api_key_env", "api-key", "KEY");
            kind
        }
        "telegram" => {
            secret(&mut n, out, kind, "bot_token_env", "token", "TOKEN");
            n.insert("chat_id".into(), json!(s(cfg, "id").unwrap_or_default()));
            kind
        }
        "ntfy" => {
            n.insert("url".into(), ntfy_url(s(cfg, "url"), s(cfg, "topic")));
            if cfg.get("token").is_some() {
                secret(&mut n, out, kind, "token_env", "token", "TOKEN");
            }
            kind
        }
        "gotify" => {
            n.insert(
                "url".into(),
                json!(s(cfg, "server-url").unwrap_or_default()),
            );
            secret(&mut n, out, kind, "token_env", "token", "TOKEN");
            kind
        }
        "email" => {
            let host = s(cfg, "host").unwrap_or_default();
            let port = cfg.get("port").and_then(Value::as_u64).unwrap_or(587);
            email_fields(
                &mut n,
                format!("smtp://{host}:{port}"),
                s(cfg, "from"),
                s(cfg, "to"),
            );
            if cfg.get("username").is_some() {
                secret(&mut n, out, kind, "username_env", "username", "USER");
            }
            if cfg.get("password").is_some() {
                secret(&mut n, out, kind, "password_env", "password", "PASSWORD");
            }
            "email"
        }
        "custom" => {
            n.insert("url".into(), json!(s(cfg, "url").unwrap_or_default()));
            if let Some(m) = s(cfg, "method") {
                n.insert("method".into(), json!(m.to_ascii_uppercase()));
            }
            if cfg.get("body").is_some() {
                out.unmapped.push(
                    "alerting.custom.body: sitewatch's webhook sends its own JSON (a formatter plugin can shape it)"
                        .into(),
                );
            }
            "webhook"
        }
        other => {
            out.unmapped.push(format!(
                "alerting.{other}: no sitewatch notifier of this type"
            ));
            return None;
        }
    };
    n.insert("type".into(), json!(typ));
    Some(n)
}
