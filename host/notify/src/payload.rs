//! The requests a notifier sends for a group of notifications, in the shape each service
//! documents (see `docs/NOTIFIERS.md` in the shared notes): pure functions of the config and the
//! notices, so every shape is unit-tested without a network.
//!
//! Chat services and webhooks get one message per group, listing the sites. Incident APIs
//! (PagerDuty, Opsgenie) get one event per notification, since each incident opens and closes
//! on its own key; Alertmanager takes the group as one array.

use crate::alert::{AlertKind, Condition};
use crate::clock::{human_duration, rfc3339_seconds};
use crate::config::notify::{NotifierConfig, Service};
use crate::store::notices::{Notice, NoticeKind};
use serde_json::{Value, json};
use std::ops::Range;
use url::Url;

/// One request and the notices (indices into the group) it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub covers: Range<usize>,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Http(HttpRequest),
    Email(EmailMessage),
}

#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Prints neither the URL, the headers nor the body: each may hold a secret (a PagerDuty
/// routing key is in the body).
impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub subject: String,
    pub body: String,
    /// A Message-ID derived from the notifications: a resent mail is recognisably the same.
    pub message_id: String,
}

/// The requests that deliver `group`, in order.
pub fn requests(n: &NotifierConfig, group: &[Notice]) -> Vec<Outgoing> {
    let whole = |request| {
        vec![Outgoing {
            covers: 0..group.len(),
            request,
        }]
    };
    let url = |n: &NotifierConfig| n.url.as_ref().map(|u| u.expose().clone());
    let key = idempotency_key(group);
    match &n.service {
        Service::Webhook { method, headers } => {
            let body = match rendered_json(group) {
                Some(v) => v,
                None => webhook_body(n, group),
            };
            let mut h: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().clone()))
                .collect();
            if !h
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
            {
                h.push(("Idempotency-Key".into(), key));
            }
            whole(json_request(method, url(n), h, &body))
        }
        Service::Slack => {
            let body = rendered_json(group).unwrap_or_else(|| {
                let d = Digest::of(group, 3000);
                json!({ "text": slack_escape(&d.titled(|t| format!("*{t}*"))) })
            });
            whole(json_request("POST", url(n), vec![], &body))
        }
        Service::Mattermost { channel, username } => {
            let body = rendered_json(group).unwrap_or_else(|| {
                let d = Digest::of(group, 12_000);
                let mut v = json!({ "text": d.titled(|t| format!("#### {t}")) });
                if let Some(c) = channel {
                    v["channel"] = json!(c);
                }
                v["username"] = json!(username.as_deref().unwrap_or("sitewatch"));
                v
            });
            whole(json_request("POST", url(n), vec![], &body))
        }
        Service::Discord => {
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
            whole(json_request("POST", url(n), vec![], &body))
        }
        Service::Teams => {
            let body =
                rendered_json(group).unwrap_or_else(|| teams_card(&Digest::of(group, 20_000)));
            whole(json_request("POST", url(n), vec![], &body))
        }
        Service::Telegram { bot_token, chat_id } => {
            let mut body = rendered_json(group).unwrap_or_else(|| {
                let d = Digest::of(group, 3800);
                json!({ "text": cut(&d.titled(str::to_owned), 4096) })
            });
            if body.get("chat_id").is_none() {
                body["chat_id"] = match chat_id.parse::<i64>() {
                    Ok(id) => json!(id),
                    Err(_) => json!(chat_id),
                };
            }
            let mut u = url(n).expect("telegram has a default URL");
            let base = u.path().trim_end_matches('/').to_owned();
            u.set_path(&format!("{base}/bot{}/sendMessage", bot_token.expose()));
            whole(json_request("POST", Some(u), vec![], &body))
        }
        Service::Gotify { token, priority } => {
            let d = Digest::of(group, 10_000);
            let body = json!({
                "title": d.title,
                "message": d.text(),
                "priority": priority.unwrap_or(if d.firing > 0 { 8 } else { 4 }),
            });
            let mut u = url(n).expect("gotify has a URL");
            let base = u.path().trim_end_matches('/').to_owned();
            u.set_path(&format!("{base}/message"));
            let h = vec![("X-Gotify-Key".to_owned(), token.expose().clone())];
            whole(json_request("POST", Some(u), h, &body))
        }
        Service::Ntfy { token, priority } => {
            let d = Digest::of(group, 3800);
            let mut h = vec![
                ("Title".to_owned(), header_text(&d.title)),
                (
                    "Priority".to_owned(),
                    priority
                        .clone()
                        .unwrap_or_else(|| if d.firing > 0 { "high" } else { "default" }.into()),
                ),
                (
                    "Tags".to_owned(),
                    if d.firing > 0 {
                        "rotating_light"
                    } else {
                        "white_check_mark"
                    }
                    .into(),
                ),
                (
                    "Content-Type".to_owned(),
                    "text/plain; charset=utf-8".into(),
                ),
            ];
            if let Some(t) = token {
                h.push(("Authorization".into(), format!("Bearer {}", t.expose())));
            }
            whole(Request::Http(HttpRequest {
                method: "POST".into(),
                url: url(n).expect("ntfy has a URL"),
                headers: h,
                body: d.text().into_bytes(),
            }))
        }
        Service::PagerDuty {
            routing_key,
            severity,
        } => group
            .iter()
            .enumerate()
            .map(|(i, notice)| {
                let body = pagerduty_event(routing_key.expose(), severity, notice);
                Outgoing {
                    covers: i..i + 1,
                    request: json_request("POST", url(n), vec![], &body),
                }
            })
            .collect(),
        Service::Opsgenie { api_key, priority } => group
            .iter()
            .enumerate()
            .map(|(i, notice)| {
                let (u, body) = opsgenie_request(
                    url(n).expect("opsgenie has a default URL"),
                    priority,
                    notice,
                );
                let h = vec![(
                    "Authorization".to_owned(),
                    format!("GenieKey {}", api_key.expose()),
                )];
                Outgoing {
                    covers: i..i + 1,
                    request: json_request("POST", Some(u), h, &body),
                }
            })
            .collect(),
        Service::Alertmanager { headers, severity } => {
            let alerts: Vec<Value> = group
                .iter()
                .map(|notice| alertmanager_alert(severity, notice))
                .collect();
            let mut u = url(n).expect("alertmanager has a URL");
            let base = u.path().trim_end_matches('/').to_owned();
            u.set_path(&format!("{base}/api/v2/alerts"));
            let h = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().clone()))
                .collect();
            whole(json_request("POST", Some(u), h, &Value::Array(alerts)))
        }
        Service::Email(target) => {
            let d = Digest::of(group, 100_000);
            let domain = target
                .from
                .rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('>'))
                .unwrap_or("sitewatch");
            whole(Request::Email(EmailMessage {
                subject: format!("[sitewatch] {}", d.title),
                body: format!(
                    "{}\n\n{}\n\n-- \nsitewatch, notifier {}\n",
                    d.title,
                    d.text(),
                    n.name
                ),
                message_id: format!("<{key}@{domain}>"),
            }))
        }
    }
}

fn json_request(
    method: &str,
    url: Option<Url>,
    mut headers: Vec<(String, String)>,
    body: &Value,
) -> Request {
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Request::Http(HttpRequest {
        method: method.to_owned(),
        url: url.expect("every HTTP notifier has a URL"),
        headers,
        body: body.to_string().into_bytes(),
    })
}

/// The formatter's rendering, when it is a JSON object: the whole body then. (A group with a
/// rendering holds one notice.)
fn rendered_json(group: &[Notice]) -> Option<Value> {
    let [notice] = group else { return None };
    let v: Value = serde_json::from_str(notice.body.as_deref()?).ok()?;
    v.is_object().then_some(v)
}

/// `sitewatch-<first queued, µs>-<first id>-<last id>`: the same for every attempt of the same
/// group, and unique beyond one store (ids start again in a new store; times do not).
fn idempotency_key(group: &[Notice]) -> String {
    match (group.first(), group.last()) {
        (Some(f), Some(l)) if f.id != l.id => format!(
            "sitewatch-{}-{}-{}",
            f.created.timestamp_micros(),
            f.id,
            l.id
        ),
        (Some(f), _) => format!("sitewatch-{}-{}", f.created.timestamp_micros(), f.id),
        _ => "sitewatch".into(),
    }
}

/// The text of one notice: its rendering, or the built-in message. (A JSON rendering that is
/// a whole body never gets here: [`rendered_json`] took it.)
fn notice_text(n: &Notice) -> String {
    if let Some(body) = &n.body {
        return body.clone();
    }
    match n.kind {
        NoticeKind::Reminder => {
            let since = n.alert.time;
            format!(
                "Website {} is still down. Down since {}, for {}; availability={} when it went down",
                n.alert.site,
                rfc3339_seconds(since),
                human_duration((n.created - since).to_std().unwrap_or_default()),
                crate::alert::percent(n.alert.availability)
            )
        }
        _ => n.alert.message.clone(),
    }
}

/// A group in words: a title and one line per notice, cut to a size budget.
struct Digest {
    title: String,
    lines: Vec<String>,
    /// Notices left out of `lines` by the budget.
    more: usize,
    firing: usize,
    recovered: usize,
    /// The one line is a formatter's rendering, which has its own title.
    rendered: bool,
}

impl Digest {
    fn of(group: &[Notice], budget: usize) -> Self {
        let firing = group.iter().filter(|n| n.kind.is_firing()).count();
        let recovered = group.len() - firing;
        let title = match group {
            [one] => title(one),
            _ => {
                let mut parts = Vec::new();
                let sites = |n: usize| format!("{n} site{}", if n == 1 { "" } else { "s" });
                // Down and its reminders, in the words the title has always had; the other
                // conditions by name.
                let count =
                    |f: &dyn Fn(NoticeKind) -> bool| group.iter().filter(|n| f(n.kind)).count();
                let down = count(&|k| k.is_firing() && k.condition() == Condition::Down);
                let degraded = count(&|k| k == NoticeKind::Alert(AlertKind::Degraded));
                let cert = count(&|k| k == NoticeKind::Alert(AlertKind::CertExpiring));
                for (n, what) in [
                    (down, "down"),
                    (degraded, "degraded"),
                    (cert, "with a certificate expiring"),
                ] {
                    if n > 0 {
                        parts.push(format!("{} {what}", sites(n)));
                    }
                }
                if recovered > 0 {
                    parts.push(format!("{} recovered", sites(recovered)));
                }
                parts.join(", ")
            }
        };
        let mut lines = Vec::new();
        let mut used = 0;
        for n in group {
            let line = notice_text(n);
            if used + line.len() + 1 > budget && !lines.is_empty() {
                break;
            }
            used += line.len() + 1;
            lines.push(line);
        }
        Self {
            title,
            more: group.len() - lines.len(),
            lines,
            firing,
            recovered,
            rendered: matches!(group, [one] if one.body.is_some()),
        }
    }

    /// The title (shaped by `title`) over the lines; a rendering alone.
    fn titled(&self, title: impl Fn(&str) -> String) -> String {
        if self.rendered {
            self.text()
        } else {
            format!("{}\n{}", title(&self.title), self.text())
        }
    }

    fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        if self.more > 0 {
            t.push_str(&format!("\n… and {} more", self.more));
        }
        t
    }

    /// Discord's embed colour, a decimal RGB integer: red when anything fires, green otherwise.
    fn colour(&self) -> u32 {
        match (self.firing, self.recovered) {
            (0, _) => 0x2E_CC_71,
            (_, 0) => 0xE7_4C_3C,
            _ => 0xE6_7E_22,
        }
    }
}

/// Cuts `s` to at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Slack's control characters (`&`, `<`, `>`) escaped, as its message formatting asks.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A header value: ASCII is sent as is; other text as an RFC 2047 encoded word (which ntfy
/// decodes), since HTTP header values are ASCII.
fn header_text(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return s.to_owned();
    }
    use base64::Engine;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    )
}

fn webhook_body(n: &NotifierConfig, group: &[Notice]) -> Value {
    let d = Digest::of(group, usize::MAX);
    let alerts: Vec<Value> = group
        .iter()
        .map(|x| {
            json!({
                "notification_id": x.id,
                "alert_id": x.alert_id,
                "kind": x.kind.as_str(),
                "condition": x.kind.condition().as_str(),
                "site": &*x.alert.site,
                "url": &*x.alert.url,
                "availability": x.alert.availability,
                "time": rfc3339_seconds(x.alert.time),
                "down_since": x.alert.down_since.map(rfc3339_seconds),
                "down_for_seconds": x.alert.down_for.map(|d| d.as_secs_f64()),
                "message": notice_text(x),
            })
        })
        .collect();
    json!({
        "notifier": n.name,
        "title": d.title,
        "text": d.text(),
        "alerts": alerts,
    })
}

fn teams_card(d: &Digest) -> Value {
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

/// The incident key of a notice (`sitewatch:<site>:<down time, µs>`): the site and when it
/// went down, the same for the down alert, its reminders and its recovery. The other conditions
/// have their own incidents: `sitewatch:<site>:degraded:<since>`, `sitewatch:<site>:cert:<since>`.
pub(crate) fn incident_key(notice: &Notice) -> String {
    let since = incident_start(notice);
    let site = notice.alert.site.replace('/', "_");
    // No `/`: Opsgenie's close takes the alias as a path segment, and proxies mangle `%2F`.
    match notice.kind.condition() {
        Condition::Down => format!("sitewatch:{site}:{}", since.timestamp_micros()),
        c => format!(
            "sitewatch:{site}:{}:{}",
            c.as_str(),
            since.timestamp_micros()
        ),
    }
}

/// When the notice's incident began: the firing alert's time (a resolution carries it).
fn incident_start(notice: &Notice) -> chrono::DateTime<chrono::Utc> {
    if notice.kind.is_firing() {
        notice.alert.time
    } else {
        notice.alert.down_since.unwrap_or(notice.alert.time)
    }
}

/// A one-line title of one notice: `shop is down`, `shop is degraded`.
fn title(n: &Notice) -> String {
    let site = &n.alert.site;
    match n.kind {
        NoticeKind::Reminder => format!("{site} is still down"),
        NoticeKind::Alert(k) => match k {
            AlertKind::Down => format!("{site} is down"),
            AlertKind::Recovered => format!("{site} recovered"),
            AlertKind::Degraded => format!("{site} is degraded"),
            AlertKind::DegradedRecovered => format!("{site} is no longer degraded"),
            AlertKind::CertExpiring => format!("{site} certificate expires soon"),
            AlertKind::CertRenewed => format!("{site} certificate renewed"),
        },
    }
}

fn pagerduty_event(routing_key: &str, severity: &str, notice: &Notice) -> Value {
    let key = incident_key(notice);
    if !notice.kind.is_firing() {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": key,
        });
    }
    let source = Url::parse(&notice.alert.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| notice.alert.site.to_string());
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "sitewatch",
        "payload": {
            "summary": cut(&notice_text(notice), 1024),
            "source": source,
            "severity": severity,
            "timestamp": rfc3339_seconds(notice.alert.time),
            "component": &*notice.alert.site,
            "class": match notice.kind.condition() {
                Condition::Down => "availability",
                Condition::Degraded => "latency",
                Condition::Cert => "certificate",
            },
            "custom_details": {
                "url": &*notice.alert.url,
                "availability": notice.alert.availability,
                "message": notice.alert.message,
            }
        }
    })
}

fn opsgenie_request(base: Url, priority: &str, notice: &Notice) -> (Url, Value) {
    let alias = incident_key(notice);
    let mut u = base;
    let root = u.path().trim_end_matches('/').to_owned();
    if notice.kind.is_firing() {
        u.set_path(&format!("{root}/v2/alerts"));
        let body = json!({
            "message": cut(&title(notice), 130),
            "alias": alias,
            "description": cut(&notice_text(notice), 15_000),
            "entity": &*notice.alert.site,
            "source": "sitewatch",
            "priority": priority,
            "tags": ["sitewatch"],
            "details": {
                "url": &*notice.alert.url,
                "availability": crate::alert::percent(notice.alert.availability),
            }
        });
        (u, body)
    } else {
        // The alias is one path segment: `/` and the rest percent-encoded.
        let mut segments = u.clone();
        segments.set_path(&root);
        if let Ok(mut s) = segments.path_segments_mut() {
            s.extend(["v2", "alerts", alias.as_str(), "close"]);
        }
        segments.set_query(Some("identifierType=alias"));
        let body = json!({
            "source": "sitewatch",
            "note": cut(&notice_text(notice), 25_000),
        });
        (segments, body)
    }
}

fn alertmanager_alert(severity: &str, notice: &Notice) -> Value {
    let a = &notice.alert;
    let starts = incident_start(notice);
    let mut v = json!({
        "labels": {
            "alertname": match notice.kind.condition() {
                Condition::Down => "SiteDown",
                Condition::Degraded => "SiteDegraded",
                Condition::Cert => "CertificateExpiring",
            },
            "site": &*a.site,
            "instance": &*a.url,
            "severity": severity,
            "source": "sitewatch",
        },
        "annotations": {
            "summary": notice_text(notice),
            "availability": crate::alert::percent(a.availability),
        },
        "startsAt": crate::clock::rfc3339_millis(starts),
    });
    if !notice.kind.is_firing() {
        v["endsAt"] = json!(crate::clock::rfc3339_millis(a.time));
    }
    v
}

#[cfg(test)]
mod tests;
