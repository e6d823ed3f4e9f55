//! `cargo xtask new-plugin <name> [--kind check|scenario] --lang rust|c|python|js`: a new plugin
//! from a template that builds and passes its own test straight away: a check's `tests.json`, or
//! for a scenario one run against a loopback server ([`scenario_passes_its_own_test`]).
//! `cargo xtask test` scaffolds one of each kind and language into `target/scaffold-check/` and
//! builds and tests it, so the templates cannot rot.

use crate::languages::{self, Language, World};
use crate::{cargo, root, run};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The language a plugin is written in: Rust (the plugin workspace) or one of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Rust,
    Other(Language),
}

/// What a new plugin is: a check (world `checker`) or a scenario (world `scenario`, from WIT
/// 0.4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Check,
    Scenario,
}

impl Kind {
    fn parse(name: &str) -> anyhow::Result<Kind> {
        match name {
            "check" => Ok(Kind::Check),
            "scenario" => Ok(Kind::Scenario),
            _ => bail!("unknown kind `{name}`: use check or scenario"),
        }
    }

    fn world(self) -> World {
        match self {
            Kind::Check => World::Checker,
            Kind::Scenario => World::Scenario,
        }
    }
}

impl Lang {
    fn parse(name: &str) -> anyhow::Result<Lang> {
        if name == "rust" {
            return Ok(Lang::Rust);
        }
        Language::parse(name)
            .map(Lang::Other)
            .with_context(|| format!("unknown language `{name}`: use rust, c, python or js"))
    }

    /// The template files: (path in the plugin folder, contents with `{{name}}` placeholders).
    fn templates(self, kind: Kind) -> &'static [(&'static str, &'static str)] {
        const TESTS: (&str, &str) = ("tests.json", include_str!("../templates/tests.json"));
        // New plugins start on the newest WIT that has their world; the Rust templates name it
        // in their bindings.
        const WIT: (&str, &str) = ("wit-version", include_str!("../templates/wit-version"));
        const SCENARIO_WIT: (&str, &str) = (
            "wit-version",
            include_str!("../templates/scenario/wit-version"),
        );
        const SCENARIO_WORLD: (&str, &str) = ("world", include_str!("../templates/scenario/world"));
        // The C scenario reads its config with the examples' JSON reader.
        const JSON_H: (&str, &str) = ("json.h", include_str!("../../plugins/c/keyword/json.h"));
        match (kind, self) {
            (Kind::Check, Lang::Rust) => &[
                ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
                TESTS,
            ],
            (Kind::Check, Lang::Other(Language::C)) => &[
                ("plugin.c", include_str!("../templates/c/plugin.c")),
                WIT,
                TESTS,
            ],
            (Kind::Check, Lang::Other(Language::Python)) => &[
                ("app.py", include_str!("../templates/python/app.py")),
                WIT,
                TESTS,
            ],
            (Kind::Check, Lang::Other(Language::Js)) => &[
                ("plugin.js", include_str!("../templates/js/plugin.js")),
                WIT,
                TESTS,
            ],
            (Kind::Scenario, Lang::Rust) => &[
                (
                    "Cargo.toml",
                    include_str!("../templates/scenario/rust/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../templates/scenario/rust/src/lib.rs"),
                ),
            ],
            (Kind::Scenario, Lang::Other(Language::C)) => &[
                ("plugin.c", include_str!("../templates/scenario/c/plugin.c")),
                JSON_H,
                SCENARIO_WIT,
                SCENARIO_WORLD,
            ],
            (Kind::Scenario, Lang::Other(Language::Python)) => &[
                (
                    "app.py",
                    include_str!("../templates/scenario/python/app.py"),
                ),
                SCENARIO_WIT,
                SCENARIO_WORLD,
            ],
            (Kind::Scenario, Lang::Other(Language::Js)) => &[
                (
                    "plugin.js",
                    include_str!("../templates/scenario/js/plugin.js"),
                ),
                SCENARIO_WIT,
                SCENARIO_WORLD,
            ],
        }
    }

    /// Where a plugin named `name` lives under `plugins`.
    fn folder(self, plugins: &Path, name: &str) -> PathBuf {
        match self {
            Lang::Rust => plugins.join(name),
            Lang::Other(l) => plugins.join(l.dir()).join(name),
        }
    }

    /// The file `cargo xtask build-plugins` builds a plugin named `name` into, from the root.
    fn built(self, name: &str) -> String {
        match self {
            Lang::Rust => format!("target/plugins/{name}.wasm"),
            Lang::Other(l) => format!("target/plugins/{name}-{}.wasm", l.dir()),
        }
    }
}

/// Plugin names: lower-case letters, digits and dashes, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 40;
    if !ok {
        bail!(
            "invalid plugin name `{name}`: use lower-case letters, digits and dashes, starting with a letter"
        );
    }
    Ok(())
}

/// The byte range of the `members` list's contents in the plugin workspace's `Cargo.toml` text:
/// from just after `members = [` to the closing `]`.
fn members_span(manifest: &str) -> anyhow::Result<(usize, usize)> {
    let start = manifest
        .find("members = [")
        .context("the plugin workspace's Cargo.toml has no `members = [` list")?
        + "members = [".len();
    let end = start
        + manifest[start..]
            .find(']')
            .context("the `members` list is not closed")?;
    Ok((start, end))
}

/// Adds `name` to the `members` list of the plugin workspace's `Cargo.toml` text.
fn add_member(manifest: &str, name: &str) -> anyhow::Result<String> {
    let (start, end) = members_span(manifest)?;
    let entry = format!("\"{name}\"");
    if manifest[start..end].contains(&entry) {
        bail!("`{name}` is already a member of the plugin workspace");
    }
    Ok(format!(
        "{}    {entry},\n{}",
        &manifest[..end],
        &manifest[end..]
    ))
}

/// Writes the template of `kind` in `lang` for `name` under `base/plugins` and, for Rust, adds
/// the crate to `base/plugins/Cargo.toml`. Returns the new folder.
fn create(base: &Path, name: &str, kind: Kind, lang: Lang) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let plugins = base.join("plugins");
    let folder = lang.folder(&plugins, name);
    if folder.exists() {
        bail!("{} already exists", folder.display());
    }
    for (file, text) in lang.templates(kind) {
        let path = folder.join(file);
        std::fs::create_dir_all(path.parent().context("a template file has a folder")?)?;
        std::fs::write(&path, text.replace("{{name}}", name))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if lang == Lang::Rust {
        let manifest = plugins.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        std::fs::write(&manifest, add_member(&text, name)?)
            .with_context(|| format!("writing {}", manifest.display()))?;
    }
    Ok(folder)
}

/// `cargo xtask new-plugin <name> [--kind check|scenario] --lang <language>`.
pub fn new_plugin(args: &[String]) -> anyhow::Result<()> {
    let usage =
        "usage: cargo xtask new-plugin <name> [--kind check|scenario] --lang rust|c|python|js";
    let mut name = None;
    let mut lang = None;
    let mut kind = Kind::Check;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lang" => lang = Some(Lang::parse(it.next().context(usage)?)?),
            "--kind" => kind = Kind::parse(it.next().context(usage)?)?,
            flag if flag.starts_with("--") => bail!("unknown option `{flag}`\n{usage}"),
            n if name.is_none() => name = Some(n.to_owned()),
            extra => bail!("unexpected argument `{extra}`\n{usage}"),
        }
    }
    let (Some(name), Some(lang)) = (name, lang) else {
        bail!("{usage}");
    };
    let folder = create(&root(), &name, kind, lang)?;
    println!("created {}", folder.display());
    let wasm = lang.built(&name);
    match kind {
        Kind::Check => println!(
            "next: edit it, then\n  cargo xtask build-plugins\n  cargo run --release -- plugin test {wasm} --cases {}/tests.json",
            folder.strip_prefix(root()).unwrap_or(&folder).display()
        ),
        Kind::Scenario => println!(
            "next: edit it, then\n  cargo xtask build-plugins\n  cargo run --release -- plugin test {wasm} --config '{{\"url\": \"https://your.site/\"}}'\n\
             (one run against the site, each step printed; docs/PLUGINS.md, \"Scenarios\")"
        ),
    }
    Ok(())
}

/// Scaffolds a plugin of each kind in each language whose toolchain is present into
/// `target/scaffold-check`, builds it and runs its own test on the build: a check's `tests.json`,
/// a scenario's run against a loopback server ([`scenario_passes_its_own_test`]).
pub fn check_templates() -> anyhow::Result<()> {
    println!("== new-plugin templates: scaffold, build and test one of each kind and language");
    let base = root().join("target/scaffold-check");
    if base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    std::fs::create_dir_all(base.join("plugins"))?;
    // A plugin workspace like the real one, with no members yet; the Rust template's bindings
    // read `../../wit/<version>`, so the WIT goes beside it.
    let manifest = std::fs::read_to_string(root().join("plugins/Cargo.toml"))?;
    let (start, end) = members_span(&manifest)?;
    let empty = format!("{}\n{}", &manifest[..start], &manifest[end..]);
    std::fs::write(base.join("plugins/Cargo.toml"), empty)?;
    std::fs::copy(
        root().join("plugins/Cargo.lock"),
        base.join("plugins/Cargo.lock"),
    )?;
    for entry in std::fs::read_dir(root().join("wit"))? {
        let version = entry?.path();
        let wit = version.join("plugin.wit");
        if wit.is_file() {
            let to = base
                .join("wit")
                .join(version.file_name().unwrap_or_default());
            std::fs::create_dir_all(&to)?;
            std::fs::copy(&wit, to.join("plugin.wit"))?;
        }
    }

    let kinds = [
        (Kind::Check, "scaffolded"),
        (Kind::Scenario, "scaffolded-scenario"),
    ];
    // The Rust templates of both kinds, in one build of their workspace.
    for (kind, name) in kinds {
        create(&base, name, kind, Lang::Rust)?;
    }
    run(cargo()
        .current_dir(base.join("plugins"))
        .env("CARGO_TARGET_DIR", root().join("plugins/target"))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]))?;
    for (kind, name) in kinds {
        let wasm = root()
            .join("plugins/target/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        own_test(kind, &wasm, &base.join("plugins").join(name))?;
    }
    for lang in languages::ALL {
        if let Some(missing) = lang.missing_toolchain() {
            println!("   skipped: the {} templates need {missing}", lang.dir());
            continue;
        }
        for (kind, name) in kinds {
            let src = create(&base, name, kind, Lang::Other(lang))?;
            let wasm = base.join(format!("{name}-{}.wasm", lang.dir()));
            lang.build(&src, kind.world(), &languages::wit_of(&src)?, &wasm)?;
            own_test(kind, &wasm, &src)?;
        }
    }
    Ok(())
}

/// The test a template of `kind` passes as scaffolded, on its build `wasm` (sources in `src`).
fn own_test(kind: Kind, wasm: &Path, src: &Path) -> anyhow::Result<()> {
    match kind {
        Kind::Check => crate::plugins::run_cases(wasm, &src.join("tests.json")),
        Kind::Scenario => scenario_passes_its_own_test(wasm),
    }
}

/// A scenario template's own test: against a loopback server that answers `/` with 200 and
/// any other path with 503, one run of
/// `sitewatch plugin test WASM --config '{"url": "http://127.0.0.1:PORT/"}' --allow 127.0.0.1`
/// (with the roomy limits of [`crate::plugins::run_cases`]) must be up (exit status 0), one
/// with the URL `http://127.0.0.1:PORT/down` down (exit status 1), each after one GET of its
/// URL.
pub fn scenario_passes_its_own_test(wasm: &Path) -> anyhow::Result<()> {
    let server = LoopbackServer::start().context("starting a loopback HTTP server")?;
    for (path, up) in [("/", true), ("/down", false)] {
        let config = format!(r#"{{"url": "http://127.0.0.1:{}{path}"}}"#, server.port);
        let mut test = crate::plugins::sitewatch();
        test.args(["plugin", "test"])
            .arg(wasm)
            .args(["--config", &config, "--allow", "127.0.0.1"])
            .args(["--time-limit", "2s", "--memory-limit-mib", "256"]);
        let shown = format!("{test:?}");
        if !up {
            println!("   the next run is meant to be down (its server answers 503):");
        }
        let status = test.status().with_context(|| format!("starting {shown}"))?;
        let expected = if up { 0 } else { 1 };
        if status.code() != Some(expected) {
            bail!("{shown} exited with {status}, expected status {expected}");
        }
        let asked = server.take_requests();
        if asked != [format!("GET {path}")] {
            bail!("{shown}: the server was sent {asked:?}, expected one GET {path}");
        }
    }
    Ok(())
}

/// A loopback HTTP/1.1 server for a scenario template's own test: `/` answers 200, any other
/// path 503, one connection at a time; it notes each request's method and path.
struct LoopbackServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (noted, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = Self::answer(conn, &noted);
                }
            }
        });
        Ok(Self {
            port,
            requests,
            stop,
        })
    }

    fn answer(mut conn: TcpStream, requests: &Mutex<Vec<String>>) -> std::io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        head.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        loop {
            let mut header = String::new();
            if head.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{method} {path}"));
        let (status, body) = if path == "/" {
            ("200 OK", "up")
        } else {
            ("503 Service Unavailable", "down")
        };
        write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()
    }

    /// The requests noted since the last call.
    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("status-ok2").is_ok());
        for bad in ["", "Upper", "2fast", "has space", "dot.ted", "../escape"] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_member_is_added_once() {
        let manifest = "[workspace]\nmembers = [\n    \"keyword\",\n]\n";
        let added = add_member(manifest, "mine").unwrap();
        assert_eq!(
            added,
            "[workspace]\nmembers = [\n    \"keyword\",\n    \"mine\",\n]\n"
        );
        assert!(add_member(&added, "mine").is_err());
        assert!(add_member("[workspace]\n", "mine").is_err());
    }

    #[test]
    fn every_language_scaffolds_its_files_with_the_name_filled_in() {
        let base = std::env::temp_dir().join(format!("xtask-scaffold-{}", std::process::id()));
        std::fs::create_dir_all(base.join("plugins")).unwrap();
        std::fs::write(base.join("plugins/Cargo.toml"), "members = [\n]\n").unwrap();
        for (kind, name) in [(Kind::Check, "probe-ok"), (Kind::Scenario, "flow-ok")] {
            for lang in ["rust", "c", "python", "js"] {
                let lang = Lang::parse(lang).unwrap();
                let folder = create(&base, name, kind, lang).unwrap();
                if kind == Kind::Check {
                    let tests = std::fs::read_to_string(folder.join("tests.json")).unwrap();
                    assert!(tests.contains("\"expect\""));
                }
                for (file, _) in lang.templates(kind) {
                    let text = std::fs::read_to_string(folder.join(file)).unwrap();
                    assert!(
                        !text.contains("{{name}}"),
                        "{lang:?}: {file} keeps a placeholder"
                    );
                }
                if let Lang::Other(_) = lang {
                    assert_eq!(languages::world_of(&folder).unwrap(), kind.world());
                }
                // A second scaffold of the same name is refused rather than overwriting.
                assert!(create(&base, name, kind, lang).is_err());
            }
        }
        let manifest = std::fs::read_to_string(base.join("plugins/Cargo.toml")).unwrap();
        assert!(manifest.contains("\"probe-ok\"") && manifest.contains("\"flow-ok\""));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn kinds_are_parsed() {
        assert_eq!(Kind::parse("check").unwrap(), Kind::Check);
        assert_eq!(Kind::parse("scenario").unwrap().world(), World::Scenario);
        assert!(Kind::parse("formatter").is_err());
    }

    #[test]
    fn the_loopback_server_answers_and_notes_each_request() {
        let server = LoopbackServer::start().unwrap();
        for (path, status) in [("/", "200 OK"), ("/down", "503 Service Unavailable")] {
            let mut conn = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(conn, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{answer}"
            );
        }
        assert_eq!(server.take_requests(), ["GET /", "GET /down"]);
        assert!(server.take_requests().is_empty());
    }
}
