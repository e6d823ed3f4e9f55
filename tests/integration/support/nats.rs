//! Real NATS servers with JetStream for the tests (xtask's [`xtask::nats::NatsServers`]), in a
//! temp dir; a missing `nats-server` skips the test (fails it under CI).

use std::time::Duration;
use xtask::nats::NatsServers;

pub struct NatsCluster {
    servers: NatsServers,
    _dir: tempfile::TempDir,
}

fn skip() {
    crate::support::skip(
        "nats-server",
        "install it with `apt-get install nats-server`",
    );
}

impl NatsCluster {
    /// Three servers in one cluster, each healthy (a JetStream meta leader) when this returns.
    pub async fn start() -> Option<Self> {
        Self::start_n(3, None).await
    }

    /// One server alone on `port`.
    pub async fn single_on(port: u16) -> Option<Self> {
        Self::start_n(1, Some(port)).await
    }

    /// One server whose config has `extra` lines (authorization, TLS, operator mode).
    pub async fn single_with(extra: &str) -> Option<Self> {
        Self::start_with(1, None, extra).await
    }

    async fn start_n(n: usize, port: Option<u16>) -> Option<Self> {
        Self::start_with(n, port, "").await
    }

    async fn start_with(n: usize, port: Option<u16>, extra: &str) -> Option<Self> {
        xtask::nats::binary().or_else(|| {
            skip();
            None
        })?;
        let dir = tempfile::tempdir().unwrap();
        let servers = NatsServers::start_with(dir.path(), n, port, extra).unwrap();
        let c = Self { servers, _dir: dir };
        c.wait_healthy().await;
        Some(c)
    }

    async fn wait_healthy(&self) {
        let within = Duration::from_secs(30);
        tokio::task::block_in_place(|| self.servers.wait_all_healthy(within)).unwrap();
    }

    pub fn urls(&self) -> Vec<String> {
        self.servers.urls()
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.servers.kill(i);
    }

    /// Starts server `i` again (with its store) and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.servers.restart(i).unwrap();
        self.wait_healthy().await;
    }
}
