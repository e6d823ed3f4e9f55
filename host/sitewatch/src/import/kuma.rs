//! Uptime Kuma (the JSON of Settings → Backup → Export: `notificationList` and `monitorList`,
//! as louislam/uptime-kuma's server writes them): monitors of type http, keyword, json-query,
//! port, ping, dns and push, with `interval` and `timeout` in seconds, `accepted_statuscodes`,
//! `ignoreTls`, `maxredirects`, `headers` and `body` (JSON text), `active`, `tags`, and the
//! notifications each monitor sends to (`notificationIDList`); notifications whose `config`
//! (JSON text) has a `type` sitewatch has.

use super::{Imported, duration_text, email_fields, ntfy_url, status_range};
use serde_json::{Map, Value, json};

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn seconds(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|n| *n > 0.0)
}

/// Imports an Uptime Kuma backup's text.
pub fn import(text: &str) -> Result<Imported, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let monitors = doc
        .get("monitorList")
        .and_then(Value::as_array)
        .ok_or("no monitorList: an Uptime Kuma backup (Settings, Backup, Export) has one")?;
    let mut out = Imported::default();
    // Notifications by id: (name, the monitors that send to it).
    let mut used: Vec<(i64, Vec<String>)> = Vec::new();
    for (i, m) in monitors.iter().enumerate() {
        let name = s(m, "name")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("monitor {i}"));
        let label = format!("monitor \"{name}\"");
        let Some(site) = site(m, &name, &label, &mut out) else {
            continue;
        };
        out.sites.push(site);
        for (id, on) in m
            .get("notificationIDList")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if on.as_bool() == Some(true) || on.as_i64() == Some(1) {
                let Ok(id) = id.parse::<i64>() else { continue };
                match used.iter_mut().find(|(n, _)| *n == id) {
                    Some((_, sites)) => sites.push(name.clone()),
                    None => used.push((id, vec![name.clone()])),
                }
            }
        }
    }
    for n in doc
        .get("notificationList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = n.get("id").and_then(Value::as_i64).unwrap_or(-1);
        // `config` is JSON text holding the type and its fields.
        let cfg: Value = match n.get("config") {
            Some(Value::String(t)) => serde_json::from_str(t).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let name = s(n, "name")
            .or_else(|| s(&cfg, "name"))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("notification {id}"));
        let Some(sites) = used.iter().find(|(u, _)| *u == id).map(|(_, s)| s.clone()) else {
            out.unmapped.push(format!(
                "notification \"{name}\": no monitor sends to it; left out"
            ));
            continue;
        };
        if let Some(mut notifier) = notifier(&name, &cfg, &mut out) {
            notifier.insert("sites".into(), json!(sites));
            out.notify.push(Value::Object(notifier));
        }
    }
    Ok(out)
}

fn site(m: &Value, name: &str, label: &str, out: &mut Imported) -> Option<Value> {
    let mut site = Map::new();
    site.insert("name".into(), json!(name));
    let typ = s(m, "type").unwrap_or("http");
    let host = s(m, "hostname").unwrap_or_default();
    match typ {
        "http" | "keyword" | "json-query" => {
            site.insert("url".into(), json!(s(m, "url").unwrap_or_default()));
            if typ != "http" {
                out.unmapped.push(format!(
                    "{label}: type {typ} ({}): imported as http; a check plugin tests the body (the keyword example: docs/PLUGINS.md)",
                    s(m, "keyword").or_else(|| s(m, "jsonPath")).unwrap_or("")
                ));
            }
        }
        "port" => {
            site.insert("kind".into(), json!("tcp"));
            let port = m.get("port").and_then(Value::as_u64).unwrap_or(0);
            site.insert("target".into(), json!(format!("{host}:{port}")));
        }
        "ping" => {
            site.insert("kind".into(), json!("icmp"));
            site.insert("target".into(), json!(host));
        }
        "dns" => {
            site.insert("kind".into(), json!("dns"));
            site.insert("target".into(), json!(host));
            if let Some(t) = s(m, "dns_resolve_type") {
                site.insert("record_type".into(), json!(t));
            }
            if let Some(r) = s(m, "dns_resolve_server") {
                let port = m
                    .get("port")
                    .and_then(Value::as_u64)
                    .filter(|p| *p > 0)
                    .unwrap_or(53);
                site.insert("resolver".into(), json!(format!("{r}:{port}")));
            }
        }
        "push" => {
            site.insert("kind".into(), json!("push"));
            let var = out.secret(
                "PUSH",
                name,
                "TOKEN",
                format!("{label}: a new token from `sitewatch push-token` (point the job at /push/<token>; Uptime Kuma's pushToken may be reused if it has 16 or more letters and digits)"),
            );
            site.insert("token_env".into(), json!(var));
            if let Some(i) = seconds(m, "interval") {
                site.insert("period".into(), json!(duration_text(i * 1000.0)));
            }
        }
        other => {
            out.unmapped.push(format!(
                "{label}: type {other} has no sitewatch kind; left out"
            ));
            return None;
        }
    }
    let kind = site
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("http")
        .to_owned();
    if kind != "push" {
        if let Some(i) = seconds(m, "interval") {
            site.insert("interval".into(), json!(duration_text(i * 1000.0)));
        }
        if let Some(t) = seconds(m, "timeout") {
            site.insert("timeout".into(), json!(duration_text(t * 1000.0)));
        }
    }
    if kind == "http" {
        if let Some(method) = s(m, "method").filter(|x| !x.eq_ignore_ascii_case("GET")) {
            site.insert("method".into(), json!(method.to_ascii_uppercase()));
        }
        if let Some(h) = s(m, "headers") {
            match serde_json::from_str::<Value>(h) {
                Ok(Value::Object(h)) => {
                    site.insert("headers".into(), Value::Object(h));
                }
                _ => out
                    .unmapped
                    .push(format!("{label}: headers are not a JSON object")),
            }
        }
        if let Some(b) = s(m, "body") {
            site.insert("body".into(), json!(b));
        }
        if m.get("ignoreTls") == Some(&Value::Bool(true)) {
            site.insert("tls_insecure".into(), json!(true));
        }
        if m.get("maxredirects").and_then(Value::as_u64) == Some(0) {
            site.insert("follow_redirects".into(), json!(false));
        }
        let mut statuses = Vec::new();
        for c in m
            .get("accepted_statuscodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let (from, to) = c.split_once('-').unwrap_or((c, c));
            match (from.trim().parse::<u16>(), to.trim().parse::<u16>()) {
                (Ok(a), Ok(b)) if a <= b => match status_range(a, b) {
                    Some(r) => statuses.extend(r),
                    None => out.unmapped.push(format!(
                        "{label}: accepted status codes {c} (sitewatch takes codes and whole classes)"
                    )),
                },
                _ => out.unmapped.push(format!("{label}: accepted status codes {c:?}")),
            }
        }
        if !statuses.is_empty() && statuses != [json!("2xx")] {
            site.insert("expect_status".into(), Value::Array(statuses));
        }
    }
    if m.get("upsideDown") == Some(&Value::Bool(true)) {
        out.unmapped
            .push(format!("{label}: upside down mode (up when it fails)"));
    }
    let tags: Vec<Value> = m
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| s(t, "name").map(|n| json!(n)))
        .collect();
    if !tags.is_empty() {
        site.insert("tags".into(), Value::Array(tags));
    }
    let active = m.get("active");
    if active == Some(&Value::Bool(false)) || active.and_then(Value::as_i64) == Some(0) {
        site.insert("paused".into(), json!(true));
    }
    Some(Value::Object(site))
}

/// A notifier from a notification's config, or `None` (listed) when its type does not map.
fn notifier(name: &str, cfg: &Value, out: &mut Imported) -> Option<Map<String, Value>> {
    let mut n = Map::new();
    // sitewatch's notifier names are letters, digits, `-`, `_` and `.`.
    let mut ours: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.notify.iter().any(|x| x["name"] == ours.as_str()) {
        ours.push('_');
    }
    n.insert("name".into(), json!(ours));
    let typ = s(cfg, "type").unwrap_or_default();
    let label = format!("notification \"{name}\"");
    let mut secret = |n: &mut Map<String, Value>, our: &str, field: &str, var: &str| {
        let v = out.secret("KUMA", name, var, format!("{label}: {field}"));
        n.insert(our.into(), json!(v));
    };
    let ours = match typ {
        "slack" => {
            secret(&mut n, "url_env", "slackwebhookURL", "URL");
            "slack"
        }
        "discord" => {
            secret(&mut n, "url_env", "discordWebhookUrl", "URL");
            "discord"
        }
        "teams" => {
            secret(&mut n, "url_env", "webhookUrl", "URL");
            "teams"
        }
        "mattermost" => {
            secret(&mut n, "url_env", "mattermostWebhookUrl", "URL");
            "mattermost"
        }
        "PagerDuty" | "pagerduty" => {
            secret(&mut n, "routing_key_env", "pagerdutyIntegrationKey", "KEY");
            "pagerduty"
        }
        "Opsgenie" | "opsgenie" => {
            secret(&mut n, "api_key_env", "opsgenieApiKey", "KEY");
            "opsgenie"
        }
        "telegram" => {
            secret(&mut n, "bot_token_env", "telegramBotToken", "TOKEN");
            n.insert(
                "chat_id".into(),
                json!(s(cfg, "telegramChatID").unwrap_or_default()),
            );
            "telegram"
        }
        "ntfy" => {
            let url = ntfy_url(s(cfg, "ntfyserverurl"), s(cfg, "ntfytopic"));
            n.insert("url".into(), url);
            if s(cfg, "ntfyaccesstoken").is_some() {
                secret(&mut n, "token_env", "ntfyaccesstoken", "TOKEN");
            }
            "ntfy"
        }
        "gotify" => {
            n.insert(
                "url".into(),
                json!(s(cfg, "gotifyserverurl").unwrap_or_default()),
            );
            secret(&mut n, "token_env", "gotifyapplicationToken", "TOKEN");
            "gotify"
        }
        "webhook" => {
            n.insert(
                "url".into(),
                json!(s(cfg, "webhookURL").unwrap_or_default()),
            );
            "webhook"
        }
        "smtp" => {
            let host = s(cfg, "smtpHost").unwrap_or_default();
            let port = cfg.get("smtpPort").and_then(Value::as_u64).unwrap_or(587);
            let scheme = if cfg.get("smtpSecure") == Some(&Value::Bool(true)) {
                "smtps"
            } else {
                "smtp"
            };
            email_fields(
                &mut n,
                format!("{scheme}://{host}:{port}"),
                s(cfg, "smtpFrom"),
                s(cfg, "smtpTo"),
            );
            if s(cfg, "smtpUsername").is_some() {
                secret(&mut n, "username_env", "smtpUsername", "USER");
            }
            if s(cfg, "smtpPassword").is_some() {
                secret(&mut n, "password_env", "smtpPassword", "PASSWORD");
            }
            "email"
        }
        other => {
            out.unmapped.push(format!(
                "{label}: type {other:?} has no sitewatch notifier; left out"
            ));
            return None;
        }
    };
    n.insert("type".into(), json!(ours));
    Some(n)
}
