//! The real Prometheus fixture: it scrapes a receiver serving a fixed exposition (with the
//! bearer token it was given), the query shows the value, a wrong token makes the target down;
//! and `promtool check metrics` tells good exposition text from bad (see `support::prometheus`).

use crate::support::prometheus::{Prometheus, promtool_check_metrics};
use crate::support::receiver::{Answer, Receiver};
use std::time::Duration;

const EXPOSITION: &str = "# HELP x_total Things counted by the selftest.\n\
                          # TYPE x_total counter\n\
                          x_total 5\n";

/// A receiver serving `EXPOSITION` at `/metrics` to requests bearing `token`, 401 to others.
async fn exporter(token: &'static str) -> Receiver {
    Receiver::start(move |req, _| {
        if req.path != "/metrics" {
            Answer::status(404, "not here")
        } else if req.header("authorization") != Some(format!("Bearer {token}").as_str()) {
            Answer::status(401, "who are you")
        } else {
            Answer::Reply(
                200,
                vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
                EXPOSITION.into(),
            )
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fixture_scrapes_with_the_bearer_token() {
    let target = exporter("s3cret").await;
    let addr = format!("127.0.0.1:{}", target.port());
    let Some(prom) = Prometheus::start(&addr, "/metrics", Some("s3cret")).await else {
        return;
    };
    let result = prom
        .wait_until("x_total", Duration::from_secs(30), "x_total = 5", |r| {
            r.get(0).is_some_and(|s| s["value"][1] == "5")
        })
        .await;
    assert_eq!(result[0]["metric"]["job"], "target", "{result}");
    assert_eq!(result[0]["metric"]["instance"], addr.as_str(), "{result}");
    let (health, error) = prom.target_health().await;
    assert_eq!(
        (health.as_str(), error.as_str()),
        ("up", ""),
        "log:\n{}",
        prom.log()
    );
    let scrapes = target.on("/metrics");
    let scrape = &scrapes[0];
    assert_eq!(scrape.method, "GET");
    assert_eq!(scrape.header("authorization"), Some("Bearer s3cret"));
    let accept = scrape.header("accept").unwrap_or_default();
    assert!(
        accept.contains("text/plain;version=0.0.4"),
        "Accept: {accept}"
    );
    let up = prom.query("up").await;
    assert_eq!(up[0]["value"][1], "1", "{up}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fixture_reports_a_refused_scrape() {
    let target = exporter("s3cret").await;
    let addr = format!("127.0.0.1:{}", target.port());
    let Some(prom) = Prometheus::start(&addr, "/metrics", Some("wrong")).await else {
        return;
    };
    prom.wait_until("up", Duration::from_secs(30), "up = 0", |r| {
        r.get(0).is_some_and(|s| s["value"][1] == "0")
    })
    .await;
    let (health, error) = prom.target_health().await;
    assert_eq!(health, "down");
    assert!(error.contains("401"), "lastError: {error}");
    assert_eq!(prom.query("x_total").await, serde_json::json!([]));
}

#[test]
fn promtool_accepts_good_exposition_and_rejects_a_counter_without_total() {
    promtool_check_metrics(EXPOSITION).unwrap();
    // The skip (no promtool) returns Ok for everything: only check rejections when it is there.
    if !std::path::Path::new("/usr/bin/promtool").is_file() {
        return;
    }
    let err = promtool_check_metrics("# HELP x Things.\n# TYPE x counter\nx 5\n").unwrap_err();
    assert!(err.contains("_total"), "{err}");
    let err = promtool_check_metrics("x_total{ 5\n").unwrap_err();
    assert!(err.contains("pars"), "{err}");
}
