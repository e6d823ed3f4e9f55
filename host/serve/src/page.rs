//! The status page: one server-rendered HTML page built with maud (so every piece of text,
//! site names and error messages included, is escaped), inline CSS (light and dark, phone
//! and desktop widths) and a few lines of inline JS that follow the live event stream.
//! `render` is a pure function of a `PageData` snapshot; nothing on the page loads anything
//! from elsewhere, so it works offline.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

#[derive(Debug, Clone)]
pub struct PageData {
    pub title: String,
    /// Where this instance runs, shown in the header.
    pub location: String,
    pub generated: DateTime<Utc>,
    /// View names in order, e.g. ["10m", "1h"].
    pub views: Vec<String>,
    /// Alert threshold 0..=1; availability below it is marked.
    pub threshold: f64,
    /// Config order.
    pub sites: Vec<SiteRow>,
    /// Sites down now.
    pub incidents: Vec<Incident>,
    /// Stored alerts, newest first (at most 50 are shown).
    pub history: Vec<HistoryItem>,
    /// Path of the live event stream the page subscribes to, e.g. "/api/v1/events"; `None` on
    /// a public page read without a token (the stream needs one): it reloads every minute.
    pub events_path: Option<String>,
    /// sitewatch itself cannot reach the network: its `monitor_offline` message.
    pub offline: Option<String>,
    /// Announcements shown now (`announcements` of the config), as banners.
    pub announcements: Vec<Banner>,
    /// Incidents people posted (`sitewatch incident`, the API): open ones and those resolved
    /// in the last 7 days, newest first.
    pub posted: Vec<Posted>,
    /// Maintenance windows that open within the next 7 days (or are open), soonest first.
    pub upcoming: Vec<Upcoming>,
}

/// An announcement shown now.
#[derive(Debug, Clone)]
pub struct Banner {
    pub message: String,
    pub end: DateTime<Utc>,
}

/// A posted incident with its timeline, newest update first.
#[derive(Debug, Clone)]
pub struct Posted {
    pub id: i64,
    pub title: String,
    pub sites: Vec<String>,
    pub status: &'static str,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    /// (time, status, message), newest first.
    pub updates: Vec<(DateTime<Utc>, &'static str, String)>,
}

/// One maintenance window to come, with the sites it covers (`None`: every site).
#[derive(Debug, Clone)]
pub struct Upcoming {
    pub name: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub sites: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct SiteRow {
    pub name: String,
    pub url: String,
    /// The site's first tag: the page groups sites by it (untagged last) once any site has one.
    pub group: Option<String>,
    pub down: bool,
    pub down_since: Option<DateTime<Utc>>,
    /// Its down alert was held, and why (`core-router down`).
    pub held: Option<String>,
    /// `up`, `down`, `degraded`, `maintenance` or `unknown` (see `board::SiteState::status`).
    pub state: &'static str,
    /// The maintenance window open now: when it ends.
    pub maintenance_until: Option<DateTime<Utc>>,
    /// Whole days until the earliest certificate of the served chain expires, and whether a
    /// certificate warning is open.
    pub cert_days: Option<i64>,
    pub cert_warning: bool,
    /// A domain registration warning is open.
    pub domain_warning: bool,
    /// Flapping: its alerts are held until it settles.
    pub flapping: bool,
    /// Its objective and error budget (`slo`).
    pub slo: Option<crate::event::SloStatus>,
    /// Availability per view, same order as PageData.views; None = no data yet.
    pub availability: Vec<Option<f64>>,
    /// The last probes, oldest first (at most 30 are shown).
    pub probes: Vec<ProbeDot>,
    pub last_error: Option<String>,
    /// Availability on each of the last 90 UTC days, oldest first (from the day rollups);
    /// empty when the store has none for the site.
    pub daily: Vec<(chrono::NaiveDate, Option<f64>)>,
    /// A `script` site's steps in its latest run, in order; empty for other kinds.
    pub steps: Vec<StepCell>,
}

/// One step of a script site's latest run (its name is the scenario's: hostile text).
#[derive(Debug, Clone)]
pub struct StepCell {
    pub name: String,
    pub duration_ms: f64,
    /// The run failed in this step.
    pub failed: bool,
}

#[derive(Debug, Clone)]
pub struct ProbeDot {
    pub time: DateTime<Utc>,
    pub ok: bool,
    pub status: Option<u16>,
    pub response_ms: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Incident {
    pub site: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub time: DateTime<Utc>,
    pub site: String,
    /// "down" | "recovered"
    pub kind: String,
    pub message: String,
}

/// Most probes shown per site and most alerts in the history (the live script keeps the same).
const MAX_PROBES: usize = 30;
const MAX_HISTORY: usize = 50;

/// The whole page as an HTML document.
pub fn render(data: &PageData) -> String {
    let mut history: Vec<&HistoryItem> = data.history.iter().collect();
    history.sort_by_key(|h| std::cmp::Reverse(h.time)); // stable: equal times keep the given order
    history.truncate(MAX_HISTORY);
    let down = data.sites.iter().filter(|s| s.down).count();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (data.title) " — " (data.location) }
                @if data.events_path.is_none() {
                    meta http-equiv="refresh" content="60";
                }
                style { (PreEscaped(CSS)) }
            }
            body data-events=[data.events_path.as_deref()] data-threshold=(data.threshold) {
                header {
                    h1 { (data.title) }
                    p.meta {
                        "at " strong { (data.location) } " · generated " (time_el(data.generated))
                        " · alert threshold " (pct(data.threshold)) " · "
                        span #live role="status" { "connecting…" }
                    }
                    p #summary .meta { (data.sites.len() - down) " up, " (down) " down" }
                    @if let Some(offline) = &data.offline {
                        p.cert.warn role="alert" { (offline) }
                    }
                    @for b in &data.announcements {
                        p.announcement role="note" { (b.message) " " span.until { "(until " (time_el(b.end)) ")" } }
                    }
                }
                main {
                    @if !data.posted.is_empty() {
                        section #posted aria-labelledby="h-posted" {
                            h2 #h-posted { "Incidents" }
                            @for i in &data.posted {
                                article.incident class=(if i.resolved.is_some() { "resolved" } else { "open" }) data-incident=(i.id) {
                                    h3 {
                                        (i.title) " " span class={ "istatus " (i.status) } { (i.status) }
                                    }
                                    p.meta {
                                        @if !i.sites.is_empty() { "Affects " (i.sites.join(", ")) " · " }
                                        "opened " (time_el(i.opened))
                                        @if let Some(r) = i.resolved { " · resolved " (time_el(r)) }
                                    }
                                    ol.timeline { @for (t, st, msg) in &i.updates {
                                        li { (time_el(*t)) " " strong { (st) } " — " span.msg { (msg) } }
                                    } }
                                }
                            }
                        }
                    }
                    @if !data.upcoming.is_empty() {
                        section #upcoming aria-labelledby="h-upcoming" {
                            h2 #h-upcoming { "Scheduled maintenance" }
                            ul { @for w in &data.upcoming {
                                li {
                                    @if let Some(n) = &w.name { strong { (n) } ": " }
                                    (time_el(w.start)) " to " (time_el(w.end)) " · "
                                    @match &w.sites {
                                        None => "all sites",
                                        Some(sites) => (sites.join(", ")),
                                    }
                                }
                            } }
                        }
                    }
                    section aria-labelledby="h-sites" {
                        h2 #h-sites { "Sites" }
                        table.sites {
                            thead { tr {
                                th scope="col" { "Site" }
                                th scope="col" { "State" }
                                @for v in &data.views { th scope="col" { "Availability " (v) } }
                                th scope="col" .spark { "Response time" }
                                th scope="col" { "Last probes" }
                            } }
                            @let groups = groups(&data.sites);
                            @if groups.len() == 1 && groups[0].0.is_none() {
                                tbody { @for s in &data.sites { (site_row(data, s)) } }
                            } @else {
                                @for (tag, rows) in &groups {
                                    tbody.group data-group=(tag.unwrap_or("")) {
                                        tr.group {
                                            th scope="rowgroup" colspan=(data.views.len() + 4) {
                                                span.tag { (tag.unwrap_or("untagged")) }
                                                " " span.count { "· " (rows.len()) (if rows.len() == 1 { " site" } else { " sites" }) }
                                            }
                                        }
                                        @for s in rows { (site_row(data, s)) }
                                    }
                                }
                            }
                        }
                    }
                    section aria-labelledby="h-inc" {
                        h2 #h-inc { "Current incidents" }
                        ul #incidents { @for i in &data.incidents {
                            li data-site=(i.site) {
                                strong { (i.site) } " is DOWN since " (time_el(i.since))
                                " (" (duration(data.generated - i.since)) ")"
                            }
                        } }
                        p.none { "No current incidents." }
                    }
                    section aria-labelledby="h-hist" {
                        h2 #h-hist { "Alert history" }
                        ol #history { @for h in &history {
                            li class={ "alert " (h.kind) } data-site=(h.site) {
                                (time_el(h.time)) " " strong.kind { (h.kind.to_uppercase()) } " "
                                span.site { (h.site) } ": " span.msg { (h.message) }
                            }
                        } }
                        p.none { "No alerts yet." }
                    }
                }
                script { (PreEscaped(JS)) }
            }
        }
    }
    .into_string()
}

/// The sites by their first tag: tags in name order, untagged last, config order within a
/// group. One unnamed group when no site has a tag.
fn groups(sites: &[SiteRow]) -> Vec<(Option<&str>, Vec<&SiteRow>)> {
    let mut by_tag: std::collections::BTreeMap<&str, Vec<&SiteRow>> = Default::default();
    let mut untagged = Vec::new();
    for s in sites {
        match s.group.as_deref() {
            Some(t) => by_tag.entry(t).or_default().push(s),
            None => untagged.push(s),
        }
    }
    let mut out: Vec<(Option<&str>, Vec<&SiteRow>)> = by_tag
        .into_iter()
        .map(|(t, rows)| (Some(t), rows))
        .collect();
    if !untagged.is_empty() || out.is_empty() {
        out.push((None, untagged));
    }
    out
}

fn site_row(data: &PageData, s: &SiteRow) -> Markup {
    let probes = &s.probes[s.probes.len().saturating_sub(MAX_PROBES)..];
    let st = s.state;
    let since = match st {
        "down" => s.down_since.map(|t| match &s.held {
            Some(why) => format!("down since {} (held: {why})", fmt_time(t)),
            None => format!("down since {}", fmt_time(t)),
        }),
        "maintenance" => s
            .maintenance_until
            .map(|t| format!("maintenance until {}", fmt_time(t))),
        _ => None,
    };
    html! {
        tr class={ "site " (st) } data-site=(s.name) data-probes=(probes.len()) {
            th scope="row" .name {
                (s.name) br;
                @if is_web(&s.url) && !s.url.contains("${") { a.url href=(s.url) rel="noopener noreferrer" { (s.url) } }
                @else { span.url { (s.url) } }
                @if let Some(e) = &s.last_error { p.err { "Last error: " (e) } }
                @if let Some(d) = s.cert_days {
                    p.cert.warn[s.cert_warning] { "Certificate expires in " (d) " days" }
                }
                @if s.domain_warning { p.cert.warn { "Domain registration expires soon" } }
                @if let Some(o) = &s.slo {
                    p.cert.warn[o.burning.is_some() || o.budget_left.is_some_and(|b| b < 0.0)] .slo {
                        "Error budget: "
                        @match o.budget_left {
                            Some(b) if b < 0.0 => { "overspent by " (format!("{:.0}%", -b * 100.0)) }
                            Some(b) => { (format!("{:.0}%", b * 100.0)) " left" }
                            None => { "no probe yet" }
                        }
                        " (objective " (crate::alert::objective_text(o.objective)) " over " (humantime::format_duration(o.period).to_string()) ")"
                        @if let Some(sev) = o.burning { " · burning fast (" (sev) ")" }
                    }
                }
                @if s.flapping { p.cert.warn { "Flapping: its alerts are held until it settles" } }
                @if !s.steps.is_empty() {
                    ol.steps aria-label="Steps of the last run" {
                        @for st in &s.steps {
                            li.step.failed[st.failed] {
                                span.sname { (st.name) } " " (format!("{:.1} ms", st.duration_ms))
                                @if st.failed { " " strong { "FAILED" } }
                            }
                        }
                    }
                }
                @if !s.daily.is_empty() { (daily_bars(data, &s.daily)) }
            }
            td class={ "state " (st) } data-state=(st) title=[since] { (st.to_uppercase()) }
            @for (i, v) in data.views.iter().enumerate() {
                @let a = s.availability.get(i).copied().flatten().filter(|a| a.is_finite());
                td.avail.low[a.is_some_and(|a| a < data.threshold)] data-view=(v) {
                    @if let Some(a) = a { (pct(a)) } @else { "—" }
                }
            }
            td.spark { @if probes.is_empty() { span.none { "no data" } } @else { (sparkline(probes)) } }
            td.probes {
                div.bar role="img" aria-label=(bar_label(probes)) {
                    @for p in probes { span class={ "p " (if p.ok { "ok" } else { "fail" }) } title=(tip(p)) {} }
                }
            }
        }
    }
}

/// One bar per day: green at or above the alert threshold, red below, grey without data
/// (as Gatus and Upptime show them).
fn daily_bars(data: &PageData, days: &[(chrono::NaiveDate, Option<f64>)]) -> Markup {
    let below = days
        .iter()
        .filter(|d| d.1.is_some_and(|a| a < data.threshold))
        .count();
    let none = days.iter().filter(|d| d.1.is_none()).count();
    let label = format!(
        "Last {} days: {} at or above the threshold, {below} below, {none} without data",
        days.len(),
        days.len() - below - none
    );
    html! {
        div.days role="img" aria-label=(label) data-days=(days.len()) {
            @for (day, a) in days {
                @let class = match a { None => "d none", Some(a) if *a < data.threshold => "d low", Some(_) => "d ok" };
                @let tip = match a { None => format!("{day}: no data"), Some(a) => format!("{day}: {}", pct(*a)) };
                span class=(class) title=(tip) {}
            }
        }
    }
}

/// Response times as a polyline scaled to the row's maximum; failed probes are dots.
fn sparkline(probes: &[ProbeDot]) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    const PAD: f64 = 3.0;
    let ms = |p: &ProbeDot| p.response_ms.filter(|m| m.is_finite() && *m >= 0.0);
    let max = probes.iter().filter_map(ms).fold(0.0, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    let n = probes.len();
    let x = |i: usize| {
        if n < 2 {
            W / 2.0
        } else {
            PAD + i as f64 * (W - 2.0 * PAD) / (n - 1) as f64
        }
    };
    let y = |m: f64| H - PAD - m / scale * (H - 2.0 * PAD);
    let points: Vec<(f64, f64)> = probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| ms(p).map(|m| (x(i), y(m))))
        .collect();
    let line = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let failed = probes.iter().filter(|p| !p.ok).count();
    let label = match probes.iter().rev().find_map(ms) {
        Some(last) => format!(
            "Response time of the last {n} probes: latest {last:.1} ms, max {max:.1} ms; {failed} failed"
        ),
        None => format!("Response time of the last {n} probes: none measured; {failed} failed"),
    };
    html! {
        svg.sparkline role="img" aria-label=(label) width="120" height="28" viewBox="0 0 120 28" {
            title { (label) }
            line.base x1="0" y1=(H - PAD) x2=(W) y2=(H - PAD) {}
            @if points.len() > 1 { polyline points=(line) {} }
            @else if let Some((px, py)) = points.first() {
                circle.pt cx=(format!("{px:.1}")) cy=(format!("{py:.1}")) r="2" {}
            }
            @for (i, p) in probes.iter().enumerate() {
                @if !p.ok {
                    circle.fail cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", ms(p).map_or(H - PAD, y))) r="2.5" {}
                }
            }
        }
    }
}

fn bar_label(probes: &[ProbeDot]) -> String {
    let ok = probes.iter().filter(|p| p.ok).count();
    format!(
        "Last {} probes: {ok} OK, {} failed",
        probes.len(),
        probes.len() - ok
    )
}

/// One probe's tooltip; the live script builds the same text.
fn tip(p: &ProbeDot) -> String {
    let status = p
        .status
        .map_or("no status".to_string(), |s| format!("HTTP {s}"));
    let ms = p
        .response_ms
        .map_or("no time".to_string(), |m| format!("{m:.1} ms"));
    format!(
        "{} — {}, {status}, {ms}",
        fmt_time(p.time),
        if p.ok { "OK" } else { "FAILED" }
    )
}

fn is_web(url: &str) -> bool {
    let u = url.to_ascii_lowercase();
    u.starts_with("http://") || u.starts_with("https://")
}

fn pct(a: f64) -> String {
    format!("{:.2}%", a * 100.0)
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn time_el(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) { (fmt_time(t)) } }
}

fn duration(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

const CSS: &str = r#"
:root{--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700}
@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9da7b3;--line:#30363d;--ok:#3fb950;--bad:#ff7b72;--warn:#d29922}}
*{box-sizing:border-box}
body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main{max-width:72rem;margin:0 auto}
h1{margin:0 0 .25rem;font-size:1.5rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.meta,.none{color:var(--muted);margin:.25rem 0}
#live{font-weight:600}#live.on{color:var(--ok)}#live.off{color:var(--bad)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);vertical-align:middle}
thead th{font-size:.85rem;color:var(--muted)}
a{color:inherit}.url{font-size:.85rem;font-weight:400;color:var(--muted);word-break:break-all}
.err{font-size:.85rem;font-weight:400;color:var(--bad);margin:.2rem 0 0;word-break:break-word}
.state{font-weight:700;letter-spacing:.03em}.state.up{color:var(--ok)}.state.down{color:var(--bad)}
.state.degraded{color:var(--warn)}.state.maintenance{color:var(--muted)}.state.paused{color:var(--muted)}
.announcement{border-left:4px solid var(--warn);padding:.3em .6em}.incident{border-left:4px solid var(--bad);padding:0 .8em;margin:.8em 0}
.incident.resolved{border-color:var(--ok)}.istatus{font-size:.8em;text-transform:uppercase;color:var(--muted)}.timeline{padding-left:1.2em}
.cert{font-size:.85rem;font-weight:400;color:var(--muted);margin:.2rem 0 0}.cert.warn{color:var(--warn);font-weight:600}
.steps{font-size:.85rem;font-weight:400;color:var(--muted);margin:.2rem 0 0;padding-left:1.2rem;word-break:break-word}.step.failed{color:var(--bad)}
tr.down{background:color-mix(in srgb,var(--bad) 9%,transparent)}
tr.group th{padding-top:1.1rem;border-bottom:2px solid var(--line);font-size:1rem}
tr.group .count{font-weight:400;font-size:.85rem;color:var(--muted)}
.avail{font-variant-numeric:tabular-nums;white-space:nowrap}.avail.low{color:var(--bad);font-weight:700}
.sparkline{display:block;color:var(--fg)}.sparkline polyline{fill:none;stroke:currentColor;stroke-width:1.5}
.sparkline .base{stroke:var(--line)}.sparkline .fail{fill:var(--bad)}.sparkline .pt{fill:currentColor}
.bar{display:flex;gap:2px;align-items:flex-end;min-height:18px}
.days{display:flex;gap:1px;margin:.3rem 0 0;max-width:360px}.days .d{flex:1 1 0;height:14px;min-width:2px;border-radius:1px;background:var(--ok)}
.days .d.low{background:var(--bad)}.days .d.none{background:var(--line)}
.bar .p{flex:0 0 6px;height:12px;border-radius:1px;background:var(--ok)}
.bar .p.fail{height:18px;background:repeating-linear-gradient(45deg,var(--bad) 0 2px,transparent 2px 4px);outline:1px solid var(--bad)}
ul,ol{padding-left:1.25rem;margin:.25rem 0}li{margin:.2rem 0}.msg{word-break:break-word}
#incidents:empty,#history:empty,#incidents:not(:empty)+.none,#history:not(:empty)+.none{display:none}
.alert .kind{font-size:.8rem}.alert.down .kind{color:var(--bad)}.alert.recovered .kind,.alert.degraded_recovered .kind,.alert.cert_renewed .kind{color:var(--ok)}
.alert.degraded .kind,.alert.cert_expiring .kind{color:var(--warn)}
@media (max-width:640px){
body{padding:.6rem}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
table.sites,table.sites tbody,table.sites tr{display:block}
table.sites tr.group{border:0;border-radius:0;padding:0;margin:1rem 0 .4rem}
table.sites tr.group th{display:block;padding:0 0 .2rem}
table.sites tr{border:1px solid var(--line);border-radius:6px;padding:.4rem .5rem;margin:0 0 .6rem}
table.sites th,table.sites td{display:inline-block;border:0;padding:.15rem .6rem .15rem 0}
table.sites th.name,table.sites td.probes{display:block}
table.sites .spark{display:none}
td.avail::before{content:attr(data-view) " ";color:var(--muted);font-size:.85rem}
.bar{flex-wrap:wrap}
}
"#;

/// Follows the event stream (default "message" events, one JSON object each). Reads the
/// stream path and threshold from <body>; writes text only through textContent.
const JS: &str = r#"
(function () {
  "use strict";
  var body = document.body, live = document.getElementById("live"), thr = parseFloat(body.dataset.threshold);
  function $(id) { return document.getElementById(id); }
  function row(site) {
    var rows = document.querySelectorAll("tr[data-site]");
    for (var i = 0; i < rows.length; i++) if (rows[i].dataset.site === site) return rows[i];
    return null;
  }
  function fmt(t) { var d = new Date(t); return isNaN(d) ? String(t) : d.toISOString().slice(0, 19).replace("T", " ") + " UTC"; }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
  function add(p) { for (var i = 1; i < arguments.length; i++) p.appendChild(typeof arguments[i] === "string" ? document.createTextNode(arguments[i]) : arguments[i]); return p; }
  function timeEl(t) { var e = el("time", null, fmt(t)); e.dateTime = String(t); return e; }
  function setState(r, s, t) {
    var down = s === "down", c = r.querySelector("td.state"), inc = $("incidents"), li = null;
    if (c.dataset.state !== s) {
      r.className = "site " + s; c.className = "state " + s; c.dataset.state = s; c.textContent = s.toUpperCase();
      if (t && (down || s === "maintenance")) c.title = (down ? "down since " : "maintenance until ") + fmt(t); else c.removeAttribute("title");
    }
    for (var i = 0; i < inc.children.length; i++) if (inc.children[i].dataset.site === r.dataset.site) li = inc.children[i];
    if (!down && li) inc.removeChild(li);
    if (down && !li) { li = add(el("li"), el("strong", null, r.dataset.site), " is DOWN" + (t ? " since " : "")); if (t) add(li, timeEl(t)); li.dataset.site = r.dataset.site; inc.appendChild(li); }
    var d = document.querySelectorAll('td.state[data-state="down"]').length, n = document.querySelectorAll("tr[data-site]").length;
    $("summary").textContent = (n - d) + " up, " + d + " down";
  }
  function onProbe(r, m) {
    var bar = r.querySelector(".bar"), b = el("span", "p " + (m.ok ? "ok" : "fail")), ok = 0;
    b.title = fmt(m.time) + " — " + (m.ok ? "OK" : "FAILED") + ", " + (m.status != null ? "HTTP " + m.status : "no status") + ", " +
      (typeof m.response_ms === "number" ? m.response_ms.toFixed(1) + " ms" : "no time");
    bar.appendChild(b);
    while (bar.children.length > 30) bar.removeChild(bar.firstElementChild);
    for (var i = 0; i < bar.children.length; i++) if (bar.children[i].classList.contains("ok")) ok++;
    var n = bar.children.length;
    bar.setAttribute("aria-label", "Last " + n + " probes: " + ok + " OK, " + (n - ok) + " failed");
    r.dataset.probes = n;
    var steps = r.querySelector("ol.steps");
    if (steps && Array.isArray(m.steps)) {
      steps.textContent = "";
      m.steps.forEach(function (st) {
        if (!st || typeof st !== "object") return;
        var li = add(el("li", "step" + (st.failed ? " failed" : "")), el("span", "sname", String(st.name)), " " +
          (typeof st.duration_ms === "number" ? st.duration_ms.toFixed(1) + " ms" : ""));
        if (st.failed) add(li, " ", el("strong", null, "FAILED"));
        steps.appendChild(li);
      });
    }
  }
  function onStats(m) {
    if (m.every_s === null || !Array.isArray(m.sites)) return;
    m.sites.forEach(function (s) {
      var r = s && row(s.site); if (!r) return;
      r.querySelectorAll("td.avail").forEach(function (c) {
        if (c.dataset.view !== m.view) return;
        var a = typeof s.availability === "number" ? s.availability : null;
        c.textContent = a === null ? "—" : (a * 100).toFixed(2) + "%";
        c.classList.toggle("low", a !== null && a < thr);
      });
      if (typeof s.down === "boolean") setState(r, s.down ? "down" : s.maintenance ? "maintenance" : s.degraded ? "degraded" : "up", s.maintenance ? s.maintenance.end : null);
    });
  }
  function onAlert(r, m) {
    var next = { down: "down", recovered: "up", degraded: "degraded", degraded_recovered: "up" }[m.kind];
    var cur = r.querySelector("td.state").dataset.state;
    // Maintenance stays shown until its window closes; a degraded verdict never hides down.
    if (next && !(cur === "maintenance" && next === "up") && !(cur === "down" && m.kind.indexOf("degraded") === 0)) setState(r, next, m.time);
    var h = $("history"), li = add(el("li", "alert " + m.kind), timeEl(m.time), " ", el("strong", "kind", m.kind.toUpperCase()), " ",
      el("span", "site", m.site), ": ", el("span", "msg", m.message == null ? "" : String(m.message)));
    li.dataset.site = m.site;
    h.insertBefore(li, h.firstChild);
    while (h.children.length > 50) h.removeChild(h.lastElementChild);
  }
  if (!body.dataset.events) { live.textContent = "refreshed every minute"; return; }
  if (!window.EventSource) { live.textContent = "no live updates"; return; }
  var es = new EventSource(body.dataset.events + location.search);
  es.onopen = function () { live.textContent = "live"; live.className = "on"; };
  es.onerror = function () { live.textContent = "disconnected"; live.className = "off"; };
  es.onmessage = function (e) {
    var m; try { m = JSON.parse(e.data); } catch (x) { return; }
    if (!m || typeof m !== "object") return;
    if (m.event === "stats") return onStats(m);
    var r = typeof m.site === "string" ? row(m.site) : null;
    if (r && m.event === "probe") onProbe(r, m); else if (r && m.event === "alert") onAlert(r, m);
    else if (r && m.event === "maintenance" && r.querySelector("td.state").dataset.state !== "down") setState(r, m.state === "started" ? "maintenance" : "up", m.window.end);
  };
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const EVIL: &str = "<script>alert(1)</script>";

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
    }
    fn dot(s: i64, ok: bool, ms: Option<f64>) -> ProbeDot {
        ProbeDot {
            time: t(s),
            ok,
            status: Some(if ok { 200 } else { 503 }),
            response_ms: ms,
        }
    }
    fn site(name: &str, url: &str, down: bool, probes: Vec<ProbeDot>) -> SiteRow {
        let availability = vec![Some(if down { 0.5 } else { 0.98 }), None];
        let last_error = down.then(|| format!("HTTP 503 from {EVIL}"));
        SiteRow {
            name: name.into(),
            url: url.into(),
            group: None,
            down,
            down_since: down.then(|| t(-300)),
            held: None,
            state: if down { "down" } else { "up" },
            maintenance_until: None,
            cert_days: None,
            cert_warning: false,
            domain_warning: false,
            flapping: false,
            slo: None,
            availability,
            probes,
            daily: Vec::new(),
            last_error,
            steps: Vec::new(),
        }
    }
    fn hist(s: i64, site: &str, kind: &str, message: &str) -> HistoryItem {
        let (site, kind, message) = (site.into(), kind.into(), message.into());
        HistoryItem {
            time: t(s),
            site,
            kind,
            message,
        }
    }
    fn sample() -> PageData {
        let many = (0..40)
            .map(|i| dot(i, true, Some(1.0 + i as f64)))
            .collect();
        let bad = vec![
            dot(0, true, Some(20.0)),
            dot(10, false, None),
            dot(20, false, Some(5.0)),
        ];
        PageData {
            title: "sitewatch".into(),
            location: "eu-west & <lab>".into(),
            generated: t(0),
            views: vec!["10m".into(), "1h".into()],
            threshold: 0.99,
            sites: vec![
                site("api", "https://api.example.com/health", false, many),
                site(EVIL, "https://evil.example.org/", true, bad),
                site("fresh", "http://fresh.example.net/", false, vec![]),
            ],
            incidents: vec![Incident {
                site: EVIL.into(),
                since: t(-300),
            }],
            history: vec![
                hist(-600, "api", "recovered", "older message"),
                hist(-300, EVIL, "down", &format!("newer {EVIL}")),
            ],
            events_path: Some("/api/v1/events".into()),
            announcements: Vec::new(),
            posted: Vec::new(),
            upcoming: Vec::new(),
            offline: None,
        }
    }
    /// The table row of a site, from its `data-site` attribute to `</tr>`.
    fn row<'a>(html: &'a str, attr: &str) -> &'a str {
        let start = html
            .find(&format!("data-site=\"{attr}\""))
            .expect("row of the site");
        assert!(
            html[..start].ends_with(' ') && html[..start].rfind("<tr") > html[..start].rfind('>')
        );
        &html[start..start + html[start..].find("</tr>").unwrap()]
    }
    const EVIL_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

    #[test]
    fn states_are_words_and_hooks_are_present() {
        let html = render(&sample());
        let up = row(&html, "api");
        assert!(
            up.contains(r#"data-state="up""#) && up.contains(">UP</td>") && !up.contains("DOWN")
        );
        let down = row(&html, EVIL_ESCAPED);
        assert!(down.contains(r#"data-state="down""#) && down.contains(">DOWN</td>"));
        assert!(up.contains(r#"data-probes="30""#), "capped at the last 30");
        assert_eq!(up.matches(r#"<span class="p ok""#).count(), 30);
        assert!(down.contains(r#"data-probes="3""#) && down.contains(r#"class="bar""#));
        assert!(row(&html, "fresh").contains(r#"data-probes="0""#));
        assert!(html.contains(r#"<body data-events="/api/v1/events""#));
        assert!(
            up.contains(r#"title="2026-05-28 20:27:19 UTC — OK, HTTP 200, 40.0 ms""#),
            "{up}"
        );
    }

    /// A script site's steps are listed under its name with their latest durations, the
    /// failed one marked, every name escaped.
    #[test]
    fn a_script_sites_steps_are_listed_escaped_with_the_failed_one_marked() {
        let mut data = sample();
        data.sites[0].steps = vec![
            StepCell {
                name: "login".into(),
                duration_ms: 120.25,
                failed: false,
            },
            StepCell {
                name: EVIL.into(),
                duration_ms: 3.0,
                failed: true,
            },
        ];
        let html = render(&data);
        let r = row(&html, "api");
        assert!(
            r.contains(r#"<li class="step"><span class="sname">login</span> 120.2 ms</li>"#)
                || r.contains(r#"<li class="step"><span class="sname">login</span> 120.3 ms</li>"#),
            "{r}"
        );
        assert!(
            r.contains(&format!(
                r#"<li class="step failed"><span class="sname">{EVIL_ESCAPED}</span> 3.0 ms <strong>FAILED</strong></li>"#
            )),
            "{r}"
        );
        assert!(!html.contains("<script>alert"));
        assert!(
            !row(&html, "fresh").contains("steps"),
            "other kinds list none"
        );
    }

    #[test]
    fn a_held_outage_says_what_holds_it() {
        let mut data = sample();
        let i = data.sites.iter().position(|s| s.down).unwrap();
        data.sites[i].held = Some("core-router <down>".into());
        let html = render(&data);
        assert!(
            html.contains("(held: core-router &lt;down&gt;)"),
            "shown, escaped"
        );
    }

    #[test]
    fn the_error_budget_and_an_offline_monitor_are_shown() {
        let mut data = sample();
        data.sites[0].slo = Some(crate::event::SloStatus {
            objective: 0.999,
            period: std::time::Duration::from_secs(30 * 86400),
            budget_left: Some(-0.25),
            burning: Some("page"),
        });
        data.offline = Some("sitewatch is offline: every canary fails: gw:80 (connect)".into());
        let html = render(&data);
        let api = row(&html, "api");
        assert!(
            api.contains(
                "Error budget: overspent by 25% (objective 99.9% over 30days) · burning fast (page)"
            ),
            "{api}"
        );
        assert!(html.contains("sitewatch is offline: every canary fails: gw:80 (connect)"));
        assert!(!row(&html, "fresh").contains("Error budget"));
    }

    #[test]
    fn untrusted_text_is_escaped() {
        let html = render(&sample());
        assert!(!html.contains("<script>alert") && !html.contains("<lab>"));
        assert!(html.contains(EVIL_ESCAPED) && html.contains("eu-west &amp; &lt;lab&gt;"));
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn availability_is_a_percentage_per_view() {
        let html = render(&sample());
        let up = row(&html, "api");
        assert!(up.contains(r#"data-view="10m">98.00%</td>"#), "{up}");
        assert!(up.contains(r#"data-view="1h">—</td>"#));
        assert!(
            up.contains(r#"class="avail low""#),
            "98% is below the 99% threshold"
        );
        assert!(html.contains("alert threshold 99.00%"));
    }

    #[test]
    fn history_is_newest_first_and_incidents_listed() {
        let html = render(&sample());
        let hist = &html[html.find(r#"<ol id="history">"#).unwrap()..];
        assert!(hist.find("newer").unwrap() < hist.find("older message").unwrap());
        assert!(html.contains("is DOWN since") && html.contains("(5m 0s)"));
    }

    #[test]
    fn daily_bars_colour_each_day_by_the_threshold_and_say_no_data() {
        let mut data = sample();
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        data.sites[0].daily = vec![
            (day(28), None),
            (day(29), Some(0.995)),
            (day(30), Some(0.9)),
        ];
        let html = render(&data);
        let api = row(&html, "api");
        assert!(
            api.contains(
                r#"aria-label="Last 3 days: 1 at or above the threshold, 1 below, 1 without data""#
            ),
            "{api}"
        );
        assert!(
            api.contains(r#"<span class="d none" title="2026-11-28: no data">"#),
            "{api}"
        );
        assert!(
            api.contains(r#"<span class="d ok" title="2026-11-29: 99.50%">"#),
            "{api}"
        );
        assert!(
            api.contains(r#"<span class="d low" title="2026-11-30: 90.00%">"#),
            "{api}"
        );
        assert!(
            !row(&html, "fresh").contains("class=\"days\""),
            "no bars without history"
        );
    }

    #[test]
    fn one_sparkline_per_site_with_probes() {
        let html = render(&sample());
        assert_eq!(html.matches("<svg").count(), 2);
        let down = row(&html, EVIL_ESCAPED);
        assert!(
            down.contains(r#"role="img""#)
                && down.contains("aria-label=\"Response time of the last 3 probes")
        );
        assert_eq!(down.matches(r#"<circle class="fail""#).count(), 2);
        assert!(down.contains(r#"aria-label="Last 3 probes: 1 OK, 2 failed""#));
        assert!(row(&html, "fresh").contains("no data"));
    }

    #[test]
    fn sites_are_grouped_by_their_first_tag_untagged_last() {
        let mut data = sample();
        assert!(
            !render(&data).contains("rowgroup"),
            "no groups without tags"
        );
        data.sites[0].group = Some("web".into());
        data.sites[2].group = Some("api".into());
        let html = render(&data);
        let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert_eq!(html.matches(r#"<th scope="rowgroup""#).count(), 3);
        assert!(html.contains(r#"<th scope="rowgroup" colspan="6"><span class="tag">api</span> <span class="count">· 1 site</span></th>"#), "{html}");
        // Tags in name order, each before its sites; untagged last.
        assert!(at(r#"<span class="tag">api</span>"#) < at(r#"data-site="fresh""#));
        assert!(at(r#"data-site="fresh""#) < at(r#"<span class="tag">web</span>"#));
        assert!(at(r#"<span class="tag">web</span>"#) < at(r#"data-site="api""#));
        assert!(at(r#"data-site="api""#) < at(r#"<span class="tag">untagged</span>"#));
        assert!(
            at(r#"<span class="tag">untagged</span>"#)
                < at(&format!(r#"data-site="{EVIL_ESCAPED}""#))
        );
        assert_eq!(html.matches(r#"<tbody class="group""#).count(), 3);
        // A group of untrusted text is escaped like the rest.
        data.sites[0].group = Some(EVIL.into());
        let html = render(&data);
        assert!(html.contains(&format!(r#"<span class="tag">{EVIL_ESCAPED}</span>"#)));
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn a_url_that_names_variables_is_not_a_link() {
        let mut data = sample();
        data.sites[0].url = "https://api.example.com/?key=${KEY}".into();
        let html = render(&data);
        let row = row(&html, "api");
        assert!(
            row.contains(r#"<span class="url">https://api.example.com/?key=${KEY}</span>"#),
            "{row}"
        );
    }

    #[test]
    fn page_is_self_contained_and_responsive() {
        let data = sample();
        let mut html = render(&data);
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(
            html.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            )
        );
        assert!(
            html.contains("@media (prefers-color-scheme: dark)")
                && html.contains("@media (max-width:640px)")
        );
        for s in &data.sites {
            html = html.replace(&s.url, "");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external reference"
        );
        assert!(!html.contains(" src=") && !html.contains("<link") && !html.contains("@import"));
    }
}
