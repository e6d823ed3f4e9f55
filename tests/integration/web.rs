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

/// A Gatus config.yaml as its README documents it, its endpoints on local targets.
fn gatus_yaml(http: &str, tcp_port: u16) -> String {
    format!(
        r#"alerting:
  slack:
    webhook-url: "https://hooks.slack.com/services/T000/B000/gatus-slack-secret"
  custom:
    url: "http://127.0.0.1:9/alert"
    method: "POST"
    body: |
      {{"text": "[ALERT_DESCRIPTION]"}}
  twilio:
    sid: "twilio-sid"
    token: "twilio-token-secret"
    from: "+1-234-567-8901"
    to: "+1-234-567-8901"
  pagerduty:
    integration-key: "pd-integration-key-secret"

endpoints:
  - name: front-end
    group: core
    url: "{http}/health"
    interval: 1s
    headers:
      X-Api-Key: "abc"
    client:
      timeout: 5s
    conditions:
      - "[STATUS] == 200"
      - "[BODY].status == UP"
      - "[RESPONSE_TIME] < 150"
      - "[CERTIFICATE_EXPIRATION] > 48h"
    alerts:
      - type: slack
        send-on-resolved: true
      - type: twilio
  - name: api-post
    group: core
    url: "{http}/api"
    method: post
    body: '{{"ping": true}}'
    interval: 1m30s
    conditions:
      - "[STATUS] == any(200, 201)"
    alerts:
      - type: custom
  - name: database
    url: "tcp://127.0.0.1:{tcp_port}"
    interval: 1s
    conditions:
      - "[CONNECTED] == true"
  - name: resolver
    url: "127.0.0.1:5353"
    dns:
      query-name: "example.org"
      query-type: "A"
    conditions:
      - "[DNS_RCODE] == NOERROR"
  - name: legacy-udp
    url: "udp://127.0.0.1:9"
    conditions:
      - "[CONNECTED] == true"
"#
    )
}

/// An Uptime Kuma backup (Settings, Backup, Export) as its server writes one.
fn kuma_backup(http: &str, tcp_port: u16) -> String {
    // A monitor has many fields; built in two parts (json!'s recursion limit).
    let mut shop = json!({"id": 1, "name": "Shop", "description": null, "url": format!("{http}/"), "method": "GET",
             "hostname": null, "port": null, "maxretries": 0, "weight": 2000, "active": 1,
             "type": "http", "interval": 1, "retryInterval": 60, "resendInterval": 0,
             "keyword": null, "invertKeyword": false, "expiryNotification": false,
             "ignoreTls": true, "upsideDown": false, "packetSize": 56, "maxredirects": 10,
             "accepted_statuscodes": ["200-299", "301"], "dns_resolve_type": "A",
             "dns_resolve_server": "1.1.1.1", "dns_last_result": null, "docker_container": ""});
    let rest = json!({"docker_host": null, "proxyId": null, "notificationIDList": {"1": true, "2": true},
             "tags": [{"id": 1, "monitor_id": 1, "tag_id": 1, "value": "", "name": "prod", "color": "#059669"}],
             "maintenance": false, "mqttTopic": "", "mqttSuccessMessage": "", "databaseQuery": null,
             "authMethod": null, "grpcUrl": null, "grpcProtobuf": null, "grpcMethod": null,
             "grpcServiceName": null, "grpcEnableTls": false, "radiusCalledStationId": null,
             "httpBodyEncoding": "json", "headers": "{\"X-Token\": \"abc\"}", "body": null,
             "timeout": 48, "pushToken": null});
    shop.as_object_mut()
        .unwrap()
        .extend(rest.as_object().unwrap().clone());
    json!({
        "version": "1.23.16",
        "notificationList": [
            {"id": 1, "name": "Ops Slack", "active": 1, "userId": 1, "isDefault": 0,
             "config": json!({"name": "Ops Slack", "type": "slack", "isDefault": false,
                              "slackwebhookURL": "https://hooks.slack.com/services/kuma-slack-secret",
                              "slackchannel": "#ops", "applyExisting": true}).to_string()},
            {"id": 2, "name": "Mail", "active": 1, "userId": 1, "isDefault": 0,
             "config": json!({"name": "Mail", "type": "smtp", "smtpHost": "smtp.example.com",
                              "smtpPort": 587, "smtpSecure": false, "smtpUsername": "kuma",
                              "smtpPassword": "kuma-smtp-password-secret", "smtpFrom": "kuma@example.com",
                              "smtpTo": "oncall@example.com"}).to_string()},
            {"id": 3, "name": "Signal", "active": 1, "userId": 1, "isDefault": 0,
             "config": json!({"name": "Signal", "type": "signal", "signalURL": "http://x"}).to_string()}
        ],
        "monitorList": [
            shop,
            {"id": 2, "name": "Body check", "url": format!("{http}/"), "method": "GET",
             "active": 0, "type": "keyword", "keyword": "fine", "interval": 60, "timeout": 48,
             "accepted_statuscodes": ["200-299"], "notificationIDList": {}, "tags": []},
            {"id": 3, "name": "DB port", "hostname": "127.0.0.1", "port": tcp_port, "active": 1,
             "type": "port", "interval": 1, "timeout": 2, "notificationIDList": {"1": true}, "tags": []},
            {"id": 4, "name": "Backup job", "active": 1, "type": "push", "interval": 86400,
             "pushToken": "kumapushtokensecret123", "notificationIDList": {}, "tags": []},
            {"id": 5, "name": "Container", "active": 1, "type": "docker",
             "docker_container": "web", "interval": 60, "notificationIDList": {}, "tags": []}
        ]
    })
    .to_string()
}

/// Gatus' and Uptime Kuma's configs imported: what maps is in config.json (kinds, intervals,
/// headers, statuses, notifiers routed to the sites that used them), secrets are variables
/// (never written nor printed), what does not map is listed; the config checks and probes the
/// same local targets; an import of the same file gives the same config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatus_and_uptime_kuma_configs_import_and_run() {
    use crate::support::binary::cli_in;
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((c, _)) = tcp.accept().await {
            drop(c);
        }
    });
    let http = target.url("").trim_end_matches('/').to_owned();
    let secrets = [
        "gatus-slack-secret",
        "twilio-token-secret",
        "pd-integration-key-secret",
        "kuma-slack-secret",
        "kuma-smtp-password-secret",
        "kumapushtokensecret123",
    ];
    for (from, source, file) in [
        ("gatus", gatus_yaml(&http, tcp_port), "config.yaml"),
        ("kuma", kuma_backup(&http, tcp_port), "backup.json"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), &source).unwrap();
        let (code, out, err) = cli_in(dir.path(), &["import", from, file]);
        assert_eq!(code, 0, "{from}: {out}{err}");
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        for s in secrets {
            assert!(
                !text.contains(s) && !out.contains(s) && !err.contains(s),
                "{from}: {s} leaked"
            );
        }
        let config: Value = serde_json::from_str(&text).unwrap();
        let site = |name: &str| -> Value {
            config["sites"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("{from}: no site {name}: {text}"))
                .clone()
        };
        let notifier = |name: &str| -> Value {
            config["notify"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("{from}: no notifier {name}: {text}"))
                .clone()
        };
        let env: Vec<(String, String)>;
        let probed: &[&str];
        if from == "gatus" {
            let fe = site("front-end");
            assert_eq!(fe["url"], format!("{http}/health"));
            assert_eq!(
                (fe["interval"].as_str(), fe["timeout"].as_str()),
                (Some("1s"), Some("5s"))
            );
            assert_eq!(fe["headers"]["X-Api-Key"], "abc");
            assert_eq!(fe["expect_status"], json!([200]));
            assert_eq!(fe["alerting"]["cert_warning"], "48h");
            assert_eq!(fe["tags"], json!(["core"]));
            let post = site("api-post");
            assert_eq!(
                (post["method"].as_str(), post["interval"].as_str()),
                (Some("POST"), Some("90s"))
            );
            assert_eq!(post["expect_status"], json!([200, 201]));
            assert_eq!(site("database")["kind"], "tcp");
            assert_eq!(site("database")["target"], format!("127.0.0.1:{tcp_port}"));
            let dns = site("resolver");
            assert_eq!(
                (dns["kind"].as_str(), dns["target"].as_str()),
                (Some("dns"), Some("example.org"))
            );
            assert_eq!(dns["resolver"], "127.0.0.1:5353");
            let slack = notifier("slack");
            assert_eq!(slack["type"], "slack");
            assert_eq!(slack["sites"], json!(["front-end"]));
            let var = slack["url_env"].as_str().unwrap().to_owned();
            assert!(
                out.contains(&var) && out.contains("alerting.slack.webhook-url"),
                "{out}"
            );
            assert_eq!(notifier("custom")["type"], "webhook");
            assert_eq!(notifier("custom")["sites"], json!(["api-post"]));
            for unmapped in [
                "[BODY].status == UP",
                "[RESPONSE_TIME] < 150",
                "legacy-udp",
                "alerting.twilio",
                "alerting.pagerduty: no endpoint alerts through it",
                "alerting.custom.body",
            ] {
                assert!(
                    out.contains(unmapped),
                    "{from}: {unmapped} not listed: {out}"
                );
            }
            env = vec![(var, "http://127.0.0.1:9/slack".into())];
            probed = &["front-end", "database"];
        } else {
            let shop = site("Shop");
            assert_eq!(shop["url"], format!("{http}/"));
            assert_eq!(
                (shop["interval"].as_str(), shop["timeout"].as_str()),
                (Some("1s"), Some("48s"))
            );
            assert_eq!(shop["expect_status"], json!(["2xx", 301]));
            assert_eq!(shop["tls_insecure"], true);
            assert_eq!(shop["headers"]["X-Token"], "abc");
            assert_eq!(shop["tags"], json!(["prod"]));
            assert_eq!(site("Body check")["paused"], true);
            let db = site("DB port");
            assert_eq!(
                (db["kind"].as_str(), db["timeout"].as_str()),
                (Some("tcp"), Some("2s"))
            );
            let job = site("Backup job");
            assert_eq!(
                (job["kind"].as_str(), job["period"].as_str()),
                (Some("push"), Some("24h"))
            );
            assert_eq!(notifier("Ops-Slack")["sites"], json!(["Shop", "DB port"]));
            let mail = notifier("Mail");
            assert_eq!(mail["type"], "email");
            assert_eq!(mail["smtp"], "smtp://smtp.example.com:587");
            assert_eq!(mail["to"], json!(["oncall@example.com"]));
            for unmapped in ["type keyword", "type docker", "\"Signal\""] {
                assert!(
                    out.contains(unmapped),
                    "{from}: {unmapped} not listed: {out}"
                );
            }
            env = ["Ops-Slack", "Mail"]
                .iter()
                .flat_map(|n| {
                    let n = notifier(n);
                    ["url_env", "username_env", "password_env"]
                        .into_iter()
                        .filter_map(|f| {
                            n[f].as_str()
                                .map(|v| (v.to_owned(), "http://127.0.0.1:9/x".to_owned()))
                        })
                        .collect::<Vec<_>>()
                })
                .chain(std::iter::once((
                    job["token_env"].as_str().unwrap().to_owned(),
                    "a-fresh-push-token-0123456789".to_owned(),
                )))
                .collect();
            probed = &["Shop", "DB port"];
        }
        // The same file again: refused over the existing config, identical with --force.
        let (code, _, err) = cli_in(dir.path(), &["import", from, file]);
        assert_ne!(code, 0);
        assert!(err.contains("--force"), "{err}");
        let (code, _, _) = cli_in(dir.path(), &["import", from, file, "--force"]);
        assert_eq!(code, 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.json")).unwrap(),
            text
        );
        // It runs: the mapped sites are probed and up.
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut run =
            Running::start_in_with_env(dir, &["--output", "json", "--config", "config.json"], &env);
        for name in probed {
            let p = run
                .seen_or_wait_for(Duration::from_secs(15), |e| {
                    e["event"] == "probe" && e["site"] == *name
                })
                .await
                .unwrap_or_else(|| panic!("{from}: {name} not probed; stderr: {}", run.stderr()));
            assert_eq!(p["ok"], true, "{from}: {p}");
        }
    }
}
