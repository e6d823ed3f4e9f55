//! Nothing lost, nothing missed, through the real binary: time-range input that never panics,
//! stores set aside under names that never collide, corruption found while running, a full disk
//! at shutdown, alerts that are durable before anyone sees them, symlinked configs, edits during
//! start-up, busy plugins, late samples and delivery accounting.

use crate::support::binary::{Running, cli_in};
use crate::support::server::{Reply, TestServer};
use crate::support::{closed_port, http_client};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_timeframes_are_refused_with_a_message_never_a_panic() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "up", "url": target.url("/"), "interval": "200ms"}],
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(10), |e| e["event"] == "stats")
        .await
        .unwrap_or_else(|| panic!("stats; stderr: {}", run.stderr()));
    let dir = run.dir.path().to_owned();
    for command in ["report", "alerts"] {
        for since in ["300000y", "9999999999999999d", "-5m", "soon", "0s"] {
            let (code, out, err) = cli_in(&dir, &[command, &format!("--since={since}")]);
            assert_eq!(code, 2, "{command} --since {since}: {out}{err}");
            assert!(err.contains("--since"), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let (code, out, err) = cli_in(&dir, &["report", "--since", "365d"]);
    assert_eq!(code, 0, "{out}{err}");
    // A century is a timeframe, beyond what the store keeps: said, not panicked.
    let (code, _, err) = cli_in(&dir, &["report", "--since", "100y"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("storage.retention"), "{err}");
    let (code, _, err) = cli_in(&dir, &["alerts", "--since", "100y"]);
    assert_eq!(code, 0, "{err}");
    for path in [
        "/api/v1/report?since=300000y",
        "/api/v1/alerts?since=300000y",
        "/api/v1/report?since=9999999999999999d&by=month",
        "/api/v1/report?since=1h&sla=NaN",
        "/api/v1/report?since=1h&tz=Mars/Olympus",
        "/api/v1/report?since=1h&week_start=%00",
    ] {
        let r = http_client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let r = http_client()
        .get(format!("http://127.0.0.1:{port}/api/v1/report?since=365d"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
}
