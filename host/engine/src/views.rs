//! What the CLI's listing subcommands show, as text and as JSON lines: each site's maintenance
//! windows (`maintenance list`), each notifier's queue (`notify list`) and the InfluxDB outbox
//! (`outbox`). Rendered here, next to the report, so the binary only reads and prints.

use crate::clock::{rfc3339_millis, rfc3339_seconds};
use crate::config::Config;
use crate::maintenance::Occurrence;
use crate::store::OutboxSummary;
use crate::store::notices::QueueSummary;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One site's open and next maintenance windows at a time.
pub struct SiteWindows {
    pub site: String,
    pub windows: Vec<Occurrence>,
    now: DateTime<Utc>,
}

/// Each site's open window and its next `next` ones at `now`, computed from the config
/// (nothing is stored per occurrence).
pub fn maintenance(config: &Config, now: DateTime<Utc>, next: usize) -> Vec<SiteWindows> {
    config
        .sites
        .iter()
        .map(|site| SiteWindows {
            site: site.name.clone(),
            windows: site.maintenance.upcoming(now, next.max(1)),
            now,
        })
        .collect()
}

impl SiteWindows {
    pub fn json(&self) -> Value {
        let windows: Vec<Value> = self
            .windows
            .iter()
            .map(|o| {
                json!({
                    "start": rfc3339_seconds(o.start),
                    "end": rfc3339_seconds(o.end),
                    "name": o.name,
                    "open": o.start <= self.now,
                })
            })
            .collect();
        json!({"site": self.site, "windows": windows})
    }

    /// `site:` and a line per window; none when it has no window.
    pub fn text(&self) -> Option<String> {
        if self.windows.is_empty() {
            return None;
        }
        let mut out = format!("{}:", self.site);
        for o in &self.windows {
            let state = if o.start <= self.now {
                "OPEN NOW"
            } else {
                "next"
            };
            out.push_str(&format!(
                "\n  {state:<8} {} to {}{}",
                rfc3339_seconds(o.start),
                rfc3339_seconds(o.end),
                o.name
                    .as_deref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            ));
        }
        Some(out)
    }
}

/// One notifier's queue in the store.
pub struct NotifierQueue {
    pub name: String,
    /// Its type, or `(not in the config)` for a notifier that was removed.
    pub kind: String,
    pub summary: QueueSummary,
}

/// The configured notifiers (`(name, type)`, in config order) with their queues, then those
/// only the store still knows, by name.
pub fn notifier_queues(
    notifiers: &[(String, String)],
    summaries: &HashMap<String, QueueSummary>,
) -> Vec<NotifierQueue> {
    let mut rows: Vec<NotifierQueue> = notifiers
        .iter()
        .map(|(name, kind)| NotifierQueue {
            name: name.clone(),
            kind: kind.clone(),
            summary: summaries.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let mut gone: Vec<NotifierQueue> = summaries
        .iter()
        .filter(|(name, _)| !notifiers.iter().any(|(n, _)| n == *name))
        .map(|(name, s)| NotifierQueue {
            name: name.clone(),
            kind: "(not in the config)".to_owned(),
            summary: s.clone(),
        })
        .collect();
    gone.sort_by(|a, b| a.name.cmp(&b.name));
    rows.extend(gone);
    rows
}

impl NotifierQueue {
    pub fn json(&self) -> Value {
        let s = &self.summary;
        let last = s.last.as_ref().map(|(state, time, result)| {
            json!({"state": state, "time": rfc3339_millis(*time), "result": result})
        });
        json!({
            "notifier": self.name, "type": self.kind, "waiting": s.pending,
            "delivered": s.delivered, "failed": s.failed, "last": last,
        })
    }

    pub fn text(&self) -> String {
        let s = &self.summary;
        let last = match &s.last {
            Some((state, time, result)) => {
                format!("; last: {state} at {}: {result}", rfc3339_seconds(*time))
            }
            None => String::new(),
        };
        format!(
            "{} ({}): {} waiting, {} delivered, {} failed{last}",
            self.name, self.kind, s.pending, s.delivered, s.failed
        )
    }
}

/// Parked-line reasons shown as text; JSON lists them all.
const REASONS_SHOWN: usize = 20;

/// The InfluxDB outbox as JSON: what waits, what was parked and why, what was dropped.
pub fn outbox_json(s: &OutboxSummary) -> Value {
    let time = |t: Option<DateTime<Utc>>| t.map(rfc3339_millis);
    let reasons: Vec<Value> = s
        .reasons
        .iter()
        .map(|(reason, lines)| json!({"reason": reason, "lines": lines}))
        .collect();
    json!({
        "waiting": s.waiting,
        "first_time": time(s.first_time),
        "last_time": time(s.last_time),
        "parked": s.parked,
        "reasons": reasons,
        "dropped": s.dropped,
        "last_dropped": time(s.last_dropped),
    })
}

/// The InfluxDB outbox in words, a line each, with what to do about parked lines.
pub fn outbox_text(s: &OutboxSummary) -> String {
    let time = |t: Option<DateTime<Utc>>| t.map(rfc3339_millis);
    let mut lines = vec![match (time(s.first_time), time(s.last_time)) {
        (Some(first), Some(last)) => format!(
            "waiting: {} lines for InfluxDB, points from {first} to {last}",
            s.waiting
        ),
        _ => format!("waiting: {} lines for InfluxDB", s.waiting),
    }];
    lines.push(format!("parked:  {} lines InfluxDB refused", s.parked));
    for (reason, n) in s.reasons.iter().take(REASONS_SHOWN) {
        lines.push(format!("  {n:>8}  {reason}"));
    }
    if s.reasons.len() > REASONS_SHOWN {
        lines.push(format!(
            "  and {} more reasons (`--output json` lists them all)",
            s.reasons.len() - REASONS_SHOWN
        ));
    }
    if s.parked > 0 {
        lines.push(
            "         `sitewatch outbox --resend-parked` sends them again once the cause is fixed; `--drop-parked` deletes them"
                .to_owned(),
        );
    }
    if let Some(last) = time(s.last_dropped) {
        lines.push(format!(
            "dropped: {} lines over storage.influxdb.max_outbox_lines, the last at {last}",
            s.dropped
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_583_200 + s, 0).unwrap()
    }

    #[test]
    fn removed_notifiers_follow_the_configured_ones_by_name() {
        let mut summaries = HashMap::new();
        for (name, pending) in [("zeta", 1), ("hook", 2), ("alpha", 3)] {
            summaries.insert(
                name.to_owned(),
                QueueSummary {
                    pending,
                    last: Some(("delivered".into(), at(0), "202 Accepted".into())),
                    ..Default::default()
                },
            );
        }
        let rows = notifier_queues(&[("hook".into(), "webhook".into())], &summaries);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["hook", "alpha", "zeta"]);
        assert_eq!(rows[1].kind, "(not in the config)");
        assert_eq!(
            rows[0].text(),
            "hook (webhook): 2 waiting, 0 delivered, 0 failed; last: delivered at 2025-12-01T10:00:00Z: 202 Accepted"
        );
        assert_eq!(rows[0].json()["last"]["time"], "2025-12-01T10:00:00.000Z");
        assert_eq!(rows[0].json()["waiting"], 2);
    }

    #[test]
    fn the_outbox_text_caps_its_reasons_and_says_how_to_resend() {
        let s = OutboxSummary {
            waiting: 3,
            first_time: Some(at(0)),
            last_time: Some(at(60)),
            parked: 25,
            reasons: (0..25).map(|i| (format!("reason {i}"), 1)).collect(),
            dropped: 0,
            last_dropped: None,
        };
        let text = outbox_text(&s);
        assert!(
            text.starts_with("waiting: 3 lines for InfluxDB, points from 2025-12-01T10:00:00.000Z")
        );
        assert!(text.contains("reason 19") && !text.contains("reason 20"));
        assert!(text.contains("and 5 more reasons"));
        assert!(text.contains("--resend-parked"));
        assert_eq!(outbox_json(&s)["reasons"].as_array().unwrap().len(), 25);
    }
}
