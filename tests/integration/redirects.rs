//! Phases across redirects: without pooled connections every hop of a redirect chain opens its
//! own connection, and each phase is the sum over the hops (as blackbox_exporter reports them); a
//! connection failure is classified by the hop that failed. The prober runs in-process against
//! servers on 127.0.0.1 (IP-literal URLs, so no hop has a DNS phase).

use crate::support::closed_port;
use crate::support::server::{Reply, Request, TestServer};
use crate::support::tls::{Identity, TestCa};
use sitewatch::clock::SystemClock;
use sitewatch::config::Config;
use sitewatch::measurement::{ErrorKind, Measurement};
use sitewatch::probe::{Prober, Target};
use std::sync::Arc;
use std::time::Duration;

/// Each TLS server waits this long before its handshake, so a handshake is long enough to tell
/// one from two on a busy machine.
const HANDSHAKE_DELAY: Duration = Duration::from_millis(50);
/// The first hop's redirect is this slow: a TLS phase that wrongly spanned the first exchange
/// (as it did when the first hop's TLS start was kept) would be this much too long.
const REDIRECT_DELAY: Duration = Duration::from_millis(100);
/// Probes per figure; medians are compared.
const SAMPLES: usize = 5;

/// A prober that trusts a throwaway CA, and that CA.
struct Setup {
    ca: TestCa,
    dir: tempfile::TempDir,
    prober: Prober,
}

impl Setup {
    fn new() -> Self {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self {
            ca,
            dir,
            prober: Prober::new(Arc::new(SystemClock::new())).unwrap(),
        }
    }

    /// A certificate for the loopback address, which the URLs name.
    fn identity(&self) -> Identity {
        self.ca.issue(&["127.0.0.1"], false)
    }

    /// An HTTPS server with a slow handshake.
    async fn tls_server(
        &self,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start_tls_delayed(self.identity(), HANDSHAKE_DELAY, handler).await
    }

    async fn probe(&self, url: &str) -> Measurement {
        let site = serde_json::json!({"sites": [
            {"name": "s", "url": url, "timeout": "5s", "tls_ca": "ca.pem"}
        ]});
        let config = Config::parse(
            &self.dir.path().join("config.json"),
            site.to_string().as_bytes(),
        )
        .unwrap();
        let mut target = Target::new(config.sites[0].clone());
        self.prober.prepare(&mut target).unwrap();
        self.prober
            .probe(&target, tokio::time::Instant::now())
            .await
            .expect("the monitor has what it needs to probe")
            .0
    }

    /// `SAMPLES` successful probes of `url`.
    async fn probes(&self, url: &str) -> Vec<Measurement> {
        let mut all = Vec::new();
        for _ in 0..SAMPLES {
            let m = self.probe(url).await;
            assert!(m.ok && m.status == Some(200), "{url}: {m:?}");
            all.push(m);
        }
        all
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn tls(ms: &[Measurement]) -> Duration {
    median(ms.iter().map(|m| m.phases.tls.unwrap()).collect())
}

/// Each of `ms` waited through `handshakes` servers' pre-handshake waits, and the median TLS
/// phase is within a busy machine's jitter of `expected` (what single-hop probes measured).
fn assert_tls(case: &str, ms: &[Measurement], handshakes: u32, expected: Duration) {
    for m in ms {
        // A server's wait starts at its accept, after the client's TCP handshake is done; a
        // client slow to start TLS after that spends the difference in its connect phase. So
        // per hop, connect + TLS covers the wait.
        let p = &m.phases;
        assert!(
            p.connect.unwrap() + p.tls.unwrap() >= HANDSHAKE_DELAY * handshakes,
            "{case}: {handshakes} handshake(s), each after the server's wait: {m:?}"
        );
    }
    let measured = tls(ms);
    assert!(
        measured.abs_diff(expected) < HANDSHAKE_DELAY / 2,
        "{case}: TLS {measured:?}, single-hop probes {expected:?}"
    );
}

/// What holds for every successful probe over IP literals: no DNS, a TCP connect and a TLS
/// handshake measured, and all of the connection setups inside the time to first byte.
fn assert_plausible(m: &Measurement) {
    let p = &m.phases;
    assert_eq!(p.dns, None, "IP literals need no DNS: {m:?}");
    let connect = p.connect.expect("connect measured");
    let tls = p.tls.expect("TLS measured");
    assert!(connect > Duration::ZERO, "{m:?}");
    assert!(tls > Duration::ZERO, "{m:?}");
    assert!(
        connect + tls <= m.ttfb.unwrap(),
        "every setup happens before the final headers: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_to_https_redirect_sums_connect_and_times_the_one_handshake() {
    let s = Setup::new();
    let https = s.tls_server(|_| Reply::ok("here")).await;
    let to = https.url("/");
    let http =
        TestServer::start(move |_| Reply::redirect(&to).delayed(REDIRECT_DELAY, Duration::ZERO))
            .await;

    let direct = s.probes(&https.url("/")).await;
    let redirected = s.probes(&http.url("/")).await;
    for m in direct.iter().chain(&redirected) {
        assert_plausible(m);
    }
    assert_eq!(http.exchanges().len(), SAMPLES, "one connection per probe");
    assert_eq!(
        https.exchanges().len(),
        2 * SAMPLES,
        "a new connection for the second hop"
    );
    // One handshake either way: the redirect adds no TLS time.
    assert_tls("http → https", &redirected, 1, tls(&direct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_to_https_redirect_sums_both_handshakes() {
    let s = Setup::new();
    let second = s.tls_server(|_| Reply::ok("here")).await;
    let to = second.url("/");
    let slow = |r: Reply| r.delayed(REDIRECT_DELAY, Duration::ZERO);
    let first = s
        .tls_server(move |r| match r.path.as_str() {
            "/elsewhere" => slow(Reply::redirect(&to)),
            // The same server again: the fresh client opens a second connection to it.
            "/again" => slow(Reply::redirect("/")),
            _ => Reply::ok("here"),
        })
        .await;

    let direct_first = s.probes(&first.url("/")).await;
    let direct_second = s.probes(&second.url("/")).await;
    let across = s.probes(&first.url("/elsewhere")).await;
    let same_port = s.probes(&first.url("/again")).await;
    for m in [&direct_first, &direct_second, &across, &same_port]
        .into_iter()
        .flatten()
    {
        assert_plausible(m);
    }
    // Direct, across (first hop), and two connections for each probe to the same port.
    assert_eq!(first.exchanges().len(), SAMPLES + SAMPLES + 2 * SAMPLES);
    assert_eq!(second.exchanges().len(), 2 * SAMPLES);

    let two = tls(&direct_first) + tls(&direct_second);
    assert_tls("to another port", &across, 2, two);
    assert_tls("to the same port", &same_port, 2, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_second_hop_after_tls_is_a_connect_failure() {
    let s = Setup::new();
    let to = format!("https://127.0.0.1:{}/", closed_port());
    let first = TestServer::start_tls(s.identity(), move |_| Reply::redirect(&to)).await;
    let m = s.probe(&first.url("/")).await;
    let error = m.error.as_ref().expect("the probe fails");
    assert_eq!(error.kind, ErrorKind::Connect, "{m:?}");
    assert_eq!(m.status, None, "{m:?}");
    // The first hop's setup is still counted.
    assert!(m.phases.tls.is_some_and(|t| t > Duration::ZERO), "{m:?}");
    assert!(m.phases.connect.is_some(), "{m:?}");
}
