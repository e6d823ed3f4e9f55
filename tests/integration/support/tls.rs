//! TLS fixtures: a throwaway CA (and intermediates under it), certificates (valid, expired, for
//! another host, self-signed, or valid until a chosen instant) made with rcgen, and an
//! HTTP/2-only server. The programmable HTTPS server is
//! `server::TestServer::start_tls`.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// Served after the leaves this CA issues: itself and the intermediates above it, when it is
    /// an intermediate (a root is not served).
    served: Vec<CertificateDer<'static>>,
}

/// A certificate chain and its key, ready for a server.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The chain and the key as PEM text, for servers that read files (Python's ssl, grpcio).
    pub fn pem(&self) -> (String, String) {
        use base64::Engine;
        let block = |label: &str, der: &[u8]| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        let chain: String = self.certs.iter().map(|c| block("CERTIFICATE", c)).collect();
        (chain, block("PRIVATE KEY", self.key.secret_der()))
    }
}

impl TestCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sitewatch test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert,
            key,
            served: Vec::new(),
        }
    }

    /// An intermediate CA named `cn`, signed by this one and valid from 30 days ago until
    /// `not_after`. The leaves it issues are served with it.
    pub fn intermediate(&self, cn: &str, not_after: time::OffsetDateTime) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut served = vec![cert.der().clone()];
        served.extend(self.served.iter().cloned());
        TestCa { cert, key, served }
    }

    /// A leaf with subject `CN={cn}` for `names`, valid from 30 days ago until `not_after`
    /// (which may be past), served with this CA's intermediates.
    pub fn issue_until(
        &self,
        cn: &str,
        names: &[&str],
        not_after: time::OffsetDateTime,
    ) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut certs = vec![cert.der().clone()];
        certs.extend(self.served.iter().cloned());
        Identity {
            certs,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `names` (host names or IP addresses), signed by this CA; `expired` makes it
    /// valid only in 2020.
    pub fn issue(&self, names: &[&str], expired: bool) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut certs = vec![cert.der().clone()];
        certs.extend(self.served.iter().cloned());
        Identity {
            certs,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// A self-signed certificate for `names` (no CA vouches for it).
pub fn self_signed(names: &[&str]) -> Identity {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    Identity {
        certs: vec![c.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_pair.serialize_der())),
    }
}

/// A rustls server config for `identity`, offering one ALPN protocol.
pub fn server_config(identity: Identity, alpn: Vec<u8>) -> rustls::ServerConfig {
    server_config_versions(identity, alpn, rustls::DEFAULT_VERSIONS)
}

/// [`server_config`] speaking only the given TLS versions.
pub fn server_config_versions(
    identity: Identity,
    alpn: Vec<u8>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.certs, identity.key)
        .unwrap();
    config.alpn_protocols = vec![alpn];
    config
}

/// A server that speaks only HTTP/2: over TLS it offers only `h2` by ALPN; without TLS (`None`)
/// it expects the HTTP/2 preface straight away (h2c prior knowledge).
pub struct Http2OnlyServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Http2OnlyServer {
    pub async fn start(identity: Option<Identity>) -> Self {
        let acceptor = identity.map(|id| {
            let config = server_config(id, b"h2".to_vec());
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"h2 only")),
                        ))
                    });
                    let h2 = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let _ = h2
                                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = h2
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Http2OnlyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTPS server answering `200 ok` to every request (one per connection), whose certificate
/// can be replaced while it runs: a renewal, as a site's operator does it.
pub struct RenewableServer {
    pub addr: SocketAddr,
    config: Arc<std::sync::Mutex<Arc<rustls::ServerConfig>>>,
    task: JoinHandle<()>,
}

impl RenewableServer {
    pub async fn start(identity: Identity) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Arc::new(std::sync::Mutex::new(Arc::new(server_config(
            identity,
            b"http/1.1".to_vec(),
        ))));
        let current = Arc::clone(&config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor =
                    tokio_rustls::TlsAcceptor::from(Arc::clone(&current.lock().unwrap()));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 8192];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { addr, config, task }
    }

    /// Serves `identity` from the next connection on.
    pub fn renew(&self, identity: Identity) {
        *self.config.lock().unwrap() = Arc::new(server_config(identity, b"http/1.1".to_vec()));
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

impl Drop for RenewableServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
