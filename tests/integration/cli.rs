//! The command line: config validation and exit codes.

use crate::support::binary::{BIN, check_config as check};
use std::process::Command;

#[test]
fn check_config_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.json");
    assert!(
        crate::support::binary::cli_ok(&["check-config", "--config", shipped]).contains("valid")
    );
}

#[test]
fn bad_configs_exit_2_with_a_message_naming_the_problem() {
    let cases = [
        (
            r#"{"sites": [{"name": "api", "url": "http://a/", "intervall": 5}]}"#,
            "sites[0].intervall (site \"api\"): unknown field",
        ),
        (
            r#"{"sites": [{"name": "api", "url": "nope"}]}"#,
            "sites[0].url (site \"api\")",
        ),
        (
            r#"{"sites": [{"name": "api", "url": "http://a/", "interval": "0s"}]}"#,
            "sites[0].interval (site \"api\"): must be greater than zero",
        ),
        (
            r#"{"sites": [], "alerting": {"threshold": 2}}"#,
            "alerting.threshold: must be between 0 and 1",
        ),
        (
            r#"{"sites": [{"url": "http://a/"}, {"url": "http://a/x"}]}"#,
            "sites[1].name (site \"a\")",
        ),
        ("{\n  \"sites\": [\n  }", "config.json:3:3: invalid JSON"),
    ];
    for (config, expected) in cases {
        let (code, text) = check(config);
        assert_eq!(code, 2, "{config}: {text}");
        assert!(
            text.contains(expected),
            "{config}: expected {expected:?} in {text:?}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn run_with_a_bad_config_exits_2_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"sites": [{"url": "http://a/", "timeout": -1}]}"#).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sites[0].timeout"));
    assert!(out.stdout.is_empty());
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.json"));
}
