//! tmux as a terminal for tests: the binary runs in a detached session of a given size, on a
//! server of the test's own (its socket is private), and the pane is read back as text.

use std::path::Path;
use std::process::Command;

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Whether tmux is installed; under CI it must be.
    pub fn available() -> bool {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            crate::support::skip("tmux", "install it with `apt-get install tmux`");
        }
        ok
    }

    /// Runs `script` (a shell command line) in `dir`, in a `width` × `height` pane, without
    /// colours.
    pub fn start(name: &str, dir: &Path, script: &str, width: u16, height: u16) -> Self {
        let tmux = Self {
            socket: format!("sitewatch-{name}-{}", std::process::id()),
        };
        let started = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "sw", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(format!("cd {} && {script}", dir.display()))
            .env("NO_COLOR", "1")
            .status()
            .unwrap();
        assert!(started.success());
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    /// The visible pane, one string per row.
    pub fn screen(&self) -> String {
        self.capture(&[])
    }

    /// The pane with its scrollback (up to 5,000 lines) above it.
    pub fn with_scrollback(&self) -> String {
        self.capture(&["-S", "-5000"])
    }

    fn capture(&self, extra: &[&str]) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "sw"])
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names, e.g. `v`, `Enter`, `C-c`).
    pub fn send_keys(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "sw"])
            .args(keys)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Resizes the window (and so the pane) to `width` × `height`.
    pub fn resize(&self, width: u16, height: u16) {
        let ok = self
            .cmd()
            .args(["resize-window", "-t", "sw", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}
