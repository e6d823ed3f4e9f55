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

/// A server that answers 200, or 503 while its flag is set.
async fn switchable() -> (TestServer, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failing);
    let server = TestServer::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok("ok")
        }
    })
    .await;
    (server, failing)
}

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
    let (server, down) = switchable().await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    // The flapping window is wide enough that three changes fall in it however loaded the
    // machine is; each flip waits for the monitor to see it, so none is missed.
    let config = json!({
        "sites": [{"name": "flappy", "url": server.url("/"), "interval": "100ms", "timeout": "1s"}],
        "alerting": {"threshold": 0.8, "window": "500ms",
                     "flapping": {"changes": 2, "within": "10s"}},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s"}],
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(30), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("no probe; stderr: {}", run.stderr()));
    // Six changes: down, up, down, up, down, up.
    for i in 0..6 {
        let failing = i % 2 == 0;
        down.store(failing, Ordering::SeqCst);
        let kind = if failing { "down" } else { "recovered" };
        run.wait_for(Duration::from_secs(15), |e| {
            e["event"] == "alert" && e["kind"] == kind
        })
        .await
        .unwrap_or_else(|| panic!("change {i} ({kind}) never seen; stderr: {}", run.stderr()));
    }
    let stopped = run
        .wait_for(Duration::from_secs(40), |e| {
            e["event"] == "alert" && e["kind"] == "flapping_stopped"
        })
        .await
        .unwrap_or_else(|| panic!("it never settled; stderr: {}", run.stderr()));
    assert!(
        stopped["message"].as_str().unwrap().contains("it is up"),
        "{stopped}"
    );
    let flips = run
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && (e["kind"] == "down" || e["kind"] == "recovered"))
        .count();
    assert_eq!(flips, 6, "the target flipped six times");
    let held = run
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && e["held"] == "flapping")
        .count();
    assert_eq!(held, flips - 2, "every change after the second is held");
    for _ in 0..60 {
        if notified(&receiver).len() >= 4 {
            break;
        }
        run.collect_for(Duration::from_millis(250)).await;
    }
    run.collect_for(Duration::from_secs(1)).await;
    let kinds: Vec<String> = notified(&receiver).into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        ["down", "recovered", "flapping", "flapping_stopped"],
        "two changes, flapping once, settled once"
    );
}

/// A TCP port that accepts connections until stopped, then refuses them, and can accept again
/// on the same port: a canary, or the target of tcp sites.
struct Port {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Port {
    async fn open() -> Self {
        let mut p = Self {
            port: 0,
            task: None,
        };
        p.accept().await;
        p
    }

    async fn accept(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.port = listener.local_addr().unwrap().port();
        self.task = Some(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        }));
    }

    /// Closes the listener: connections are refused.
    async fn refuse(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Waits for the first alert of `kind`, or fails saying `what` never happened.
async fn first_alert(run: &mut Running, kind: &str, what: &str) -> Value {
    let k = kind.to_owned();
    run.wait_for(Duration::from_secs(10), move |e| {
        e["event"] == "alert" && e["kind"] == k.as_str()
    })
    .await
    .unwrap_or_else(|| panic!("{what}; stderr: {}", run.stderr()))
}

/// Waits (up to 10 s) until `n` alerts of `kind` have been seen.
async fn until_alerts(run: &mut Running, kind: &str, n: usize) {
    for _ in 0..40 {
        if alerts_of(run, kind).count() == n {
            return;
        }
        run.collect_for(Duration::from_millis(250)).await;
    }
    assert_eq!(
        alerts_of(run, kind).count(),
        n,
        "{kind}; stderr: {}",
        run.stderr()
    );
}

/// What the webhook heard of a monitor's outage: its going offline and coming back.
fn monitor_outage() -> [(String, String); 2] {
    [
        ("sitewatch".to_owned(), "monitor_offline".to_owned()),
        ("sitewatch".to_owned(), "monitor_online".to_owned()),
    ]
}

/// The alerts of `kind` seen so far.
fn alerts_of<'a>(run: &'a Running, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    run.events
        .iter()
        .filter(move |e| e["event"] == "alert" && e["kind"] == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_canary_fails_one_monitor_offline_is_all_that_is_sent() {
    let (server, offline) = switchable().await;
    let mut canary = Port::open().await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let site = |name: &str| {
        json!({"name": name, "url": server.url(&format!("/{name}")), "interval": "200ms",
               "timeout": "1s"})
    };
    let config = json!({
        "sites": [site("shop"), site("api"), site("gateway")],
        "probing": {"canaries": ["gateway", format!("127.0.0.1:{}", canary.port)],
                    "canary_interval": "100ms"},
        // Six failures in the window before a site is down: the canaries tell first.
        "alerting": {"threshold": 0.5, "window": "2s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s"}],
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_secs(2)).await;
    assert_eq!(alerts_of(&run, "monitor_offline").count(), 0);
    // The network is gone: the canaries refuse, and the sites fail with them.
    offline.store(true, Ordering::SeqCst);
    canary.refuse().await;
    let off = first_alert(&mut run, "monitor_offline", "never offline").await;
    assert_eq!(off["site"], "sitewatch", "{off}");
    let text = off["message"].as_str().unwrap();
    assert!(
        text.starts_with("sitewatch is offline: every canary fails: gateway (status), 127.0.0.1:")
            && text.contains("(connect)"),
        "{off}"
    );
    until_alerts(&mut run, "down", 3).await;
    let downs: Vec<&Value> = alerts_of(&run, "down").collect();
    for d in &downs {
        assert_eq!(d["held"], "sitewatch offline", "{d}");
    }
    run.collect_for(Duration::from_secs(1)).await;
    assert_eq!(
        notified(&receiver),
        [("sitewatch".to_owned(), "monitor_offline".to_owned())],
        "one notification: the monitor's own"
    );
    // Back: a canary answers.
    canary.accept().await;
    offline.store(false, Ordering::SeqCst);
    let on = first_alert(&mut run, "monitor_online", "never online again").await;
    assert!(
        on["message"]
            .as_str()
            .unwrap()
            .starts_with("sitewatch is online again: canary "),
        "{on}"
    );
    until_alerts(&mut run, "recovered", 3).await;
    run.collect_for(Duration::from_secs(1)).await;
    assert_eq!(
        notified(&receiver),
        monitor_outage(),
        "the sites' held outages are never notified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_canaries_most_sites_failing_to_connect_is_one_possible_local_outage() {
    let up = TestServer::start(|_| Reply::ok("ok")).await;
    let mut port = Port::open().await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let mut sites: Vec<Value> = (0..10)
        .map(|i| {
            json!({"name": format!("svc-{i}"), "kind": "tcp",
                   "target": format!("127.0.0.1:{}", port.port),
                   "interval": "200ms", "timeout": "1s"})
        })
        .collect();
    sites.push(json!({"name": "web", "url": up.url("/"), "interval": "200ms", "timeout": "1s"}));
    let config = json!({
        "sites": sites,
        "alerting": {"threshold": 0.5, "window": "2s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s"}],
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_secs(2)).await;
    port.refuse().await;
    let off = first_alert(&mut run, "monitor_offline", "no local outage said").await;
    assert!(
        // 80% of the 11: from the ninth refused site on.
        off["message"]
            .as_str()
            .unwrap()
            .starts_with("sitewatch is offline: possible local outage: ")
            && off["message"]
                .as_str()
                .unwrap()
                .contains(" of 11 sites fail at DNS or connect"),
        "{off}"
    );
    until_alerts(&mut run, "down", 10).await;
    assert!(alerts_of(&run, "down").all(|d| d["held"] == "sitewatch offline"));
    port.accept().await;
    first_alert(&mut run, "monitor_online", "never online again").await;
    run.collect_for(Duration::from_secs(1)).await;
    assert_eq!(
        notified(&receiver),
        monitor_outage(),
        "one outage said once, not ten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_burn_pages_its_own_route_and_the_budget_is_in_metrics_api_and_report() {
    let (server, failing) = switchable().await;
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let listen = crate::support::closed_port();
    let config = json!({
        "sites": [
            {"name": "api", "url": server.url("/api"), "interval": "100ms", "timeout": "1s",
             "slo": {"objective": "99%", "period": "1d"}},
            {"name": "web", "url": server.url("/web"), "interval": "100ms", "timeout": "1s"},
        ],
        // Downs need half the window failing: the burn-rate page comes first.
        "alerting": {"threshold": 0.5, "window": "10s"},
        "dashboard": {"views": [{"window": "10s", "every": "300ms"}]},
        "server": {"listen": format!("127.0.0.1:{listen}")},
        "notify": [
            {"name": "pager", "type": "webhook", "url": receiver.url("/pager"),
             "group_wait": "0s", "on": ["slo_burn", "slo_burn_recovered"]},
            {"name": "chat", "type": "webhook", "url": receiver.url("/chat"),
             "group_wait": "0s", "on": ["down", "recovered"]},
        ],
    });
    let mut run = Running::start(&config);
    run.collect_for(Duration::from_secs(2)).await;
    // A second of errors among two of probes: 1% allowed, a third spent in a minute.
    failing.store(true, Ordering::SeqCst);
    let burn = run
        .wait_for(Duration::from_secs(10), |e| {
            e["event"] == "alert"
                && e["kind"] == "slo_burn"
                && e["site"] == "api"
                && e["message"].as_str().unwrap_or("").contains("(page")
        })
        .await
        .unwrap_or_else(|| panic!("no burn-rate alert; stderr: {}", run.stderr()));
    assert!(
        burn["message"]
            .as_str()
            .unwrap()
            .starts_with("Website api burns its error budget: ")
            && burn["message"]
                .as_str()
                .unwrap()
                .contains("(page: objective 99% over 1d"),
        "{burn}"
    );
    run.collect_for(Duration::from_millis(600)).await;
    failing.store(false, Ordering::SeqCst);
    receiver
        .wait_for("/pager", 1, Duration::from_secs(10))
        .await;
    // The budget, while it burns.
    let metrics = crate::support::get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    let budget = metrics
        .lines()
        .find(|l| {
            l.starts_with("sitewatch_slo_error_budget_remaining{") && l.contains("site=\"api\"")
        })
        .unwrap_or_else(|| panic!("no budget series:\n{metrics}"));
    let left: f64 = budget.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(left < 1.0, "{budget}");
    assert!(
        !metrics.contains("sitewatch_slo_error_budget_remaining{site=\"web\""),
        "web has no objective"
    );
    let sites: Value = serde_json::from_str(
        &crate::support::get_text(&format!("http://127.0.0.1:{listen}/api/v1/sites")).await,
    )
    .unwrap();
    let api = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "api")
        .unwrap();
    assert_eq!(api["slo"]["objective"], 0.99, "{api}");
    assert!(
        api["slo"]["error_budget_remaining"].as_f64().unwrap() < 1.0,
        "{api}"
    );
    // Only the pager hears of the burn; the chat only of downs (none: the window held).
    let pager: Vec<String> = receiver
        .on("/pager")
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            format!(
                "{} {}",
                a["site"].as_str().unwrap(),
                a["kind"].as_str().unwrap()
            )
        })
        .collect();
    // The ticket (1x over 3d and 6h) comes at the first failure, the page (14.4x over 1h
    // and 5m) a few after.
    assert!(
        pager.len() >= 2 && pager.iter().all(|a| a.starts_with("api slo_burn")),
        "{pager:?}"
    );
    assert!(
        receiver.on("/chat").is_empty(),
        "no down alert went to the chat"
    );
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    // `report --sla` without a value: each site's own objective over its period.
    let dir = run.dir.path();
    let text = crate::support::binary::cli_ok(&[
        "report",
        "--sla",
        "--data-dir",
        &dir.join("sitewatch-data").display().to_string(),
        "--config",
        &dir.join("config.json").display().to_string(),
    ]);
    assert!(text.starts_with("SLA (each site's objective)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("api "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" 99% "), "{row}");
    assert!(
        !text.lines().any(|l| l.starts_with("web ")),
        "web has no objective: {text}"
    );
}
