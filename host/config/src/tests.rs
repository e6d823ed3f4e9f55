use super::*;
use crate::alert::LatencyMetric;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("config.json"), text.as_bytes())
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_issue_example_parses_with_defaults() {
    let c = parse(
        r#"{
          "sites": [
            {"name": "example", "url": "https://example.com/", "interval": "10s", "timeout": "5s",
             "method": "GET", "headers": {"User-Agent": "sitewatch"}, "expect_status": ["2xx"]},
            {"url": "http://127.0.0.1:8080/health", "interval": 2}
          ],
          "alerting": {"threshold": 0.8, "window": "2m"},
          "dashboard": {"views": [{"window": "10m", "every": "10s"}, {"window": "1h", "every": "1m"}]}
        }"#,
    )
    .unwrap();
    assert_eq!(c.sites.len(), 2);
    let s = &c.sites[0];
    assert_eq!(s.name, "example");
    assert_eq!(s.interval, Duration::from_secs(10));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.headers["user-agent"], "sitewatch");
    assert_eq!(s.max_in_flight, 1);
    assert!(!s.keep_alive);
    let s = &c.sites[1];
    assert_eq!(s.name, "127.0.0.1", "name defaults to the URL's host");
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        s.max_in_flight, 5,
        "10s timeout over a 2s interval needs 5 probes in flight"
    );
    assert_eq!(s.method, reqwest::Method::GET);
    assert_eq!(c.alerting.threshold, 0.8);
    assert_eq!(c.alerting.window, Duration::from_secs(120));
    let names: Vec<_> = c.dashboard.views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["10m", "1h"]);
    assert_eq!(c.dashboard.views[1].every, Duration::from_secs(60));
}

#[test]
fn missing_sections_take_the_spec_defaults() {
    let c = parse(r#"{"sites": []}"#).unwrap();
    assert_eq!(
        c.alerting,
        AlertingConfig {
            threshold: 0.8,
            window: Duration::from_secs(120),
            formatter: None,
            degraded: Vec::new(),
            cert_warning: Duration::from_secs(14 * 24 * 3600),
            domain_warning: Duration::from_secs(30 * 24 * 3600),
            flapping: None,
            slo: None,
        }
    );
    assert_eq!(c.dashboard, DashboardConfig::default());
    assert_eq!(c.dashboard.views[0].window, Duration::from_secs(600));
    assert_eq!(c.dashboard.views[0].every, Duration::from_secs(10));
}

#[test]
fn unknown_field_names_the_path_and_site() {
    let e = err(r#"{"sites": [{"name": "api", "url": "http://a/", "intervall": "10s"}]}"#);
    assert!(
        e.starts_with("config.json: sites[0].intervall (site \"api\"): unknown field `intervall`"),
        "{e}"
    );
    let e = err(r#"{"sites": [], "alerts": {}}"#);
    assert!(e.contains("unknown field `alerts`"), "{e}");
}

#[test]
fn bad_url_names_the_site() {
    let e = err(
        r#"{"sites": [{"name": "x", "url": "http://a/"}, {"name": "api", "url": "not a url"}]}"#,
    );
    assert!(
        e.starts_with("config.json: sites[1].url (site \"api\"): \"not a url\" is not a valid URL"),
        "{e}"
    );
    let e = err(r#"{"sites": [{"url": "ftp://files.example/"}]}"#);
    assert!(
        e.contains("sites[0].url") && e.contains("http:// or https://"),
        "{e}"
    );
}

#[test]
fn zero_or_negative_interval_is_rejected() {
    for bad in [r#""0s""#, "0", "-3", r#""-1s""#] {
        let e = err(&format!(
            r#"{{"sites": [{{"name": "a", "url": "http://a/", "interval": {bad}}}]}}"#
        ));
        assert!(
            e.contains("sites[0].interval (site \"a\")") && e.contains("greater than zero"),
            "{bad}: {e}"
        );
    }
    let e = err(r#"{"sites": [{"name": "a", "url": "http://a/", "timeout": "soon"}]}"#);
    assert!(
        e.contains("sites[0].timeout") && e.contains("not a duration"),
        "{e}"
    );
}

#[test]
fn threshold_outside_zero_one_is_rejected() {
    for bad in ["1.5", "-0.1", "80"] {
        let e = err(&format!(
            r#"{{"sites": [], "alerting": {{"threshold": {bad}}}}}"#
        ));
        assert!(
            e.contains("alerting.threshold") && e.contains("between 0 and 1"),
            "{e}"
        );
    }
    assert!(parse(r#"{"sites": [], "alerting": {"threshold": 1}}"#).is_ok());
    assert!(parse(r#"{"sites": [], "alerting": {"threshold": 0}}"#).is_ok());
}

#[test]
fn duplicate_names_are_rejected() {
    let e = err(r#"{"sites": [{"url": "http://a.example/x"}, {"url": "https://a.example/y"}]}"#);
    assert!(
        e.contains("sites[1].name (site \"a.example\")") && e.contains("unique"),
        "{e}"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let e = err("{\n  \"sites\": [\n    {\"url\": \"http://a/\",}\n  ]\n}");
    assert!(e.starts_with("config.json:3:"), "{e}");
    assert!(e.contains("invalid JSON"), "{e}");
    let e = err("");
    assert!(e.contains("invalid JSON"), "{e}");
    let e = err(r#"{"sites": []} trailing"#);
    assert!(e.contains("invalid JSON"), "{e}");
}

#[test]
fn wrong_types_and_bad_values_name_the_field() {
    let e = err(r#"{"sites": [{"url": "http://a/", "headers": {"Bad Header": "x"}}]}"#);
    assert!(
        e.contains("sites[0].headers") && e.contains("Bad Header"),
        "{e}"
    );
    let e = err(r#"{"sites": [{"url": "http://a/", "method": "FETCH"}]}"#);
    assert!(e.contains("sites[0].method"), "{e}");
    let e = err(r#"{"sites": [{"url": "http://a/", "expect_status": ["7xx"]}]}"#);
    assert!(e.contains("sites[0].expect_status"), "{e}");
    let e = err(r#"{"sites": {"url": "http://a/"}}"#);
    assert!(e.contains("sites") && e.contains("invalid type"), "{e}");
    let e = err(r#"{"sites": [], "dashboard": {"views": [{"window": "10m", "every": "0s"}]}}"#);
    assert!(e.contains("dashboard.views[0].every"), "{e}");
    let e = err(r#"{"sites": [{"url": "http://a/", "max_in_flight": 0}]}"#);
    assert!(e.contains("sites[0].max_in_flight"), "{e}");
}

#[test]
fn a_missing_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/sitewatch.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/sitewatch.json"), "{e}");
}

#[test]
fn storage_section() {
    let c = parse(r#"{"sites": []}"#).unwrap();
    assert_eq!(c.storage.retention, crate::history::Retention::default());
    assert_eq!(c.storage.retention.raw, Duration::from_secs(7 * 86400));
    assert_eq!(
        c.storage.retention.alerts, None,
        "alerts are kept for ever by default"
    );
    assert_eq!(c.storage.influxdb, None);
    let c = parse(
        r#"{"sites": [], "storage": {"retention": "2d", "influxdb": {"url": "http://127.0.0.1:8086",
            "org": "o", "bucket": "b", "token_env": "INFLUX_TOKEN", "batch_size": 10, "flush_interval": "250ms"}}}"#,
    )
    .unwrap();
    assert_eq!(c.storage.retention.raw, Duration::from_secs(2 * 86400));
    assert_eq!(
        c.storage.retention.day,
        Duration::from_secs(5 * 365 * 86400)
    );
    let i = c.storage.influxdb.unwrap();
    assert_eq!(
        (i.org.as_str(), i.bucket.as_str(), i.batch_size),
        ("o", "b", 10)
    );
    assert_eq!(i.flush_interval, Duration::from_millis(250));
    let e = err(
        r#"{"sites": [], "storage": {"influxdb": {"url": "nope", "org": "o", "bucket": "b"}}}"#,
    );
    assert!(e.contains("storage.influxdb.url"), "{e}");
    let e = err(
        r#"{"sites": [], "storage": {"influxdb": {"url": "http://x", "org": "o", "bucket": "b", "token": "secret"}}}"#,
    );
    assert!(
        e.contains("unknown field `token`"),
        "the token never goes in the file: {e}"
    );
    let e = err(r#"{"sites": [], "storage": {"retention": "0s"}}"#);
    assert!(e.contains("storage.retention"), "{e}");
}

#[test]
fn retention_per_tier() {
    let c = parse(
        r#"{"sites": [], "storage": {"retention": {"raw": "2d", "hour": "90d", "alerts": "730d"},
            "rollup_every": "30s"}}"#,
    )
    .unwrap();
    let r = c.storage.retention;
    assert_eq!(r.raw, Duration::from_secs(2 * 86400));
    assert_eq!(r.minute, Duration::from_secs(30 * 86400), "the default");
    assert_eq!(r.hour, Duration::from_secs(90 * 86400));
    assert_eq!(r.alerts, Some(Duration::from_secs(730 * 86400)));
    assert_eq!(c.storage.rollup_every, Duration::from_secs(30));
    let e = err(r#"{"sites": [], "storage": {"retention": {"minute": "400d"}}}"#);
    assert!(
        e.contains("storage.retention.minute") && e.contains("longer than storage.retention.hour"),
        "{e}"
    );
    let e = err(r#"{"sites": [], "storage": {"retention": {"hour": "0s"}}}"#);
    assert!(e.contains("storage.retention.hour"), "{e}");
    let e = err(r#"{"sites": [], "storage": {"retention": {"minutes": "1d"}}}"#);
    assert!(e.contains("storage.retention"), "{e}");
}

#[test]
fn a_missing_token_variable_is_named_without_a_value() {
    let c = parse(
        r#"{"sites": [], "storage": {"influxdb": {"url": "http://x", "org": "o", "bucket": "b",
            "token_env": "SITEWATCH_TEST_SURELY_UNSET_TOKEN"}}}"#,
    )
    .unwrap();
    let e = c.storage.influxdb.unwrap().token().unwrap_err().to_string();
    assert!(e.contains("SITEWATCH_TEST_SURELY_UNSET_TOKEN"), "{e}");
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"{"sites": [{"name": "api", "url": "https://a.example/x", "interval": "10s", "timeout": 5,
        "method": "GET", "headers": {"X-A": "b"}, "expect_status": ["2xx", 301], "max_body": "1MiB",
        "checks": [{"plugin": "keyword", "config": {"contains": "OK"}, "time_limit": "50ms"}]}],
        "alerting": {"threshold": 0.8, "window": "2m", "formatter": {"plugin": "slack"}},
        "dashboard": {"views": [{"window": "10m", "every": "10s"}]},
        "storage": {"retention": "7d", "influxdb": {"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b"}},
        "plugins": {"dir": "p", "memory_limit": "16MiB", "time_limit": "100ms"}}"#;

    fn outcome(bytes: &[u8]) -> Result<Config, String> {
        Config::parse(Path::new("fuzz.json"), bytes).map_err(|e| e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Any bytes at all: a config or an error that names the file, never a panic.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Err(e) = outcome(&bytes) {
                prop_assert!(e.starts_with("fuzz.json"), "{}", e);
            }
        }

        /// A valid config with a few characters replaced: the near misses real edits make.
        #[test]
        fn mutated_valid_config(edits in proptest::collection::vec((0usize..VALID.len(), prop::sample::select(
            vec!['"', '{', '}', '[', ']', ',', ':', '0', '9', '-', '.', 'e', 'x', ' ', '\\', 'ü', '\u{0}'])), 1..6)) {
            let mut chars: Vec<char> = VALID.chars().collect();
            for (i, c) in edits {
                let i = i % chars.len();
                chars[i] = c;
            }
            let text: String = chars.into_iter().collect();
            if let Err(e) = outcome(text.as_bytes()) {
                prop_assert!(e.starts_with("fuzz.json"), "{}", e);
            }
        }

        /// Any number in any numeric field: accepted only when it makes sense.
        #[test]
        fn numbers_in_every_field(n in prop::num::f64::ANY) {
            let text_n = if n.is_finite() { n.to_string() } else { "1e999".into() };
            let close = |got: f64| (got - n).abs() <= 1e-6 * n.abs().max(1.0);
            for field in ["interval", "timeout", "max_body", "max_in_flight"] {
                let text = format!(r#"{{"sites": [{{"url": "http://a/", "{field}": {text_n}}}]}}"#);
                match outcome(text.as_bytes()) {
                    // Accepted only in range, and as the number written.
                    Ok(c) => {
                        let s = &c.sites[0];
                        let ok = match field {
                            "interval" => n > 0.0 && close(s.interval.as_secs_f64()),
                            "timeout" => n > 0.0 && close(s.timeout.as_secs_f64()),
                            "max_body" => n >= 0.0 && n.fract() == 0.0 && s.max_body as f64 == n,
                            _ => (1.0..=64.0).contains(&n) && f64::from(s.max_in_flight) == n,
                        };
                        prop_assert!(ok, "{field} = {n} accepted as {s:?}");
                    }
                    // Refused with the field named (a number JSON cannot hold is a syntax error).
                    Err(e) => prop_assert!(
                        e.contains(&format!("sites[0].{field}"))
                            || (!n.is_finite() && e.contains("invalid JSON")),
                        "{}",
                        e
                    ),
                }
            }
            match outcome(format!(r#"{{"sites": [], "alerting": {{"threshold": {text_n}}}}}"#).as_bytes()) {
                Ok(c) => prop_assert!((0.0..=1.0).contains(&n) && close(c.alerting.threshold), "threshold {n}"),
                Err(e) => prop_assert!(
                    e.contains("alerting.threshold") || (!n.is_finite() && e.contains("invalid JSON")),
                    "{}",
                    e
                ),
            }
        }
    }

    #[test]
    fn the_valid_seed_is_valid() {
        outcome(VALID.as_bytes()).unwrap();
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = outcome(deep.as_bytes()).unwrap_err();
        assert!(
            e.contains("recursion limit") || e.contains("invalid"),
            "{e}"
        );
        let deep = format!(
            r#"{{"sites": [{{"url": "http://a/", "checks": [{{"plugin": "k", "config": {}1{}}}]}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(outcome(deep.as_bytes()).is_err());
    }

    #[test]
    fn non_utf8_is_an_invalid_json_error() {
        let mut bytes = br#"{"sites": [{"name": "#.to_vec();
        bytes.extend_from_slice(&[b'"', 0xff, 0xfe, b'"']);
        bytes.extend_from_slice(br#", "url": "http://a/"}]}"#);
        let e = outcome(&bytes).unwrap_err();
        assert!(
            e.contains("invalid JSON") || e.contains("invalid unicode"),
            "{e}"
        );
    }

    #[test]
    fn huge_numbers_are_rejected_with_the_field() {
        let e = outcome(br#"{"sites": [{"url": "http://a/", "interval": 1e300}]}"#).unwrap_err();
        assert!(e.contains("sites[0].interval"), "{e}");
        let e = outcome(br#"{"sites": [{"url": "http://a/", "max_in_flight": 99999999999}]}"#)
            .unwrap_err();
        assert!(e.contains("max_in_flight"), "{e}");
        let e = outcome(br#"{"sites": [], "alerting": {"threshold": 1e999}}"#).unwrap_err();
        assert!(e.contains("fuzz.json"), "{e}");
    }

    #[test]
    fn a_hundred_thousand_sites_parse() {
        let sites: Vec<String> = (0..100_000)
            .map(|i| {
                format!(
                    r#"{{"name": "s{i}", "url": "http://10.0.{}.{}/{i}"}}"#,
                    i / 250 % 250,
                    i % 250
                )
            })
            .collect();
        let text = format!(r#"{{"sites": [{}]}}"#, sites.join(","));
        let c = outcome(text.as_bytes()).unwrap();
        assert_eq!(c.sites.len(), 100_000);
        let dup = text.replacen(r#""name": "s99999""#, r#""name": "s0""#, 1);
        assert!(
            outcome(dup.as_bytes())
                .unwrap_err()
                .contains("sites[99999].name")
        );
    }

    #[test]
    fn names_with_quotes_commas_spaces_and_unicode_are_kept() {
        let c = outcome(r#"{"sites": [{"name": "shop, \"EU\" — café", "url": "https://xn--caf-dma.example/a b?q=\"x\""}]}"#.as_bytes()).unwrap();
        assert_eq!(c.sites[0].name, "shop, \"EU\" — café");
        let e =
            outcome(br#"{"sites": [{"name": "bad\u001b[31m", "url": "http://a/"}]}"#).unwrap_err();
        assert!(e.contains("control characters"), "{e}");
    }
}

fn with_notify(notify: &str) -> Result<Config, ConfigError> {
    let env = |var: &str| match var {
        "SLACK_WEBHOOK" => Some("https://hooks.slack.com/services/T0/B0/sekrit".to_owned()),
        "PD_KEY" => Some("0123456789abcdef0123456789abcdef".to_owned()),
        "SMTP_USER" | "SMTP_PASS" | "HOOK_TOKEN" => Some(format!("{var}-value")),
        _ => None,
    };
    let text = format!(
        r#"{{"sites": [{{"name": "api", "url": "https://api.example.com/"}},
                       {{"name": "checkout", "url": "https://shop.example.com/"}}],
            "notify": {notify}}}"#
    );
    Config::parse_with_env(Path::new("config.json"), text.as_bytes(), &env)
}

#[test]
fn the_issue_notify_example_parses_with_its_defaults() {
    let c = with_notify(
        r#"[
          {"name": "ops-slack", "type": "slack", "url_env": "SLACK_WEBHOOK", "on": ["down", "recovered"], "repeat": "30m"},
          {"name": "pager", "type": "pagerduty", "routing_key_env": "PD_KEY", "sites": ["api", "checkout"]},
          {"name": "mail", "type": "email", "smtp": "smtp://127.0.0.1:2525", "from": "sitewatch@example.com", "to": ["oncall@example.com"], "username_env": "SMTP_USER", "password_env": "SMTP_PASS"},
          {"name": "hook", "type": "webhook", "url": "https://example.com/hook", "headers": {"Authorization": "${HOOK_TOKEN}"}, "formatter": {"plugin": "json"}}
        ]"#,
    )
    .unwrap();
    let [slack, pager, mail, hook] = &c.notify[..] else {
        panic!("four notifiers");
    };
    assert_eq!(slack.kind(), notify::NotifierType::Slack);
    assert_eq!(slack.repeat, Some(Duration::from_secs(1800)));
    assert_eq!(
        slack.min_interval,
        Duration::from_secs(1),
        "Slack's rate by default"
    );
    assert_eq!(slack.group_wait, notify::DEFAULT_GROUP_WAIT);
    assert_eq!(slack.max_age, Duration::from_secs(24 * 3600));
    assert!(pager.wants(crate::alert::AlertKind::Down, "checkout", &[]));
    assert!(!pager.wants(crate::alert::AlertKind::Down, "other", &[]));
    assert_eq!(pager.min_interval, Duration::ZERO);
    let notify::Service::Email(e) = &mail.service else {
        panic!("email");
    };
    assert_eq!(
        (e.host.as_str(), e.port, e.tls),
        ("127.0.0.1", 2525, notify::SmtpTls::StartTls)
    );
    assert_eq!(hook.formatter.as_ref().unwrap().plugin, "json");
    let notify::Service::Webhook(webhook) = &hook.service else {
        panic!("webhook");
    };
    assert_eq!(webhook.headers[0].1.expose(), "HOOK_TOKEN-value");
    // Secrets never print, and are redacted from what a notifier reports.
    let shown = format!("{c:?}");
    for secret in [
        "sekrit",
        "0123456789abcdef",
        "SMTP_PASS-value",
        "HOOK_TOKEN-value",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert_eq!(
        slack.redact("POST https://hooks.slack.com/services/T0/B0/sekrit failed"),
        "POST [redacted] failed"
    );
    assert_eq!(
        pager.redact("key 0123456789abcdef0123456789abcdef"),
        "key [redacted]"
    );
}

#[test]
fn notifier_errors_name_the_field_and_the_notifier() {
    let cases = [
        (
            r#"[{"name": "x", "type": "carrier-pigeon"}]"#,
            "notify[0].type: notifier \"x\": unknown type \"carrier-pigeon\"; one of webhook, slack",
        ),
        (
            r#"[{"name": "x", "type": "slack", "url_env": "UNSET_VAR"}]"#,
            "notify[0].url_env: notifier \"x\": names the environment variable UNSET_VAR, which is not set",
        ),
        (
            r#"[{"name": "x", "type": "webhook", "url": "not a url"}]"#,
            "notify[0].url: notifier \"x\": \"not a url\" is not an http:// or https:// URL",
        ),
        (
            r#"[{"name": "x", "type": "webhook"}]"#,
            "notify[0].url: notifier \"x\": a webhook notifier needs url or url_env",
        ),
        (
            r#"[{"name": "x", "type": "pagerduty"}]"#,
            "notify[0].routing_key_env: notifier \"x\": a pagerduty notifier needs routing_key_env",
        ),
        (
            r#"[{"name": "x", "type": "slack", "url_env": "SLACK_WEBHOOK", "routing_key_env": "PD_KEY"}]"#,
            "notify[0].routing_key_env: notifier \"x\": a slack notifier takes no routing_key_env",
        ),
        (
            r#"[{"name": "x", "type": "webhook", "url": "https://e.com/", "on": ["sideways"]}]"#,
            "notify[0].on[0]: notifier \"x\": \"sideways\" is not an alert kind",
        ),
        (
            r#"[{"name": "x", "type": "webhook", "url": "https://e.com/", "rate_limit": "fast"}]"#,
            "notify[0].rate_limit: notifier \"x\": \"fast\" is not a rate",
        ),
        (
            r#"[{"name": "x", "type": "webhook", "url": "https://e.com/", "headers": {"A": "${NOPE}"}}]"#,
            "notify[0].headers.A: notifier \"x\": names the environment variable NOPE",
        ),
        (
            r#"[{"name": "x", "type": "email", "smtp": "smtp://u:p@mail.example.com", "from": "a@b.c", "to": ["d@e.f"]}]"#,
            "notify[0].smtp: notifier \"x\": must not hold a user or password",
        ),
        (
            r#"[{"name": "x", "type": "email", "smtp": "smtp://mail.example.com", "from": "not an address", "to": ["d@e.f"]}]"#,
            "notify[0].from: notifier \"x\": \"not an address\" is not an email address",
        ),
        (
            r#"[{"name": "a", "type": "webhook", "url": "https://e.com/"}, {"name": "a", "type": "webhook", "url": "https://e.com/"}]"#,
            "notify[1].name: another notifier is named \"a\"",
        ),
        (
            r#"[{"name": "x", "type": "webhook", "url": "https://e.com/", "colour": "red"}]"#,
            "notify[0].colour: notifier \"x\": unknown field `colour`",
        ),
    ];
    for (notify, expected) in cases {
        let e = with_notify(notify).unwrap_err().to_string();
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
}

#[test]
fn a_site_rule_overrides_the_global_one_field_by_field() {
    let c = parse(
        r#"{"sites": [{"url": "http://a.test/", "interval": "10s",
                       "alerting": {"threshold": 0.5, "degraded": {"response_p95": "800ms", "ttfb_avg": "200ms"}}},
                      {"url": "http://b.test/"}],
            "alerting": {"window": "5m", "cert_warning": "30d"}}"#,
    )
    .unwrap();
    let a = &c.sites[0].alerting;
    assert_eq!(a.threshold, 0.5);
    assert_eq!(a.window, Duration::from_secs(300), "from the global rule");
    assert_eq!(a.cert_warning, Duration::from_secs(30 * 86_400));
    assert_eq!(
        a.degraded,
        [
            LatencyObjective {
                metric: LatencyMetric::ResponseP95,
                limit: Duration::from_millis(800)
            },
            LatencyObjective {
                metric: LatencyMetric::TtfbAvg,
                limit: Duration::from_millis(200)
            }
        ]
    );
    let b = &c.sites[1].alerting;
    assert_eq!((b.threshold, b.degraded.len()), (0.8, 0));
}

#[test]
fn an_alert_window_shorter_than_two_intervals_is_refused_naming_the_field() {
    let e = err(r#"{"sites": [{"name": "slow", "url": "http://a.test/", "interval": "5m"}]}"#);
    assert!(e.contains("sites[0].interval (site \"slow\")"), "{e}");
    assert!(e.contains("shorter than two intervals (10m)"), "{e}");
    let e = err(
        r#"{"sites": [{"name": "slow", "url": "http://a.test/", "interval": "1m",
                       "alerting": {"window": "90s"}}]}"#,
    );
    assert!(
        e.contains("sites[0].alerting.window (site \"slow\")"),
        "{e}"
    );
    // Two intervals exactly is enough.
    parse(r#"{"sites": [{"url": "http://a.test/", "interval": "1m"}]}"#).unwrap();
}

#[test]
fn bad_latency_objectives_name_the_key() {
    let e =
        err(r#"{"sites": [{"url": "http://a.test/", "alerting": {"degraded": {"p95": "1s"}}}]}"#);
    assert!(e.contains("sites[0].alerting.degraded.p95"), "{e}");
    assert!(e.contains("response_p95"), "lists the keys: {e}");
    let e = err(r#"{"sites": [], "alerting": {"degraded": {"response_max": "fast"}}}"#);
    assert!(e.contains("alerting.degraded.response_max"), "{e}");
}

#[test]
fn maintenance_windows_resolve_and_bad_ones_name_the_field_and_site() {
    let c = parse(
        r#"{"sites": [{"name": "shop", "url": "http://a.test/",
                       "maintenance": [{"cron": "0 2 * * SUN", "duration": "2h", "tz": "Europe/Paris"}]}],
            "maintenance": [{"start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z"}]}"#,
    )
    .unwrap();
    assert_eq!(c.maintenance.len(), 1);
    assert_eq!(c.sites[0].maintenance.windows().len(), 2, "global and own");
    for (text, field) in [
        (r#"[{"cron": "0 2 * * SUN"}]"#, "maintenance[0].duration"),
        (
            r#"[{"cron": "0 2 * * SUN", "duration": "1h", "tz": "Paris"}]"#,
            "maintenance[0].tz",
        ),
        (
            r#"[{"cron": "sunday", "duration": "1h"}]"#,
            "maintenance[0].cron",
        ),
        (
            r#"[{"start": "tomorrow", "end": "2026-12-25T02:00:00Z"}]"#,
            "maintenance[0].start",
        ),
        (
            r#"[{"start": "2026-12-25T02:00:00Z", "end": "2026-12-24T02:00:00Z"}]"#,
            "maintenance[0].end",
        ),
        (r#"[{"start": "2026-12-25T02:00:00Z"}]"#, "maintenance[0]"),
    ] {
        let e = err(&format!(
            r#"{{"sites": [{{"name": "shop", "url": "http://a.test/", "maintenance": {text}}}]}}"#
        ));
        assert!(e.contains(&format!("sites[0].{field}")), "{text}: {e}");
        assert!(e.contains("(site \"shop\")"), "{text}: {e}");
    }
}

#[test]
fn a_body_needs_a_method_that_sends_one_and_gets_a_content_type() {
    let c = parse(
        r#"{"sites": [{"url": "http://a.test/", "method": "POST", "body": {"q": 1}},
                      {"url": "http://b.test/", "method": "PUT", "body": "ping", "content_type": "text/x-ping"},
                      {"url": "http://c.test/", "method": "PATCH", "body": "x", "headers": {"Content-Type": "a/b"}}]}"#,
    )
    .unwrap();
    let body = |i: usize| c.sites[i].body.clone().unwrap();
    assert_eq!(body(0).bytes, br#"{"q":1}"#);
    assert_eq!(body(0).content_type.unwrap(), "application/json");
    assert_eq!(body(1).content_type.unwrap(), "text/x-ping");
    assert_eq!(body(2).content_type, None, "the header says it");
    let e = err(r#"{"sites": [{"name": "g", "url": "http://a.test/", "body": "x"}]}"#);
    assert!(
        e.contains("sites[0].body (site \"g\")") && e.contains("the method is GET"),
        "{e}"
    );
    let e =
        err(r#"{"sites": [{"url": "http://a.test/", "method": "POST", "content_type": "a/b"}]}"#);
    assert!(
        e.contains("sites[0].content_type") && e.contains("no body"),
        "{e}"
    );
}

#[test]
fn tags_are_trimmed_deduplicated_and_checked() {
    let c = parse(r#"{"sites": [{"url": "http://a.test/", "tags": ["prod", " eu ", "prod"]}]}"#)
        .unwrap();
    assert_eq!(c.sites[0].tags, ["prod", "eu"]);
    let e = err(r#"{"sites": [{"url": "http://a.test/", "tags": ["a,b"]}]}"#);
    assert!(e.contains("sites[0].tags[0]"), "{e}");
}
/// A config whose sites are `sites` (JSON), with KEY, TOKEN and HOST set in its environment.
fn with_secrets(sites: &str) -> Result<Config, ConfigError> {
    let env = |var: &str| match var {
        "KEY" => Some("s3cr3t-value".to_owned()),
        "TOKEN" => Some("t0ken-value\n".to_owned()),
        "HOST" => Some("internal.example.net".to_owned()),
        "BLANK" => Some(String::new()),
        "CTRL" => Some("a\u{7}b".to_owned()),
        _ => None,
    };
    let text = format!(r#"{{"sites": {sites}}}"#);
    Config::parse_with_env(Path::new("config.json"), text.as_bytes(), &env)
}

#[test]
fn variables_in_site_urls_and_headers_are_expanded_for_the_request_only() {
    let c = with_secrets(
        r#"[{"name": "api", "url": "https://api.example.com/health?key=${KEY}",
             "headers": {"Authorization": "Bearer ${TOKEN}", "X-Plain": "yes", "X-Literal": "$${KEY}"}}]"#,
    )
    .unwrap();
    let s = &c.sites[0];
    assert_eq!(s.url, "https://api.example.com/health?key=${KEY}");
    assert_eq!(
        s.request_url.expose().as_str(),
        "https://api.example.com/health?key=s3cr3t-value"
    );
    assert_eq!(s.headers["authorization"], "Bearer t0ken-value");
    assert!(s.headers["authorization"].is_sensitive());
    assert!(!s.headers["x-plain"].is_sensitive());
    assert_eq!(s.headers["x-literal"], "${KEY}", "$${{ is a literal ${{");
    let debug = format!("{c:?}");
    for secret in ["s3cr3t-value", "t0ken-value"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert_eq!(
        s.redact("tls: certificate not valid for s3cr3t-value, t0ken-value"),
        "tls: certificate not valid for ***, ***"
    );

    // Without variables the URL is shown normalised, as before; the request is the same.
    let c = with_secrets(r#"[{"url": "HTTP://Example.com"}]"#).unwrap();
    assert_eq!(c.sites[0].url, "http://example.com/");
    assert_eq!(
        c.sites[0].request_url.expose().as_str(),
        "http://example.com/"
    );
    assert!(c.sites[0].secrets.is_empty());
    // A credential typed into the file is sensitive too.
    let c = with_secrets(r#"[{"url": "http://a.test/", "headers": {"Cookie": "id=1"}}]"#).unwrap();
    assert!(c.sites[0].headers["cookie"].is_sensitive());
}

#[test]
fn a_missing_or_empty_variable_names_itself_the_field_and_the_site() {
    let e = with_secrets(
        r#"[{"name": "ok", "url": "http://a.test/"}, {"name": "ok2", "url": "http://b.test/"},
            {"name": "api", "url": "https://api.example.com/?key=${API_KEY}"}]"#,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "config.json: sites[2].url (site \"api\"): names the environment variable API_KEY, which is not set"
    );
    let e = with_secrets(
        r#"[{"name": "api", "url": "https://api.example.com/", "headers": {"Authorization": "Bearer ${BLANK}"}}]"#,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "config.json: sites[0].headers.Authorization (site \"api\"): names the environment variable BLANK, which is empty"
    );
}

#[test]
fn messages_about_an_expanded_url_quote_it_as_written() {
    for (site, expected) in [
        (
            r#"{"name": "a", "url": "ftp://${HOST}/x"}"#,
            "\"ftp://${HOST}/x\" must start with http:// or https:// once its variables are expanded",
        ),
        (
            r#"{"name": "a", "url": "http://${HOST}:99999/"}"#,
            "\"http://${HOST}:99999/\" is not a valid URL once its variables are expanded",
        ),
        (
            r#"{"name": "a", "url": "http://x/", "headers": {"X": "${CTRL}"}}"#,
            "sites[0].headers.X (site \"a\"): the value of \"X\" is not a valid header value once its variables are expanded",
        ),
        (
            r#"{"url": "https://${HOST}/"}"#,
            "sites[0].name (site \"https://${HOST}/\"): the URL's host comes from an environment variable",
        ),
        (
            r#"{"url": "${KEY}"}"#,
            "sites[0].url (site \"${KEY}\"): \"${KEY}\" is not a valid URL once its variables are expanded",
        ),
    ] {
        let e = with_secrets(&format!("[{site}]")).unwrap_err().to_string();
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
        for secret in ["s3cr3t-value", "internal.example.net"] {
            assert!(!e.contains(secret), "{e}");
        }
    }
    // Values are trimmed (TOKEN ends with a newline, as a file read into a variable does).
    let c = with_secrets(
        r#"[{"url": "https://${HOST}/", "name": "internal"},
                             {"url": "https://api.example.com/${KEY}"}]"#,
    )
    .unwrap();
    assert_eq!(c.sites[0].url, "https://${HOST}/");
    assert_eq!(
        c.sites[1].name, "api.example.com",
        "a host typed out names the site"
    );
}

#[test]
fn a_cluster_section_resolves_with_defaults_and_names_its_errors() {
    let c = parse(
        r#"{"sites": [{"url": "http://a.test", "locations": ["eu", "us"]}],
            "location": "eu", "probing": {"source_address": "127.0.0.2"},
            "cluster": {"nats": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"], "confirm": 2}}"#,
    )
    .unwrap();
    let k = c.cluster.as_ref().unwrap();
    assert_eq!(k.location, "eu");
    assert_eq!(c.location, "eu");
    assert_eq!(k.confirm, 2);
    assert_eq!(k.replicas, 2);
    assert_eq!(k.heartbeat_ttl, crate::cluster::DEFAULT_HEARTBEAT_TTL);
    assert!(k.node.ends_with("-eu"), "{}", k.node);
    assert_eq!(c.probing.source_address, Some("127.0.0.2".parse().unwrap()));
    assert_eq!(
        c.sites[0].locations.as_deref(),
        Some(&["eu".to_owned(), "us".to_owned()][..])
    );
    // Without the section nothing changes.
    assert!(
        parse(r#"{"sites": [{"url": "http://a.test"}]}"#)
            .unwrap()
            .cluster
            .is_none()
    );

    let cases = [
        (r#""cluster": {"nats": []}"#, "cluster.nats"),
        (r#""cluster": {"nats": ["http://x:1"]}"#, "cluster.nats[0]"),
        (
            r#""cluster": {"nats": ["nats://x:1"], "confirm": 0}"#,
            "cluster.confirm",
        ),
        (
            r#""cluster": {"nats": ["nats://x:1"], "location": "eu west"}"#,
            "cluster.location",
        ),
        (
            r#""cluster": {"nats": ["nats://x:1"], "node": "a.b"}"#,
            "cluster.node",
        ),
        (
            r#""cluster": {"nats": ["nats://x:1"], "lease_ttl": "10ms"}"#,
            "cluster.lease_ttl",
        ),
        (
            r#""cluster": {"nats": ["nats://x:1"], "replicas": 7}"#,
            "cluster.replicas",
        ),
        (
            r#""cluster": {"nats": ["nats://x:1"], "bogus": 1}"#,
            "bogus",
        ),
        (
            r#""probing": {"source_address": "localhost"}"#,
            "probing.source_address",
        ),
    ];
    for (section, field) in cases {
        let text = format!(r#"{{"sites": [{{"url": "http://a.test"}}], {section}}}"#);
        let e = err(&text);
        assert!(e.contains(field), "{section}: {e}");
    }
    let e = err(
        r#"{"sites": [{"name": "a", "url": "http://a.test", "locations": ["eu"]}],
            "cluster": {"nats": ["nats://x:1"], "location": "eu", "confirm": 2}}"#,
    );
    assert!(
        e.contains("cluster.confirm") && e.contains("site \"a\""),
        "{e}"
    );
    let e = err(r#"{"sites": [{"url": "http://a.test", "locations": ["e u"]}]}"#);
    assert!(e.contains("sites[0].locations[0]"), "{e}");
}

#[test]
fn a_password_in_a_url_is_a_secret_shown_as_stars() {
    let c = with_secrets(
        r#"[{"name": "a", "url": "http://alice:p%40ss@a.test/x"},
            {"name": "b", "url": "https://bob:pw@${HOST}/y"},
            {"name": "c", "url": "https://carol:${KEY}@c.test/"},
            {"name": "d", "url": "https://dave@d.test/"}]"#,
    )
    .unwrap();
    assert_eq!(c.sites[0].url, "http://alice:***@a.test/x");
    assert_eq!(
        c.sites[0].request_url.expose().as_str(),
        "http://alice:p%40ss@a.test/x",
        "sent as written"
    );
    assert_eq!(
        c.sites[0].redact("refused p@ss and p%40ss"),
        "refused *** and ***"
    );
    assert_eq!(c.sites[1].url, "https://bob:***@${HOST}/y");
    assert_eq!(c.sites[2].url, "https://carol:***@c.test/");
    assert_eq!(
        c.sites[3].url, "https://dave@d.test/",
        "no password, nothing to hide"
    );
    assert!(!format!("{c:?}").contains("p%40ss"));
}

#[test]
fn follow_redirects_takes_true_false_or_same_origin() {
    let policy = |v: &str| {
        with_secrets(&format!(
            r#"[{{"url": "http://a.test/", "follow_redirects": {v}}}]"#
        ))
        .map(|c| c.sites[0].follow_redirects)
    };
    assert_eq!(policy("true").unwrap(), FollowRedirects::Any);
    assert_eq!(policy("false").unwrap(), FollowRedirects::Never);
    assert_eq!(
        policy("\"same-origin\"").unwrap(),
        FollowRedirects::SameOrigin
    );
    let e = policy("\"sometimes\"").unwrap_err().to_string();
    assert!(
        e.contains("sites[0].follow_redirects") && e.contains("same-origin"),
        "{e}"
    );
    let c = with_secrets(r#"[{"url": "http://a.test/"}]"#).unwrap();
    assert_eq!(
        c.sites[0].follow_redirects,
        FollowRedirects::Any,
        "the default"
    );
}

#[test]
fn allowed_hosts_are_names_only() {
    let c = parse(
        r#"{"sites": [], "server": {"allowed_hosts": ["Status.Example.com", "nas.local."]}}"#,
    )
    .unwrap();
    assert_eq!(
        c.server.unwrap().allowed_hosts,
        ["status.example.com", "nas.local"]
    );
    let e = err(r#"{"sites": [], "server": {"allowed_hosts": ["https://x.test/"]}}"#);
    assert!(e.contains("server.allowed_hosts[0]"), "{e}");
}

#[test]
fn tcp_and_dns_sites_take_their_own_fields() {
    let c = parse(
        r#"{"sites": [
            {"name": "db", "kind": "tcp", "target": "db.example.com:5432", "tls": true,
             "send": "PING\r\n", "expect_regex": "^\\+PONG"},
            {"kind": "dns", "target": "example.com.", "record_type": "mx",
             "resolver": "127.0.0.1:5353", "expect_answers": ["10  mail.example.com."],
             "answers_match": "exact"},
            {"kind": "dns", "target": "v6.example.com", "resolver": "::1"}
        ]}"#,
    )
    .unwrap();
    let db = &c.sites[0];
    assert_eq!(db.url, "tcp://db.example.com:5432");
    let kind::Kind::Tcp(t) = &db.kind else {
        panic!("tcp: {:?}", db.kind)
    };
    assert_eq!(
        (t.host.as_str(), t.port, t.tls),
        ("db.example.com", 5432, true)
    );
    assert!(t.expect.as_ref().unwrap().matches("+PONG\r\n"));
    assert!(!t.expect.as_ref().unwrap().matches("-ERR"));
    let mx = &c.sites[1];
    assert_eq!(mx.name, "example.com", "a dns site is named after its name");
    assert_eq!(mx.url, "dns://127.0.0.1:5353/example.com?type=MX");
    let kind::Kind::Dns(d) = &mx.kind else {
        panic!("dns: {:?}", mx.kind)
    };
    assert_eq!(d.record_type, "MX");
    assert_eq!(d.expect_answers, ["10 mail.example.com."]);
    assert!(d.exact);
    assert_eq!(d.expect_rcode, "NOERROR");
    let kind::Kind::Dns(v6) = &c.sites[2].kind else {
        panic!()
    };
    assert_eq!(v6.resolver, Some("[::1]:53".parse().unwrap()));
    assert_eq!(c.sites[2].url, "dns://[::1]:53/v6.example.com?type=A");
    let printed = print::resolved(&c);
    assert_eq!(printed["sites"][0]["kind"], "tcp");
    assert_eq!(printed["sites"][0]["target"], "db.example.com:5432");
    assert_eq!(printed["sites"][1]["answers_match"], "exact");
}

#[test]
fn a_kinds_errors_name_the_field_and_the_site() {
    for (site, field, words) in [
        (
            r#"{"name": "x", "kind": "ftp", "target": "a:1"}"#,
            "kind",
            "one of http, tcp, dns",
        ),
        (r#"{"name": "x", "kind": "tcp"}"#, "target", "needs target"),
        (
            r#"{"name": "x", "kind": "tcp", "target": "db.example.com"}"#,
            "target",
            "host:port",
        ),
        (
            r#"{"name": "x", "kind": "tcp", "target": "a:1", "method": "POST"}"#,
            "method",
            "kind tcp takes no method",
        ),
        (
            r#"{"name": "x", "kind": "tcp", "target": "a:1", "expect_regex": "("}"#,
            "expect_regex",
            "not a regular expression",
        ),
        (
            r#"{"name": "x", "kind": "tcp", "target": "a:1", "expect": "a", "expect_regex": "b"}"#,
            "expect_regex",
            "not both",
        ),
        (
            r#"{"name": "x", "kind": "tcp", "target": "a:1", "record_type": "A"}"#,
            "record_type",
            "kind tcp takes no record_type",
        ),
        (
            r#"{"name": "x", "url": "http://a/", "send": "x"}"#,
            "send",
            "kind http takes no send",
        ),
        (
            r#"{"name": "x", "url": "http://a/", "target": "a:1"}"#,
            "target",
            "kind http takes no target",
        ),
        (r#"{"name": "x"}"#, "url", "a site needs url"),
        (
            r#"{"name": "x", "kind": "dns", "target": "bad name!"}"#,
            "target",
            "not a domain name",
        ),
        (
            r#"{"name": "x", "kind": "dns", "target": "a.test", "record_type": "PTR"}"#,
            "record_type",
            "one of A, AAAA",
        ),
        (
            r#"{"name": "x", "kind": "dns", "target": "a.test", "resolver": "dns.google"}"#,
            "resolver",
            "not an address",
        ),
        (
            r#"{"name": "x", "kind": "dns", "target": "a.test", "expect_rcode": "OK"}"#,
            "expect_rcode",
            "not a response code",
        ),
        (
            r#"{"name": "x", "kind": "dns", "target": "a.test", "answers_match": "exact"}"#,
            "answers_match",
            "goes with expect_answers",
        ),
        (
            r#"{"name": "x", "kind": "dns", "target": "a.test", "tls": true}"#,
            "tls",
            "kind dns takes no tls",
        ),
    ] {
        let e = err(&format!(r#"{{"sites": [{site}]}}"#));
        assert!(
            e.contains(&format!("sites[0].{field} (site \"x\")")) && e.contains(words),
            "{site}: {e}"
        );
    }
}

#[test]
fn a_push_site_takes_its_token_from_the_environment_and_a_schedule() {
    let env = |var: &str| (var == "JOB_TOKEN").then(|| "0123456789abcdef0123".to_owned());
    let parse_env = |sites: &str| {
        Config::parse_with_env(
            Path::new("config.json"),
            format!(r#"{{"sites": [{sites}]}}"#).as_bytes(),
            &env,
        )
    };
    let c = parse_env(
        r#"{"name": "nightly backup", "kind": "push", "token_env": "JOB_TOKEN", "cron": "0 3 * * *", "tz": "Europe/Paris", "grace": "30m"}"#,
    )
    .unwrap();
    let s = &c.sites[0];
    assert_eq!(s.url, "push:nightly%20backup");
    let kind::Kind::Push(p) = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(p.grace, Duration::from_secs(1800));
    assert!(matches!(p.schedule, kind::PushSchedule::Cron(_)));
    assert!(
        !format!("{c:?}").contains("0123456789abcdef0123"),
        "the token never prints"
    );
    assert_eq!(print::resolved(&c)["sites"][0]["token"], "***");
    for (site, field, words) in [
        (
            r#"{"name": "x", "kind": "push", "period": "1h"}"#,
            "token_env",
            "needs token_env",
        ),
        (
            r#"{"name": "x", "kind": "push", "token_env": "NOPE", "period": "1h"}"#,
            "token_env",
            "NOPE, which is not set",
        ),
        (
            r#"{"name": "x", "kind": "push", "token_env": "JOB_TOKEN"}"#,
            "period",
            "needs period",
        ),
        (
            r#"{"name": "x", "kind": "push", "token_env": "JOB_TOKEN", "period": "1h", "cron": "* * * * *"}"#,
            "cron",
            "not both",
        ),
        (
            r#"{"name": "x", "kind": "push", "token_env": "JOB_TOKEN", "cron": "0 0 31 2 *"}"#,
            "cron",
            "never matches",
        ),
        (
            r#"{"name": "x", "kind": "push", "token_env": "JOB_TOKEN", "period": "1h", "target": "a"}"#,
            "target",
            "kind push takes no target",
        ),
        (
            r#"{"name": "x", "url": "http://a/", "period": "1h"}"#,
            "period",
            "kind http takes no period",
        ),
    ] {
        let e = parse_env(site).unwrap_err().to_string();
        assert!(
            e.contains(&format!("sites[0].{field} (site \"x\")")) && e.contains(words),
            "{site}: {e}"
        );
    }
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse_with_env(Path::new("config.json"), text.as_bytes(), &|var| {
        env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    })
}

#[test]
fn a_script_site_gets_its_plugin_its_hosts_its_budget_and_only_the_secrets_it_names() {
    let c = parse_env(
        r#"{"sites": [{"name": "checkout", "kind": "script", "plugin": "login-flow",
            "url": "https://shop.example.test", "max_requests": 5, "secrets": ["EXTRA"],
            "config": {"user": "alice", "password": "${SHOP_PW}", "literal": "$${NOT}"}}]}"#,
        &[
            ("SHOP_PW", "hunter2"),
            ("EXTRA", "x-extra"),
            ("HOME", "/root"),
        ],
    )
    .unwrap();
    let s = &c.sites[0];
    assert_eq!(s.url, "script:checkout");
    let kind::Kind::Script(script) = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(script.plugin.plugin, "login-flow");
    let config: serde_json::Value = serde_json::from_str(&script.plugin.config).unwrap();
    // The placeholders go to the plugin as written; the site's url is its config's url.
    assert_eq!(config["password"], "${SHOP_PW}");
    assert_eq!(config["url"], "https://shop.example.test", "as written");
    assert_eq!(
        script.allow,
        ["shop.example.test"],
        "its url's host by default"
    );
    assert!(script.allows("SHOP.example.test") && !script.allows("evil.test"));
    assert_eq!(script.max_requests, 5);
    let names: Vec<&str> = script.secrets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["SHOP_PW", "EXTRA"], "HOME is not given");
    assert_eq!(script.secrets[0].1.expose(), "hunter2");
    assert_eq!(
        s.redact("a hunter2 b"),
        "a *** b",
        "outputs redact them too"
    );
    assert!(
        c.plugin_uses()
            .any(|(field, site, u)| field == "sites[0].plugin"
                && site == Some("checkout")
                && u.plugin == "login-flow"),
        "the plugin is loaded like any other"
    );
}

#[test]
fn a_script_sites_mistakes_are_named() {
    let site = |extra: &str| {
        format!(r#"{{"sites": [{{"name": "s", "kind": "script", "plugin": "p"{extra}}}]}}"#)
    };
    let e = err(&site(""));
    assert!(e.contains("allow") && e.contains("url"), "{e}");
    let e = err(&site(r#", "allow": ["http://x.test"]"#));
    assert!(e.contains("allow[0]") && e.contains("not a host"), "{e}");
    let e = err(&site(
        r#", "allow": ["x.test"], "config": {"pw": "${MISSING_PW}"}"#,
    ));
    assert!(e.contains("MISSING_PW") && e.contains("not set"), "{e}");
    let e = err(&site(r#", "allow": ["x.test"], "max_requests": 0"#));
    assert!(e.contains("max_requests"), "{e}");
    let e = err(&site(r#", "allow": ["x.test"], "method": "POST""#));
    assert!(e.contains("a site of kind script takes no method"), "{e}");
    let e = err(&site(r#", "url": "https://u:p@x.test/""#));
    assert!(e.contains("without credentials"), "{e}");
    let e = err(r#"{"sites": [{"kind": "script", "plugin": "p", "allow": ["x.test"]}]}"#);
    assert!(e.contains("needs a name"), "{e}");
    let wild = parse(&site(r#", "allow": ["*.example.test", "127.0.0.1"]"#)).unwrap();
    let kind::Kind::Script(script) = &wild.sites[0].kind else {
        panic!()
    };
    assert!(script.allows("api.example.test") && script.allows("a.b.example.test"));
    assert!(!script.allows("example.test") && !script.allows("badexample.test"));
    assert!(script.allows("127.0.0.1"));
}

#[test]
fn dependencies_name_sites_and_a_cycle_is_named() {
    let sites = |deps: &str| {
        format!(
            r#"{{"sites": [{{"name": "router", "url": "http://r.test/"}},
                {{"name": "db", "url": "http://d.test/", "depends_on": {deps}}},
                {{"name": "api", "url": "http://a.test/", "depends_on": ["db"]}}]}}"#
        )
    };
    let c = parse(&sites(r#"["router"]"#)).unwrap();
    assert_eq!(c.sites[1].depends_on, ["router"]);
    assert_eq!(c.sites[2].depends_on, ["db"]);
    let e = err(&sites(r#"["nowhere"]"#));
    assert!(
        e.contains("sites[1].depends_on[0]") && e.contains("\"nowhere\" is not the name of a site"),
        "{e}"
    );
    let e = err(&sites(r#"["db"]"#));
    assert!(e.contains("cannot depend on itself"), "{e}");
    let e = err(&sites(r#"["api"]"#));
    assert!(e.contains("in a cycle: db -> api -> db"), "{e}");
}

#[test]
fn canaries_are_sites_or_host_and_port_and_anything_else_is_named() {
    let with = |canaries: &str| {
        format!(
            r#"{{"sites": [{{"name": "Gateway", "url": "http://gw.test/"}}],
                "probing": {{"canaries": {canaries}, "canary_interval": "2s"}}}}"#
        )
    };
    let c = parse(&with(
        r#"["Gateway", "1.1.1.1:53", "[::1]:443", "dns.test:53", "1.1.1.1:53"]"#,
    ))
    .unwrap();
    assert_eq!(
        c.canaries.targets,
        [
            Canary::Site("Gateway".into()),
            Canary::Address {
                host: "1.1.1.1".into(),
                port: 53
            },
            Canary::Address {
                host: "::1".into(),
                port: 443
            },
            Canary::Address {
                host: "dns.test".into(),
                port: 53
            },
        ],
        "a site by its name, duplicates once"
    );
    assert_eq!(c.canaries.interval, Duration::from_secs(2));
    // The addresses become tcp sites named as shown.
    let names: Vec<&str> = c.canaries.probes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["1.1.1.1:53", "[::1]:443", "dns.test:53"]);
    assert!(
        c.canaries
            .probes
            .iter()
            .all(|s| s.timeout == Duration::from_secs(2))
    );
    for bad in [
        r#"["nowhere"]"#,
        r#"["host:0"]"#,
        r#"["a b:80"]"#,
        r#"[":80"]"#,
    ] {
        let e = err(&with(bad));
        assert!(
            e.contains("probing.canaries[0]")
                && e.contains("neither the name of a site nor host:port"),
            "{bad}: {e}"
        );
    }
    assert!(
        parse(r#"{"sites": []}"#)
            .unwrap()
            .canaries
            .targets
            .is_empty()
    );
}

#[test]
fn an_slo_is_global_or_a_sites_own_and_a_bad_one_is_named() {
    let c = parse(
        r#"{"sites": [{"name": "a", "url": "http://a.test/"},
                      {"name": "b", "url": "http://b.test/", "slo": {"objective": 99.5, "period": "7d"}},
                      {"name": "c", "url": "http://c.test/", "slo": false}],
            "alerting": {"slo": {"objective": "99.9%"}}}"#,
    )
    .unwrap();
    let slo = |i: usize| c.sites[i].alerting.slo;
    assert_eq!(
        slo(0),
        Some(crate::alert::Slo {
            objective: 0.999,
            period: Duration::from_secs(30 * 86400)
        })
    );
    assert_eq!(
        slo(1),
        Some(crate::alert::Slo {
            objective: 0.995,
            period: Duration::from_secs(7 * 86400)
        })
    );
    assert_eq!(slo(2), None);
    // The top-level spelling is the same global objective.
    let c = parse(
        r#"{"sites": [{"name": "a", "url": "http://a.test/"}], "slo": {"objective": "99%"}}"#,
    )
    .unwrap();
    assert_eq!(c.sites[0].alerting.slo.unwrap().objective, 0.99);
    for (text, field, says) in [
        (
            r#""slo": {"objective": "100%"}"#,
            "slo.objective",
            "above 0 and below 100",
        ),
        (
            r#""slo": {"objective": "high"}"#,
            "slo.objective",
            "not a percentage",
        ),
        (
            r#""slo": {"objective": 99, "period": "10m"}"#,
            "slo.period",
            "between 1h and 400d",
        ),
        (r#""slo": true"#, "slo", "give the objective"),
    ] {
        let e = err(&format!(
            r#"{{"sites": [{{"name": "a", "url": "http://a.test/", {text}}}]}}"#
        ));
        assert!(
            e.contains(&format!("sites[0].{field}")) && e.contains(says),
            "{text}: {e}"
        );
    }
    let e =
        err(r#"{"sites": [], "slo": {"objective": 99}, "alerting": {"slo": {"objective": 99}}}"#);
    assert!(e.contains("either \"slo\" or \"alerting.slo\""), "{e}");
}

#[test]
fn server_tokens_have_a_name_a_scope_and_their_own_value() {
    let env = [("SW_READ", "read-secret-1"), ("SW_WRITE", "write-secret-2")];
    let c = parse_env(
        r#"{"sites": [], "server": {"tokens": [
            {"name": "grafana", "env": "SW_READ", "scope": "read"},
            {"name": "ci", "env": "SW_WRITE", "scope": "write"}],
            "public": ["page", "feed"]}}"#,
        &env,
    )
    .unwrap();
    let s = c.server.unwrap();
    let got: Vec<_> = s
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.scope, t.value.expose().as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("grafana", crate::Scope::Read, "read-secret-1"),
            ("ci", crate::Scope::Write, "write-secret-2")
        ]
    );
    assert!(s.public.page && s.public.feed && !s.public.badges);
    let bad = |server: &str| {
        let text = format!(r#"{{"sites": [], "server": {server}}}"#);
        parse_env(&text, &env).unwrap_err().to_string()
    };
    for (server, wanted) in [
        (
            r#"{"tokens": [{"name": "a", "env": "SW_READ", "scope": "admin"}]}"#,
            "server.tokens[0].scope",
        ),
        (
            r#"{"tokens": [{"name": "a", "env": "SW_READ"}]}"#,
            "server.tokens[0].scope",
        ),
        (
            r#"{"tokens": [{"name": "a", "env": "SW_NOPE", "scope": "read"}]}"#,
            "SW_NOPE",
        ),
        (
            r#"{"tokens": [{"name": "a", "env": "SW_READ", "scope": "read"},
                           {"name": "a", "env": "SW_WRITE", "scope": "write"}]}"#,
            "server.tokens[1].name",
        ),
        (
            r#"{"tokens": [{"name": "a", "env": "SW_READ", "scope": "read"},
                           {"name": "b", "env": "SW_READ", "scope": "write"}]}"#,
            "server.tokens[1].env",
        ),
        (
            r#"{"tokens": [{"name": "", "env": "SW_READ", "scope": "read"}]}"#,
            "server.tokens[0].name",
        ),
        (r#"{"public": ["api"]}"#, "server.public[0]"),
    ] {
        let e = bad(server);
        assert!(e.contains(wanted), "{server}: {e}");
        assert!(!e.contains("read-secret-1"), "{e}");
    }
    // auth_token_env is a read token named auth_token.
    let c = parse_env(
        r#"{"sites": [], "server": {"auth_token_env": "SW_READ"}}"#,
        &env,
    )
    .unwrap();
    let t = &c.server.unwrap().tokens[0];
    assert_eq!(
        (t.name.as_str(), t.scope),
        ("auth_token", crate::Scope::Read)
    );
}
