//! `${NAME}` in site URLs and headers, through the real binary: the site gets the secret, and
//! nothing sitewatch writes (stdout in every format, stderr, the log file, the store, the HTTP
//! server, `report`, `check-config --print`) holds it; a missing variable is a config error, at
//! start and at reload.

use crate::support::binary::{BIN, Running, is};
use crate::support::server::{Reply, TestServer};
use crate::support::{closed_port, get_text};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const KEY: (&str, &str) = ("SW_SITE_KEY", "s3cr3t-value");
const TOKEN: (&str, &str) = ("SW_SITE_TOKEN", "t0ken-8d1f2e7a");
const HOOK: (&str, &str) = ("SW_HOOK_SECRET", "hook-77aa1c0e");

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts that no secret value is in any of `places`.
fn no_secret(places: &[(&str, &[u8])]) {
    for (var, secret) in [KEY, TOKEN, HOOK] {
        for (what, bytes) in places {
            assert!(
                !contains(bytes, secret),
                "{var}'s value is in {what}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// Every file under `dir`, concatenated.
fn files_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

/// A site that answers 200 only with the key in the query and the token in the header; one
/// that redirects forever and one that answers too late, both with the key in the URL.
async fn guarded() -> (TestServer, Arc<AtomicU64>) {
    let authorized = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&authorized);
    let server = TestServer::start(move |r| {
        let has_key = r.path.contains(&format!("key={}", KEY.1));
        if r.path.starts_with("/loop") {
            return Reply::redirect(&r.path);
        }
        if r.path.starts_with("/slow") {
            return Reply::ok("late").delayed(Duration::from_secs(3), Duration::ZERO);
        }
        let bearer = r
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == format!("Bearer {}", TOKEN.1));
        if has_key && bearer {
            seen.fetch_add(1, Ordering::SeqCst);
            Reply::ok("welcome")
        } else {
            Reply::status(403)
        }
    })
    .await;
    (server, authorized)
}

fn config(server: &TestServer, listen: u16) -> Value {
    json!({
        "sites": [
            {"name": "api", "url": server.url("/health?key=${SW_SITE_KEY}"), "interval": "100ms",
             "headers": {"Authorization": "Bearer ${SW_SITE_TOKEN}"}, "tags": ["prod"]},
            {"name": "loop", "url": server.url("/loop?key=${SW_SITE_KEY}"), "interval": "200ms"},
            {"name": "slow", "url": server.url("/slow?key=${SW_SITE_KEY}"), "interval": "200ms",
             "timeout": "300ms"},
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "300ms"}]},
        "server": {"listen": format!("127.0.0.1:{listen}")},
        "notify": [{"name": "hook", "type": "webhook", "url": format!("http://127.0.0.1:{}/hook", closed_port()),
                    "headers": {"X-Hook": "${SW_HOOK_SECRET}"}, "on": ["down"]}],
    })
}

fn env() -> [(&'static str, &'static str); 3] {
    [KEY, TOKEN, HOOK]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_a_site_url_and_header_reach_the_site_and_nothing_sitewatch_writes() {
    let (server, authorized) = guarded().await;
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sitewatch.log");
    let mut run = Running::start_with_env(
        dir,
        &config(&server, port),
        &["--log-file", log.to_str().unwrap()],
        &env(),
    );
    let probe = run
        .wait_for(Duration::from_secs(10), |e| {
            e["event"] == "probe" && e["site"] == "api" && e["ok"] == true
        })
        .await
        .unwrap_or_else(|| panic!("an authorized probe; stderr: {}", run.stderr()));
    assert!(
        authorized.load(Ordering::SeqCst) > 0,
        "the site saw both secrets"
    );
    let shown = server.url("/health?key=${SW_SITE_KEY}");
    assert_eq!(probe["url"], shown.as_str(), "the URL as written");
    let failed = |site: &'static str| {
        move |e: &Value| e["event"] == "probe" && e["site"] == site && e["ok"] == false
    };
    let looped = run
        .wait_for(Duration::from_secs(10), failed("loop"))
        .await
        .expect("the redirect loop fails");
    assert_eq!(
        looped["url"],
        server.url("/loop?key=${SW_SITE_KEY}").as_str()
    );
    let slow = run
        .wait_for(Duration::from_secs(10), failed("slow"))
        .await
        .expect("the slow site times out");
    assert_eq!(slow["error"]["kind"], "timeout", "{slow}");
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "alert" && e["site"] == "slow"
    })
    .await
    .expect("a down alert of the slow site");
    run.wait_for(Duration::from_secs(5), |e| e["event"] == "stats")
        .await
        .expect("stats");

    // Everything the server shows.
    let base = format!("http://127.0.0.1:{port}");
    let mut served = String::new();
    for path in [
        "/metrics",
        "/api/v1/sites",
        "/api/v1/sites/api",
        "/api/v1/sites/loop",
        "/api/v1/alerts",
        "/api/v1/report?since=1h",
        "/",
    ] {
        served += &get_text(&format!("{base}{path}")).await;
    }
    assert!(
        served.contains("key=${SW_SITE_KEY}"),
        "the server shows the URL as written: {served}"
    );

    run.signal(Signal::SIGTERM);
    run.drain().await;
    run.wait_exit(Duration::from_secs(10)).await.expect("exits");
    let data = run.dir.path().join("sitewatch-data");
    let stdout: String = run.events.iter().map(|e| e.to_string() + "\n").collect();

    // The same config in plain output, and the stored reports in both formats.
    let config_path = run.config_path();
    let plain = tokio::process::Command::new(BIN)
        .args(["--output", "plain", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(&data)
        .envs(env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(plain.id().unwrap() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let plain = plain.wait_with_output().await.unwrap();
    let plain_out = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        plain_out.contains("api") && plain_out.contains("timeout:"),
        "{plain_out}"
    );
    let mut reports = Vec::new();
    for args in [
        &["report", "--since", "1h"][..],
        &["report", "--since", "1h", "--output", "json"],
        &["check-config", "--print"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .args(if args[0] == "check-config" {
                vec![]
            } else {
                vec!["--data-dir", data.to_str().unwrap()]
            })
            .envs(env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reports.extend(out.stdout);
        reports.extend(out.stderr);
    }
    assert!(contains(&reports, "key=${SW_SITE_KEY}"));

    let logged = std::fs::read(&log).unwrap_or_default();
    let store = files_under(&data);
    assert!(
        contains(&store, "key=${SW_SITE_KEY}"),
        "the store keeps the URL as written"
    );
    no_secret(&[
        ("stdout (json)", stdout.as_bytes()),
        ("stderr", run.stderr().as_bytes()),
        ("the log file", &logged),
        ("the data directory", &store),
        ("the server's answers", served.as_bytes()),
        ("stdout (plain)", &plain.stdout),
        ("stderr (plain)", &plain.stderr),
        ("report and check-config --print", &reports),
    ]);
}

/// Runs `sitewatch ARGS` on `config` (written to a temp dir) without the test variables set.
fn run_without_env(config: &Value, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("SW_NOT_SET")
        .env("SW_EMPTY", "")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_missing_variable_is_a_config_error_naming_it_the_field_and_the_site() {
    let config = json!({"sites": [
        {"name": "fine", "url": "http://127.0.0.1:9/"},
        {"name": "also-fine", "url": "http://127.0.0.1:9/"},
        {"name": "api", "url": "http://127.0.0.1:9/?key=${SW_NOT_SET}"},
    ]});
    for args in [
        &["check-config"][..],
        &["--output", "json"],
        &["check-config", "--print"],
    ] {
        let (code, text) = run_without_env(&config, args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(
            text.contains(
                "sites[2].url (site \"api\"): names the environment variable SW_NOT_SET, which is not set"
            ),
            "{args:?}: {text}"
        );
    }
    let config = json!({"sites": [
        {"name": "api", "url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer ${SW_EMPTY}"}},
    ]});
    let (code, text) = run_without_env(&config, &["check-config"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("sites[0].headers.Authorization (site \"api\"): names the environment variable SW_EMPTY, which is empty"),
        "{text}"
    );
}

/// Writes `bytes` to `path` the way editors do: a new file renamed over the old one.
fn save(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_names_a_missing_variable_is_rejected_naming_it() {
    let (server, authorized) = guarded().await;
    let mut config = json!({
        "sites": [{"name": "api", "url": server.url("/health?key=${SW_SITE_KEY}"), "interval": "100ms",
                   "headers": {"Authorization": "Bearer ${SW_SITE_TOKEN}"}}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
    });
    let mut run = Running::start_with_env(tempfile::tempdir().unwrap(), &config, &[], &env());
    run.wait_for(Duration::from_secs(10), |e| {
        e["event"] == "probe" && e["site"] == "api" && e["ok"] == true
    })
    .await
    .unwrap_or_else(|| panic!("an authorized probe; stderr: {}", run.stderr()));

    config["sites"][0]["headers"]["Authorization"] = json!("Bearer ${SW_ROTATED_TOKEN}");
    save(&run.config_path(), config.to_string().as_bytes());
    let rejected = run
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "reload" && e["what"] == "config"
        })
        .await
        .expect("a reload result");
    assert_eq!(rejected["result"], "rejected", "{rejected}");
    let detail = rejected["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "sites[0].headers.Authorization (site \"api\"): names the environment variable SW_ROTATED_TOKEN, which is not set"
        ),
        "{detail}"
    );
    // The last good config keeps probing with its secrets.
    let before = authorized.load(Ordering::SeqCst);
    let seen = run.events.len();
    run.wait_for(Duration::from_secs(5), is("probe", "api"))
        .await
        .expect("still probed");
    run.collect_for(Duration::from_millis(500)).await;
    assert!(
        run.events[seen..]
            .iter()
            .filter(|e| e["event"] == "probe")
            .all(|e| e["ok"] == true)
    );
    assert!(authorized.load(Ordering::SeqCst) > before);
    let stdout: String = run.events.iter().map(|e| e.to_string()).collect();
    no_secret(&[
        ("stdout", stdout.as_bytes()),
        ("stderr", run.stderr().as_bytes()),
    ]);
}

#[test]
fn check_config_print_fills_in_every_default_and_shows_secrets_as_stars() {
    let config = json!({
        "sites": [
            {"name": "api", "url": "http://127.0.0.1:9/health?key=${SW_SITE_KEY}",
             "headers": {"Authorization": "Bearer ${SW_SITE_TOKEN}", "Accept": "text/plain"},
             "tags": ["prod"]},
        ],
        "notify": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                    "headers": {"X-Hook": "${SW_HOOK_SECRET}"}, "tags": ["prod"]}],
        "server": {"auth_token_env": "SW_HOOK_SECRET"},
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--print", "--config"])
        .arg(&path)
        .envs(env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"interval\": \"30s\""), "{text}");
    assert!(text.contains("\"***\""), "{text}");
    no_secret(&[
        ("check-config --print", out.stdout.as_slice()),
        ("its stderr", &out.stderr),
    ]);
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let site = &v["sites"][0];
    assert_eq!(site["url"], "http://127.0.0.1:9/health?key=${SW_SITE_KEY}");
    assert_eq!(site["headers"]["authorization"], "***");
    assert_eq!(site["headers"]["accept"], "text/plain");
    assert_eq!(site["timeout"], "10s");
    assert_eq!(site["alerting"]["window"], "2m");
    assert_eq!(site["tags"], json!(["prod"]));
    assert_eq!(v["notify"][0]["headers"]["X-Hook"], "***");
    assert_eq!(v["notify"][0]["tags"], json!(["prod"]));
    assert_eq!(v["server"]["listen"], "127.0.0.1:9184");
    assert_eq!(
        v["server"]["tokens"],
        json!([{"name": "auth_token", "scope": "read", "value": "***"}])
    );
    assert_eq!(
        v["storage"]["retention"],
        json!({"raw": "7d", "minute": "30d", "hour": "365d", "day": "1825d", "alerts": null})
    );
    assert_eq!(v["storage"]["rollup_every"], "10m");
}
