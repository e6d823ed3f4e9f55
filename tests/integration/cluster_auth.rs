//! A cluster node authenticates to NATS servers that require it (each a real nats-server): a
//! token, a user and password, an NKey, a `.creds` file in operator (JWT) mode, and TLS with a
//! client certificate. Each secret comes from the environment; wrong credentials are refused
//! with a message that says so, and no secret is shown.

use crate::support::binary::Running;
use crate::support::nats::NatsCluster;
use crate::support::server::{Reply, TestServer};
use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One node, alone in its location, with `auth` merged into its `cluster` section.
fn node(
    dir: &tempfile::TempDir,
    urls: &[String],
    target: &str,
    auth: Value,
    env: &[(&str, &str)],
) -> Running {
    let mut cluster = json!({
        "nats": urls, "location": "a", "node": "n1", "confirm": 1,
        "heartbeat_ttl": "2s", "lease_ttl": "3s", "alone_after": "30s",
    });
    for (k, v) in auth.as_object().unwrap() {
        cluster[k] = v.clone();
    }
    let config = json!({
        "sites": [{"name": "s0", "url": target, "interval": "200ms"}],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "10s", "every": "1s"}]},
        "cluster": cluster,
    });
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let data = dir
        .path()
        .join(format!("data-{}", crate::support::closed_port()));
    Running::start_in_with_env(
        tempfile::TempDir::new_in(dir.path()).unwrap(),
        &[
            "--output",
            "json",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        env,
    )
}

async fn leads(run: &mut Running) -> bool {
    leads_within(run, Duration::from_secs(20)).await
}

async fn leads_within(run: &mut Running, within: Duration) -> bool {
    run.wait_for(within, |e| e["event"] == "cluster" && e["role"] == "leader")
        .await
        .is_some()
}

async fn refused(run: &mut Running) -> Option<Value> {
    run.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "error"
            && e["source"] == "cluster"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("authorization")
    })
    .await
}

/// A JWT as nats-server reads them (`ed25519-nkey`), signed by `issuer`.
fn jwt(nats: Value, sub: &str, name: &str, issuer: &nkeys::KeyPair) -> String {
    use sha2::Digest;
    let header = B64.encode(json!({"typ": "JWT", "alg": "ed25519-nkey"}).to_string());
    let mut claims = json!({
        "iat": chrono::Utc::now().timestamp(), "iss": issuer.public_key(), "name": name, "sub": sub,
    });
    let digest = sha2::Sha256::digest(claims.to_string().as_bytes());
    claims["jti"] = json!(
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    claims["nats"] = nats;
    let payload = B64.encode(claims.to_string());
    let signature = issuer
        .sign(format!("{header}.{payload}").as_bytes())
        .unwrap();
    format!("{header}.{payload}.{}", B64.encode(signature))
}

/// Operator mode: an operator, a system account, an account with JetStream and its user; the
/// server's config lines and the user's `.creds` file (written in `dir`).
fn operator_mode(dir: &Path) -> (String, std::path::PathBuf) {
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                           "wildcards": true, "conn": -1, "leaf": -1});
    let mut js = unlimited.clone();
    for (k, v) in [
        ("mem_storage", -1),
        ("disk_storage", -1),
        ("streams", -1),
        ("consumer", -1),
    ] {
        js[k] = json!(v);
    }
    let op_jwt = jwt(
        json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
        &operator.public_key(),
        "sitewatch-op",
        &operator,
    );
    let account_claims = |limits: &Value| json!({"limits": limits, "default_permissions": {"pub": {}, "sub": {}}, "type": "account", "version": 2});
    let sys_jwt = jwt(
        account_claims(&unlimited),
        &system.public_key(),
        "SYS",
        &operator,
    );
    let app_jwt = jwt(account_claims(&js), &account.public_key(), "APP", &operator);
    let user_jwt = jwt(
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
        &user.public_key(),
        "sitewatch",
        &account,
    );
    std::fs::write(dir.join("operator.jwt"), &op_jwt).unwrap();
    let creds = dir.join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    let conf = format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{app_jwt}\"\n  {}: \"{sys_jwt}\"\n}}\n",
        dir.join("operator.jwt").display(),
        system.public_key(),
        account.public_key(),
        system.public_key(),
    );
    (conf, creds)
}

/// Writes a certificate chain and its key as PEM files `name.pem` and `name-key.pem`.
fn write_pem(dir: &Path, name: &str, id: &crate::support::tls::Identity) -> (String, String) {
    let (cert, key) = id.pem();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c.display().to_string(), k.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_authenticates_by_token_user_and_password_nkey_and_credentials() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let url = target.url("/");
    let dir = tempfile::tempdir().unwrap();
    let nkey = nkeys::KeyPair::new_user();
    let seed = nkey.seed().unwrap();
    let (operator_conf, creds) = operator_mode(dir.path());
    std::fs::write(
        dir.path().join("wrong.creds"),
        std::fs::read_to_string(&creds)
            .unwrap()
            .replace("SU", "SUX"),
    )
    .unwrap();
    type Case<'a> = (
        &'a str,
        String,
        Value,
        Vec<(&'a str, &'a str)>,
        Value,
        Vec<(&'a str, &'a str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "token",
            "authorization { token: \"s3cr3t-token-0123\" }\n".into(),
            json!({"token_env": "SW_NATS_TOKEN"}),
            vec![("SW_NATS_TOKEN", "s3cr3t-token-0123")],
            json!({"token_env": "SW_NATS_TOKEN"}),
            vec![("SW_NATS_TOKEN", "a-wrong-token")],
        ),
        (
            "user",
            "authorization { users = [ { user: \"sitewatch\", password: \"s3cr3t-pass-0123\" } ] }\n".into(),
            json!({"user": "sitewatch", "password_env": "SW_NATS_PASS"}),
            vec![("SW_NATS_PASS", "s3cr3t-pass-0123")],
            json!({"user": "sitewatch", "password_env": "SW_NATS_PASS"}),
            vec![("SW_NATS_PASS", "a-wrong-password")],
        ),
        (
            "nkey",
            format!("authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n", nkey.public_key()),
            json!({"nkey_seed_env": "SW_NATS_SEED"}),
            vec![("SW_NATS_SEED", seed.as_str())],
            json!({"nkey_seed_env": "SW_NATS_SEED"}),
            vec![],
        ),
        (
            "credentials",
            operator_conf,
            json!({"credentials": creds.display().to_string()}),
            vec![],
            json!({}),
            vec![],
        ),
    ];
    let other_seed = nkeys::KeyPair::new_user().seed().unwrap();
    for (what, server_conf, good, good_env, bad, bad_env) in cases {
        let Some(nats) = NatsCluster::single_with(&server_conf).await else {
            return;
        };
        let mut ok = node(&dir, &nats.urls(), &url, good, &good_env);
        assert!(
            leads(&mut ok).await,
            "{what}: the node leads; stderr: {}",
            ok.stderr()
        );
        ok.wait_for(Duration::from_secs(10), |e| e["event"] == "probe")
            .await
            .expect("probing");
        ok.signal(nix::sys::signal::Signal::SIGTERM);
        ok.wait_exit(Duration::from_secs(20)).await.expect("stops");
        let bad_env: Vec<(&str, &str)> = if what == "nkey" {
            vec![("SW_NATS_SEED", other_seed.as_str())]
        } else {
            bad_env
        };
        let mut wrong = node(&dir, &nats.urls(), &url, bad, &bad_env);
        let said = refused(&mut wrong)
            .await
            .unwrap_or_else(|| panic!("{what}: the refusal is said; stderr: {}", wrong.stderr()));
        assert!(
            !leads_within(&mut wrong, Duration::from_secs(3)).await,
            "{what}: a refused node does not lead"
        );
        for (_, secret) in good_env.iter().chain(&bad_env) {
            assert!(!said.to_string().contains(secret), "{what}: {said}");
            assert!(
                !wrong.stderr().contains(secret),
                "{what}: the log shows no secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_speaks_tls_to_nats_with_a_ca_and_a_client_certificate() {
    let target = TestServer::start(|_| Reply::ok("fine")).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::TestCa::new();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let (server_cert, server_key) = write_pem(
        dir.path(),
        "server",
        &ca.issue(&["127.0.0.1", "localhost"], false),
    );
    let (client_cert, client_key) =
        write_pem(dir.path(), "client", &ca.issue(&["sitewatch-n1"], false));
    let conf = format!(
        "tls {{\n  cert_file: \"{server_cert}\"\n  key_file: \"{server_key}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 2\n}}\n",
        dir.path().join("ca.pem").display()
    );
    let Some(nats) = NatsCluster::single_with(&conf).await else {
        return;
    };
    let urls: Vec<String> = nats
        .urls()
        .iter()
        .map(|u| u.replace("nats://", "tls://"))
        .collect();
    let tls = json!({"tls_ca": dir.path().join("ca.pem").display().to_string(),
                     "tls_cert": client_cert, "tls_key": client_key});
    let mut ok = node(&dir, &urls, &target.url("/"), tls, &[]);
    assert!(
        leads(&mut ok).await,
        "TLS with a client certificate: stderr: {}",
        ok.stderr()
    );
    ok.signal(nix::sys::signal::Signal::SIGTERM);
    ok.wait_exit(Duration::from_secs(20)).await.expect("stops");
    // Without the client certificate the server refuses the node, and it says why.
    let mut no_cert = node(
        &dir,
        &urls,
        &target.url("/"),
        json!({"tls_ca": dir.path().join("ca.pem").display().to_string()}),
        &[],
    );
    no_cert
        .wait_for(Duration::from_secs(15), |e| {
            e["event"] == "error"
                && e["source"] == "cluster"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("cannot connect to NATS")
        })
        .await
        .unwrap_or_else(|| panic!("the refusal is said; stderr: {}", no_cert.stderr()));
    assert!(!leads_within(&mut no_cert, Duration::from_secs(3)).await);
}

#[test]
fn auth_settings_are_checked_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let check = |cluster: Value, env: &[(&str, &str)]| {
        let path = dir.path().join("config.json");
        std::fs::write(&path, json!({"sites": [], "cluster": cluster}).to_string()).unwrap();
        let out = std::process::Command::new(crate::support::binary::BIN)
            .args(["check-config", "--print", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let base = |extra: Value| {
        let mut c = json!({"nats": ["nats://127.0.0.1:4222"], "location": "a"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let (code, out) = check(
        base(json!({"token_env": "SW_T"})),
        &[("SW_T", "tok-0123456789")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"auth\": \"token\"") && !out.contains("tok-0123456789"),
        "{out}"
    );
    let (code, out) = check(base(json!({"token_env": "SW_T"})), &[]);
    assert_eq!(code, 2);
    assert!(
        out.contains("cluster.token_env") && out.contains("SW_T"),
        "{out}"
    );
    let (code, out) = check(
        base(json!({"token_env": "SW_T", "user": "u", "password_env": "SW_P"})),
        &[("SW_T", "x"), ("SW_P", "y")],
    );
    assert_eq!(code, 2);
    assert!(out.contains("one way to authenticate"), "{out}");
    let (code, out) = check(base(json!({"tls_cert": "client.pem"})), &[]);
    assert_eq!(code, 2);
    assert!(out.contains("cluster.tls_key"), "{out}");
    let (code, out) = check(
        base(json!({"nkey_seed_env": "SW_S"})),
        &[("SW_S", "not-a-seed")],
    );
    assert_eq!(code, 2);
    assert!(out.contains("SU") && !out.contains("not-a-seed"), "{out}");
}
