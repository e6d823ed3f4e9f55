//! Real NATS servers with JetStream (Debian's `nats-server`) on free loopback ports, in a
//! directory the caller owns: one alone, or three in a cluster. The integration tests and the
//! cluster benchmark start them through this. Every server is killed when this is dropped.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the server (`/usr/sbin`, often not on a user's PATH), or elsewhere.
pub fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct NatsServers {
    dir: PathBuf,
    binary: PathBuf,
    /// Client, cluster and monitoring port of each server.
    ports: Vec<(u16, u16, u16)>,
    children: Vec<Option<Child>>,
    /// Lines added to every server's config (authorization, TLS, operator mode).
    extra: String,
}

impl NatsServers {
    /// Starts `n` servers (a cluster when `n > 1`) with their stores and logs in `dir`; the
    /// client port of the first is `port` when given. Does not wait for them: see
    /// [`Self::wait_healthy`].
    pub fn start(dir: &Path, n: usize, port: Option<u16>) -> anyhow::Result<Self> {
        Self::start_with(dir, n, port, "")
    }

    /// [`Self::start`] with `extra` lines in every server's config (an `authorization` block,
    /// `tls`, operator mode).
    pub fn start_with(
        dir: &Path,
        n: usize,
        port: Option<u16>,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let binary = binary().context("nats-server is not installed")?;
        let ports = (0..n)
            .map(|i| {
                let client = match (i, port) {
                    (0, Some(p)) => p,
                    _ => free_port(),
                };
                (client, free_port(), free_port())
            })
            .collect();
        let mut s = Self {
            dir: dir.to_owned(),
            binary,
            ports,
            children: (0..n).map(|_| None).collect(),
            extra: extra.to_owned(),
        };
        for i in 0..n {
            s.spawn(i)?;
        }
        Ok(s)
    }

    /// Starts server `i` (again, with its store), killing it first if it runs.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let (client, cluster, http) = self.ports[i];
        let store = self.dir.join(format!("n{i}"));
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n",
            store.display(),
        );
        if self.ports.len() > 1 {
            let routes: Vec<String> = self
                .ports
                .iter()
                .map(|(_, c, _)| format!("nats-route://127.0.0.1:{c}"))
                .collect();
            conf += &format!(
                "cluster {{\n  name: sitewatch-test\n  listen: 127.0.0.1:{cluster}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            );
        }
        conf += &self.extra;
        let path = self.dir.join(format!("n{i}.conf"));
        std::fs::write(&path, conf)?;
        let log = std::fs::File::create(self.dir.join(format!("nats-n{i}.log")))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting nats-server")?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Waits until server `i` says it is healthy (JetStream has a meta leader and is current).
    pub fn wait_healthy(&self, i: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let addr = format!("127.0.0.1:{}", self.ports[i].2);
        loop {
            if let Ok(mut tcp) = std::net::TcpStream::connect(&addr) {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = tcp.write_all(
                    b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut reply = String::new();
                let _ = tcp.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "nats-server n{i} not healthy within {within:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running server is healthy.
    pub fn wait_all_healthy(&self, within: Duration) -> anyhow::Result<()> {
        for i in 0..self.children.len() {
            if self.children[i].is_some() {
                self.wait_healthy(i, within)?;
            }
        }
        Ok(())
    }

    /// The client URL of every server.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|(c, _, _)| format!("nats://127.0.0.1:{c}"))
            .collect()
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every server's log.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for i in 0..self.ports.len() {
            text += &std::fs::read_to_string(self.dir.join(format!("nats-n{i}.log")))
                .unwrap_or_default();
        }
        text
    }
}

impl Drop for NatsServers {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
