use super::*;
use crate::timing::PhaseClock;
use crate::{Trust, tls_config};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A date `days` from now (negative: in the past), to the second.
fn in_days(days: i64) -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    now + time::Duration::days(days)
}

fn chrono_of(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap()
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(cn: &str, not_after: time::OffsetDateTime) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = in_days(-30);
    p.not_after = not_after;
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

fn intermediate(cn: &str, not_after: time::OffsetDateTime, by: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = in_days(-30);
    p.not_after = not_after;
    Ca {
        cert: p.signed_by(&key, &by.cert, &by.key).unwrap(),
        key,
    }
}

/// A leaf for `names`, valid from 10 days ago to `not_after`, with serial 0x01a2ff.
fn leaf(names: &[&str], not_after: time::OffsetDateTime, by: &Ca) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "FR");
    p.distinguished_name
        .push(DnType::OrganizationName, "Example, Inc.");
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.serial_number = Some(SerialNumber::from_slice(&[0x01, 0xa2, 0xff]));
    p.not_before = in_days(-10);
    p.not_after = not_after;
    (p.signed_by(&key, &by.cert, &by.key).unwrap(), key)
}

#[test]
fn a_certificate_parses_into_its_subject_issuer_sans_validity_serial_and_fingerprint() {
    let root = ca("Test Root", in_days(365));
    let not_after = in_days(3);
    let (cert, _) = leaf(&["site.test", "127.0.0.1", "::1"], not_after, &root);
    let info = parse_cert(cert.der()).unwrap();
    assert_eq!(info.subject, r"CN=site.test,O=Example\, Inc.,C=FR");
    assert_eq!(info.issuer, "CN=Test Root");
    assert_eq!(info.sans, ["site.test", "127.0.0.1", "::1"]);
    assert_eq!(info.not_before, chrono_of(in_days(-10)));
    assert_eq!(info.not_after, chrono_of(not_after));
    assert_eq!(info.serial, "1a2ff");
    assert_eq!(
        info.fingerprint_sha256,
        crate::hex(&Sha256::digest(cert.der()))
    );
    assert_eq!(info.fingerprint_sha256.len(), 64);
}

#[test]
fn names_are_escaped_as_rfc_4514_says() {
    assert_eq!(escape("plain"), "plain");
    assert_eq!(escape(r#"a,b+c"d\e<f>g;h"#), r#"a\,b\+c\"d\\e\<f\>g\;h"#);
    assert_eq!(escape("#lead"), r"\#lead");
    assert_eq!(escape(" both "), r"\ both\ ");
    assert_eq!(escape("in#side in"), "in#side in");
}

#[test]
fn a_certificate_that_does_not_parse_is_left_out_and_never_mistaken_for_the_leaf() {
    let root = ca("Test Root", in_days(365));
    let mid = intermediate("Test Intermediate", in_days(100), &root);
    let (cert, _) = leaf(&["site.test"], in_days(60), &mid);
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
    assert!(parse_cert(&garbage).is_err());
    assert!(parse_cert(&[]).is_err());

    let chain = parse_chain(&[cert.der().clone(), garbage.clone(), mid.cert.der().clone()]);
    let subjects: Vec<&str> = chain.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "CN=site.test,O=Example\\, Inc.,C=FR",
            "CN=Test Intermediate"
        ]
    );
    assert!(
        parse_chain(&[garbage, mid.cert.der().clone()]).is_empty(),
        "an unreadable leaf leaves no chain, not an intermediate in its place"
    );
}

fn handshake_of(chain: Vec<CertificateDer<'static>>, suite: Option<Suite>) -> Handshake {
    Handshake {
        server_name: Some("site.test".into()),
        chain,
        suite,
    }
}

const TLS13_AES128: Suite = Suite {
    version: "TLS 1.3",
    cipher: "TLS13_AES_128_GCM_SHA256",
};

#[test]
fn a_chain_is_parsed_once_and_its_details_shared() {
    let root = ca("Test Root", in_days(365));
    let (cert, _) = leaf(&["site.test"], in_days(60), &root);
    let memory = Memory::default();
    let h = handshake_of(vec![cert.der().clone()], Some(TLS13_AES128));
    let a = memory.details(&h);
    let b = memory.details(&h.clone());
    assert!(
        Arc::ptr_eq(&a, &b),
        "the second probe's details are the cached ones"
    );
    assert_eq!(a.version.as_deref(), Some("TLS 1.3"));
    assert_eq!(a.cipher.as_deref(), Some("TLS13_AES_128_GCM_SHA256"));
    assert_eq!(a.chain.len(), 1);
    let other_suite = Suite {
        version: "TLS 1.2",
        cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    };
    let c = memory.details(&handshake_of(vec![cert.der().clone()], Some(other_suite)));
    assert!(!Arc::ptr_eq(&a, &c), "another suite is other details");
    assert_eq!(c.version.as_deref(), Some("TLS 1.2"));
    let (renewed, _) = leaf(&["site.test"], in_days(90), &root);
    let d = memory.details(&handshake_of(
        vec![renewed.der().clone()],
        Some(TLS13_AES128),
    ));
    assert_ne!(d.chain, a.chain, "a renewed certificate is parsed anew");
}

#[test]
fn the_bounded_map_keeps_between_one_and_two_generations() {
    let mut m = Bounded::new(3);
    for i in 0..3 {
        m.insert(i, i * 10);
    }
    m.insert(3, 30);
    assert_eq!(m.len(), 4, "the full generation became the previous one");
    assert_eq!(
        m.get(&0),
        Some(0),
        "found in the previous generation, and moved back"
    );
    for i in 4..7 {
        m.insert(i, i * 10);
    }
    assert!(m.len() <= 6);
    assert_eq!(m.get(&1), None, "two generations ago: gone");
    assert_eq!(m.get(&6), Some(60));
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn a_probe_reports_the_latest_hops_chain_and_a_reused_connection_the_origins_last() {
    let root = ca("Test Root", in_days(365));
    let (cert, _) = leaf(&["site.test"], in_days(60), &root);
    let seen = || Some(handshake_of(vec![cert.der().clone()], Some(TLS13_AES128)));
    let site = url("https://site.test/");
    let m = Memory::default();

    // Plain HTTP at the end: no TLS, whatever an earlier hop had.
    assert_eq!(
        m.select(seen(), Some(&url("http://site.test/")), &site, true, true),
        None
    );
    // Not keep-alive, no handshake: none (a refused connection, or no new one).
    assert_eq!(m.select(None, Some(&site), &site, false, false), None);

    let first = m.select(seen(), Some(&site), &site, true, true).unwrap();
    assert_eq!(first.leaf().unwrap().sans, ["site.test"]);
    // A reused connection (no new one this probe) reports the origin's last chain.
    let reused = m.select(
        None,
        Some(&url("https://site.test/other")),
        &site,
        true,
        false,
    );
    assert!(reused.is_some_and(|r| Arc::ptr_eq(&r, &first)));
    // The same for another site on that origin, and not for another port.
    assert!(
        m.select(None, None, &url("https://site.test:443/x"), true, false)
            .is_some()
    );
    assert_eq!(
        m.select(None, None, &url("https://site.test:8443/"), true, false),
        None
    );
    // A new connection that got no handshake (refused) has no chain to report.
    assert_eq!(m.select(None, Some(&site), &site, true, true), None);
    // A handshake of an earlier hop to another host, then a reused connection to site.test.
    let elsewhere = Handshake {
        server_name: Some("other.test".into()),
        ..handshake_of(Vec::new(), Some(TLS13_AES128))
    };
    let last = m
        .select(Some(elsewhere.clone()), Some(&site), &site, true, true)
        .unwrap();
    assert!(Arc::ptr_eq(&last, &first), "the final hop's origin's chain");
    assert_eq!(
        m.select(Some(elsewhere), Some(&site), &site, false, true),
        None,
        "without keep-alive there is no reused connection to account for"
    );
    // A timeout before any response: the handshake seen is the latest hop's.
    let timed_out = m.select(seen(), None, &url("http://site.test/"), false, true);
    assert!(timed_out.is_some());
}

#[test]
fn a_handshake_matches_its_urls_host_by_name_or_address() {
    let h = |name: &str| Handshake {
        server_name: Some(name.into()),
        ..Handshake::default()
    };
    assert!(h("site.test").is_for(&url("https://SITE.test:8443/")));
    assert!(h("127.0.0.1").is_for(&url("https://127.0.0.1:8443/")));
    assert!(h("::1").is_for(&url("https://[::1]:8443/")));
    assert!(!h("site.test").is_for(&url("https://other.test/")));
    assert!(!h("site.test").is_for(&url("http://site.test/")));
    assert!(Handshake::default().is_for(&url("https://any.test/")));
}

#[test]
fn every_suite_of_the_provider_is_a_recording_copy_of_rings() {
    let ring = rustls::crypto::ring::default_provider();
    let ours = provider();
    let names = |p: &CryptoProvider| {
        p.cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&ours), names(&ring));
    for (a, b) in ours.cipher_suites.iter().zip(&ring.cipher_suites) {
        let (a, b) = match (a, b) {
            (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => (
                a.aead_alg as *const dyn Tls13AeadAlgorithm as *const u8,
                b.aead_alg as *const dyn Tls13AeadAlgorithm as *const u8,
            ),
            (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => (
                a.aead_alg as *const dyn Tls12AeadAlgorithm as *const u8,
                b.aead_alg as *const dyn Tls12AeadAlgorithm as *const u8,
            ),
            _ => panic!("versions differ"),
        };
        assert_ne!(a, b, "the AEAD is wrapped");
    }
    let again = provider();
    let first = |p: &CryptoProvider| match p.cipher_suites[0] {
        SupportedCipherSuite::Tls13(s) => s as *const Tls13CipherSuite,
        SupportedCipherSuite::Tls12(_) => panic!("ring lists TLS 1.3 first"),
    };
    assert_eq!(first(&again), first(&ours), "the copies are made once");
}

/// A rustls server for `chain` and `key`, TLS 1.2 only when `tls12`.
fn server(
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
    tls12: bool,
) -> rustls::ServerConnection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider);
    let builder = if tls12 {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .unwrap();
    let config = builder
        .with_no_client_auth()
        .with_single_cert(
            chain,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    rustls::ServerConnection::new(Arc::new(config)).unwrap()
}

/// Runs a handshake in memory between `client` and `server`.
fn pump(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
) -> Result<(), rustls::Error> {
    fn carry(
        from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    ) {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
        }
    }
    for _ in 0..20 {
        if !client.is_handshaking() {
            return Ok(());
        }
        carry(client, server);
        server.process_new_packets()?;
        carry(server, client);
        client.process_new_packets()?;
    }
    panic!("the handshake did not end");
}

/// Runs a handshake between the prober's TLS config for `trust` and `server` inside a probe's
/// clock; returns its result and what the hooks recorded.
async fn handshake(
    trust: Trust,
    mut server: rustls::ServerConnection,
) -> (Result<(), rustls::Error>, Option<Handshake>) {
    let clock = Arc::new(PhaseClock::default());
    let result = Arc::clone(&clock)
        .scope(async move {
            let config = Arc::new(tls_config(trust).unwrap());
            let name = ServerName::try_from("site.test").unwrap();
            let mut client = rustls::ClientConnection::new(config, name).unwrap();
            pump(&mut client, &mut server)
        })
        .await;
    (result, clock.take_handshake())
}

#[tokio::test]
async fn a_handshake_records_the_served_chain_and_the_negotiated_suite() {
    let root = ca("Test Root", in_days(365));
    let mid_expiry = in_days(30);
    let mid = intermediate("Test Intermediate", mid_expiry, &root);
    let (cert, key) = leaf(&["site.test"], in_days(60), &mid);
    let chain = vec![cert.der().clone(), mid.cert.der().clone()];
    for (tls12, version) in [(false, "TLS 1.3"), (true, "TLS 1.2")] {
        let (result, seen) = handshake(
            Trust::Roots(vec![root.cert.der().clone()]),
            server(chain.clone(), &key, tls12),
        )
        .await;
        result.unwrap();
        let seen = seen.expect("the hooks recorded the handshake");
        assert_eq!(seen.server_name.as_deref(), Some("site.test"));
        assert_eq!(
            seen.chain, chain,
            "{version}: leaf then intermediate, as served"
        );
        let suite = seen.suite.expect("the suite is recorded");
        assert_eq!(suite.version, version);
        let expected_prefix = if tls12 { "TLS_ECDHE_" } else { "TLS13_" };
        assert!(suite.cipher.starts_with(expected_prefix), "{suite:?}");
        let details = Memory::default().details(&seen);
        assert_eq!(details.chain[1].subject, "CN=Test Intermediate");
        assert_eq!(
            details.earliest_expiry(),
            Some(chrono_of(mid_expiry)),
            "the intermediate expires first"
        );
    }
}

#[tokio::test]
async fn a_chain_that_fails_verification_is_still_recorded() {
    let root = ca("Test Root", in_days(365));
    let expired_at = in_days(-2);
    let (cert, key) = {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["site.test".to_string()]).unwrap();
        p.not_before = in_days(-30);
        p.not_after = expired_at;
        (p.signed_by(&key, &root.cert, &root.key).unwrap(), key)
    };
    let (result, seen) = handshake(
        Trust::Roots(vec![root.cert.der().clone()]),
        server(vec![cert.der().clone()], &key, false),
    )
    .await;
    let err = result.expect_err("an expired certificate fails");
    assert!(err.to_string().contains("expired"), "{err}");
    let seen = seen.unwrap();
    assert_eq!(seen.chain, [cert.der().clone()]);
    assert_eq!(
        seen.suite.map(|s| s.version),
        Some("TLS 1.3"),
        "TLS 1.3 sets up its keys before the certificate"
    );
    let details = Memory::default().details(&seen);
    assert_eq!(details.earliest_expiry(), Some(chrono_of(expired_at)));

    // An unknown CA, and the platform verifier and `tls_insecure` record too.
    for trust in [
        Trust::Roots(vec![ca("Other Root", in_days(365)).cert.der().clone()]),
        Trust::Platform,
        Trust::Anything,
    ] {
        let insecure = matches!(trust, Trust::Anything);
        let (result, seen) = handshake(trust, server(vec![cert.der().clone()], &key, false)).await;
        assert_eq!(result.is_ok(), insecure);
        assert_eq!(seen.unwrap().chain, [cert.der().clone()]);
    }
}

#[test]
fn outside_a_probe_the_hooks_record_nothing_and_do_not_get_in_the_way() {
    let root = ca("Test Root", in_days(365));
    let (cert, key) = leaf(&["site.test"], in_days(60), &root);
    let config = Arc::new(tls_config(Trust::Roots(vec![root.cert.der().clone()])).unwrap());
    let mut client =
        rustls::ClientConnection::new(config, ServerName::try_from("site.test").unwrap()).unwrap();
    let mut server = server(vec![cert.der().clone()], &key, false);
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());
}
