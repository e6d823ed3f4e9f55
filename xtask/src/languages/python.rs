//! Python plugins: `componentize-py` (PyPI) bundles CPython, the plugin's module `app.py` (with
//! any other `.py` files beside it) and bindings generated from the plugin's WIT version
//! (`wit/<version>/`) into one component.

use super::{Missing, World};
use crate::run;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// The componentize-py release the examples are built and tested with.
const VERSION: &str = "0.25.1";
const PROGRAM: &str = "componentize-py";

fn installed_version() -> Option<String> {
    let out = Command::new(PROGRAM).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // "componentize-py 0.25.1"
    text.split_whitespace().last().map(str::to_owned)
}

pub fn missing_toolchain() -> Option<Missing> {
    match installed_version() {
        Some(_) => None,
        None => Some(Missing {
            what: "componentize-py".into(),
            install: format!("pip install componentize-py=={VERSION}"),
        }),
    }
}

/// Whether the installed componentize-py is the pinned release.
pub fn is_pinned() -> bool {
    installed_version().as_deref() == Some(VERSION)
}

pub fn install_toolchain() -> anyhow::Result<()> {
    println!("== installing componentize-py {VERSION} with pip");
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        &format!("componentize-py=={VERSION}"),
    ]))
}

/// The component built from `src`.
pub fn build(src: &Path, world: World, wit: &Path, scratch: &Path) -> anyhow::Result<Vec<u8>> {
    if !src.join("app.py").is_file() {
        bail!("{} has no app.py", src.display());
    }
    // componentize-py leaves __pycache__ beside the modules it imports: build from a copy.
    let stage = scratch.join("src");
    std::fs::create_dir_all(&stage)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "py") {
            std::fs::copy(&path, stage.join(path.file_name().unwrap_or_default()))?;
        }
    }
    let built = scratch.join("component.wasm");
    run(Command::new(PROGRAM)
        .arg("-d")
        .arg(wit)
        .args(["-w", world.name(), "componentize", "app", "-p"])
        .arg(&stage)
        .arg("-o")
        .arg(&built))?;
    std::fs::read(&built).with_context(|| format!("reading {}", built.display()))
}
