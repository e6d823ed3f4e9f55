//! A small disk for the tests: a tmpfs mounted for one test (root only), and a way to fill it.

use std::path::Path;
use std::process::Command;

/// A small tmpfs mounted for the test (root only); unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = nix::unistd::Uid::effective().is_root()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            crate::support::skip("root, to mount a tmpfs", "run the tests as root (CI does)");
            return None;
        }
        Some(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the disk with a file, leaving about `leave` bytes.
pub fn fill(path: &Path, leave: u64) {
    let stat = nix::sys::statvfs::statvfs(path).unwrap();
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let _ = std::fs::write(
        path.join("filler"),
        vec![0u8; free.saturating_sub(leave) as usize],
    );
}
