//! `json`: renders an alert as one JSON object, for log pipelines and webhooks.
//!
//! Config (optional): `{"extra": {"team": "ops"}}` adds fixed fields to every object.

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "alert-formatter" });

use exports::sitewatch::plugin::formatter::Guest;
use serde_json::{Map, Value, json};
use sitewatch::plugin::types::{Alert, AlertKind};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    extra: Map<String, Value>,
}

pub fn render(config: &str, a: &Alert) -> Result<String, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    let mut v = json!({
        "kind": match a.kind { AlertKind::Down => "down", AlertKind::Recovered => "recovered" },
        "site": a.site,
        "url": a.url,
        "availability": a.availability,
        "time": a.time,
        "down_since": a.down_since,
        "down_for_s": a.down_for_seconds,
        "recent_errors": a.recent_errors,
        "message": a.message,
    });
    let obj = v.as_object_mut().expect("an object");
    for (k, val) in c.extra {
        obj.entry(k).or_insert(val);
    }
    Ok(v.to_string())
}

struct JsonFormatter;

impl Guest for JsonFormatter {
    fn format(config: String, alert: Alert) -> Result<String, String> {
        render(&config, &alert)
    }
}

export!(JsonFormatter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_object_with_extras() {
        let a = Alert {
            kind: AlertKind::Down,
            site: "api".into(),
            url: "http://api/".into(),
            availability: 0.25,
            time: "t".into(),
            down_since: None,
            down_for_seconds: None,
            recent_errors: vec![],
            message: "m".into(),
        };
        let v: Value = serde_json::from_str(
            &render(r#"{"extra": {"team": "ops", "site": "x"}}"#, &a).unwrap(),
        )
        .unwrap();
        assert_eq!(v["kind"], "down");
        assert_eq!(v["availability"], 0.25);
        assert_eq!(v["team"], "ops");
        assert_eq!(v["site"], "api", "extras never overwrite alert fields");
    }
}
