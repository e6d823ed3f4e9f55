//! The live terminal display, for real: the binary runs inside tmux, and the pane is read back.

use crate::support::binary::BIN;
use crate::support::closed_port;
use crate::support::server::{Reply, TestServer};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            crate::support::skip("tmux", "install it with `apt-get install tmux`");
        }
        ok
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "sw", "-S", "-200"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_display_shows_views_bars_numbers_and_alerts_in_80_columns() {
    if !Tmux::available() {
        return;
    }
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "sites": [
            {"name": "healthy-site-with-a-long-name", "url": server.url("/"), "interval": "100ms"},
            {"name": "down-site", "url": format!("http://127.0.0.1:{}/", closed_port()), "interval": "100ms"}
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}, {"window": "1m", "every": "1s"}]}
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let tmux = Tmux {
        socket: format!("sitewatch-test-{}", std::process::id()),
    };
    let script = format!(
        "cd {} && {BIN} --config config.json; sleep 60",
        dir.path().display()
    );
    let started = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "sw", "-x", "80", "-y", "30"])
        .arg(script)
        .env("NO_COLOR", "1")
        .status()
        .unwrap();
    assert!(started.success());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let screen = tmux.capture();
    for expected in [
        "sitewatch",
        "last 10s, refreshed every 500ms",
        "last 1m, refreshed every 1s",
        "healthy-site-…",
        "100.00%",
        "0.00%",
        "200:",
        "connect:",
        "█",
        "Website down-site is down. availability=0.00%",
        "down now",
    ] {
        assert!(
            screen.contains(expected),
            "missing {expected:?} in the pane:\n{screen}"
        );
    }
    assert!(
        screen.lines().all(|l| l.chars().count() <= 80),
        "a line is wider than 80 columns:\n{screen}"
    );
    // Keep the screen for the README.
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tty-capture.txt"),
        &screen,
    );

    // Ctrl-C leaves the final tables in a usable terminal.
    tmux.cmd()
        .args(["send-keys", "-t", "sw", "C-c"])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = tmux.capture();
    assert!(
        after.contains("final: last 10s"),
        "final tables after Ctrl-C:\n{after}"
    );
}
