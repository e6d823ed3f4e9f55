//! The HTTP server: `/metrics` for Prometheus, a JSON API under `/api/v1`, the live event
//! stream (SSE) and a status page at `/`. Off unless configured (`server` in the config, or
//! `--listen`), on loopback by default. It only consumes: a feeder thread takes the bus's events
//! into the [`board::Board`] (what the page and the API show) and the [`metrics::Metrics`];
//! history and reports are read from the store with the `report` command's own code.
//!
//! Hardening: one accept loop with a cap on open connections (beyond it a `503` and close), a
//! header read timeout (slowloris), a cap on the request head (16 KiB), a cap on event-stream
//! clients; every path but `/healthz` needs the bearer token when one is configured.

mod api;
pub mod board;
pub mod metrics;
pub mod page;

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
pub const MAX_CONNECTIONS: usize = 512;
/// Event-stream clients at once.
pub const MAX_STREAMS: usize = 64;
/// A request's head must arrive within this (a trickling client is cut off).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of a request head.
pub const MAX_HEAD: usize = 16 * 1024;

/// What the request handlers share.
pub struct Shared {
    pub board: Arc<board::Board>,
    pub metrics: Arc<metrics::Metrics>,
    pub store: Store,
    pub bus: Bus,
    pub token: ArcSwap<Option<crate::config::notify::Secret<String>>>,
    /// The scheduler's probes in flight, once it runs.
    pub in_flight: std::sync::OnceLock<InFlight>,
    /// The config's site settings, for `/api/v1/sites`.
    pub config: ArcSwap<crate::config::Config>,
    pub streams: Arc<Semaphore>,
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
    /// Binds `cfg.listen` and serves; the feeder thread starts taking the bus's events.
    pub async fn start(
        cfg: &ServerConfig,
        config: &crate::config::Config,
        store: Store,
        bus: Bus,
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
            token: ArcSwap::from_pointee(cfg.auth_token.clone()),
            in_flight: std::sync::OnceLock::new(),
            config: ArcSwap::from_pointee(config.clone()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
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
        self.shared.token.store(Arc::new(cfg.auth_token.clone()));
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
    if !cfg.listen.ip().is_loopback() && cfg.auth_token.is_none() {
        bus.error(
            "server",
            None,
            format!(
                "the server listens on {} without a token: anyone who can reach it sees the \
                 sites and their state; set server.auth_token_env",
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
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                          content-length: 35\r\nconnection: close\r\n\r\n{\"error\":\"too many connections\"}\r\n",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(io, service);
            let _ = conn.await;
            drop(permit);
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
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
    board.with_sites(|sites| page_of(sites, &reports, views, config, history, daily))
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
                    state: s.status(),
                    maintenance_until: s.maintenance.as_ref().map(|o| o.end),
                    cert_days: s
                        .cert_expiry
                        .map(|e| crate::alert::days_left(e, chrono::Utc::now())),
                    cert_warning: s.cert_warning,
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
        events_path: "/api/v1/events".into(),
    }
}
