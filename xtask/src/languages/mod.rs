//! Plugins written in languages other than Rust: `plugins/<language>/<name>/`. Each language
//! knows how to find (or install) its toolchain and how to turn a plugin folder into a component.
//! A build lands in `target/plugins/<name>-<language>.wasm`. A folder may name the WIT version
//! it is written against in a `wit-version` file ([`wit_of`]), and a formatter or a scenario its
//! world in a `world` file ([`world_of`]).

mod c;
mod js;
mod python;

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The WIT world a plugin is built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Checker,
    AlertFormatter,
    /// A scenario (the probe of a `script` site), from WIT 0.4.0.
    Scenario,
}

impl World {
    pub const ALL: [World; 3] = [World::Checker, World::AlertFormatter, World::Scenario];

    /// The world's name in the WIT, which the toolchains take (`-w`, `--world-name`) and the C
    /// bindings are named after (`scenario.h`).
    pub fn name(self) -> &'static str {
        match self {
            World::Checker => "checker",
            World::AlertFormatter => "alert-formatter",
            World::Scenario => "scenario",
        }
    }

    pub fn parse(name: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// A toolchain that is not installed: what it is, and the command that installs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub install: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (install it with `{}`)", self.what, self.install)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    C,
    Python,
    Js,
}

pub const ALL: [Language; 3] = [Language::C, Language::Python, Language::Js];

impl Language {
    /// The folder under `plugins/` and the suffix of the built file.
    pub fn dir(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Python => "python",
            Language::Js => "js",
        }
    }

    pub fn parse(name: &str) -> Option<Language> {
        match name {
            "c" => Some(Language::C),
            "python" | "py" => Some(Language::Python),
            "js" | "javascript" => Some(Language::Js),
            _ => None,
        }
    }

    /// `None` when the toolchain is ready, else what is missing and how to install it.
    pub fn missing_toolchain(self) -> Option<Missing> {
        match self {
            Language::C => c::missing_toolchain(),
            Language::Python => python::missing_toolchain(),
            Language::Js => js::missing_toolchain(),
        }
    }

    /// Whether the toolchain present is the release the examples are tested with (C uses the
    /// distribution's).
    pub fn is_pinned(self) -> bool {
        match self {
            Language::C => true,
            Language::Python => python::is_pinned(),
            Language::Js => js::is_pinned(),
        }
    }

    /// Installs the toolchain (apt-get, pip or npm).
    pub fn install_toolchain(self) -> anyhow::Result<()> {
        match self {
            Language::C => c::install_toolchain(),
            Language::Python => python::install_toolchain(),
            Language::Js => js::install_toolchain(),
        }
    }

    /// Builds the plugin in `src` (against `world` of the WIT package in the folder `wit`) into
    /// the component `out`, written atomically.
    pub fn build(self, src: &Path, world: World, wit: &Path, out: &Path) -> anyhow::Result<()> {
        has_world(wit, world)?;
        let scratch = crate::root()
            .join("target/plugin-build")
            .join(self.dir())
            .join(src.file_name().unwrap_or_default());
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)
                .with_context(|| format!("clearing {}", scratch.display()))?;
        }
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let component = match self {
            Language::C => c::build(src, world, wit, &scratch)?,
            Language::Python => python::build(src, world, wit, &scratch)?,
            Language::Js => js::build(src, world, wit, &scratch)?,
        };
        crate::write_atomically(out, &component)
    }

    /// The plugin folders of this language, sorted.
    pub fn plugins(self) -> anyhow::Result<Vec<PathBuf>> {
        let dir = crate::root().join("plugins").join(self.dir());
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let path = e?.path();
                if path.is_dir() {
                    found.push(path);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Which world a plugin's sources are written against: a formatter or a scenario names its world
/// in a `world` file (`alert-formatter`, `scenario`) or, failing that, the check world is meant.
pub fn world_of(src: &Path) -> anyhow::Result<World> {
    let file = src.join("world");
    if !file.exists() {
        return Ok(World::Checker);
    }
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    World::parse(text.trim()).with_context(|| {
        format!(
            "{}: unknown world `{}` (expected `checker`, `alert-formatter` or `scenario`)",
            file.display(),
            text.trim()
        )
    })
}

/// Fails, naming the folder's `wit-version`, when the WIT package in `wit` has no `world` (a
/// scenario written against a version before 0.4.0), rather than leaving it to a toolchain's
/// message.
fn has_world(wit: &Path, world: World) -> anyhow::Result<()> {
    let file = wit.join("plugin.wit");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let declared = format!("world {} {{", world.name());
    if !text.lines().any(|l| l.trim_start().starts_with(&declared)) {
        anyhow::bail!(
            "{} has no world `{}`: name a newer version in the plugin's `wit-version` file{}",
            file.display(),
            world.name(),
            if world == World::Scenario {
                " (scenarios are in 0.4.0 and later)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// The WIT version a plugin folder names in its `wit-version` file when it has none: the only
/// version there was before the file existed, so a folder written then keeps building against
/// the same interface.
pub const DEFAULT_WIT_VERSION: &str = "0.1.0";

/// The folder of the WIT package a plugin's sources are written against: `wit/<version>/`, the
/// version read from the plugin's `wit-version` file (e.g. `0.2.0`), or [`DEFAULT_WIT_VERSION`].
pub fn wit_of(src: &Path) -> anyhow::Result<PathBuf> {
    let file = src.join("wit-version");
    let version = if file.exists() {
        std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?
            .trim()
            .to_owned()
    } else {
        DEFAULT_WIT_VERSION.to_owned()
    };
    let dir = crate::root().join("wit").join(&version);
    if version.is_empty() || version.contains(['/', '\\']) || !dir.join("plugin.wit").is_file() {
        anyhow::bail!(
            "{}: unknown WIT version `{version}` (the versions are the folders of wit/, e.g. `0.2.0`)",
            file.display()
        );
    }
    Ok(dir)
}

/// Whether `program` runs (`program --version` or the given probe arguments succeed).
pub fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (so apt-get can install without sudo).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Installs Debian packages (as root directly, otherwise through sudo).
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    println!("== installing {} with apt-get", packages.join(" "));
    let apt = || {
        let mut c = if is_root() {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    // A fresh machine may have no package lists yet.
    crate::run(apt().args(["update", "-qq"]))?;
    crate::run(apt().args(["install", "-y", "-q"]).args(packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_file_names_the_world() {
        let dir = std::env::temp_dir().join(format!("xtask-world-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(world_of(&dir).unwrap(), World::Checker);
        for world in World::ALL {
            std::fs::write(dir.join("world"), format!("{}\n", world.name())).unwrap();
            assert_eq!(world_of(&dir).unwrap(), world);
        }
        std::fs::write(dir.join("world"), "scenarios").unwrap();
        assert!(world_of(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_scenario_needs_a_wit_version_that_has_the_world() {
        let wit = |v: &str| crate::root().join("wit").join(v);
        assert!(has_world(&wit("0.4.0"), World::Scenario).is_ok());
        assert!(has_world(&wit("0.4.0"), World::Checker).is_ok());
        let err = has_world(&wit("0.3.0"), World::Scenario).unwrap_err();
        assert!(err.to_string().contains("0.4.0 and later"), "{err}");
    }
}
