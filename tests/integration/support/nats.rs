//! A real 3-server NATS cluster with JetStream (Debian's `nats-server`) on free loopback ports,
//! each server killable and restartable. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NatsCluster {
    dir: tempfile::TempDir,
    /// Client, cluster and monitoring port of each server.
    ports: Vec<(u16, u16, u16)>,
    children: Vec<Option<Child>>,
    binary: PathBuf,
}

fn find() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

impl NatsCluster {
    /// Three servers in one cluster, JetStream on; `None` (the test is skipped) without
    /// `nats-server`. Waits until every server reports healthy (a JetStream meta leader).
    pub async fn start() -> Option<Self> {
        let Some(binary) = find() else {
            crate::support::skip(
                "nats-server",
                "install it with `apt-get install nats-server`",
            );
            return None;
        };
        let ports = (0..3)
            .map(|_| {
                (
                    crate::support::closed_port(),
                    crate::support::closed_port(),
                    crate::support::closed_port(),
                )
            })
            .collect();
        let mut c = Self {
            dir: tempfile::tempdir().unwrap(),
            ports,
            children: vec![None, None, None],
            binary,
        };
        for i in 0..3 {
            c.spawn(i);
        }
        for i in 0..3 {
            c.wait_healthy(i, Duration::from_secs(30)).await;
        }
        Some(c)
    }

    /// One server with JetStream on `port`, alone (not clustered); `None` without `nats-server`.
    pub async fn single_on(port: u16) -> Option<Self> {
        let Some(binary) = find() else {
            crate::support::skip(
                "nats-server",
                "install it with `apt-get install nats-server`",
            );
            return None;
        };
        let mut c = Self {
            dir: tempfile::tempdir().unwrap(),
            ports: vec![(port, 0, crate::support::closed_port())],
            children: vec![None],
            binary,
        };
        c.spawn(0);
        c.wait_healthy(0, Duration::from_secs(30)).await;
        Some(c)
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .ports
            .iter()
            .map(|(_, cl, _)| format!("nats-route://127.0.0.1:{cl}"))
            .collect();
        let (client, cluster, http) = self.ports[i];
        let store = self.dir.path().join(format!("n{i}"));
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n",
            store.display(),
        );
        if self.ports.len() > 1 {
            conf += &format!(
                "cluster {{\n  name: sitewatch-test\n  listen: 127.0.0.1:{cluster}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            );
        }
        let path = self.dir.path().join(format!("n{i}.conf"));
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("nats-n{i}.log"))).unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.children[i] = Some(child);
    }

    async fn wait_healthy(&self, i: usize, within: Duration) {
        let url = format!("http://127.0.0.1:{}/healthz", self.ports[i].2);
        let client = crate::support::http_client();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server n{i} not healthy within {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URLs of every server.
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

    /// Starts server `i` again (with its store) and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy(i, Duration::from_secs(30)).await;
    }

    pub fn logs(&self) -> String {
        crate::support::read_logs(self.dir.path(), "nats-")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
