//! Operating sitewatch from the web: badges, the Atom feed, through the binary.

use crate::support::binary::Running;
use crate::support::server::{Reply, TestServer};
use crate::support::{closed_port, http_client};
use serde_json::{Value, json};
use std::time::Duration;

/// The text a badge shows for readers (its `aria-label`), after checking the SVG parses.
fn badge_text(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("role"), Some("img"));
    let title = root
        .children()
        .find(|n| n.has_tag_name("title"))
        .and_then(|t| t.text())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(root.attribute("aria-label"), Some(title.as_str()));
    title
}

/// The fill of the badge's value half (its second rect).
fn badge_colour(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .nth(2)
        .and_then(|r| r.attribute("fill"))
        .unwrap_or_default()
        .to_owned()
}

async fn get(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = http_client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

/// Status, uptime and response badges of an up and a down site: they parse, say what they
/// show for screen readers, are coloured by state, cache a minute and carry `report`'s numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_show_the_state_and_the_numbers_of_report() {
    let up = TestServer::start(|_| Reply::ok("fine")).await;
    let down = TestServer::start(|_| Reply::status(503)).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "shop", "url": up.url("/"), "interval": "200ms"},
                  {"name": "api", "url": down.url("/"), "interval": "200ms"}],
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(20), |e| {
        e["event"] == "alert" && e["kind"] == "down" && e["site"] == "api"
    })
    .await
    .unwrap_or_else(|| panic!("api never went down; stderr: {}", run.stderr()));
    run.collect_for(Duration::from_secs(2)).await;
    let base = format!("http://127.0.0.1:{port}");

    let (status, svg, headers) = get(&format!("{base}/badge/shop/status.svg")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert_eq!(headers["cache-control"], "max-age=60");
    assert_eq!(badge_text(&svg), "status: up");
    assert_eq!(badge_colour(&svg), "#4c1");
    let (_, svg, _) = get(&format!("{base}/badge/api/status.svg?label=API")).await;
    assert_eq!(badge_text(&svg), "API: down");
    assert_eq!(badge_colour(&svg), "#e05d44");

    // The numbers: report's for the same period, read right after (a probe or two later).
    for site in ["shop", "api"] {
        let (status, svg, _) = get(&format!("{base}/badge/{site}/uptime.svg?period=1h")).await;
        assert_eq!(status, 200, "{svg}");
        let text = badge_text(&svg);
        let shown: f64 = text
            .strip_prefix("uptime 1h: ")
            .and_then(|v| v.strip_suffix('%'))
            .unwrap_or_else(|| panic!("{text}"))
            .parse()
            .unwrap();
        let (_, body, _) = get(&format!("{base}/api/v1/report?since=1h&site={site}")).await;
        let report: Value = serde_json::from_str(&body).unwrap();
        let row = &report["sites"][0];
        let availability = row["availability"].as_f64().unwrap() * 100.0;
        let checks = row["checks"].as_f64().unwrap();
        assert!(
            (shown - availability).abs() <= 100.0 / checks * 2.0 + 0.01,
            "{site}: badge {shown}, report {availability} of {checks} probes"
        );
        let (_, svg, _) = get(&format!("{base}/badge/{site}/response.svg?period=1h")).await;
        let text = badge_text(&svg);
        let ms: f64 = text
            .strip_prefix("response 1h: ")
            .and_then(|v| v.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("{text}"))
            .parse()
            .unwrap();
        let avg = row["response_ms"]["avg"].as_f64().unwrap();
        assert!(
            (ms - avg).abs() <= 2.0,
            "{site}: badge {ms} ms, report {avg} ms"
        );
    }
    let (_, svg, _) = get(&format!("{base}/badge/shop/uptime.svg?period=1h")).await;
    assert_eq!(badge_text(&svg), "uptime 1h: 100.00%");
    let (_, svg, _) = get(&format!("{base}/badge/api/uptime.svg?period=1h")).await;
    assert_eq!(badge_text(&svg), "uptime 1h: 0.00%");
    assert_eq!(badge_colour(&svg), "#e05d44");

    // Kept a minute: the same SVG while more probes arrive.
    run.collect_for(Duration::from_secs(1)).await;
    let (_, again, _) = get(&format!("{base}/badge/api/uptime.svg?period=1h")).await;
    assert_eq!(again, svg);

    // What is not a site or a badge, or not a period.
    let (status, svg, _) = get(&format!("{base}/badge/nope/status.svg")).await;
    assert_eq!(
        (status, badge_text(&svg).as_str()),
        (404, "badge: no such site")
    );
    let (status, _, _) = get(&format!("{base}/badge/shop/nope.svg")).await;
    assert_eq!(status, 404);
    let (status, svg, _) = get(&format!("{base}/badge/shop/uptime.svg?period=soon")).await;
    assert_eq!(
        (status, badge_text(&svg).as_str()),
        (400, "badge: bad period")
    );
    // A hostile label is text, not markup.
    let (_, svg, _) = get(&format!(
        "{base}/badge/shop/status.svg?label=%3Cscript%3Ealert(1)%3C/script%3E"
    ))
    .await;
    assert!(!svg.contains("<script"), "{svg}");
    assert_eq!(badge_text(&svg), "<script>alert(1)</script>: up");
}

/// A request to the write API with the write token.
async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut r = http_client().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(m) = if_match {
        r = r.header("if-match", format!("\"{m}\""));
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let etag = r
        .headers()
        .get("etag")
        .map(|e| e.to_str().unwrap().trim_matches('"').to_owned());
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        etag,
    )
}

/// Create, change, pause, resume and delete a site over HTTP and watch probing follow; a bad
/// change is a 400 naming the field and leaves config.json as it was; If-Match; a hand edit
/// between two API edits is kept; `${NAME}` references stay references; one-off maintenance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_api_changes_config_json_and_probing_follows() {
    use reqwest::Method;
    let shop = TestServer::start(|_| Reply::ok("shop")).await;
    let other = TestServer::start(|_| Reply::ok("new")).await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "shop", "url": shop.url("/"), "interval": "200ms",
                   "headers": {"X-Key": "${SW_SHOP_KEY}"}}],
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "300ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}"),
                   "tokens": [{"name": "ci", "env": "SW_WRITE", "scope": "write"}]},
    });
    let token = "write-token-5e1d92";
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        &[("SW_WRITE", token), ("SW_SHOP_KEY", "shop-key-value-81")],
    );
    let path = run.config_path();
    run.wait_for(Duration::from_secs(20), |e| e["event"] == "probe")
        .await
        .unwrap_or_else(|| panic!("no probe; stderr: {}", run.stderr()));
    let api = |p: &str| format!("http://127.0.0.1:{port}/api/v1{p}");
    let probe_of = |site: &'static str| move |e: &Value| e["event"] == "probe" && e["site"] == site;

    // Create: probed within a few seconds.
    let (status, body, etag) = call(
        Method::POST,
        api("/sites"),
        token,
        Some(json!({"name": "new", "url": other.url("/"), "interval": "200ms"})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["site"]["name"], "new");
    assert_eq!(etag.as_deref(), body["etag"].as_str());
    run.wait_for(Duration::from_secs(15), probe_of("new"))
        .await
        .unwrap_or_else(|| panic!("the new site is not probed; stderr: {}", run.stderr()));
    let (status, body, _) = call(
        Method::POST,
        api("/sites"),
        token,
        Some(json!({"name": "new", "url": other.url("/")})),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // A bad change: a 400 naming the field, and the file is byte for byte what it was.
    let before = std::fs::read(&path).unwrap();
    let (status, body, _) = call(
        Method::PATCH,
        api("/sites/new"),
        token,
        Some(json!({"interval": "soon"})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("sites[1].interval"),
        "{body}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let (status, _, _) = call(Method::POST, api("/sites"), token, None, None).await;
    assert_eq!(status, 400, "an empty body");

    // Two writers with If-Match: the second, on the old hash, is a 412.
    let (_, _, first) = call(Method::GET, api("/sites/new"), token, None, None).await;
    let first = first.expect("GET gives the config's ETag");
    let (status, body, second) = call(
        Method::PATCH,
        api("/sites/new"),
        token,
        Some(json!({"tags": ["api"]})),
        Some(&first),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = call(
        Method::PATCH,
        api("/sites/new"),
        token,
        Some(json!({"tags": ["lost"]})),
        Some(&first),
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert_ne!(second.as_deref(), Some(first.as_str()));

    // A hand edit between two API edits is kept.
    let mut by_hand: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    by_hand["sites"][0]["tags"] = json!(["by-hand"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&by_hand).unwrap()).unwrap();
    let (status, body, _) = call(
        Method::PATCH,
        api("/sites/new"),
        token,
        Some(json!({"timeout": "2s"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file["sites"][0]["tags"], json!(["by-hand"]));
    assert_eq!(file["sites"][1]["tags"], json!(["api"]));
    assert_eq!(file["sites"][1]["timeout"], "2s");
    // References stay references; the key order is the one typed.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("${SW_SHOP_KEY}") && !text.contains("shop-key-value-81"));
    let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sites", "alerting", "dashboard", "server"]);
    let (_, detail, _) = call(Method::GET, api("/sites/shop"), token, None, None).await;
    assert_eq!(detail["config"]["headers"]["X-Key"], "${SW_SHOP_KEY}");

    // Pause: no more probes, shown as paused; resume: probed again.
    let (status, body, _) = call(Method::POST, api("/sites/new/pause"), token, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["site"]["paused"], true);
    let paused = run
        .wait_for(Duration::from_secs(15), |e| {
            e["event"] == "stats"
                && e["sites"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["site"] == "new" && s["paused"] == true))
        })
        .await;
    assert!(
        paused.is_some(),
        "never shown paused; stderr: {}",
        run.stderr()
    );
    run.collect_for(Duration::from_millis(500)).await;
    let seen = run.events.len();
    run.collect_for(Duration::from_secs(2)).await;
    assert!(
        !run.events[seen..].iter().any(probe_of("new")),
        "a paused site is not probed"
    );
    assert!(run.events[seen..].iter().any(probe_of("shop")));
    let (_, list, _) = call(Method::GET, api("/sites"), token, None, None).await;
    let new = list["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "new")
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(new["status"], "paused", "{new}");
    let (status, _, _) = call(Method::POST, api("/sites/new/resume"), token, None, None).await;
    assert_eq!(status, 200);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("paused"));
    run.wait_for(Duration::from_secs(15), probe_of("new"))
        .await
        .unwrap_or_else(|| panic!("not probed after resume; stderr: {}", run.stderr()));

    // A one-off maintenance window on one site, then deleted.
    let now = chrono::Utc::now();
    let window = json!({
        "name": "upgrade",
        "start": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "end": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "sites": ["shop"],
    });
    let (status, body, _) =
        call(Method::POST, api("/maintenance"), token, Some(window), None).await;
    assert_eq!(
        (status, body["name"].as_str()),
        (201, Some("upgrade")),
        "{body}"
    );
    run.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "maintenance" && e["site"] == "shop" && e["state"] == "started"
    })
    .await
    .unwrap_or_else(|| panic!("the window never opened; stderr: {}", run.stderr()));
    let (status, body, _) = call(
        Method::DELETE,
        api("/maintenance?name=upgrade"),
        token,
        None,
        None,
    )
    .await;
    assert_eq!((status, body["windows"].as_u64()), (200, Some(1)), "{body}");
    let (status, _, _) = call(
        Method::DELETE,
        api("/maintenance?name=upgrade"),
        token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Delete: no more probes, and the site is gone from the API.
    let (status, body, _) = call(Method::DELETE, api("/sites/new"), token, None, None).await;
    assert_eq!(status, 200, "{body}");
    run.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "reload" && e["result"] == "applied"
    })
    .await
    .unwrap_or_else(|| panic!("no reload; stderr: {}", run.stderr()));
    run.collect_for(Duration::from_millis(500)).await;
    let seen = run.events.len();
    run.collect_for(Duration::from_secs(2)).await;
    assert!(!run.events[seen..].iter().any(probe_of("new")));
    let (status, _, _) = call(Method::GET, api("/sites/new"), token, None, None).await;
    assert_eq!(status, 404);
    let (status, _, _) = call(Method::DELETE, api("/sites/new"), token, None, None).await;
    assert_eq!(status, 404);
    // The access log names the token of every change; no secret anywhere.
    let stderr = run.stderr();
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("sitewatch::access") && l.contains("\"ci\""))
            .count()
            >= 8,
        "{stderr}"
    );
    assert!(!stderr.contains(token) && !stderr.contains("shop-key-value-81"));
}

/// Checks a document against RFC 4287's rules for a feed and its entries, and returns the
/// entries' titles, newest first.
fn atom_entries(xml: &str) -> Vec<(String, String)> {
    const ATOM: &str = "http://www.w3.org/2005/Atom";
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let feed = doc.root_element();
    assert_eq!(
        (feed.tag_name().namespace(), feed.tag_name().name()),
        (Some(ATOM), "feed")
    );
    let children = |n: roxmltree::Node<'_, '_>, name: &str| -> Vec<String> {
        n.children()
            .filter(|c| c.tag_name().namespace() == Some(ATOM) && c.tag_name().name() == name)
            .map(|c| c.text().unwrap_or_default().to_owned())
            .collect()
    };
    let rfc3339 = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}"));
    };
    // atom:feed: exactly one id, title and updated; an author (no entry has its own).
    for one in ["id", "title", "updated"] {
        assert_eq!(children(feed, one).len(), 1, "feed/{one}");
    }
    rfc3339(&children(feed, "updated")[0]);
    assert!(!children(feed, "author").is_empty(), "feed/author");
    let mut ids = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut last: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    for entry in feed.children().filter(|c| c.has_tag_name((ATOM, "entry"))) {
        for one in ["id", "title", "updated"] {
            assert_eq!(children(entry, one).len(), 1, "entry/{one}");
        }
        let id = children(entry, "id").remove(0);
        assert!(id.starts_with("urn:uuid:"), "{id}");
        assert!(ids.insert(id.clone()), "two entries share the id {id}");
        let updated = children(entry, "updated").remove(0);
        rfc3339(&updated);
        let t = chrono::DateTime::parse_from_rfc3339(&updated).unwrap();
        assert!(last.is_none_or(|l| l >= t), "newest first");
        last = Some(t);
        // An entry without content has an alternate link and a summary.
        let alternate = entry
            .children()
            .any(|c| c.has_tag_name((ATOM, "link")) && c.attribute("rel") == Some("alternate"));
        assert!(alternate && !children(entry, "summary").is_empty());
        out.push((
            children(entry, "title").remove(0),
            children(entry, "summary").remove(0),
        ));
    }
    out
}

/// The alerts of a site that goes down and recovers, as an Atom feed that follows RFC 4287.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_carries_the_alerts_newest_first() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = std::sync::Arc::clone(&failing);
    let target = TestServer::start(move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok("fine")
        }
    })
    .await;
    let port = closed_port();
    let config = json!({
        "sites": [{"name": "shop <&> \"1\"", "url": target.url("/"), "interval": "200ms"}],
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
    });
    let mut run = Running::start(&config);
    run.wait_for(Duration::from_secs(20), |e| {
        e["event"] == "alert" && e["kind"] == "down"
    })
    .await
    .unwrap_or_else(|| panic!("never down; stderr: {}", run.stderr()));
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    run.wait_for(Duration::from_secs(20), |e| {
        e["event"] == "alert" && e["kind"] == "recovered"
    })
    .await
    .unwrap_or_else(|| panic!("never recovered; stderr: {}", run.stderr()));
    let url = format!("http://127.0.0.1:{port}/feed.atom");
    let mut entries = Vec::new();
    for _ in 0..40 {
        let (status, xml, headers) = get(&url).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["content-type"],
            "application/atom+xml; charset=utf-8"
        );
        entries = atom_entries(&xml);
        if entries.len() >= 2 {
            break;
        }
        run.collect_for(Duration::from_millis(250)).await;
    }
    let titles: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        titles,
        ["shop <&> \"1\" recovered", "shop <&> \"1\" down"],
        "{entries:?}"
    );
    assert!(
        entries[1].1.starts_with("Website shop <&> \"1\" is down."),
        "{entries:?}"
    );
}

/// Incidents opened, updated and resolved by `sitewatch incident` and over the API, on the
/// status page (headless Chromium) with their timelines newest first, beside an announcement
/// and the maintenance of the next 7 days; in the API and the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_announcements_and_upcoming_maintenance_are_on_the_page() {
    use reqwest::Method;
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let port = closed_port();
    let now = chrono::Utc::now();
    let at = |h: i64| (now + chrono::Duration::hours(h)).to_rfc3339();
    let config = json!({
        "sites": [{"name": "db", "url": target.url("/db"), "interval": "500ms"},
                  {"name": "shop", "url": target.url("/"), "interval": "500ms",
                   "maintenance": [{"name": "shop upgrade", "start": at(30), "end": at(32)}]}],
        "maintenance": [{"name": "network work", "start": at(50), "end": at(51)},
                        {"name": "far away", "start": at(24 * 9), "end": at(24 * 9 + 1)}],
        "announcements": [{"name": "move", "message": "We move to a new datacentre <soon>",
                           "start": at(-1), "end": at(5)},
                          {"name": "later", "message": "Not yet shown", "start": at(3), "end": at(5)}],
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{port}"),
                   "tokens": [{"name": "ci", "env": "SW_WRITE", "scope": "write"},
                              {"name": "grafana", "env": "SW_READ", "scope": "read"}],
                   "public": ["page", "feed"]},
    });
    let (write, read) = ("write-token-a81c3e", "read-token-0f4e27");
    let mut run = Running::start_with_env(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        &[("SW_WRITE", write), ("SW_READ", read)],
    );
    run.wait_for(Duration::from_secs(20), |e| e["event"] == "stats")
        .await
        .unwrap_or_else(|| panic!("no stats; stderr: {}", run.stderr()));
    let dir = run.config_path().parent().unwrap().to_owned();

    // The CLI: open, update; a site that is not in the config is refused.
    let (code, out, err) = crate::support::binary::cli_in(
        &dir,
        &[
            "incident",
            "open",
            "Database failover",
            "--site",
            "db",
            "--status",
            "investigating",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let db_id: i64 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    let (code, _, err) = crate::support::binary::cli_in(
        &dir,
        &[
            "incident",
            "update",
            &db_id.to_string(),
            "Failed over to the replica",
            "--status",
            "monitoring",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        crate::support::binary::cli_in(&dir, &["incident", "open", "x", "--site", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("nope"), "{err}");

    // The API: a read token may not open one; a write token opens, updates, resolves.
    let api = |p: &str| format!("http://127.0.0.1:{port}/api/v1{p}");
    let body = json!({"title": "Slow checkout", "sites": ["shop"], "status": "identified",
                      "message": "A slow payment provider"});
    let (status, _, _) = call(
        Method::POST,
        api("/incidents"),
        read,
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, created, _) = call(Method::POST, api("/incidents"), write, Some(body), None).await;
    assert_eq!(status, 201, "{created}");
    let shop_id = created["incident"]["id"].as_i64().unwrap();
    let (status, bad, _) = call(
        Method::POST,
        api("/incidents"),
        write,
        Some(json!({"title": "x", "sites": ["nope"]})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, _, _) = call(
        Method::POST,
        api(&format!("/incidents/{shop_id}/updates")),
        write,
        Some(json!({"message": "Provider switched", "status": "monitoring"})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, resolved, _) = call(
        Method::POST,
        api(&format!("/incidents/{shop_id}/resolve")),
        write,
        Some(json!({"message": "All good"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["incident"]["status"], "resolved");
    let (status, _, _) = call(
        Method::POST,
        api(&format!("/incidents/{shop_id}/updates")),
        write,
        Some(json!({"message": "again"})),
        None,
    )
    .await;
    assert_eq!(status, 409, "a resolved incident takes no update");
    let (status, _, _) = call(
        Method::POST,
        api("/incidents/999/resolve"),
        write,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list, _) = call(Method::GET, api("/incidents"), read, None, None).await;
    let titles: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Slow checkout", "Database failover"]);
    let timeline: Vec<&str> = list["incidents"][0]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["resolved", "monitoring", "identified"]);

    // The page, as a browser shows it (public: no token).
    let Some(dom) = crate::support::chromium::dump_dom(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(2),
    )
    .await
    else {
        return;
    };
    let section = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}: {dom}"));
        let rest = &dom[start..];
        rest[..rest.find("</section>").unwrap_or(rest.len())].to_owned()
    };
    let posted = section("posted");
    let (slow, failover) = (
        posted.find("Slow checkout").unwrap(),
        posted.find("Database failover").unwrap(),
    );
    assert!(slow < failover, "newest first: {posted}");
    let slow_part = &posted[slow..failover];
    let (a, b, c) = (
        slow_part.find("All good").unwrap(),
        slow_part.find("Provider switched").unwrap(),
        slow_part.find("A slow payment provider").unwrap(),
    );
    assert!(a < b && b < c, "the timeline newest first: {slow_part}");
    assert!(posted[failover..].contains("Failed over to the replica"));
    assert!(posted[failover..].contains("Affects db"));
    let upcoming = section("upcoming");
    assert!(upcoming.contains("shop upgrade") && upcoming.contains("network work"));
    assert!(
        upcoming.find("shop upgrade") < upcoming.find("network work"),
        "soonest first"
    );
    assert!(upcoming.contains("all sites"), "{upcoming}");
    assert!(!upcoming.contains("far away"), "beyond 7 days");
    assert!(
        dom.contains("We move to a new datacentre &lt;soon&gt;"),
        "the banner"
    );
    assert!(!dom.contains("Not yet shown"));

    // The feed (public) carries the incidents' updates beside the alerts.
    let (status, xml, _) = get(&format!("http://127.0.0.1:{port}/feed.atom")).await;
    assert_eq!(status, 200);
    let entries = atom_entries(&xml);
    assert_eq!(
        entries.first().map(|(t, s)| (t.as_str(), s.as_str())),
        Some(("Incident: Slow checkout (resolved)", "All good"))
    );
    assert_eq!(
        entries
            .iter()
            .filter(|(t, _)| t.starts_with("Incident: "))
            .count(),
        5
    );

    // The CLI resolves and lists.
    let (code, _, err) =
        crate::support::binary::cli_in(&dir, &["incident", "resolve", &db_id.to_string()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = crate::support::binary::cli_in(&dir, &["incident", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("#{db_id} Database failover [db] resolved")),
        "{out}"
    );
    assert!(!run.stderr().contains(write) && !run.stderr().contains(read));
}
