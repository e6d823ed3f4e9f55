//! The live terminal display, for real: the binary runs inside tmux (hundreds of sites, a small
//! pane), and the visible pane is read back after resizes, keys and reloads.

use crate::support::binary::BIN;
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use crate::support::tmux::Tmux;
use serde_json::json;
use std::time::Duration;

/// Asserts that the visible pane fits `width` × `height`.
fn fits(screen: &str, width: usize, height: usize) {
    let rows: Vec<&str> = screen.lines().collect();
    assert!(
        rows.len() <= height,
        "{} rows in a {height}-row pane:\n{screen}",
        rows.len()
    );
    for row in rows {
        assert!(
            row.chars().count() <= width,
            "a line is wider than {width} columns: {row:?}"
        );
    }
}

/// Polls the pane until `pred` holds (the display redraws on its own schedule).
async fn screen_until(tmux: &Tmux, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let screen = tmux.screen();
        if pred(&screen) || tokio::time::Instant::now() >= deadline {
            return screen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sites_in_80_by_24_show_the_outage_and_follow_resizes_and_keys() {
    if !Tmux::available() {
        return;
    }
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let dead = closed_port();
    let mut sites: Vec<_> = (0..497)
        .map(|i| json!({"name": format!("site-{i:03}"), "url": server.url(&format!("/{i}")), "interval": "1s"}))
        .collect();
    for name in ["broken-a", "broken-b", "broken-c"] {
        sites.push(
            json!({"name": name, "url": format!("http://127.0.0.1:{dead}/{name}"), "interval": "1s",
                          "tags": ["broken"]}),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "sites": sites,
        "alerting": {"window": "3s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}, {"window": "5m", "every": "2s"}]}
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let tmux = Tmux::start(
        "display",
        dir.path(),
        &format!("{BIN} --config config.json; echo exit=$?; sleep 60"),
        80,
        24,
    );

    // Within one alert window (plus the first interval and a redraw): all three down, with their
    // alerts, on screen.
    let screen = screen_until(&tmux, Duration::from_secs(15), |s| {
        s.contains("497 up · 3 DOWN")
            && s.matches("is down").count() >= 3
            && s.lines()
                .filter(|l| l.contains("broken-") && l.contains("DOWN"))
                .count()
                >= 3
    })
    .await;
    fits(&screen, 80, 24);
    assert!(screen.contains("497 up · 3 DOWN"), "summary:\n{screen}");
    for name in ["broken-a", "broken-b", "broken-c"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(name) && l.contains("DOWN")),
            "{name} is not shown as DOWN:\n{screen}"
        );
        assert!(
            screen.contains(&format!("Website {name} is down")),
            "the down alert of {name} is not pinned:\n{screen}"
        );
    }
    assert!(
        screen.contains("more, all up"),
        "the healthy rest collapses:\n{screen}"
    );
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/tty-capture.txt"),
        &screen,
    );

    for (w, h) in [(120, 40), (60, 20)] {
        tmux.resize(w, h);
        let screen = screen_until(&tmux, Duration::from_secs(3), |s| {
            s.lines().count() <= usize::from(h)
                && s.lines().all(|l| l.chars().count() <= usize::from(w))
                && s.contains("3 DOWN")
        })
        .await;
        fits(&screen, usize::from(w), usize::from(h));
        assert!(
            screen.contains("3 DOWN"),
            "after resizing to {w}x{h}:\n{screen}"
        );
    }
    tmux.resize(80, 24);

    tmux.send_keys(&["v"]);
    let screen = screen_until(&tmux, Duration::from_secs(3), |s| {
        s.contains("last 5m (2/2")
    })
    .await;
    assert!(
        screen.contains("last 5m (2/2"),
        "v switches views:\n{screen}"
    );

    tmux.send_keys(&["/", "s", "i", "t", "e", "-", "4", "2", "0", "Enter"]);
    let screen = screen_until(&tmux, Duration::from_secs(3), |s| {
        s.contains("filter \"site-420\"")
    })
    .await;
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("site-")).collect();
    assert!(
        rows.iter().all(|l| l.contains("site-420")) && !rows.is_empty(),
        "the filter keeps only site-420:\n{screen}"
    );
    tmux.send_keys(&["Escape"]);

    tmux.send_keys(&["s"]);
    let screen = screen_until(&tmux, Duration::from_secs(3), |s| s.contains("sort name")).await;
    let first = screen
        .lines()
        .find(|l| l.starts_with("  broken-") || l.starts_with("  site-"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        first.contains("broken-a"),
        "name order starts with broken-a:\n{screen}"
    );

    // Grouped by tag: a heading per tag, the untagged last.
    tmux.send_keys(&["g"]);
    let screen = screen_until(&tmux, Duration::from_secs(3), |s| s.contains("by tag (g)")).await;
    let lines: Vec<&str> = screen.lines().collect();
    let heading = lines
        .iter()
        .position(|l| l.starts_with("── broken · 3 sites, 3 DOWN"))
        .unwrap_or_else(|| panic!("the broken group's heading:\n{screen}"));
    assert!(
        lines[heading + 1..heading + 4]
            .iter()
            .all(|l| l.contains("broken-") && l.contains("DOWN")),
        "the group's sites follow its heading:\n{screen}"
    );
    assert!(
        lines[heading + 4].starts_with("── untagged · 497 sites"),
        "{screen}"
    );
    fits(&screen, 80, 24);

    tmux.send_keys(&["q"]);
    let after = screen_until(&tmux, Duration::from_secs(10), |s| s.contains("exit=")).await;
    assert!(after.contains("exit=0"), "q exits with 0:\n{after}");
    let history = tmux.with_scrollback();
    // The last of the final tables (the scrollback keeps 2,000 lines; each table has 500 rows).
    assert!(
        history.contains("final: last 5m"),
        "the final report:\n{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_drops_a_view_and_a_removed_site_and_ctrl_c_leaves_the_final_tables() {
    if !Tmux::available() {
        return;
    }
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let dir = tempfile::tempdir().unwrap();
    let config = |views: serde_json::Value, with_dead: bool| {
        let mut sites =
            vec![json!({"name": "healthy", "url": server.url("/"), "interval": "100ms"})];
        if with_dead {
            sites.push(json!({"name": "gone-soon", "url": dead, "interval": "100ms"}));
        }
        json!({"sites": sites, "alerting": {"window": "1s"}, "dashboard": {"views": views}})
    };
    let two = json!([{"window": "10s", "every": "500ms"}, {"window": "1m", "every": "1s"}]);
    let one = json!([{"window": "10s", "every": "500ms"}]);
    let path = dir.path().join("config.json");
    std::fs::write(&path, config(two, true).to_string()).unwrap();
    let tmux = Tmux::start(
        "reload",
        dir.path(),
        &format!("{BIN} --config config.json; sleep 60"),
        80,
        24,
    );
    let screen = screen_until(&tmux, Duration::from_secs(20), |s| {
        s.contains("1 up · 1 DOWN") && s.contains("(1/2, v)")
    })
    .await;
    assert!(screen.contains("(1/2, v)"), "two views:\n{screen}");
    assert!(screen.contains("gone-soon"), "{screen}");

    std::fs::write(&path, config(one, false).to_string()).unwrap();
    let screen = screen_until(&tmux, Duration::from_secs(20), |s| {
        s.contains("(1/1, v)") && s.contains("1 up · 0 down")
    })
    .await;
    assert!(
        screen.contains("(1/1, v)"),
        "the dropped view is gone:\n{screen}"
    );
    let live: Vec<&str> = screen
        .lines()
        .filter(|l| l.trim_start().starts_with("gone-soon"))
        .collect();
    assert!(
        live.is_empty(),
        "the removed site is still listed: {live:?}\n{screen}"
    );
    assert!(screen.contains("1 up · 0 down"), "{screen}");

    tmux.send_keys(&["C-c"]);
    let after = screen_until(&tmux, Duration::from_secs(20), |s| {
        s.contains("final: last 10s")
    })
    .await;
    assert!(
        after.contains("final: last 10s"),
        "final tables after Ctrl-C:\n{after}"
    );
}
