//! `sitewatch check-config --print`: the resolved config, every default filled in, as JSON.
//! Secrets are `***`: a site's URL is shown as written (its `${NAME}` references, never their
//! values, as every other output shows it), header values that name a variable or hold a
//! credential (`Authorization`, `Proxy-Authorization`, `Cookie`), a notifier's URL from
//! `url_env`, its header values (they may expand variables), keys, tokens and passwords, and the
//! server's token. Durations are written as the config takes them (`"30s"`, `"2m"`), sizes in
//! bytes with a unit (`"1MiB"`).

use super::notify::NotifierConfig;
use super::{Config, PluginUse, SiteConfig};
use crate::alert::{AlertRule, LatencyObjective};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What stands for a secret.
pub(crate) use sitewatch_core::secret::HIDDEN;

/// The resolved config as pretty JSON text, its fields in the order the README lists them.
pub fn to_json(config: &Config) -> String {
    serde_json::to_string_pretty(&Printed::of(config)).expect("a config serializes")
}

/// The resolved config as a JSON value.
pub fn resolved(config: &Config) -> Value {
    serde_json::to_value(Printed::of(config)).expect("a config serializes")
}

#[derive(Serialize)]
struct Printed {
    location: String,
    sites: Vec<PrintedSite>,
    alerting: PrintedAlerting,
    maintenance: Vec<String>,
    announcements: Vec<Value>,
    dashboard: Value,
    probing: Value,
    storage: Value,
    plugins: Value,
    notify: Vec<PrintedNotifier>,
    server: Value,
    cluster: Value,
}

#[derive(Serialize)]
struct PrintedNotifier {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    settings: Map<String, Value>,
}

#[derive(Serialize)]
struct PrintedSite {
    name: String,
    kind: &'static str,
    url: String,
    /// The settings of a kind other than http (target, tls, send, expect; the query).
    #[serde(flatten)]
    probe: Map<String, Value>,
    method: String,
    interval: String,
    timeout: String,
    headers: BTreeMap<String, String>,
    body: Value,
    expect_status: Vec<String>,
    keep_alive: bool,
    follow_redirects: Value,
    tls_insecure: bool,
    tls_ca: Option<String>,
    max_body: String,
    max_in_flight: u32,
    tags: Vec<String>,
    domain_expiry: bool,
    locations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
    alerting: PrintedRule,
    maintenance: Vec<String>,
    checks: Vec<Value>,
}

#[derive(Serialize)]
struct PrintedRule {
    threshold: f64,
    window: String,
    degraded: BTreeMap<&'static str, String>,
    cert_warning: String,
    domain_warning: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    flapping: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slo: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct PrintedAlerting {
    #[serde(flatten)]
    rule: PrintedRule,
    formatter: Option<Value>,
}

impl Printed {
    fn of(c: &Config) -> Self {
        Self {
            location: c.location.clone(),
            sites: c.sites.iter().map(site).collect(),
            alerting: PrintedAlerting {
                rule: rule(&c.alerting.rule()),
                formatter: c.alerting.formatter.as_ref().map(plugin_use),
            },
            maintenance: c.maintenance.iter().map(|w| w.describe()).collect(),
            announcements: c
                .announcements
                .iter()
                .map(|a| {
                    json!({"name": a.name, "message": a.message,
                           "start": a.start.to_rfc3339(), "end": a.end.to_rfc3339()})
                })
                .collect(),
            dashboard: json!({
                "views": c.dashboard.views.iter().map(|v| json!({
                    "name": v.name, "window": duration(v.window), "every": duration(v.every),
                })).collect::<Vec<_>>(),
            }),
            probing: json!({
                "max_in_flight": c.probing.max_in_flight
                    .unwrap_or_else(crate::default_max_in_flight),
                "source_address": c.probing.source_address.map(|a| a.to_string()),
                "canaries": c.canaries.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
                "canary_interval": duration(c.canaries.interval),
            }),
            cluster: match &c.cluster {
                None => Value::Null,
                Some(k) => json!({
                    "nats": k.nats.iter().map(|u| without_password(u, true)).collect::<Vec<_>>(),
                    "location": k.location,
                    "node": k.node,
                    "confirm": k.confirm,
                    "heartbeat_ttl": duration(k.heartbeat_ttl),
                    "lease_ttl": duration(k.lease_ttl),
                    "alone_after": duration(k.alone_after),
                    "replicas": k.replicas,
                    "buffer": k.buffer,
                    "stream_max_age": duration(k.stream_max_age),
                    "prefix": k.prefix,
                    "auth": k.auth.describe(),
                    "tls": k.tls.as_ref().map(|t| json!({
                        "ca": t.ca.as_ref().map(|p| p.display().to_string()),
                        "cert": t.client.as_ref().map(|(c, _)| c.display().to_string()),
                        "key": t.client.as_ref().map(|(_, k)| k.display().to_string()),
                    })),
                }),
            },
            storage: json!({
                // In days (`365d`): humantime's months and years are not whole days.
                "retention": {
                    "raw": crate::history::days(c.storage.retention.raw),
                    "minute": crate::history::days(c.storage.retention.minute),
                    "hour": crate::history::days(c.storage.retention.hour),
                    "day": crate::history::days(c.storage.retention.day),
                    "alerts": c.storage.retention.alerts.map(crate::history::days),
                },
                "rollup_every": duration(c.storage.rollup_every),
                "influxdb": c.storage.influxdb.as_ref().map(|i| json!({
                    "url": without_password(i.url.as_str(), false),
                    "org": i.org,
                    "bucket": i.bucket,
                    "token_env": i.token_env,
                    "token": i.token_env.as_ref().map(|_| HIDDEN),
                    "batch_size": i.batch_size,
                    "flush_interval": duration(i.flush_interval),
                    "max_outbox_lines": i.max_outbox_lines,
                })),
            }),
            plugins: json!({
                "dir": c.plugins.dir.display().to_string(),
                "memory_limit": size(c.plugins.limits.memory),
                "total_memory": c.plugins.total_memory.map(size),
                "time_limit": duration(c.plugins.limits.time),
            }),
            notify: c.notify.iter().map(notifier).collect(),
            server: match &c.server {
                None => Value::Null,
                Some(s) => json!({
                    "listen": s.listen.to_string(),
                    "tokens": s.tokens.iter().map(|t| json!({
                        "name": t.name, "scope": t.scope.as_str(), "value": HIDDEN,
                    })).collect::<Vec<_>>(),
                    "allowed_hosts": s.allowed_hosts,
                    "public": public_parts(&s.public),
                }),
            },
        }
    }
}

/// The parts `server.public` opens, as typed.
fn public_parts(p: &crate::Public) -> Vec<&'static str> {
    [("page", p.page), ("badges", p.badges), ("feed", p.feed)]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(part, _)| part)
        .collect()
}

/// A URL with its password, if any, shown as `***` (and, for a NATS URL, a lone user, which
/// is a token).
fn without_password(url: &str, user_is_secret: bool) -> String {
    match url::Url::parse(url) {
        Ok(u) => super::values::masked_url(&u, user_is_secret),
        Err(_) => url.to_owned(),
    }
}

fn site(s: &SiteConfig) -> PrintedSite {
    PrintedSite {
        name: s.name.clone(),
        kind: s.kind.as_str(),
        url: s.url.clone(),
        probe: match &s.kind {
            crate::kind::Kind::Http => Map::new(),
            crate::kind::Kind::Tcp(t) => json!({
                "target": format!("{}:{}", t.host, t.port),
                "tls": t.tls,
                "send": t.send,
                "expect": t.expect.as_ref().map(ToString::to_string),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            crate::kind::Kind::WebSocket(w) => json!({
                "send": w.send,
                "expect": w.expect.as_ref().map(ToString::to_string),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            crate::kind::Kind::Grpc(g) => json!({
                "target": format!("{}:{}", g.host, g.port),
                "tls": g.tls,
                "service": g.service,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            crate::kind::Kind::Push(p) => json!({
                "token": HIDDEN,
                "period": match &p.schedule {
                    crate::kind::PushSchedule::Period(d) => Some(duration(*d)),
                    crate::kind::PushSchedule::Cron(_) => None,
                },
                "cron": match &p.schedule {
                    crate::kind::PushSchedule::Cron(w) => match &w.when {
                        crate::maintenance::When::Recurring { text, tz, .. } => {
                            Some(format!("{text} ({tz})"))
                        }
                        crate::maintenance::When::Once { .. } => None,
                    },
                    crate::kind::PushSchedule::Period(_) => None,
                },
                "grace": duration(p.grace),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            crate::kind::Kind::Script(sc) => json!({
                "plugin": plugin_use(&sc.plugin),
                "allow": sc.allow,
                "max_requests": sc.max_requests,
                "secrets": sc.secrets.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            crate::kind::Kind::Icmp(i) => json!({"target": i.host, "count": i.count})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            crate::kind::Kind::Dns(d) => json!({
                "target": d.name,
                "record_type": d.record_type,
                "resolver": d.resolver.map(|r| r.to_string()).unwrap_or_else(|| "(the system's)".into()),
                "expect_rcode": d.expect_rcode,
                "expect_answers": d.expect_answers,
                "answers_match": if d.exact { "exact" } else { "contains" },
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        },
        method: s.method.to_string(),
        interval: duration(s.interval),
        timeout: duration(s.timeout),
        headers: s
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if v.is_sensitive() {
                    HIDDEN.to_owned()
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                };
                (k.as_str().to_owned(), shown)
            })
            .collect(),
        body: match &s.body {
            None => Value::Null,
            Some(b) => json!({
                "bytes": b.bytes.len(),
                "content_type": b.content_type.as_ref()
                    .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
                    .unwrap_or_else(|| "(from headers)".into()),
            }),
        },
        expect_status: s
            .expect_status
            .to_string()
            .split(", ")
            .map(str::to_owned)
            .collect(),
        keep_alive: s.keep_alive,
        follow_redirects: match s.follow_redirects {
            crate::FollowRedirects::Any => Value::Bool(true),
            crate::FollowRedirects::Never => Value::Bool(false),
            crate::FollowRedirects::SameOrigin => Value::from("same-origin"),
        },
        tls_insecure: s.tls_insecure,
        tls_ca: s.tls_ca.as_ref().map(|p| p.display().to_string()),
        max_body: size(s.max_body),
        max_in_flight: s.max_in_flight,
        tags: s.tags.clone(),
        domain_expiry: s.domain_expiry,
        locations: s.locations.clone(),
        depends_on: s.depends_on.clone(),
        alerting: rule(&s.alerting),
        maintenance: s
            .maintenance
            .windows()
            .iter()
            .map(|w| w.describe())
            .collect(),
        checks: s.checks.iter().map(plugin_use).collect(),
    }
}

fn rule(r: &AlertRule) -> PrintedRule {
    PrintedRule {
        threshold: r.threshold,
        window: duration(r.window),
        degraded: degraded(&r.degraded),
        cert_warning: duration(r.cert_warning),
        domain_warning: duration(r.domain_warning),
        flapping: r
            .flapping
            .map(|f| json!({"changes": f.changes, "within": duration(f.within)})),
        slo: r.slo.map(|o| {
            json!({"objective": crate::alert::objective_text(o.objective), "period": duration(o.period)})
        }),
    }
}

fn degraded(objectives: &[LatencyObjective]) -> BTreeMap<&'static str, String> {
    objectives
        .iter()
        .map(|o| (o.metric.key(), duration(o.limit)))
        .collect()
}

fn plugin_use(u: &PluginUse) -> Value {
    json!({
        "plugin": u.plugin,
        "config": serde_json::from_str::<Value>(&u.config).unwrap_or(Value::String(u.config.clone())),
        "memory_limit": size(u.limits.memory),
        "time_limit": duration(u.limits.time),
    })
}

fn notifier(n: &NotifierConfig) -> PrintedNotifier {
    let mut v = json!({
        "url": n.url.as_ref().map(|u| if n.url_from_env { HIDDEN.to_owned() } else { u.expose().to_string() }),
        "on": n.on.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "sites": n.sites,
        "tags": n.tags,
        "repeat": n.repeat.map(duration),
        "formatter": n.formatter.as_ref().map(plugin_use),
        "group_wait": duration(n.group_wait),
        "min_interval": duration(n.min_interval),
        "max_age": duration(n.max_age),
        "timeout": duration(n.timeout),
        "backoff_min": duration(n.backoff_min),
        "backoff_max": duration(n.backoff_max),
    });
    let own = Value::Object(n.service.printed());
    if let (Some(v), Value::Object(own)) = (v.as_object_mut(), own) {
        v.extend(own);
    }
    PrintedNotifier {
        name: n.name.clone(),
        kind: n.kind().as_str(),
        settings: match v {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    }
}

/// `30s`, `2m`, `1h 30m`, `250ms`: what the config takes.
fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `1MiB`, `512KiB`, `1000B`.
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (factor, unit) in UNITS {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(var: &str) -> Option<String> {
        match var {
            "SITE_KEY" => Some("s3cr3t-value".into()),
            "SITE_TOKEN" => Some("t0ken-value".into()),
            "SLACK_URL" => Some("https://hooks.slack.com/services/T0/B0/slacksecret".into()),
            "HOOK_TOKEN" => Some("hooksecret".into()),
            "PD_KEY" => Some("pdsecret0123".into()),
            "SERVER_TOKEN" => Some("serversecret".into()),
            _ => None,
        }
    }

    fn print(text: &str) -> (Value, String) {
        let c = Config::parse_with_env(
            Path::new("/etc/sitewatch/config.json"),
            text.as_bytes(),
            &env,
        )
        .unwrap();
        (resolved(&c), to_json(&c))
    }

    #[test]
    fn every_default_is_filled_in() {
        let (v, _) = print(r#"{"sites": [{"url": "https://example.com"}], "location": "lab"}"#);
        let s = &v["sites"][0];
        assert_eq!(s["name"], "example.com");
        assert_eq!(s["url"], "https://example.com/");
        assert_eq!(s["method"], "GET");
        assert_eq!(s["interval"], "30s");
        assert_eq!(s["timeout"], "10s");
        assert_eq!(s["expect_status"], json!(["2xx"]));
        assert_eq!(s["max_body"], "1MiB");
        assert_eq!(s["max_in_flight"], 1);
        assert_eq!(s["body"], Value::Null);
        assert_eq!(s["tags"], json!([]));
        assert_eq!(
            s["alerting"],
            json!({"threshold": 0.8, "window": "2m", "degraded": {}, "cert_warning": "14days", "domain_warning": "30days"})
        );
        assert_eq!(v["alerting"]["window"], "2m");
        assert_eq!(v["alerting"]["formatter"], Value::Null);
        assert_eq!(
            v["dashboard"]["views"],
            json!([{"name": "10m", "window": "10m", "every": "10s"}, {"name": "1h", "window": "1h", "every": "1m"}])
        );
        assert_eq!(
            v["storage"]["retention"],
            serde_json::json!({"raw": "7d", "minute": "30d", "hour": "365d", "day": "1825d", "alerts": null})
        );
        assert_eq!(v["storage"]["influxdb"], Value::Null);
        assert_eq!(v["plugins"]["dir"], "/etc/sitewatch/target/plugins");
        assert_eq!(v["plugins"]["memory_limit"], "32MiB");
        assert_eq!(v["plugins"]["time_limit"], "100ms");
        assert!(v["probing"]["max_in_flight"].as_u64().unwrap() >= 16);
        assert_eq!(v["server"], Value::Null);
        assert_eq!(v["notify"], json!([]));
        assert_eq!(v["location"], "lab");
    }

    #[test]
    fn the_site_rules_and_requests_are_shown_as_resolved() {
        let (v, _) = print(
            r#"{"sites": [{"name": "api", "url": "https://api.example.com/", "method": "post",
                 "body": {"q": 1}, "interval": "10s", "tags": ["prod", "eu"],
                 "alerting": {"threshold": 0.95, "degraded": {"response_p95": "800ms"}},
                 "maintenance": [{"name": "nightly", "cron": "0 2 * * *", "duration": "1h", "tz": "Europe/Paris"}],
                 "checks": [{"plugin": "keyword", "config": {"contains": "OK"}, "time_limit": "50ms"}]}],
                "maintenance": [{"start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z"}]}"#,
        );
        let s = &v["sites"][0];
        assert_eq!(s["method"], "POST");
        assert_eq!(
            s["body"],
            json!({"bytes": 7, "content_type": "application/json"})
        );
        assert_eq!(s["tags"], json!(["prod", "eu"]));
        assert_eq!(s["alerting"]["threshold"], 0.95);
        assert_eq!(s["alerting"]["degraded"], json!({"response_p95": "800ms"}));
        assert_eq!(
            s["maintenance"],
            json!([
                "once, 2026-12-24T22:00:00Z to 2026-12-25T02:00:00Z",
                "nightly: \"0 2 * * *\" (Europe/Paris) for 1h"
            ])
        );
        assert_eq!(
            s["checks"],
            json!([{"plugin": "keyword", "config": {"contains": "OK"}, "memory_limit": "32MiB", "time_limit": "50ms"}])
        );
        assert_eq!(v["maintenance"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn secrets_are_stars_and_urls_are_shown_as_written() {
        let (v, text) = print(
            r#"{"sites": [{"name": "api", "url": "https://api.example.com/?key=${SITE_KEY}",
                 "headers": {"X-Token": "${SITE_TOKEN}", "Authorization": "Basic typed-in", "User-Agent": "sw"}}],
                "notify": [
                  {"name": "slack", "type": "slack", "url_env": "SLACK_URL"},
                  {"name": "hook", "type": "webhook", "url": "https://hooks.example.com/x",
                   "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}, "tags": ["prod"]},
                  {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}],
                "server": {"listen": "127.0.0.1:9184", "auth_token_env": "SERVER_TOKEN"},
                "storage": {"influxdb": {"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b", "token_env": "INFLUX_TOKEN"}}}"#,
        );
        for secret in [
            "s3cr3t-value",
            "t0ken-value",
            "slacksecret",
            "hooksecret",
            "pdsecret0123",
            "serversecret",
            "typed-in",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let s = &v["sites"][0];
        assert_eq!(s["url"], "https://api.example.com/?key=${SITE_KEY}");
        assert_eq!(
            s["headers"],
            json!({"x-token": HIDDEN, "authorization": HIDDEN, "user-agent": "sw"})
        );
        let n = &v["notify"];
        assert_eq!(n[0]["url"], HIDDEN);
        assert_eq!(n[0]["min_interval"], "1s");
        assert_eq!(n[1]["url"], "https://hooks.example.com/x");
        assert_eq!(n[1]["headers"], json!({"Authorization": HIDDEN}));
        assert_eq!(n[1]["method"], "POST");
        assert_eq!(n[1]["tags"], json!(["prod"]));
        assert_eq!(n[1]["group_wait"], "10s");
        assert_eq!(n[2]["routing_key"], HIDDEN);
        assert_eq!(n[2]["url"], "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(
            v["server"],
            json!({"listen": "127.0.0.1:9184",
                   "tokens": [{"name": "auth_token", "scope": "read", "value": HIDDEN}],
                   "allowed_hosts": [], "public": []})
        );
        assert_eq!(v["storage"]["influxdb"]["token"], HIDDEN);
        assert_eq!(v["storage"]["influxdb"]["token_env"], "INFLUX_TOKEN");
    }

    #[test]
    fn the_text_lists_fields_in_a_reading_order() {
        let (_, text) = print(
            r#"{"sites": [{"url": "https://example.com"}],
                "notify": [{"name": "hook", "type": "webhook", "url": "https://h.example.com/"}]}"#,
        );
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} in {text}"))
        };
        assert!(at("\"location\"") < at("\"sites\"") && at("\"sites\"") < at("\"alerting\""));
        assert!(at("\"name\": \"example.com\"") < at("\"url\": \"https://example.com/\""));
        assert!(at("\"url\": \"https://example.com/\"") < at("\"interval\": \"30s\""));
        assert!(at("\"name\": \"hook\"") < at("\"type\": \"webhook\""));
    }

    #[test]
    fn sizes_take_the_largest_whole_unit() {
        assert_eq!(size(1 << 20), "1MiB");
        assert_eq!(size(512 * 1024), "512KiB");
        assert_eq!(size(1000), "1000B");
        assert_eq!(size(3 << 30), "3GiB");
        assert_eq!(size(0), "0B");
    }
}
