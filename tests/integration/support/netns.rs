//! A host that answers nothing, made for the test: a network namespace joined to this one by a
//! veth pair (`ip`, from iproute2; needs root), its address reachable over the pair, and its
//! echo replies switched off or on (`net.ipv4.icmp_echo_ignore_all` inside the namespace only).
//! Removed when dropped.

use std::process::{Command, Stdio};

pub struct QuietHost {
    ns: String,
    /// The namespace's address.
    pub addr: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl QuietHost {
    /// `None` (after `support::skip`) where namespaces cannot be made (not root, no iproute2).
    pub fn start() -> Option<Self> {
        let n = std::process::id() % 200 + fastrand::u32(0..50);
        let ns = format!("swtest{n}");
        let (host_if, ns_if) = (format!("swh{n}"), format!("swn{n}"));
        let (subnet_a, subnet_b) = (10 + n / 250, n % 250);
        let host_addr = format!("10.{subnet_a}.{subnet_b}.1");
        let addr = format!("10.{subnet_a}.{subnet_b}.2");
        let _ = ip(&["netns", "del", &ns]);
        let made = ip(&["netns", "add", &ns])
            && ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ])
            && ip(&["link", "set", &ns_if, "netns", &ns])
            && ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_if])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                &ns_if,
            ])
            && ip(&["-n", &ns, "link", "set", &ns_if, "up"])
            && ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let host = Self { ns, addr };
        if !made {
            crate::support::skip(
                "network namespaces (root and iproute2's `ip`)",
                "run the tests as root with iproute2 installed",
            );
            return None;
        }
        host.answer(false);
        Some(host)
    }

    /// Whether the host answers echo requests.
    pub fn answer(&self, yes: bool) {
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.ns, "sysctl", "-q", "-w"])
            .arg(format!(
                "net.ipv4.icmp_echo_ignore_all={}",
                if yes { 0 } else { 1 }
            ))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "sysctl in the namespace {}", self.ns);
    }
}

impl Drop for QuietHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so the other end.
        let _ = ip(&["netns", "del", &self.ns]);
    }
}
