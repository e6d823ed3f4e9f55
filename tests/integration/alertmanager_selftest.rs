//! The real Alertmanager fixture: an alert posted firing shows as active, and the same labels
//! posted again with `endsAt` in the past make it resolved, which the API shows as gone (see
//! `support::alertmanager` for what 0.25 returns).

use crate::support::alertmanager::Alertmanager;
use serde_json::{Value, json};
use std::time::Duration;

/// The alerts in `alerts` labelled `site=selftest`.
fn ours(alerts: &Value) -> Vec<&Value> {
    alerts
        .as_array()
        .expect("GET /api/v2/alerts answers an array")
        .iter()
        .filter(|a| a["labels"]["site"] == "selftest")
        .collect()
}

#[tokio::test]
async fn alertmanager_fixture_shows_firing_then_resolved() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let client = crate::support::http_client();
    let post = |alert: Value| {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts", am.url());
        async move {
            let r = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(json!([alert]).to_string())
                .send()
                .await
                .unwrap();
            let status = r.status();
            assert!(
                status.is_success(),
                "POST {url}: {status}: {}",
                r.text().await.unwrap()
            );
        }
    };
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let labels = json!({"alertname": "SiteDown", "site": "selftest", "severity": "critical"});
    post(json!({
        "labels": labels,
        "annotations": {"summary": "selftest is down"},
        "startsAt": started.to_rfc3339(),
        "generatorURL": "http://127.0.0.1:1/sites/selftest"
    }))
    .await;
    let firing = am
        .wait_until(Duration::from_secs(10), "the alert active", |a| {
            ours(a)
                .first()
                .is_some_and(|x| x["status"]["state"] == "active")
        })
        .await;
    let alert = ours(&firing)[0];
    assert_eq!(alert["annotations"]["summary"], "selftest is down");
    assert_eq!(ours(&firing).len(), 1, "{firing:#}");

    let ended = chrono::Utc::now() - chrono::Duration::seconds(1);
    post(json!({
        "labels": labels,
        "annotations": {"summary": "selftest is down"},
        "startsAt": started.to_rfc3339(),
        "endsAt": ended.to_rfc3339()
    }))
    .await;
    let after = am
        .wait_until(Duration::from_secs(10), "the alert gone (resolved)", |a| {
            ours(a).is_empty()
        })
        .await;
    assert!(ours(&after).is_empty());
}
