//! A real VictoriaMetrics server (Debian's `victoria-metrics`) on a free loopback port, standing in
//! for InfluxDB 2: it accepts line protocol on `/api/v2/write`. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Victoria {
    pub port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
    /// Started with `-dedup.minScrapeInterval=1ms`: samples of one series at one timestamp are
    /// kept once, as InfluxDB keeps one point per series and timestamp. Without it
    /// VictoriaMetrics keeps every copy, so a resent point shows twice.
    dedup: bool,
}

fn find() -> Option<PathBuf> {
    [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The server binary, or `None` (the test is skipped) when it is not installed. Under CI it
/// must be there: `.ci/run` installs it.
pub fn binary() -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        crate::support::skip(
            "victoria-metrics",
            "install it with `apt-get install victoria-metrics`",
        );
    }
    found
}

impl Victoria {
    /// A server that keeps every sample it is sent, duplicates included.
    pub async fn start() -> Option<Self> {
        Self::start_with(false).await
    }

    /// A server that, like InfluxDB, keeps one point per series and timestamp.
    pub async fn start_deduplicating() -> Option<Self> {
        Self::start_with(true).await
    }

    async fn start_with(dedup: bool) -> Option<Self> {
        binary()?;
        let mut v = Self {
            port: crate::support::closed_port(),
            data: tempfile::tempdir().unwrap(),
            child: None,
            dedup,
        };
        v.restart().await;
        Some(v)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and data.
    pub async fn restart(&mut self) {
        let mut command = Command::new(find().expect("victoria-metrics was found at start"));
        command
            .arg(format!("-storageDataPath={}", self.data.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg("-search.latencyOffset=0s")
            .arg("-retentionPeriod=100y");
        if self.dedup {
            command.arg("-dedup.minScrapeInterval=1ms");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting victoria-metrics");
        self.child = Some(child);
        let client = crate::support::http_client();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/health", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("victoria-metrics did not become healthy");
    }

    /// Stops the server gracefully (SIGTERM), so what it accepted is on disk: a SIGKILL would
    /// lose its last second of accepted points, which is the server's loss, not ours.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// Every sample of the series matching `selector`, as (labels, timestamps, values).
    pub async fn export(&self, selector: &str) -> Vec<(serde_json::Value, Vec<i64>, Vec<f64>)> {
        let client = crate::support::http_client();
        client
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await
            .unwrap();
        let mut url = url::Url::parse(&format!("{}/api/v1/export", self.url())).unwrap();
        url.query_pairs_mut().append_pair("match[]", selector);
        let text = client.get(url).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let ts = v["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_i64().unwrap())
                    .collect();
                let vals = v["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect();
                (v["metric"].clone(), ts, vals)
            })
            .collect()
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        self.stop();
    }
}
