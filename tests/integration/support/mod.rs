//! Shared test fixtures: programmable HTTP servers on 127.0.0.1 and a runner for the real binary.

pub mod binary;
pub mod hostile;
pub mod plugins;
pub mod server;
pub mod tls;
pub mod victoria;

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A plain HTTP client for talking to test servers.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; the tests use ring, like the product.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
