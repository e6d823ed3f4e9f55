//! Tests skipped because something is not installed. libtest hides a passing test's output, so a
//! skipped test's message would go unseen: every skip is also appended to a file, and
//! `cargo xtask test` prints them all at the end.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable `cargo xtask test` sets, for the test binaries, to the file that collects skips.
/// Unset (a plain `cargo test`), skips are only printed.
pub const ENV: &str = "SITEWATCH_TEST_SKIPS";

/// Where `cargo xtask test` collects the skips of one run.
pub fn file() -> PathBuf {
    crate::root().join("target/test-skips.txt")
}

/// One skipped test: its name, what it needs, and how to get that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub test: String,
    pub needs: String,
    pub remedy: String,
}

/// Appends `skip` to `path`, one tab-separated line (a single short append, so lines from tests
/// running side by side do not interleave).
pub fn append(path: &Path, skip: &Skip) -> std::io::Result<()> {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!(
        "{}\t{}\t{}\n",
        clean(&skip.test),
        clean(&skip.needs),
        clean(&skip.remedy)
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

/// Records `skip` in the file named by [`ENV`], when the run collects skips.
pub fn record(skip: &Skip) {
    if let Some(path) = std::env::var_os(ENV)
        && let Err(e) = append(Path::new(&path), skip)
    {
        eprintln!(
            "cannot record the skip in {}: {e}",
            Path::new(&path).display()
        );
    }
}

/// The skips recorded in `path`, each once, in the order first recorded; none if there is no file.
pub fn read(path: &Path) -> Vec<Skip> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut skips: Vec<Skip> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(test), Some(needs), Some(remedy)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let skip = Skip {
            test: test.into(),
            needs: needs.into(),
            remedy: remedy.into(),
        };
        if !skips.contains(&skip) {
            skips.push(skip);
        }
    }
    skips
}

/// The summary `cargo xtask test` prints: one line per skipped test.
pub fn summary(skips: &[Skip]) -> String {
    if skips.is_empty() {
        return "== no test was skipped".into();
    }
    let mut text = format!("== skipped for something not installed ({}):", skips.len());
    for s in skips {
        text.push_str(&format!(
            "\n   SKIPPED {}: needs {}; {}",
            s.test, s.needs, s.remedy
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_read_back_once_each_in_order() {
        let dir = std::env::temp_dir().join(format!("xtask-skips-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("skips.txt");
        let _ = std::fs::remove_file(&path);
        assert!(read(&path).is_empty(), "no file, no skips");
        let tmux = Skip {
            test: "tty::display".into(),
            needs: "tmux".into(),
            remedy: "install it with `apt-get install tmux`".into(),
        };
        let vm = Skip {
            test: "storage::influx".into(),
            needs: "victoria-metrics\twith a tab".into(),
            remedy: "install it with `apt-get install victoria-metrics`".into(),
        };
        for s in [&tmux, &vm, &tmux] {
            append(&path, s).unwrap();
        }
        let back = read(&path);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], tmux);
        assert_eq!(back[1].needs, "victoria-metrics with a tab");
        let text = summary(&back);
        assert!(
            text.contains(
                "SKIPPED tty::display: needs tmux; install it with `apt-get install tmux`"
            ),
            "{text}"
        );
        assert_eq!(summary(&[]), "== no test was skipped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
