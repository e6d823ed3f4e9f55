//! The requests each service is sent, for notifiers built from config text as users write
//! them: pure, so every shape is checked without a network.

use serde_json::{Value, json};
use sitewatch_config::Config;
use sitewatch_config::notify::NotifierConfig;
use sitewatch_core::alert::{self, Alert, AlertKind};
use sitewatch_core::notice::{Notice, NoticeKind};
use sitewatch_notify::{HttpRequest, Outgoing, Request};
use std::path::Path;
use std::sync::Arc;

const T0: i64 = 1_764_583_200; // 2025-12-01T10:00:00Z

fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(T0 + s, 0).unwrap()
}

fn notifier(json: &str) -> NotifierConfig {
    let env = |var: &str| {
        Some(match var.strip_prefix("URL_") {
            Some(name) => format!("https://hooks.example.com/{name}/T0/B0/token"),
            None => format!("value-of-{var}"),
        })
    };
    let text = format!(
        r#"{{"sites": [{{"name": "api", "url": "https://api.example.com/health"}},
                        {{"name": "shop", "url": "https://shop.example.com/"}}],
             "notify": [{json}]}}"#
    );
    Config::parse_with_env(Path::new("c.json"), text.as_bytes(), &env)
        .unwrap()
        .notify
        .remove(0)
}

/// What `n` sends for `group`.
fn requests(n: &NotifierConfig, group: &[Notice]) -> Vec<Outgoing> {
    n.service.requests(n.endpoint(), group)
}

fn down(id: i64, site: &str) -> Notice {
    let alert = Alert {
        kind: AlertKind::Down,
        site: site.into(),
        url: Arc::from(format!("https://{site}.example.com/")),
        availability: 0.5,
        time: at(0),
        down_since: None,
        down_for: None,
        latency: None,
        cert_expiry: None,
        message: alert::down_message(site, 0.5, at(0)),
        rendered: None,
        held: None,
    };
    Notice {
        id,
        alert_id: id * 10,
        kind: NoticeKind::DOWN,
        created: at(0),
        body: None,
        attempts: 0,
        alert,
    }
}

fn recovered(id: i64, site: &str) -> Notice {
    let alert = Alert {
        kind: AlertKind::Recovered,
        site: site.into(),
        url: Arc::from(format!("https://{site}.example.com/")),
        availability: 1.0,
        time: at(300),
        down_since: Some(at(0)),
        down_for: Some(std::time::Duration::from_secs(300)),
        latency: None,
        cert_expiry: None,
        message: alert::recovered_message(site, 1.0, at(300), at(0)),
        rendered: None,
        held: None,
    };
    Notice {
        id,
        alert_id: id * 10,
        kind: NoticeKind::RECOVERED,
        created: at(300),
        body: None,
        attempts: 0,
        alert,
    }
}

fn http(out: &Outgoing) -> &HttpRequest {
    match &out.request {
        Request::Http(r) => r,
        Request::Email(_) => panic!("an HTTP request"),
    }
}

fn body(out: &Outgoing) -> Value {
    serde_json::from_slice(&http(out).body).unwrap()
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn slack_gets_one_escaped_text_message_per_group() {
    let n = notifier(r#"{"name": "s", "type": "slack", "url_env": "URL_SLACK"}"#);
    let mut a = down(1, "api");
    a.alert.message = "Website a<b> & c is down".into();
    let out = requests(&n, &[a, down(2, "shop")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].covers, 0..2);
    let text = body(&out[0])["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("*2 sites down*\n"), "{text}");
    assert!(text.contains("a&lt;b&gt; &amp; c"), "{text}");
    assert!(text.contains("Website shop is down."), "{text}");
    assert_eq!(
        http(&out[0]).url.as_str(),
        "https://hooks.example.com/SLACK/T0/B0/token"
    );
}

#[test]
fn discord_embeds_have_a_decimal_colour_and_fit_the_limits() {
    let n = notifier(r#"{"name": "d", "type": "discord", "url_env": "URL_D"}"#);
    let group: Vec<Notice> = (1..=300).map(|i| down(i, &format!("site{i}"))).collect();
    let v = body(&requests(&n, &group)[0]);
    let embed = &v["embeds"][0];
    assert_eq!(embed["color"], json!(0xE7_4C_3C));
    assert_eq!(embed["title"], "300 sites down");
    let description = embed["description"].as_str().unwrap();
    assert!(description.chars().count() <= 4096);
    assert!(
        description.ends_with(" more"),
        "the cut is said: {description}"
    );
    let v = body(&requests(&n, &[recovered(1, "api")])[0]);
    assert_eq!(v["embeds"][0]["color"], json!(0x2E_CC_71));
}

#[test]
fn teams_gets_an_adaptive_card_not_a_message_card() {
    let n = notifier(r#"{"name": "t", "type": "teams", "url_env": "URL_T"}"#);
    let v = body(&requests(&n, &[down(1, "api")])[0]);
    assert_eq!(v["type"], "message");
    let a = &v["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(a["content"]["type"], "AdaptiveCard");
    assert_eq!(a["content"]["body"][0]["text"], "api is down");
    assert!(v.get("@type").is_none());
}

#[test]
fn pagerduty_triggers_and_resolves_the_same_incident_one_event_each() {
    let n = notifier(r#"{"name": "p", "type": "pagerduty", "routing_key_env": "PD"}"#);
    let out = requests(&n, &[down(1, "api"), recovered(2, "api")]);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].covers.clone(), out[1].covers.clone()), (0..1, 1..2));
    let (t, r) = (body(&out[0]), body(&out[1]));
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(t["dedup_key"], r["dedup_key"]);
    assert_eq!(t["routing_key"], "value-of-PD");
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["source"], "api.example.com");
    assert!(
        t["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("is down")
    );
    assert_eq!(
        http(&out[0]).url.as_str(),
        "https://events.pagerduty.com/v2/enqueue"
    );
}

#[test]
fn opsgenie_closes_by_alias_with_the_identifier_type() {
    let n = notifier(r#"{"name": "o", "type": "opsgenie", "api_key_env": "OG"}"#);
    let out = requests(&n, &[down(1, "api"), recovered(2, "api")]);
    let (create, close) = (http(&out[0]), http(&out[1]));
    assert_eq!(create.url.as_str(), "https://api.opsgenie.com/v2/alerts");
    assert_eq!(
        header(create, "Authorization"),
        Some("GenieKey value-of-OG")
    );
    let alias = body(&out[0])["alias"].as_str().unwrap().to_owned();
    assert!(body(&out[0])["message"].as_str().unwrap().len() <= 130);
    assert_eq!(close.url.query(), Some("identifierType=alias"));
    let segments: Vec<String> = close
        .url
        .path_segments()
        .unwrap()
        .map(percent_decode)
        .collect();
    assert_eq!(segments, ["v2", "alerts", alias.as_str(), "close"]);
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

#[test]
fn alertmanager_gets_one_array_with_labels_and_ends_at_on_recovery() {
    let n = notifier(r#"{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"}"#);
    let out = requests(&n, &[down(1, "api"), recovered(2, "shop")]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        http(&out[0]).url.as_str(),
        "http://127.0.0.1:9093/api/v2/alerts"
    );
    let v = body(&out[0]);
    let alerts = v.as_array().unwrap();
    assert_eq!(alerts[0]["labels"]["alertname"], "SiteDown");
    assert_eq!(alerts[0]["labels"]["site"], "api");
    assert!(alerts[0].get("endsAt").is_none());
    assert_eq!(alerts[1]["endsAt"], "2025-12-01T10:05:00.000Z");
    assert_eq!(alerts[1]["startsAt"], "2025-12-01T10:00:00.000Z");
    assert_eq!(n.repeat, Some(std::time::Duration::from_secs(120)));
}

#[test]
fn ntfy_posts_text_with_title_priority_and_tags() {
    let n = notifier(
        r#"{"name": "n", "type": "ntfy", "url": "https://ntfy.sh/ops", "token_env": "NT"}"#,
    );
    let out = requests(&n, &[down(1, "api")]);
    let r = http(&out[0]);
    assert_eq!(header(r, "Title"), Some("api is down"));
    assert_eq!(header(r, "Priority"), Some("high"));
    assert_eq!(header(r, "Tags"), Some("rotating_light"));
    assert_eq!(header(r, "Authorization"), Some("Bearer value-of-NT"));
    assert!(
        serde_json::from_slice::<Value>(&r.body).is_err(),
        "plain text"
    );
    // A title beyond ASCII goes as an RFC 2047 encoded word, which ntfy decodes.
    let out = requests(&n, &[down(2, "café")]);
    assert_eq!(
        header(http(&out[0]), "Title"),
        Some("=?UTF-8?B?Y2Fmw6kgaXMgZG93bg==?=")
    );
}

#[test]
fn gotify_and_telegram_put_their_tokens_where_documented() {
    let g = notifier(
        r#"{"name": "g", "type": "gotify", "url": "https://push.example.com/", "token_env": "GT"}"#,
    );
    let out = requests(&g, &[down(1, "api")]);
    assert_eq!(
        http(&out[0]).url.as_str(),
        "https://push.example.com/message"
    );
    assert_eq!(header(http(&out[0]), "X-Gotify-Key"), Some("value-of-GT"));
    let v = body(&out[0]);
    assert_eq!(
        (v["title"].as_str(), v["priority"].as_i64()),
        (Some("api is down"), Some(8))
    );

    let t = notifier(
        r#"{"name": "t", "type": "telegram", "bot_token_env": "TG", "chat_id": "-1001234"}"#,
    );
    let out = requests(&t, &[down(1, "api")]);
    assert_eq!(
        http(&out[0]).url.as_str(),
        "https://api.telegram.org/botvalue-of-TG/sendMessage"
    );
    let v = body(&out[0]);
    assert_eq!(v["chat_id"], json!(-1001234));
    assert!(
        v.get("parse_mode").is_none(),
        "plain text needs no escaping"
    );
    assert!(v["text"].as_str().unwrap().contains("availability=50.00%"));
}

#[test]
fn a_webhook_lists_every_alert_with_an_idempotency_key_and_its_headers() {
    let n = notifier(
        r#"{"name": "h", "type": "webhook", "url": "https://hooks.example.com/x", "method": "put",
            "headers": {"Authorization": "Bearer ${TOKEN}"}}"#,
    );
    let out = requests(&n, &[down(4, "api"), down(5, "shop")]);
    let r = http(&out[0]);
    assert_eq!(r.method, "PUT");
    assert_eq!(
        header(r, "Idempotency-Key"),
        Some(format!("sitewatch-{}-4-5", at(0).timestamp_micros()).as_str())
    );
    assert_eq!(header(r, "Authorization"), Some("Bearer value-of-TOKEN"));
    let v = body(&out[0]);
    assert_eq!(v["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(v["alerts"][1]["site"], "shop");
    assert_eq!(v["alerts"][1]["alert_id"], 50);
    assert!(
        !format!("{r:?}").contains("value-of-TOKEN"),
        "Debug hides headers"
    );
}

#[test]
fn a_formatters_json_is_the_body_and_its_text_replaces_the_message() {
    let slack = notifier(r#"{"name": "s", "type": "slack", "url_env": "URL_S"}"#);
    let mut a = down(1, "api");
    a.body = Some(
        r#"{"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}"#.into(),
    );
    assert_eq!(
        body(&requests(&slack, &[a])[0])["blocks"][0]["type"],
        "section"
    );

    let mm = notifier(r#"{"name": "m", "type": "mattermost", "url_env": "URL_M"}"#);
    let mut a = down(1, "api");
    a.body = Some("**api** is down".into());
    let v = body(&requests(&mm, &[a])[0]);
    assert!(
        v["text"].as_str().unwrap().ends_with("**api** is down"),
        "{v}"
    );
}

#[test]
fn reminders_say_since_when_the_site_is_down() {
    let n = notifier(r#"{"name": "s", "type": "slack", "url_env": "URL_S"}"#);
    let mut r = down(3, "api");
    r.kind = NoticeKind::Reminder;
    r.created = at(1800);
    let text = body(&requests(&n, &[r])[0])["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.starts_with("*api is still down*"), "{text}");
    assert!(
        text.contains("Down since 2025-12-01T10:00:00Z, for 30m"),
        "{text}"
    );
}

#[test]
fn an_email_has_a_subject_a_body_and_a_stable_message_id() {
    let n = notifier(
        r#"{"name": "mail", "type": "email", "smtp": "smtp://127.0.0.1:2525", "tls": "none",
            "from": "sitewatch@example.com", "to": ["oncall@example.com"]}"#,
    );
    let out = requests(&n, &[down(7, "api")]);
    let Request::Email(m) = &out[0].request else {
        panic!("an email");
    };
    assert_eq!(m.subject, "[sitewatch] api is down");
    assert!(m.body.contains("Website api is down."));
    assert_eq!(
        m.message_id,
        format!("<sitewatch-{}-7@example.com>", at(0).timestamp_micros())
    );
}
