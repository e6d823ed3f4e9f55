//! A group of notifications in words, shared by the services: titles, one line per
//! notification, incident keys, idempotency keys.

use crate::alert::{AlertKind, Condition};
use crate::clock::{human_duration, rfc3339_seconds};
use crate::notice::{Notice, NoticeKind};
use serde_json::Value;

/// The formatter's rendering, when it is a JSON object: the whole body then. (A group with a
/// rendering holds one notice.)
pub(crate) fn rendered_json(group: &[Notice]) -> Option<Value> {
    let [notice] = group else { return None };
    let v: Value = serde_json::from_str(notice.body.as_deref()?).ok()?;
    v.is_object().then_some(v)
}

/// `sitewatch-<first queued, µs>-<first id>-<last id>`: the same for every attempt of the same
/// group, and unique beyond one store (ids start again in a new store; times do not).
pub(crate) fn idempotency_key(group: &[Notice]) -> String {
    match (group.first(), group.last()) {
        (Some(f), Some(l)) if f.id != l.id => format!(
            "sitewatch-{}-{}-{}",
            f.created.timestamp_micros(),
            f.id,
            l.id
        ),
        (Some(f), _) => format!("sitewatch-{}-{}", f.created.timestamp_micros(), f.id),
        _ => "sitewatch".into(),
    }
}

/// The text of one notice: its rendering, or the built-in message. (A JSON rendering that is
/// a whole body never gets here: [`rendered_json`] took it.)
pub(crate) fn notice_text(n: &Notice) -> String {
    if let Some(body) = &n.body {
        return body.clone();
    }
    match n.kind {
        NoticeKind::Reminder => {
            let since = n.alert.time;
            format!(
                "Website {} is still down. Down since {}, for {}; availability={} when it went down",
                n.alert.site,
                rfc3339_seconds(since),
                human_duration((n.created - since).to_std().unwrap_or_default()),
                crate::alert::percent(n.alert.availability)
            )
        }
        _ => n.alert.message.clone(),
    }
}

/// A group in words: a title and one line per notice, cut to a size budget.
pub(crate) struct Digest {
    pub title: String,
    pub lines: Vec<String>,
    /// Notices left out of `lines` by the budget.
    pub more: usize,
    pub firing: usize,
    pub recovered: usize,
    /// The one line is a formatter's rendering, which has its own title.
    pub rendered: bool,
}

impl Digest {
    pub(crate) fn of(group: &[Notice], budget: usize) -> Self {
        let firing = group.iter().filter(|n| n.kind.is_firing()).count();
        let recovered = group.len() - firing;
        let title = match group {
            [one] => title(one),
            _ => {
                let mut parts = Vec::new();
                let sites = |n: usize| format!("{n} site{}", if n == 1 { "" } else { "s" });
                // Down and its reminders, in the words the title has always had; the other
                // conditions by name.
                let count =
                    |f: &dyn Fn(NoticeKind) -> bool| group.iter().filter(|n| f(n.kind)).count();
                let down = count(&|k| k.is_firing() && k.condition() == Condition::Down);
                let degraded = count(&|k| k == NoticeKind::Alert(AlertKind::Degraded));
                let cert = count(&|k| k == NoticeKind::Alert(AlertKind::CertExpiring));
                let domain = count(&|k| k == NoticeKind::Alert(AlertKind::DomainExpiring));
                let flapping = count(&|k| k == NoticeKind::Alert(AlertKind::Flapping));
                for (n, what) in [
                    (down, "down"),
                    (degraded, "degraded"),
                    (cert, "with a certificate expiring"),
                    (domain, "with a domain registration expiring"),
                    (flapping, "flapping"),
                ] {
                    if n > 0 {
                        parts.push(format!("{} {what}", sites(n)));
                    }
                }
                if recovered > 0 {
                    parts.push(format!("{} recovered", sites(recovered)));
                }
                parts.join(", ")
            }
        };
        let mut lines = Vec::new();
        let mut used = 0;
        for n in group {
            let line = notice_text(n);
            if used + line.len() + 1 > budget && !lines.is_empty() {
                break;
            }
            used += line.len() + 1;
            lines.push(line);
        }
        Self {
            title,
            more: group.len() - lines.len(),
            lines,
            firing,
            recovered,
            rendered: matches!(group, [one] if one.body.is_some()),
        }
    }

    /// The title (shaped by `title`) over the lines; a rendering alone.
    pub(crate) fn titled(&self, title: impl Fn(&str) -> String) -> String {
        if self.rendered {
            self.text()
        } else {
            format!("{}\n{}", title(&self.title), self.text())
        }
    }

    pub(crate) fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        if self.more > 0 {
            t.push_str(&format!("\n… and {} more", self.more));
        }
        t
    }

    /// Discord's embed colour, a decimal RGB integer: red when anything fires, green otherwise.
    pub(crate) fn colour(&self) -> u32 {
        match (self.firing, self.recovered) {
            (0, _) => 0x2E_CC_71,
            (_, 0) => 0xE7_4C_3C,
            _ => 0xE6_7E_22,
        }
    }
}

/// Cuts `s` to at most `max` characters.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// The incident key of a notice (`sitewatch:<site>:<down time, µs>`): the site and when it
/// went down, the same for the down alert, its reminders and its recovery. The other conditions
/// have their own incidents: `sitewatch:<site>:degraded:<since>`, `sitewatch:<site>:cert:<since>`.
pub(crate) fn incident_key(notice: &Notice) -> String {
    let since = incident_start(notice);
    let site = notice.alert.site.replace('/', "_");
    // No `/`: Opsgenie's close takes the alias as a path segment, and proxies mangle `%2F`.
    match notice.kind.condition() {
        Condition::Down => format!("sitewatch:{site}:{}", since.timestamp_micros()),
        c => format!(
            "sitewatch:{site}:{}:{}",
            c.as_str(),
            since.timestamp_micros()
        ),
    }
}

/// When the notice's incident began: the firing alert's time (a resolution carries it).
pub(crate) fn incident_start(notice: &Notice) -> chrono::DateTime<chrono::Utc> {
    if notice.kind.is_firing() {
        notice.alert.time
    } else {
        notice.alert.down_since.unwrap_or(notice.alert.time)
    }
}

/// A one-line title of one notice: `shop is down`, `shop is degraded`.
pub(crate) fn title(n: &Notice) -> String {
    let site = &n.alert.site;
    match n.kind {
        NoticeKind::Reminder => format!("{site} is still down"),
        NoticeKind::Alert(k) => match k {
            AlertKind::Down => format!("{site} is down"),
            AlertKind::Recovered => format!("{site} recovered"),
            AlertKind::Degraded => format!("{site} is degraded"),
            AlertKind::DegradedRecovered => format!("{site} is no longer degraded"),
            AlertKind::CertExpiring => format!("{site} certificate expires soon"),
            AlertKind::CertRenewed => format!("{site} certificate renewed"),
            AlertKind::DomainExpiring => format!("{site} domain registration expires soon"),
            AlertKind::DomainRenewed => format!("{site} domain registration renewed"),
            AlertKind::Flapping => format!("{site} is flapping"),
            AlertKind::FlappingStopped => format!("{site} stopped flapping"),
            AlertKind::MonitorOffline => "sitewatch is offline".to_owned(),
            AlertKind::MonitorOnline => "sitewatch is online again".to_owned(),
            AlertKind::SloBurn => format!("{site} burns its error budget"),
            AlertKind::SloBurnRecovered => format!("{site} no longer burns its error budget"),
        },
    }
}
