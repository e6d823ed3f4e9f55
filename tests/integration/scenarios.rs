//! Scripted probes: scenario plugins (WIT 0.4.0) as the probe of `script` sites, through the
//! real binary against a local shop with a real login flow (tokens that expire, a 401 without
//! one; see `support::shop`). The examples of every language go up, down when the API breaks
//! at step 3 (the alert names the step) and recover; a hostile scenario reaches no host
//! outside `allow`, spends no more than its budget, and never sees a secret, which no output
//! holds either; a trap or a loop fails only its own run; a scenario plugin reloads while
//! sitewatch runs.

use crate::support::binary::{BIN, Running};
use crate::support::plugins::{example, test_plugin};
use crate::support::shop::Shop;
use crate::support::{closed_port, get_text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PASSWORD: &str = "c0rrect h&rse/\"battery\"";
const CLIENT_SECRET: &str = "cl1ent+secret=&x";
const TOKEN_TTL: Duration = Duration::from_secs(3);

/// The scenario examples, by language: (site name, plugin file, its config besides the url).
fn examples() -> Vec<(&'static str, PathBuf, Value)> {
    let login = json!({"user": "alice", "password": "${SHOP_PASSWORD}"});
    vec![
        ("rust-login", example("login-flow"), login.clone()),
        ("c-login", example("login-flow-c"), login.clone()),
        ("python-login", example("login-flow-python"), login.clone()),
        ("js-login", example("login-flow-js"), login),
    ]
}

/// The OAuth2 examples, by language: (site name, plugin file).
fn oauth_examples() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("rust-oauth", example("oauth2-flow")),
        ("c-oauth", example("oauth2-flow-c")),
        ("python-oauth", example("oauth2-flow-python")),
        ("js-oauth", example("oauth2-flow-js")),
    ]
}

/// A run dir whose `plugins/` holds `files` under their own names.
fn plugin_dir(files: &[&Path]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    for f in files {
        std::fs::copy(f, dir.path().join("plugins").join(f.file_name().unwrap())).unwrap();
    }
    dir
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn script_site(name: &str, plugin: &str, url: &str, config: Value) -> Value {
    json!({
        "name": name, "kind": "script", "plugin": plugin, "url": url, "config": config,
        "interval": "300ms", "timeout": "5s",
        // Interpreted languages' runtimes take longer to start than compiled ones.
        "time_limit": "2s", "memory_limit": "128MiB",
    })
}

fn config(sites: Vec<Value>, listen: u16) -> Value {
    json!({
        "sites": sites,
        "plugins": {"dir": "plugins"},
        "alerting": {"threshold": 0.8, "window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "500ms"}]},
        "server": {"listen": format!("127.0.0.1:{listen}")},
    })
}

/// Waits for a probe of `site` that is `ok`.
async fn probe_of(run: &mut Running, site: &str, ok: bool, secs: u64) -> Value {
    let name = site.to_owned();
    run.seen_or_wait_for(Duration::from_secs(secs), move |v| {
        v["event"] == "probe" && v["site"] == name.as_str() && v["ok"] == ok
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no probe of {site} with ok={ok}; the last: {:?}; stderr: {}",
            run.of("probe", site).last(),
            run.stderr()
        )
    })
}

/// Waits for an alert of `kind` about `site`.
async fn alert_of(run: &mut Running, kind: &str, site: &str) -> Value {
    let (k, name) = (kind.to_owned(), site.to_owned());
    run.seen_or_wait_for(Duration::from_secs(30), move |v| {
        v["event"] == "alert" && v["kind"] == k.as_str() && v["site"] == name.as_str()
    })
    .await
    .unwrap_or_else(|| panic!("no {kind} alert of {site}; stderr: {}", run.stderr()))
}

fn step_names(p: &Value) -> Vec<String> {
    p["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {p}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_languages_examples_go_down_at_the_broken_step_and_recover() {
    let shop = Shop::start(PASSWORD, CLIENT_SECRET, TOKEN_TTL).await;
    let logins = examples();
    let oauths = oauth_examples();
    let files: Vec<&Path> = logins
        .iter()
        .map(|(_, p, _)| p.as_path())
        .chain(oauths.iter().map(|(_, p)| p.as_path()))
        .collect();
    let dir = plugin_dir(&files);
    let mut sites: Vec<Value> = logins
        .iter()
        .map(|(name, p, c)| script_site(name, &stem(p), &shop.url(), c.clone()))
        .collect();
    let oauth_config = json!({
        "token_url": shop.server.url("/oauth/token"),
        "api_url": shop.server.url("/api/me"),
        "client_id": "sitewatch",
        "client_secret": "${OAUTH_CLIENT_SECRET}",
        "scope": "read",
    });
    sites.extend(oauths.iter().map(|(name, p)| {
        // No url (the example takes none in its config): the hosts it may reach.
        let mut s = script_site(name, &stem(p), &shop.url(), oauth_config.clone());
        s.as_object_mut().unwrap().remove("url");
        s["allow"] = json!(["127.0.0.1"]);
        s
    }));
    let listen = closed_port();
    let mut run = Running::start_with_env(
        dir,
        &config(sites, listen),
        &[],
        &[
            ("SHOP_PASSWORD", PASSWORD),
            ("OAUTH_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    // The first start may compile four interpreter-sized components (see `plugin_cache`): a
    // minute on an idle two-core machine, more beside the other tests.
    for (name, ..) in &logins {
        let p = probe_of(&mut run, name, true, 240).await;
        assert_eq!(p["kind"], "script", "{p}");
        assert_eq!(step_names(&p), ["login", "orders", "order"], "{name}: {p}");
        for s in p["steps"].as_array().unwrap() {
            assert_eq!(s["requests"], 1, "{name}: {p}");
            assert!(s["duration_ms"].as_f64().unwrap() > 0.0, "{name}: {p}");
        }
    }
    for (name, _) in &oauths {
        let p = probe_of(&mut run, name, true, 60).await;
        assert_eq!(step_names(&p), ["token", "api"], "{name}: {p}");
    }
    // Every run logged in afresh: no request went without a token.
    let (issued, authorized, refused) = shop.counts();
    assert!(issued >= 8 && authorized >= 8, "{:?}", shop.counts());
    assert_eq!(refused, 0, "{:?}", shop.counts());

    // Each step's duration on /metrics and in the API.
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    for step in ["login", "orders", "order"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("sitewatch_step_duration_seconds{")
                    && l.contains("site=\"rust-login\"")
                    && l.contains(&format!("step=\"{step}\""))),
            "no {step} in /metrics:\n{metrics}"
        );
    }
    let api: Value = serde_json::from_str(
        &get_text(&format!(
            "http://127.0.0.1:{listen}/api/v1/sites/rust-login"
        ))
        .await,
    )
    .unwrap();
    assert_eq!(api["steps"].as_array().map(Vec::len), Some(3), "{api}");

    // The API breaks at step 3: every example goes down, and the alert names the step.
    shop.set_broken(true);
    for (name, ..) in &logins {
        let down = alert_of(&mut run, "down", name).await;
        assert!(
            down["message"]
                .as_str()
                .unwrap()
                .contains("failed step=order"),
            "{name}: {down}"
        );
        let failed = probe_of(&mut run, name, false, 10).await;
        let error = failed["error"]["message"].as_str().unwrap_or_default();
        assert!(error.starts_with("step order: "), "{name}: {failed}");
        assert!(error.contains("500"), "{name}: {failed}");
        let marked: Vec<&Value> = failed["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["failed"] == true)
            .collect();
        assert_eq!(marked.len(), 1, "{failed}");
        assert_eq!(marked[0]["name"], "order", "{failed}");
    }
    for (name, _) in &oauths {
        let down = alert_of(&mut run, "down", name).await;
        assert!(
            down["message"]
                .as_str()
                .unwrap()
                .contains("failed step=api"),
            "{name}: {down}"
        );
    }
    shop.set_broken(false);
    let names = logins
        .iter()
        .map(|(n, ..)| n)
        .chain(oauths.iter().map(|(n, _)| n));
    for name in names {
        alert_of(&mut run, "recovered", name).await;
    }
    // Neither secret is anywhere in what sitewatch said.
    let said = format!("{:?}{}", run.events, run.stderr());
    assert!(!said.contains(PASSWORD) && !said.contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_scenario_never_sees_a_secret_and_fails_only_its_own_runs() {
    let shop = Shop::start(PASSWORD, CLIENT_SECRET, TOKEN_TTL).await;
    let hostile = test_plugin("hostile-scenario");
    let dir = plugin_dir(&[&hostile]);
    let site = |name: &str, mode: &str| {
        script_site(
            name,
            "hostile-scenario",
            &shop.url(),
            json!({"mode": mode, "pw": "${PW}"}),
        )
    };
    let mut spin = site("spin", "spin");
    spin["time_limit"] = json!("50ms");
    let sites = vec![
        site("echo", "echo"),
        spin,
        site("trap", "trap"),
        site("steps", "steps"),
    ];
    let listen = closed_port();
    let mut run = Running::start_with_env(dir, &config(sites, listen), &[], &[("PW", PASSWORD)]);
    // The echo endpoint was sent the secret, and sent it back; the scenario saw placeholders.
    let echo = probe_of(&mut run, "echo", false, 30).await;
    let seen = echo["error"]["message"].as_str().unwrap();
    assert!(seen.contains("x-echo=${PW}"), "{seen}");
    assert!(seen.contains("/echo?pw=${PW}"), "{seen}");
    assert!(seen.contains(r#"\"pw\": \"${PW}\""#), "{seen}");
    assert!(!seen.contains("h&rse"), "{seen}");
    // A loop and a trap fail their own runs (again and again); the others run on.
    let spun = probe_of(&mut run, "spin", false, 30).await;
    assert_eq!(spun["error"]["kind"], "timeout", "{spun}");
    let trapped = probe_of(&mut run, "trap", false, 30).await;
    assert_eq!(trapped["error"]["kind"], "plugin", "{trapped}");
    assert!(
        trapped["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panics"),
        "{trapped}"
    );
    let steps = probe_of(&mut run, "steps", true, 30).await;
    assert_eq!(step_names(&steps), ["one", "two", "three"]);
    run.collect_for(Duration::from_secs(2)).await;
    assert!(run.of("probe", "spin").len() >= 2, "the loop runs again");
    assert!(run.of("probe", "steps").iter().all(|p| p["ok"] == true));
    // No output holds the secret: events, logs, /metrics, the API, the page, the store.
    let metrics = get_text(&format!("http://127.0.0.1:{listen}/metrics")).await;
    let api = get_text(&format!("http://127.0.0.1:{listen}/api/v1/sites/echo")).await;
    let page = get_text(&format!("http://127.0.0.1:{listen}/")).await;
    let said = format!("{:?}{}{metrics}{api}{page}", run.events, run.stderr());
    for form in [PASSWORD, "h&rse", "c0rrect%20h"] {
        assert!(!said.contains(form), "{form} shown");
    }
    run.child.kill().await.unwrap();
    for entry in walk(&run.dir.path().join("sitewatch-data")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the secret",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `sitewatch plugin test` of the hostile scenario in `mode`: its exit code and output.
fn plugin_test(shop: &Shop, mode: &str, extra: &[&str]) -> (i32, String) {
    let config = json!({"url": shop.url(), "mode": mode, "pw": "${PW}",
        "other": format!("http://127.0.0.2:{}/one", shop.port())});
    let out = std::process::Command::new(BIN)
        .args(["plugin", "test"])
        .arg(test_plugin("hostile-scenario"))
        .args(["--config", &config.to_string(), "--allow", "127.0.0.1"])
        .args(extra)
        .env("PW", PASSWORD)
        .env(
            "SITEWATCH_PLUGIN_CACHE",
            crate::support::binary::plugin_cache(),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(PASSWORD), "the secret shown: {text}");
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_other_hosts_unknown_secrets_and_runs_past_their_budget() {
    let shop = Shop::start(PASSWORD, CLIENT_SECRET, TOKEN_TTL).await;
    let hits = || shop.server.hits();
    let (code, out) = plugin_test(&shop, "steps", &[]);
    assert_eq!(code, 0, "{out}");
    for step in ["one", "two", "three"] {
        assert!(out.contains(&format!("step {step}")), "{out}");
    }
    // A host outside `allow`: refused before anything is sent, and the run fails although the
    // scenario passes.
    let before = hits();
    let (code, out) = plugin_test(&shop, "outside", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the request to 127.0.0.2 is refused: the site allows 127.0.0.1"),
        "{out}"
    );
    assert_eq!(hits(), before, "nothing reached any server");
    // A redirect to a host outside `allow` is not followed.
    let (code, out) = plugin_test(&shop, "redirect", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("127.0.0.2, which is not in the site's allow"),
        "{out}"
    );
    // A secret the site does not give.
    let (code, out) = plugin_test(&shop, "guess", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("${HOME}, which is not a secret of this site"),
        "{out}"
    );
    // Too many requests: the 6th is refused, and the run fails.
    let before = hits();
    let (code, out) = plugin_test(&shop, "many", &["--max-requests", "5"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at most 5 requests (max_requests)"), "{out}");
    assert_eq!(hits() - before, 5, "only the budget's requests were sent");
    // Too long: a sleep past the run's time ends it.
    let started = std::time::Instant::now();
    let (code, out) = plugin_test(&shop, "sleep", &["--timeout", "1s"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("down (timeout)"), "{out}");
    assert!(out.contains("slept past the run's time (1s"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5), "{out}");
    // A trap and a loop.
    let (code, out) = plugin_test(&shop, "trap", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("trapped"), "{out}");
    let (code, out) = plugin_test(&shop, "spin", &["--time-limit", "50ms"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("exceeded its time limit of 50ms"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_plugin_reloads_while_sitewatch_runs() {
    let shop = Shop::start(PASSWORD, CLIENT_SECRET, TOKEN_TTL).await;
    let hostile = test_plugin("hostile-scenario");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let flow = dir.path().join("plugins/flow.wasm");
    std::fs::copy(&hostile, &flow).unwrap();
    let sites = vec![script_site(
        "flow",
        "flow",
        &shop.url(),
        // Both builds take this config: the hostile one runs its steps without a mode.
        json!({"user": "alice", "password": "${SHOP_PASSWORD}"}),
    )];
    let mut run = Running::start_with_env(
        dir,
        &config(sites, closed_port()),
        &[],
        &[("SHOP_PASSWORD", PASSWORD)],
    );
    let p = probe_of(&mut run, "flow", true, 30).await;
    assert_eq!(step_names(&p), ["one", "two", "three"]);
    // A new build of `flow`: the login example, whose steps are others.
    let next = flow.with_extension("wasm.new");
    std::fs::copy(example("login-flow"), &next).unwrap();
    std::fs::rename(&next, &flow).unwrap();
    let reloaded = run
        .wait_for(Duration::from_secs(30), |v| {
            v["event"] == "probe"
                && v["site"] == "flow"
                && v["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["name"] == "login"))
        })
        .await
        .unwrap_or_else(|| panic!("the new build never ran; stderr: {}", run.stderr()));
    assert_eq!(reloaded["ok"], true, "{reloaded}");
    assert_eq!(step_names(&reloaded), ["login", "orders", "order"]);
}
