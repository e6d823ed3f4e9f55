//! A real DNS server (Debian's dnsmasq, without its service) on a free loopback port, serving a
//! test zone from a hosts file the test rewrites (`set_hosts` reloads it with SIGHUP), with
//! NXDOMAIN for other names under `example.test` and an MX record. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REMEDY: &str = "install it with `apt-get install dnsmasq-base`";

pub struct Dnsmasq {
    pub port: u16,
    hosts: PathBuf,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

fn binary() -> Option<&'static str> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

impl Dnsmasq {
    /// Serves `hosts` (lines of `address name`) under `example.test`, and
    /// `example.test MX 10 mail.example.test`. `None` (after `support::skip`) without dnsmasq.
    pub async fn start(hosts: &str) -> Option<Self> {
        let Some(bin) = binary() else {
            crate::support::skip("dnsmasq", REMEDY);
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).unwrap();
        for _ in 0..5 {
            let port = free_udp_port();
            let child = Command::new(bin)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--pid-file=",
                    "--local=/example.test/",
                    "--mx-host=example.test,mail.example.test,10",
                    "--user=root",
                ])
                .arg(format!("--addn-hosts={}", file.display()))
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq starts");
            // Dropped (killed) when it does not answer: the port was taken meanwhile.
            let mut server = Self {
                port,
                hosts: file.clone(),
                child,
                _dir: None,
            };
            if server.answers().await {
                server._dir = Some(dir);
                return Some(server);
            }
        }
        panic!("dnsmasq did not answer on any of five ports");
    }

    /// Replaces the served hosts and has dnsmasq read them again.
    pub async fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Whether it answers a query within a couple of seconds.
    async fn answers(&self) -> bool {
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e',
            4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
        ];
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..40 {
            let _ = socket.send_to(&query, ("127.0.0.1", self.port)).await;
            let mut buf = [0u8; 512];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(50), socket.recv_from(&mut buf)).await
            {
                return true;
            }
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port on 127.0.0.1 where nothing listens (bound, then released).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
