//! What the probe saw of a connection's TLS handshake: the name verified, the served chain
//! and the negotiated suite. The timing hooks keep it per probe; the TLS hooks fill it in.

use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use url::Url;

/// What the hooks saw of the latest connection's handshake.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The name the certificate was verified for (the URL's host); `None` when the handshake
    /// did not reach the certificate.
    pub server_name: Option<String>,
    /// The served chain as DER: the end entity first, then the intermediates in the server's
    /// order.
    pub chain: Vec<CertificateDer<'static>>,
    /// The negotiated suite, once its keys were set up.
    pub suite: Option<Suite>,
}

impl Handshake {
    /// Whether this handshake was for the connection `url` was fetched over: its host, over
    /// https (a handshake that never reached the certificate is taken to be the latest hop's).
    pub(crate) fn is_for(&self, url: &Url) -> bool {
        url.scheme() == "https"
            && match (&self.server_name, url.host()) {
                (None, _) => true,
                (Some(name), Some(url::Host::Domain(d))) => name.eq_ignore_ascii_case(d),
                (Some(name), Some(url::Host::Ipv4(ip))) => name.parse() == Ok(IpAddr::V4(ip)),
                (Some(name), Some(url::Host::Ipv6(ip))) => name.parse() == Ok(IpAddr::V6(ip)),
                (Some(_), None) => false,
            }
    }
}

/// A negotiated protocol version and cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// `TLS 1.3`, `TLS 1.2`.
    pub version: &'static str,
    /// The IANA name, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
}
