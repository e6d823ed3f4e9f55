//! The cluster's alerts, through real nodes on a real nats-server: a leader killed after it
//! wrote an alert to the book but before its store had it (its disk full) loses nothing, since
//! the next leader delivers it, once; a leader killed after its store had an alert but before
//! the cluster's alert stream had it sends nothing, the next leader sends it once, and the first
//! sends nothing when it comes back; every node's `alerts` shows the cluster's alerts; and an
//! outage a node announced while alone is closed when the book, which does not have it, takes
//! over.

use crate::support::binary::{Running, cli_in};
use crate::support::disk::{SmallDisk, fill};
use crate::support::nats::NatsCluster;
use crate::support::receiver::{Answer, Receiver};
use crate::support::server::{Reply, TestServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn config(nats: &[String], site: &str, hook: &str, confirm: u32) -> Value {
    json!({
        "sites": [{"name": "s0", "url": site, "interval": "200ms", "timeout": "500ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "cluster": {"nats": nats, "confirm": confirm, "heartbeat_ttl": "2s", "lease_ttl": "3s",
                    "alone_after": "2s"},
        "notify": [{"name": "hook", "type": "webhook", "url": hook, "group_wait": "0s",
                    "backoff_min": "200ms", "backoff_max": "500ms"}],
    })
}

/// A node named `name` in `location`, probing from `source`, its data in `data`.
fn node(
    dir: &Path,
    config: &Value,
    name: &str,
    location: &str,
    source: &str,
    data: &Path,
) -> Running {
    node_with_env(dir, config, name, location, source, data, &[])
}

/// [`node`] with environment variables.
fn node_with_env(
    dir: &Path,
    config: &Value,
    name: &str,
    location: &str,
    source: &str,
    data: &Path,
    env: &[(&str, &str)],
) -> Running {
    let path = dir.join(format!("config-{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    Running::start_in_with_env(
        tempfile::TempDir::new_in(dir).unwrap(),
        &[
            "--output",
            "json",
            "--config",
            path.to_str().unwrap(),
            "--node",
            name,
            "--location",
            location,
            "--source-address",
            source,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        env,
    )
}

use std::path::Path;

async fn role(run: &mut Running, role: &str, within: Duration) -> bool {
    run.wait_for(within, |e| e["event"] == "cluster" && e["role"] == role)
        .await
        .is_some()
}

/// The webhook's alerts: (kind, site, message).
fn notified(receiver: &Receiver) -> Vec<(String, String, String)> {
    receiver
        .requests()
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or("").to_owned(),
                a["site"].as_str().unwrap_or("").to_owned(),
                a["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn wait_notified(receiver: &Receiver, kind: &str, n: usize, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if notified(receiver)
            .iter()
            .filter(|(k, _, _)| k == kind)
            .count()
            >= n
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A site's entry in the book (its open conditions and pending alerts), read with a NATS client
/// of the test's own.
async fn book_entry(url: &str, site: &str) -> Value {
    let Ok(client) = async_nats::connect(url).await else {
        return Value::Null;
    };
    let js = async_nats::jetstream::new(client);
    let Ok(kv) = js.get_key_value("sitewatch_alerts").await else {
        return Value::Null;
    };
    let key = format!("site.{}", sitewatch::measurement::sample::site_token(site));
    match kv.get(key).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The site goes down: the leader `n1`, whose alerts the stream does not take, stores the
/// outage (it shows it) and sends nothing of it.
async fn outage_waits_for_the_stream(n1: &mut Running, down: &AtomicBool, receiver: &Receiver) {
    down.store(true, Ordering::SeqCst);
    n1.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "alert" && e["kind"] == "down"
    })
    .await
    .unwrap_or_else(|| panic!("n1 stores the outage; {}", n1.stderr()));
    n1.collect_for(Duration::from_secs(2)).await;
    assert!(
        notified(receiver).is_empty(),
        "n1 sends nothing the cluster does not have: {:?}",
        notified(receiver)
    );
}

/// Kills the leader `n1`; `n2` takes the lease and the webhook gets the down alert.
async fn kill_then_the_next_leader_sends(n1: &mut Running, n2: &mut Running, receiver: &Receiver) {
    n1.signal(nix::sys::signal::Signal::SIGKILL);
    n1.wait_exit(Duration::from_secs(5)).await.expect("killed");
    assert!(
        role(n2, "leader", Duration::from_secs(20)).await,
        "n2 leads; {}",
        n2.stderr()
    );
    assert!(
        wait_notified(receiver, "down", 1, Duration::from_secs(20)).await,
        "the new leader delivers the alert; n2: {}",
        n2.stderr()
    );
}

/// The down notifications of `site` the webhook got.
fn downs(receiver: &Receiver, site: &str) -> usize {
    notified(receiver)
        .into_iter()
        .filter(|(k, s, _)| k == "down" && s == site)
        .count()
}

/// A site that answers 200, or 503 while the flag is set.
async fn switchable_target() -> (TestServer, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let target = TestServer::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok("fine")
        }
    })
    .await;
    (target, down)
}

/// `sitewatch alerts --since 1h` on the store in `data`.
fn alerts_in(dir: &Path, data: &Path) -> String {
    let (code, out, err) = cli_in(
        dir,
        &[
            "alerts",
            "--since",
            "1h",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    out
}

fn count(v: &Value, field: &str) -> usize {
    v[field].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_the_book_and_its_store_loses_no_alert() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let Some(nats) = NatsCluster::single_with("").await else {
        return;
    };
    let urls = nats.urls();
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let (target, down) = switchable_target().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&urls, &target.url("/"), &receiver.url("/hook"), 1);
    let n1_data = disk.path().join("n1");
    let n2_data = dir.path().join("n2");
    let mut n1 = node(dir.path(), &cfg, "n1", "a", "127.0.0.2", &n1_data);
    assert!(
        role(&mut n1, "leader", Duration::from_secs(20)).await,
        "n1 leads; {}",
        n1.stderr()
    );
    // n2 starts as a follower (a node starts following; only a change is announced).
    let mut n2 = node(dir.path(), &cfg, "n2", "a", "127.0.0.3", &n2_data);
    n2.wait_for(Duration::from_secs(20), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("n2 runs; {}", n2.stderr()));
    n2.collect_for(Duration::from_secs(2)).await;
    assert!(
        !n2.events
            .iter()
            .any(|e| e["event"] == "cluster" && e["role"] == "leader")
    );
    // n1's disk fills: its store cannot take the alert it is about to decide.
    fill(disk.path(), 0);

    down.store(true, Ordering::SeqCst);
    // n1 decides the outage and writes it to the book (pending: its store has not got it).
    let end = Instant::now() + Duration::from_secs(15);
    while count(&book_entry(&urls[0], "s0").await, "open") == 0 {
        assert!(
            Instant::now() < end,
            "the outage reaches the book; {}",
            n1.stderr()
        );
        n1.collect_for(Duration::from_millis(100)).await;
    }
    assert!(
        !n1.events.iter().any(|e| e["event"] == "alert"),
        "n1 showed nothing: its store has nothing"
    );
    // n2 takes over and delivers the alert no store had, once.
    kill_then_the_next_leader_sends(&mut n1, &mut n2, &receiver).await;
    n2.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "alert" && e["kind"] == "down"
    })
    .await
    .expect("n2 shows it once stored");
    // n1 comes back (its disk has room again): it neither sends the alert again nor misses it
    // in its history, which holds the cluster's alerts.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let mut n1 = node(dir.path(), &cfg, "n1", "a", "127.0.0.2", &n1_data);
    n1.wait_for(Duration::from_secs(20), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("n1 runs again; {}", n1.stderr()));
    n1.collect_for(Duration::from_secs(3)).await;
    assert_eq!(
        downs(&receiver, "s0"),
        1,
        "one down notification: {:?}",
        notified(&receiver)
    );
    assert_eq!(
        count(&book_entry(&urls[0], "s0").await, "pending"),
        0,
        "the book has it confirmed"
    );
    for (name, data) in [("n1", &n1_data), ("n2", &n2_data)] {
        let out = alerts_in(dir.path(), data);
        assert!(
            out.contains("Website s0 is down"),
            "{name}'s alerts show the cluster's: {out}"
        );
    }
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    n2.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = n1.wait_exit(Duration::from_secs(20)).await;
    let _ = n2.wait_exit(Duration::from_secs(20)).await;
}

/// NATS users: n1 may not publish to the alert stream (as NATS in trouble would not take it);
/// n1b (n1 again, later) and n2 may.
const USERS: &str = "authorization { users = [\n\
    { user: \"n1\", password: \"p1-secret\", permissions: { publish: { deny: [\"sitewatch.a.>\"] } } }\n\
    { user: \"n1b\", password: \"p1-secret\" }\n\
    { user: \"n2\", password: \"p2-secret\" }\n\
    ] }\n";

/// The test config of a node that logs in to NATS as `user` (password from SW_NATS_PASS).
fn as_user(urls: &[String], site: &str, hook: &str, user: &str) -> Value {
    let mut c = config(urls, site, hook, 1);
    c["cluster"]["user"] = json!(user);
    c["cluster"]["password_env"] = json!("SW_NATS_PASS");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_before_the_cluster_has_its_stored_alert_sends_it_never_the_next_once() {
    // n1 may not publish to the alert stream (as NATS in trouble would not take it): its store
    // has the alert, the cluster does not.
    let Some(nats) = NatsCluster::single_with(USERS).await else {
        return;
    };
    let urls = nats.urls();
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let (target, down) = switchable_target().await;
    let dir = tempfile::tempdir().unwrap();
    let as_user = |user: &str| as_user(&urls, &target.url("/"), &receiver.url("/hook"), user);
    let (n1_data, n2_data) = (dir.path().join("n1"), dir.path().join("n2"));
    let p1 = [("SW_NATS_PASS", "p1-secret")];
    let mut n1 = node_with_env(
        dir.path(),
        &as_user("n1"),
        "n1",
        "a",
        "127.0.0.2",
        &n1_data,
        &p1,
    );
    assert!(
        role(&mut n1, "leader", Duration::from_secs(20)).await,
        "n1 leads; {}",
        n1.stderr()
    );
    let p2 = [("SW_NATS_PASS", "p2-secret")];
    let mut n2 = node_with_env(
        dir.path(),
        &as_user("n2"),
        "n2",
        "a",
        "127.0.0.3",
        &n2_data,
        &p2,
    );
    n2.wait_for(Duration::from_secs(20), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("n2 runs; {}", n2.stderr()));

    // n1 decides and stores the outage (it shows it), but the stream does not take it: its
    // notification waits.
    outage_waits_for_the_stream(&mut n1, &down, &receiver).await;
    // n2 takes over, finds the alert pending in the book and not in the stream, and sends it.
    kill_then_the_next_leader_sends(&mut n1, &mut n2, &receiver).await;
    // n1 comes back, now allowed to publish: the stream has n2's copy, so n1's notification
    // of the alert is superseded, not sent.
    let mut n1 = node_with_env(
        dir.path(),
        &as_user("n1b"),
        "n1",
        "a",
        "127.0.0.2",
        &n1_data,
        &p1,
    );
    n1.wait_for(Duration::from_secs(20), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("n1 runs again; {}", n1.stderr()));
    n1.collect_for(Duration::from_secs(4)).await;
    assert_eq!(
        downs(&receiver, "s0"),
        1,
        "one down notification: {:?}",
        notified(&receiver)
    );
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = n1.wait_exit(Duration::from_secs(20)).await;
    let out = alerts_in(dir.path(), &n1_data);
    assert!(
        out.contains("superseded"),
        "n1's own record says why it did not send it: {out}"
    );
    n2.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = n2.wait_exit(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_waiting_notification_goes_out_when_it_runs_without_the_cluster() {
    let Some(nats) = NatsCluster::single_with(USERS).await else {
        return;
    };
    let urls = nats.urls();
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    let (target, down) = switchable_target().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_user(&urls, &target.url("/"), &receiver.url("/hook"), "n1");
    let data = dir.path().join("n1");
    let p1 = [("SW_NATS_PASS", "p1-secret")];
    let mut n1 = node_with_env(dir.path(), &cfg, "n1", "a", "127.0.0.2", &data, &p1);
    assert!(
        role(&mut n1, "leader", Duration::from_secs(20)).await,
        "n1 leads; {}",
        n1.stderr()
    );
    outage_waits_for_the_stream(&mut n1, &down, &receiver).await;
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    n1.wait_exit(Duration::from_secs(20))
        .await
        .expect("stopped");
    // The same node, its cluster section gone: the notification goes out, once.
    let mut alone = cfg.clone();
    alone.as_object_mut().unwrap().remove("cluster");
    let mut n1 = node_with_env(dir.path(), &alone, "n1", "a", "127.0.0.2", &data, &p1);
    assert!(
        wait_notified(&receiver, "down", 1, Duration::from_secs(15)).await,
        "the waiting notification is sent; {}",
        n1.stderr()
    );
    n1.collect_for(Duration::from_secs(2)).await;
    assert_eq!(downs(&receiver, "s0"), 1, "{:?}", notified(&receiver));
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = n1.wait_exit(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_announced_alone_is_closed_when_the_book_takes_over() {
    let port = xtask::nats::free_port();
    let Some(mut nats) = NatsCluster::single_on(port).await else {
        return;
    };
    let urls = nats.urls();
    let receiver = Receiver::start(|_, _| Answer::ok()).await;
    // The site is down only from location a; with confirm 2 the cluster judges it up.
    let target = crate::support::by_location::Target::start().await;
    target.set_down(&["a"]);
    let dir = tempfile::tempdir().unwrap();
    let site = format!("http://127.0.0.1:{}/s0", target.port);
    let cfg = config(&urls, &site, &receiver.url("/hook"), 2);
    let (d1, d2) = (dir.path().join("n1"), dir.path().join("n2"));
    let mut n1 = node(dir.path(), &cfg, "n1", "a", "127.0.0.2", &d1);
    let mut n2 = node(dir.path(), &cfg, "n2", "b", "127.0.0.3", &d2);
    assert!(
        role(&mut n1, "leader", Duration::from_secs(20)).await
            || role(&mut n2, "leader", Duration::from_secs(20)).await
    );
    n1.collect_for(Duration::from_secs(3)).await;
    assert!(
        notified(&receiver).is_empty(),
        "one location down of two: no outage"
    );
    // NATS goes away: each node is alone, and n1 (which sees the site down) announces it.
    nats.kill(0);
    assert!(
        role(&mut n1, "alone", Duration::from_secs(15)).await,
        "{}",
        n1.stderr()
    );
    assert!(
        wait_notified(&receiver, "down", 1, Duration::from_secs(15)).await,
        "n1 alone announces the outage"
    );
    // NATS is back: the book (without the outage) takes over, and n1 closes what it opened.
    nats.restart(0).await;
    assert!(
        wait_notified(&receiver, "recovered", 1, Duration::from_secs(30)).await,
        "the outage n1 announced alone is closed; n1: {}",
        n1.stderr()
    );
    n1.collect_for(Duration::from_secs(2)).await;
    let n = notified(&receiver);
    assert_eq!(n.iter().filter(|(k, _, _)| k == "down").count(), 1, "{n:?}");
    let closed: Vec<_> = n.iter().filter(|(k, _, _)| k == "recovered").collect();
    assert_eq!(closed.len(), 1, "{n:?}");
    assert!(
        closed[0].2.contains("alert book took over"),
        "{}",
        closed[0].2
    );
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    n2.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = n1.wait_exit(Duration::from_secs(20)).await;
    let _ = n2.wait_exit(Duration::from_secs(20)).await;
}
