//! The TLS session and the served certificate chain on every HTTPS probe, through the real
//! binary: rcgen certificates that expire in 3 days and in 60 days, an expired one (a `tls`
//! failure that still carries the chain), a chain whose intermediate expires before its leaf,
//! TLS 1.2, a keep-alive site whose reused connection still reports its chain, plain HTTP
//! (none), redirects (the latest hop's chain); and blackbox_exporter's TLS series on `/metrics`.

use crate::support::binary::{Running, is};
use crate::support::server::{Reply, TestServer};
use crate::support::tls::{Http2OnlyServer, TestCa};
use crate::support::{closed_port, http_client, prometheus};
use serde_json::{Value, json};
use std::time::Duration;

/// `days` from now (negative: ago), to the second, as certificates carry it.
fn in_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(days)
}

/// Seconds since the epoch of an RFC 3339 time in an event.
fn unix(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp()
}

fn site(name: &str, url: String, extra: Value) -> Value {
    let mut s =
        json!({"name": name, "url": url, "interval": "300ms", "timeout": "2s", "tls_ca": "ca.pem"});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_https_probe_reports_its_session_and_the_chain_it_was_served() {
    let ca = TestCa::new();
    let ok = |_: &_| Reply::ok("ok");
    let (soon_at, later_at, expired_at) = (in_days(3), in_days(60), in_days(-2));
    let (mid_at, chained_at) = (in_days(10), in_days(90));
    let soon =
        TestServer::start_tls(ca.issue_until("soon.test", &["localhost"], soon_at), ok).await;
    let later = TestServer::start_tls(
        ca.issue_until("later.test", &["localhost", "127.0.0.1"], later_at),
        ok,
    )
    .await;
    let expired = TestServer::start_tls(
        ca.issue_until("expired.test", &["localhost"], expired_at),
        ok,
    )
    .await;
    let mid = ca.intermediate("sitewatch test intermediate", mid_at);
    let chained = TestServer::start_tls(
        mid.issue_until("chained.test", &["localhost"], chained_at),
        ok,
    )
    .await;
    let tls12 =
        TestServer::start_tls12(ca.issue_until("tls12.test", &["localhost"], later_at), ok).await;
    // HTTP/2 keeps its one connection for every probe of a keep-alive site.
    let keep =
        Http2OnlyServer::start(Some(ca.issue_until("keep.test", &["localhost"], later_at))).await;
    let plain = TestServer::start(ok).await;
    // Redirects: the latest hop's chain, or none when it is plain HTTP.
    let to_later = later.localhost_url("/");
    let redirect_tls = TestServer::start_tls(
        ca.issue_until("first-hop.test", &["localhost"], later_at),
        move |_| Reply::redirect(&to_later),
    )
    .await;
    let to_plain = plain.url("/");
    let redirect_plain = TestServer::start_tls(
        ca.issue_until("first-hop.test", &["localhost"], later_at),
        move |_| Reply::redirect(&to_plain),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let config = json!({
        "sites": [
            site("to-https", redirect_tls.localhost_url("/"), json!({})),
            site("to-http", redirect_plain.localhost_url("/"), json!({})),
            site("soon", soon.localhost_url("/"), json!({})),
            site("later", later.localhost_url("/"), json!({})),
            site("expired", expired.localhost_url("/"), json!({})),
            site("chained", chained.localhost_url("/"), json!({})),
            site("tls12", tls12.localhost_url("/"), json!({})),
            site("keep", format!("https://localhost:{}/", keep.addr.port()), json!({"keep_alive": true})),
            {"name": "plain", "url": plain.url("/"), "interval": "300ms"},
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]}
    });
    let mut run = Running::start_with(dir, &config, &[]);
    run.collect_for(Duration::from_millis(2500)).await;
    let probes = |site: &str| -> Vec<Value> {
        let p: Vec<Value> = run.of("probe", site).into_iter().cloned().collect();
        assert!(
            p.len() >= 2,
            "{site}: too few probes: {p:?}\nstderr: {}",
            run.stderr()
        );
        p
    };

    for (name, cn, sans, not_after) in [
        ("soon", "CN=soon.test", json!(["localhost"]), soon_at),
        (
            "later",
            "CN=later.test",
            json!(["localhost", "127.0.0.1"]),
            later_at,
        ),
    ] {
        for p in probes(name) {
            assert_eq!(p["ok"], true, "{p}");
            let tls = &p["tls"];
            assert_eq!(tls["version"], "TLS 1.3", "{name}: {p}");
            let cipher = tls["cipher"].as_str().unwrap_or_default();
            assert!(
                cipher.starts_with("TLS13_")
                    && (cipher.contains("AES") || cipher.contains("CHACHA20")),
                "{name}: an IANA TLS 1.3 suite: {cipher}"
            );
            let leaf = &tls["leaf"];
            assert_eq!(leaf["subject"], cn, "{name}: {leaf}");
            assert_eq!(leaf["issuer"], "CN=sitewatch test CA", "{name}: {leaf}");
            assert_eq!(leaf["sans"], sans, "{name}: {leaf}");
            assert_eq!(
                unix(&leaf["not_after"]),
                not_after.unix_timestamp(),
                "{name}"
            );
            assert!(
                unix(&leaf["not_before"]) < unix(&p["time"]),
                "{name}: {leaf}"
            );
            assert!(
                leaf["serial"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())),
                "{name}: {leaf}"
            );
            assert_eq!(tls["chain"].as_array().unwrap().len(), 1, "{name}: {tls}");
            assert_eq!(tls["chain"][0], *leaf);
            assert_eq!(unix(&tls["earliest_expiry"]), not_after.unix_timestamp());
        }
    }

    // An expired certificate: a tls failure that still tells what was served.
    for p in probes("expired") {
        assert_eq!(p["ok"], false);
        assert_eq!(p["error"]["kind"], "tls", "{p}");
        let tls = &p["tls"];
        assert_eq!(tls["leaf"]["subject"], "CN=expired.test", "{p}");
        assert_eq!(
            unix(&tls["leaf"]["not_after"]),
            expired_at.unix_timestamp(),
            "{p}"
        );
        assert_eq!(unix(&tls["earliest_expiry"]), expired_at.unix_timestamp());
        assert_eq!(
            tls["version"], "TLS 1.3",
            "TLS 1.3 has its keys before the certificate: {p}"
        );
    }

    // The intermediate expires before the leaf: the earliest expiry is the intermediate's.
    for p in probes("chained") {
        assert_eq!(p["ok"], true, "{p}");
        let tls = &p["tls"];
        let chain = tls["chain"].as_array().unwrap();
        let subjects: Vec<&str> = chain
            .iter()
            .map(|c| c["subject"].as_str().unwrap())
            .collect();
        assert_eq!(
            subjects,
            ["CN=chained.test", "CN=sitewatch test intermediate"],
            "{tls}"
        );
        assert_eq!(chain[0]["issuer"], "CN=sitewatch test intermediate");
        assert_eq!(chain[1]["issuer"], "CN=sitewatch test CA");
        assert_eq!(unix(&tls["leaf"]["not_after"]), chained_at.unix_timestamp());
        assert_eq!(unix(&chain[1]["not_after"]), mid_at.unix_timestamp());
        assert_eq!(unix(&tls["earliest_expiry"]), mid_at.unix_timestamp());
    }

    for p in probes("tls12") {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["tls"]["version"], "TLS 1.2", "{p}");
        let cipher = p["tls"]["cipher"].as_str().unwrap_or_default();
        assert!(cipher.starts_with("TLS_ECDHE_"), "{p}");
        assert_eq!(p["tls"]["leaf"]["subject"], "CN=tls12.test");
    }

    // Keep-alive: the first probe handshakes; the later ones reuse its connection (no TLS phase)
    // and still report the chain they talk over.
    let keep_probes = probes("keep");
    assert!(
        keep_probes[1..].iter().any(|p| p["tls_ms"].is_null()),
        "the connection is reused: {keep_probes:?}"
    );
    for p in &keep_probes {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["tls"]["leaf"]["subject"], "CN=keep.test", "{p}");
        assert_eq!(
            unix(&p["tls"]["earliest_expiry"]),
            later_at.unix_timestamp()
        );
    }

    for p in probes("plain") {
        assert!(p["tls"].is_null(), "plain HTTP has no TLS: {p}");
    }
    for p in probes("to-https") {
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(
            p["tls"]["leaf"]["subject"], "CN=later.test",
            "the latest hop's: {p}"
        );
    }
    for p in probes("to-http") {
        assert_eq!(p["ok"], true, "{p}");
        assert!(p["tls"].is_null(), "the latest hop is plain HTTP: {p}");
    }
}

/// The value of the sample of `family` whose labels contain `has`, if any.
fn sample(text: &str, family: &str, has: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(has))
        .map(|l| l.rsplit_once(' ').unwrap().1.to_owned())
        .next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_earliest_expiry_the_version_and_the_leaf_of_tls_sites() {
    let ca = TestCa::new();
    let ok = |_: &_| Reply::ok("ok");
    let (leaf_at, mid_at, expired_at) = (in_days(60), in_days(3), in_days(-2));
    let mid = ca.intermediate("sitewatch test intermediate", mid_at);
    let soon = TestServer::start_tls(
        mid.issue_until("soon.test", &["localhost", "127.0.0.1"], leaf_at),
        ok,
    )
    .await;
    let expired = TestServer::start_tls(
        ca.issue_until("expired.test", &["localhost"], expired_at),
        ok,
    )
    .await;
    let plain = TestServer::start(ok).await;
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let config = json!({
        "sites": [
            site("soon", soon.localhost_url("/"), json!({})),
            site("expired", expired.localhost_url("/"), json!({})),
            {"name": "plain", "url": plain.url("/"), "interval": "300ms"},
        ],
        "alerting": {"window": "1s"},
        "dashboard": {"views": [{"window": "1m", "every": "1s"}]},
        "server": {"listen": format!("127.0.0.1:{port}")},
        "location": "lab-1",
    });
    let mut run = Running::start_with(dir, &config, &[]);
    run.wait_for(Duration::from_secs(10), is("probe", "expired"))
        .await
        .unwrap_or_else(|| panic!("a probe of expired; stderr: {}", run.stderr()));
    run.wait_for(Duration::from_secs(10), is("probe", "soon"))
        .await
        .expect("a probe of soon");

    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = http_client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let both = ["soon", "expired"].iter().all(|s| {
            sample(
                &text,
                "probe_ssl_earliest_cert_expiry",
                &format!("site=\"{s}\""),
            )
            .is_some()
        });
        if both || tokio::time::Instant::now() > deadline {
            break text;
        }
        run.collect_for(Duration::from_millis(200)).await;
    };

    let expiry = |site: &str| {
        sample(
            &text,
            "probe_ssl_earliest_cert_expiry",
            &format!("site=\"{site}\""),
        )
        .unwrap_or_else(|| panic!("no expiry of {site}:\n{text}"))
    };
    assert_eq!(
        expiry("soon"),
        mid_at.unix_timestamp().to_string(),
        "the intermediate's, which expires first"
    );
    assert_eq!(expiry("expired"), expired_at.unix_timestamp().to_string());
    assert!(
        text.contains("# TYPE probe_ssl_earliest_cert_expiry gauge"),
        "{text}"
    );
    let soon_labels = format!(
        r#"site="soon",url="https://localhost:{}/",location="lab-1""#,
        soon.addr.port()
    );
    assert_eq!(
        sample(
            &text,
            "probe_tls_version_info",
            &format!(r#"{soon_labels},version="TLS 1.3""#)
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    let chain = text
        .lines()
        .find(|l| l.starts_with("probe_ssl_last_chain_info{") && l.contains(r#"site="soon""#))
        .unwrap_or_else(|| panic!("no chain info of soon:\n{text}"));
    assert!(
        chain.contains(r#"subject="CN=soon.test""#)
            && chain.contains(r#"issuer="CN=sitewatch test intermediate""#)
            && chain.contains(r#"subjectalternative="localhost,127.0.0.1""#),
        "{chain}"
    );
    let fingerprint = chain
        .split("fingerprint_sha256=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default();
    assert!(
        fingerprint.len() == 64 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
        "{chain}"
    );
    assert!(chain.ends_with(" 1"), "{chain}");
    assert_eq!(
        sample(&text, "probe_ssl_earliest_cert_expiry", r#"site="plain""#),
        None,
        "plain HTTP has no TLS series"
    );
    prometheus::promtool_check_metrics(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
}

/// A certificate close to expiry warns once (`cert_expiring`), a renewal clears it
/// (`cert_renewed`), a far one never warns, and an expired one is a down alert (kind `tls`)
/// rather than a warning; a site's own `cert_warning` widens the warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_close_to_expiry_warns_until_it_is_renewed() {
    use crate::support::binary::alert;
    use crate::support::tls::RenewableServer;
    let ca = TestCa::new();
    let (soon, renewal) = (in_days(3), in_days(90));
    let renewing =
        RenewableServer::start(ca.issue_until("renewing.test", &["localhost"], soon)).await;
    let far = RenewableServer::start(ca.issue_until("far.test", &["localhost"], in_days(60))).await;
    let cautious =
        RenewableServer::start(ca.issue_until("cautious.test", &["localhost"], in_days(60))).await;
    let expired =
        RenewableServer::start(ca.issue_until("expired.test", &["localhost"], in_days(-1))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let mut run = Running::start_with(
        dir,
        &json!({
            "sites": [
                site("renewing", renewing.url("/"), json!({})),
                site("far", far.url("/"), json!({})),
                site("cautious", cautious.url("/"), json!({"alerting": {"cert_warning": "90d"}})),
                site("expired", expired.url("/"), json!({})),
            ],
            "alerting": {"window": "1s"},
            "dashboard": {"views": [{"window": "10s", "every": "500ms"}]}
        }),
        &[],
    );
    let warned = run
        .wait_for(Duration::from_secs(10), alert("cert_expiring", "renewing"))
        .await
        .unwrap_or_else(|| panic!("a warning; stderr: {}", run.stderr()));
    let message = warned["message"].as_str().unwrap();
    assert!(
        message.starts_with("Website renewing certificate expires in 2 days (not after ")
            || message.starts_with("Website renewing certificate expires in 3 days (not after "),
        "{message}"
    );
    assert_eq!(warned["condition"], "cert");
    assert_eq!(unix(&warned["cert_expiry"]), soon.unix_timestamp());
    run.wait_for(Duration::from_secs(5), alert("cert_expiring", "cautious"))
        .await
        .expect("60 days is within its own 90-day warning");
    run.wait_for(Duration::from_secs(10), alert("down", "expired"))
        .await
        .expect("an expired certificate is a failed probe, so an outage");
    run.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "stats"
            && v["sites"][0]["cert_warning"] == true
            && v["sites"][0]["cert_days"]
                .as_i64()
                .is_some_and(|d| (2..=3).contains(&d))
    })
    .await
    .expect("the report shows the warning and the days left");

    renewing.renew(ca.issue_until("renewing.test", &["localhost"], renewal));
    let renewed = run
        .wait_for(Duration::from_secs(10), alert("cert_renewed", "renewing"))
        .await
        .expect("the renewal clears the warning");
    assert_eq!(unix(&renewed["cert_expiry"]), renewal.unix_timestamp());
    assert_eq!(renewed["down_since"], warned["time"]);
    run.collect_for(Duration::from_millis(600)).await;
    for (site, kinds) in [
        ("renewing", vec!["cert_expiring", "cert_renewed"]),
        ("far", vec![]),
        ("cautious", vec!["cert_expiring"]),
        ("expired", vec!["down"]),
    ] {
        let got: Vec<_> = run
            .of("alert", site)
            .iter()
            .map(|a| a["kind"].clone())
            .collect();
        assert_eq!(got, kinds, "{site}");
    }
}
