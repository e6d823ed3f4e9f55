//! Fewer, truer alerts, through the binary against local targets and a webhook.
//!
//! Dependencies: a parent and 20 children go down together, and one notification goes out (the
//! parent's) while the children's down alerts are held; the parent recovers, one child stays
//! down, and that child alerts then; the children's held outages are never notified, not even
//! their recovery. Flap damping: a target that flips between down and up is notified twice,
//! then once as flapping, and nothing more while it flaps; once it is quiet, once again.

use crate::support::binary::Running;
use crate::support::receiver::{Answer, Receiver};
use crate::support::server::{Reply, TestServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const CHILDREN: usize = 20;
/// The child that stays down after the others come back.
const STUCK: usize = 7;

/// The sites each notification the webhook received is about, with the alert's kind.
fn notified(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .on("/hook")
        .iter()
        .flat_map(|r| {
            r.json()["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["site"].as_str().unwrap_or_default().to_owned(),
                        a["kind"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parents_outage_sends_one_alert_and_a_child_that_outlasts_it_alerts_then() {
    let parent_down = Arc::new(AtomicBool::new(false));
    let children_down = Arc::new(AtomicBool::new(false));
    let stuck_down = Arc::new(AtomicBool::new(false));
    let (p, c, s) = (
        Arc::clone(&parent_down),
        Arc::clone(&children_down),
        Arc::clone(&stuck_down),
    );
    let server = TestServer::start(move |r| {
        let down = if r.path == "/parent" {
            p.load(Ordering::SeqCst)
        } else if r.path == format!("/child-{STUCK}") {
            c.load(Ordering::SeqCst) || s.load(Ordering::SeqCst)
        } else {
            c.load(Ordering::SeqCst)
        };
        if down {
            Reply::status(503)
        } else {
            Reply::ok("ok")
        }
    })
    .await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let site = |name: String, path: String, deps: Value| {
        json!({"name": name, "url": server.url(&path), "interval": "200ms", "timeout": "1s",
               "depends_on": deps})
    };
    let mut sites = vec![site("parent".into(), "/parent".into(), json!([]))];
    sites.extend((0..CHILDREN).map(|i| {
        site(
            format!("child-{i}"),
            format!("/child-{i}"),
            json!(["parent"]),
        )
    }));
    let config = json!({
        "sites": sites,
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s"}],
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_secs(2)).await;
    // All down together.
    parent_down.store(true, Ordering::SeqCst);
    children_down.store(true, Ordering::SeqCst);
    let held_downs = |run: &Running| {
        run.events
            .iter()
            .filter(|e| e["event"] == "alert" && e["kind"] == "down" && e["held"].is_string())
            .count()
    };
    for _ in 0..40 {
        run.collect_for(Duration::from_millis(250)).await;
        if held_downs(&run) == CHILDREN {
            break;
        }
    }
    assert_eq!(held_downs(&run), CHILDREN, "stderr: {}", run.stderr());
    let held = run
        .events
        .iter()
        .find(|e| e["event"] == "alert" && e["held"].is_string())
        .unwrap();
    assert_eq!(held["held"], "parent down", "{held}");
    assert!(
        held["message"]
            .as_str()
            .unwrap()
            .ends_with("(held: parent down)"),
        "{held}"
    );
    run.collect_for(Duration::from_secs(1)).await;
    assert_eq!(
        notified(&receiver),
        [("parent".to_owned(), "down".to_owned())],
        "one notification, the parent's"
    );
    // The parent and all children but one come back.
    stuck_down.store(true, Ordering::SeqCst);
    parent_down.store(false, Ordering::SeqCst);
    children_down.store(false, Ordering::SeqCst);
    let stuck = format!("child-{STUCK}");
    let stuck_name = stuck.clone();
    let alerted = run
        .wait_for(Duration::from_secs(20), move |e| {
            e["event"] == "alert"
                && e["kind"] == "down"
                && e["site"] == stuck_name.as_str()
                && e["held"].is_null()
        })
        .await
        .unwrap_or_else(|| panic!("the stuck child never alerted; stderr: {}", run.stderr()));
    assert!(
        alerted["message"]
            .as_str()
            .unwrap()
            .contains("its alert was held while parent down"),
        "{alerted}"
    );
    receiver.wait_for("/hook", 3, Duration::from_secs(10)).await;
    run.collect_for(Duration::from_secs(2)).await;
    let mut sent = notified(&receiver);
    sent.sort();
    assert_eq!(
        sent,
        [
            (stuck.clone(), "down".to_owned()),
            ("parent".to_owned(), "down".to_owned()),
            ("parent".to_owned(), "recovered".to_owned()),
        ],
        "the other children's held outages are never notified"
    );
    // Their recoveries were held too, and said why.
    let held_recoveries = run
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && e["kind"] == "recovered" && e["held"].is_string())
        .count();
    assert_eq!(held_recoveries, CHILDREN - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_site_is_one_notification_until_it_settles() {
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let server = TestServer::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok("ok")
        }
    })
    .await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let config = json!({
        "sites": [{"name": "flappy", "url": server.url("/"), "interval": "100ms", "timeout": "1s"}],
        "alerting": {"threshold": 0.8, "window": "500ms",
                     "flapping": {"changes": 2, "within": "4s"}},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s"}],
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_secs(1)).await;
    // Eight changes, one a second.
    for i in 0..8 {
        down.store(i % 2 == 0, Ordering::SeqCst);
        run.collect_for(Duration::from_millis(1000)).await;
    }
    down.store(false, Ordering::SeqCst);
    let stopped = run
        .wait_for(Duration::from_secs(15), |e| {
            e["event"] == "alert" && e["kind"] == "flapping_stopped"
        })
        .await
        .unwrap_or_else(|| panic!("it never settled; stderr: {}", run.stderr()));
    assert!(
        stopped["message"].as_str().unwrap().contains("it is up"),
        "{stopped}"
    );
    run.collect_for(Duration::from_secs(1)).await;
    let flips = run
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && (e["kind"] == "down" || e["kind"] == "recovered"))
        .count();
    assert!(flips >= 6, "the target flipped: {flips} changes");
    let held = run
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && e["held"] == "flapping")
        .count();
    assert_eq!(held, flips - 2, "every change after the second is held");
    let kinds: Vec<String> = notified(&receiver).into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        ["down", "recovered", "flapping", "flapping_stopped"],
        "two changes, flapping once, settled once"
    );
}
