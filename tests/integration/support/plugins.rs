//! Paths of the built plugins. They are built on first use, with `cargo xtask build-plugins`'s
//! own code ([`xtask::plugins::ensure_built`]): once per test process, and under a file lock so
//! that test binaries running side by side build them once between them; a later run rebuilds
//! only when a plugin source, the WIT or a toolchain changed. So a plain `cargo test` on a fresh
//! clone works.
//!
//! The build never runs cargo on this workspace (`ensure_built` says why): it validates the
//! plugins with the `sitewatch` this test binary was built with, and the Rust plugins are their
//! own workspace with their own target dir.

use std::path::PathBuf;
use std::sync::OnceLock;
use xtask::plugins::Host;

fn built(dir: &str, name: &str) -> PathBuf {
    ensure_built();
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"))
        .join(dir)
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing although the plugins were built",
        path.display()
    );
    path
}

/// Builds the plugins unless they are up to date; the first caller in this process builds, the
/// others wait for it and share its result, failure included.
fn ensure_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let host = Host::Binary(crate::support::binary::BIN.into());
        xtask::plugins::ensure_built(&host).map_err(|e| format!("{e:#}"))
    });
    if let Err(e) = result {
        panic!(
            "building the plugins for the tests failed (the build's own output is above): {e}\n\
             (`cargo xtask build-plugins` builds them by hand)"
        );
    }
}

/// The example plugins' directory.
pub fn examples_dir() -> PathBuf {
    built("plugins", "keyword").parent().unwrap().to_owned()
}

/// A test plugin (hostile, net-client, future-wit).
pub fn test_plugin(name: &str) -> PathBuf {
    built("test-plugins", name)
}

/// An example plugin.
pub fn example(name: &str) -> PathBuf {
    built("plugins", name)
}
