//! What the live display shows, as plain data and one pure function: [`Screen::render`] turns
//! the latest events and the user's choices (view, sort, filter, scroll) into exactly the lines
//! that fit the terminal. No line is wider than the terminal and there are never more lines
//! than rows, whatever the number of sites; sites that need attention come first, and the
//! latest alerts stay pinned in a few lines. It computes no stats: it reads the recorder's.

use crate::alert::{Alert, AlertKind};
use crate::event::{SiteReport, StatsReport};
use console::{measure_text_width, style, truncate_str};
use std::cmp::Ordering;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Alerts kept for the pinned area, newest first.
const ALERTS_KEPT: usize = 20;

/// How the site list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Down first, then failing, then lowest availability.
    #[default]
    Attention,
    Name,
    Availability,
    ResponseTime,
}

impl Sort {
    pub fn next(self) -> Self {
        match self {
            Self::Attention => Self::Name,
            Self::Name => Self::Availability,
            Self::Availability => Self::ResponseTime,
            Self::ResponseTime => Self::Attention,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Attention => "attention",
            Self::Name => "name",
            Self::Availability => "availability",
            Self::ResponseTime => "response time",
        }
    }
}

/// The export and store state, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sinks {
    /// The store cannot be written: this many records wait in memory.
    pub store_failing: Option<u64>,
    /// Lines waiting for InfluxDB, when it is configured.
    pub outbox: Option<u64>,
    pub influx_failing: bool,
}

/// Everything the display knows, and what the user chose.
#[derive(Debug, Default)]
pub struct Screen {
    pub config: String,
    pub sites: usize,
    pub storage: String,
    /// The views, in config order.
    pub views: Vec<String>,
    /// The newest report of each view (same order as `views` when known).
    pub reports: Vec<Arc<StatsReport>>,
    pub view: usize,
    pub sort: Sort,
    /// Sites grouped by their first tag (untagged last), each group in the chosen order.
    pub group: bool,
    pub filter: String,
    /// The filter is being typed.
    pub editing_filter: bool,
    pub scroll: usize,
    pub help: bool,
    /// Latest alerts, newest first.
    pub alerts: VecDeque<Alert>,
    /// Sites down now: from the reports, and from alerts that arrived since (newer).
    pub down: HashSet<Arc<str>>,
    /// The sites watched now (empty before the first `watching` event): an alert decided just
    /// before a reload removed its site may arrive after it, and must not mark it down.
    pub watched: HashSet<Arc<str>>,
    pub sinks: Sinks,
    /// Probes a second, from the last two reports.
    pub probes_per_s: Option<f64>,
    pub skipped: u64,
    pub overloaded: bool,
}

/// A line of the site list: a group's heading (when grouped by tag) or a site.
enum Line<'a> {
    Group {
        tag: Option<&'a str>,
        sites: usize,
        down: usize,
    },
    Site(&'a SiteReport),
}

/// One site row's state, in words, so that it reads without colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Down,
    Failing,
    /// Up but over its latency objective.
    Degraded,
    /// In a maintenance window (and not down).
    Maintenance,
    Up,
    NoData,
    /// Paused (`paused: true`): not probed.
    Paused,
}

impl State {
    fn of(s: &SiteReport, down: &HashSet<Arc<str>>) -> Self {
        if s.paused {
            Self::Paused
        } else if down.contains(&s.site) {
            Self::Down
        } else if s.maintenance.is_some() {
            Self::Maintenance
        } else if s.stats.availability.is_none() {
            Self::NoData
        } else if s.last_error.is_some() {
            Self::Failing
        } else if s.degraded {
            Self::Degraded
        } else {
            Self::Up
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Down => "DOWN",
            Self::Failing => "FAIL",
            Self::Degraded => "SLOW",
            Self::Maintenance => "MNT",
            Self::Up => "up",
            Self::NoData => "-",
            Self::Paused => "PAUS",
        }
    }
}

/// Which optional columns fit a width, dropped least important first.
#[derive(Debug, Clone, Copy)]
struct Columns {
    name: usize,
    gauge: bool,
    ttfb: bool,
    p95: bool,
}

impl Columns {
    fn for_width(width: usize) -> Self {
        Self {
            name: if width >= 110 {
                28
            } else if width >= 90 {
                20
            } else {
                16
            },
            gauge: width >= 80,
            ttfb: width >= 72,
            p95: width >= 66,
        }
    }
}

impl Screen {
    /// Keeps an alert for the pinned area.
    pub fn alert(&mut self, a: &Alert) {
        self.alerts.push_front(a.clone());
        self.alerts.truncate(ALERTS_KEPT);
        match a.kind {
            AlertKind::Down if self.watched.is_empty() || self.watched.contains(&a.site) => {
                self.down.insert(Arc::clone(&a.site))
            }
            AlertKind::Down => false,
            AlertKind::Recovered => self.down.remove(&a.site),
            // Degraded and certificate states come with each report.
            _ => false,
        };
    }

    /// What is watched now: sites that left are no longer down; the sites down since before
    /// this run are.
    pub fn watching(&mut self, w: &crate::event::Watching) {
        self.sites = w.sites.len();
        self.watched = w.sites.iter().map(|s| Arc::clone(&s.site)).collect();
        self.down = w
            .sites
            .iter()
            .filter(|s| s.down)
            .map(|s| Arc::clone(&s.site))
            .collect();
        self.set_views(w.views.clone());
        // The kept reports predate the change: a removed site leaves them now, not at the next
        // report of each view.
        let watched: std::collections::HashSet<&str> = w.sites.iter().map(|s| &*s.site).collect();
        for r in &mut self.reports {
            if r.sites.iter().any(|s| !watched.contains(&*s.site)) {
                let mut kept = StatsReport::clone(r);
                kept.sites.retain(|s| watched.contains(&*s.site));
                *r = Arc::new(kept);
            }
        }
    }

    /// Takes a new report of its view, and the probe rate since the previous one.
    pub fn report(&mut self, r: Arc<StatsReport>) {
        if let Some(pos) = self.reports.iter().position(|x| x.view == r.view) {
            let prev = &self.reports[pos];
            let secs = (r.time - prev.time).as_seconds_f64();
            if secs > 0.0 && r.probes_total >= prev.probes_total {
                self.probes_per_s = Some((r.probes_total - prev.probes_total) as f64 / secs);
            }
            self.reports[pos] = r.clone();
        } else {
            self.reports.push(r.clone());
        }
        self.skipped = r.skipped_overload + r.sites.iter().map(|s| s.skipped_ticks).sum::<u64>();
        self.overloaded = r.overloaded;
        for s in &r.sites {
            if s.down {
                self.down.insert(Arc::clone(&s.site));
            } else {
                self.down.remove(&s.site);
            }
        }
    }

    /// Takes the state of the store or of the InfluxDB export.
    pub fn sink(&mut self, s: &crate::event::SinkStatus) {
        match s.sink {
            crate::event::SinkName::Store => {
                self.sinks.store_failing = (!s.healthy).then_some(s.backlog);
            }
            crate::event::SinkName::InfluxDb => {
                self.sinks.outbox = Some(s.backlog);
                self.sinks.influx_failing = !s.healthy;
            }
        }
    }

    /// Keeps only the reports of views that still exist (after a reload).
    pub fn set_views(&mut self, views: Vec<String>) {
        self.reports.retain(|r| views.contains(&r.view));
        self.views = views;
        if self.view >= self.views.len() {
            self.view = 0;
        }
    }

    pub fn next_view(&mut self) {
        if !self.views.is_empty() {
            self.view = (self.view + 1) % self.views.len();
            self.scroll = 0;
        }
    }

    fn current(&self) -> Option<&StatsReport> {
        let name = self.views.get(self.view)?;
        self.reports.iter().find(|r| &r.view == name).map(|r| &**r)
    }

    /// The sites of the current view that pass the filter, in the chosen order. Sorting reads
    /// the report's figures; nothing walks a window.
    fn ordered<'a>(&self, r: &'a StatsReport) -> Vec<&'a SiteReport> {
        let needle = self.filter.to_lowercase();
        let mut sites: Vec<&SiteReport> = r
            .sites
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || s.site.to_lowercase().contains(&needle)
                    || s.tags.iter().any(|t| t.to_lowercase().contains(&needle))
            })
            .collect();
        let avail = |s: &SiteReport| s.stats.availability.unwrap_or(2.0);
        let rt = |s: &SiteReport| s.stats.response_ms.map_or(-1.0, |x| x.avg);
        match self.sort {
            Sort::Attention => sites.sort_by(|a, b| {
                State::of(a, &self.down)
                    .cmp(&State::of(b, &self.down))
                    .then(avail(a).total_cmp(&avail(b)))
                    .then_with(|| a.site.cmp(&b.site))
            }),
            Sort::Name => sites.sort_by(|a, b| a.site.cmp(&b.site)),
            Sort::Availability => sites.sort_by(|a, b| {
                avail(a)
                    .total_cmp(&avail(b))
                    .then_with(|| a.site.cmp(&b.site))
            }),
            Sort::ResponseTime => {
                sites.sort_by(|a, b| rt(b).total_cmp(&rt(a)).then_with(|| a.site.cmp(&b.site)))
            }
        }
        sites
    }

    /// The site list's lines: the sites in order, or, grouped, each tag's heading (tags in name
    /// order, untagged last) followed by its sites in order. One pass and a map of the groups.
    fn lines<'a>(&self, sites: Vec<&'a SiteReport>) -> Vec<Line<'a>> {
        if !self.group {
            return sites.into_iter().map(Line::Site).collect();
        }
        let mut tagged: std::collections::BTreeMap<&str, Vec<&SiteReport>> = Default::default();
        let mut untagged = Vec::new();
        for s in sites {
            match s.tags.first() {
                Some(t) => tagged.entry(t.as_str()).or_default().push(s),
                None => untagged.push(s),
            }
        }
        let groups = tagged
            .into_iter()
            .map(|(t, m)| (Some(t), m))
            .chain((!untagged.is_empty()).then_some((None, untagged)));
        let mut out = Vec::new();
        for (tag, members) in groups {
            out.push(Line::Group {
                tag,
                sites: members.len(),
                down: members
                    .iter()
                    .filter(|s| self.down.contains(&s.site))
                    .count(),
            });
            out.extend(members.into_iter().map(Line::Site));
        }
        out
    }

    /// The lines to show on a terminal of `width` × `height`, each at most `width` columns
    /// wide and at most `height - 1` of them (the cursor's line stays free). `uptime` is for
    /// the header.
    pub fn render(&self, width: usize, height: usize, uptime: Duration) -> Vec<String> {
        let rows = height.saturating_sub(1).max(1);
        let mut out = vec![self.header(uptime), self.summary()];
        // Pinned alerts: a few lines, fewer on a short terminal.
        let pinned = (rows / 5).clamp(1, 5);
        if self.alerts.is_empty() {
            out.push(style("no alerts in this run").dim().to_string());
        } else {
            for a in self.alerts.iter().take(pinned) {
                out.push(alert_line(a));
            }
        }
        let cols = Columns::for_width(width);
        match self.current() {
            None => out.push(style("waiting for the first stats…").dim().to_string()),
            Some(r) => {
                out.push(self.view_line(r));
                if self.help {
                    out.extend(HELP.iter().map(|l| (*l).to_owned()));
                } else {
                    out.push(style(column_titles(cols)).dim().to_string());
                    let room = rows.saturating_sub(out.len());
                    self.site_rows(r, cols, room, &mut out);
                }
            }
        }
        if self.editing_filter {
            out.push(format!(
                "filter: {}▏ (Enter to keep, Esc to clear)",
                self.filter
            ));
        }
        out.truncate(rows);
        out.into_iter().map(|l| fit(&l, width)).collect()
    }

    fn header(&self, uptime: Duration) -> String {
        // Most important first: a narrow terminal cuts the end.
        format!(
            "{} · up {} · {} sites · {} · storage {}",
            style("sitewatch").bold(),
            crate::clock::human_duration(uptime),
            self.sites,
            self.config,
            self.storage,
        )
    }

    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.current() {
            let mut counts = [0usize; 7];
            for s in &r.sites {
                counts[State::of(s, &self.down) as usize] += 1;
            }
            let [down, failing, degraded, maintenance, up, no_data, paused] = counts;
            parts.push(format!("{up} up"));
            parts.push(if down > 0 {
                style(format!("{down} DOWN")).red().bold().to_string()
            } else {
                "0 down".into()
            });
            if failing > 0 {
                parts.push(style(format!("{failing} FAILING")).yellow().to_string());
            }
            if degraded > 0 {
                parts.push(style(format!("{degraded} DEGRADED")).yellow().to_string());
            }
            if maintenance > 0 {
                parts.push(
                    style(format!("{maintenance} MAINTENANCE"))
                        .blue()
                        .to_string(),
                );
            }
            if no_data > 0 {
                parts.push(format!("{no_data} no data"));
            }
            if paused > 0 {
                parts.push(format!("{paused} paused"));
            }
        }
        if let Some(rate) = self.probes_per_s {
            parts.push(format!("{rate:.1} probes/s"));
        }
        let skipped = format!("{} skipped", self.skipped);
        parts.push(if self.overloaded {
            style(format!("OVERLOADED, {skipped}"))
                .red()
                .bold()
                .to_string()
        } else {
            skipped
        });
        parts.push(match self.sinks.store_failing {
            Some(n) => style(format!("store FAILING ({n} waiting)"))
                .red()
                .bold()
                .to_string(),
            None => "store ok".into(),
        });
        if let Some(n) = self.sinks.outbox {
            parts.push(if self.sinks.influx_failing {
                style(format!("InfluxDB DOWN, outbox {n}"))
                    .red()
                    .bold()
                    .to_string()
            } else {
                format!("InfluxDB outbox {n}")
            });
        }
        parts.join(" · ")
    }

    fn view_line(&self, r: &StatsReport) -> String {
        let mut line = format!(
            "{} ({}/{}, v) · at {} · sort {} (s)",
            style(format!("last {}", r.view)).bold(),
            self.view + 1,
            self.views.len().max(1),
            r.time.format("%H:%M:%S"),
            self.sort.label()
        );
        if self.group {
            line.push_str(" · by tag (g)");
        }
        if !self.filter.is_empty() {
            line.push_str(&format!(" · filter \"{}\" (/, Esc)", self.filter));
        }
        line.push_str(" · ? keys");
        line
    }

    fn site_rows<'a>(&self, r: &'a StatsReport, cols: Columns, room: usize, out: &mut Vec<String>) {
        let sites = self.ordered(r);
        if sites.is_empty() {
            out.push(format!("  no site matches \"{}\"", self.filter));
            return;
        }
        let lines = self.lines(sites);
        let start = self.scroll.min(lines.len().saturating_sub(1));
        let shown = if lines.len() - start > room {
            room.saturating_sub(1)
        } else {
            room
        };
        for line in lines.iter().skip(start).take(shown) {
            out.push(match line {
                Line::Site(s) => site_row(s, State::of(s, &self.down), cols, r.threshold),
                Line::Group { tag, sites, down } => group_line(*tag, *sites, *down),
            });
        }
        let site = |l: &Line<'a>| match l {
            Line::Site(s) => Some(*s),
            Line::Group { .. } => None,
        };
        let rest: Vec<&SiteReport> = lines[(start + shown).min(lines.len())..]
            .iter()
            .filter_map(site)
            .collect();
        if !rest.is_empty() {
            let above = lines[..start].iter().filter_map(site).count();
            out.push(collapsed(&rest, above, &self.down));
        }
    }
}

/// A group's heading: `── prod · 12 sites, 1 DOWN`.
fn group_line(tag: Option<&str>, sites: usize, down: usize) -> String {
    let name = style(format!("── {}", tag.unwrap_or("untagged"))).bold();
    let count = format!(" · {sites} site{}", if sites == 1 { "" } else { "s" });
    if down > 0 {
        format!(
            "{name}{count}, {}",
            style(format!("{down} DOWN")).red().bold()
        )
    } else {
        format!("{name}{}", style(count).dim())
    }
}

/// One line for the sites that do not fit: how many, and how they are.
fn collapsed(rest: &[&SiteReport], above: usize, down: &HashSet<Arc<str>>) -> String {
    let down = rest.iter().filter(|s| down.contains(&s.site)).count();
    let min = rest
        .iter()
        .filter_map(|s| s.stats.availability)
        .fold(f64::INFINITY, f64::min);
    let above = if above > 0 {
        format!(" ({above} above)")
    } else {
        String::new()
    };
    if down > 0 {
        return format!("  … {} more, {down} DOWN{above} (↓/PgDn)", rest.len());
    }
    if min.is_finite() {
        format!(
            "  … {} more, all up, availability ≥ {}{above}",
            rest.len(),
            crate::alert::percent(min)
        )
    } else {
        format!("  … {} more, no data yet{above}", rest.len())
    }
}

const HELP: &[&str] = &[
    "  keys:",
    "  q          quit (with the final report, as Ctrl-C)",
    "  v          next view",
    "  s          next sort: attention, name, availability, response time",
    "  /          filter sites by a part of their name or a tag; Esc clears it",
    "  g          group sites by their first tag (untagged last), or not",
    "  ↑ ↓ PgUp PgDn   scroll the site list",
    "  ?          show or hide this help",
];

fn column_titles(c: Columns) -> String {
    let mut line = format!("  {:<w$} {:<4} {:>7}", "site", "", "avail", w = c.name);
    if c.gauge {
        line.push_str(&format!(" {:<10}", ""));
    }
    line.push_str(&format!(" {:>6}", "rt ms"));
    if c.p95 {
        line.push_str(&format!(" {:>6}", "p95"));
    }
    if c.ttfb {
        line.push_str(&format!(" {:>6}", "ttfb"));
    }
    line.push_str("  codes");
    line
}

fn site_row(s: &SiteReport, state: State, c: Columns, threshold: f64) -> String {
    let word = format!("{:<4}", state.word());
    let word = match state {
        State::Down => style(word).red().bold().to_string(),
        State::Failing | State::Degraded => style(word).yellow().to_string(),
        State::Maintenance => style(word).blue().to_string(),
        _ => word,
    };
    let name = format!("{:<w$}", cut(&s.site, c.name), w = c.name);
    let name = if s.tls_insecure {
        // Unverified TLS (`tls_insecure`) is marked with `!`.
        format!("!{}", cut(&name, c.name - 1))
    } else {
        name
    };
    let mut line = format!("  {name} {word}");
    let Some(avail) = s.stats.availability else {
        line.push_str(&format!(" {:>7}", "no data"));
        return line;
    };
    line.push_str(&format!(" {:>7}", crate::alert::percent(avail)));
    if c.gauge {
        line.push(' ');
        line.push_str(&gauge(avail, threshold));
    }
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), short_ms);
    line.push_str(&format!(" {:>6}", ms(s.stats.response_ms.map(|r| r.avg))));
    if c.p95 {
        line.push_str(&format!(" {:>6}", ms(s.stats.response_ms.map(|r| r.p95))));
    }
    if c.ttfb {
        line.push_str(&format!(" {:>6}", ms(s.stats.ttfb_ms.map(|t| t.avg))));
    }
    line.push_str("  ");
    line.push_str(&s.stats.codes_summary());
    if !s.stats.steps.is_empty() {
        line.push_str("  steps ");
        line.push_str(&s.stats.steps_summary(short_ms));
    }
    // The long words after the figures: the state column has room for four letters.
    match state {
        State::Maintenance => line.push_str(&style("  MAINTENANCE").blue().to_string()),
        State::Paused => line.push_str("  PAUSED"),
        State::Degraded => line.push_str(&style("  DEGRADED").yellow().to_string()),
        _ => {}
    }
    if s.cert_warning
        && let Some(days) = s.cert_days(chrono::Utc::now())
    {
        line.push_str(
            &style(format!("  cert expires in {days}d"))
                .yellow()
                .to_string(),
        );
    }
    if let Some(why) = &s.last_error {
        line.push_str(&format!("  ✗ {why}"));
    }
    line
}

/// A 10-cell availability gauge, coloured against the threshold.
fn gauge(avail: f64, threshold: f64) -> String {
    let full = (avail * 10.0).round() as usize;
    let bar = format!("{}{}", "█".repeat(full), "░".repeat(10 - full.min(10)));
    if avail < threshold {
        style(bar).red().to_string()
    } else if avail < threshold + (1.0 - threshold) / 2.0 {
        style(bar).yellow().to_string()
    } else {
        style(bar).green().to_string()
    }
}

/// An alert in one line: `▼ 12:00:03 Website api is down. …`.
pub(super) fn alert_line(a: &Alert) -> String {
    let text = a.text().lines().next().unwrap_or_default();
    let at = a.time.format("%H:%M:%S");
    match a.kind {
        AlertKind::Down | AlertKind::MonitorOffline => {
            style(format!("▼ {at} {text}")).red().bold().to_string()
        }
        AlertKind::Degraded
        | AlertKind::CertExpiring
        | AlertKind::DomainExpiring
        | AlertKind::Flapping
        | AlertKind::SloBurn => style(format!("◆ {at} {text}")).yellow().bold().to_string(),
        AlertKind::Recovered
        | AlertKind::DegradedRecovered
        | AlertKind::CertRenewed
        | AlertKind::DomainRenewed
        | AlertKind::FlappingStopped
        | AlertKind::MonitorOnline
        | AlertKind::SloBurnRecovered => style(format!("▲ {at} {text}")).green().to_string(),
    }
}

/// Milliseconds in at most five characters: `2.9`, `312`, `12034`.
fn short_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

/// Cuts plain text to `width` columns, marking the cut with `…`.
fn cut(s: &str, width: usize) -> String {
    if measure_text_width(s) <= width {
        s.to_owned()
    } else {
        truncate_str(s, width, "…").into_owned()
    }
}

/// Cuts a styled line to `width` columns (escape codes kept, never wrapped).
fn fit(line: &str, width: usize) -> String {
    match measure_text_width(line).cmp(&width) {
        Ordering::Greater => truncate_str(line, width, "…").into_owned(),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests;
