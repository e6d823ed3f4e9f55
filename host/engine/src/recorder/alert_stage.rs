//! The ordered alert stream: alerts leave the recorder here, in the order the recorder decided
//! them, formatted or not. Rendering with a formatter plugin takes up to the plugin's time limit,
//! so it runs off the recorder, several alerts at once, but each is delivered (to the store and
//! the bus, and to the notifiers' outboxes) only after every alert decided before it: a bounded,
//! ordered queue of render futures. The stage is one task that the recorder owns and waits for.
//!
//! With a store, the stage hands each alert to the store writer, which publishes it on the bus
//! once it is committed; without one (tests), it publishes it itself.
//!
//! The stage also routes each alert to the notifiers that want it, and renders it with each
//! notifier's own formatter: the store writes the alert and its notifications in one
//! transaction, so a crash loses neither or both.

use crate::alert::Alert;
use crate::config::PluginUse;
use crate::event::{Bus, Event};
use crate::plugin::set::PluginSet;
use crate::store::writer::{Queued, Record, StoreHandle};
use futures_util::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Alerts rendered at once; the next waits for a place.
const RENDERING: usize = 16;

/// Renders alerts into a formatter's text (a plugin in the product, a stand-in in tests).
pub trait AlertFormatter: Send + Sync + 'static {
    /// What the formatter is called in messages.
    fn name(&self) -> &str;

    /// The rendered text, or why there is none.
    fn render<'a>(
        &'a self,
        alert: &'a Alert,
        recent_errors: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;
}

/// An alert with what the formatter may use, on its way out.
pub(crate) struct Decided {
    pub alert: Alert,
    /// The site's latest error messages, newest first.
    pub recent_errors: Vec<String>,
    /// The formatter configured when the alert was decided.
    pub formatter: Option<Arc<dyn AlertFormatter>>,
    /// The notifiers configured when the alert was decided.
    pub routes: Arc<[Route]>,
    /// The site's tags, for notifiers that route by tag.
    pub tags: Arc<[String]>,
    /// A cluster leader's alert book and the site's open conditions after this alert: written
    /// before the alert is stored and its notifications queued.
    pub book: Option<crate::recorder::side::Entry>,
}

/// Where alerts may go: one notifier, what it wants and its formatter.
pub(crate) struct Route {
    pub notifier: crate::config::notify::NotifierConfig,
    pub formatter: Option<Arc<dyn AlertFormatter>>,
}

impl Route {
    /// The routes of `notifiers`, their formatters from `plugins`.
    pub fn all(
        notifiers: &[crate::config::notify::NotifierConfig],
        plugins: Option<&Arc<PluginSet>>,
    ) -> Arc<[Route]> {
        notifiers
            .iter()
            .map(|n| Route {
                notifier: n.clone(),
                formatter: n.formatter.as_ref().and_then(|u| {
                    Some(Arc::new(PluginFormatter {
                        plugin: u.clone(),
                        plugins: Arc::clone(plugins?),
                    }) as Arc<dyn AlertFormatter>)
                }),
            })
            .collect()
    }
}

/// The running stage: send alerts in, then [`AlertStage::finish`] to wait for the last one out.
pub(crate) struct AlertStage {
    tx: mpsc::UnboundedSender<Decided>,
    task: JoinHandle<()>,
}

impl AlertStage {
    pub fn start(bus: Bus, store: Option<StoreHandle>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Decided>();
        let task = tokio::spawn(async move {
            let decided = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            let bus_for_render = bus.clone();
            let rendered = decided
                .map(|d| render(d, bus_for_render.clone()))
                .buffered(RENDERING);
            // What is ready leaves together: a cluster leader writes the alert book for the
            // whole group first (each site's newest state, the sites at once), then delivers
            // the group in order. An alert storm thus costs a few round trips to NATS, not one
            // per alert.
            let mut groups = rendered.ready_chunks(BOOK_GROUP);
            while let Some(group) = groups.next().await {
                let written = write_book(&group).await;
                for (alert, queued, _) in group {
                    // A leader that lost the lease before the book took the write leaves the
                    // alert to the next leader, which decides it from the book as it was.
                    if written.get(&alert.site) == Some(&false) {
                        continue;
                    }
                    // With a store, the store writer publishes the alert once it is stored
                    // (with its notifications): an alert shown is an alert a restart knows.
                    match &store {
                        Some(store) => store.send(Record::Alert(alert, queued)),
                        None => bus.send(Event::Alert(alert)),
                    }
                }
            }
        });
        Self { tx, task }
    }

    /// Queues an alert; it leaves after every alert queued before it.
    pub fn send(&self, decided: Decided) {
        // The task lives until `finish`, which takes `self`: the receiver is there.
        let _ = self.tx.send(decided);
    }

    /// Waits until every queued alert has left. A panic of the stage goes on in the caller.
    pub async fn finish(self) {
        drop(self.tx);
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Alerts whose book entries are written at once.
const BOOK_GROUP: usize = 256;

/// Writes the book entry of each site of `group` that has one: the site's newest state (each
/// entry is the whole state after its alert, so the last one of a site is the one to keep).
/// Returns whether each site's entry was written.
async fn write_book(group: &[Rendered]) -> std::collections::HashMap<Arc<str>, bool> {
    let mut newest: std::collections::HashMap<
        Arc<str>,
        (&crate::recorder::side::Entry, Vec<Alert>),
    > = std::collections::HashMap::new();
    for (alert, _, book) in group {
        if let Some(entry) = book {
            let slot = newest
                .entry(Arc::clone(&alert.site))
                .or_insert((entry, Vec::new()));
            slot.0 = entry;
            slot.1.push(alert.clone());
        }
    }
    let writes = newest
        .into_iter()
        .map(|(site, ((book, open), alerts))| async move {
            let ok = book.put(&site, open, &alerts).await;
            (site, ok)
        });
    futures_util::future::join_all(writes)
        .await
        .into_iter()
        .collect()
}

/// Renders one alert and its notifications.
type Rendered = (Alert, Vec<Queued>, Option<crate::recorder::side::Entry>);

async fn render(d: Decided, bus: Bus) -> Rendered {
    let Decided {
        mut alert,
        recent_errors,
        formatter,
        routes,
        tags,
        book,
    } = d;
    // Formatter plugins speak of down and recovered sites: degraded and certificate alerts keep
    // the built-in message and payloads.
    let formattable = alert.kind.condition() == crate::alert::Condition::Down;
    if let Some(formatter) = formatter.filter(|_| formattable) {
        render_message(&mut alert, &recent_errors, &*formatter, &bus).await;
    }
    // Each notifier's formatter renders at once: a slow one does not add to the others.
    let alert_ref = &alert;
    let (recent, bus_ref) = (&recent_errors, &bus);
    // A leader's alert (it has a ledger entry) goes out once the cluster's stream has it.
    let after_cluster = book.is_some();
    let queued = futures_util::future::join_all(
        routes
            .iter()
            // A held alert is stored and shown, never sent.
            .filter(|r| {
                alert_ref.held.is_none() && r.notifier.wants(alert_ref.kind, &alert_ref.site, &tags)
            })
            .map(|route| async move {
                let n = &route.notifier;
                let body = match route.formatter.as_ref().filter(|_| formattable) {
                    None => None,
                    Some(f) => match f.render(alert_ref, recent).await {
                        Ok(text) => Some(sanitize_rendered(&text)),
                        Err(reason) => {
                            bus_ref.error(
                                "notify",
                                Some(Arc::clone(&alert_ref.site)),
                                format!(
                                    "notifier {}: formatter {} failed, the built-in payload is sent: {reason}",
                                    n.name,
                                    f.name()
                                ),
                            );
                            None
                        }
                    },
                };
                Queued {
                    notifier: n.name.as_str().into(),
                    body,
                    after_cluster,
                }
            }),
    )
    .await;
    (alert, queued, book)
}

/// Renders the alert's message; on failure keeps the built-in message and reports why.
async fn render_message(
    alert: &mut Alert,
    recent_errors: &[String],
    formatter: &dyn AlertFormatter,
    bus: &Bus,
) {
    match formatter.render(alert, recent_errors).await {
        // Rendered text may span lines (Slack JSON, Markdown) but carries no control codes.
        Ok(text) => alert.rendered = Some(sanitize_rendered(&text)),
        Err(reason) => bus.error(
            "formatter",
            Some(Arc::clone(&alert.site)),
            format!(
                "formatter {} failed, the built-in message is used: {reason}",
                formatter.name()
            ),
        ),
    }
}

/// Keeps newlines and tabs of a rendered alert, caps it at 64 KiB, and drops other control
/// characters (no terminal escapes).
fn sanitize_rendered(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(64 * 1024)
        .collect()
}

/// The configured formatter plugin.
pub struct PluginFormatter {
    pub plugin: PluginUse,
    pub plugins: Arc<PluginSet>,
}

impl AlertFormatter for PluginFormatter {
    fn name(&self) -> &str {
        &self.plugin.plugin
    }

    fn render<'a>(
        &'a self,
        alert: &'a Alert,
        recent_errors: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            let plugins = &self.plugins;
            let name = &self.plugin.plugin;
            let plugin = plugins.get(name).ok_or_else(|| plugins.why_missing(name))?;
            let input = crate::plugin::bindings::alert_input(alert, recent_errors.to_vec());
            let host = plugins.host().map_err(|e| e.to_string())?;
            match host
                .format(&plugin, self.plugin.limits, &self.plugin.config, &input)
                .await
            {
                Ok(Ok(text)) => Ok(text),
                Ok(Err(message)) => Err(crate::plugin::sanitize_text(&message, 300)),
                Err(failure) => Err(failure.message),
            }
        })
    }
}
