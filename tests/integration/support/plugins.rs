//! Paths of the built plugins (`cargo xtask build-plugins`).

use std::path::PathBuf;

fn built(dir: &str, name: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        .join(dir)
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build-plugins` (or `cargo xtask test`)",
        path.display()
    );
    path
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
