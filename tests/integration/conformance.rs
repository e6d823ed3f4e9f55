//! Plugins in any language: every language's build of the `keyword` check answers the shared
//! cases in `plugins/conformance/keyword.json` as expected, and all answer identically.

use crate::support::plugins::examples_dir;
use sitewatch::config::PluginLimits;
use sitewatch::plugin::PluginHost;
use sitewatch::plugin::cli::{read_cases, run_cases};
use std::path::PathBuf;
use std::time::Duration;
use xtask::languages::Language;

/// (language, built file name) of each build of the keyword check.
const BUILDS: &[(&str, &str)] = &[
    ("rust", "keyword"),
    ("c", "keyword-c"),
    ("python", "keyword-python"),
    ("js", "keyword-js"),
];

/// Generous limits: the first call of an interpreter-backed plugin does more work.
const LIMITS: PluginLimits = PluginLimits {
    memory: 256 << 20,
    time: Duration::from_secs(2),
};

fn cases_file() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/conformance/keyword.json"
    ))
}

/// (case name, verdict, reason) of one case.
type Answer = (String, String, Option<String>);

#[tokio::test(flavor = "multi_thread")]
async fn every_language_answers_the_keyword_cases_identically() {
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(Some(cache.path())).unwrap();
    let mut answers: Vec<(&str, Vec<Answer>)> = Vec::new();
    for (language, file) in BUILDS {
        let wasm = examples_dir().join(format!("{file}.wasm"));
        // The build skips a language exactly when its toolchain is missing.
        if let Some(missing) = Language::parse(language).and_then(|l| l.missing_toolchain()) {
            crate::support::skip(
                &format!("{} (for the {language} build)", missing.what),
                &format!("install it with `{}`", missing.install),
            );
            continue;
        }
        let cases = read_cases(&cases_file()).unwrap();
        let results = run_cases(&host, &wasm, cases, LIMITS)
            .await
            .unwrap_or_else(|e| panic!("{language}: loading {}: {e}", wasm.display()));
        for r in &results {
            if let Some(why) = &r.mismatch {
                panic!("{language} build, case `{}`: {why}", r.name);
            }
        }
        let answer = results
            .into_iter()
            .map(|r| {
                // An error's text after its first words comes from the language's own parser.
                let reason = match r.report.verdict.as_str() {
                    "error" => None,
                    _ => r.report.reason,
                };
                (r.name, r.report.verdict, reason)
            })
            .collect();
        answers.push((language, answer));
    }
    let (first, reference) = answers.first().expect("the Rust build is always there");
    assert_eq!(*first, "rust");
    assert!(reference.len() >= 20, "the cases file covers the check");
    for (language, answer) in &answers[1..] {
        assert_eq!(
            answer, reference,
            "{language} answers differently from {first}"
        );
    }
}
