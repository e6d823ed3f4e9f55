//! `slack`: renders an alert as a Slack message payload (JSON for an incoming webhook).
//!
//! Config (all optional): `{"channel": "#ops", "username": "sitewatch", "icon_emoji": ":rotating_light:"}`.

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "alert-formatter" });

use exports::sitewatch::plugin::formatter::Guest;
use serde_json::{Value, json};
use sitewatch::plugin::types::{Alert, AlertKind};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
}

pub fn render(config: &str, a: &Alert) -> Result<String, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    let (color, title) = match a.kind {
        AlertKind::Down => ("danger", format!(":red_circle: {} is down", a.site)),
        AlertKind::Recovered => ("good", format!(":large_green_circle: {} recovered", a.site)),
    };
    let mut fields = vec![
        json!({"title": "Availability", "value": format!("{:.2}%", a.availability * 100.0), "short": true}),
        json!({"title": "Time", "value": a.time, "short": true}),
        json!({"title": "URL", "value": a.url, "short": false}),
    ];
    if let Some(since) = &a.down_since {
        fields.push(json!({"title": "Down since", "value": since, "short": true}));
    }
    if let Some(secs) = a.down_for_seconds {
        fields.push(json!({"title": "Down for", "value": format!("{secs:.0} s"), "short": true}));
    }
    if !a.recent_errors.is_empty() {
        fields.push(
            json!({"title": "Recent errors", "value": a.recent_errors.join("\n"), "short": false}),
        );
    }
    let mut msg = json!({
        "text": a.message,
        "attachments": [{"color": color, "title": title, "fields": fields, "fallback": a.message}],
    });
    let obj = msg.as_object_mut().expect("an object");
    for (key, value) in [
        ("channel", c.channel),
        ("username", c.username),
        ("icon_emoji", c.icon_emoji),
    ] {
        if let Some(v) = value {
            obj.insert(key.into(), Value::String(v));
        }
    }
    Ok(msg.to_string())
}

struct Slack;

impl Guest for Slack {
    fn format(config: String, alert: Alert) -> Result<String, String> {
        render(&config, &alert)
    }
}

export!(Slack);

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind) -> Alert {
        Alert {
            kind,
            site: "api".into(),
            url: "http://api/".into(),
            availability: 0.5,
            time: "2026-01-01T00:00:00Z".into(),
            down_since: None,
            down_for_seconds: None,
            recent_errors: vec!["connect: refused".into()],
            message: "Website api is down. availability=50.00%, time=2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn renders_a_webhook_payload() {
        let v: Value = serde_json::from_str(
            &render(r##"{"channel": "#ops"}"##, &alert(AlertKind::Down)).unwrap(),
        )
        .unwrap();
        assert_eq!(v["channel"], "#ops");
        assert_eq!(
            v["text"],
            "Website api is down. availability=50.00%, time=2026-01-01T00:00:00Z"
        );
        assert_eq!(v["attachments"][0]["color"], "danger");
        assert_eq!(v["attachments"][0]["fields"][0]["value"], "50.00%");
        assert_eq!(
            v["attachments"][0]["fields"][3]["value"],
            "connect: refused"
        );
        let v: Value =
            serde_json::from_str(&render("{}", &alert(AlertKind::Recovered)).unwrap()).unwrap();
        assert_eq!(v["attachments"][0]["color"], "good");
        assert!(v.get("channel").is_none());
        assert!(render(r#"{"chanel": 1}"#, &alert(AlertKind::Down)).is_err());
    }
}
