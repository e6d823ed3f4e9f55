//! History reports as plain text, JSON and CSV, and the status page's daily bars.

use super::period::{By, Calendar};
use super::query::{Answer, HistoryError, Request, SiteRow, Source};
use super::tier::Retention;
use crate::event::{SiteReport, StatsReport};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// `--output` of `sitewatch report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Plain,
    Json,
    Csv,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn human(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

fn pct(a: Option<f64>) -> String {
    a.map_or_else(|| "no data".into(), |a| format!("{:.3}%", a * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}ms"))
}

/// The period's label, or `total`.
fn period_label(a: &Answer, r: &SiteRow) -> String {
    match (a.by, r.period) {
        (Some(by), Some(p)) => Calendar::label(by, &p),
        _ => "total".into(),
    }
}

/// What the figures come from, for the heading.
fn source_note(a: &Answer) -> String {
    let mut s = match a.source {
        Source::Raw => "raw measurements (exact)".to_owned(),
        Source::Tier(_) => format!(
            "{} rollups (percentiles within {}%)",
            tier_names(a),
            super::sketch::RELATIVE_ERROR * 100.0
        ),
    };
    if !a.exact_boundaries {
        s.push_str(
            "; period boundaries are approximate (each cell counts in the period it starts in)",
        );
    }
    s
}

/// `day`, `day and hour`, `day, hour and minute`: coarsest first.
pub fn tier_names(a: &Answer) -> String {
    let names: Vec<&str> = a.tiers.iter().rev().map(|t| t.name()).collect();
    match names.as_slice() {
        [] => "no".into(),
        [one] => (*one).into(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn zone(a: &Answer) -> String {
    format!(
        "{}, weeks from {}",
        a.calendar.tz,
        weekday(a.calendar.week_start)
    )
}

fn weekday(w: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match w {
        Mon => "monday",
        Tue => "tuesday",
        Wed => "wednesday",
        Thu => "thursday",
        Fri => "friday",
        Sat => "saturday",
        Sun => "sunday",
    }
}

/// The SLA figures of one row: (allowed, spent, left) downtime in seconds over the time the
/// site was watched in the report: allowed = (1 - objective) x that, spent = (1 - uptime) x that.
fn budget(a: &Answer, r: &SiteRow) -> Option<(f64, f64, f64)> {
    let objective = r.objective_of(a)? / 100.0;
    let uptime = r.stats.availability?;
    let span = (a.to - r.watched_from)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let allowed = (1.0 - objective) * span;
    let spent = (1.0 - uptime) * span;
    Some((allowed, spent, allowed - spent))
}

pub fn to_json(a: &Answer) -> Value {
    let head = |kind: &str| {
        json!({
            "report": kind,
            "from": crate::clock::rfc3339_seconds(a.from),
            "to": crate::clock::rfc3339_seconds(a.to),
            "source": a.source.name(),
            "tiers": a.tiers.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "percentile_error": a.source.percentile_error(),
            "exact_boundaries": a.exact_boundaries,
        })
    };
    if let Some(objective) = a.sla {
        let mut v = head("sla");
        v["objective"] = json!(objective);
        v["sites"] = a
            .rows
            .iter()
            .map(|r| {
                let b = budget(a, r);
                json!({
                    "site": &*r.site, "url": &*r.url,
                    "objective": r.objective_of(a),
                    "uptime": r.stats.availability,
                    "probes": r.stats.checks,
                    "watched_from": crate::clock::rfc3339_seconds(r.watched_from),
                    "allowed_downtime_s": b.map(|b| b.0),
                    "downtime_s": b.map(|b| b.1),
                    "budget_left_s": b.map(|b| b.2),
                    "budget_left_ratio": b.and_then(|b| (b.0 > 0.0).then(|| b.2 / b.0)),
                    "met": b.map(|b| b.2 >= 0.0),
                    "incidents": r.incidents,
                    "incident_downtime_s": secs(r.downtime),
                    "longest_incident_s": secs(r.longest_incident),
                    "maintenance_probes": r.maintenance_probes,
                })
            })
            .collect();
        return v;
    }
    let mut v = head(if a.by.is_some() { "periods" } else { "total" });
    if let Some(by) = a.by {
        v["by"] = json!(by.as_str());
        v["tz"] = json!(a.calendar.tz.name());
        v["week_start"] = json!(weekday(a.calendar.week_start));
    }
    v["rows"] = a
        .rows
        .iter()
        .map(|r| {
            let s = &r.stats;
            let mut row = json!({
                "site": &*r.site, "url": &*r.url,
                "period": period_label(a, r),
                "start": r.period.map(|p| crate::clock::rfc3339_seconds(p.start)),
                "end": r.period.map(|p| crate::clock::rfc3339_seconds(p.end)),
                "availability": s.availability,
                "probes": s.checks,
                "up": s.ok,
                "response_ms": s.response_ms.map(|x| json!({"avg": x.avg, "max": x.max, "p50": x.p50, "p95": x.p95, "p99": x.p99})),
                "ttfb_ms": s.ttfb_ms.map(|x| json!({"avg": x.avg, "max": x.max})),
                "status_codes": s.status_codes,
                "downtime_s": secs(r.downtime),
                "incidents": r.incidents,
                "maintenance_probes": r.maintenance_probes,
            });
            if !s.steps.is_empty() {
                row["steps"] = crate::wire::step_stats_value(&s.steps);
            }
            row
        })
        .collect();
    v
}

/// Writes `a` in `format`.
pub fn write(a: &Answer, format: ReportFormat, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        ReportFormat::Json => writeln!(out, "{}", to_json(a)),
        ReportFormat::Csv => write_csv(a, out),
        ReportFormat::Plain if a.sla.is_some() => write_sla(a, out),
        ReportFormat::Plain => write_periods(a, out),
    }
}

/// The heading line (`{title}, FROM to TO: source`); `None` after "no data" when there are no
/// rows, else the width of the site column.
fn heading(a: &Answer, title: &str, out: &mut dyn Write) -> std::io::Result<Option<usize>> {
    writeln!(
        out,
        "{title}, {} to {}: {}",
        crate::clock::rfc3339_seconds(a.from),
        crate::clock::rfc3339_seconds(a.to),
        source_note(a)
    )?;
    if a.rows.is_empty() {
        writeln!(out, "no data")?;
        return Ok(None);
    }
    Ok(Some(
        a.rows
            .iter()
            .map(|r| r.site.len())
            .max()
            .unwrap_or(4)
            .max(4),
    ))
}

fn write_periods(a: &Answer, out: &mut dyn Write) -> std::io::Result<()> {
    let what = match a.by {
        Some(by) => format!("by {} ({})", by.as_str(), zone(a)),
        None => "in total".into(),
    };
    let Some(width) = heading(a, &format!("History {what}"), out)? else {
        return Ok(());
    };
    writeln!(
        out,
        "{:<width$}  {:<10}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>9}",
        "SITE",
        "PERIOD",
        "AVAIL",
        "PROBES",
        "AVG",
        "MAX",
        "P95",
        "TTFB AVG",
        "TTFB MAX",
        "DOWN",
        "INCIDENTS"
    )?;
    for r in &a.rows {
        let s = &r.stats;
        writeln!(
            out,
            "{:<width$}  {:<10}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>9}",
            r.site,
            period_label(a, r),
            pct(s.availability),
            s.checks,
            ms(s.response_ms.map(|x| x.avg)),
            ms(s.response_ms.map(|x| x.max)),
            ms(s.response_ms.map(|x| x.p95)),
            ms(s.ttfb_ms.map(|x| x.avg)),
            ms(s.ttfb_ms.map(|x| x.max)),
            human(r.downtime),
            r.incidents,
        )?;
    }
    Ok(())
}

fn write_sla(a: &Answer, out: &mut dyn Write) -> std::io::Result<()> {
    let title = if a.rows.iter().any(|r| r.objective.is_some()) {
        "SLA (each site's objective)".to_owned()
    } else {
        format!("SLA {}%", a.sla.unwrap_or_default())
    };
    let Some(width) = heading(a, &title, out)? else {
        return Ok(());
    };
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>9}  {:>12}  {:>12}  {:>20}  {:>9}  {:>12}",
        "SITE", "OBJECTIVE", "UPTIME", "ALLOWED", "SPENT", "BUDGET LEFT", "INCIDENTS", "LONGEST"
    )?;
    for r in &a.rows {
        let d = |s: f64| human(Duration::from_secs_f64(s.abs()));
        let (allowed, spent, left) = match budget(a, r) {
            Some((al, sp, le)) => {
                let share = if al > 0.0 { le / al * 100.0 } else { 0.0 };
                let left = if le >= 0.0 {
                    format!("{} ({share:.0}%)", d(le))
                } else {
                    format!("over by {}", d(le))
                };
                (d(al), d(sp), left)
            }
            None => ("-".into(), "-".into(), "no data".into()),
        };
        writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  {:>12}  {:>12}  {:>20}  {:>9}  {:>12}",
            r.site,
            r.objective_of(a)
                .map_or("-".into(), |o| crate::alert::objective_text(o / 100.0)),
            pct(r.stats.availability),
            allowed,
            spent,
            left,
            r.incidents,
            human(r.longest_incident),
        )?;
    }
    Ok(())
}

fn write_csv(a: &Answer, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    if a.sla.is_some() {
        w.write_record([
            "site",
            "url",
            "uptime",
            "probes",
            "objective",
            "allowed_downtime_s",
            "downtime_s",
            "budget_left_s",
            "incidents",
            "longest_incident_s",
        ])?;
        for r in &a.rows {
            let b = budget(a, r);
            w.write_record([
                r.site.to_string(),
                r.url.to_string(),
                f(r.stats.availability),
                r.stats.checks.to_string(),
                f(r.objective_of(a)),
                f(b.map(|b| b.0)),
                f(b.map(|b| b.1)),
                f(b.map(|b| b.2)),
                r.incidents.to_string(),
                secs(r.longest_incident).to_string(),
            ])?;
        }
    } else {
        w.write_record([
            "site",
            "url",
            "period",
            "start",
            "end",
            "availability",
            "probes",
            "up",
            "response_avg_ms",
            "response_max_ms",
            "response_p95_ms",
            "ttfb_avg_ms",
            "ttfb_max_ms",
            "downtime_s",
            "incidents",
            "maintenance_probes",
        ])?;
        for r in &a.rows {
            let s = &r.stats;
            let t =
                |t: Option<DateTime<Utc>>| t.map(crate::clock::rfc3339_seconds).unwrap_or_default();
            w.write_record([
                r.site.to_string(),
                r.url.to_string(),
                period_label(a, r),
                t(r.period.map(|p| p.start)),
                t(r.period.map(|p| p.end)),
                f(s.availability),
                s.checks.to_string(),
                s.ok.to_string(),
                f(s.response_ms.map(|x| x.avg)),
                f(s.response_ms.map(|x| x.max)),
                f(s.response_ms.map(|x| x.p95)),
                f(s.ttfb_ms.map(|x| x.avg)),
                f(s.ttfb_ms.map(|x| x.max)),
                secs(r.downtime).to_string(),
                r.incidents.to_string(),
                r.maintenance_probes.to_string(),
            ])?;
        }
    }
    w.flush()
}

/// A report without `--by` or `--sla` in the shape of the live views' (what `report` printed
/// before there were rollups).
pub fn to_stats_report(a: &Answer, since: Duration, threshold: f64) -> StatsReport {
    StatsReport {
        view: humantime::format_duration(since)
            .to_string()
            .replace(' ', ""),
        window_s: since.as_secs(),
        every_s: None,
        time: a.to,
        r#final: false,
        threshold,
        overloaded: false,
        skipped_overload: 0,
        probes_total: 0,
        sites: a
            .rows
            .iter()
            .map(|r| SiteReport {
                maintenance_probes: r.maintenance_probes,
                ..SiteReport::new(r.site.clone(), r.url.clone(), r.stats.clone())
            })
            .collect(),
    }
}

/// Per site (name, URL): (UTC day, availability) oldest first.
pub type DailyBars =
    std::collections::HashMap<(String, String), Vec<(chrono::NaiveDate, Option<f64>)>>;

/// The JSON of a report in the live views' shape (from [`to_stats_report`]) with what it was
/// read from: `source`, `tiers`, `percentile_error`, `from` and `to`.
pub fn stats_json(a: &Answer, report: StatsReport) -> Value {
    let mut v = crate::wire::to_value(&crate::event::Event::Stats(report), None);
    let head = to_json(a);
    for key in ["source", "tiers", "percentile_error", "from", "to"] {
        v[key] = head[key].clone();
    }
    v
}

/// Each site's (by name and URL) availability on each of the last `days` UTC days, oldest
/// first (`None`: no data that day), from the day rollups.
pub fn daily_bars(
    store: &crate::Store,
    retention: &Retention,
    now: DateTime<Utc>,
    days: u32,
) -> Result<DailyBars, HistoryError> {
    let req = Request {
        since: Duration::from_secs(u64::from(days.saturating_sub(1)) * 86_400),
        site: None,
        by: Some(By::Day),
        sla: None,
        calendar: Calendar::default(),
        include_maintenance: false,
    };
    let a = super::query::report(store, &req, retention, now)?;
    let mut out = DailyBars::new();
    for r in &a.rows {
        let day = r
            .period
            .map_or_else(|| a.from.date_naive(), |p| p.first_day);
        out.entry((r.site.to_string(), r.url.to_string()))
            .or_default()
            .push((day, r.stats.availability));
    }
    Ok(out)
}
