//! The HTTP server: `/metrics` for Prometheus, a JSON API under `/api/v1`, the live event
//! stream (SSE) and a status page at `/`. Off unless configured (`server` in the config, or
//! `--listen`), on loopback by default. It only consumes: a feeder thread takes the bus's events
//! into the [`board::Board`] (what the page and the API show) and the [`metrics::Metrics`];
//! history and reports are read from the store with the `report` command's own code.
//!
//! Hardening: one accept loop with a cap on open connections (beyond it a `503` and close), a
//! header read timeout (slowloris), a cap on the request head (16 KiB), a cap on event-stream
//! clients and on the bytes each may have waiting (one that does not read is disconnected);
//! who may read and change what is [`access`]'s: tokens with a scope, the public parts, the
//! access log; without tokens only requests addressed to this server's own names are answered
//! (DNS rebinding) and changes are refused.

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::clock;
use sitewatch_core::error_chain;
use sitewatch_core::event;
use sitewatch_core::maintenance;
use sitewatch_core::measurement;
use sitewatch_core::ms;
use sitewatch_core::wire;
use sitewatch_engine::report;
use sitewatch_engine::scheduler;
use sitewatch_store as store;
use sitewatch_store::history;

pub mod access;
mod api;
pub mod badge;
pub mod board;
pub mod feed;
mod incidents;
pub mod metrics;
pub mod page;
mod write;
mod xml;

use crate::config::ServerConfig;
use crate::event::{Bus, Received};
use crate::scheduler::InFlight;
use crate::store::Store;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Connections served at once; beyond it new ones get `503` and are closed.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// Event-stream clients at once.
pub(crate) const MAX_STREAMS: usize = 64;
/// A request's head must arrive within this (a trickling client is cut off).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of a request head.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Estimated bytes of events one event-stream client may have waiting (beside the newest stats
/// of each view, which replace each other): beyond it its probe events are shed, and a client
/// that then takes nothing for [`STREAM_PATIENCE`] is disconnected.
pub(crate) const STREAM_BUDGET: usize = 1024 * 1024;
/// How long a client over its budget may go without reading.
pub(crate) const STREAM_PATIENCE: Duration = Duration::from_secs(5);

/// Closes one connection from inside a request handler's reach (an event stream whose client
/// stopped reading is never polled again, so only its connection's task can end it). Put in
/// every request's extensions by the accept loop.
#[derive(Clone)]
pub(crate) struct CloseConnection(pub(crate) CancellationToken);

/// What the request handlers share.
pub struct Shared {
    pub board: Arc<board::Board>,
    pub metrics: Arc<metrics::Metrics>,
    pub store: Store,
    pub bus: Bus,
    /// The tokens and what is public.
    pub access: ArcSwap<access::Access>,
    /// Cancelled when the tokens change: event streams opened with the old ones end.
    pub token_epoch: ArcSwap<CancellationToken>,
    /// The host names a request may be addressed to when there is no token.
    pub hosts: ArcSwap<AllowedHosts>,
    /// The scheduler's probes in flight, once it runs.
    pub in_flight: std::sync::OnceLock<InFlight>,
    /// The config's site settings, for `/api/v1/sites`.
    pub config: ArcSwap<crate::config::Config>,
    pub streams: Arc<Semaphore>,
    /// The push sites' pings (`/push/<token>`), read by their ticks.
    pub push: Arc<sitewatch_probe::push::Board>,
    /// The config file the write API changes (`None`: no write API).
    pub config_path: Option<std::path::PathBuf>,
    /// The write API's changes, one at a time.
    pub edits: tokio::sync::Mutex<()>,
    /// Badges drawn in the last minute.
    pub badges: badge::Cache,
    /// The status page's daily bars and when they were read.
    pub daily: std::sync::Mutex<Option<(std::time::Instant, Arc<crate::history::DailyBars>)>>,
}

/// A running server.
pub struct Server {
    pub listen: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Why the server could not start or move.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

impl Server {
    /// Binds `cfg.listen` and serves; the feeder thread starts taking the bus's events. The
    /// write API changes `config_path`.
    pub async fn start(
        cfg: &ServerConfig,
        config: &crate::config::Config,
        store: Store,
        bus: Bus,
        push: Arc<sitewatch_probe::push::Board>,
        config_path: Option<std::path::PathBuf>,
    ) -> Result<Self, BindError> {
        let listener = bind(cfg.listen).await?;
        let board = Arc::new(board::Board::default());
        let metrics = Arc::new(metrics::Metrics::new(&config.location));
        feed(bus.subscribe(), Arc::clone(&board), Arc::clone(&metrics));
        let shared = Arc::new(Shared {
            board,
            metrics,
            store,
            bus,
            access: ArcSwap::from_pointee(access::Access::new(cfg)),
            token_epoch: ArcSwap::from_pointee(CancellationToken::new()),
            hosts: ArcSwap::from_pointee(AllowedHosts::new(cfg)),
            in_flight: std::sync::OnceLock::new(),
            config: ArcSwap::from_pointee(config.clone()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            push,
            config_path,
            edits: tokio::sync::Mutex::new(()),
            badges: badge::Cache::default(),
            daily: std::sync::Mutex::new(None),
        });
        warn_if_open(cfg, &shared.bus);
        let stop = CancellationToken::new();
        let listen = listener.local_addr().unwrap_or(cfg.listen);
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), stop.clone()));
        tracing::info!(%listen, "server listening");
        Ok(Self {
            listen,
            shared,
            stop,
            task,
        })
    }

    /// The sites' store history for the page: seeds current outages' start times.
    pub async fn seed_from_store(&self) {
        let store = self.shared.store.clone();
        let last = tokio::task::spawn_blocking(move || {
            let conn = store.connect().ok()?;
            store.last_alerts(&conn).ok()
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let down = last
            .into_iter()
            .filter_map(|((site, _), a)| {
                let t = crate::alert::open_alert(&a, crate::alert::Condition::Down)?.time;
                Some((site, t))
            })
            .collect();
        self.shared.board.seed_down(down);
    }

    /// Applies a reloaded server config: a new token at once; a new address is bound first, and
    /// only then the old listener closed (a failure keeps the old one serving). The rest of the
    /// config reaches the server through [`Self::set_config`].
    pub async fn apply(&mut self, cfg: &ServerConfig) -> Result<(), BindError> {
        let new = Arc::new(access::Access::new(cfg));
        let old = self.shared.access.swap(Arc::clone(&new));
        let same = old.same_tokens(&new);
        if !same {
            // Streams opened with the old token (or none) must not outlive it.
            let epoch = self
                .shared
                .token_epoch
                .swap(Arc::new(CancellationToken::new()));
            epoch.cancel();
        }
        self.shared.hosts.store(Arc::new(AllowedHosts::new(cfg)));
        warn_if_open(cfg, &self.shared.bus);
        if cfg.listen == self.listen {
            return Ok(());
        }
        let listener = bind(cfg.listen).await?;
        let stop = CancellationToken::new();
        let listen = listener.local_addr().unwrap_or(cfg.listen);
        let task = tokio::spawn(serve(listener, Arc::clone(&self.shared), stop.clone()));
        let old_stop = std::mem::replace(&mut self.stop, stop);
        let old_task = std::mem::replace(&mut self.task, task);
        old_stop.cancel();
        let _ = old_task.await;
        self.listen = listen;
        Ok(())
    }

    /// Gives `/metrics` the scheduler's count of probes in flight.
    pub fn set_in_flight(&self, in_flight: InFlight) {
        let _ = self.shared.in_flight.set(in_flight);
    }

    /// Updates what `/api/v1/sites` says of the config.
    pub fn set_config(&self, config: &crate::config::Config) {
        self.shared.config.store(Arc::new(config.clone()));
    }

    /// Stops serving. The feeder thread ends by itself once the bus is gone.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

fn warn_if_open(cfg: &ServerConfig, bus: &Bus) {
    if !cfg.listen.ip().is_loopback() && cfg.tokens.is_empty() {
        bus.error(
            "server",
            None,
            format!(
                "the server listens on {} without a token: anyone who can reach it sees the \
                 sites and their state; set server.tokens",
                cfg.listen
            ),
        );
    }
}

/// Takes the bus's events into the board and the metrics, on a thread of its own (the bus's
/// subscriptions block). Probe events it falls behind on are counted, not waited for.
fn feed(
    mut sub: crate::event::Subscription,
    board: Arc<board::Board>,
    metrics: Arc<metrics::Metrics>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitewatch-server-feed".into())
        .spawn(move || {
            while let Some(received) = sub.recv_blocking() {
                match received {
                    Received::Event(e) => {
                        board.observe(&e);
                        metrics.observe(&e);
                        if let crate::event::Event::Watching(w) = &*e {
                            let keep = w
                                .sites
                                .iter()
                                .map(|s| (s.site.to_string(), s.url.to_string()))
                                .collect();
                            metrics.retain_sites(&keep);
                        }
                    }
                    Received::Dropped(n) => metrics.dropped(n),
                }
            }
        })
        .expect("spawning the server's feeder thread")
}

/// The accept loop: a connection per task, at most [`MAX_CONNECTIONS`].
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let router = api::router(Arc::clone(&shared));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (mut stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors: wait for some to come back rather than spin.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            connections.spawn(async move {
                let _ = stream.write_all(&too_many_connections()).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let close = CancellationToken::new();
        let service = {
            let router = router.clone();
            let close = CloseConnection(close.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(close.clone());
                let mut router = router.clone();
                async move {
                    tower_service::Service::call(&mut router, request.map(axum::body::Body::new))
                        .await
                }
            })
        };
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                // Dropping the connection closes the socket, even mid-write.
                _ = close.cancelled() => {}
            }
            // However it ended: its event stream's watchdog (and stream slot) go with it.
            close.cancel();
            drop(permit);
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// The whole answer sent beyond the connection cap.
fn too_many_connections() -> Vec<u8> {
    let body = "{\"error\":\"too many connections\"}\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The names a request without a token may be addressed to (its `Host`, port aside): this
/// server's own. A page on another name that resolves to this machine (DNS rebinding) is
/// refused, so it cannot read the API from a browser.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHosts {
    names: Vec<String>,
    /// The listen address is unspecified (`0.0.0.0`, `[::]`): clients reach it by any of the
    /// machine's addresses, so any IP literal (which no rebinding page can be addressed by).
    any_ip: bool,
}

impl AllowedHosts {
    pub fn new(cfg: &ServerConfig) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        names.push(cfg.listen.ip().to_string());
        names.extend(cfg.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        Self {
            names,
            any_ip: cfg.listen.ip().is_unspecified(),
        }
    }

    /// Whether a request with this `Host` header value may be answered.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().trim_end_matches('.');
        // `[v6]:port`, `[v6]`, `name:port`, `name`.
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((inner, _)) => inner,
                None => return false,
            }
        } else {
            host.rsplit_once(':').map_or(host, |(n, _)| n)
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.any_ip && name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        self.names.contains(&name)
    }
}

/// The status page's data: the board's sites and reports, and the stored `history` (newest
/// first).
pub fn page_data(
    board: &board::Board,
    config: &crate::config::Config,
    history: &[crate::alert::Alert],
    daily: &crate::history::DailyBars,
) -> page::PageData {
    let reports = board.reports();
    let views = board.views();
    let offline = board.offline();
    let mut page =
        board.with_sites(|sites| page_of(sites, &reports, views, config, history, daily));
    page.offline = offline;
    page
}

fn page_of(
    sites: &[board::SiteState],
    reports: &[Arc<crate::event::StatsReport>],
    views: Vec<String>,
    config: &crate::config::Config,
    history: &[crate::alert::Alert],
    daily: &crate::history::DailyBars,
) -> page::PageData {
    // Each view's report by site: the page is O(sites), not O(sites²).
    let by_view: Vec<std::collections::HashMap<&str, &crate::event::SiteReport>> = views
        .iter()
        .map(|v| {
            reports
                .iter()
                .find(|r| r.view == *v)
                .map(|r| r.sites.iter().map(|x| (&*x.site, x)).collect())
                .unwrap_or_default()
        })
        .collect();
    page::PageData {
        title: "sitewatch".into(),
        location: config.location.clone(),
        generated: chrono::Utc::now(),
        threshold: config.alerting.threshold,
        sites: sites
            .iter()
            .map(|s| {
                let report_of = |view: usize| by_view[view].get(&*s.site).copied();
                page::SiteRow {
                    name: s.site.to_string(),
                    url: s.url.to_string(),
                    group: s.tags.first().cloned(),
                    down: s.down,
                    down_since: s.down_since,
                    held: s.held.clone(),
                    state: s.status(),
                    maintenance_until: s.maintenance.as_ref().map(|o| o.end),
                    cert_days: s
                        .cert_expiry
                        .map(|e| crate::alert::days_left(e, chrono::Utc::now())),
                    cert_warning: s.cert_warning,
                    domain_warning: s.domain_warning,
                    flapping: s.flapping,
                    slo: s.slo,
                    availability: (0..views.len())
                        .map(|v| report_of(v).and_then(|r| r.stats.availability))
                        .collect(),
                    probes: s
                        .probes
                        .iter()
                        .map(|m| page::ProbeDot {
                            time: m.time,
                            ok: m.ok,
                            status: m.status,
                            response_ms: m.response_time.map(crate::ms),
                        })
                        .collect(),
                    last_error: (!views.is_empty())
                        .then(|| report_of(0))
                        .flatten()
                        .and_then(|r| r.last_error.clone()),
                    daily: daily
                        .get(&(s.site.to_string(), s.url.to_string()))
                        .cloned()
                        .unwrap_or_default(),
                    steps: s
                        .probes
                        .back()
                        .map(|m| {
                            m.steps
                                .iter()
                                .map(|st| page::StepCell {
                                    name: st.name.to_string(),
                                    duration_ms: crate::ms(st.duration),
                                    failed: st.failed,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect(),
        incidents: sites
            .iter()
            .filter(|s| s.down)
            .map(|s| page::Incident {
                site: s.site.to_string(),
                since: s.down_since.unwrap_or_else(chrono::Utc::now),
            })
            .collect(),
        history: history
            .iter()
            .take(50)
            .map(|a| page::HistoryItem {
                time: a.time,
                site: a.site.to_string(),
                kind: a.kind.as_str().to_owned(),
                message: a.message.clone(),
            })
            .collect(),
        views,
        events_path: Some("/api/v1/events".into()),
        offline: None,
        announcements: config
            .announcements
            .iter()
            .filter(|a| a.shown_at(chrono::Utc::now()))
            .map(|a| page::Banner {
                message: a.message.clone(),
                end: a.end,
            })
            .collect(),
        posted: Vec::new(),
        upcoming: upcoming(config, chrono::Utc::now()),
    }
}

/// How far ahead the page lists maintenance windows.
const UPCOMING: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The maintenance windows open now or opening within [`UPCOMING`], soonest first: each once,
/// with the sites it covers (`None` when it covers every site).
fn upcoming(
    config: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<page::Upcoming> {
    use std::collections::BTreeMap;
    type Key = (
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
    );
    let mut by_window: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for site in &config.sites {
        for o in site.maintenance.upcoming(now, 20) {
            if o.start > now + UPCOMING {
                break;
            }
            by_window
                .entry((o.start, o.end, o.name.clone()))
                .or_default()
                .push(site.name.clone());
        }
    }
    let every = config.sites.len();
    by_window
        .into_iter()
        .take(50)
        .map(|((start, end, name), sites)| page::Upcoming {
            name,
            start,
            end,
            sites: (sites.len() < every || every == 0).then_some(sites),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(listen: &str, extra: &[&str]) -> AllowedHosts {
        AllowedHosts::new(&ServerConfig {
            allowed_hosts: extra.iter().map(|h| h.to_string()).collect(),
            ..ServerConfig::at(listen.parse().unwrap())
        })
    }

    #[test]
    fn only_this_servers_own_names_are_allowed_without_a_token() {
        let h = hosts("127.0.0.1:9184", &["status.example.com"]);
        for ok in [
            "127.0.0.1:9184",
            "localhost",
            "LOCALHOST:80",
            "[::1]:9184",
            "status.example.com",
            "status.example.com.:9184",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example:9184",
            "10.0.0.1:9184",
            "[::1",
            "",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        // Listening on every address: any IP literal (no rebinding page is addressed by one).
        let any = hosts("0.0.0.0:9184", &[]);
        assert!(any.allows("192.168.1.20:9184") && any.allows("[fe80::1]:9184"));
        assert!(!any.allows("nas.local:9184"));
    }

    #[test]
    fn the_503_beyond_the_cap_has_the_right_length() {
        let answer = String::from_utf8(too_many_connections()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
