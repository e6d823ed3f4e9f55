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
