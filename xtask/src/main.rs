//! Project tasks: `cargo xtask <task>`. Run `cargo xtask help` for the list.

mod plugins;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  build-plugins   build every plugin in plugins/ for wasm32-wasip2 (installing the target when
                  missing), write them atomically to target/plugins/ (test plugins to
                  target/test-plugins/) and validate each with the host's loader
  test [ARGS..]   build the plugins, then run every test: the plugins' unit tests and the
                  workspace's (what CI runs); ARGS go to `cargo test`
  bench [PART..]  run the benchmarks in release mode (plugins, storage, views; all by default);
                  each prints a table and writes target/bench/PART.json
  help            this text";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("build-plugins") => plugins::build(),
        Some("test") => test(&rest),
        Some("bench") => bench(&rest),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
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

fn test(extra: &[String]) -> anyhow::Result<()> {
    plugins::build()?;
    println!("== plugin unit tests");
    run(cargo()
        .current_dir(root().join("plugins"))
        .args(["test", "--quiet"]))?;
    println!("== workspace tests");
    run(cargo()
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(extra))
}

fn bench(parts: &[String]) -> anyhow::Result<()> {
    if parts.is_empty() || parts.iter().any(|p| p == "plugins") {
        plugins::build()?;
    }
    run(cargo()
        .current_dir(root())
        .args([
            "bench",
            "--package",
            "sitewatch",
            "--bench",
            "sitewatch",
            "--",
        ])
        .args(parts))
}
