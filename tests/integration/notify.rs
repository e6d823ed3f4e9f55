//! Notifications end to end, through the real binary and real receivers on 127.0.0.1: each
//! service's documented payload shape, retries (5xx, hang, 429), permanent failures, a SIGKILL
//! with notifications queued, a real SMTP server and a real Alertmanager, storms, reminders,
//! secrets that never leak, and bad notifier configs.

use crate::support::alertmanager::Alertmanager;
use crate::support::binary::{BIN, Running, alert};
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::server::{Reply, TestServer};
use crate::support::{shapes, smtp::Smtp};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// A site whose status the test sets.
struct Site {
    status: Arc<AtomicU16>,
    server: TestServer,
}

impl Site {
    async fn start(status: u16) -> Self {
        let s = Arc::new(AtomicU16::new(status));
        let shared = Arc::clone(&s);
        let server = TestServer::start(move |_| Reply::status(shared.load(Ordering::SeqCst))).await;
        Self { status: s, server }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn config(&self, name: &str) -> Value {
        json!({"name": name, "url": self.server.url("/"), "interval": "100ms", "timeout": "300ms"})
    }
}

fn config(sites: Vec<Value>, notify: Vec<Value>) -> Value {
    json!({
        "sites": sites,
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "notify": notify,
    })
}

fn delivery(notifier: &'static str, result: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "delivery" && v["notifier"] == notifier && v["result"] == result
}

/// Every value of `needle` found in `haystack` (bytes), for secret checks.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The alert ids a webhook request delivered.
fn alert_ids(r: &Received) -> Vec<i64> {
    r.json()["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["alert_id"].as_i64()).collect())
        .unwrap_or_default()
}

const SECRETS: [(&str, &str); 8] = [
    ("SW_SLACK_URL", "/slack/T0000/B0000/slacksecret0123456789"),
    (
        "SW_DISCORD_URL",
        "/discord/api/webhooks/42/discordsecret0123456789",
    ),
    ("SW_TEAMS_URL", "/teams/workflows/teamssecret0123456789"),
    ("SW_MM_URL", "/mattermost/hooks/mmsecret0123456789"),
    ("SW_PD_KEY", "pdsecret0123456789abcdef01234567"),
    ("SW_OG_KEY", "ogsecret-0123-4567-89ab-cdef01234567"),
    ("SW_GOTIFY_TOKEN", "gotifysecret0123456789"),
    ("SW_TG_TOKEN", "123456:tgsecret0123456789ABCDEFGH"),
];
const HOOK_TOKEN: (&str, &str) = ("SW_HOOK_TOKEN", "hooksecret0123456789");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_gets_its_documented_shape_and_no_secret_leaks() {
    let receiver = Receiver::start(|r, _| match r.path.as_str() {
        p if p.ends_with("/sendMessage") => Answer::json(200, &json!({"ok": true, "result": {}})),
        p if p.starts_with("/pagerduty") => {
            Answer::json(202, &json!({"status": "success", "dedup_key": "x"}))
        }
        _ => Answer::ok(),
    })
    .await;
    let site = Site::start(500).await;
    let base = receiver.url("");
    let env: Vec<(String, String)> = SECRETS
        .iter()
        .map(|(k, v)| {
            let value = if k.ends_with("_URL") {
                format!("{base}{v}")
            } else {
                (*v).to_owned()
            };
            ((*k).to_owned(), value)
        })
        .chain([(HOOK_TOKEN.0.to_owned(), HOOK_TOKEN.1.to_owned())])
        .collect();
    let quick = |mut v: Value| {
        v["group_wait"] = json!("0s");
        v["rate_limit"] = json!("100/s");
        v
    };
    let notify = vec![
        quick(
            json!({"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                     "headers": {"Authorization": "Bearer ${SW_HOOK_TOKEN}"}}),
        ),
        quick(json!({"name": "slack", "type": "slack", "url_env": "SW_SLACK_URL"})),
        quick(json!({"name": "discord", "type": "discord", "url_env": "SW_DISCORD_URL"})),
        quick(json!({"name": "teams", "type": "teams", "url_env": "SW_TEAMS_URL"})),
        quick(json!({"name": "mm", "type": "mattermost", "url_env": "SW_MM_URL"})),
        quick(
            json!({"name": "pd", "type": "pagerduty", "url": receiver.url("/pagerduty/v2/enqueue"),
                     "routing_key_env": "SW_PD_KEY"}),
        ),
        quick(
            json!({"name": "og", "type": "opsgenie", "url": receiver.url("/opsgenie"),
                     "api_key_env": "SW_OG_KEY"}),
        ),
        quick(json!({"name": "ntfy", "type": "ntfy", "url": receiver.url("/ntfy/sitewatch-ops")})),
        quick(
            json!({"name": "gotify", "type": "gotify", "url": receiver.url("/gotify"),
                     "token_env": "SW_GOTIFY_TOKEN"}),
        ),
        quick(
            json!({"name": "tg", "type": "telegram", "url": receiver.url("/telegram"),
                     "bot_token_env": "SW_TG_TOKEN", "chat_id": "-100123"}),
        ),
        quick(json!({"name": "am", "type": "alertmanager", "url": receiver.url("/am")})),
    ];
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sitewatch.log");
    let mut run = Running::start_with_env(
        dir,
        &config(vec![site.config("api")], notify),
        &["--log-file", log.to_str().unwrap()],
        &env_refs,
    );
    run.wait_for(Duration::from_secs(15), alert("down", "api"))
        .await
        .expect("down");
    site.set(200);
    run.wait_for(Duration::from_secs(15), alert("recovered", "api"))
        .await
        .expect("recovered");
    // Two deliveries (down, recovered) for each of the 11 notifiers.
    let delivery_events = |run: &Running| {
        run.events
            .iter()
            .filter(|v| v["event"] == "delivery")
            .count()
    };
    let mut delivered = delivery_events(&run);
    while delivered < 22 {
        let Some(v) = run
            .wait_for(Duration::from_secs(15), |v| v["event"] == "delivery")
            .await
        else {
            panic!(
                "{delivered} of 22 deliveries; received: {:?}",
                receiver
                    .requests()
                    .iter()
                    .map(|r| r.summary())
                    .collect::<Vec<_>>()
            );
        };
        let _ = v;
        delivered += 1;
    }
    for v in run.events.iter().filter(|v| v["event"] == "delivery") {
        assert_eq!(v["result"], "delivered", "{v}");
        assert!(v["alert_id"].as_i64().unwrap() > 0);
    }

    type Check = fn(&Received) -> Result<(), String>;
    let checks: [(&str, Check, usize); 11] = [
        ("/hook", shapes::webhook, 2),
        ("/slack/", shapes::slack, 2),
        ("/discord/", shapes::discord, 2),
        ("/teams/", shapes::teams, 2),
        ("/mattermost/", shapes::mattermost, 2),
        ("/pagerduty/", shapes::pagerduty, 2),
        ("/opsgenie/", shapes::opsgenie, 2),
        ("/ntfy/", shapes::ntfy, 2),
        ("/gotify/", shapes::gotify, 2),
        ("/telegram/", shapes::telegram, 2),
        ("/am/", shapes::alertmanager, 2),
    ];
    for (prefix, check, n) in checks {
        let got = receiver.on(prefix);
        assert_eq!(
            got.len(),
            n,
            "{prefix}: {:?}",
            got.iter().map(|r| r.summary()).collect::<Vec<_>>()
        );
        for r in &got {
            if let Err(e) = check(r) {
                panic!("{prefix}: {e}\n{}", r.summary());
            }
        }
    }
    // Incidents open and close on one key.
    let pd = receiver.on("/pagerduty/");
    let (trigger, resolve) = (pd[0].json(), pd[1].json());
    assert_eq!(
        (
            trigger["event_action"].as_str(),
            resolve["event_action"].as_str()
        ),
        (Some("trigger"), Some("resolve"))
    );
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    let og = receiver.on("/opsgenie/");
    assert!(og[0].path.ends_with("/v2/alerts"));
    assert!(
        og[1].path.ends_with("/close")
            && og[1].query_param("identifierType").as_deref() == Some("alias")
    );
    assert_eq!(
        og[0].header("authorization"),
        Some(format!("GenieKey {}", SECRETS[5].1).as_str())
    );
    let am = receiver.on("/am/");
    assert!(am[0].json()[0].get("endsAt").is_none());
    assert!(am[1].json()[0].get("endsAt").is_some());
    let hook = receiver.on("/hook");
    assert_eq!(
        hook[0].header("authorization"),
        Some(format!("Bearer {}", HOOK_TOKEN.1).as_str())
    );
    assert!(hook[0].header("idempotency-key").is_some());
    assert_eq!(hook[0].json()["alerts"][0]["kind"], "down");
    assert_eq!(hook[1].json()["alerts"][0]["kind"], "recovered");
    assert!(
        receiver
            .on("/telegram/")
            .iter()
            .all(|r| r.path.contains(SECRETS[7].1))
    );

    // `sitewatch alerts` shows where each went.
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    let data = run.dir.path().join("sitewatch-data");
    let out = std::process::Command::new(BIN)
        .args(["alerts", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in ["hook", "slack", "pd", "am", "tg"] {
        assert!(
            listed.contains(&format!("delivered to {name} at ")),
            "{listed}"
        );
    }

    // No secret in stdout, stderr, the log file or the store.
    let stdout: String = run.events.iter().map(|e| e.to_string() + "\n").collect();
    let mut store = Vec::new();
    for f in ["sitewatch.db", "sitewatch.db-wal"] {
        store.extend(std::fs::read(data.join(f)).unwrap_or_default());
    }
    let logged = std::fs::read(&log).unwrap_or_default();
    for (var, secret) in SECRETS.iter().chain([&HOOK_TOKEN]) {
        for (what, bytes) in [
            ("stdout", stdout.as_bytes()),
            ("stderr", run.stderr().as_bytes()),
            ("the log file", &logged[..]),
            ("the store", &store[..]),
            ("`sitewatch alerts`", listed.as_bytes()),
        ] {
            assert!(!contains(bytes, secret), "{var}'s value is in {what}");
        }
    }
}

/// A site that goes down and comes back, with one webhook notifier; the receiver answers as told.
async fn down_and_up(
    answer: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    notifier: Value,
    settle: impl Fn(&Value) -> bool,
) -> (Running, Receiver) {
    let receiver = Receiver::start(answer).await;
    let site = Site::start(500).await;
    let mut n = notifier;
    n["url"] = json!(receiver.url("/hook"));
    let mut run = Running::start(&config(vec![site.config("api")], vec![n]));
    run.wait_for(Duration::from_secs(15), alert("down", "api"))
        .await
        .expect("down");
    site.set(200);
    run.wait_for(Duration::from_secs(15), alert("recovered", "api"))
        .await
        .expect("recovered");
    run.wait_for(Duration::from_secs(30), settle)
        .await
        .unwrap_or_else(|| {
            panic!(
                "not settled; received {:?}",
                receiver
                    .requests()
                    .iter()
                    .map(|r| r.summary())
                    .collect::<Vec<_>>()
            )
        });
    (run, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_three_times_gets_each_alert_once_in_order() {
    let n = json!({"name": "hook", "type": "webhook", "group_wait": "0s", "backoff_min": "100ms", "backoff_max": "400ms"});
    // Fails the first three requests, whatever they carry.
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let answer = move |_: &Received, _| {
        if c.fetch_add(1, Ordering::SeqCst) < 3 {
            Answer::status(503, "busy")
        } else {
            Answer::ok()
        }
    };
    let recovered_delivered = |v: &Value| {
        v["event"] == "delivery" && v["kind"] == "recovered" && v["result"] == "delivered"
    };
    let (run, receiver) = down_and_up(answer, n, recovered_delivered).await;
    let requests = receiver.on("/hook");
    let accepted: Vec<&Received> = requests.iter().skip(3).collect();
    let kinds: Vec<String> = accepted
        .iter()
        .flat_map(|r| {
            r.json()["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds[..2], ["down", "recovered"], "in order");
    let ids: Vec<i64> = accepted.iter().flat_map(|r| alert_ids(r)).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "each once, in order: {ids:?}"
    );
    // The three failures were retries of the down alert, with the same idempotency key.
    let keys: Vec<Option<&str>> = requests[..4]
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let retrying: Vec<&Value> = run
        .events
        .iter()
        .filter(|v| v["event"] == "delivery" && v["result"] == "retrying")
        .collect();
    assert_eq!(retrying.len(), 3);
    assert!(
        retrying[0]["detail"].as_str().unwrap().contains("503"),
        "{}",
        retrying[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_fails_the_notification_without_a_retry_and_alerts_says_why() {
    let n = json!({"name": "pager", "type": "webhook", "group_wait": "0s", "backoff_min": "100ms"});
    let answer = |_: &Received, _| Answer::status(400, "invalid routing key");
    let (mut run, receiver) = down_and_up(answer, n, |v| {
        v["event"] == "delivery" && v["kind"] == "recovered" && v["result"] == "failed"
    })
    .await;
    run.collect_for(Duration::from_millis(700)).await;
    // One attempt per alert (a site flapping in a 1 s window may add alerts, never attempts).
    let ids: Vec<i64> = receiver.on("/hook").iter().flat_map(alert_ids).collect();
    let mut once = ids.clone();
    once.dedup();
    assert_eq!(ids, once, "no retry of a refused notification");
    assert!(ids.len() >= 2);
    let failed = run
        .events
        .iter()
        .find(|v| v["event"] == "delivery")
        .unwrap();
    assert_eq!(failed["result"], "failed");
    assert_eq!(failed["detail"], "400 Bad Request: invalid routing key");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    let data = run.dir.path().join("sitewatch-data");
    let out = std::process::Command::new(BIN)
        .args(["alerts", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("pager failed: 400 Bad Request: invalid routing key"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_times_out_and_the_notification_is_retried() {
    let n = json!({"name": "hook", "type": "webhook", "group_wait": "0s", "timeout": "500ms", "backoff_min": "100ms"});
    let answer = |_: &Received, n| if n == 0 { Answer::Hang } else { Answer::ok() };
    let (run, receiver) = down_and_up(answer, n, |v| {
        v["event"] == "delivery" && v["kind"] == "recovered" && v["result"] == "delivered"
    })
    .await;
    let retry = run
        .events
        .iter()
        .find(|v| v["event"] == "delivery" && v["result"] == "retrying")
        .expect("the hung attempt is retried");
    assert!(
        retry["detail"].as_str().unwrap().contains("timeout"),
        "{retry}"
    );
    let hook = receiver.on("/hook");
    assert_eq!(
        alert_ids(&hook[0]),
        alert_ids(&hook[1]),
        "the same alert again"
    );
    assert_eq!(hook.len(), 3, "hung, retried, then the recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_for() {
    let n = json!({"name": "hook", "type": "webhook", "group_wait": "0s", "backoff_min": "50ms"});
    let answer = |_: &Received, n| {
        if n == 0 {
            Answer::retry_after(2)
        } else {
            Answer::ok()
        }
    };
    let (run, receiver) = down_and_up(answer, n, |v| {
        v["event"] == "delivery" && v["kind"] == "recovered" && v["result"] == "delivered"
    })
    .await;
    let hook = receiver.on("/hook");
    let waited = hook[1].at - hook[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}, not after Retry-After: 2"
    );
    let retry = run
        .events
        .iter()
        .find(|v| v["result"] == "retrying")
        .unwrap();
    assert_eq!(retry["retry_in_s"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_notifications_queued_then_a_restart_delivers_each_exactly_once() {
    let site = Site::start(500).await;
    let port = crate::support::closed_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let n = json!({"name": "hook", "type": "webhook", "url": url, "group_wait": "0s",
                   "backoff_min": "100ms", "backoff_max": "300ms"});
    let cfg = config(vec![site.config("api")], vec![n]);

    // First run: the receiver takes the down alert.
    let first = Receiver::start_on(port, |_, _| Answer::ok()).await;
    let mut run = Running::start(&cfg);
    run.wait_for(Duration::from_secs(15), delivery("hook", "delivered"))
        .await
        .expect("the down alert delivered");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The receiver is gone; the recovery is queued and retried, then sitewatch is killed.
    site.set(200);
    run.wait_for(Duration::from_secs(15), alert("recovered", "api"))
        .await
        .expect("recovered");
    run.wait_for(Duration::from_secs(15), delivery("hook", "retrying"))
        .await
        .expect("the recovery waits for the receiver");
    run.signal(nix::sys::signal::Signal::SIGKILL);
    run.wait_exit(Duration::from_secs(5)).await.expect("killed");

    // Second run: the receiver is back.
    let second = Receiver::start_on(port, |_, _| Answer::ok()).await;
    let args = ["--output", "json", "--config", "config.json"];
    let mut run = Running::start_in(run.dir, &args);
    run.wait_for(Duration::from_secs(15), delivery("hook", "delivered"))
        .await
        .expect("the recovery delivered after the restart");
    run.collect_for(Duration::from_secs(1)).await;
    let kinds: Vec<String> = second
        .on("/hook")
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().unwrap().clone())
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["recovered"],
        "the delivered down alert is not sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_downs_goes_out_as_one_message_within_group_wait() {
    let receiver = Receiver::accepting().await;
    let site = Site::start(200).await;
    let sites: Vec<Value> = (0..40).map(|i| site.config(&format!("s{i:02}"))).collect();
    let n = json!({"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "group_wait": "2s"});
    let mut run = Running::start(&config(sites, vec![n]));
    run.collect_for(Duration::from_millis(1500)).await;
    site.set(500);
    let mut downs = 0;
    while downs < 40 {
        run.wait_for(Duration::from_secs(15), |v| {
            v["event"] == "alert" && v["kind"] == "down"
        })
        .await
        .expect("every site goes down");
        downs += 1;
    }
    receiver.wait_for("/hook", 1, Duration::from_secs(10)).await;
    run.collect_for(Duration::from_secs(3)).await;
    let got = receiver.on("/hook");
    let listed: usize = got.iter().map(|r| alert_ids(r).len()).sum();
    assert_eq!(listed, 40, "every down alert is sent");
    assert!(got.len() <= 2, "{} messages for one storm", got.len());
    assert!(
        got[0].json()["title"]
            .as_str()
            .unwrap()
            .contains("sites down")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_repeats_while_the_site_stays_down_and_stops_when_it_recovers() {
    let receiver = Receiver::accepting().await;
    let site = Site::start(500).await;
    let n = json!({"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                   "group_wait": "0s", "repeat": "1s"});
    let mut run = Running::start(&config(vec![site.config("api")], vec![n]));
    run.wait_for(Duration::from_secs(15), alert("down", "api"))
        .await
        .expect("down");
    let got = receiver.wait_for("/hook", 3, Duration::from_secs(10)).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["alerts"][0]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[..3], ["down", "reminder", "reminder"]);
    assert!(
        got[1].json()["alerts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("still down")
    );
    site.set(200);
    run.wait_for(Duration::from_secs(15), alert("recovered", "api"))
        .await
        .expect("recovered");
    run.collect_for(Duration::from_secs(1)).await;
    let before = receiver.on("/hook").len();
    run.collect_for(Duration::from_secs(2)).await;
    let after = receiver.on("/hook");
    assert_eq!(after.len(), before, "no reminder after the recovery");
    assert_eq!(
        after.last().unwrap().json()["alerts"][0]["kind"],
        "recovered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_reaches_a_real_smtp_server_with_from_to_subject_and_body() {
    let Some(smtp) = Smtp::start_with_auth("alerts", "mailsecret01234").await else {
        return;
    };
    let site = Site::start(500).await;
    let n = json!({"name": "mail", "type": "email", "smtp": smtp.url(), "tls": "none",
                   "from": "sitewatch@example.com", "to": ["oncall@example.com", "second@example.com"],
                   "username_env": "SW_SMTP_USER", "password_env": "SW_SMTP_PASS", "group_wait": "0s"});
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start_with_env(
        dir,
        &config(vec![site.config("api")], vec![n]),
        &[],
        &[
            ("SW_SMTP_USER", "alerts"),
            ("SW_SMTP_PASS", "mailsecret01234"),
        ],
    );
    run.wait_for(Duration::from_secs(15), delivery("mail", "delivered"))
        .await
        .unwrap_or_else(|| panic!("no delivery; {}\n{}", run.stderr(), smtp.log()));
    let mail = smtp.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(mail.mail_from, "sitewatch@example.com");
    assert_eq!(mail.rcpt_to, ["oncall@example.com", "second@example.com"]);
    assert_eq!(
        mail.header("From").as_deref(),
        Some("sitewatch@example.com")
    );
    assert!(mail.header("To").unwrap().contains("oncall@example.com"));
    assert_eq!(
        mail.header_decoded("Subject").as_deref(),
        Some("[sitewatch] api is down")
    );
    assert!(mail.header("Message-ID").is_some() && mail.header("Date").is_some());
    assert!(
        mail.body().contains("Website api is down. availability="),
        "{}",
        mail.body()
    );
    assert_eq!(
        smtp.logins().iter().filter(|l| l.ok).count(),
        1,
        "logged in once"
    );
    assert!(
        !run.events
            .iter()
            .any(|e| e.to_string().contains("mailsecret01234"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_shows_the_alert_firing_and_the_recovery_resolves_it() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let site = Site::start(500).await;
    let n = json!({"name": "am", "type": "alertmanager", "url": am.url(), "group_wait": "0s"});
    let mut run = Running::start(&config(vec![site.config("api")], vec![n]));
    run.wait_for(Duration::from_secs(15), delivery("am", "delivered"))
        .await
        .expect("sent");
    let firing = am
        .wait_until(Duration::from_secs(10), "the alert firing", |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["labels"]["site"] == "api" && x["status"]["state"] == "active")
            })
        })
        .await;
    let alert = firing
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["labels"]["site"] == "api")
        .unwrap();
    assert_eq!(alert["labels"]["alertname"], "SiteDown");
    site.set(200);
    run.wait_for(Duration::from_secs(15), |v| {
        v["event"] == "delivery" && v["kind"] == "recovered" && v["result"] == "delivered"
    })
    .await
    .expect("recovery sent");
    am.wait_until(Duration::from_secs(10), "the alert resolved", |v| {
        v.as_array()
            .is_some_and(|a| !a.iter().any(|x| x["labels"]["site"] == "api"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_prints_the_services_answer() {
    let receiver = Receiver::start(|r, _| {
        if r.path == "/bad" {
            Answer::status(400, "no such channel")
        } else {
            Answer::ok()
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let cfg = json!({"sites": [{"name": "api", "url": "http://127.0.0.1:1/"}], "notify": [
        {"name": "good", "type": "slack", "url_env": "SW_GOOD"},
        {"name": "bad", "type": "webhook", "url": receiver.url("/bad")},
    ]});
    std::fs::write(&path, cfg.to_string()).unwrap();
    let run = |name: &str| {
        std::process::Command::new(BIN)
            .args(["notify", "test", name, "--config", path.to_str().unwrap()])
            .env("SW_GOOD", receiver.url("/good/T0/B0/goodsecret"))
            .output()
            .unwrap()
    };
    let ok = run("good");
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{said}");
    assert!(
        said.contains("good: sent the down alert of sitewatch-test: 200 OK"),
        "{said}"
    );
    let sent = receiver.on("/good");
    assert_eq!(sent.len(), 1);
    shapes::slack(&sent[0]).unwrap();
    let bad = run("bad");
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(
        said.contains("refused: 400 Bad Request: no such channel"),
        "{said}"
    );
    let none = run("nobody");
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no notifier \"nobody\"; it has good, bad")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifiers_are_config_errors_naming_them_at_start_and_on_reload() {
    let cases: [(Value, &str); 5] = [
        (
            json!({"name": "x", "type": "pigeon", "url": "http://127.0.0.1/"}),
            "notify[0].type: notifier \"x\": unknown type \"pigeon\"",
        ),
        (
            json!({"name": "ops", "type": "slack", "url_env": "SW_NOT_SET_ANYWHERE"}),
            "notify[0].url_env: notifier \"ops\": names the environment variable SW_NOT_SET_ANYWHERE, which is not set",
        ),
        (
            json!({"name": "hook", "type": "webhook", "url": "ftp://example.com/"}),
            "notify[0].url: notifier \"hook\": \"ftp://example.com/\" is not an http:// or https:// URL",
        ),
        (
            json!({"name": "ops", "type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}),
            "notify[0].url: notifier \"ops\": a slack webhook URL holds its credential",
        ),
        (
            json!({"name": "pd", "type": "pagerduty", "routing_key_env": "HOME", "sites": ["nope"]}),
            "notify[0].sites[0]: notifier \"pd\": no site is named \"nope\"",
        ),
    ];
    for (n, expected) in &cases {
        let text = json!({"sites": [{"name": "api", "url": "http://127.0.0.1:1/"}], "notify": [n]});
        let (code, said) = crate::support::binary::check_config(&text.to_string());
        assert_eq!(code, 2, "{said}");
        assert!(said.contains(expected), "expected {expected:?} in {said}");
    }

    // On reload: rejected, naming the notifier; the last good config keeps notifying.
    let receiver = Receiver::accepting().await;
    let site = Site::start(200).await;
    let good = json!({"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "group_wait": "0s"});
    let cfg = config(vec![site.config("api")], vec![good.clone()]);
    let mut run = Running::start(&cfg);
    run.collect_for(Duration::from_millis(500)).await;
    let mut bad = cfg.clone();
    bad["notify"] = json!([good, {"name": "broken", "type": "pigeon"}]);
    std::fs::write(run.config_path(), bad.to_string()).unwrap();
    let rejected = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "reload" && v["result"] == "rejected"
        })
        .await
        .expect("the bad reload is rejected");
    assert!(
        rejected["detail"]
            .as_str()
            .unwrap()
            .contains("notifier \"broken\": unknown type \"pigeon\""),
        "{rejected}"
    );
    site.set(500);
    run.wait_for(Duration::from_secs(15), delivery("hook", "delivered"))
        .await
        .expect("the running notifier still delivers");

    // A formatter that is a check plugin: named with the notifier.
    let dir = crate::support::plugins::examples_dir();
    let text = json!({"sites": [{"name": "api", "url": "http://127.0.0.1:1/"}],
        "plugins": {"dir": dir},
        "notify": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/",
                    "formatter": {"plugin": "keyword"}}]});
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    std::fs::write(&path, text.to_string()).unwrap();
    let mut run = Running::start_in(
        tmp,
        &["--output", "json", "--config", path.to_str().unwrap()],
    );
    let err = run
        .wait_for(Duration::from_secs(20), |v| {
            v["event"] == "error" && v["source"] == "plugin"
        })
        .await
        .expect("an error about the formatter");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("notify[0].formatter.plugin (notifier \"hook\")")
            && message.contains("as a formatter"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formatters_shape_the_payloads_one_alert_a_message_within_the_rate_limit() {
    let receiver = Receiver::accepting().await;
    let site = Site::start(200).await;
    let dir = crate::support::plugins::examples_dir();
    let sites: Vec<Value> = ["a", "b", "c"].iter().map(|n| site.config(n)).collect();
    let mut cfg = config(
        sites,
        vec![
            json!({"name": "slack", "type": "slack", "url_env": "SW_SLACK", "group_wait": "0s",
                   "formatter": {"plugin": "slack", "config": {"username": "sitewatch"}}}),
            json!({"name": "mm", "type": "mattermost", "url_env": "SW_MM", "group_wait": "0s",
                   "rate_limit": "100/s", "formatter": {"plugin": "markdown"}}),
        ],
    );
    cfg["plugins"] = json!({"dir": dir});
    let (slack_url, mm_url) = (receiver.url("/slack/T/B/x"), receiver.url("/mm/hooks/x"));
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &cfg,
        &[],
        &[("SW_SLACK", &slack_url), ("SW_MM", &mm_url)],
    );
    run.collect_for(Duration::from_millis(1500)).await;
    site.set(500);
    let slack = receiver
        .wait_for("/slack/", 3, Duration::from_secs(20))
        .await;
    let mm = receiver.wait_for("/mm/", 3, Duration::from_secs(20)).await;
    for r in &slack {
        shapes::slack(r).unwrap_or_else(|e| panic!("{e}: {}", r.summary()));
        let v = r.json();
        assert_eq!(v["username"], "sitewatch", "the formatter's payload: {v}");
        assert!(v["attachments"][0]["fields"].is_array(), "{v}");
    }
    // One alert a message, and Slack's one message a second.
    for w in slack.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "{gap:?} between two Slack messages"
        );
    }
    for r in &mm {
        shapes::mattermost(r).unwrap_or_else(|e| panic!("{e}: {}", r.summary()));
        let text = r.json()["text"].as_str().unwrap().to_owned();
        assert!(
            text.contains("**"),
            "the Markdown rendering is the text: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_older_than_max_age_is_given_up_visibly() {
    let site = Site::start(500).await;
    let url = format!("http://127.0.0.1:{}/hook", crate::support::closed_port());
    let n = json!({"name": "hook", "type": "webhook", "url": url, "group_wait": "0s",
                   "max_age": "1500ms", "backoff_min": "200ms", "backoff_max": "400ms"});
    let mut run = Running::start(&config(vec![site.config("api")], vec![n]));
    let failed = run
        .wait_for(Duration::from_secs(15), delivery("hook", "failed"))
        .await
        .expect("given up");
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("given up: not delivered within max_age (1s)"),
        "{detail}"
    );
    assert!(
        detail.contains("Connection refused") || detail.contains("connect"),
        "{detail}"
    );
    let retries = run
        .events
        .iter()
        .filter(|v| v["result"] == "retrying")
        .count();
    assert!(retries >= 2, "retried before giving up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_notifier_that_gets_the_next_alert() {
    let receiver = Receiver::accepting().await;
    let site = Site::start(500).await;
    let hook =
        json!({"name": "hook", "type": "webhook", "url": receiver.url("/one"), "group_wait": "0s"});
    let cfg = config(vec![site.config("api")], vec![hook.clone()]);
    let mut run = Running::start(&cfg);
    run.wait_for(Duration::from_secs(15), delivery("hook", "delivered"))
        .await
        .expect("down delivered");
    let mut more = cfg.clone();
    more["notify"] = json!([hook, {"name": "two", "type": "webhook", "url": receiver.url("/two"), "group_wait": "0s"}]);
    std::fs::write(run.config_path(), more.to_string()).unwrap();
    let applied = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "reload" && v["result"] == "applied"
        })
        .await
        .expect("applied");
    assert!(
        applied["detail"].as_str().unwrap().contains("notify"),
        "{applied}"
    );
    site.set(200);
    run.wait_for(Duration::from_secs(15), delivery("two", "delivered"))
        .await
        .expect("the new notifier gets the recovery");
    let two = receiver.on("/two");
    assert_eq!(two[0].json()["alerts"][0]["kind"], "recovered");
    assert_eq!(
        receiver.on("/one").len(),
        2,
        "the old one goes on: down and recovered"
    );
}
