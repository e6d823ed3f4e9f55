//! A real Prometheus (Debian's `prometheus`, 2.42) on a free loopback port, scraping one target
//! every second, with its TSDB in a temp dir. Stopped when dropped. Also `promtool check metrics`.
//!
//! What it does (checked against 2.42 by `prometheus_selftest` and by hand):
//! - `/-/ready` answers within ~0.2 s, but the first scrape comes only ~5 s after the start:
//!   the scrape manager applies discovered targets at most every 5 s (not configurable in 2.42),
//!   so before that `/api/v1/targets` lists no target (`target_health` says `"unknown"`) and
//!   queries return `[]`. The first value showed 5.3-6.2 s after the start on an idle
//!   machine; allow for more when it is busy (the selftests give `wait_until` 30 s).
//! - Its scrape sends `Accept: application/openmetrics-text;version=1.0.0,
//!   application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`,
//!   `Accept-Encoding: gzip`, `User-Agent: Prometheus/2.42.0+ds` and
//!   `X-Prometheus-Scrape-Timeout-Seconds: 1`; with a
//!   bearer token, `Authorization: Bearer TOKEN`. Its job is `target`, so series carry
//!   `job="target", instance="127.0.0.1:PORT"`.
//! - A failed scrape (status other than 2xx, timeout, unparsable body) makes the target
//!   `"down"` with `lastError` such as `server returned HTTP status 401 Unauthorized`, and
//!   `up` 0.
//! - `promtool check metrics` writes its findings on stderr and exits 3 for lint problems (e.g.
//!   `x counter metrics should have "_total" suffix`, `x_total no help text`), 1 for a parse
//!   error; an empty input passes.

use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

pub struct Prometheus {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`"127.0.0.1:PORT"`) at `metrics_path` every 1 s
    /// (scrape timeout 1 s), sending `Authorization: Bearer TOKEN` when `bearer_token` is given;
    /// waits until `/-/ready`. `None` (after `support::skip`) when it is not installed.
    pub async fn start(
        target: &str,
        metrics_path: &str,
        bearer_token: Option<&str>,
    ) -> Option<Self> {
        if !std::path::Path::new(BINARY).is_file() {
            crate::support::skip("prometheus", "install it with `apt-get install prometheus`");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        // JSON strings are valid YAML strings: no quoting trouble whatever the arguments hold.
        let q = |s: &str| Value::String(s.to_owned()).to_string();
        let mut yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: target\n    metrics_path: {}\n",
            q(metrics_path)
        );
        if let Some(token) = bearer_token {
            yaml += &format!(
                "    authorization:\n      type: Bearer\n      credentials: {}\n",
                q(token)
            );
        }
        yaml += &format!("    static_configs:\n      - targets: [{}]\n", q(target));
        std::fs::write(&config, yaml).unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).unwrap();
        // The port is chosen here and bound by Prometheus: retry if someone took it between.
        for _attempt in 0..5 {
            let port = crate::support::closed_port();
            let log = dir.path().join(format!("prometheus-{port}.log"));
            let output = std::fs::File::create(&log).unwrap();
            let child = Command::new(BINARY)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1h")
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("starting prometheus");
            // Killed if this start panics or is cancelled (its future dropped) before it returns.
            let mut guard = KillOnDrop(Some(child));
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
                        child: guard.0.take(),
                    });
                }
                if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
                    exited = Some(status);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match exited {
                Some(_) if text.contains("address already in use") => continue,
                Some(status) => panic!("prometheus exited ({status}) before it was ready:\n{text}"),
                None => panic!("prometheus was not ready within 20 s:\n{text}"),
            }
        }
        panic!("prometheus found no free port in 5 attempts");
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query (`GET /api/v1/query?query=PROMQL`); returns `data.result` (for a vector,
    /// an array of `{"metric": {...}, "value": [time, "text"]}`). Panics with the whole answer
    /// when Prometheus reports an error (bad PromQL, ...).
    pub async fn query(&self, promql: &str) -> Value {
        let mut url = url::Url::parse(&format!("{}/api/v1/query", self.url())).unwrap();
        url.query_pairs_mut().append_pair("query", promql);
        let r = crate::support::http_client()
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\nprometheus log:\n{}", self.log()));
        let status = r.status();
        let text = r.text().await.unwrap();
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("query {promql:?}: {status}, not JSON ({e}): {text}"));
        assert!(
            status.is_success() && answer["status"] == "success",
            "query {promql:?}: {status}: {text}"
        );
        answer["data"]["result"].clone()
    }

    /// Polls `query(promql)` every 200 ms until `pred` holds of its result, and returns it; on
    /// timeout panics with `what`, the last result, the target's health and the log.
    pub async fn wait_until(
        &self,
        promql: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let result = self.query(promql).await;
            if pred(&result) {
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                let (health, error) = self.target_health().await;
                panic!(
                    "waited {timeout:?} for Prometheus to show {what}; `{promql}` last gave:\n{}\n\
                     the target is {health:?} (last error {error:?}); the log:\n{}",
                    serde_json::to_string_pretty(&result).unwrap(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The scrape target's `health` from `/api/v1/targets` (`"up"`, `"down"`, `"unknown"`) and
    /// its `lastError` (empty when none). `("unknown", "")` before the target is listed (the
    /// first ~5 s, see the module doc).
    pub async fn target_health(&self) -> (String, String) {
        let url = format!("{}/api/v1/targets?state=active", self.url());
        let r = crate::support::http_client()
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"));
        match v["data"]["activeTargets"].get(0) {
            Some(t) => (
                t["health"].as_str().unwrap_or("unknown").to_owned(),
                t["lastError"].as_str().unwrap_or_default().to_owned(),
            ),
            None => ("unknown".to_owned(), String::new()),
        }
    }

    /// Prometheus's output (every start attempt's log; warnings and errors only).
    pub fn log(&self) -> String {
        crate::support::read_logs(self.dir.path(), "prometheus-")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SIGKILL: nothing in its TSDB is worth the seconds a clean shutdown takes.
        drop(KillOnDrop(self.child.take()));
    }
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `promtool check metrics` with `exposition` on stdin: `Ok(())` when it passes, else
/// `Err` with its exit status and output. When promtool is not installed: `Ok(())` after
/// `support::skip` (the caller's checks pass vacuously; under CI the skip fails the test).
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    if !std::path::Path::new(PROMTOOL).is_file() {
        crate::support::skip("promtool", "install it with `apt-get install prometheus`");
        return Ok(());
    }
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    let mut stdin = child.stdin.take().unwrap();
    let input = exposition.to_owned();
    // Written from a thread: a large input must not deadlock against promtool's output.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("running promtool");
    let _ = writer.join();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
