//! `markdown`: renders an alert as Markdown (for chat tools, issue trackers, email).
//!
//! Config (optional): `{"heading": "##"}` sets the heading level (default `###`).

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "alert-formatter" });

use exports::sitewatch::plugin::formatter::Guest;
use sitewatch::plugin::types::{Alert, AlertKind};
use std::fmt::Write;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    heading: Option<String>,
}

pub fn render(config: &str, a: &Alert) -> Result<String, String> {
    let c: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
    let heading = c.heading.unwrap_or_else(|| "###".into());
    let mut out = String::new();
    let title = match a.kind {
        AlertKind::Down => format!("🔴 {} is down", a.site),
        AlertKind::Recovered => format!("🟢 {} recovered", a.site),
    };
    let _ = writeln!(out, "{heading} {title}\n");
    let _ = writeln!(out, "- **URL**: <{}>", a.url);
    let _ = writeln!(out, "- **Availability**: {:.2}%", a.availability * 100.0);
    let _ = writeln!(out, "- **Time**: {}", a.time);
    if let Some(since) = &a.down_since {
        let _ = writeln!(out, "- **Down since**: {since}");
    }
    if let Some(secs) = a.down_for_seconds {
        let _ = writeln!(out, "- **Down for**: {secs:.0} s");
    }
    if !a.recent_errors.is_empty() {
        let _ = writeln!(out, "\nRecent errors:\n");
        for e in &a.recent_errors {
            let _ = writeln!(out, "- `{}`", e.replace('`', "'"));
        }
    }
    Ok(out.trim_end().to_owned())
}

struct Markdown;

impl Guest for Markdown {
    fn format(config: String, alert: Alert) -> Result<String, String> {
        render(&config, &alert)
    }
}

export!(Markdown);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown() {
        let a = Alert {
            kind: AlertKind::Recovered,
            site: "api".into(),
            url: "http://api/".into(),
            availability: 0.95,
            time: "2026-01-01T00:03:00Z".into(),
            down_since: Some("2026-01-01T00:00:00Z".into()),
            down_for_seconds: Some(180.0),
            recent_errors: vec!["status: `500`".into()],
            message: String::new(),
        };
        let md = render("{}", &a).unwrap();
        assert!(md.starts_with("### 🟢 api recovered\n"), "{md}");
        assert!(md.contains("- **Availability**: 95.00%"));
        assert!(md.contains("- **Down for**: 180 s"));
        assert!(md.ends_with("- `status: '500'`"), "{md}");
        assert!(
            render(r##"{"heading": "#"}"##, &a)
                .unwrap()
                .starts_with("# ")
        );
    }
}
