//! `cargo xtask new-plugin <name> --lang rust|c|python|js`: a new check plugin from a template
//! that builds and passes its own `tests.json` straight away. `cargo xtask test` scaffolds one of
//! each language into `target/scaffold-check/` and builds and tests it, so the templates cannot
//! rot.

use crate::languages::{self, Language, World};
use crate::{cargo, root, run};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// The language a plugin is written in: Rust (the plugin workspace) or one of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Rust,
    Other(Language),
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
    fn templates(self) -> &'static [(&'static str, &'static str)] {
        const TESTS: (&str, &str) = ("tests.json", include_str!("../templates/tests.json"));
        // New plugins start on the newest WIT; the Rust template names it in its bindings.
        const WIT: (&str, &str) = ("wit-version", include_str!("../templates/wit-version"));
        match self {
            Lang::Rust => &[
                ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
                TESTS,
            ],
            Lang::Other(Language::C) => &[
                ("plugin.c", include_str!("../templates/c/plugin.c")),
                WIT,
                TESTS,
            ],
            Lang::Other(Language::Python) => &[
                ("app.py", include_str!("../templates/python/app.py")),
                WIT,
                TESTS,
            ],
            Lang::Other(Language::Js) => &[
                ("plugin.js", include_str!("../templates/js/plugin.js")),
                WIT,
                TESTS,
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

/// Writes the template of `lang` for `name` under `base/plugins` and, for Rust, adds the crate
/// to `base/plugins/Cargo.toml`. Returns the new folder.
fn create(base: &Path, name: &str, lang: Lang) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let plugins = base.join("plugins");
    let folder = lang.folder(&plugins, name);
    if folder.exists() {
        bail!("{} already exists", folder.display());
    }
    for (file, text) in lang.templates() {
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

/// `cargo xtask new-plugin <name> --lang <language>`.
pub fn new_plugin(args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: cargo xtask new-plugin <name> --lang rust|c|python|js";
    let mut name = None;
    let mut lang = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lang" => lang = Some(Lang::parse(it.next().context(usage)?)?),
            flag if flag.starts_with("--") => bail!("unknown option `{flag}`\n{usage}"),
            n if name.is_none() => name = Some(n.to_owned()),
            extra => bail!("unexpected argument `{extra}`\n{usage}"),
        }
    }
    let (Some(name), Some(lang)) = (name, lang) else {
        bail!("{usage}");
    };
    let folder = create(&root(), &name, lang)?;
    println!("created {}", folder.display());
    let wasm = match lang {
        Lang::Rust => format!("target/plugins/{name}.wasm"),
        Lang::Other(l) => format!("target/plugins/{name}-{}.wasm", l.dir()),
    };
    println!(
        "next: edit it, then\n  cargo xtask build-plugins\n  cargo run --release -- plugin test {wasm} --cases {}/tests.json",
        folder.strip_prefix(root()).unwrap_or(&folder).display()
    );
    Ok(())
}

/// Scaffolds a plugin of each language whose toolchain is present into `target/scaffold-check`,
/// builds it and runs its `tests.json` on the build.
pub fn check_templates() -> anyhow::Result<()> {
    println!("== new-plugin templates: scaffold, build and test one of each language");
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

    let name = "scaffolded";
    let src = create(&base, name, Lang::Rust)?;
    run(cargo()
        .current_dir(base.join("plugins"))
        .env("CARGO_TARGET_DIR", root().join("plugins/target"))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]))?;
    let wasm = root().join("plugins/target/wasm32-wasip2/release/scaffolded.wasm");
    crate::plugins::run_cases(&wasm, &src.join("tests.json"))?;
    for lang in languages::ALL {
        if let Some(missing) = lang.missing_toolchain() {
            println!("   skipped: the {} template needs {missing}", lang.dir());
            continue;
        }
        let src = create(&base, name, Lang::Other(lang))?;
        let wasm = base.join(format!("{name}-{}.wasm", lang.dir()));
        lang.build(&src, World::Checker, &languages::wit_of(&src)?, &wasm)?;
        crate::plugins::run_cases(&wasm, &src.join("tests.json"))?;
    }
    Ok(())
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
        for lang in ["rust", "c", "python", "js"] {
            let folder = create(&base, "probe-ok", Lang::parse(lang).unwrap()).unwrap();
            let tests = std::fs::read_to_string(folder.join("tests.json")).unwrap();
            assert!(tests.contains("\"expect\""));
            for (file, _) in Lang::parse(lang).unwrap().templates() {
                let text = std::fs::read_to_string(folder.join(file)).unwrap();
                assert!(
                    !text.contains("{{name}}"),
                    "{lang}: {file} keeps a placeholder"
                );
            }
            // A second scaffold of the same name is refused rather than overwriting.
            assert!(create(&base, "probe-ok", Lang::parse(lang).unwrap()).is_err());
        }
        let manifest = std::fs::read_to_string(base.join("plugins/Cargo.toml")).unwrap();
        assert!(manifest.contains("\"probe-ok\""));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
