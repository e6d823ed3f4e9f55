//! JavaScript plugins: `componentize-js` (npm `@bytecodealliance/componentize-js`, the engine
//! behind `jco componentize`) embeds the plugin's `plugin.js` in the StarlingMonkey engine. The
//! tool is installed under `target/toolchains/js`, not globally.

use super::{Missing, World};
use crate::{root, run};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-js release the examples are built and tested with.
const VERSION: &str = "0.23.0";
const PACKAGE: &str = "@bytecodealliance/componentize-js";

fn prefix() -> PathBuf {
    root().join("target/toolchains/js")
}

fn program() -> PathBuf {
    prefix().join("node_modules/.bin/componentize-js")
}

fn installed_version() -> Option<String> {
    let manifest = prefix()
        .join("node_modules")
        .join(PACKAGE)
        .join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

pub fn missing_toolchain() -> Option<Missing> {
    if program().exists()
        && installed_version().is_some()
        && super::runs(Path::new("node"), &["--version"])
    {
        None
    } else {
        Some(Missing {
            what: "Node.js and componentize-js".into(),
            install: format!("npm install --prefix target/toolchains/js {PACKAGE}@{VERSION}"),
        })
    }
}

/// Whether the installed componentize-js is the pinned release.
pub fn is_pinned() -> bool {
    installed_version().as_deref() == Some(VERSION)
}

pub fn install_toolchain() -> anyhow::Result<()> {
    println!("== installing {PACKAGE}@{VERSION} with npm into target/toolchains/js");
    std::fs::create_dir_all(prefix())?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(prefix())
        .arg(format!("{PACKAGE}@{VERSION}")))
}

/// The component built from `src`.
pub fn build(src: &Path, world: World, wit: &Path, scratch: &Path) -> anyhow::Result<Vec<u8>> {
    let entry = src.join("plugin.js");
    if !entry.is_file() {
        bail!("{} has no plugin.js", src.display());
    }
    let built = scratch.join("component.wasm");
    // Without the http and fetch-event features the engine imports no wasi:http, which the host
    // does not link.
    run(Command::new(program())
        .arg(&entry)
        .arg("--wit")
        .arg(wit)
        .args(["--world-name", world.name()])
        .args(["--disable", "http", "fetch-event"])
        .arg("-o")
        .arg(&built))?;
    std::fs::read(&built).with_context(|| format!("reading {}", built.display()))
}
