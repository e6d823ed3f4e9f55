//! The live terminal display. It keeps what the events say in a [`Screen`] and draws, with
//! indicatif, exactly the lines that fit the terminal: redrawn when something changes (at most
//! ten times a second), every second for the clocks, and at once when the terminal is resized.
//! Alerts, reloads and errors also print above the live lines, so the scrollback keeps the whole
//! history. Keys (when stdin is a terminal) choose the view, the order, grouping by tag and a
//! filter, scroll the list, and quit. It only consumes events; it computes no stats.

mod keys;
mod screen;

use crate::event::{DeliveryResult, Event, Received, ReloadResult, Subscription, Waited};
use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keys::{Key, KeyReader};
pub use screen::{Screen, Sort};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the display waits for an event before it looks at keys and the terminal size.
const TICK: Duration = Duration::from_millis(100);

/// The live display on a terminal.
struct Display {
    /// One bar whose message is the whole screen, so every frame is drawn at once (a bar per
    /// line would tear: some lines new, others old, between two draws).
    live: ProgressBar,
    screen: Screen,
    started: Instant,
    /// The terminal size of the last draw.
    size: (usize, usize),
    dirty: bool,
    drawn: Instant,
}

impl Display {
    fn new() -> Self {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            console::set_colors_enabled(false);
        }
        let live = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout_with_hz(20))
            .with_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
        Self {
            live,
            screen: Screen::default(),
            started: Instant::now(),
            size: (0, 0),
            dirty: true,
            drawn: Instant::now(),
        }
    }

    /// Prints a line above the live area (kept in the scrollback).
    fn note(&self, line: String) {
        self.live.println(line);
    }

    fn handle(&mut self, event: &Arc<Event>) {
        self.dirty = true;
        let s = &mut self.screen;
        match &**event {
            Event::Started(st) => {
                s.config = st.config.clone();
                s.sites = st.sites;
                s.storage = st.storage.clone();
                for a in &st.past_alerts {
                    s.alert(a);
                }
            }
            Event::Probe(_) => self.dirty = false,
            Event::Stats(r) if !r.r#final => {
                let r = Arc::new(r.clone());
                self.screen.report(r);
            }
            Event::Stats(_) => {}
            Event::Alert(a) => {
                s.alert(a);
                self.note(screen::alert_line(a));
            }
            Event::Sink(status) => s.sink(status),
            // The error event beside it says it in words.
            Event::StoreRecovered(_) => {}
            Event::Error(e) => {
                let site = e
                    .site
                    .as_ref()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default();
                self.note(format!(
                    "{} {}{site}: {}",
                    style("error").red().bold(),
                    e.source,
                    e.message
                ));
            }
            Event::Reload(r) => {
                let tag = match r.result {
                    ReloadResult::Applied => style("reload").cyan().bold(),
                    ReloadResult::Rejected => style("reload").red().bold(),
                };
                self.note(format!("{tag} {}", r.line()));
            }
            Event::Watching(w) => s.watching(w),
            Event::Maintenance(m) => {
                self.note(format!(
                    "{} {}",
                    style("maintenance").blue().bold(),
                    m.line()
                ));
            }
            Event::Cluster(c) => {
                self.note(format!("{} {}", style("cluster").cyan().bold(), c.detail));
            }
            Event::Overload(o) => {
                self.note(format!("{} {}", style("overload").red().bold(), o.detail));
            }
            // A retry is noted once (its first); the outcome always is.
            Event::Delivery(d) if d.result == DeliveryResult::Retrying && d.attempts > 1 => {
                self.dirty = false;
            }
            Event::Delivery(d) => {
                let tag = match d.result {
                    DeliveryResult::Delivered => style("notify").green().bold(),
                    DeliveryResult::Retrying => style("notify").yellow().bold(),
                    DeliveryResult::Failed => style("notify").red().bold(),
                };
                let line = d.line();
                self.note(format!(
                    "{tag}{}",
                    line.strip_prefix("notify").unwrap_or(&line)
                ));
            }
        }
    }

    /// Acts on a key; true when the user asked to quit.
    fn key(&mut self, key: Key) -> bool {
        self.dirty = true;
        let s = &mut self.screen;
        if s.editing_filter {
            match key {
                Key::Enter => s.editing_filter = false,
                Key::Escape => {
                    s.editing_filter = false;
                    s.filter.clear();
                }
                Key::Backspace => {
                    s.filter.pop();
                }
                Key::Char(c) => s.filter.push(c),
                _ => {}
            }
            s.scroll = 0;
            return false;
        }
        let page = self.size.1.saturating_sub(8).max(1);
        match key {
            Key::Char('q') => return true,
            Key::Char('v') => s.next_view(),
            Key::Char('s') => {
                s.sort = s.sort.next();
                s.scroll = 0;
            }
            Key::Char('g') => {
                s.group = !s.group;
                s.scroll = 0;
            }
            Key::Char('/') => s.editing_filter = true,
            Key::Char('?') => s.help = !s.help,
            Key::Escape => {
                s.filter.clear();
                s.help = false;
                s.scroll = 0;
            }
            Key::Down => s.scroll += 1,
            Key::Up => s.scroll = s.scroll.saturating_sub(1),
            Key::PageDown => s.scroll += page,
            Key::PageUp => s.scroll = s.scroll.saturating_sub(page),
            _ => {}
        }
        false
    }

    /// Redraws when something changed, the terminal was resized, or a second passed (clocks).
    fn draw_if_due(&mut self) {
        let (rows, cols) = console::Term::stdout().size();
        let size = (usize::from(cols), usize::from(rows));
        let resized = size != self.size;
        let due = self.dirty && self.drawn.elapsed() >= TICK;
        if !(resized || due || self.drawn.elapsed() >= Duration::from_secs(1)) {
            return;
        }
        self.size = size;
        self.dirty = false;
        self.drawn = Instant::now();
        let lines = self
            .screen
            .render(size.0.max(1), size.1.max(2), self.started.elapsed());
        self.live.set_message(lines.join("\n"));
    }

    /// Clears the live area and prints the last view reports as plain tables, so the terminal
    /// is left readable after `q` or Ctrl-C.
    fn finish(&mut self, last: &[crate::event::StatsReport]) {
        self.live.finish_and_clear();
        let mut out = std::io::stdout().lock();
        for r in last {
            let _ = super::plain::write(&mut out, &Event::Stats(r.clone()));
        }
    }
}

/// The display loop: draws until the bus closes, then leaves the final tables. `q` cancels
/// `quit`, which stops the monitor as Ctrl-C does.
pub(crate) fn run(mut events: Subscription, quit: CancellationToken) {
    let mut display = Display::new();
    let (tx, keys) = mpsc::channel();
    let reader = KeyReader::start(tx);
    let mut last: Vec<crate::event::StatsReport> = Vec::new();
    loop {
        match events.recv_timeout(TICK) {
            Waited::Received(received) => {
                // Dropped probe events change nothing on this screen.
                let Received::Event(event) = received else {
                    continue;
                };
                if let Event::Stats(r) = &*event {
                    match last.iter_mut().find(|l| l.view == r.view) {
                        Some(l) => *l = r.clone(),
                        None => last.push(r.clone()),
                    }
                }
                if let Event::Watching(w) = &*event {
                    last.retain(|l| w.views.contains(&l.view));
                }
                display.handle(&event);
            }
            Waited::Timeout => {}
            Waited::Closed => break,
        }
        while let Ok(key) = keys.try_recv() {
            if display.key(key) {
                quit.cancel();
            }
        }
        display.draw_if_due();
    }
    drop(reader);
    display.finish(&last);
}
