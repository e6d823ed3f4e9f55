//! `cargo xtask build-plugins`: the Rust plugin workspace and every other language's plugins.
//! The integration tests build them the same way on first use ([`ensure_built`]).

use crate::languages::{self, Language, Missing};
use crate::{cargo, root, run};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

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

/// Copies `from` to `to` atomically (see [`crate::write_atomically`]).
fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    crate::write_atomically(to, &bytes)
}

/// A built example plugin and the folder of its sources.
pub struct Built {
    pub wasm: PathBuf,
    pub source: PathBuf,
}

/// What a build made: the example plugins (not test plugins), and the languages it skipped for
/// a missing toolchain.
pub struct Build {
    pub examples: Vec<Built>,
    pub skipped: Vec<(Language, Missing)>,
}

/// How the plugin build runs the host binary, to validate what it built.
#[derive(Debug, Clone)]
pub enum Host {
    /// `cargo run --package sitewatch` in the workspace (`cargo xtask`).
    CargoRun,
    /// A binary already built: the tests pass their own `CARGO_BIN_EXE_sitewatch`.
    Binary(PathBuf),
}

impl Host {
    pub fn command(&self) -> Command {
        match self {
            Host::CargoRun => sitewatch(),
            Host::Binary(path) => {
                let mut cmd = Command::new(path);
                cmd.env("SITEWATCH_PLUGIN_CACHE", plugin_cache());
                cmd
            }
        }
    }
}

/// The compiled-plugin cache the validation, the cases, the templates and the integration tests
/// share (`$SITEWATCH_PLUGIN_CACHE`, else `target/tmp/plugin-cache`, the tests' own default), so
/// each interpreter-sized component is compiled once per build, not once per use.
pub fn plugin_cache() -> std::ffi::OsString {
    std::env::var_os("SITEWATCH_PLUGIN_CACHE")
        .unwrap_or_else(|| root().join("target/tmp/plugin-cache").into())
}

/// Builds every plugin: the Rust workspace, then each other language whose toolchain is present
/// (or, with `all_languages`, installed first). Validates the examples with `host`.
pub fn build(all_languages: bool, host: &Host) -> anyhow::Result<Build> {
    let _lock = lock()?;
    build_locked(all_languages, host)
}

/// Builds the plugins unless the last build's inputs and outputs are unchanged; what the tests
/// call before using a plugin, so a fresh clone's `cargo test` needs no `cargo xtask` first.
/// Languages whose toolchain is missing are skipped, as `build` skips them.
///
/// Called from inside `cargo test`, this never runs cargo on the root workspace: `host` is the
/// test's own binary, and the Rust plugins are their own workspace with their own target dir,
/// so no lock the running `cargo test` holds is ever waited for. (Measured with cargo 1.95:
/// `cargo test` releases the build directory's lock before it runs the test binaries, so a
/// nested `cargo run -p xtask -- build-plugins` would finish rather than deadlock. It would
/// still compile xtask's binary on first use, and its validation's `cargo run -p sitewatch`
/// builds the host again whenever the outer run's profile or flags differ, as with
/// `cargo test --release`; and it would lean on a locking detail cargo does not promise.)
pub fn ensure_built(host: &Host) -> anyhow::Result<()> {
    let _lock = lock()?;
    let stamp = stamp();
    let current = format!("{}{}", sources_fingerprint(), outputs_fingerprint());
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == current) {
        return Ok(());
    }
    println!("== the plugins are missing or out of date: building them");
    build_locked(false, host).map(drop)
}

/// Where a complete build notes what it was built from and what it made.
fn stamp() -> PathBuf {
    root().join("target/plugins.stamp")
}

/// Takes the lock that makes plugin builds one at a time, across processes (`cargo xtask`, test
/// binaries running side by side) and across the threads of one (each opens the file itself;
/// `flock` locks belong to the open file). The kernel releases it when the holder exits, however
/// it exits.
fn lock() -> anyhow::Result<std::fs::File> {
    let path = root().join("target/plugins.lock");
    std::fs::create_dir_all(path.parent().context("target has a parent")?)?;
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            println!(
                "== waiting for another build of the plugins (it holds {})",
                path.display()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// Each file's path (relative to the root), size and modification time, one per line, for
/// every file under `dirs` except build output and hidden files.
fn listing(dirs: &[&str]) -> String {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || ["target", "node_modules", "__pycache__"].contains(&&*name)
            {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                walk(&path, out);
            } else {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .unwrap_or_default();
                let shown = path.strip_prefix(root()).unwrap_or(&path);
                out.push(format!(
                    "{}\t{}\t{}",
                    shown.display(),
                    meta.len(),
                    modified.as_nanos()
                ));
            }
        }
    }
    let mut lines = Vec::new();
    for dir in dirs {
        walk(&root().join(dir), &mut lines);
    }
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// What a build reads: the plugin sources and the WIT.
fn sources_fingerprint() -> String {
    listing(&["plugins", "wit"])
}

/// What a build made, and which toolchains it had (installing one calls for a build).
fn outputs_fingerprint() -> String {
    let mut text = listing(&["target/plugins", "target/test-plugins"]);
    for lang in languages::ALL {
        let state = match lang.missing_toolchain() {
            None => "present".to_owned(),
            Some(m) => format!("missing {}", m.what),
        };
        text.push_str(&format!("toolchain {}: {state}\n", lang.dir()));
    }
    text
}

fn build_locked(all_languages: bool, host: &Host) -> anyhow::Result<Build> {
    // Read before building, so a source edited during the build calls for another. An
    // interrupted or failed build leaves no stamp.
    let inputs = sources_fingerprint();
    let _ = std::fs::remove_file(stamp());
    let mut examples = build_rust()?;
    let mut skipped = Vec::new();
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
                skipped.push((lang, missing));
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
            let wit = languages::wit_of(&src)?;
            let started = std::time::Instant::now();
            lang.build(&src, world, &wit, &wasm)
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
    let mut inspect = host.command();
    inspect
        .args(["plugin", "inspect"])
        .args(examples.iter().map(|b| &b.wasm));
    if matches!(host, Host::Binary(_)) {
        // Under the tests, the report would land among their output; a failure still shows.
        inspect.stdout(std::process::Stdio::null());
    }
    run(&mut inspect)?;
    let stamp = stamp();
    std::fs::write(&stamp, inputs + &outputs_fingerprint())
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Build { examples, skipped })
}

/// `cargo run` of the host binary, quietly.
pub fn sitewatch() -> Command {
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["run", "--quiet", "--package", "sitewatch", "--"])
        .env("SITEWATCH_PLUGIN_CACHE", plugin_cache());
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
    // The plugin workspace's own target dir, named so that a `CARGO_TARGET_DIR` meant for the
    // host workspace neither moves the artifacts nor shares a build lock with it.
    let target_dir = plugins_dir.join("target");
    run(cargo()
        .current_dir(&plugins_dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir))?;
    let built = target_dir.join(TARGET).join("release");
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
