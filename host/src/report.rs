//! `sitewatch report` and `sitewatch alerts`: stats and alerts of any past timeframe, read from the
//! store and computed with the same code as the live views.

use crate::alert::{Alert, Condition, open_alert};
use crate::event::{SiteReport, StatsReport};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

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
    let from = now - chrono::TimeDelta::from_std(since).unwrap_or(chrono::TimeDelta::MAX);
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
) -> Result<Vec<(Alert, Vec<crate::notify::outbox::DeliveryRecord>)>, StoreError> {
    // Creates the notification tables of a store last written by an older sitewatch.
    let conn = store.connect_for_writing()?;
    let alerts = store.alerts_with_ids_since(
        &conn,
        now - chrono::TimeDelta::from_std(since).unwrap_or(chrono::TimeDelta::MAX),
    )?;
    alerts
        .into_iter()
        .map(|(id, a)| Ok((a, crate::notify::outbox::deliveries(&conn, id)?)))
        .collect()
}
