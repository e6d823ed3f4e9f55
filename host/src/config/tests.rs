use super::*;

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
    assert_eq!(c.storage.retention, DEFAULT_RETENTION);
    assert_eq!(c.storage.influxdb, None);
    let c = parse(
        r#"{"sites": [], "storage": {"retention": "2d", "influxdb": {"url": "http://127.0.0.1:8086",
            "org": "o", "bucket": "b", "token_env": "INFLUX_TOKEN", "batch_size": 10, "flush_interval": "250ms"}}}"#,
    )
    .unwrap();
    assert_eq!(c.storage.retention, Duration::from_secs(2 * 86400));
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
fn a_missing_token_variable_is_named_without_a_value() {
    let c = parse(
        r#"{"sites": [], "storage": {"influxdb": {"url": "http://x", "org": "o", "bucket": "b",
            "token_env": "SITEWATCH_TEST_SURELY_UNSET_TOKEN"}}}"#,
    )
    .unwrap();
    let e = c.storage.influxdb.unwrap().token().unwrap_err();
    assert!(e.contains("SITEWATCH_TEST_SURELY_UNSET_TOKEN"), "{e}");
}
