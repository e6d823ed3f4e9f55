//! The project's tasks, as a library: `cargo xtask` (`main.rs`) runs them, and the integration
//! tests call [`plugins::ensure_built`] so that a plain `cargo test` builds the plugins it needs.

pub mod languages;
pub mod nats;
pub mod plugins;
pub mod scaffold;
pub mod skips;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the nearest folder above the package cargo runs (`cargo xtask`, `cargo
/// test`, `cargo bench` name it in `CARGO_MANIFEST_DIR` at run time) that holds `xtask/` and
/// `wit/`, else the parent of this crate as compiled. The run-time name comes first because checkouts of this repository that share one
/// `CARGO_TARGET_DIR` share this library's build too (cargo hashes a path package relative to its
/// workspace, so every checkout's xtask is the same unit): the path compiled in may be another
/// checkout's, and the tests would then build that checkout's plugins.
pub fn root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned();
    std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|dir| {
            Path::new(&dir)
                .ancestors()
                .skip(1)
                .find(|root| root.join("xtask/Cargo.toml").is_file() && root.join("wit").is_dir())
                .map(Path::to_owned)
        })
        .unwrap_or(compiled)
}

pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` and fails with its description when it does not succeed.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Writes `bytes` to `to` through a temporary file and a rename, so a running sitewatch never
/// sees a half-written plugin.
pub fn write_atomically(to: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = to.parent().context("destination has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
    Ok(())
}
