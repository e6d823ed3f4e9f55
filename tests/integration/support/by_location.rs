//! A probe target that answers by who asks: the prober's source address tells its cluster
//! location (127.0.0.2 and .4 are location a, 127.0.0.3 is b), and the test sets which
//! locations see it down (503). It logs who asked for what, when.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn location(ip: IpAddr) -> &'static str {
    match ip.to_string().as_str() {
        "127.0.0.2" | "127.0.0.4" => "a",
        "127.0.0.3" => "b",
        _ => "?",
    }
}

/// Answers 503 to the locations marked down, 200 to the others; logs who asked for what.
pub struct Target {
    pub port: u16,
    down: Arc<Mutex<HashSet<&'static str>>>,
    log: Arc<Mutex<Vec<(Instant, IpAddr, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down: Arc<Mutex<HashSet<&'static str>>> = Arc::default();
        let log: Arc<Mutex<Vec<(Instant, IpAddr, String)>>> = Arc::default();
        let (d, l) = (Arc::clone(&down), Arc::clone(&log));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                let (d, l) = (Arc::clone(&d), Arc::clone(&l));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let ip = peer.ip();
                            l.lock().unwrap().push((
                                Instant::now(),
                                ip,
                                req.uri().path().to_owned(),
                            ));
                            let code = if d.lock().unwrap().contains(location(ip)) {
                                503
                            } else {
                                200
                            };
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(code)
                                        .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                            b"ok",
                                        )))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            port,
            down,
            log,
            task,
        }
    }

    pub fn set_down(&self, locations: &[&'static str]) {
        *self.down.lock().unwrap() = locations.iter().copied().collect();
    }

    /// Who probed each site since `since`: site path to the source addresses.
    pub fn probers_since(&self, since: Instant) -> HashMap<String, HashSet<IpAddr>> {
        let mut out: HashMap<String, HashSet<IpAddr>> = HashMap::new();
        for (t, ip, path) in self.log.lock().unwrap().iter() {
            if *t >= since {
                out.entry(path.clone()).or_default().insert(*ip);
            }
        }
        out
    }

    /// The longest time without a probe from `loc` of `path` between `from` and `to`.
    pub fn longest_gap(&self, path: &str, loc: &str, from: Instant, to: Instant) -> Duration {
        let times: Vec<Instant> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, ip, p)| p == path && location(*ip) == loc && *t >= from && *t <= to)
            .map(|(t, _, _)| *t)
            .collect();
        let mut edges = vec![from];
        edges.extend(times);
        edges.push(to);
        edges
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}
