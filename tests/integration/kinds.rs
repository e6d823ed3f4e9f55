//! Probe kinds beside HTTP, through the real binary against real servers on loopback: TCP (a
//! PING/PONG server the test flips and slows, aiosmtpd's SMTP banner, a closed port, a TLS
//! server whose certificate is recorded as for HTTPS) and DNS (dnsmasq serving a zone the test
//! rewrites). Each kind gets what HTTP has: up, down and recovery alerts, degraded on latency,
//! its timings in the probe events and /metrics and the API.

use crate::support::binary::{Running, alert, is};
use crate::support::dns::Dnsmasq;
use crate::support::kinds::PyServer;
use crate::support::netns::QuietHost;
use crate::support::smtp::Smtp;
use crate::support::tls::TestCa;
use crate::support::{closed_port, get_text, http_client};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(sites: Value, listen: u16) -> Value {
    json!({
        "sites": sites,
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{listen}")},
    })
}

/// A Redis-like server: answers each line it reads with `answer`, after `delay`.
struct PingServer {
    port: u16,
    state: Arc<Mutex<(String, Duration)>>,
}

impl PingServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(("+PONG\r\n".to_owned(), Duration::ZERO)));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    if let Ok(n) = conn.read(&mut buf).await
                        && n > 0
                    {
                        let (answer, delay) = shared.lock().unwrap().clone();
                        tokio::time::sleep(delay).await;
                        let _ = conn.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        Self { port, state }
    }

    fn set(&self, answer: &str, delay: Duration) {
        *self.state.lock().unwrap() = (answer.to_owned(), delay);
    }
}

/// The newest failed probe of `site` seen so far.
fn last_failure(run: &Running, site: &str) -> Value {
    run.of("probe", site)
        .into_iter()
        .rev()
        .find(|p| p["ok"] == false)
        .cloned()
        .unwrap_or_else(|| panic!("no failed probe of {site}"))
}

/// Waits up to `secs` for a probe of `site` that passed.
async fn first_ok(run: &mut Running, site: &str, secs: u64) -> Value {
    let site_name = site.to_owned();
    match run
        .wait_for(Duration::from_secs(secs), move |v| {
            v["event"] == "probe" && v["site"] == site_name.as_str() && v["ok"] == true
        })
        .await
    {
        Some(p) => p,
        None => panic!("no passing probe of {site}; stderr: {}", run.stderr()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_site_is_judged_by_its_answer_and_alerts_like_a_website() {
    let server = PingServer::start().await;
    let listen = closed_port();
    let mut run = Running::start(&config(
        json!([{
            "name": "cache", "kind": "tcp", "target": format!("127.0.0.1:{}", server.port),
            "send": "PING\r\n", "expect": "+PONG", "interval": "100ms", "timeout": "1s",
            "alerting": {"degraded": {"response_p95": "150ms"}}
        }]),
        listen,
    ));
    let p = first_ok(&mut run, "cache", 10).await;
    assert_eq!(p["url"], format!("tcp://127.0.0.1:{}", server.port), "{p}");
    assert_eq!(p["kind"], "tcp", "the wire schema names the kind: {p}");
    assert!(p["response_ms"].as_f64().is_some(), "{p}");
    assert!(
        p["ttfb_ms"].as_f64().is_some(),
        "the first answer byte: {p}"
    );
    assert!(p["connect_ms"].as_f64().is_some(), "{p}");
    assert_eq!(p["status"], Value::Null, "{p}");

    // A wrong answer is a failure of kind `answer`, and the site goes down.
    server.set("-ERR unknown command\r\n", Duration::ZERO);
    let down = run
        .wait_for(Duration::from_secs(10), alert("down", "cache"))
        .await
        .expect("down alert");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .starts_with("Website cache is down. availability="),
        "{down}"
    );
    let failed = last_failure(&run, "cache");
    assert_eq!(failed["error"]["kind"], "answer", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"+PONG\"") && message.contains("-ERR unknown command"),
        "{message}"
    );
    // The API and /metrics show it as any site.
    let sites: Value =
        serde_json::from_str(&get_text(&format!("http://127.0.0.1:{listen}/api/v1/sites")).await)
            .unwrap();
    let site = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "cache")
        .cloned()
        .unwrap_or_else(|| panic!("{sites}"));
    assert_eq!(
        site["url"],
        format!("tcp://127.0.0.1:{}", server.port),
        "{site}"
    );
    assert_eq!(site["kind"], "tcp", "{site}");
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sitewatch_probes_total{") && l.contains("site=\"cache\"")),
        "{metrics}"
    );

    server.set("+PONG\r\n", Duration::ZERO);
    run.wait_for(Duration::from_secs(10), alert("recovered", "cache"))
        .await
        .expect("recovery");
    // Slow answers: degraded on the response time's p95, as for HTTP.
    server.set("+PONG\r\n", Duration::from_millis(300));
    run.wait_for(Duration::from_secs(10), alert("degraded", "cache"))
        .await
        .expect("degraded alert");
    assert!(
        run.of("alert", "cache")
            .iter()
            .all(|a| a["kind"] != "down" || a["time"] == down["time"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_site_reads_a_real_smtp_banner_and_a_closed_port_fails_to_connect() {
    let Some(smtp) = Smtp::start().await else {
        return;
    };
    let mut run = Running::start(&config(
        json!([
            {"name": "mail", "kind": "tcp", "target": format!("localhost:{}", smtp.port),
             "expect_regex": "^220 ", "interval": "200ms"},
            {"name": "nothing", "kind": "tcp", "target": format!("127.0.0.1:{}", closed_port()),
             "interval": "200ms"}
        ]),
        closed_port(),
    ));
    let p = first_ok(&mut run, "mail", 10).await;
    assert!(
        p["dns_ms"].as_f64().is_some(),
        "localhost was resolved: {p}"
    );
    run.wait_for(Duration::from_secs(10), alert("down", "nothing"))
        .await
        .expect("the closed port goes down");
    let failed = run.of("probe", "nothing")[0].clone();
    assert_eq!(failed["error"]["kind"], "connect", "{failed}");
    assert!(run.of("alert", "mail").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_site_with_tls_reports_its_chain_and_warns_before_it_expires() {
    let ca = TestCa::new();
    let soon = chrono::Utc::now() + chrono::TimeDelta::days(3);
    let identity = ca.issue_until(
        "smtps.test",
        &["localhost"],
        time::OffsetDateTime::from_unix_timestamp(soon.timestamp()).unwrap(),
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(crate::support::tls::server_config(
        identity,
        b"smtp".to_vec(),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"220 smtps.test ready\r\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut cfg = config(
        json!([{"name": "smtps", "kind": "tcp", "target": format!("localhost:{port}"),
                "tls": true, "tls_ca": ca_file.to_str().unwrap(), "expect": "220",
                "interval": "200ms", "alerting": {"cert_warning": "7d"}}]),
        closed_port(),
    );
    cfg["sites"][0]["tls_ca"] = json!(ca_file.to_str().unwrap());
    let mut run = Running::start(&cfg);
    let p = first_ok(&mut run, "smtps", 10).await;
    assert_eq!(p["tls"]["leaf"]["subject"], "CN=smtps.test", "{p}");
    assert!(p["tls_ms"].as_f64().is_some(), "{p}");
    run.wait_for(Duration::from_secs(10), alert("cert_expiring", "smtps"))
        .await
        .expect("the certificate warning, as for HTTPS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_site_follows_the_zone_its_server_serves() {
    let Some(dns) = Dnsmasq::start("192.0.2.10 www.example.test\n").await else {
        return;
    };
    let resolver = format!("127.0.0.1:{}", dns.port);
    let listen = closed_port();
    let mut run = Running::start(&config(
        json!([
            {"name": "www", "kind": "dns", "target": "www.example.test", "resolver": resolver,
             "expect_answers": ["192.0.2.10"], "answers_match": "exact", "interval": "100ms"},
            {"name": "mx", "kind": "dns", "target": "example.test", "record_type": "MX",
             "resolver": resolver, "expect_answers": ["10 mail.example.test."], "interval": "200ms"},
            {"name": "gone", "kind": "dns", "target": "nope.example.test", "resolver": resolver,
             "expect_rcode": "NXDOMAIN", "interval": "200ms"}
        ]),
        listen,
    ));
    for site in ["www", "mx", "gone"] {
        let p = run
            .wait_for(Duration::from_secs(10), |v| {
                v["event"] == "probe" && v["site"] == site && v["ok"] == true
            })
            .await
            .unwrap_or_else(|| panic!("{site} answers as expected; stderr: {}", run.stderr()));
        assert!(p["response_ms"].as_f64().is_some(), "{p}");
        assert_eq!(p["kind"], "dns", "{p}");
    }
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("probe_dns_answer_rrs{")
                && l.contains("site=\"www\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );

    // The zone changes under it: the answer is not the expected one, the site goes down.
    dns.set_hosts("192.0.2.99 www.example.test\n").await;
    run.wait_for(Duration::from_secs(10), alert("down", "www"))
        .await
        .expect("down alert");
    let failed = last_failure(&run, "www");
    assert_eq!(failed["error"]["kind"], "answer", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing \"192.0.2.10\""),
        "{failed}"
    );
    // Gone from the zone: NXDOMAIN, a response-code failure.
    dns.set_hosts("").await;
    run.wait_for(Duration::from_secs(10), |v| {
        is("probe", "www")(v) && v["error"]["kind"] == "status"
    })
    .await
    .expect("NXDOMAIN is a status failure");
    dns.set_hosts("192.0.2.10 www.example.test\n").await;
    run.wait_for(Duration::from_secs(10), alert("recovered", "www"))
        .await
        .expect("recovery");
    assert!(run.of("alert", "mx").is_empty() && run.of("alert", "gone").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_site_upgrades_sends_and_checks_the_answer() {
    let Some(ws) = PyServer::websocket("pong 1") else {
        return;
    };
    let listen = closed_port();
    let mut run = Running::start(&config(
        json!([
            {"name": "live", "kind": "websocket", "url": format!("ws://127.0.0.1:{}/feed", ws.port),
             "send": "ping", "expect_regex": "^pong \\d+$", "interval": "100ms", "timeout": "2s"},
            {"name": "nobody", "kind": "websocket", "url": format!("ws://127.0.0.1:{}/", closed_port()),
             "interval": "200ms"}
        ]),
        listen,
    ));
    let p = first_ok(&mut run, "live", 15).await;
    assert_eq!(p["status"], 101, "the upgrade: {p}");
    assert!(
        p["ttfb_ms"].as_f64().is_some() && p["response_ms"].as_f64().is_some(),
        "{p}"
    );
    assert!(p["connect_ms"].as_f64().is_some(), "{p}");
    run.wait_for(Duration::from_secs(10), alert("down", "nobody"))
        .await
        .expect("a closed port goes down");

    ws.set("pong later");
    run.wait_for(Duration::from_secs(10), alert("down", "live"))
        .await
        .expect("a wrong answer takes the site down");
    let failed = last_failure(&run, "live");
    assert_eq!(failed["error"]["kind"], "answer", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pong later"),
        "{failed}"
    );
    ws.set("close");
    run.wait_for(Duration::from_secs(10), |v| {
        is("probe", "live")(v)
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("closed the WebSocket"))
    })
    .await
    .expect("a server that closes instead of answering");
    ws.set("pong 2");
    run.wait_for(Duration::from_secs(10), alert("recovered", "live"))
        .await
        .expect("recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_site_is_up_while_its_health_service_says_serving() {
    let Some(grpc) = PyServer::grpc("=SERVING\ncheckout=SERVING\n") else {
        return;
    };
    let listen = closed_port();
    let target = format!("127.0.0.1:{}", grpc.port);
    let mut run = Running::start(&config(
        json!([
            {"name": "server", "kind": "grpc", "target": target, "interval": "100ms", "timeout": "2s"},
            {"name": "checkout", "kind": "grpc", "target": target, "service": "checkout",
             "interval": "100ms", "timeout": "2s"},
            {"name": "unknown", "kind": "grpc", "target": target, "service": "nope",
             "interval": "200ms", "timeout": "2s"}
        ]),
        listen,
    ));
    for site in ["server", "checkout"] {
        let p = run
            .wait_for(Duration::from_secs(15), |v| {
                v["event"] == "probe" && v["site"] == site && v["ok"] == true
            })
            .await
            .unwrap_or_else(|| panic!("{site} serving; stderr: {}", run.stderr()));
        assert_eq!(
            p["url"],
            format!(
                "grpc://127.0.0.1:{}{}",
                grpc.port,
                if site == "checkout" { "/checkout" } else { "" }
            ),
            "{p}"
        );
        assert!(p["response_ms"].as_f64().is_some(), "{p}");
    }
    run.wait_for(Duration::from_secs(10), alert("down", "unknown"))
        .await
        .expect("an unknown service is down");
    let failed = run.of("probe", "unknown")[0].clone();
    assert_eq!(failed["error"]["kind"], "status", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("gRPC status 5 (NOT_FOUND)"),
        "{failed}"
    );
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("probe_grpc_status_code{")
                && l.contains("site=\"unknown\"")
                && l.ends_with(" 5")),
        "{metrics}"
    );

    grpc.set("=SERVING\ncheckout=NOT_SERVING\n");
    run.wait_for(Duration::from_secs(10), alert("down", "checkout"))
        .await
        .expect("NOT_SERVING is down");
    let failed = last_failure(&run, "checkout");
    assert_eq!(
        failed["error"]["message"], "health status NOT_SERVING for service \"checkout\"",
        "{failed}"
    );
    grpc.set("=SERVING\ncheckout=SERVING\n");
    run.wait_for(Duration::from_secs(10), alert("recovered", "checkout"))
        .await
        .expect("recovery");
    assert!(run.of("alert", "server").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icmp_site_counts_its_echo_replies_and_a_silent_host_goes_down() {
    let Some(quiet) = QuietHost::start() else {
        return;
    };
    let listen = closed_port();
    let mut run = Running::start(&config(
        json!([
            {"name": "loopback", "kind": "icmp", "target": "127.0.0.1", "count": 3,
             "interval": "200ms", "timeout": "1s"},
            {"name": "quiet", "kind": "icmp", "target": quiet.addr, "count": 2,
             "interval": "200ms", "timeout": "500ms"}
        ]),
        listen,
    ));
    let p = first_ok(&mut run, "loopback", 10).await;
    assert_eq!(p["url"], "icmp://127.0.0.1", "{p}");
    assert!(
        p["response_ms"].as_f64().is_some_and(|ms| ms < 100.0),
        "{p}"
    );
    assert_eq!(p["metrics"]["icmp_loss_ratio"], 0.0, "{p}");
    run.wait_for(Duration::from_secs(10), alert("down", "quiet"))
        .await
        .expect("a host that answers nothing goes down");
    let failed = run.of("probe", "quiet")[0].clone();
    assert_eq!(failed["error"]["kind"], "timeout", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no echo reply to 2 requests"),
        "{failed}"
    );
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    for (series, site) in [
        ("probe_icmp_duration_seconds{", "loopback"),
        ("sitewatch_icmp_loss_ratio{", "quiet"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(series) && l.contains(&format!("site=\"{site}\""))),
            "{series} of {site}: {metrics}"
        );
    }
    quiet.answer(true);
    run.wait_for(Duration::from_secs(10), alert("recovered", "quiet"))
        .await
        .expect("it answers again");
    assert!(run.of("alert", "loopback").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_site_is_up_while_its_job_pings_and_down_when_it_is_late_or_fails() {
    let token = "job-token-0123456789abcdef";
    let listen = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        json!([{"name": "backup", "kind": "push", "token_env": "BACKUP_PUSH_TOKEN",
                "period": "1s", "grace": "500ms", "interval": "100ms"}]),
        listen,
    );
    let mut run = Running::start_with_env(dir, &cfg, &[], &[("BACKUP_PUSH_TOKEN", token)]);
    let base = format!("http://127.0.0.1:{listen}/push");
    let ping = |path: String| async move {
        for _ in 0..50 {
            if let Ok(r) = http_client().post(&path).send().await {
                return r.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not answer {path}");
    };
    // A job that started and then succeeded 300 ms later: its run is the response time.
    assert_eq!(ping(format!("{base}/{token}/start")).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ping(format!("{base}/{token}")).await, 200);
    let p = run
        .wait_for(Duration::from_secs(10), |v| {
            is("probe", "backup")(v) && v["ok"] == true && v["response_ms"].as_f64().is_some()
        })
        .await
        .unwrap_or_else(|| panic!("an up push site; stderr: {}", run.stderr()));
    let ran = p["response_ms"].as_f64().unwrap();
    assert!((300.0..1500.0).contains(&ran), "the job's run: {p}");
    assert_eq!(p["url"], "push:backup", "{p}");
    assert_eq!(ping(format!("{base}/not-the-token-at-all")).await, 404);
    assert_eq!(ping(format!("{base}/{token}/sideways")).await, 404);

    // No more pings: down once the period and the grace are over.
    run.wait_for(Duration::from_secs(10), alert("down", "backup"))
        .await
        .expect("a late job takes the site down");
    let late = last_failure(&run, "backup");
    assert_eq!(late["error"]["kind"], "timeout", "{late}");
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no ping since it was due at"),
        "{late}"
    );
    // Pinging again recovers it; a job that reports a failure is down at once.
    let pinger = tokio::spawn({
        let url = format!("{base}/{token}");
        async move {
            loop {
                let _ = http_client().get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    run.wait_for(Duration::from_secs(10), alert("recovered", "backup"))
        .await
        .expect("recovery");
    pinger.abort();
    assert_eq!(ping(format!("{base}/{token}/fail")).await, 200);
    let failed = run
        .wait_for(Duration::from_secs(10), |v| {
            is("probe", "backup")(v) && v["error"]["kind"] == "answer"
        })
        .await
        .expect("a failure the job reported");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the job reported a failure (/fail)"),
        "{failed}"
    );
    // The token is the job's credential: no output holds it.
    let sites = get_text(&format!("http://127.0.0.1:{listen}/api/v1/sites")).await;
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    run.collect_for(Duration::from_millis(200)).await;
    let events = serde_json::to_string(&run.events).unwrap();
    for (what, text) in [
        ("the API", &sites),
        ("/metrics", &metrics),
        ("the events", &events),
        ("stderr", &run.stderr()),
    ] {
        assert!(!text.contains(token), "{what} shows the token");
    }
}

#[test]
fn push_token_prints_a_fresh_token_each_time() {
    let a = crate::support::binary::cli_ok(&["push-token"]);
    let b = crate::support::binary::cli_ok(&["push-token"]);
    assert_eq!(a.trim().len(), 40, "{a}");
    assert!(a.trim().bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_about_to_expire_warns_once_from_its_registrys_rdap_record() {
    use crate::support::server::{Reply, TestServer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(dns) = Dnsmasq::start("192.0.2.10 www.example.test\n").await else {
        return;
    };
    let expiry = chrono::Utc::now() + chrono::TimeDelta::days(12);
    let (bootstraps, lookups) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (b, l) = (Arc::clone(&bootstraps), Arc::clone(&lookups));
    let registry: Arc<Mutex<String>> = Arc::default();
    let base = Arc::clone(&registry);
    // A local stand-in of IANA's bootstrap file and of the `.test` registry's RDAP server.
    let rdap = TestServer::start(move |r| {
        let json = |v: Value| Reply {
            headers: vec![("Content-Type".into(), "application/rdap+json".into())],
            ..Reply::ok(&v.to_string())
        };
        match r.path.as_str() {
            "/dns.json" => {
                b.fetch_add(1, Ordering::SeqCst);
                json(json!({"version": "1.0", "services": [
                    [["com", "net"], ["https://rdap.invalid/com/"]],
                    [["test"], [base.lock().unwrap().clone()]]
                ]}))
            }
            "/registry/domain/example.test" => {
                l.fetch_add(1, Ordering::SeqCst);
                json(
                    json!({"objectClassName": "domain", "ldhName": "example.test", "events": [
                        {"eventAction": "registration", "eventDate": "2020-01-01T00:00:00Z"},
                        {"eventAction": "expiration", "eventDate": expiry.to_rfc3339()}
                    ]}),
                )
            }
            _ => Reply::status(404),
        }
    })
    .await;
    *registry.lock().unwrap() = rdap.url("/registry/");
    let listen = closed_port();
    let mut cfg = config(
        json!([{"name": "www", "kind": "dns", "target": "www.example.test",
                "resolver": format!("127.0.0.1:{}", dns.port), "domain_expiry": true,
                "interval": "100ms"}]),
        listen,
    );
    cfg["probing"] = json!({"rdap_bootstrap": rdap.url("/dns.json")});
    let mut run = Running::start(&cfg);
    let warned = run
        .wait_for(Duration::from_secs(10), alert("domain_expiring", "www"))
        .await
        .unwrap_or_else(|| panic!("a domain warning; stderr: {}", run.stderr()));
    assert!(
        warned["message"]
            .as_str()
            .unwrap()
            .starts_with("Website www domain registration expires in 1"),
        "{warned}"
    );
    run.collect_for(Duration::from_millis(1000)).await;
    assert_eq!(
        run.of("alert", "www").len(),
        1,
        "one warning, not one per probe"
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "the domain is looked up once a day, not per probe"
    );
    assert_eq!(bootstraps.load(Ordering::SeqCst), 1);
    let sites: Value =
        serde_json::from_str(&get_text(&format!("http://127.0.0.1:{listen}/api/v1/sites")).await)
            .unwrap();
    assert_eq!(sites["sites"][0]["domain_warning"], true, "{sites}");
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sitewatch_domain_warning{")
                && l.contains("site=\"www\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_plugin_judges_what_a_tcp_or_dns_site_observed() {
    let Some(dns) = Dnsmasq::start("192.0.2.10 www.example.test\n").await else {
        return;
    };
    let server = PingServer::start().await;
    let mut cfg = config(
        json!([
            {"name": "cache", "kind": "tcp", "target": format!("127.0.0.1:{}", server.port),
             "send": "PING\r\n", "expect": "\r\n", "interval": "100ms",
             "checks": [{"plugin": "answer", "config": {"starts_with": "+PONG"}}]},
            {"name": "www", "kind": "dns", "target": "www.example.test",
             "resolver": format!("127.0.0.1:{}", dns.port), "interval": "100ms",
             "checks": [{"plugin": "answer", "config": {"all_in": "192.0.2."}}]}
        ]),
        closed_port(),
    );
    cfg["plugins"] = json!({"dir": crate::support::plugins::examples_dir()});
    let mut run = Running::start(&cfg);
    for (site, metric) in [("cache", "answer.tcp"), ("www", "answer.dns")] {
        let p = run
            .wait_for(Duration::from_secs(15), |v| {
                v["event"] == "probe" && v["site"] == site && v["ok"] == true
            })
            .await
            .unwrap_or_else(|| panic!("{site} passes its check; stderr: {}", run.stderr()));
        assert!(p["metrics"][metric].as_f64().is_some(), "{p}");
    }
    // The checks fail on what they see: a wrong banner, a record out of the network.
    server.set("-ERR unknown\r\n", Duration::ZERO);
    dns.set_hosts("203.0.113.5 www.example.test\n").await;
    for (site, why) in [
        ("cache", "the answer does not start with \"+PONG\""),
        ("www", "the answer \"203.0.113.5\" is not in 192.0.2."),
    ] {
        let failed = run
            .wait_for(Duration::from_secs(10), |v| {
                v["event"] == "probe" && v["site"] == site && v["error"]["kind"] == "check"
            })
            .await
            .unwrap_or_else(|| panic!("{site} fails its check"));
        assert!(
            failed["error"]["message"].as_str().unwrap().contains(why),
            "{failed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_display_shows_sites_of_every_kind_and_their_outages() {
    use crate::support::binary::BIN;
    use crate::support::tmux::Tmux;
    if !Tmux::available() {
        return;
    }
    let Some(dns) = Dnsmasq::start("192.0.2.10 www.example.test\n").await else {
        return;
    };
    let server = PingServer::start().await;
    let dead = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "sites": [
            {"name": "cache", "kind": "tcp", "target": format!("127.0.0.1:{}", server.port),
             "send": "PING\r\n", "expect": "+PONG", "interval": "500ms"},
            {"name": "www-dns", "kind": "dns", "target": "www.example.test",
             "resolver": format!("127.0.0.1:{}", dns.port), "interval": "500ms"},
            {"name": "gone-dns", "kind": "dns", "target": "www.example.test",
             "resolver": format!("127.0.0.1:{}", dns.port), "expect_answers": ["192.0.2.99"],
             "interval": "500ms"},
            {"name": "db-port", "kind": "tcp", "target": format!("127.0.0.1:{dead}"), "interval": "500ms"},
            {"name": "loopback", "kind": "icmp", "target": "127.0.0.1", "interval": "500ms"}
        ],
        "alerting": {"window": "2s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let tmux = Tmux::start(
        "kinds",
        dir.path(),
        &format!("{BIN} --config config.json; echo exit=$?; sleep 60"),
        100,
        30,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut screen = tmux.screen();
    while tokio::time::Instant::now() < deadline
        && !(screen.contains("3 up · 2 DOWN")
            && screen.contains("Website db-port is down")
            && screen.contains("Website gone-dns is down"))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        screen = tmux.screen();
    }
    assert!(screen.contains("3 up · 2 DOWN"), "summary:\n{screen}");
    for site in ["db-port", "gone-dns"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(site) && l.contains("DOWN")),
            "{site} is not shown as DOWN:\n{screen}"
        );
        assert!(
            screen.contains(&format!("Website {site} is down")),
            "{site}'s alert:\n{screen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_websocket_sites_speak_tls_and_report_the_chain() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["localhost"], false).pem();
    let Some(grpc) = PyServer::grpc_tls("=SERVING\n", &cert, &key) else {
        return;
    };
    let Some(ws) = PyServer::websocket_tls("pong", &cert, &key) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let mut run = Running::start(&config(
        json!([
            {"name": "health", "kind": "grpc", "target": format!("localhost:{}", grpc.port),
             "tls": true, "tls_ca": ca_path, "interval": "200ms", "timeout": "3s"},
            {"name": "feed", "kind": "websocket", "url": format!("wss://localhost:{}/", ws.port),
             "tls_ca": ca_path, "send": "ping", "expect": "pong", "interval": "200ms",
             "timeout": "3s"}
        ]),
        closed_port(),
    ));
    for site in ["health", "feed"] {
        let p = first_ok(&mut run, site, 20).await;
        assert!(p["tls_ms"].as_f64().is_some(), "{p}");
        assert_eq!(p["tls"]["leaf"]["issuer"], "CN=sitewatch test CA", "{p}");
    }
}
