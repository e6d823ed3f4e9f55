//! The cluster: several sitewatch nodes in several locations, one verdict, on NATS JetStream.
//!
//! Each node probes its location's share of the sites (the engine's `scheduler::share`:
//! rendezvous hashing over the live members, read from a heartbeat bucket), publishes its
//! measurements on a stream (subject per location and site, in core's `measurement::sample`
//! form) and consumes everyone's, so every node's recorder, display and `/metrics` see the
//! whole cluster. One leader at a time (`lease`) lets its recorder's alerts out; the alert
//! state lives in a bucket (the `book` module) that a new leader adopts. Without
//! NATS a node goes on alone. See docs/CLUSTER.md for the design and its failure modes.
//!
//! The one public entry point is [`Cluster::start`].

// The crates this one builds on, by the names its paths use.
use sitewatch_config as config;
use sitewatch_core::alert;
use sitewatch_core::event;
use sitewatch_core::measurement;
use sitewatch_core::retry;
use sitewatch_engine::recorder;
use sitewatch_engine::scheduler;
use sitewatch_store as store;

mod alerts;
pub(crate) mod book;
pub(crate) mod digest;
mod lease;
mod members;
mod stream;

use crate::config::Config;
use crate::config::cluster::ClusterConfig;
use crate::event::Bus;
use crate::recorder::RecorderInput;
use crate::store::Store;
use async_nats::jetstream::{self, kv};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::scheduler::share::{Share, SharedShare};
pub use book::AlertBook;

pub use crate::recorder::side::{NodeSide, Role};

/// The running cluster side of a node.
pub struct Cluster {
    share: SharedShare,
    stop: CancellationToken,
    task: JoinHandle<()>,
    summary: Arc<std::sync::Mutex<digest::Summary>>,
}

/// The streams and buckets, once set up.
#[derive(Clone)]
struct Nats {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    members: kv::Store,
    leader: kv::Store,
    alerts: kv::Store,
    configs: kv::Store,
    /// The cluster's committed alerts.
    alert_stream: jetstream::stream::Stream,
}

impl Cluster {
    /// Connects (in the background: a node starts without NATS) and runs the membership, the
    /// lease, the publisher (of what this node stores in `store`) and the consumer. Remote
    /// measurements and role changes go to `recorder`; `replay` is how far back the consumer
    /// starts (the longest window).
    pub async fn start(
        config: &Config,
        cluster: &ClusterConfig,
        store: Store,
        writer: crate::store::writer::StoreHandle,
        recorder: mpsc::Sender<RecorderInput>,
        bus: Bus,
        replay: Duration,
    ) -> (Self, NodeSide) {
        // The outbox mark first: what this node probes from now on is published, whenever
        // NATS answers.
        let marked = store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || {
            crate::store::cluster_outbox::init(&marked.connect_for_writing()?)
        })
        .await
        {
            bus.error(
                "cluster",
                None,
                format!("cannot set up this node's outbox in its store: {e}"),
            );
        }
        // Tells this run from an earlier one of the same node (and a second node of one name).
        let instance = format!("{:x}-{:x}", std::process::id(), fastrand::u64(..));
        let share =
            crate::scheduler::share::ShareCell::new(Share::alone(&cluster.node, &cluster.location));
        let book = AlertBook::default();
        let side = NodeSide {
            node: cluster.node.as_str().into(),
            location: cluster.location.as_str().into(),
            confirm: cluster.confirm,
            book: Arc::new(book.clone()),
        };
        let stop = CancellationToken::new();
        let summary = Arc::new(std::sync::Mutex::new(digest::Summary::of(config)));
        // Subscribed now: every alert this node commits reaches the stream, NATS or not yet.
        let committed = bus.subscribe();
        let ctx = Context {
            cfg: cluster.clone(),
            instance,
            recorder,
            bus,
            share: Arc::clone(&share),
            store,
            writer,
            book,
            stop: stop.clone(),
            summary: Arc::clone(&summary),
            replay,
            nats: Arc::new(tokio::sync::OnceCell::new()),
        };
        let publisher = tokio::spawn(alerts::publish(
            ctx.clone(),
            Arc::clone(&ctx.nats),
            committed,
            ctx.store.clone(),
        ));
        let task = tokio::spawn(async move {
            run(ctx).await;
            let _ = tokio::time::timeout(Duration::from_secs(4), publisher).await;
        });
        (
            Self {
                share,
                stop,
                task,
                summary,
            },
            side,
        )
    }

    /// The share of the sites this node probes, read on every tick.
    pub fn share(&self) -> SharedShare {
        Arc::clone(&self.share)
    }

    /// A reloaded config: the summary other nodes compare.
    pub fn reconfigure(&self, config: &Config) {
        // The next heartbeat carries its hash.
        *self.summary.lock().expect("summary lock") = digest::Summary::of(config);
    }

    /// Stops every loop; what is not published yet goes at the next start. A loop stuck in a
    /// NATS request is not waited for longer than a few seconds.
    pub async fn stop(self) {
        self.stop.cancel();
        // The task gives its loops 4 s, then aborts them.
        let _ = self.task.await;
    }
}

/// What every loop shares.
#[derive(Clone)]
struct Context {
    cfg: ClusterConfig,
    instance: String,
    recorder: mpsc::Sender<RecorderInput>,
    bus: Bus,
    share: SharedShare,
    store: Store,
    /// The store writer, for the other nodes' alerts.
    writer: crate::store::writer::StoreHandle,
    book: AlertBook,
    stop: CancellationToken,
    summary: Arc<std::sync::Mutex<digest::Summary>>,
    replay: Duration,
    /// NATS once set up.
    nats: Arc<tokio::sync::OnceCell<Nats>>,
}

/// The connection settings: the node's name, retries, and how it authenticates (a token,
/// user and password, an NKey seed or a `.creds` file) and speaks TLS (a CA file, a client
/// certificate). A URL's own `user:password@` (or `token@`) is used when nothing else is set:
/// async-nats reads credentials only from its options.
async fn connect_options(cfg: &ClusterConfig) -> Result<async_nats::ConnectOptions, String> {
    use crate::config::cluster::NatsAuth;
    let mut o = async_nats::ConnectOptions::new()
        .name(format!("sitewatch {}", cfg.node))
        .retry_on_initial_connect()
        .ping_interval(Duration::from_secs(5))
        .connection_timeout(Duration::from_secs(2));
    match &cfg.auth {
        NatsAuth::Token(t) => o = o.token(t.expose().clone()),
        NatsAuth::UserPassword { user, password } => {
            o = o.user_and_password(user.clone(), password.expose().clone());
        }
        NatsAuth::NKey(seed) => o = o.nkey(seed.expose().clone()),
        NatsAuth::Credentials(path) => {
            o = o.credentials_file(path).await.map_err(|e| {
                format!(
                    "cannot use the credentials file {} (cluster.credentials): {e}",
                    path.display()
                )
            })?;
        }
        NatsAuth::None => {
            let userinfo = cfg.nats.iter().find_map(|u| {
                let u = url::Url::parse(u).ok()?;
                let decode = crate::config::values::userinfo_part;
                (!u.username().is_empty()).then(|| (decode(u.username()), u.password().map(decode)))
            });
            match userinfo {
                Some((user, Some(password))) => o = o.user_and_password(user, password),
                Some((token, None)) => o = o.token(token),
                None => {}
            }
        }
    }
    if let Some(tls) = &cfg.tls {
        if let Some(ca) = &tls.ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        o = o.require_tls(true);
    }
    Ok(o)
}

async fn run(ctx: Context) {
    let options = match connect_options(&ctx.cfg).await {
        Ok(o) => o,
        Err(e) => {
            ctx.bus.error("cluster", None, e);
            return;
        }
    };
    // Why NATS cannot be used (refused credentials, a TLS failure), said once per streak. The
    // client keeps its callback as long as it retries, so the callback only passes events on:
    // a bus handle there would keep the outputs from ending at shutdown.
    let (events_tx, events) = mpsc::unbounded_channel::<async_nats::Event>();
    let options = options.event_callback(move |event| {
        let _ = events_tx.send(event);
        async {}
    });
    let reporter = tokio::spawn(report_connection(ctx.clone(), events));
    // Credentials in a URL were read into the options; the URLs connected to carry none.
    let urls: Vec<String> = ctx
        .cfg
        .nats
        .iter()
        .map(|u| match url::Url::parse(u) {
            Ok(mut url) if !url.username().is_empty() => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            _ => u.clone(),
        })
        .collect();
    let client = match options.connect(urls).await {
        Ok(c) => c,
        Err(e) => {
            ctx.bus.error(
                "cluster",
                None,
                format!("cannot use the NATS servers (cluster.nats): {e}"),
            );
            return;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(3))
        .max_ack_inflight(10_000)
        .backpressure_on_inflight(true)
        .build(client.clone());
    // The lease loop runs from the start: it tells the recorder to go on alone when NATS
    // stays unreachable.
    let nats = Arc::clone(&ctx.nats);
    let lease = tokio::spawn(lease::run(ctx.clone(), Arc::clone(&nats), client.clone()));
    let mut backoff = retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let set_up = loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => break None,
            r = setup(&js, &ctx.cfg) => match r {
                Ok(n) => break Some(n),
                Err(e) => {
                    tracing::warn!("cluster: cannot set up the stream and buckets yet: {e}");
                    tokio::select! {
                        _ = ctx.stop.cancelled() => break None,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    };
    let mut loops = vec![lease];
    if let Some(n) = set_up {
        let _ = nats.set(n.clone());
        loops.push(tokio::spawn(members::run(ctx.clone(), n.clone())));
        loops.push(tokio::spawn(stream::publish(
            ctx.clone(),
            n.clone(),
            ctx.store.clone(),
        )));
        loops.push(tokio::spawn(alerts::consume(
            ctx.clone(),
            n.clone(),
            ctx.writer.clone(),
        )));
        loops.push(tokio::spawn(stream::consume(ctx.clone(), n)));
    }
    ctx.stop.cancelled().await;
    reporter.abort();
    // Each loop ends at its next await of the stop; one stuck in a NATS request is aborted (it
    // holds a sender of the recorder's inputs, which must all go for the recorder to finish).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    for mut l in loops {
        if tokio::time::timeout_at(deadline, &mut l).await.is_err() {
            tracing::warn!("cluster: a NATS request did not end at shutdown; abandoned");
            l.abort();
        }
    }
}

/// Says why NATS cannot be used (refused credentials, a TLS failure), once per streak of the
/// same error.
async fn report_connection(ctx: Context, mut events: mpsc::UnboundedReceiver<async_nats::Event>) {
    let auth = ctx.cfg.auth.describe();
    let mut last: Option<String> = None;
    loop {
        let event = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        match event {
            async_nats::Event::Connected => last = None,
            async_nats::Event::ClientError(e) => {
                let text = e.to_string();
                if last.as_deref() == Some(text.as_str()) {
                    continue;
                }
                let hint = if text.contains("authorization") || text.contains("authentication") {
                    format!(
                        "; NATS refused this node's credentials (cluster auth: {auth}; token_env, user and password_env, nkey_seed_env or credentials)"
                    )
                } else if text.contains("tls") || text.contains("TLS") {
                    "; check cluster.tls_ca, tls_cert and tls_key".into()
                } else {
                    String::new()
                };
                ctx.bus.error(
                    "cluster",
                    None,
                    format!("cannot connect to NATS: {text}{hint}"),
                );
                last = Some(text);
            }
            _ => {}
        }
    }
}

/// Creates (or finds) the stream and the buckets.
async fn setup(js: &jetstream::Context, cfg: &ClusterConfig) -> anyhow::Result<Nats> {
    use jetstream::stream::{Config as StreamConfig, StorageType};
    let stream = js
        .get_or_create_stream(StreamConfig {
            name: cfg.stream(),
            subjects: vec![cfg.subjects()],
            max_age: cfg.stream_max_age,
            storage: StorageType::File,
            num_replicas: cfg.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let members = open_bucket(js, bucket(cfg, "members", cfg.heartbeat_ttl)).await?;
    let leader = open_bucket(js, lease_bucket(cfg)).await?;
    let alerts = open_bucket(js, bucket(cfg, "alerts", Duration::ZERO)).await?;
    let configs = open_bucket(js, bucket(cfg, "configs", Duration::ZERO)).await?;
    let alert_stream = js.get_or_create_stream(alerts::stream_config(cfg)).await?;
    Ok(Nats {
        alert_stream,
        js: js.clone(),
        stream,
        members,
        leader,
        alerts,
        configs,
    })
}

/// A bucket of the cluster: one entry per key, entries expire after `max_age` (zero: never).
fn bucket(cfg: &ClusterConfig, what: &str, max_age: Duration) -> kv::Config {
    kv::Config {
        bucket: cfg.bucket(what),
        history: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The leader's lease bucket (its entries live one lease TTL).
fn lease_bucket(cfg: &ClusterConfig) -> kv::Config {
    bucket(cfg, "leader", cfg.lease_ttl)
}

/// Deletes the lease bucket and creates it again: for a bucket whose stream no longer finds
/// the entry just written (see `lease`). The lease holds no state but who leads, and nobody
/// can lead through such a bucket.
async fn recreate_lease_bucket(js: &jetstream::Context, cfg: &ClusterConfig) -> anyhow::Result<()> {
    let config = lease_bucket(cfg);
    // Another node may have deleted it first: only the creation must succeed.
    let _ = js.delete_stream(format!("KV_{}", config.bucket)).await;
    open_bucket(js, config).await.map(drop)
}

/// A bucket: the existing one, or a new one with `config`. The bucket's stream is created here
/// as async-nats' `create_key_value` would make it: that call first reads the account info,
/// whose reply from nats-server 2.9 async-nats 0.51 cannot parse.
async fn open_bucket(js: &jetstream::Context, config: kv::Config) -> anyhow::Result<kv::Store> {
    use jetstream::stream::{Config as StreamConfig, DiscardPolicy};
    if let Ok(s) = js.get_key_value(config.bucket.clone()).await {
        return Ok(s);
    }
    let name = config.bucket.clone();
    js.get_or_create_stream(StreamConfig {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: config.history.max(1),
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the bucket {name}: {e}"))?;
    Ok(js.get_key_value(name).await?)
}
