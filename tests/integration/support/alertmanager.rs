//! A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) on a free loopback port, with
//! a minimal config (one `null` receiver that sends nothing anywhere), no clustering (no second
//! port) and its data in a temp dir. Stopped when dropped.
//!
//! What its API shows (checked against 0.25 by `alertmanager_selftest`):
//! - `GET /api/v2/alerts` lists only alerts that have not ended: an alert whose `endsAt` is in
//!   the past (resolved) is filtered out whatever the query says, so "resolved" reads as
//!   *absent from the list*. There is no `"resolved"` state: `status.state` is `"active"`,
//!   `"suppressed"` (silenced or inhibited) or, for a moment after the post, `"unprocessed"`.
//!   (The alert stays in memory until the next GC, 30 min, but the API never shows it.)
//! - An alert posted without `endsAt` gets `endsAt = now + resolve_timeout` and resolves by
//!   itself then unless it is posted again: a sender must resend firing alerts. `start()` uses a
//!   30 s `resolve_timeout`; `start_with_resolve_timeout` sets another.
//! - An alert posted with `endsAt` in the future is firing until then.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Alertmanager {
    /// An Alertmanager with a 30 s `resolve_timeout`; `None` (after `support::skip`) when it is
    /// not installed.
    pub async fn start() -> Option<Self> {
        Self::start_with_resolve_timeout(Duration::from_secs(30)).await
    }

    /// An Alertmanager that resolves an alert posted without `endsAt` after `resolve_timeout`
    /// (whole seconds, at least 1) unless it is posted again.
    pub async fn start_with_resolve_timeout(resolve_timeout: Duration) -> Option<Self> {
        if !std::path::Path::new(BINARY).is_file() {
            crate::support::skip(
                "prometheus-alertmanager",
                "install it with `apt-get install prometheus-alertmanager`",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        let secs = resolve_timeout.as_secs().max(1);
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: {secs}s\n\
                 route:\n  receiver: \"null\"\n  group_wait: 0s\n  group_interval: 1s\n  \
                 repeat_interval: 1h\n\
                 receivers:\n  - name: \"null\"\n"
            ),
        )
        .unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).unwrap();
        // The port is chosen here and bound by Alertmanager: retry if someone took it between.
        for _attempt in 0..5 {
            let port = crate::support::closed_port();
            let log = dir.path().join(format!("alertmanager-{port}.log"));
            let output = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(BINARY)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("starting prometheus-alertmanager");
            let client = crate::support::http_client();
            let ready = format!("http://127.0.0.1:{port}/-/ready");
            let mut exited = None;
            for _ in 0..400 {
                if let Ok(r) = client.get(&ready).send().await
                    && r.status().is_success()
                {
                    return Some(Self {
                        port,
                        dir,
                        child: Some(child),
                    });
                }
                if let Some(status) = child.try_wait().unwrap() {
                    exited = Some(status);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match exited {
                Some(_) if text.contains("address already in use") => continue,
                Some(status) => {
                    panic!("alertmanager exited ({status}) before it was ready:\n{text}")
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("alertmanager was not ready within 20 s:\n{text}");
                }
            }
        }
        panic!("alertmanager found no free port in 5 attempts");
    }

    /// The base URL, `http://127.0.0.1:PORT` (post alerts to `{url}/api/v2/alerts`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts` with every filter on (active, silenced, inhibited, unprocessed):
    /// every alert that has not ended (see the module doc: resolved ones are never listed).
    pub async fn alerts(&self) -> Value {
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true",
            self.url()
        );
        let r = crate::support::http_client()
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
    }

    /// Polls `alerts()` every 100 ms until `pred` holds of the answer, and returns it; on timeout
    /// panics with `what` and the last answer.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let alerts = self.alerts().await;
            if pred(&alerts) {
                return alerts;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for Alertmanager to show {what}; its last answer:\n{}\n\
                     its log:\n{}",
                    serde_json::to_string_pretty(&alerts).unwrap(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The alerts of `alerts()` whose label `name` is `value`.
    pub async fn alerts_labelled(&self, name: &str, value: &str) -> Vec<Value> {
        self.alerts()
            .await
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["labels"][name] == value)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Alertmanager's output (every start attempt's log).
    pub fn log(&self) -> String {
        crate::support::read_logs(self.dir.path(), "alertmanager-")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}
