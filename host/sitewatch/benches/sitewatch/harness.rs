//! Running a measured process: the sitewatch binary (or a peer) as a child, its CPU time and
//! memory read from `/proc`, and the JSON events sitewatch prints, each stamped with the instant
//! it arrived here.

use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The sitewatch binary cargo built for this bench.
pub const SITEWATCH: &str = env!("CARGO_BIN_EXE_sitewatch");

/// CPU model, core count, memory and kernel, for the record.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = field_kb(&meminfo, "MemTotal:") as f64 / (1 << 20) as f64;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn field_kb(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .skip(1) // the state letter
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / clock_ticks_per_second())
}

/// User plus system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    // After the state: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime.
    let f = stat_fields(&pid.to_string());
    ticks(f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0))
}

/// CPU time of this process's children that have been waited for (the `curl` loop's cost).
pub fn waited_children_cpu() -> Duration {
    let f = stat_fields("self");
    ticks(f.get(12).copied().unwrap_or(0) + f.get(13).copied().unwrap_or(0))
}

/// (current RSS, peak RSS) of a process, in KiB.
pub fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (field_kb(&status, "VmRSS:"), field_kb(&status, "VmHWM:"))
}

/// Whether `program` is on the PATH; when not and this runs as root, installs the Debian
/// `package` with apt-get. Otherwise prints the command to run and returns false.
pub fn ensure_installed(program: &str, package: &str) -> bool {
    let found = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        println!("  installing {package} with apt-get");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
    if found() {
        return true;
    }
    println!("  skipped: {program} is not installed; run `sudo apt-get install {package}`");
    false
}

/// A directory for a run's files under `target/bench/tmp` (on disk, not a RAM-backed /tmp).
pub fn scratch_dir() -> tempfile::TempDir {
    let base = crate::root().join("target/bench/tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A probe event, with the fields the benches read.
#[derive(Debug, Deserialize)]
pub struct Probe {
    pub site: String,
    pub ok: bool,
    pub ttfb_ms: Option<f64>,
    pub response_ms: Option<f64>,
    /// When the probe started (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<f64>,
}

impl Probe {
    /// When the probe ended (wall clock).
    pub fn ended(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let start = chrono::DateTime::parse_from_rfc3339(self.time.as_deref()?).ok()?;
        let ms = self.duration_ms.unwrap_or(0.0);
        Some(start.to_utc() + chrono::TimeDelta::microseconds((ms * 1000.0) as i64))
    }
}

/// An alert event, with the fields the benches read.
#[derive(Debug, Deserialize)]
pub struct AlertEvent {
    pub kind: String,
    pub site: String,
    /// Why it was held, for a held alert (not sent to notifiers).
    #[serde(default)]
    pub held: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {},
    Probe(Probe),
    Alert(AlertEvent),
    Error {
        message: String,
    },
    #[serde(other)]
    Other,
}

/// One line of sitewatch's JSON output and when it arrived.
pub struct Line {
    pub at: Instant,
    /// The wall clock when it arrived.
    pub wall: chrono::DateTime<chrono::Utc>,
    pub event: Event,
}

/// The sitewatch binary running on a config, with `--output json` read line by line.
pub struct Monitor {
    child: Child,
    pub pid: u32,
    lines: mpsc::Receiver<Line>,
    pub dir: tempfile::TempDir,
}

impl Monitor {
    /// Starts sitewatch on `config` in `dir` (its data directory is `dir/sitewatch-data`), its
    /// JSON output read here line by line.
    pub fn start(dir: tempfile::TempDir, config: &serde_json::Value) -> Self {
        Self::spawn(dir, config, true, &[])
    }

    /// [`Self::start`] with more arguments (`--node`, `--location`, ...), reading the output
    /// or not.
    pub fn start_args(
        dir: tempfile::TempDir,
        config: &serde_json::Value,
        read_output: bool,
        args: &[&str],
    ) -> Self {
        Self::spawn_with(dir, config, read_output, &[], args)
    }

    /// [`Self::start`] with environment variables (the secrets a config names) set for it.
    pub fn start_with_env(
        dir: tempfile::TempDir,
        config: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(dir, config, true, env)
    }

    /// Starts sitewatch with its JSON output going to /dev/null: nothing here pays for reading
    /// it. What it measured is read back from its store ([`probes_in_store`]).
    pub fn start_quiet(dir: tempfile::TempDir, config: &serde_json::Value) -> Self {
        Self::spawn(dir, config, false, &[])
    }

    fn spawn(
        dir: tempfile::TempDir,
        config: &serde_json::Value,
        read_output: bool,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_with(dir, config, read_output, env, &[])
    }

    fn spawn_with(
        dir: tempfile::TempDir,
        config: &serde_json::Value,
        read_output: bool,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(SITEWATCH)
            .args(["--output", "json", "--config"])
            .arg(&path)
            .args(args)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(if read_output {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(stderr)
            .spawn()
            .expect("starting sitewatch");
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::with_capacity(1 << 20, stdout).lines() {
                    let Ok(line) = line else { break };
                    let (at, wall) = (Instant::now(), chrono::Utc::now());
                    let event = serde_json::from_str(&line).unwrap_or(Event::Other);
                    if tx.send(Line { at, wall, event }).is_err() {
                        break;
                    }
                }
            });
        }
        let pid = child.id();
        Self {
            child,
            pid,
            lines,
            dir,
        }
    }

    /// The data directory sitewatch uses.
    pub fn data_dir(dir: &Path) -> PathBuf {
        dir.join("sitewatch-data")
    }

    /// Waits for the `started` event (history is loaded by then).
    pub fn wait_started(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line {
                    event: Event::Started {},
                    ..
                }) => return,
                Ok(Line {
                    event: Event::Error { message },
                    ..
                }) => panic!("sitewatch reported an error while starting: {message}"),
                Ok(_) => {}
                Err(_) => panic!(
                    "sitewatch did not start within {limit:?}; see {}",
                    self.dir.path().join("stderr.log").display()
                ),
            }
        }
    }

    /// The next line, waiting at most `limit`.
    pub fn next(&self, limit: Duration) -> Option<Line> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Every line that arrives in the next `span`.
    pub fn collect_for(&self, span: Duration) -> Vec<Line> {
        let end = Instant::now() + span;
        let mut out = Vec::new();
        while let Some(l) = self.next(end.saturating_duration_since(Instant::now())) {
            out.push(l);
            if Instant::now() >= end {
                break;
            }
        }
        out
    }

    /// Waits until sitewatch has stored a probe made after `since` (it has started probing).
    pub fn wait_probing(&self, since: chrono::DateTime<chrono::Utc>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !self.probes_in_store(since, chrono::Utc::now()).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "sitewatch stored no probe within {limit:?}; see {}",
            self.dir.path().join("stderr.log").display()
        );
    }

    /// (lag in ms, ok) of every probe sitewatch stored that started in `[from, to)`.
    pub fn probes_in_store(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(f64, bool)> {
        self.query(
            "SELECT lag_us, ok FROM measurements WHERE time_us >= ?1 AND time_us < ?2",
            from,
            to,
            |row| {
                Ok((
                    row.get::<_, i64>(0)? as f64 / 1000.0,
                    row.get::<_, i64>(1)? != 0,
                ))
            },
        )
    }

    /// Each site's first probe that started at or after `from`, by site name.
    pub fn first_probes_since(
        &self,
        from: chrono::DateTime<chrono::Utc>,
    ) -> std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> {
        self.probe_times("MIN", from, chrono::Utc::now() + chrono::TimeDelta::days(1))
    }

    /// Each site's last probe that started in the hour before `to`, by site name.
    pub fn last_probes_before(
        &self,
        to: chrono::DateTime<chrono::Utc>,
    ) -> std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> {
        self.probe_times("MAX", to - chrono::TimeDelta::hours(1), to)
    }

    /// Each site's `MIN` or `MAX` probe start in `[from, to)`, by site name.
    fn probe_times(
        &self,
        aggregate: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> {
        self.query(
            &format!(
                "SELECT s.name, {aggregate}(m.time_us) FROM measurements m JOIN sites s ON s.id = m.site_id
                 WHERE m.time_us >= ?1 AND m.time_us < ?2 GROUP BY s.name"
            ),
            from,
            to,
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    chrono::DateTime::from_timestamp_micros(row.get(1)?).unwrap_or_default(),
                ))
            },
        )
        .into_iter()
        .collect()
    }

    /// The names of the sites probed in `[from, to)`.
    pub fn sites_probed(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<String> {
        self.query(
            "SELECT DISTINCT s.name FROM measurements m JOIN sites s ON s.id = m.site_id
             WHERE m.time_us >= ?1 AND m.time_us < ?2",
            from,
            to,
            |row| row.get(0),
        )
    }

    /// How many probes each site that was probed at all made in `[from, to)`.
    pub fn probes_per_site(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<u64> {
        self.query(
            "SELECT COUNT(*) FROM measurements WHERE time_us >= ?1 AND time_us < ?2 GROUP BY site_id",
            from,
            to,
            |row| Ok(row.get::<_, i64>(0)? as u64),
        )
    }

    /// Rows of `sql` over the store, with the times of `[from, to)` as its two parameters.
    fn query<T>(
        &self,
        sql: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        let db = Self::data_dir(self.dir.path()).join(sitewatch::store::DB_FILE);
        let Ok(conn) =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare(sql) else {
            return Vec::new();
        };
        stmt.query_map([from.timestamp_micros(), to.timestamp_micros()], row)
            .map(|rows| rows.flatten().collect())
            .unwrap_or_default()
    }

    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid)
    }

    pub fn rss_kb(&self) -> (u64, u64) {
        rss_kb(self.pid)
    }

    /// Kills sitewatch with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops sitewatch with SIGTERM, as a service manager would, and waits for it (it writes
    /// everything it measured to the store first).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config of `n` sites named `s0..` probing `url(i)` every `interval`, with the default
/// alerting and views: the whole pipeline runs.
pub fn sites_config(
    n: usize,
    interval: &str,
    url: impl Fn(usize) -> String,
    extra: serde_json::Value,
) -> serde_json::Value {
    let sites: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("s{i}"), "url": url(i), "interval": interval, "timeout": "5s",
            })
        })
        .collect();
    let mut config = serde_json::json!({ "sites": sites });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    config
}
