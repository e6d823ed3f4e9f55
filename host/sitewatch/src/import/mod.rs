//! `sitewatch import gatus config.yaml` and `sitewatch import kuma backup.json`: another
//! monitor's config turned into a config.json (sites with their kinds, intervals, timeouts,
//! headers and expected statuses; notifiers where a type matches, routed to the sites that used
//! them), and a list of what did not map. Secrets (webhook URLs, tokens, keys, passwords) are
//! never written to the file nor printed: each becomes a `*_env` field naming an environment
//! variable, listed with where its value is found in the source.

pub mod gatus;
pub mod kuma;

use serde_json::{Map, Value, json};
use std::io::Write;

/// `sitewatch import`: reads the file, writes the config (checked as sitewatch reads it, with
/// stand-ins for the variables), and prints what to set and what did not map.
pub fn run(args: &crate::cli::ImportArgs) -> anyhow::Result<()> {
    use anyhow::{Context, bail};
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let imported = match args.from {
        crate::cli::ImportFrom::Gatus => gatus::import(&text),
        crate::cli::ImportFrom::Kuma => kuma::import(&text),
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if args.out.exists() && !args.force {
        bail!(
            "{} exists: give another --out, or --force to replace it",
            args.out.display()
        );
    }
    let mut body = serde_json::to_string_pretty(&imported.config())?;
    body.push('\n');
    // Checked as sitewatch will read it; the variables it names stand in with a dummy value.
    crate::config::Config::parse_with_env(&args.out, body.as_bytes(), &|var| {
        Some(if var.ends_with("_URL") {
            "https://imported.invalid/".into()
        } else {
            "imported_placeholder_0123456789".into()
        })
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "the imported config does not check ({}); nothing was written",
            crate::error_chain(&e)
        )
    })?;
    std::fs::write(&args.out, &body).with_context(|| format!("writing {}", args.out.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {}: {} sites, {} notifiers",
        args.out.display(),
        imported.sites.len(),
        imported.notify.len()
    )?;
    if !imported.env.is_empty() {
        writeln!(
            out,
            "set these environment variables (their values are not copied):"
        )?;
        for (var, from) in &imported.env {
            writeln!(out, "  {var}: {}", crate::config::printable(from))?;
        }
    }
    if imported.unmapped.is_empty() {
        writeln!(out, "everything mapped")?;
    } else {
        writeln!(out, "not mapped ({}):", imported.unmapped.len())?;
        for u in &imported.unmapped {
            writeln!(out, "  {}", crate::config::printable(u))?;
        }
    }
    Ok(())
}

/// What an import made.
#[derive(Debug, Default)]
pub struct Imported {
    pub sites: Vec<Value>,
    pub notify: Vec<Value>,
    /// What did not map, each naming the source's item and field.
    pub unmapped: Vec<String>,
    /// Environment variables the config names: (variable, where its value is in the source).
    pub env: Vec<(String, String)>,
}

impl Imported {
    /// The config.json: sites, notifiers, and a server so push sites can be pinged.
    pub fn config(&self) -> Value {
        let mut c = Map::new();
        let sites = self.sites.iter().cloned().map(fit_window).collect();
        c.insert("sites".into(), Value::Array(sites));
        if !self.notify.is_empty() {
            c.insert("notify".into(), Value::Array(self.notify.clone()));
        }
        if self
            .sites
            .iter()
            .any(|s| s.get("kind").and_then(Value::as_str) == Some("push"))
        {
            c.insert("server".into(), json!({"listen": "127.0.0.1:9184"}));
        }
        Value::Object(c)
    }

    /// A variable for a secret of `owner` (a notifier's or a site's name) named `field`,
    /// recorded with where its value is.
    pub(crate) fn secret(
        &mut self,
        prefix: &str,
        owner: &str,
        field: &str,
        source: String,
    ) -> String {
        let mut var = format!("SITEWATCH_{prefix}_{}_{field}", env_part(owner));
        while self.env.iter().any(|(v, _)| *v == var) {
            var.push('_');
        }
        self.env.push((var.clone(), source));
        var
    }
}

/// ntfy's topic URL: the server's (ntfy.sh by default) and the topic.
pub(crate) fn ntfy_url(server: Option<&str>, topic: Option<&str>) -> Value {
    let base = server.unwrap_or("https://ntfy.sh").trim_end_matches('/');
    json!(format!("{base}/{}", topic.unwrap_or_default()))
}

/// An email notifier's `smtp`, `from` and `to` (the source's comma list of addresses).
pub(crate) fn email_fields(
    n: &mut Map<String, Value>,
    smtp: String,
    from: Option<&str>,
    to: Option<&str>,
) {
    n.insert("smtp".into(), json!(smtp));
    n.insert("from".into(), json!(from.unwrap_or_default()));
    let to: Vec<&str> = to
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    n.insert("to".into(), json!(to));
}

/// The default alert window (`alerting.window`).
const DEFAULT_WINDOW_MS: f64 = 120_000.0;

/// A site probed less often than twice in the default window gets a window of three of its
/// intervals (both anchors alert after three failures by default), since sitewatch refuses a
/// window where one failed probe would be an alert.
fn fit_window(mut site: Value) -> Value {
    let Some(ms) = site.get("interval").and_then(Value::as_str).and_then(go_ms) else {
        return site;
    };
    if ms * 2.0 <= DEFAULT_WINDOW_MS || site.pointer("/alerting/window").is_some() {
        return site;
    }
    if let Some(m) = site.as_object_mut() {
        let alerting = m
            .entry("alerting")
            .or_insert_with(|| Value::Object(Map::new()));
        alerting["window"] = Value::String(duration_text(ms * 3.0));
    }
    site
}

/// A name as a part of an environment variable: upper case, `_` for anything else.
fn env_part(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_').to_owned();
    if s.is_empty() { "X".into() } else { s }
}

/// A Go duration (`90s`, `1m30s`, `1h`, `500ms`) as sitewatch writes durations; `None` when
/// it is not one.
pub fn go_duration(text: &str) -> Option<String> {
    go_ms(text).map(duration_text)
}

/// A Go duration in milliseconds.
fn go_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let mut total_ms: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..u_end];
        rest = &rest[u_end..];
        let ms = match unit {
            "ns" => n / 1e6,
            "us" | "µs" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            "h" => n * 3600e3,
            _ => return None,
        };
        total_ms += ms;
    }
    Some(total_ms)
}

/// Milliseconds as the shortest whole duration text.
pub fn duration_text(ms: f64) -> String {
    let ms = ms.round() as u64;
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Status codes `from..=to` as `expect_status` entries: whole classes as `"2xx"`, the rest
/// as codes; `None` for a range too ragged to list (over 20 single codes).
pub fn status_range(from: u16, to: u16) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut singles = 0;
    let mut code = from;
    while code <= to {
        if code.is_multiple_of(100) && code + 99 <= to {
            out.push(Value::String(format!("{}xx", code / 100)));
            code += 100;
        } else {
            out.push(json!(code));
            singles += 1;
            code += 1;
        }
    }
    (singles <= 20).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_status_ranges() {
        assert_eq!(go_duration("5m").as_deref(), Some("5m"));
        assert_eq!(go_duration("1m30s").as_deref(), Some("90s"));
        assert_eq!(go_duration("1h").as_deref(), Some("1h"));
        assert_eq!(go_duration("250ms").as_deref(), Some("250ms"));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(status_range(200, 299), Some(vec![json!("2xx")]));
        assert_eq!(
            status_range(200, 399),
            Some(vec![json!("2xx"), json!("3xx")])
        );
        assert_eq!(status_range(200, 201), Some(vec![json!(200), json!(201)]));
        assert_eq!(status_range(201, 299), None);
        assert_eq!(env_part("My Slack!"), "MY_SLACK");
    }
}
