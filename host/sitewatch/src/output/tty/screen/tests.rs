use super::*;
use crate::stats::{ResponseSummary, TtfbSummary, WindowStats};
use chrono::DateTime;

fn site(name: &str, availability: Option<f64>, down: bool) -> SiteReport {
    SiteReport {
        down,
        last_error: down.then(|| "connect: refused".to_owned()),
        slo: None,
        ..SiteReport::new(
            name.into(),
            format!("http://{name}/").into(),
            WindowStats {
                checks: 10,
                ok: (availability.unwrap_or(0.0) * 10.0) as u32,
                availability,
                response_ms: availability.map(|_| ResponseSummary {
                    avg: 2.5,
                    max: 4.0,
                    p50: 2.0,
                    p95: 3.5,
                    p99: 4.0,
                }),
                ttfb_ms: availability.map(|_| TtfbSummary { avg: 1.5, max: 2.0 }),
                status_codes: [("200", 10)].into(),
                steps: Vec::new(),
            },
        )
    }
}

fn report(view: &str, sites: Vec<SiteReport>, probes_total: u64, secs: i64) -> Arc<StatsReport> {
    Arc::new(StatsReport {
        view: view.into(),
        window_s: 600,
        every_s: Some(10.0),
        time: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
        r#final: false,
        threshold: 0.8,
        overloaded: false,
        skipped_overload: 0,
        probes_total,
        sites,
    })
}

/// 500 sites, 3 of them down (s100, s200, s300).
fn screen() -> Screen {
    console::set_colors_enabled(false);
    let sites = (0..500)
        .map(|i| {
            let down = matches!(i, 100 | 200 | 300);
            site(
                &format!("s{i:03}"),
                Some(if down { 0.0 } else { 1.0 }),
                down,
            )
        })
        .collect();
    let mut s = Screen {
        config: "config.json".into(),
        sites: 500,
        storage: "sitewatch-data/sitewatch.db".into(),
        views: vec!["10m".into(), "1h".into()],
        ..Screen::default()
    };
    s.report(report("10m", sites, 1000, 0));
    s
}

fn fits(lines: &[String], width: usize, height: usize) {
    assert!(
        lines.len() < height,
        "{} lines for {height} rows",
        lines.len()
    );
    for l in lines {
        assert!(measure_text_width(l) <= width, "wider than {width}: {l}");
    }
}

#[test]
fn an_outage_among_500_sites_is_on_an_80_by_24_screen() {
    let s = screen();
    let lines = s.render(80, 24, Duration::from_secs(75));
    fits(&lines, 80, 24);
    let text = lines.join("\n");
    for down in ["s100", "s200", "s300"] {
        assert!(
            text.lines().any(|l| l.contains(down) && l.contains("DOWN")),
            "{down} is not on screen:\n{text}"
        );
    }
    assert!(lines[1].starts_with("497 up · 3 DOWN"), "{}", lines[1]);
    assert!(
        lines
            .last()
            .unwrap()
            .contains("more, all up, availability ≥ 100.00%"),
        "{text}"
    );
    assert!(lines[0].contains("500 sites") && lines[0].contains("up 1m 15s"));
}

#[test]
fn narrow_terminals_drop_columns_and_cut_names_instead_of_wrapping() {
    let mut s = screen();
    let long = "a-site-with-a-name-far-too-long-for-any-column";
    let mut sites = vec![site(long, Some(0.5), false)];
    sites.extend((0..5).map(|i| site(&format!("x{i}"), Some(1.0), false)));
    s.report(report("10m", sites, 1000, 10));
    for (w, h) in [(60, 20), (80, 24), (120, 40), (200, 50)] {
        let lines = s.render(w, h, Duration::ZERO);
        fits(&lines, w, h);
        let row = lines.iter().find(|l| l.contains("a-site-with")).unwrap();
        assert!(row.contains('…'), "{row}");
        assert_eq!(
            row.contains('█') || row.contains('░'),
            w >= 80,
            "gauge at {w}: {row}"
        );
    }
}

#[test]
fn a_tiny_terminal_still_shows_the_summary_and_never_overflows() {
    let s = screen();
    for h in 1..8 {
        let lines = s.render(60, h, Duration::ZERO);
        fits(&lines, 60, h.max(2));
    }
    assert!(s.render(60, 3, Duration::ZERO)[1].contains("3 DOWN"));
}

#[test]
fn the_filter_sort_view_and_help_change_what_is_shown() {
    let mut s = screen();
    s.filter = "s42".into();
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(text.contains("s420") && !text.contains("s100"), "{text}");
    assert!(text.contains("filter \"s42\""), "{text}");

    s.filter.clear();
    s.sort = Sort::Name;
    let lines = s.render(80, 24, Duration::ZERO);
    let first = lines
        .iter()
        .find(|l| l.trim_start().starts_with("s0"))
        .unwrap();
    assert!(first.contains("s000"), "name order starts at s000: {first}");

    s.report(report(
        "1h",
        vec![site("only-in-1h", Some(1.0), false)],
        10,
        0,
    ));
    s.next_view();
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(
        text.contains("last 1h (2/2, v)") && text.contains("only-in-1h"),
        "{text}"
    );

    s.help = true;
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(text.contains("q          quit"), "{text}");
}

#[test]
fn alerts_stay_pinned_newest_first_and_views_removed_by_a_reload_go() {
    let mut s = screen();
    for (i, kind) in [(1, "s100"), (2, "s200")] {
        let a = crate::alert::Transition::Down {
            availability: 0.0,
            time: DateTime::from_timestamp(1_800_000_000 + i, 0).unwrap(),
        }
        .into_alert(&kind.into(), &"http://x/".into());
        s.alert(&a);
    }
    let lines = s.render(80, 24, Duration::ZERO);
    assert!(lines[2].contains("Website s200 is down"), "{lines:?}");
    assert!(lines[3].contains("Website s100 is down"), "{lines:?}");

    s.report(report("1h", vec![], 0, 0));
    s.view = 1;
    s.set_views(vec!["10m".into()]);
    assert_eq!(s.view, 0);
    assert_eq!(s.reports.len(), 1);
}

#[test]
fn the_probe_rate_comes_from_two_reports() {
    let mut s = screen();
    s.report(report("10m", vec![], 1500, 10));
    assert_eq!(s.probes_per_s, Some(50.0));
    assert!(s.render(100, 24, Duration::ZERO)[1].contains("50.0 probes/s"));
}

#[test]
fn the_summary_says_how_the_store_and_the_export_are() {
    let mut s = screen();
    let status = |sink, healthy, backlog| crate::event::SinkStatus {
        time: DateTime::UNIX_EPOCH,
        sink,
        healthy,
        backlog,
    };
    s.sink(&status(crate::event::SinkName::InfluxDb, false, 12_345));
    s.sink(&status(crate::event::SinkName::Store, false, 40));
    let summary = &s.render(200, 24, Duration::ZERO)[1];
    assert!(summary.contains("InfluxDB DOWN, outbox 12345"), "{summary}");
    assert!(summary.contains("store FAILING (40 waiting)"), "{summary}");
    s.sink(&status(crate::event::SinkName::Store, true, 0));
    assert!(s.render(200, 24, Duration::ZERO)[1].contains("store ok"));
}

#[test]
fn a_site_removed_by_a_reload_leaves_the_rows_at_once() {
    let mut s = screen();
    let w = crate::event::Watching {
        time: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        sites: (0..500)
            .filter(|i| *i != 100)
            .map(|i| crate::event::WatchedSite {
                site: format!("s{i:03}").into(),
                url: "http://x/".into(),
                down: false,
                tags: std::sync::Arc::from([]),
                paused: false,
            })
            .collect(),
        views: vec!["10m".into(), "1h".into()],
    };
    s.watching(&w);
    assert_eq!(
        s.reports[0].sites.len(),
        499,
        "before the next report of the view"
    );
    assert!(!s.reports[0].sites.iter().any(|r| &*r.site == "s100"));
}

#[test]
fn degraded_and_maintenance_sites_say_so_in_words_and_in_the_summary() {
    let mut slow = site("slow", Some(1.0), false);
    slow.degraded = true;
    let mut planned = site("planned", Some(0.0), false);
    planned.maintenance = Some(crate::maintenance::Occurrence {
        start: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        end: DateTime::from_timestamp(1_800_003_600, 0).unwrap(),
        name: Some("upgrade".into()),
    });
    let mut expiring = site("expiring", Some(1.0), false);
    expiring.cert_warning = true;
    expiring.cert_expiry =
        Some(chrono::Utc::now() + chrono::TimeDelta::days(3) + chrono::TimeDelta::hours(1));
    console::set_colors_enabled(false);
    let mut s = Screen {
        sites: 3,
        views: vec!["10m".into()],
        ..Screen::default()
    };
    s.report(report("10m", vec![slow, planned, expiring], 10, 0));
    let lines = s.render(120, 24, Duration::from_secs(5));
    fits(&lines, 120, 24);
    let text = lines.join("\n");
    let row = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_owned();
    assert!(
        row("slow").contains("SLOW") && row("slow").contains("DEGRADED"),
        "{text}"
    );
    assert!(
        row("planned").contains("MNT") && row("planned").contains("MAINTENANCE"),
        "{text}"
    );
    assert!(row("expiring").contains("cert expires in 3d"), "{text}");
    assert!(
        lines[1].contains("1 DEGRADED") && lines[1].contains("1 MAINTENANCE"),
        "{}",
        lines[1]
    );
}

/// 500 sites tagged by their number: s000-s099 "api", s100-s199 "web", the rest untagged; s100,
/// s200 and s300 down.
fn tagged_screen() -> Screen {
    let mut s = screen();
    let r = StatsReport::clone(&s.reports[0]);
    let mut r = r;
    for site in &mut r.sites {
        let n: usize = site.site[1..].parse().unwrap();
        site.tags = match n {
            0..100 => std::sync::Arc::from(["api".to_owned(), "eu".to_owned()]),
            100..200 => std::sync::Arc::from(["web".to_owned()]),
            _ => std::sync::Arc::from([]),
        };
    }
    s.report(Arc::new(r));
    s
}

#[test]
fn grouped_by_tag_each_group_has_a_heading_and_untagged_come_last() {
    let mut s = tagged_screen();
    // Not grouped by default: the down sites come first whatever their tags.
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(!text.contains("── "), "{text}");
    s.group = true;
    let lines = s.render(100, 60, Duration::ZERO);
    fits(&lines, 100, 60);
    let text = lines.join("\n");
    assert!(text.contains("by tag (g)"), "{text}");
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in\n{text}"))
    };
    assert!(lines[at("── api")].ends_with("· 100 sites"), "{text}");
    // Within a group the chosen order: attention (s100 is down, first of web).
    assert_eq!(at("── api") + 1, at("s000"));
    // The api group does not fit: the rest is one line, and the other headings follow scrolling.
    assert!(text.contains("… "), "{text}");
    s.scroll = 101;
    let lines = s.render(100, 60, Duration::ZERO);
    let text = lines.join("\n");
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in\n{text}"))
    };
    assert!(
        lines[at("── web")].ends_with("· 100 sites, 1 DOWN"),
        "{text}"
    );
    assert!(lines[at("── web") + 1].contains("s100") && lines[at("── web") + 1].contains("DOWN"));
    s.scroll = 202;
    let text = s.render(100, 60, Duration::ZERO).join("\n");
    assert!(text.contains("── untagged · 300 sites, 2 DOWN"), "{text}");
    assert!(text.contains("(200 above)"), "{text}");
}

#[test]
fn the_filter_matches_tags_too() {
    let mut s = tagged_screen();
    s.filter = "web".into();
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(text.contains("s100") && !text.contains("s000"), "{text}");
    s.filter = "EU".into();
    let text = s.render(80, 24, Duration::ZERO).join("\n");
    assert!(text.contains("s000") && !text.contains("s100"), "{text}");
}

/// A script site's row shows its steps' averages over the view, the failures counted, and a
/// name's escape sequence shown as a character, never sent to the terminal.
#[test]
fn a_script_sites_row_shows_its_steps() {
    let mut s = screen();
    let mut shop = site("shop", Some(0.9), false);
    let step = |name: &str, avg_ms: f64, failed: u32| crate::stats::StepStats {
        name: name.into(),
        runs: 10,
        failed,
        avg_ms,
        max_ms: avg_ms,
        p95_ms: avg_ms,
    };
    shop.stats.steps = vec![step("login", 312.4, 0), step("or\x1b[31mder", 7.05, 1)];
    s.report(report(
        "10m",
        vec![shop, site("web", Some(1.0), false)],
        1000,
        10,
    ));
    let text = s.render(200, 24, Duration::ZERO).join("\n");
    let row = text.lines().find(|l| l.contains("shop")).unwrap();
    assert!(
        row.ends_with("steps login 312 · or\u{FFFD}[31mder 7.0 ✗1")
            || row.ends_with("steps login 312 · or\u{FFFD}[31mder 7.1 ✗1"),
        "{row}"
    );
    assert!(!text.contains('\x1b'), "{text}");
    let web = text.lines().find(|l| l.contains("web")).unwrap();
    assert!(!web.contains("steps"), "{web}");
}
