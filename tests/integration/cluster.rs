//! A sitewatch cluster on a real 3-server NATS JetStream cluster: three nodes in two locations,
//! a target that answers up or down by the prober's source address (each location probes from
//! its own loopback address), and a webhook receiver that counts the notifications. One
//! scenario, in order: the share of the sites, N-of-M confirmation, the leader killed during an
//! outage, a recovery during a handover, a NATS server killed, and everything restarted.

use crate::support::binary::Running;
use crate::support::by_location::{Target, location};
use crate::support::nats::NatsCluster;
use crate::support::receiver::Receiver;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const SITES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const HEARTBEAT_TTL: Duration = Duration::from_secs(2);
const LEASE_TTL: Duration = Duration::from_secs(3);

/// The location of a prober's source address.
/// The notifications received, as (kind, site) counts.
/// The alerts the webhook was sent, by kind and site. A delivery is at least once: a request
/// retried after a timeout whose first try did arrive is the same notification again, with the
/// same `Idempotency-Key` (unique beyond one node's store), and is counted once, as a receiver
/// dedups it. Two nodes sending the same outage (two verdicts) have two keys and count twice.
fn notified(receiver: &Receiver) -> HashMap<(String, String), usize> {
    let mut seen = std::collections::HashSet::new();
    let mut out = HashMap::new();
    for r in receiver.requests() {
        if let Some(key) = r.header("idempotency-key")
            && !seen.insert(key.to_owned())
        {
            continue;
        }
        for a in r.json()["alerts"].as_array().cloned().unwrap_or_default() {
            let key = (
                a["kind"].as_str().unwrap_or("").to_owned(),
                a["site"].as_str().unwrap_or("").to_owned(),
            );
            *out.entry(key).or_insert(0) += 1;
        }
    }
    out
}

fn count(n: &HashMap<(String, String), usize>, kind: &str) -> usize {
    n.iter()
        .filter(|((k, _), _)| k == kind)
        .map(|(_, c)| c)
        .sum()
}

/// Each site's count of `kind`, in site order.
fn per_site(n: &HashMap<(String, String), usize>, kind: &str) -> Vec<usize> {
    SITES
        .iter()
        .map(|s| {
            n.get(&(kind.to_owned(), (*s).to_owned()))
                .copied()
                .unwrap_or(0)
        })
        .collect()
}

struct Node {
    name: &'static str,
    location: &'static str,
    source: &'static str,
    run: Option<Running>,
    /// What earlier runs of this node said (alerts, cluster events, warnings), for a failure's
    /// message.
    past: Vec<String>,
}

/// Starts node `name` of `location`, probing from `source`, in `dir`.
fn start_node(
    config: &Value,
    dir: tempfile::TempDir,
    name: &str,
    location: &str,
    source: &str,
) -> Running {
    Running::start_with_env(
        dir,
        config,
        &[
            "--node",
            name,
            "--location",
            location,
            "--source-address",
            source,
        ],
        // The cluster's and the recorder's decisions, for a failure's message.
        &[(
            "RUST_LOG",
            "warn,sitewatch::cluster=info,sitewatch::recorder=info",
        )],
    )
}

/// Reads a node's events until it says it has `role`.
async fn wait_role(run: &mut Running, role: &str, within: Duration) -> bool {
    run.wait_for(within, |e| e["event"] == "cluster" && e["role"] == role)
        .await
        .is_some()
}

impl Node {
    fn start(&mut self, config: &Value, dir: tempfile::TempDir) {
        self.run = Some(start_node(
            config,
            dir,
            self.name,
            self.location,
            self.source,
        ));
    }

    fn running(&mut self) -> &mut Running {
        self.run.as_mut().expect("running")
    }

    /// Stops it (SIGKILL or SIGTERM) and returns its directory, for a restart.
    async fn stop(&mut self, signal: nix::sys::signal::Signal) -> tempfile::TempDir {
        let mut run = self.run.take().expect("running");
        run.signal(signal);
        assert!(
            run.wait_exit(Duration::from_secs(20)).await.is_some(),
            "{} did not stop",
            self.name
        );
        run.drain().await;
        self.past.extend(said(self.name, &run));
        let Running { dir, .. } = run;
        dir
    }
}

/// Reads every running node's events for `d`.
async fn pump(nodes: &mut [Node], d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        for n in nodes.iter_mut() {
            if let Some(r) = n.run.as_mut() {
                r.collect_for(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads events until a node announces it leads (one that is not `except`); returns its index.
async fn await_leader(
    nodes: &mut [Node],
    within: Duration,
    seen_before: &[usize],
) -> Option<usize> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        pump(nodes, Duration::from_millis(100)).await;
        let now = leader_counts(nodes);
        if let Some(i) =
            (0..nodes.len()).find(|i| now[*i] > seen_before.get(*i).copied().unwrap_or(0))
        {
            return Some(i);
        }
    }
    None
}

/// The running node whose latest role event says it leads.
fn current_leader(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| {
        n.run.as_ref().is_some_and(|r| {
            r.events
                .iter()
                .rev()
                .find(|e| e["event"] == "cluster")
                .is_some_and(|e| e["role"] == "leader")
        })
    })
}

/// Reads events until a running node's latest role is leader (a lease may be moving when a
/// NATS server was just killed: its role event may not have been read yet); its index.
async fn wait_current_leader(nodes: &mut [Node], within: Duration) -> Option<usize> {
    let end = Instant::now() + within;
    loop {
        if let Some(i) = current_leader(nodes) {
            return Some(i);
        }
        if Instant::now() >= end {
            return None;
        }
        pump(nodes, Duration::from_millis(100)).await;
    }
}

fn leader_counts(nodes: &[Node]) -> Vec<usize> {
    nodes
        .iter()
        .map(|n| {
            n.run.as_ref().map_or(0, |r| {
                r.events
                    .iter()
                    .filter(|e| e["event"] == "cluster" && e["role"] == "leader")
                    .count()
            })
        })
        .collect()
}

/// Waits until `kind` was notified `total` times, reading the nodes' events meanwhile.
async fn await_notified(
    nodes: &mut [Node],
    receiver: &Receiver,
    kind: &str,
    total: usize,
    within: Duration,
) {
    let end = Instant::now() + within;
    while count(&notified(receiver), kind) < total {
        assert!(
            Instant::now() < end,
            "{total} {kind} notifications expected within {within:?}, got {:?}; errors: {:?}",
            notified(receiver),
            errors(nodes)
        );
        pump(nodes, Duration::from_millis(200)).await;
    }
}

/// Every node's error and cluster events and the end of its log, for failure messages.
fn errors(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| n.run.as_ref().map(|r| (n.name, r)))
        .flat_map(|(name, r)| {
            let log = r.stderr();
            let tail = log[log.len().saturating_sub(3000)..].to_owned();
            r.events
                .iter()
                .filter(|e| e["event"] == "error" || e["event"] == "cluster")
                .map(move |e| format!("{name}: {e}"))
                .chain([format!("{name} log: {tail}")])
        })
        .collect()
}

/// What a run said that explains a cluster's decisions: its alert, cluster and error events and
/// its warnings.
fn said(name: &str, r: &Running) -> Vec<String> {
    r.events
        .iter()
        .filter(|e| matches!(e["event"].as_str(), Some("alert" | "cluster" | "error")))
        .map(|e| format!("{name}: {e}"))
        .chain(
            r.stderr()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("cluster:"))
                .map(|l| format!("{name} log: {l}"))
                .collect::<Vec<_>>(),
        )
        .collect()
}

/// Every node's story so far, earlier runs first: a failure's message.
fn story(nodes: &[Node]) -> String {
    nodes
        .iter()
        .flat_map(|n| {
            n.past
                .iter()
                .cloned()
                .chain(n.run.as_ref().map(|r| said(n.name, r)).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Alerts stored by a node: its local store holds the ones it sent as leader.
fn stored_alerts(dir: &std::path::Path) -> Vec<(String, String)> {
    let path = dir.join("sitewatch-data/sitewatch.db");
    if !path.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT kind, site || ' at ' || time_us || ': ' || message FROM alerts ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_in_two_locations_give_one_verdict() {
    let Some(mut nats) = NatsCluster::start().await else {
        return;
    };
    let target = Target::start().await;
    let receiver = Receiver::accepting().await;
    let sites: Vec<Value> = SITES
        .iter()
        .map(|s| {
            json!({"name": s, "url": format!("http://127.0.0.1:{}/{s}", target.port),
                   "interval": "250ms", "timeout": "200ms"})
        })
        .collect();
    let config = json!({
        "sites": sites,
        "alerting": {"window": "2s", "threshold": 0.8},
        "notify": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                    "group_wait": "0s", "backoff_min": "100ms", "backoff_max": "500ms"}],
        "cluster": {"nats": nats.urls(), "confirm": 2,
                    "heartbeat_ttl": "2s", "lease_ttl": "3s"},
    });
    let mut nodes = vec![
        Node {
            name: "n1",
            location: "a",
            source: "127.0.0.2",
            run: None,
            past: Vec::new(),
        },
        Node {
            name: "n2",
            location: "a",
            source: "127.0.0.4",
            run: None,
            past: Vec::new(),
        },
        Node {
            name: "n3",
            location: "b",
            source: "127.0.0.3",
            run: None,
            past: Vec::new(),
        },
    ];
    // n1 first, so that the first leader is a node whose location has another node.
    nodes[0].start(&config, tempfile::tempdir().unwrap());
    let first = await_leader(&mut nodes, Duration::from_secs(20), &[]).await;
    assert_eq!(
        first,
        Some(0),
        "n1 should lead: {:?}\n{}",
        errors(&nodes),
        nodes[0].running().stderr()
    );
    nodes[1].start(&config, tempfile::tempdir().unwrap());
    nodes[2].start(&config, tempfile::tempdir().unwrap());
    pump(&mut nodes, HEARTBEAT_TTL * 2).await;

    // The share: each site is probed by exactly one node of each location, and both nodes of
    // location a have sites.
    let since = Instant::now();
    pump(&mut nodes, Duration::from_secs(2)).await;
    let probers = target.probers_since(since);
    let mut a_nodes = HashSet::new();
    for s in SITES {
        let ips = &probers[&format!("/{s}")];
        let a: Vec<_> = ips.iter().filter(|ip| location(**ip) == "a").collect();
        let b: Vec<_> = ips.iter().filter(|ip| location(**ip) == "b").collect();
        assert_eq!(a.len(), 1, "{s} probed from location a by {a:?}");
        assert_eq!(b.len(), 1, "{s} probed from location b by {b:?}");
        a_nodes.insert(*a[0]);
    }
    assert_eq!(
        a_nodes.len(),
        2,
        "both nodes of location a probe: {probers:?}"
    );
    // Every node sees the whole cluster: n3 (location b) shows probes of location a.
    assert!(
        nodes[2]
            .running()
            .events
            .iter()
            .any(|e| e["event"] == "probe" && e["location"] == "a"),
        "n3 shows no probe of location a"
    );

    // Down from one location only, confirm 2: nothing.
    target.set_down(&["a"]);
    pump(&mut nodes, Duration::from_secs(4)).await;
    assert!(notified(&receiver).is_empty(), "{:?}", notified(&receiver));
    for n in &nodes {
        let alerts = n
            .run
            .as_ref()
            .unwrap()
            .events
            .iter()
            .filter(|e| e["event"] == "alert")
            .count();
        assert_eq!(
            alerts, 0,
            "{} raised an alert for a one-location outage",
            n.name
        );
    }

    // Down from both: one down alert per site, one notification each, from the leader only.
    target.set_down(&["a", "b"]);
    await_notified(
        &mut nodes,
        &receiver,
        "down",
        SITES.len(),
        Duration::from_secs(10),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(2)).await;
    assert_eq!(per_site(&notified(&receiver), "down"), vec![1; SITES.len()]);
    let down = nodes[0]
        .running()
        .events
        .iter()
        .find(|e| e["event"] == "alert" && e["kind"] == "down")
        .cloned()
        .expect("n1 (the leader) shows the down alert");
    let text = down["message"].as_str().unwrap();
    assert!(
        text.contains("down from a, b: 2 of 2 locations; confirm 2"),
        "{text}"
    );
    for n in &nodes[1..] {
        let alerts = n
            .run
            .as_ref()
            .unwrap()
            .events
            .iter()
            .filter(|e| e["event"] == "alert")
            .count();
        assert_eq!(alerts, 0, "follower {} let an alert out", n.name);
    }

    // SIGKILL the leader while the outage goes on: another node takes over within the lease
    // TTL (and a poll), n1's sites are probed by n2 within a heartbeat TTL (and a poll), and no
    // second down alert is sent.
    let before = leader_counts(&nodes);
    let killed_at = Instant::now();
    let n1_dir = nodes[0].stop(nix::sys::signal::Signal::SIGKILL).await;
    let new = await_leader(&mut nodes, LEASE_TTL * 3, &before)
        .await
        .expect("a new leader");
    let takeover = killed_at.elapsed();
    eprintln!("leader takeover after SIGKILL: {takeover:?} (lease TTL {LEASE_TTL:?})");
    assert!(
        takeover <= LEASE_TTL + Duration::from_secs(2),
        "takeover took {takeover:?}"
    );
    pump(&mut nodes, Duration::from_secs(4)).await;
    let n1_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let n1_sites: Vec<_> = SITES
        .iter()
        .filter(|s| probers[&format!("/{s}")].contains(&n1_ip))
        .collect();
    assert!(!n1_sites.is_empty());
    for s in &n1_sites {
        let gap = target.longest_gap(&format!("/{s}"), "a", killed_at, Instant::now());
        eprintln!(
            "site {s}: location a's longest probe gap after n1 died: {gap:?} (heartbeat TTL {HEARTBEAT_TTL:?})"
        );
        assert!(
            gap <= HEARTBEAT_TTL + Duration::from_secs(1),
            "{s}: gap {gap:?}"
        );
    }
    let n = notified(&receiver);
    assert_eq!(
        per_site(&n, "down"),
        vec![1; SITES.len()],
        "a second down alert: {n:?}"
    );
    assert_eq!(count(&n, "recovered"), 0);

    // Recovery: one per site, from the new leader.
    target.set_down(&[]);
    await_notified(
        &mut nodes,
        &receiver,
        "recovered",
        SITES.len(),
        Duration::from_secs(10),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(2)).await;
    assert_eq!(
        per_site(&notified(&receiver), "recovered"),
        vec![1; SITES.len()]
    );
    let leader_events = nodes[new]
        .running()
        .events
        .iter()
        .filter(|e| e["event"] == "alert" && e["kind"] == "recovered")
        .count();
    assert_eq!(
        leader_events,
        SITES.len(),
        "the new leader sent the recoveries"
    );

    // n1 comes back as a follower; a NATS server dies; the cluster carries on: the next outage
    // gives one more down alert per site.
    nodes[0].start(&config, n1_dir);
    pump(&mut nodes, HEARTBEAT_TTL * 2).await;
    nats.kill(0);
    target.set_down(&["a", "b"]);
    await_notified(
        &mut nodes,
        &receiver,
        "down",
        2 * SITES.len(),
        Duration::from_secs(30),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(1)).await;
    assert_eq!(per_site(&notified(&receiver), "down"), vec![2; SITES.len()]);

    // A recovery during a handover: the sites come back and the leader is killed at once; the
    // recovery is sent once, by whoever leads next (after the killed node returns if it was
    // location b's only node).
    let current = wait_current_leader(&mut nodes, LEASE_TTL * 3)
        .await
        .expect("a node leads");
    target.set_down(&[]);
    let dir = nodes[current].stop(nix::sys::signal::Signal::SIGKILL).await;
    pump(&mut nodes, LEASE_TTL).await;
    nodes[current].start(&config, dir);
    await_notified(
        &mut nodes,
        &receiver,
        "recovered",
        2 * SITES.len(),
        Duration::from_secs(30),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(3)).await;
    let n = notified(&receiver);
    assert_eq!(
        per_site(&n, "recovered"),
        vec![2; SITES.len()],
        "{n:?}\n{}",
        story(&nodes)
    );
    assert_eq!(
        per_site(&n, "down"),
        vec![2; SITES.len()],
        "{n:?}\n{}",
        story(&nodes)
    );

    // Restart everything (NATS too) during an outage: the alert state survives, nothing repeats.
    target.set_down(&["a", "b"]);
    await_notified(
        &mut nodes,
        &receiver,
        "down",
        3 * SITES.len(),
        Duration::from_secs(30),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(1)).await;
    let mut dirs = Vec::new();
    for n in nodes.iter_mut() {
        dirs.push(n.stop(nix::sys::signal::Signal::SIGTERM).await);
    }
    for i in 0..3 {
        nats.restart(i).await;
    }
    for (n, dir) in nodes.iter_mut().zip(dirs) {
        n.start(&config, dir);
    }
    assert!(
        await_leader(&mut nodes, Duration::from_secs(30), &[0, 0, 0])
            .await
            .is_some(),
        "{:?}",
        errors(&nodes)
    );
    pump(&mut nodes, Duration::from_secs(5)).await;
    let n = notified(&receiver);
    assert_eq!(
        per_site(&n, "down"),
        vec![3; SITES.len()],
        "an alert repeated after the restart: {n:?}\n{}",
        story(&nodes)
    );
    target.set_down(&[]);
    await_notified(
        &mut nodes,
        &receiver,
        "recovered",
        3 * SITES.len(),
        Duration::from_secs(20),
    )
    .await;
    pump(&mut nodes, Duration::from_secs(2)).await;
    let n = notified(&receiver);
    assert_eq!(
        per_site(&n, "recovered"),
        vec![3; SITES.len()],
        "{n:?}\n{:#?}",
        errors(&nodes)
    );
    assert_eq!(
        per_site(&n, "down"),
        vec![3; SITES.len()],
        "{n:?}\n{}",
        story(&nodes)
    );

    // The history: every node's store holds the cluster's alerts (each node's own and, from the
    // cluster's alert stream, the others'), each once: what was sent.
    pump(&mut nodes, Duration::from_secs(3)).await;
    let mut stored: HashMap<String, usize> = HashMap::new();
    for n in &nodes {
        let mut mine: HashMap<String, usize> = HashMap::new();
        for (kind, _) in stored_alerts(n.run.as_ref().unwrap().dir.path()) {
            *mine.entry(kind).or_insert(0) += 1;
        }
        let rows = stored_alerts(n.run.as_ref().unwrap().dir.path());
        assert_eq!(
            mine.get("down"),
            Some(&(3 * SITES.len())),
            "{}: {mine:?}\n{rows:#?}\n{}",
            n.name,
            story(&nodes)
        );
        assert_eq!(
            mine.get("recovered"),
            Some(&(3 * SITES.len())),
            "{}: {mine:?}\n{rows:#?}\n{}",
            n.name,
            story(&nodes)
        );
        stored = mine;
    }
    assert_eq!(stored.get("down"), Some(&(3 * SITES.len())), "{stored:?}");
    assert_eq!(
        stored.get("recovered"),
        Some(&(3 * SITES.len())),
        "{stored:?}"
    );
    for n in nodes.iter_mut() {
        n.stop(nix::sys::signal::Signal::SIGTERM).await;
    }
}

/// Messages in the measurement stream, read with a NATS client of the test's own.
async fn stream_messages(url: &str) -> u64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("SITEWATCH_measurements").await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_nats_goes_on_alone_then_catches_up_and_compares_configs() {
    let port = crate::support::closed_port();
    let target = Target::start().await;
    target.set_down(&["a"]);
    let config = |sites: &[&str], threshold: f64| {
        json!({
            "sites": sites.iter().map(|s| json!({"name": s, "url": format!("http://127.0.0.1:{}/{s}", target.port),
                                                 "interval": "200ms", "timeout": "150ms"})).collect::<Vec<_>>(),
            "alerting": {"window": "1s", "threshold": threshold},
            "cluster": {"nats": [format!("nats://127.0.0.1:{port}")], "confirm": 2, "alone_after": "1s",
                        "heartbeat_ttl": "2s", "lease_ttl": "3s"},
        })
    };
    // No NATS at all: the node probes, stores, goes alone and alerts on its own probes (confirm
    // 2 does not hold it back: there is no one to confirm with), saying so.
    let mut n1 = start_node(
        &config(&["x", "y"], 0.8),
        tempfile::tempdir().unwrap(),
        "n1",
        "a",
        "127.0.0.2",
    );
    assert!(
        wait_role(&mut n1, "alone", Duration::from_secs(10)).await,
        "no alone event: {}",
        n1.stderr()
    );
    let down = n1
        .wait_for(
            Duration::from_secs(10),
            crate::support::binary::alert("down", "x"),
        )
        .await
        .expect("a down alert from the node alone");
    let text = down["message"].as_str().unwrap();
    assert!(
        text.contains("(seen from a alone: NATS is unreachable)"),
        "{text}"
    );
    n1.collect_for(Duration::from_millis(500)).await;
    // Stopped and started again, still without NATS: what it probed before waits in its store.
    let restarted = chrono::Utc::now();
    n1.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(n1.wait_exit(Duration::from_secs(20)).await.is_some());
    n1.drain().await;
    let Running { dir, .. } = n1;
    let mut n1 = start_node(&config(&["x", "y"], 0.8), dir, "n1", "a", "127.0.0.2");
    assert!(
        wait_role(&mut n1, "alone", Duration::from_secs(10)).await,
        "no alone event after the restart: {}",
        n1.stderr()
    );
    n1.collect_for(Duration::from_millis(500)).await;
    let stored_before = n1.probe_count_in_store();
    assert!(stored_before > 5, "{stored_before} probes stored");

    // NATS comes: the node leads, and the probes it held reach the stream.
    let Some(_nats) = NatsCluster::single_on(port).await else {
        return;
    };
    assert!(
        wait_role(&mut n1, "leader", Duration::from_secs(20)).await,
        "no leader event: {}",
        n1.stderr()
    );
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let published = stream_messages(&url).await;
        if published >= stored_before as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{published} probes in the stream, {stored_before} were made while NATS was away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The stream's first probe is one of the first run's.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SITEWATCH_measurements").await.unwrap();
    let first = stream.get_raw_message(1).await.unwrap();
    let sample = sitewatch::measurement::sample::Sample::decode(&first.payload).unwrap();
    assert_eq!(sample.node, "n1");
    assert!(
        sample.time_us < restarted.timestamp_micros(),
        "the first published probe is from after the restart: {sample:?}"
    );

    // A node with another config: n1 names it and the difference.
    let mut n2 = start_node(
        &config(&["x", "z"], 0.5),
        tempfile::tempdir().unwrap(),
        "n2",
        "b",
        "127.0.0.3",
    );
    let differs = n1
        .wait_for(Duration::from_secs(10), |e| {
            e["event"] == "error"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("node n2 runs another config")
        })
        .await
        .unwrap_or_else(|| panic!("no config mismatch reported: {}", n1.stderr()));
    let text = differs["message"].as_str().unwrap();
    assert!(text.contains("sites only on n2: z"), "{text}");
    assert!(text.contains("sites missing on n2: y"), "{text}");
    assert!(text.contains("alerting settings"), "{text}");
    // n2 sees n1's probes of x on the stream (location a).
    let remote = n2
        .wait_for(Duration::from_secs(10), |e| {
            e["event"] == "probe" && e["site"] == "x" && e["location"] == "a"
        })
        .await;
    assert!(remote.is_some(), "n2 shows no probe of n1");
    for n in [&mut n1, &mut n2] {
        n.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(n.wait_exit(Duration::from_secs(20)).await.is_some());
    }
}

#[tokio::test]
async fn probes_leave_from_the_source_address() {
    let target = Target::start().await;
    let config = json!({
        "sites": [{"name": "s", "url": format!("http://127.0.0.1:{}/s", target.port), "interval": "200ms"}],
        "probing": {"source_address": "127.0.0.5"},
    });
    let mut run = Running::start(&config);
    assert!(
        run.wait_for(
            Duration::from_secs(10),
            crate::support::binary::is("probe", "s")
        )
        .await
        .is_some()
    );
    let from: HashSet<IpAddr> =
        target.probers_since(Instant::now() - Duration::from_secs(60))["/s"].clone();
    assert_eq!(from, HashSet::from(["127.0.0.5".parse().unwrap()]));
    // `--source-address` overrides the file; an address of no local interface is a probe error.
    let mut other = Running::start_with(
        tempfile::tempdir().unwrap(),
        &config,
        &["--source-address", "192.0.2.1"],
    );
    let failed = other
        .wait_for(
            Duration::from_secs(10),
            crate::support::binary::is("probe", "s"),
        )
        .await
        .unwrap();
    assert_eq!(failed["ok"], false, "{failed}");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    other.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(10)).await.is_some());
    assert!(other.wait_exit(Duration::from_secs(10)).await.is_some());
}
