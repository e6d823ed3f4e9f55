//! Plain text output: a stats table per view refresh, alert messages as they happen, and errors.

use crate::event::{Event, StatsReport};
use std::io::{self, Write};

/// Site names longer than this are cut, so the table stays within 100 columns.
const NAME_WIDTH: usize = 20;

pub fn write(out: &mut dyn Write, event: &Event) -> io::Result<()> {
    match event {
        Event::Probe(_) => Ok(()),
        Event::Started(s) => {
            writeln!(
                out,
                "sitewatch: watching {} sites from {}; storing to {}",
                s.sites, s.config, s.storage
            )?;
            for a in &s.past_alerts {
                writeln!(out, "earlier: {}", a.text())?;
            }
            Ok(())
        }
        Event::Reload(r) => writeln!(out, "{}", r.line()),
        // The error event beside a recovery says it in words.
        Event::Watching(_) | Event::Sink(_) | Event::StoreRecovered(_) => Ok(()),
        Event::Overload(o) => writeln!(
            out,
            "overload {}: {}",
            match o.state {
                crate::event::OverloadState::Started => "started",
                crate::event::OverloadState::Ended => "ended",
            },
            o.detail
        ),
        Event::Alert(a) => writeln!(out, "{}", a.text()),
        Event::Maintenance(m) => writeln!(out, "{}", m.line()),
        Event::Cluster(c) => writeln!(out, "cluster: {}", c.detail),
        Event::Delivery(d) => writeln!(out, "{}", d.line()),
        Event::Error(e) => match &e.site {
            Some(site) => writeln!(out, "error ({}, site {site}): {}", e.source, e.message),
            None => writeln!(out, "error ({}): {}", e.source, e.message),
        },
        Event::Stats(r) => write_table(out, r),
    }
}

/// Cuts `s` to `width` characters, marking the cut with `…`.
pub fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn write_table(out: &mut dyn Write, r: &StatsReport) -> io::Result<()> {
    let time = crate::clock::rfc3339_seconds(r.time);
    match r.every_s {
        // A report of a past timeframe is not a live view.
        None => writeln!(out, "== report: the {} until {time}", r.view)?,
        Some(every) => writeln!(
            out,
            "{} last {} (refreshed every {}) at {time}",
            if r.r#final { "final:" } else { "==" },
            r.view,
            humantime::format_duration(std::time::Duration::from_secs_f64(every)),
        )?,
    }
    if r.overloaded || r.skipped_overload > 0 {
        writeln!(
            out,
            "  {}{} ticks skipped since start because sitewatch was overloaded",
            if r.overloaded { "OVERLOADED now; " } else { "" },
            r.skipped_overload
        )?;
    }
    writeln!(
        out,
        "  {:<NAME_WIDTH$} {:>8} {:>6}  {:>17}  {:>15}  {:>17}  codes",
        "site", "avail", "checks", "resp avg/max ms", "ttfb avg/max ms", "p50/p95/p99 ms"
    )?;
    for s in &r.sites {
        let name = truncate(&s.site, NAME_WIDTH);
        let Some(avail) = s.stats.availability else {
            let what = if s.paused { "PAUSED" } else { "no data" };
            writeln!(out, "  {name:<NAME_WIDTH$} {what:>8}")?;
            continue;
        };
        let resp = s
            .stats
            .response_ms
            .map(|r| {
                (
                    format!("{:.1}/{:.1}", r.avg, r.max),
                    format!("{:.1}/{:.1}/{:.1}", r.p50, r.p95, r.p99),
                )
            })
            .unwrap_or_else(|| ("-".into(), "-".into()));
        let ttfb = s
            .stats
            .ttfb_ms
            .map(|t| format!("{:.1}/{:.1}", t.avg, t.max))
            .unwrap_or_else(|| "-".into());
        let mut flags: Vec<String> = s.states().into_iter().map(str::to_owned).collect();
        if let Some(days) = s.cert_days(r.time) {
            flags.push(format!("cert {days}d"));
        }
        if !s.tags.is_empty() {
            flags.push(format!("[{}]", s.tags.join(",")));
        }
        writeln!(
            out,
            "  {name:<NAME_WIDTH$} {:>8} {:>6}  {:>17}  {:>15}  {:>17}  {}{}",
            crate::alert::percent(avail),
            s.stats.checks,
            resp.0,
            ttfb,
            resp.1,
            s.stats.codes_summary(),
            if flags.is_empty() {
                String::new()
            } else {
                format!("  {}", flags.join(" "))
            }
        )?;
        if !s.stats.steps.is_empty() {
            writeln!(
                out,
                "  {:<NAME_WIDTH$} steps (avg ms): {}",
                "",
                s.stats.steps_summary(|v| format!("{v:.1}"))
            )?;
        }
        if s.maintenance_probes > 0 && r.every_s.is_none() {
            writeln!(
                out,
                "  {:<NAME_WIDTH$} ({} probes in maintenance windows left out; --include-maintenance counts them)",
                "", s.maintenance_probes
            )?;
        }
        if s.tls_insecure {
            writeln!(
                out,
                "  {:<NAME_WIDTH$} (TLS certificates not verified: tls_insecure)",
                ""
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SiteReport;
    use crate::stats::{ResponseSummary, TtfbSummary, WindowStats};

    #[test]
    fn table_shows_stats_and_no_data() {
        let site = |name: &str, stats: WindowStats| {
            SiteReport::new(name.into(), "http://x/".into(), stats)
        };
        let report = StatsReport {
            view: "10m".into(),
            window_s: 600,
            every_s: Some(10.0),
            time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            r#final: false,
            threshold: 0.8,
            overloaded: false,
            skipped_overload: 0,
            probes_total: 0,
            sites: vec![
                site(
                    "a-very-long-site-name-that-is-cut",
                    WindowStats {
                        checks: 3,
                        ok: 2,
                        availability: Some(2.0 / 3.0),
                        response_ms: Some(ResponseSummary {
                            avg: 12.5,
                            max: 20.0,
                            p50: 10.0,
                            p95: 20.0,
                            p99: 20.0,
                        }),
                        ttfb_ms: Some(TtfbSummary {
                            avg: 5.0,
                            max: 7.25,
                        }),
                        status_codes: [("200", 2), ("timeout", 1)].into(),
                        steps: vec![
                            crate::stats::StepStats {
                                name: "login".into(),
                                runs: 3,
                                failed: 0,
                                avg_ms: 120.25,
                                max_ms: 200.0,
                                p95_ms: 200.0,
                            },
                            crate::stats::StepStats {
                                name: "ord\x1b[2Jer".into(),
                                runs: 3,
                                failed: 1,
                                avg_ms: 7.0,
                                max_ms: 9.0,
                                p95_ms: 9.0,
                            },
                        ],
                    },
                ),
                site("quiet", crate::stats::summarize([])),
                SiteReport {
                    paused: true,
                    down: true,
                    ..site("resting", crate::stats::summarize([]))
                },
            ],
        };
        let mut buf = Vec::new();
        write(&mut buf, &Event::Stats(report)).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with("== last 10m (refreshed every 10s) at 1970-01-01T00:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("a-very-long-site-na… "), "{text}");
        // A paused site says so, whatever its alert state was.
        assert!(
            text.lines()
                .any(|l| l.contains("resting") && l.contains("PAUSED") && !l.contains("DOWN")),
            "{text}"
        );
        assert!(text.contains("66.67%"), "{text}");
        assert!(
            text.contains("12.5/20.0")
                && text.contains("5.0/7.2")
                && text.contains("10.0/20.0/20.0"),
            "{text}"
        );
        assert!(text.contains("200:2 timeout:1"), "{text}");
        assert!(
            text.contains("steps (avg ms): login 120.2 · ord\u{FFFD}[2Jer 7.0 ✗1\n"),
            "the steps, a control character shown as such: {text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("quiet") && l.contains("no data")),
            "{text}"
        );
    }
}
