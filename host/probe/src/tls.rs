//! The TLS session and the served certificate chain of HTTPS probes.
//!
//! Once a connection is inside reqwest, rustls tells the client neither the chain it was served
//! nor the suite it negotiated (reqwest's `TlsInfo` has only the leaf). So the prober installs
//! two more hooks, which write into the probe's `PhaseClock` through
//! the same task-local as the phase timings:
//! - a `RecordingVerifier` around every server-certificate verifier the prober builds. It copies
//!   the DER of the end-entity certificate and the intermediates *before* delegating, so a chain
//!   that fails verification (expired, unknown CA) is still recorded on the failed measurement;
//! - a crypto provider ([`provider`]) whose cipher suites are copies of ring's, made once, with an
//!   AEAD algorithm that notes its suite when rustls asks it for a record encrypter or decrypter:
//!   that happens exactly when the negotiated suite's keys are set up (TLS 1.3: right after the
//!   ServerHello, before the certificate is verified; TLS 1.2: after it, so a TLS 1.2 handshake
//!   that fails on its certificate has a chain but no suite).
//!
//! Each new connection starts a new hop (the connector layer's `call`) and forgets the previous
//! hop's handshake, so a redirect reports the chain of its latest hop.
//!
//! The DER is parsed after the probe, with x509-parser, and the result is cached by a hash of
//! chain and suite ([`Memory`]): probes of an unchanged site share one `Arc<TlsDetails>` and
//! parse nothing. Sites with `keep_alive: true` mostly reuse connections and see no handshake;
//! the last details seen for an origin are kept, so a probe over a reused connection still
//! reports the chain it talks over. They are kept per origin rather than per site because the
//! shared pooled client lets two sites on one origin share a connection.

use super::handshake::{Handshake, Suite};
use super::timing;
use crate::measurement::{CertInfo, TlsDetails};
use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::crypto::cipher::{
    AeadKey, Iv, KeyBlockShape, MessageDecrypter, MessageEncrypter, Tls12AeadAlgorithm,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CipherSuiteCommon, ConnectionTrafficSecrets, DigitallySignedStruct, DistinguishedName,
    ProtocolVersion, SignatureScheme, SupportedCipherSuite, Tls12CipherSuite, Tls13CipherSuite,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock, Mutex};
use url::Url;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

/// A server-certificate verifier that records the served chain into the probe's handshake
/// record, then lets `inner` decide.
#[derive(Debug)]
pub(crate) struct RecordingVerifier(pub Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        timing::record_handshake(|h| {
            h.server_name = Some(server_name.to_str().into_owned());
            h.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        });
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.0.root_hint_subjects()
    }
}

/// ring's provider with every cipher suite replaced by a copy that records itself when used
/// (see the module doc). The copies are made and leaked once per process: rustls takes suites
/// as `&'static`.
pub fn provider() -> Arc<CryptoProvider> {
    static SUITES: LazyLock<Vec<SupportedCipherSuite>> = LazyLock::new(|| {
        rustls::crypto::ring::default_provider()
            .cipher_suites
            .into_iter()
            .map(recording_suite)
            .collect()
    });
    Arc::new(CryptoProvider {
        cipher_suites: SUITES.clone(),
        ..rustls::crypto::ring::default_provider()
    })
}

fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLS 1.3",
        ProtocolVersion::TLSv1_2 => "TLS 1.2",
        ProtocolVersion::TLSv1_1 => "TLS 1.1",
        ProtocolVersion::TLSv1_0 => "TLS 1.0",
        _ => "unknown",
    }
}

fn recording_suite(s: SupportedCipherSuite) -> SupportedCipherSuite {
    let suite = Suite {
        version: version_name(s.version().version),
        cipher: s.suite().as_str().unwrap_or("unknown"),
    };
    let common = |c: &CipherSuiteCommon| CipherSuiteCommon {
        suite: c.suite,
        hash_provider: c.hash_provider,
        confidentiality_limit: c.confidentiality_limit,
    };
    match s {
        SupportedCipherSuite::Tls13(t) => {
            let aead: &'static Recording<dyn Tls13AeadAlgorithm> = Box::leak(Box::new(Recording {
                suite,
                inner: t.aead_alg,
            }));
            SupportedCipherSuite::Tls13(Box::leak(Box::new(Tls13CipherSuite {
                common: common(&t.common),
                hkdf_provider: t.hkdf_provider,
                aead_alg: aead,
                quic: t.quic,
            })))
        }
        SupportedCipherSuite::Tls12(t) => {
            let aead: &'static Recording<dyn Tls12AeadAlgorithm> = Box::leak(Box::new(Recording {
                suite,
                inner: t.aead_alg,
            }));
            SupportedCipherSuite::Tls12(Box::leak(Box::new(Tls12CipherSuite {
                common: common(&t.common),
                prf_provider: t.prf_provider,
                kx: t.kx,
                sign: t.sign,
                aead_alg: aead,
            })))
        }
    }
}

/// An AEAD algorithm of `suite` that notes the suite in the probe's handshake record whenever
/// rustls makes an encrypter or decrypter with it, and otherwise is `inner`.
struct Recording<A: ?Sized + 'static> {
    suite: Suite,
    inner: &'static A,
}

impl<A: ?Sized> Recording<A> {
    fn note(&self) {
        let suite = self.suite;
        timing::record_handshake(|h| h.suite = Some(suite));
    }
}

impl Tls13AeadAlgorithm for Recording<dyn Tls13AeadAlgorithm> {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        self.note();
        self.inner.encrypter(key, iv)
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        self.note();
        self.inner.decrypter(key, iv)
    }

    fn key_len(&self) -> usize {
        self.inner.key_len()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        self.inner.extract_keys(key, iv)
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

impl Tls12AeadAlgorithm for Recording<dyn Tls12AeadAlgorithm> {
    fn encrypter(&self, key: AeadKey, iv: &[u8], extra: &[u8]) -> Box<dyn MessageEncrypter> {
        self.note();
        self.inner.encrypter(key, iv, extra)
    }

    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        self.note();
        self.inner.decrypter(key, iv)
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        self.inner.key_block_shape()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        self.inner.extract_keys(key, iv, explicit)
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// Parsed chains and the details last seen per origin, shared by every probe of a prober.
#[derive(Debug)]
pub struct Memory {
    parsed: Mutex<Bounded<[u8; 32], Arc<TlsDetails>>>,
    by_origin: Mutex<Bounded<String, Arc<TlsDetails>>>,
}

/// Distinct chains (with their suite) kept parsed: each of two generations holds this many, so
/// the chains of the last 8,192 to 16,384 distinct sites probed stay parsed.
const PARSED_KEPT: usize = 8192;
/// Origins of keep-alive sites whose last details are kept, per generation.
const ORIGINS_KEPT: usize = 8192;

impl Default for Memory {
    fn default() -> Self {
        Self {
            parsed: Mutex::new(Bounded::new(PARSED_KEPT)),
            by_origin: Mutex::new(Bounded::new(ORIGINS_KEPT)),
        }
    }
}

impl Memory {
    /// The details of a probe. `seen` is what the hooks recorded of the latest new connection,
    /// `last_url` the URL of the latest hop when known (the response's, or the failed
    /// request's), `connected` whether the probe set up any new connection at all.
    pub fn select(
        &self,
        seen: Option<Handshake>,
        last_url: Option<&Url>,
        site_url: &Url,
        keep_alive: bool,
        connected: bool,
    ) -> Option<Arc<TlsDetails>> {
        let url = last_url.unwrap_or(site_url);
        if let Some(h) = &seen
            && (last_url.is_none() || h.is_for(url))
        {
            let details = self.details(h);
            if keep_alive && last_url.is_some() {
                self.lock_origins()
                    .insert(origin(url), Arc::clone(&details));
            }
            return Some(details);
        }
        if url.scheme() != "https" || !keep_alive {
            return None;
        }
        // No handshake for the latest hop: it went over a reused connection, unless the latest
        // new connection never reached a handshake (refused, or cut off before TLS).
        if seen.is_some() || !connected {
            self.lock_origins().get(&origin(url))
        } else {
            None
        }
    }

    /// The parsed form of a handshake's chain and suite, parsed at most once while cached.
    pub fn details(&self, h: &Handshake) -> Arc<TlsDetails> {
        let mut hasher = Sha256::new();
        if let Some(s) = h.suite {
            hasher.update(s.version);
            hasher.update([0]);
            hasher.update(s.cipher);
        }
        hasher.update([0xff]);
        for der in &h.chain {
            hasher.update((der.len() as u64).to_be_bytes());
            hasher.update(der);
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(d) = self.lock_parsed().get(&key) {
            return d;
        }
        let details = Arc::new(TlsDetails {
            version: h.suite.map(|s| s.version.to_owned()),
            cipher: h.suite.map(|s| s.cipher.to_owned()),
            chain: parse_chain(&h.chain),
        });
        self.lock_parsed().insert(key, Arc::clone(&details));
        details
    }

    fn lock_parsed(&self) -> std::sync::MutexGuard<'_, Bounded<[u8; 32], Arc<TlsDetails>>> {
        // A poisoned cache is still a valid cache.
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_origins(&self) -> std::sync::MutexGuard<'_, Bounded<String, Arc<TlsDetails>>> {
        self.by_origin.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `host:port` of an URL, the key a connection pool shares connections by.
fn origin(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// A map of at most two generations of `cap` entries: when the current one is full it becomes
/// the previous one (the one before is dropped), and a hit in the previous one moves the entry
/// back. An LRU's effect without its bookkeeping.
#[derive(Debug)]
struct Bounded<K, V> {
    cap: usize,
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    fn get(&mut self, k: &K) -> Option<V>
    where
        K: Clone,
    {
        if let Some(v) = self.current.get(k) {
            return Some(v.clone());
        }
        let v = self.previous.remove(k)?;
        self.insert(k.clone(), v.clone());
        Some(v)
    }

    fn insert(&mut self, k: K, v: V) {
        if self.current.len() >= self.cap && !self.current.contains_key(&k) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(k, v);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The served chain, parsed. A certificate that does not parse is left out (and logged at
/// debug); if that is the leaf, nothing of the chain is kept, so no intermediate is ever taken
/// for the leaf.
pub(crate) fn parse_chain(chain: &[CertificateDer<'_>]) -> Vec<CertInfo> {
    let mut out = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        match parse_cert(der) {
            Ok(c) => out.push(c),
            Err(e) => {
                tracing::debug!(position = i, error = %e, "a served certificate does not parse");
                if i == 0 {
                    return Vec::new();
                }
            }
        }
    }
    out
}

/// One certificate's fields.
pub(crate) fn parse_cert(der: &[u8]) -> Result<CertInfo, x509_parser::error::X509Error> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
        x509_parser::nom::Err::Incomplete(_) => x509_parser::error::X509Error::InvalidCertificate,
    })?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().filter_map(san).collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "a served certificate's subject alternative names do not parse");
            Vec::new()
        }
    };
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(if t.timestamp() < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    };
    Ok(CertInfo {
        subject: dn(cert.subject()),
        issuer: dn(cert.issuer()),
        sans,
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        serial: format!("{:x}", cert.tbs_certificate.serial),
        fingerprint_sha256: crate::hex(&Sha256::digest(der)),
    })
}

/// A DNS name or an IP address of the subject alternative names.
fn san(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(d) => Some((*d).to_owned()),
        GeneralName::IPAddress(b) => match b.len() {
            4 => <[u8; 4]>::try_from(*b)
                .ok()
                .map(|a| Ipv4Addr::from(a).to_string()),
            16 => <[u8; 16]>::try_from(*b)
                .ok()
                .map(|a| Ipv6Addr::from(a).to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// A distinguished name as RFC 4514 writes it: the last RDN first, `,` between RDNs, `+`
/// between the attributes of one, short names (`CN`, `O`) where known, else the dotted OID.
fn dn(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute(a: &AttributeTypeAndValue<'_>) -> String {
    use x509_parser::objects::{oid_registry, oid2abbrev};
    let ty = oid2abbrev(a.attr_type(), oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| a.attr_type().to_id_string());
    match text(a) {
        Some(v) => format!("{ty}={}", escape(&v)),
        // RFC 4514: a value that is not a string is `#` and its hex.
        None => format!("{ty}=#{}", crate::hex(a.as_slice())),
    }
}

/// An attribute value as text, for the string types certificates use.
fn text(a: &AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;
    if let Ok(s) = a.as_str() {
        return Some(s.to_owned());
    }
    let data = a.as_slice();
    match a.attr_value().tag() {
        Tag::T61String | Tag::VisibleString | Tag::GeneralString | Tag::GraphicString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::BmpString if data.len().is_multiple_of(2) => String::from_utf16(
            &data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .ok(),
        _ => None,
    }
}

/// RFC 4514 section 2.4: the specials escaped with a backslash, and a leading `#` or space and a
/// trailing space.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
