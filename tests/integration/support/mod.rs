//! Shared test fixtures: programmable HTTP servers on 127.0.0.1 and a runner for the real binary.

pub mod alertmanager;
pub mod binary;
pub mod by_location;
pub mod chromium;
pub mod disk;
pub mod dns;
pub mod hostile;
pub mod kinds;
pub mod nats;
pub mod netns;
pub mod plugins;
pub mod prometheus;
pub mod receiver;
pub mod server;
pub mod shapes;
pub mod shop;
pub mod smtp;
pub mod tls;
pub mod tmux;
pub mod victoria;

/// Skips the calling test because it `needs` something this machine lacks (`remedy` says how to
/// get it): says so on stderr, and records it for the summary at the end of `cargo xtask test`
/// (libtest shows a passing test's stderr only with `--nocapture`). CI must run every test, so
/// there a skip fails instead. The caller returns right after.
pub fn skip(needs: &str, remedy: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_owned();
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs {needs}, and CI must run it: {remedy}"
    );
    eprintln!("\n*** SKIPPED {test}: needs {needs}; {remedy} ***\n");
    xtask::skips::record(&xtask::skips::Skip {
        test,
        needs: needs.to_owned(),
        remedy: remedy.to_owned(),
    });
}

/// The text of every `<prefix>*.log` file in `dir` (a started server's output, one file per
/// start attempt), for failure messages.
pub fn read_logs(dir: &std::path::Path, prefix: &str) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".log") {
            text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    text
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The body of a GET of `url` (a test server's, or sitewatch's own), as text.
pub async fn get_text(url: &str) -> String {
    http_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A plain HTTP client for talking to test servers.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; the tests use ring, like the product.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
