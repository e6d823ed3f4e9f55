//! `cargo xtask build-plugins`: the Rust plugin workspace and every other language's plugins.

use crate::languages;
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

/// Copies `from` to `to` atomically (see [`write_atomically`]).
fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomically(to, &bytes)
}

/// A built example plugin and the folder of its sources.
pub struct Built {
    pub wasm: PathBuf,
    pub source: PathBuf,
}

/// Builds every plugin: the Rust workspace, then each other language whose toolchain is present
/// (or, with `all_languages`, installed first). Returns the example plugins (not test plugins).
pub fn build(all_languages: bool) -> anyhow::Result<Vec<Built>> {
    let mut examples = build_rust()?;
    for lang in languages::ALL {
        let sources = lang.plugins()?;
        if sources.is_empty() {
            continue;
        }
        let missing = lang.missing_toolchain();
        if all_languages && missing.is_none() && !lang.is_pinned() {
            lang.install_toolchain()?;
        } else if let Some(missing) = missing {
            if !all_languages {
                println!("== skipped: the {} plugins need {missing}", lang.dir());
                continue;
            }
            lang.install_toolchain()?;
            if let Some(still) = lang.missing_toolchain() {
                bail!(
                    "installed the {} toolchain, but still missing {still}",
                    lang.dir()
                );
            }
        }
        println!("== building the {} plugins", lang.dir());
        for src in sources {
            let name = src.file_name().unwrap_or_default().to_string_lossy();
            let wasm = root()
                .join("target/plugins")
                .join(format!("{name}-{}.wasm", lang.dir()));
            let world = languages::world_of(&src)?;
            let started = std::time::Instant::now();
            lang.build(&src, world, &wasm)
                .with_context(|| format!("building {}", src.display()))?;
            println!(
                "   {name} ({}) -> {} in {:.1} s",
                lang.dir(),
                wasm.display(),
                started.elapsed().as_secs_f64()
            );
            examples.push(Built { wasm, source: src });
        }
    }
    println!("== validating with the host's loader");
    run(sitewatch()
        .args(["plugin", "inspect"])
        .args(examples.iter().map(|b| &b.wasm)))?;
    Ok(examples)
}

/// `cargo run` of the host binary, quietly.
pub fn sitewatch() -> Command {
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["run", "--quiet", "--package", "sitewatch", "--"]);
    cmd
}

/// Runs each example's `tests.json` (cases for `sitewatch plugin test --cases`) on its build.
pub fn test_cases(built: &[Built]) -> anyhow::Result<()> {
    println!("== plugin test cases (tests.json), every language");
    for b in built {
        let cases = b.source.join("tests.json");
        if !cases.is_file() {
            continue;
        }
        run_cases(&b.wasm, &cases)?;
    }
    Ok(())
}

/// `sitewatch plugin test WASM --cases CASES`, with limits roomy enough for the interpreters.
pub fn run_cases(wasm: &Path, cases: &Path) -> anyhow::Result<()> {
    run(sitewatch()
        .args(["plugin", "test"])
        .arg(wasm)
        .arg("--cases")
        .arg(cases)
        .args(["--time-limit", "2s", "--memory-limit-mib", "256"]))
}

fn build_rust() -> anyhow::Result<Vec<Built>> {
    ensure_target()?;
    let plugins_dir = root().join("plugins");
    println!("== building the Rust plugins for {TARGET}");
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
            examples.push(Built {
                wasm: dest,
                source: dir,
            });
        }
    }
    Ok(examples)
}
