//! `cargo xtask build-plugins`.

use crate::{cargo, root, run};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Installs the wasm target when rustup lacks it.
fn ensure_target() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            println!("== installing the {TARGET} target");
            run(Command::new("rustup").args(["target", "add", TARGET]))
        }
        Err(e) => bail!("cannot run rustup ({e}); install the {TARGET} target for your toolchain"),
    }
}

/// The plugin crates: (package name, manifest dir).
fn members() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root().join("plugins/Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = meta["packages"]
        .as_array()
        .context("no packages in cargo metadata")?;
    Ok(packages
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            let dir = Path::new(p["manifest_path"].as_str()?).parent()?.to_owned();
            Some((name, dir))
        })
        .collect())
}

/// Copies `from` to `to` through a temporary file and a rename, so a running sitewatch never
/// sees a half-written plugin.
fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let dir = to.parent().context("destination has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
    Ok(())
}

pub fn build() -> anyhow::Result<()> {
    ensure_target()?;
    let plugins_dir = root().join("plugins");
    println!("== building plugins for {TARGET}");
    run(cargo()
        .current_dir(&plugins_dir)
        .args(["build", "--release", "--target", TARGET]))?;
    let built = plugins_dir.join("target").join(TARGET).join("release");
    let mut examples = Vec::new();
    for (name, dir) in members()? {
        let artifact = built.join(format!("{}.wasm", name.replace('-', "_")));
        let is_test = dir.components().any(|c| c.as_os_str() == "test-plugins");
        let dest_dir = root()
            .join("target")
            .join(if is_test { "test-plugins" } else { "plugins" });
        let dest = dest_dir.join(format!("{name}.wasm"));
        install(&artifact, &dest)?;
        println!("   {} -> {}", name, dest.display());
        if !is_test {
            examples.push(dest);
        }
    }
    println!("== validating with the host's loader");
    run(cargo()
        .current_dir(root())
        .args([
            "run",
            "--quiet",
            "--package",
            "sitewatch",
            "--",
            "plugin",
            "inspect",
        ])
        .args(&examples))
}
