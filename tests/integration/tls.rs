//! TLS: certificates are verified by default; expired, self-signed and wrong-host certificates
//! fail with kind `tls`; a site's own CA can be trusted; `tls_insecure` accepts anything and is
//! flagged.

use crate::support::binary::Running;
use crate::support::server::{Reply, TestServer};
use crate::support::tls::{Identity, TestCa, self_signed};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified_and_failures_are_tls_errors() {
    let ca = TestCa::new();
    let start = |id: Identity| TestServer::start_tls(id, |_| Reply::ok("ok"));
    let valid = start(ca.issue(&["localhost"], false)).await;
    let expired = start(ca.issue(&["localhost"], true)).await;
    let wrong_host = start(ca.issue(&["other.example"], false)).await;
    let unknown = start(self_signed(&["localhost"])).await;
    let insecure = start(self_signed(&["localhost"])).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let site = |name: &str, url: String, extra: Value| {
        let mut s = json!({"name": name, "url": url, "interval": "300ms", "timeout": "2s"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let config = json!({
        "sites": [
            site("valid", valid.localhost_url("/"), json!({"tls_ca": "ca.pem"})),
            site("expired", expired.localhost_url("/"), json!({"tls_ca": "ca.pem"})),
            site("wrong-host", wrong_host.localhost_url("/"), json!({"tls_ca": "ca.pem"})),
            site("unknown-ca", unknown.localhost_url("/"), json!({})),
            site("insecure", insecure.localhost_url("/"), json!({"tls_insecure": true})),
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    let mut run = Running::start_with(dir, &config, &[]);
    run.collect_for(Duration::from_millis(2500)).await;

    let first = |site: &str| {
        run.of("probe", site)
            .first()
            .map(|p| (*p).clone())
            .unwrap_or_else(|| panic!("no probe of {site}"))
    };
    let ok = first("valid");
    assert_eq!(ok["ok"], true, "{ok}");
    for phase in ["dns_ms", "connect_ms", "tls_ms"] {
        assert!(
            ok[phase].as_f64().is_some_and(|v| v > 0.0),
            "{phase} is measured: {ok}"
        );
    }
    for (site, words) in [
        ("expired", "expired"),
        ("wrong-host", "not valid for"),
        ("unknown-ca", ""),
    ] {
        let p = first(site);
        assert_eq!(p["error"]["kind"], "tls", "{site}: {p}");
        let message = p["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(words), "{site}: {message}");
    }
    let p = first("insecure");
    assert_eq!(
        p["ok"], true,
        "tls_insecure accepts a self-signed certificate: {p}"
    );
    let stats = run.latest("stats");
    let flagged: Vec<&str> = stats["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tls_insecure"] == true)
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, ["insecure"]);
}

#[test]
fn a_missing_ca_file_is_a_config_error() {
    let (code, text) = crate::support::binary::check_config(
        r#"{"sites": [{"name": "x", "url": "https://localhost/", "tls_ca": "nope.pem"}]}"#,
    );
    assert_eq!(code, 2);
    assert!(
        text.contains("sites[0].tls_ca (site \"x\"): cannot read CA certificates"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_only_server_is_probed_over_tls_and_h2c_only_is_an_http_error() {
    use crate::support::tls::Http2OnlyServer;
    let ca = TestCa::new();
    let tls = Http2OnlyServer::start(Some(ca.issue(&["localhost"], false))).await;
    let h2c = Http2OnlyServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let config = json!({
        "sites": [
            {"name": "h2", "url": format!("https://localhost:{}/", tls.addr.port()), "tls_ca": "ca.pem", "interval": "300ms"},
            {"name": "h2c", "url": format!("http://127.0.0.1:{}/", h2c.addr.port()), "interval": "300ms", "timeout": "2s"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    let mut run = Running::start_with(dir, &config, &[]);
    run.collect_for(Duration::from_millis(1500)).await;
    let h2 = run.of("probe", "h2");
    assert!(
        !h2.is_empty()
            && h2
                .iter()
                .all(|p| p["ok"] == true && p["status"] == 200 && p["body_bytes"] == 7),
        "{h2:?}"
    );
    let h2c = run.of("probe", "h2c");
    assert!(
        !h2c.is_empty() && h2c.iter().all(|p| p["error"]["kind"] == "http"),
        "{h2c:?}"
    );
}
