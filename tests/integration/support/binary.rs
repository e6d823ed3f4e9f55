//! Runs the real `sitewatch` binary with a config written to a temp dir, and reads its JSON
//! output line by line.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_sitewatch");

/// One compiled-plugin cache for every sitewatch these tests start (`cargo xtask test` names the
/// one its plugin build filled): wasmtime keys it by content and engine settings and writes it
/// atomically, so sharing it is safe, and each Python or JavaScript component (~12 s to compile
/// on two cores) is compiled once per run instead of once per test.
pub fn plugin_cache() -> std::ffi::OsString {
    std::env::var_os("SITEWATCH_PLUGIN_CACHE")
        .unwrap_or_else(|| concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache").into())
}

/// A running sitewatch process; killed when dropped.
pub struct Running {
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every JSON event read so far, in order.
    pub events: Vec<Value>,
    pub dir: tempfile::TempDir,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    /// Writes `config` to `config.json` in a temp dir and starts `sitewatch --output json` on it.
    pub fn start(config: &Value) -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), config, &[])
    }

    /// Writes `config` to `config.json` in `dir` and starts `sitewatch --output json` there, with
    /// `extra` arguments.
    pub fn start_with(dir: tempfile::TempDir, config: &Value, extra: &[&str]) -> Self {
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let mut args = vec!["--output", "json", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_in(dir, &args)
    }

    /// [`Self::start_with`] with environment variables set for the process.
    pub fn start_with_env(
        dir: tempfile::TempDir,
        config: &Value,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let mut args = vec!["--output", "json", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_in_with_env(dir, &args, env)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Self {
        Self::start_in_with_env(dir, args, &[])
    }

    pub fn start_in_with_env(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("SITEWATCH_PLUGIN_CACHE", plugin_cache())
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting sitewatch");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child,
            lines,
            events: Vec::new(),
            dir,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Reads events until one matches `pred` or `within` passes. Every line must be JSON.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => return None,
            };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            self.events.push(v.clone());
            if pred(&v) {
                return Some(v);
            }
        }
    }

    /// The first event read so far that matches `pred`, or else the next one to come within
    /// `within`: for events whose order among themselves is not fixed (two sites' alerts).
    pub async fn seen_or_wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(v) = self.events.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        self.wait_for(within, pred).await
    }

    /// Reads events for `d`.
    pub async fn collect_for(&mut self, d: Duration) {
        self.wait_for(d, |_| false).await;
    }

    /// Reads every event left until stdout closes.
    pub async fn drain(&mut self) {
        while self
            .wait_for(Duration::from_secs(5), |_| false)
            .await
            .is_some()
        {}
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .map(|r| r.unwrap())
    }

    /// The process's resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib / 1024.0
    }

    /// How many of this process's TCP sockets are connected to one of the `peers` (local ports
    /// of clients on this machine): read from the socket inodes it holds and the kernel's table.
    pub fn sockets_to(&self, peers: &[u16]) -> usize {
        let pid = self.child.id().expect("running");
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .flatten()
                .filter_map(|e| {
                    let l = std::fs::read_link(e.path()).ok()?;
                    let l = l.to_string_lossy();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect();
        ["tcp", "tcp6"]
            .iter()
            .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            })
            .filter(|f| f.len() > 9 && inodes.contains(&f[9]))
            .filter(|f| {
                f[2].rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .is_some_and(|p| peers.contains(&p))
            })
            .count()
    }

    /// Measurements in this run's store so far.
    pub fn probe_count_in_store(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join("sitewatch-data/sitewatch.db"))
            .unwrap();
        conn.query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
            .unwrap()
    }

    /// The newest event of kind `event` read so far.
    pub fn latest(&self, event: &str) -> &Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} event"))
    }

    /// The events of kind `event` (e.g. "probe") for `site`.
    pub fn of(&self, event: &str, site: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == event && e["site"] == site)
            .collect()
    }
}

/// A predicate for an event of the given kind and site.
pub fn is(event: &'static str, site: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event && v["site"] == site
}

/// A predicate for an alert of the given kind and site.
pub fn alert(kind: &'static str, site: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "alert" && v["kind"] == kind && v["site"] == site
}

/// Runs `sitewatch check-config` on `config` (written to a temp dir); returns the exit code and
/// what it printed.
pub fn check_config(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Runs `sitewatch ARGS` to completion and returns its stdout; panics with its stderr if it fails.
pub fn cli_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sitewatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `sitewatch ARGS` in `dir`; the exit code, stdout and stderr.
pub fn cli_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
