//! The InfluxDB outbox: each measurement's and alert's line (InfluxDB 2 line protocol), written
//! by the writer in the transaction of its record, and the SQL the sender reads and parks them
//! with ([`Lines`]).

use crate::StoreError;
use crate::outbox::{Outbox, Settled};
use chrono::{DateTime, Utc};
use influxdb_line_protocol::LineProtocolBuilder;
use rusqlite::{Connection, params};
use sitewatch_core::alert::Alert;
use sitewatch_core::event::Bus;
use sitewatch_core::measurement::Measurement;
use std::time::Duration;

const RESERVED_FIELDS: &[&str] = &[
    "ok",
    "status",
    "ttfb_ms",
    "response_ms",
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "body_bytes",
    "error_kind",
    "maintenance",
    "cert_expiry_s",
];

fn nanos(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn finish(
    b: LineProtocolBuilder<Vec<u8>, influxdb_line_protocol::builder::AfterTimestamp>,
) -> String {
    let bytes = b.close_line().build();
    // The builder only writes the UTF-8 it was given, plus ASCII.
    String::from_utf8_lossy(bytes.strip_suffix(b"\n").unwrap_or(&bytes)).into_owned()
}

/// The `probe` line of a measurement: tags kind (of site), location (of this instance), site
/// and url; fields ok, status, timings in ms, body bytes and error kind where present.
pub(crate) fn probe_line(m: &Measurement, location: &str) -> String {
    let ms = |d: Duration| sitewatch_core::ms(d);
    let mut b = LineProtocolBuilder::new()
        .measurement("probe")
        .tag("kind", sitewatch_core::measurement::kind_of(&m.url))
        .tag("location", location)
        .tag("site", &m.site)
        .tag("url", &m.url)
        .field("ok", m.ok);
    if let Some(s) = m.status {
        b = b.field("status", i64::from(s));
    }
    for (name, d) in [
        ("ttfb_ms", m.ttfb),
        ("response_ms", m.response_time),
        ("dns_ms", m.phases.dns),
        ("connect_ms", m.phases.connect),
        ("tls_ms", m.phases.tls),
    ] {
        if let Some(d) = d {
            b = b.field(name, ms(d));
        }
    }
    b = b.field("body_bytes", m.body_bytes as i64);
    if let Some(e) = &m.error {
        b = b.field("error_kind", e.kind.as_str());
    }
    if m.maintenance {
        b = b.field("maintenance", true);
    }
    if let Some(expiry) = m.tls.as_ref().and_then(|t| t.earliest_expiry()) {
        // As blackbox_exporter's probe_ssl_earliest_cert_expiry: Unix seconds.
        b = b.field("cert_expiry_s", expiry.timestamp());
    }
    for (name, value) in &m.metrics {
        // Plugin metrics cannot shadow the built-in fields.
        if !RESERVED_FIELDS.contains(&name.as_str()) && value.is_finite() {
            b = b.field(name, *value);
        }
    }
    finish(b.timestamp(nanos(m.time)))
}

/// The `step` lines of a script run, one per step: tags location, site and step (its name);
/// fields duration_ms, requests and failed; the probe's time. A step named twice in one run is
/// one point in InfluxDB (the last written), as a series keeps one point per timestamp.
///
/// The builder escapes commas, equals signs and spaces; what line protocol cannot say at all
/// is left out of the name: a trailing backslash (it would escape the separator after it) and
/// an empty value (written `-`). Step names are a plugin's: anything may come.
pub(crate) fn step_lines<'a>(
    m: &'a Measurement,
    location: &'a str,
) -> impl Iterator<Item = String> + 'a {
    m.steps.iter().map(move |s| {
        let b = LineProtocolBuilder::new()
            .measurement("step")
            .tag("location", location)
            .tag("site", &m.site)
            .tag("step", step_tag(&s.name))
            .field("duration_ms", sitewatch_core::ms(s.duration))
            .field("requests", i64::from(s.requests))
            .field("failed", s.failed);
        finish(b.timestamp(nanos(m.time)))
    })
}

/// A step name as a tag value line protocol can carry (see [`step_lines`]).
fn step_tag(name: &str) -> &str {
    match name.trim_end_matches('\\') {
        "" => "-",
        t => t,
    }
}

/// The `alert` line of an alert: tags kind, location, site and url; fields availability, message and, for a
/// recovery, the seconds it was down.
pub fn alert_line(a: &Alert, location: &str) -> String {
    let kind = a.kind.as_str();
    let mut b = LineProtocolBuilder::new()
        .measurement("alert")
        .tag("kind", kind)
        .tag("location", location)
        .tag("site", &a.site)
        .tag("url", &a.url)
        .field("availability", a.availability)
        .field("message", a.message.as_str());
    if let Some(d) = a.down_for {
        b = b.field("down_for_s", d.as_secs_f64());
    }
    if let Some(l) = &a.latency {
        b = b
            .field("latency_ms", l.value_ms)
            .field("limit_ms", l.limit.as_secs_f64() * 1000.0);
    }
    if let Some(e) = a.cert_expiry {
        b = b.field("cert_expiry_s", e.timestamp());
    }
    finish(b.timestamp(nanos(a.time)))
}

/// Reports a problem of the export (logged, and an error event). The one way the InfluxDB
/// export (the sender, and the writer holding the outbox to its limit) tells the user.
pub fn report(bus: &Bus, message: String) {
    bus.error("influxdb", None, message);
}

/// The point time of a line (its trailing nanosecond timestamp), if it parses.
pub(crate) fn line_time(line: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let point = influxdb_line_protocol::parse_lines(line).next()?.ok()?;
    Some(chrono::DateTime::from_timestamp_nanos(point.timestamp?))
}

/// The InfluxDB outbox as its sender reads it: lines in id order. A line the server took
/// leaves it; a line it refused for good is parked with the reason (`sitewatch outbox` shows
/// both counts).
pub struct Lines;

impl Outbox for Lines {
    type Item = String;

    fn waiting(
        &mut self,
        conn: &mut Connection,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id, line FROM outbox ORDER BY id LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn settle(
        &mut self,
        conn: &mut Connection,
        first: i64,
        last: i64,
        how: Settled<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = conn.transaction()?;
        if let Settled::Refused(reason) = how {
            tx.execute(
                "INSERT INTO outbox_parked (line, reason, parked_us)
                 SELECT line, ?3, ?4 FROM outbox WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
                params![first, last, reason, now.timestamp_micros()],
            )?;
        }
        tx.execute(
            "DELETE FROM outbox WHERE id BETWEEN ?1 AND ?2",
            params![first, last],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn len(&mut self, conn: &mut Connection) -> Result<u64, StoreError> {
        crate::outbox_len(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_core::alert::AlertKind;
    use sitewatch_core::measurement::{ErrorKind, Phases, ProbeError};
    use std::time::Duration;

    fn measurement() -> Measurement {
        Measurement {
            domain_expiry: None,
            redirect: None,
            probe_id: 0,
            steps: Vec::new(),
            location: None,
            site: "my site, \"quoted\"=x".into(),
            url: "http://a.test/p?q=1 2".into(),
            time: chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap(),
            ok: false,
            status: Some(503),
            ttfb: Some(Duration::from_micros(1500)),
            response_time: Some(Duration::from_micros(2250)),
            body_bytes: 42,
            body_truncated: false,
            phases: Phases {
                dns: None,
                connect: Some(Duration::from_micros(100)),
                tls: None,
            },
            error: Some(ProbeError {
                kind: ErrorKind::Status,
                message: "x".into(),
            }),
            duration: Duration::from_micros(2250),
            ended_us: 0,
            generation: 0,
            schedule_lag: Duration::ZERO,
            metrics: vec![("json.latency".into(), 12.5)],
            tls: None,
            maintenance: false,
        }
    }

    #[test]
    fn probe_line_is_exact_and_escaped() {
        assert_eq!(
            probe_line(&measurement(), "eu west"),
            r#"probe,kind=http,location=eu\ west,site=my\ site\,\ "quoted"\=x,url=http://a.test/p?q\=1\ 2 ok=false,status=503i,ttfb_ms=1.5,response_ms=2.25,connect_ms=0.1,body_bytes=42i,error_kind="status",json.latency=12.5 1700000000000005000"#
        );
    }

    #[test]
    fn probe_line_parses_back() {
        let line = probe_line(&measurement(), "lab");
        let parsed: Vec<_> = influxdb_line_protocol::parse_lines(&line)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), 1);
        let p = &parsed[0];
        assert_eq!(p.series.measurement.as_str(), "probe");
        let tags: Vec<_> = p
            .series
            .tag_set
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(tags[0], ("kind".into(), "http".into()));
        assert_eq!(tags[1], ("location".into(), "lab".into()));
        assert_eq!(tags[2], ("site".into(), "my site, \"quoted\"=x".into()));
        assert_eq!(tags[3], ("url".into(), "http://a.test/p?q=1 2".into()));
        assert_eq!(p.timestamp, Some(1_700_000_000_000_005_000));
    }

    /// A step line per step, its tags escaped (a step name is a plugin's: hostile), parsing
    /// back to the same values.
    #[test]
    fn step_lines_are_exact_escaped_and_parse_back() {
        let mut m = measurement();
        m.steps = vec![
            sitewatch_core::measurement::Step {
                name: "log in, =x".into(),
                duration: Duration::from_micros(12_500),
                requests: 3,
                failed: false,
            },
            sitewatch_core::measurement::Step {
                name: "order\\".into(),
                duration: Duration::from_micros(40),
                requests: 1,
                failed: true,
            },
        ];
        let lines: Vec<String> = step_lines(&m, "lab").collect();
        assert_eq!(
            lines[0],
            r#"step,location=lab,site=my\ site\,\ "quoted"\=x,step=log\ in\,\ \=x duration_ms=12.5,requests=3i,failed=false 1700000000000005000"#
        );
        assert_eq!(step_lines(&measurement(), "lab").count(), 0);
        // What line protocol cannot carry: a trailing backslash, an empty name.
        let tags: Vec<String> = lines
            .iter()
            .map(|l| {
                let p = influxdb_line_protocol::parse_lines(l)
                    .next()
                    .unwrap()
                    .unwrap();
                p.series.tag_set.unwrap()[2].1.to_string()
            })
            .collect();
        assert_eq!(tags, ["log in, =x", "order"]);
        m.steps[0].name = "\\\\".into();
        let line = step_lines(&m, "lab").next().unwrap();
        assert!(
            line.starts_with("step,location=lab,site=my\\ site\\,\\ \"quoted\"\\=x,step=- "),
            "{line}"
        );
    }

    #[test]
    fn line_time_reads_the_timestamp() {
        assert_eq!(
            line_time(&probe_line(&measurement(), "lab")),
            Some(chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap())
        );
        assert_eq!(line_time("not a line"), None);
    }

    #[test]
    fn alert_line_is_exact() {
        let a = Alert {
            kind: AlertKind::Recovered,
            site: "api".into(),
            url: "http://a/".into(),
            availability: 0.9,
            time: chrono::DateTime::from_timestamp(100, 0).unwrap(),
            down_since: chrono::DateTime::from_timestamp(40, 0),
            down_for: Some(Duration::from_secs(60)),
            latency: None,
            cert_expiry: None,
            message: "Website api recovered. \"ok\"".into(),
            rendered: None,
            held: None,
        };
        assert_eq!(
            alert_line(&a, "lab"),
            r#"alert,kind=recovered,location=lab,site=api,url=http://a/ availability=0.9,message="Website api recovered. \"ok\"",down_for_s=60 100000000000"#
        );
    }
}
