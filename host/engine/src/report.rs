//! `sitewatch report` and `sitewatch alerts`: stats and alerts of any past timeframe, read from the
//! store and computed with the same code as the live views.

use crate::alert::{Alert, Condition, open_alert};
use crate::event::{SiteReport, StatsReport};
use crate::store::notices::DeliveryRecord;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The longest timeframe a report or an alert listing takes (a century, as the longest
/// retention): a longer one could not be told from "everything", and far longer ones do not fit
/// a calendar.
pub(crate) const MAX_SINCE: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// The timeframe of `report` without `--since`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);

/// Parses a timeframe (`--since`, `?since=`): a duration such as `24h`, `7d` or `90d`, longer
/// than zero and at most `MAX_SINCE`. The message says what was wrong and what to give.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let d = humantime::parse_duration(t).map_err(|e| {
        format!(
            "\"{}\" is not a duration ({e}); e.g. 24h, 30m, 7d",
            crate::config::printable(t)
        )
    })?;
    if d.is_zero() {
        return Err(format!("\"{t}\" is no time at all; e.g. 24h, 30m, 7d"));
    }
    if d > MAX_SINCE {
        return Err(format!(
            "\"{}\" reaches back further than a century; e.g. 365d",
            crate::config::printable(t)
        ));
    }
    Ok(d)
}

/// The stats of every stored site (or just `site`) from `now - since` to `now`; availability is
/// judged against `threshold` (the configured one). Probes in maintenance windows are left out
/// unless `include_maintenance`.
pub fn stats_since(
    store: &Store,
    since: Duration,
    site: Option<&str>,
    now: DateTime<Utc>,
    threshold: f64,
    include_maintenance: bool,
) -> Result<StatsReport, StoreError> {
    let conn = store.connect()?;
    let from = crate::clock::ago(now, since);
    let last = store.last_alerts(&conn)?;
    let mut sites = Vec::new();
    for (name, url) in store.sites_since(&conn, from)? {
        if site.is_some_and(|s| s != name) {
            continue;
        }
        let mut ms = store.measurements(&conn, &name, &url, from)?;
        let in_maintenance = ms.iter().filter(|m| m.maintenance).count();
        if !include_maintenance {
            ms.retain(|m| !m.maintenance);
        }
        let open = last.get(&(name.clone(), url.clone()));
        let open = |c| open.and_then(|a| open_alert(a, c));
        let down = open(Condition::Down).is_some();
        let cert_expiry = ms
            .iter()
            .rev()
            .find_map(|m| m.tls.as_ref()?.earliest_expiry());
        sites.push(SiteReport {
            maintenance_probes: if include_maintenance {
                0
            } else {
                in_maintenance as u32
            },
            down,
            degraded: !down && open(Condition::Degraded).is_some(),
            cert_expiry,
            cert_warning: open(Condition::Cert).is_some(),
            ..SiteReport::new(name.into(), url.into(), crate::stats::summarize(&ms))
        });
    }
    Ok(StatsReport {
        view: humantime::format_duration(since)
            .to_string()
            .replace(' ', ""),
        window_s: since.as_secs(),
        // A report of a past timeframe, not a live view.
        every_s: None,
        time: now,
        r#final: false,
        threshold,
        overloaded: false,
        skipped_overload: 0,
        probes_total: 0,
        sites,
    })
}

/// Stored alerts from `now - since`, newest first, each with what became of its notifications.
pub fn alerts_since(
    store: &Store,
    since: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(Alert, Vec<crate::store::notices::DeliveryRecord>)>, StoreError> {
    // Creates the notification tables of a store last written by an older sitewatch.
    let conn = store.connect_for_writing()?;
    let alerts = store.alerts_with_ids_since(&conn, crate::clock::ago(now, since))?;
    alerts
        .into_iter()
        .map(|(id, a)| Ok((a, crate::store::notices::deliveries(&conn, id)?)))
        .collect()
}

/// Why a tag filter (`--tag`, `?tag=`) cannot be applied. Tags live in the config, not in the
/// store, so a filter needs the config, and a tag no site has is an error rather than an
/// empty answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagFilterError {
    #[error("no site has the tag \"{tag}\" ({})", known_tags(known))]
    Unknown { tag: String, known: Vec<String> },
    #[error("{what} must name a tag")]
    Empty { what: &'static str },
}

fn known_tags(known: &[String]) -> String {
    if known.is_empty() {
        "no site in the config has tags".into()
    } else {
        format!("the tags are {}", known.join(", "))
    }
}

/// The sites having any of some tags, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    tags: Vec<String>,
    sites: std::collections::HashSet<String>,
}

impl TagFilter {
    /// A filter of the sites of `config` with any of `tags` (each may be a comma list); `None`
    /// when `tags` is empty. `what` names the option in messages (`--tag`, `tag`).
    pub fn new(
        config: &crate::config::Config,
        tags: &[String],
        what: &'static str,
    ) -> Result<Option<Self>, TagFilterError> {
        if tags.is_empty() {
            return Ok(None);
        }
        let mut wanted: Vec<String> = Vec::new();
        for t in tags.iter().flat_map(|t| t.split(',')) {
            let t = t.trim();
            if !t.is_empty() && !wanted.iter().any(|w| w == t) {
                wanted.push(t.to_owned());
            }
        }
        if wanted.is_empty() {
            return Err(TagFilterError::Empty { what });
        }
        let mut known: Vec<String> = config
            .sites
            .iter()
            .flat_map(|s| s.tags.iter().cloned())
            .collect();
        known.sort();
        known.dedup();
        if let Some(tag) = wanted.iter().find(|t| !known.contains(t)) {
            return Err(TagFilterError::Unknown {
                tag: tag.clone(),
                known,
            });
        }
        let sites = config
            .sites
            .iter()
            .filter(|s| s.tags.iter().any(|t| wanted.contains(t)))
            .map(|s| s.name.clone())
            .collect();
        Ok(Some(Self {
            tags: wanted,
            sites,
        }))
    }

    pub fn matches(&self, site: &str) -> bool {
        self.sites.contains(site)
    }

    /// `tagged prod` or `tagged prod or eu`, for messages.
    pub fn describe(&self) -> String {
        format!("tagged {}", self.tags.join(" or "))
    }
}

/// Gives the stored report's sites their tags from `config` (the store keeps none), and keeps
/// only those `filter` matches.
pub fn tag_report(
    report: &mut StatsReport,
    config: &crate::config::Config,
    filter: Option<&TagFilter>,
) {
    if let Some(f) = filter {
        report.sites.retain(|s| f.matches(&s.site));
    }
    let tags: std::collections::HashMap<&str, &[String]> = config
        .sites
        .iter()
        .map(|s| (s.name.as_str(), s.tags.as_slice()))
        .collect();
    for s in &mut report.sites {
        if let Some(t) = tags.get(&*s.site) {
            s.tags = Arc::from(*t);
        }
    }
}

/// An alert and what became of its notifications, as `sitewatch alerts --output json` writes it
/// (one event object) and `/api/v1/alerts` lists it (without the `event` key).
pub fn alert_value(
    alert: &Alert,
    deliveries: &[DeliveryRecord],
    location: Option<&str>,
) -> serde_json::Value {
    let mut v = crate::wire::to_value(&crate::event::Event::Alert(alert.clone()), location);
    v["deliveries"] = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "notifier": d.notifier,
                "kind": d.kind.as_str(),
                "state": d.state,
                "attempts": d.attempts,
                "time": d.updated.map(crate::clock::rfc3339_millis),
                "result": d.result,
            })
        })
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> crate::config::Config {
        crate::config::Config::parse(
            std::path::Path::new("config.json"),
            br#"{"sites": [
                {"name": "a", "url": "http://a.test/", "tags": ["prod", "eu"]},
                {"name": "b", "url": "http://b.test/", "tags": ["staging"]},
                {"name": "c", "url": "http://c.test/"}]}"#,
        )
        .unwrap()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_site_matches_when_it_has_any_of_the_tags() {
        let c = config();
        assert_eq!(TagFilter::new(&c, &[], "--tag"), Ok(None));
        let f = TagFilter::new(&c, &tags(&["eu"]), "--tag")
            .unwrap()
            .unwrap();
        assert!(f.matches("a") && !f.matches("b") && !f.matches("c"));
        let f = TagFilter::new(&c, &tags(&["prod,staging", "eu"]), "--tag")
            .unwrap()
            .unwrap();
        assert!(f.matches("a") && f.matches("b") && !f.matches("c"));
        assert_eq!(f.describe(), "tagged prod or staging or eu");
    }

    #[test]
    fn an_unknown_or_empty_tag_is_an_error() {
        let c = config();
        assert_eq!(
            TagFilter::new(&c, &tags(&["prod", "qa"]), "--tag")
                .unwrap_err()
                .to_string(),
            "no site has the tag \"qa\" (the tags are eu, prod, staging)"
        );
        assert_eq!(
            TagFilter::new(&c, &tags(&[" , "]), "--tag")
                .unwrap_err()
                .to_string(),
            "--tag must name a tag"
        );
        let untagged = crate::config::Config::parse(
            std::path::Path::new("config.json"),
            br#"{"sites": [{"url": "http://a.test/"}]}"#,
        )
        .unwrap();
        assert!(
            TagFilter::new(&untagged, &tags(&["prod"]), "tag")
                .unwrap_err()
                .to_string()
                .ends_with("(no site in the config has tags)")
        );
    }
}
