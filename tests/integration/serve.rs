//! The HTTP server through the real binary: the JSON API and its event stream against the known
//! state, `/metrics` scraped by a real Prometheus (and linted by promtool), the status page in a
//! real headless Chromium, the token, hostile clients while probing keeps its schedule, moving
//! the listener on reload, and two instances told apart by location in one VictoriaMetrics.

use crate::support::binary::{Running, alert};
use crate::support::server::{Reply, TestServer};
use crate::support::victoria::Victoria;
use crate::support::{chromium, closed_port, http_client, prometheus};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An up site and a down one (a closed port), served on a free port.
fn config(up: &str, listen: u16, extra: Value) -> Value {
    let mut c = json!({
        "sites": [
            {"name": "up", "url": up, "interval": "200ms", "timeout": "500ms"},
            {"name": "down", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "200ms", "timeout": "500ms"},
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}, {"window": "1m", "every": "1s"}]},
        "server": {"listen": format!("127.0.0.1:{listen}")},
        "location": "lab-1",
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

async fn get(url: &str) -> (u16, String) {
    let r = http_client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, text) = get(url).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"));
    (status, v)
}

/// Starts sitewatch with an up and a down site, and waits for the down alert and a report of
/// both views.
async fn running(extra: Value) -> (Running, TestServer, u16) {
    running_with(extra, |_| {}).await
}

/// [`running`] with the config edited by `edit` first.
async fn running_with(extra: Value, edit: impl FnOnce(&mut Value)) -> (Running, TestServer, u16) {
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let mut cfg = config(&up.url("/"), port, extra);
    edit(&mut cfg);
    let mut run = Running::start(&cfg);
    run.wait_for(Duration::from_secs(15), alert("down", "down"))
        .await
        .unwrap_or_else(|| panic!("down alert; stderr: {}", run.stderr()));
    run.wait_for(Duration::from_secs(10), |v| {
        v["event"] == "stats" && v["view"] == "1m"
    })
    .await
    .expect("a report of the 1m view");
    (run, up, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_with_the_known_state_and_streams_events() {
    let (mut run, _up, port) = running(json!({})).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".into()));

    let (status, v) = get_json(&format!("{base}/api/v1/sites")).await;
    assert_eq!(status, 200);
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    assert_eq!(
        (sites[0]["site"].as_str(), sites[1]["site"].as_str()),
        (Some("up"), Some("down"))
    );
    assert_eq!(sites[0]["down"], false);
    assert_eq!(sites[1]["down"], true);
    assert!(sites[1]["down_since"].is_string());
    assert_eq!(sites[0]["location"], "lab-1");
    assert_eq!(sites[0]["availability"]["10s"], 1.0);
    assert_eq!(sites[1]["availability"]["10s"], 0.0);
    assert_eq!(sites[0]["last_probe"]["status"], 200);
    assert_eq!(sites[1]["last_probe"]["error"]["kind"], "connect");
    assert_eq!(sites[0]["settings"]["interval_s"], 0.2);

    let (status, v) = get_json(&format!("{base}/api/v1/sites/up")).await;
    assert_eq!(status, 200);
    assert_eq!(v["views"]["10s"]["availability"], 1.0);
    assert!(v["views"]["1m"]["checks"].as_u64().unwrap() > 0);
    let probes = v["probes"].as_array().unwrap();
    assert!(!probes.is_empty() && probes.len() <= 30);
    assert!(probes.iter().all(|p| p["site"] == "up"));

    let (status, v) = get_json(&format!("{base}/api/v1/sites/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"], "no site is named \"nope\"");

    let (status, v) = get_json(&format!("{base}/api/v1/alerts?since=1h")).await;
    assert_eq!(status, 200);
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts[0]["site"], "down");
    assert_eq!(alerts[0]["kind"], "down");

    let (status, v) = get_json(&format!("{base}/api/v1/report?since=1h&site=up")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["sites"][0]["site"], "up");
    assert!(v["every_s"].is_null(), "a report is not a live view");
    let (status, v) = get_json(&format!("{base}/api/v1/report?since=1h&site=nope")).await;
    assert_eq!((status, v["error"].is_string()), (404, true));
    let (status, v) = get_json(&format!("{base}/api/v1/report?since=soon")).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("since: \"soon\""));
    let (status, v) = get_json(&format!("{base}/api/v1/nothing")).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("no such path")));

    // The event stream: a probe within one interval (200 ms), as --output json writes it.
    let mut resp = http_client()
        .get(format!("{base}/api/v1/events"))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buf = String::new();
    let probe = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(3), resp.chunk())
            .await
            .expect("events keep coming")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(v) = buf
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v["event"] == "probe")
        {
            break v;
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(probe["location"], "lab-1");
    // The JSON output carries the location too.
    run.collect_for(Duration::from_millis(300)).await;
    assert_eq!(run.latest("probe")["location"], "lab-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_metrics_and_promtool_finds_no_lint() {
    let (_run, _up, port) = running(json!({})).await;
    let (status, text) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE sitewatch_probes_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
    for family in [
        "probe_success",
        "probe_http_status_code",
        "probe_http_duration_seconds",
        "probe_duration_seconds",
        "probe_http_uncompressed_body_length",
        "sitewatch_probe_outcomes_total",
        "sitewatch_response_time_seconds",
        "sitewatch_ttfb_seconds",
        "sitewatch_availability_ratio",
        "sitewatch_site_down",
        "sitewatch_probes_in_flight",
    ] {
        assert!(
            text.contains(&format!("# HELP {family}")),
            "no HELP of {family}"
        );
        assert!(
            text.contains(&format!("# TYPE {family}")),
            "no TYPE of {family}"
        );
    }
    assert!(
        text.contains(r#"probe_http_duration_seconds{site="up",url="#),
        "{text}"
    );
    assert!(text.contains(r#"location="lab-1""#));
    prometheus::promtool_check_metrics(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    let om = http_client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));

    let Some(prom) =
        prometheus::Prometheus::start(&format!("127.0.0.1:{port}"), "/metrics", None).await
    else {
        return;
    };
    let one = |r: &Value| {
        r.as_array()
            .and_then(|a| a.first())
            .and_then(|x| x["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
    };
    type Check = fn(Option<f64>) -> bool;
    let expectations: [(&str, u64, &str, Check); 7] = [
        (r#"probe_success{site="up"}"#, 20, "up is up", |v| {
            v == Some(1.0)
        }),
        (r#"probe_success{site="down"}"#, 5, "down is down", |v| {
            v == Some(0.0)
        }),
        (
            r#"probe_http_status_code{site="up"}"#,
            5,
            "status 200",
            |v| v == Some(200.0),
        ),
        (
            r#"sitewatch_site_down{site="down"}"#,
            5,
            "the alert state",
            |v| v == Some(1.0),
        ),
        (
            r#"increase(sitewatch_probes_total{site="up"}[5s])"#,
            15,
            "a counter that increases",
            |v| v.is_some_and(|v| v > 0.0),
        ),
        (
            r#"histogram_quantile(0.9, rate(sitewatch_response_time_seconds_bucket{site="up"}[10s]))"#,
            15,
            "a plausible p90 response time",
            |v| v.is_some_and(|v| v > 0.0 && v < 1.0),
        ),
        (
            r#"sitewatch_availability_ratio{site="up",window="10s"}"#,
            5,
            "availability per view",
            |v| v == Some(1.0),
        ),
    ];
    for (query, secs, what, check) in expectations {
        prom.wait_until(query, Duration::from_secs(secs), what, |r| check(one(r)))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser_shows_both_sites_and_updates_live() {
    // The up site is tagged: the page groups sites by their first tag, untagged last.
    let (_run, _up, port) = running_with(json!({}), |c| {
        c["sites"][0]["tags"] = json!(["web", "eu"]);
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/");
    let (status, html) = get(&url).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-site=\"up\"") && html.contains("data-site=\"down\""));
    let group_headings = |html: &str| -> Vec<(usize, String)> {
        html.match_indices("<th scope=\"rowgroup\"")
            .map(|(at, _)| {
                let tag = &html[at..];
                let tag = &tag[tag.find("class=\"tag\">").expect("the group's tag") + 12..];
                (at, tag[..tag.find('<').unwrap()].to_owned())
            })
            .collect()
    };
    let in_order = |html: &str| {
        let headings = group_headings(html);
        let names: Vec<&str> = headings.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(names, ["web", "untagged"], "group headings");
        let row = |site: &str| html.find(&format!("data-site=\"{site}\"")).unwrap();
        assert!(
            headings[0].0 < row("up") && row("up") < headings[1].0 && headings[1].0 < row("down")
        );
    };
    in_order(&html);
    let probes_in = |dom: &str, site: &str| -> u64 {
        let at = dom
            .find(&format!("data-site=\"{site}\""))
            .expect("the site's row");
        let row = &dom[at..];
        let p = row.find("data-probes=\"").expect("data-probes") + "data-probes=\"".len();
        row[p..].split('"').next().unwrap().parse().unwrap()
    };
    let served = probes_in(&html, "up");
    let Some(dom) = chromium::dump_dom(&url, Duration::from_secs(4)).await else {
        return;
    };
    let row = &dom[dom.find("data-site=\"down\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(row.contains("DOWN"), "the down site says DOWN: {row}");
    assert!(dom.contains("data-site=\"up\""));
    in_order(&dom);
    let live = probes_in(&dom, "up");
    assert!(
        live > served || live == 30,
        "live updates: {served} probes served, {live} after 4 s"
    );
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, width) in [("status-page.png", 1280), ("status-page-narrow.png", 360)] {
        let written =
            chromium::screenshot(&url, &shots.join(name), width, 800, Duration::from_secs(2)).await;
        assert_eq!(written, Some(true), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_path_but_healthz_needs_it_and_it_is_never_shown() {
    let token = "s3cr3t-token-0123456789";
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let mut cfg = config(&up.url("/"), port, json!({}));
    cfg["server"]["auth_token_env"] = json!("SW_SERVER_TOKEN");
    // A site's own credentials are never shown either.
    cfg["sites"][0]["headers"] = json!({"Authorization": "Bearer site-credential-0123"});
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &cfg,
        &[],
        &[("SW_SERVER_TOKEN", token)],
    );
    run.wait_for(Duration::from_secs(15), alert("down", "down"))
        .await
        .expect("down");
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    for path in [
        "/",
        "/metrics",
        "/api/v1/sites",
        "/api/v1/sites/up",
        "/api/v1/alerts",
        "/api/v1/report",
        "/api/v1/events",
        "/nothing",
    ] {
        let r = http_client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(v["error"].is_string());
        let wrong = http_client()
            .get(format!("{base}{path}"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong token");
    }
    let mut seen = String::new();
    for path in [
        "/",
        "/metrics",
        "/api/v1/sites",
        "/api/v1/sites/up",
        "/api/v1/alerts",
        "/api/v1/report",
    ] {
        let r = http_client()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        seen.push_str(&r.text().await.unwrap());
    }
    let r = http_client()
        .get(format!("{base}/api/v1/sites?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the token in the query, for a browser's EventSource"
    );
    assert!(!seen.contains(token), "the token is never shown");
    assert!(
        !seen.contains("site-credential-0123"),
        "a site's headers are never shown"
    );
    assert!(!run.stderr().contains(token));
}

/// Reads what the server sends on `stream` until it closes or `limit` passes.
async fn read_all(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_answered_or_cut_off_and_probing_keeps_its_schedule() {
    let (mut run, _up, port) = running(json!({})).await;
    let addr = format!("127.0.0.1:{port}");
    let before = run.events.len();

    // A huge header: refused, not read forever.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let huge = format!(
        "GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(huge.as_bytes()).await;
    let (answer, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the connection is closed");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // A slow client trickling its headers is cut off after the header timeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    trickle.await;
    let (_, closed) = read_all(&mut s, Duration::from_secs(3)).await;
    assert!(closed, "a trickling client is cut off");
    assert!(t0.elapsed() < Duration::from_secs(14));

    // Odd paths.
    for path in [
        "/../../etc/passwd",
        "/api/v1/sites/%2e%2e%2f",
        "/api/v1/sites/%ff%fe",
        "/%00",
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let (answer, _) = read_all(&mut s, Duration::from_secs(5)).await;
        let code: u16 = answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!((400..500).contains(&code), "{path}: {answer}");
    }

    // 1,000 connections at once: each answered (200, or 503 beyond the cap), none left hanging.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let (answer, _) = read_all(&mut s, Duration::from_secs(20)).await;
            answer.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok())
        });
    }
    let mut codes = std::collections::BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        *codes.entry(r.unwrap().unwrap_or(0)).or_insert(0) += 1;
    }
    assert_eq!(
        codes.keys().filter(|c| **c != 200 && **c != 503).count(),
        0,
        "{codes:?}"
    );

    // Probing kept its schedule meanwhile.
    run.collect_for(Duration::from_millis(500)).await;
    let lags: Vec<f64> = run.events[before..]
        .iter()
        .filter(|e| e["event"] == "probe" && e["site"] == "up")
        .filter_map(|e| e["lag_ms"].as_f64())
        .collect();
    assert!(lags.len() > 20, "probes went on: {}", lags.len());
    let worst = lags.iter().copied().fold(0.0, f64::max);
    assert!(
        worst < 250.0,
        "a probe started {worst} ms late during the attack"
    );
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.0,
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_listener_and_a_busy_address_keeps_the_old_one() {
    let (mut run, _up, port) = running(json!({})).await;
    let new_port = closed_port();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(run.config_path()).unwrap()).unwrap();
    cfg["server"]["listen"] = json!(format!("127.0.0.1:{new_port}"));
    std::fs::write(run.config_path(), cfg.to_string()).unwrap();
    run.wait_for(Duration::from_secs(10), |v| {
        v["event"] == "reload" && v["result"] == "applied"
    })
    .await
    .expect("applied");
    assert_eq!(
        get(&format!("http://127.0.0.1:{new_port}/healthz")).await.0,
        200
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the old address is closed"
    );

    // An address in use: an error event, and the server stays where it is.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg["server"]["listen"] = json!(busy.local_addr().unwrap().to_string());
    std::fs::write(run.config_path(), cfg.to_string()).unwrap();
    let err = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "error" && v["source"] == "server"
        })
        .await
        .expect("a bind error");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains(&format!("still serving on 127.0.0.1:{new_port}")),
        "{err}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{new_port}/healthz")).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_beyond_loopback_without_a_token_warns() {
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let mut cfg = config(&up.url("/"), port, json!({}));
    cfg["server"]["listen"] = json!(format!("0.0.0.0:{port}"));
    let mut run = Running::start(&cfg);
    let warning = run
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "error" && v["source"] == "server"
        })
        .await
        .expect("a warning");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("without a token"),
        "{warning}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/healthz")).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_locations_write_both_series_in_full_to_one_victoriametrics() {
    let Some(vm) = Victoria::start().await else {
        return;
    };
    let site = TestServer::start(|_| Reply::ok("fine")).await;
    let cfg = |location: &str| {
        json!({
            "sites": [{"name": "shared", "url": site.url("/"), "interval": "100ms"}],
            "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
            "location": location,
            "storage": {"influxdb": {"url": vm.url(), "org": "o", "bucket": "b", "flush_interval": "200ms"}},
        })
    };
    let mut east = Running::start(&cfg("east"));
    let mut west = Running::start(&cfg("west"));
    east.collect_for(Duration::from_secs(3)).await;
    west.collect_for(Duration::from_millis(10)).await;
    for r in [&east, &west] {
        r.signal(nix::sys::signal::Signal::SIGTERM);
    }
    east.wait_exit(Duration::from_secs(10))
        .await
        .expect("east exits");
    west.wait_exit(Duration::from_secs(10))
        .await
        .expect("west exits");
    let mut expected = Vec::new();
    for (location, run) in [("east", &east), ("west", &west)] {
        // What the sender had not posted yet at the stop waits in the outbox for the next start.
        let conn =
            rusqlite::Connection::open(run.dir.path().join("sitewatch-data/sitewatch.db")).unwrap();
        let waiting: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE line LIKE 'probe,%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let stored = run.probe_count_in_store();
        let sent = stored - waiting;
        assert!(sent > 10, "{location}: {sent} probes sent");
        expected.push((location, sent, stored));
    }
    // VictoriaMetrics makes what it ingested searchable within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let series = vm.export(r#"{__name__="probe_ok",site="shared"}"#).await;
        let got: Vec<(&str, i64)> = expected
            .iter()
            .map(|(location, _, _)| {
                let n: usize = series
                    .iter()
                    .filter(|(labels, _, _)| labels["location"] == *location)
                    .map(|(_, ts, _)| ts.len())
                    .sum();
                (*location, n as i64)
            })
            .collect();
        // At least every line the sender saw accepted; at most every probe (a POST cut short by
        // the stop may have arrived without being marked sent).
        if got
            .iter()
            .zip(&expected)
            .all(|((_, n), (_, sent, stored))| n >= sent && n <= stored)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every probe of each location is in VictoriaMetrics: got {got:?}, sent {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_on_the_command_line_serves_without_a_server_section() {
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let cfg = json!({"sites": [{"name": "up", "url": up.url("/"), "interval": "200ms"}]});
    let listen = format!("127.0.0.1:{port}");
    let mut run = Running::start_with(tempfile::tempdir().unwrap(), &cfg, &["--listen", &listen]);
    run.wait_for(Duration::from_secs(10), |v| v["event"] == "probe")
        .await
        .expect("probing");
    let (status, v) = get_json(&format!("http://{listen}/api/v1/sites")).await;
    assert_eq!(status, 200);
    assert_eq!(v["sites"][0]["site"], "up");
    // The default location is the host name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["sites"][0]["location"], host.trim());
}
