//! C plugins: Debian's clang, lld and wasi-libc compile the sources for `wasm32-wasi`
//! (preview 1), against bindings that `wit-bindgen-c` generates from the plugin's WIT version
//! (`wit/<version>/`); `wit-component` (the library behind `wasm-tools component new`) then
//! wraps the module into a component with wasmtime's preview1 reactor adapter. Both run
//! in-process here, so only the C toolchain has to be installed.

use super::{Missing, World};
use crate::{root, run};
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// The Debian packages: the compiler, the wasm linker, the C library and the compiler runtime.
const PACKAGES: &[&str] = &["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"];
const CC: &str = "clang";
const TARGET: &str = "wasm32-wasi";

/// Compiles and links a program that uses the C library, which proves every part is present.
fn toolchain_works() -> bool {
    let Ok(dir) = probe_dir() else {
        return false;
    };
    let src = dir.join("probe.c");
    let ok = std::fs::write(
        &src,
        "#include <string.h>\nint probe(const char *s) { return (int)strlen(s); }\n",
    )
    .is_ok()
        && Command::new(CC)
            .args([
                &format!("--target={TARGET}"),
                "-mexec-model=reactor",
                "-O1",
                "-o",
            ])
            .arg(dir.join("probe.wasm"))
            .arg(&src)
            .output()
            .is_ok_and(|o| o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

/// A scratch folder for the toolchain probe.
fn probe_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = root()
        .join("target/plugin-build/c-probe")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn missing_toolchain() -> Option<Missing> {
    if toolchain_works() {
        None
    } else {
        Some(Missing {
            what: format!("a C compiler for {TARGET}"),
            install: format!("apt-get install {}", PACKAGES.join(" ")),
        })
    }
}

pub fn install_toolchain() -> anyhow::Result<()> {
    super::apt_install(PACKAGES)
}

/// Writes the C bindings of `world` of the WIT package in `wit` (`<world>.h`, `<world>.c`,
/// `<world>_component_type.o`) into `dir`.
pub fn generate_bindings(world: World, wit: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(wit)?;
    let id = resolve.select_world(&[package], Some(world.name()))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, id, &mut files)?;
    for (name, contents) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Wraps a preview1 core module into a component with the reactor adapter.
pub fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    wit_component::ComponentEncoder::default()
        .module(core)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
}

/// The component built from the `.c` files in `src`.
pub fn build(src: &Path, world: World, wit: &Path, scratch: &Path) -> anyhow::Result<Vec<u8>> {
    generate_bindings(world, wit, scratch)?;
    let stem = world.name().replace('-', "_");
    let mut sources: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    if sources.is_empty() {
        bail!("{} has no .c files", src.display());
    }
    let core = scratch.join("core.wasm");
    run(Command::new(CC)
        .args([
            &format!("--target={TARGET}"),
            "-mexec-model=reactor",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-I",
        ])
        .arg(scratch)
        .arg("-I")
        .arg(src)
        .args(&sources)
        .arg(scratch.join(format!("{stem}.c")))
        .arg(scratch.join(format!("{stem}_component_type.o")))
        .arg("-o")
        .arg(&core))?;
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    componentize(&module).with_context(|| format!("making a component of {}", core.display()))
}
