//! Project tasks: `cargo xtask <task>`. Run `cargo xtask help` for the list.

use anyhow::bail;
use xtask::plugins::{self, Host};
use xtask::{cargo, root, run, scaffold, skips};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  build-plugins [--all-languages]
                  build every plugin: the Rust ones in plugins/ for wasm32-wasip2 (installing
                  the target when missing), then the C, Python and JS ones in plugins/<lang>/
                  whose toolchain is present (--all-languages installs missing toolchains with
                  apt-get, pip and npm first); write them atomically to target/plugins/ (test
                  plugins to target/test-plugins/) and validate each with the host's loader
  test [--all-languages] [ARGS..]
                  build the plugins, run their unit tests and every plugin's tests.json cases,
                  check that a freshly scaffolded plugin of each kind and language builds and
                  passes its own test (check-templates), then run the workspace's tests (what
                  CI runs); ARGS go to `cargo test`; ends with a line for each test skipped for
                  something not installed
  new-plugin <name> [--kind check|scenario] --lang rust|c|python|js
                  scaffold a plugin from a template that builds and passes its own test: a
                  check (the default) with its tests.json, or a one-step scenario (see
                  docs/PLUGINS.md)
  check-templates scaffold a check and a scenario in each language whose toolchain is present
                  into target/scaffold-check/, build them and run their own tests (a check's
                  tests.json; a scenario's runs against a loopback server, up on 200, down on
                  503)
  bench [PART..]  run the benchmarks in release mode (plugins, storage, history, views, scale, peers,
                  accuracy, alerts, notify, serve, cluster, push; all by default); each prints a table and writes
                  target/bench/PART.json
  help            this text";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let mut rest: Vec<String> = args.collect();
    let all_languages = take_flag(&mut rest, "--all-languages");
    match task.as_deref() {
        Some("build-plugins") => plugins::build(all_languages, &Host::CargoRun).map(drop),
        Some("test") => test(all_languages, &rest),
        Some("bench") => bench(&rest),
        Some("new-plugin") => scaffold::new_plugin(&rest),
        Some("check-templates") => scaffold::check_templates(),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// Removes `flag` from `args`; true when it was there.
fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

fn test(all_languages: bool, extra: &[String]) -> anyhow::Result<()> {
    let skips = skips::file();
    let _ = std::fs::remove_file(&skips);
    let mut timer = Timer::start();
    let built = plugins::build(all_languages, &Host::CargoRun)?;
    timer.lap("plugin build");
    // A language left out of the build also leaves out its cases and its template check below.
    for (lang, missing) in &built.skipped {
        skips::append(
            &skips,
            &skips::Skip {
                test: format!(
                    "xtask: the {} plugins' build, tests.json cases and template",
                    lang.dir()
                ),
                needs: missing.what.clone(),
                remedy: format!("install it with `{}`", missing.install),
            },
        )?;
    }
    println!("== plugin unit tests (Rust)");
    run(cargo()
        .current_dir(root().join("plugins"))
        .args(["test", "--quiet"]))?;
    timer.lap("plugin unit tests");
    plugins::test_cases(&built.examples)?;
    timer.lap("plugin test cases");
    scaffold::check_templates()?;
    timer.lap("templates");
    println!("== workspace tests");
    let result = run(cargo()
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(extra)
        .env(skips::ENV, &skips));
    timer.lap("workspace build and tests");
    // After the results, failed or not: a passing test's skip message was hidden by libtest.
    println!("{}", skips::summary(&skips::read(&skips)));
    println!("{timer}");
    result
}

/// How long each part of `test` took, shown last, where a CI log's tail keeps it.
struct Timer {
    laps: Vec<(&'static str, std::time::Duration)>,
    last: std::time::Instant,
}

impl Timer {
    fn start() -> Self {
        Self {
            laps: Vec::new(),
            last: std::time::Instant::now(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "== xtask test, time per part")?;
        for (name, took) in &self.laps {
            write!(f, "\n   {:>5.0} s  {name}", took.as_secs_f64())?;
        }
        Ok(())
    }
}

fn bench(parts: &[String]) -> anyhow::Result<()> {
    if parts.is_empty() || parts.iter().any(|p| p == "plugins") {
        plugins::build(false, &Host::CargoRun)?;
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
