//! `/feed.atom`: the stored alerts and the incidents' updates, newest first, as an Atom feed
//! (RFC 4287) for feed readers and chat integrations that follow feeds. Each entry's id is a
//! name-based `urn:uuid:` of what it tells (an alert's site, kind and time; an incident's id and
//! the update's place in its timeline), so a reader sees each once however often it polls.

use crate::alert::Alert;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The most entries in the feed.
pub(crate) const MAX_ENTRIES: usize = 50;

/// A name-based UUID (the layout of RFC 9562's version 5, over SHA-256) as a `urn:uuid:`.
fn urn_uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One entry, before it is written.
struct Entry {
    id: String,
    title: String,
    updated: DateTime<Utc>,
    category: &'static str,
    summary: String,
}

/// The feed of `alerts` and the updates of `incidents` of the monitor at `location`, newest
/// first, at most 50; `now` stands for the feed's `updated` when it is empty.
pub fn render(
    location: &str,
    alerts: &[Alert],
    incidents: &[sitewatch_store::incidents::Incident],
    now: DateTime<Utc>,
) -> String {
    let mut entries: Vec<Entry> = alerts
        .iter()
        .map(|a| {
            let t = time(a.time);
            Entry {
                id: urn_uuid(&["alert", &a.site, a.kind.as_str(), &t]),
                title: match &a.held {
                    Some(why) => format!("{} {} (held: {why})", a.site, a.kind.as_str()),
                    None => format!("{} {}", a.site, a.kind.as_str()),
                },
                updated: a.time,
                category: a.kind.as_str(),
                summary: a.message.clone(),
            }
        })
        .collect();
    for i in incidents {
        for (n, u) in i.updates.iter().enumerate() {
            entries.push(Entry {
                id: urn_uuid(&["incident", &i.id.to_string(), &n.to_string()]),
                title: format!("Incident: {} ({})", i.title, u.status.as_str()),
                updated: u.time,
                category: "incident",
                summary: u.message.clone(),
            });
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.updated));
    entries.truncate(MAX_ENTRIES);
    let updated = entries.first().map_or(now, |e| e.updated);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(
        out,
        "  <id>{}</id>\n  <title>sitewatch alerts — {}</title>\n  <updated>{}</updated>",
        urn_uuid(&["sitewatch feed", location]),
        crate::xml::escape(location),
        time(updated)
    );
    out.push_str("  <author><name>sitewatch</name></author>\n");
    out.push_str("  <link rel=\"self\" type=\"application/atom+xml\" href=\"/feed.atom\"/>\n");
    out.push_str("  <link rel=\"alternate\" type=\"text/html\" href=\"/\"/>\n");
    out.push_str("  <generator>sitewatch</generator>\n");
    for e in &entries {
        let _ = writeln!(
            out,
            "  <entry>\n    <id>{id}</id>\n    <title>{title}</title>\n    <updated>{t}</updated>\n    \
             <link rel=\"alternate\" type=\"text/html\" href=\"/\"/>\n    \
             <category term=\"{kind}\"/>\n    <summary type=\"text\">{summary}</summary>\n  </entry>",
            id = e.id,
            title = crate::xml::escape(&e.title),
            t = time(e.updated),
            kind = e.category,
            summary = crate::xml::escape(&e.summary),
        );
    }
    out.push_str("</feed>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuids_and_text_is_escaped() {
        let a = urn_uuid(&["alert", "shop", "down", "t"]);
        assert_eq!(a, urn_uuid(&["alert", "shop", "down", "t"]));
        assert_ne!(a, urn_uuid(&["alert", "shop", "recovered", "t"]));
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(&a[9 + 14..9 + 15], "5", "version 5 layout: {a}");
    }

    #[test]
    fn an_empty_feed_is_whole() {
        let now = chrono::Utc::now();
        let f = render("eu <1>", &[], &[], now);
        assert!(f.contains("<title>sitewatch alerts — eu &lt;1&gt;</title>"));
        assert!(f.contains(&format!("<updated>{}</updated>", time(now))));
        assert!(!f.contains("<entry>"));
    }
}
