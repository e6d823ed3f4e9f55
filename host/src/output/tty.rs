//! The live terminal display (indicatif): a header, one section per dashboard view with a line
//! per site (an availability gauge coloured against the threshold, then the figures), and a
//! section of the sites that are down now. Alerts, reloads and errors print above the live lines,
//! so they stay in the scrollback. It only consumes events; it computes no stats.

use super::plain::truncate;
use crate::alert::{Alert, AlertKind};
use crate::event::{Event, OverloadState, ReloadResult, SiteReport, StatsReport, Watching};
use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// Site names are cut to this many columns so a line fits in 80.
const NAME: usize = 14;
const GAUGE: u64 = 1000;

struct Styles {
    green: ProgressStyle,
    yellow: ProgressStyle,
    red: ProgressStyle,
    empty: ProgressStyle,
    text: ProgressStyle,
    clock: ProgressStyle,
}

impl Styles {
    fn new() -> Self {
        let gauge = |colour: &str| {
            ProgressStyle::with_template(&format!(
                "  {{prefix}} {{bar:10.{colour}/black}} {{wide_msg}}"
            ))
            .expect("valid template")
            .progress_chars("█▌ ")
        };
        Self {
            green: gauge("green"),
            yellow: gauge("yellow"),
            red: gauge("red"),
            empty: ProgressStyle::with_template("  {prefix} {wide_msg}").expect("valid template"),
            text: ProgressStyle::with_template("{wide_msg}").expect("valid template"),
            clock: ProgressStyle::with_template("{msg} {elapsed}").expect("valid template"),
        }
    }
}

/// One dashboard view: its title line and a line per site.
struct View {
    title: ProgressBar,
    sites: Vec<(String, ProgressBar)>,
}

pub struct Display {
    multi: MultiProgress,
    styles: Styles,
    header: ProgressBar,
    views: Vec<(String, View)>,
    /// The section of sites that are down now: its title and a line per site.
    down_title: ProgressBar,
    down: HashMap<String, ProgressBar>,
}

impl Display {
    pub fn new() -> Self {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            console::set_colors_enabled(false);
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
        let styles = Styles::new();
        let header = multi.add(ProgressBar::new(1).with_style(styles.clock.clone()));
        header.set_message("sitewatch: starting…, up");
        header.enable_steady_tick(Duration::from_secs(1));
        let down_title = multi.add(ProgressBar::new(1).with_style(styles.text.clone()));
        Self {
            multi,
            styles,
            header,
            views: Vec::new(),
            down_title,
            down: HashMap::new(),
        }
    }

    /// Prints a line above the live area (kept in the scrollback).
    fn note(&self, line: String) {
        let _ = self.multi.println(line);
    }

    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::Started(s) => {
                self.header.set_message(format!(
                    "{} · {} · {} sites · storage {} · up",
                    style("sitewatch").bold(),
                    s.config,
                    s.sites,
                    s.storage
                ));
                if !s.past_alerts.is_empty() {
                    self.note(format!("{}", style("earlier alerts:").dim()));
                    for a in &s.past_alerts {
                        self.alert_line(a);
                    }
                }
            }
            Event::Probe(_) => {}
            Event::Stats(r) => self.stats(r),
            Event::Alert(a) => {
                self.alert_line(a);
                match a.kind {
                    AlertKind::Down => self.mark_down(&a.site, a.time),
                    AlertKind::Recovered => self.mark_up(&a.site),
                }
            }
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
            Event::Watching(w) => self.watching(w),
            Event::Overload(o) => {
                let tag = match o.state {
                    OverloadState::Started => style("overload").red().bold(),
                    OverloadState::Ended => style("overload ended").green().bold(),
                };
                self.note(format!("{tag} {}", o.detail));
            }
        }
    }

    /// Drops the views and the "down now" lines of what a reload removed; shows the sites that
    /// are down since before this run.
    fn watching(&mut self, w: &Watching) {
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.views)
            .into_iter()
            .partition(|(name, _)| w.views.contains(name));
        for (_, view) in gone {
            for (_, bar) in view.sites {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            view.title.finish_and_clear();
            self.multi.remove(&view.title);
        }
        self.views = keep;
        let removed: Vec<String> = self
            .down
            .keys()
            .filter(|name| !w.sites.iter().any(|s| &*s.site == name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            self.mark_up(&name);
        }
        for s in w.sites.iter().filter(|s| s.down) {
            self.mark_down(&s.site, w.time);
        }
        self.update_down_title();
    }

    fn alert_line(&self, a: &Alert) {
        let text = a.text().lines().next().unwrap_or_default().to_owned();
        let line = match a.kind {
            AlertKind::Down => style(format!("▼ {text}")).red().bold(),
            AlertKind::Recovered => style(format!("▲ {text}")).green().bold(),
        };
        self.note(line.to_string());
    }

    fn mark_down(&mut self, site: &str, since: chrono::DateTime<chrono::Utc>) {
        if self.down.contains_key(site) {
            return;
        }
        let elapsed = (chrono::Utc::now() - since).to_std().unwrap_or_default();
        let bar = self.multi.add(
            ProgressBar::new(1)
                .with_style(self.styles.clock.clone())
                .with_elapsed(elapsed),
        );
        bar.set_message(format!(
            "  {} {} down for",
            style("▼").red(),
            truncate(site, 40)
        ));
        bar.enable_steady_tick(Duration::from_secs(1));
        self.down.insert(site.to_owned(), bar);
        self.update_down_title();
    }

    fn mark_up(&mut self, site: &str) {
        if let Some(bar) = self.down.remove(site) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.update_down_title();
    }

    fn update_down_title(&self) {
        if self.down.is_empty() {
            self.down_title
                .set_message(format!("{}", style("no site is down").green()));
        } else {
            self.down_title.set_message(format!(
                "{}",
                style(format!("{} down now:", self.down.len())).red().bold()
            ));
        }
    }

    fn stats(&mut self, r: &StatsReport) {
        let pos = match self.views.iter().position(|(name, _)| *name == r.view) {
            Some(p) => p,
            None => {
                // A new view goes after the others, before the down section.
                let title = self.multi.insert_before(
                    &self.down_title,
                    ProgressBar::new(1).with_style(self.styles.text.clone()),
                );
                self.views.push((
                    r.view.clone(),
                    View {
                        title,
                        sites: Vec::new(),
                    },
                ));
                self.update_down_title();
                self.views.len() - 1
            }
        };
        let refreshed = r.time.format("%H:%M:%S");
        let every =
            humantime::format_duration(Duration::from_secs_f64(r.every_s.unwrap_or_default()));
        let overload = if r.overloaded {
            format!(
                " {}",
                style(format!("OVERLOADED: {} ticks skipped", r.skipped_overload))
                    .red()
                    .bold()
            )
        } else {
            String::new()
        };
        self.views[pos].1.title.set_message(format!(
            "{} {}{overload}",
            style(format!("last {}, refreshed every {every}", r.view)).bold(),
            style(format!("(at {refreshed})")).dim()
        ));
        // Keep one line per site, in report order; sites that left the config go away.
        let names: Vec<&str> = r.sites.iter().map(|s| &*s.site).collect();
        let same = self.views[pos]
            .1
            .sites
            .iter()
            .map(|(n, _)| n.as_str())
            .eq(names.iter().copied());
        if !same {
            let view = &mut self.views[pos].1;
            for (_, bar) in view.sites.drain(..) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            let mut after = view.title.clone();
            for name in names {
                let bar = self.multi.insert_after(&after, ProgressBar::new(GAUGE));
                after = bar.clone();
                view.sites.push((name.to_owned(), bar));
            }
        }
        for (site, (_, bar)) in r.sites.iter().zip(&self.views[pos].1.sites) {
            self.site_line(bar, site, r.threshold);
        }
    }

    fn site_line(&self, bar: &ProgressBar, s: &SiteReport, threshold: f64) {
        // An unverified TLS site is marked with `!` (and a red name when colours are on).
        let name = if s.tls_insecure {
            format!(
                "{}",
                style(format!(
                    "!{:<w$}",
                    truncate(&s.site, NAME - 1),
                    w = NAME - 1
                ))
                .red()
            )
        } else {
            format!("{:<NAME$}", truncate(&s.site, NAME))
        };
        bar.set_prefix(name);
        let Some(avail) = s.stats.availability else {
            bar.set_style(self.styles.empty.clone());
            bar.set_message(format!("{}", style("no data yet").dim()));
            return;
        };
        let st = if avail < threshold {
            &self.styles.red
        } else if avail < threshold + (1.0 - threshold) / 2.0 {
            &self.styles.yellow
        } else {
            &self.styles.green
        };
        bar.set_style(st.clone());
        bar.set_position((avail * GAUGE as f64).round() as u64);
        let mut msg = format!("{:>7}", crate::alert::percent(avail));
        match (s.stats.response_ms, s.stats.ttfb_ms) {
            (Some(r), Some(t)) => msg.push_str(&format!(
                " rt {}/{} ttfb {}/{} p95 {}ms",
                short_ms(r.avg),
                short_ms(r.max),
                short_ms(t.avg),
                short_ms(t.max),
                short_ms(r.p95)
            )),
            _ => msg.push_str(" no responses"),
        }
        msg.push_str("  ");
        msg.push_str(&s.stats.codes_summary());
        if let Some(why) = &s.last_error {
            // What fails, e.g. `check: keyword: the body lacks "OK"` (the line is cut to fit).
            msg.push_str(&format!("  ✗ {why}"));
        }
        bar.set_message(msg);
    }

    /// Clears the live area and prints the last view reports as plain tables, so the terminal
    /// is left readable after Ctrl-C.
    pub fn finish(&mut self, last: &[StatsReport]) {
        for (_, v) in &self.views {
            for (_, b) in &v.sites {
                b.finish_and_clear();
            }
            v.title.finish_and_clear();
        }
        for b in self.down.values() {
            b.finish_and_clear();
        }
        self.down_title.finish_and_clear();
        self.header.finish_and_clear();
        let _ = self.multi.clear();
        let mut out = std::io::stdout().lock();
        for r in last {
            let _ = super::plain::write(&mut out, &Event::Stats(r.clone()));
        }
    }
}

/// Milliseconds in at most five characters, for narrow terminals: `2.9`, `312`, `12034`.
fn short_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}
