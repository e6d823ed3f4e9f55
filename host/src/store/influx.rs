//! InfluxDB 2 export. Lines are written to the store's outbox in the same transaction as the
//! measurement, and a sender task posts them to `/api/v2/write` in batches, oldest first, deleting
//! them only once the server has accepted them. While the server is unreachable they wait on disk
//! (memory stays bounded) and are retried with backoff.
//!
//! This is a thin writer on the project's own reqwest rather than the `influxdb2` crate: that
//! crate pulls a second HTTP stack (reqwest 0.11, hyper 0.14, rustls 0.21); see
//! `docs/ARCHITECTURE.md` for the figures.

use super::Store;
use crate::alert::Alert;
use crate::config::InfluxConfig;
use crate::event::Bus;
use crate::measurement::Measurement;
use influxdb_line_protocol::LineProtocolBuilder;
use rusqlite::{Connection, params};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

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

/// The `probe` line of a measurement: tags site and url; fields ok, status, timings in ms, body
/// bytes and error kind where present.
pub fn probe_line(m: &Measurement) -> String {
    let ms = |d: Duration| crate::ms(d);
    let mut b = LineProtocolBuilder::new()
        .measurement("probe")
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
    for (name, value) in &m.metrics {
        // Plugin metrics cannot shadow the built-in fields.
        if !RESERVED_FIELDS.contains(&name.as_str()) && value.is_finite() {
            b = b.field(name, *value);
        }
    }
    finish(b.timestamp(nanos(m.time)))
}

/// The `alert` line of an alert: tags site, url and kind; fields availability, message and, for a
/// recovery, the seconds it was down.
pub fn alert_line(a: &Alert) -> String {
    let kind = a.kind.as_str();
    let mut b = LineProtocolBuilder::new()
        .measurement("alert")
        .tag("site", &a.site)
        .tag("url", &a.url)
        .tag("kind", kind)
        .field("availability", a.availability)
        .field("message", a.message.as_str());
    if let Some(d) = a.down_for {
        b = b.field("down_for_s", d.as_secs_f64());
    }
    finish(b.timestamp(nanos(a.time)))
}

/// Posts the outbox to the server until `stop` is cancelled.
pub struct Sender {
    pub store: Store,
    pub config: InfluxConfig,
    pub token: Option<String>,
    pub client: reqwest::Client,
    pub bus: Bus,
}

impl Sender {
    fn write_url(&self) -> url::Url {
        let mut url = self.config.url.clone();
        url.set_path(&format!(
            "{}/api/v2/write",
            url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("org", &self.config.org)
            .append_pair("bucket", &self.config.bucket)
            .append_pair("precision", "ns");
        url
    }

    fn report(&self, message: String) {
        self.bus.error("influxdb", None, message);
    }

    pub async fn run(self, stop: CancellationToken) {
        let url = self.write_url();
        let mut conn: Option<Connection> = None;
        let mut backoff: Option<Duration> = None;
        loop {
            let batch_size = self.config.batch_size;
            let store = self.store.clone();
            let taken = conn.take();
            let read = tokio::task::spawn_blocking(move || {
                let c = match taken {
                    Some(c) => c,
                    None => store.connect()?,
                };
                let rows = read_batch(&c, batch_size)?;
                Ok::<_, super::StoreError>((c, rows))
            })
            .await;
            let rows = match read {
                Ok(Ok((c, rows))) => {
                    conn = Some(c);
                    rows
                }
                Ok(Err(e)) => {
                    self.report(format!(
                        "cannot read the InfluxDB outbox: {}",
                        crate::error_chain(&e)
                    ));
                    Vec::new()
                }
                Err(_) => return,
            };
            let full = rows.len() >= batch_size;
            if !rows.is_empty() {
                let last_id = rows.last().map(|r| r.0).unwrap_or_default();
                let body = rows
                    .iter()
                    .map(|r| r.1.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                match self.post(&url, body).await {
                    Ok(()) => {
                        if backoff.take().is_some() {
                            self.report(format!(
                                "InfluxDB at {} accepts writes again",
                                self.config.url
                            ));
                        }
                        if let Some(c) = conn.take() {
                            let done = tokio::task::spawn_blocking(move || {
                                let r = c
                                    .execute("DELETE FROM outbox WHERE id <= ?1", params![last_id]);
                                (c, r)
                            })
                            .await;
                            match done {
                                Ok((c, Ok(_))) => conn = Some(c),
                                Ok((_, Err(e))) => {
                                    self.report(format!("cannot clear the InfluxDB outbox: {e}"))
                                }
                                Err(_) => return,
                            }
                        }
                        if full {
                            continue;
                        }
                    }
                    Err(message) => {
                        let next = match backoff {
                            None => {
                                self.report(format!(
                                    "cannot write to InfluxDB at {}: {message}; points wait in the outbox and are retried",
                                    self.config.url
                                ));
                                BACKOFF_MIN
                            }
                            Some(b) => (b * 2).min(BACKOFF_MAX),
                        };
                        backoff = Some(next);
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(next) => continue,
                        }
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.flush_interval) => {}
            }
        }
    }

    /// Posts one batch. The error says what happened, never the token.
    async fn post(&self, url: &url::Url, body: String) -> Result<(), String> {
        let mut req = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .timeout(Duration::from_secs(10))
            .body(body);
        if let Some(token) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("Token {token}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| crate::error_chain(&e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        Err(format!("the server answered {status}: {text}"))
    }
}

fn read_batch(conn: &Connection, n: usize) -> Result<Vec<(i64, String)>, super::StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, line FROM outbox ORDER BY id LIMIT ?1")?;
    let rows = stmt.query_map([n as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use crate::measurement::{ErrorKind, Phases, ProbeError};

    fn measurement() -> Measurement {
        Measurement {
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
        }
    }

    #[test]
    fn probe_line_is_exact_and_escaped() {
        assert_eq!(
            probe_line(&measurement()),
            r#"probe,site=my\ site\,\ "quoted"\=x,url=http://a.test/p?q\=1\ 2 ok=false,status=503i,ttfb_ms=1.5,response_ms=2.25,connect_ms=0.1,body_bytes=42i,error_kind="status",json.latency=12.5 1700000000000005000"#
        );
    }

    #[test]
    fn probe_line_parses_back() {
        let line = probe_line(&measurement());
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
        assert_eq!(tags[0], ("site".into(), "my site, \"quoted\"=x".into()));
        assert_eq!(tags[1], ("url".into(), "http://a.test/p?q=1 2".into()));
        assert_eq!(p.timestamp, Some(1_700_000_000_000_005_000));
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
            message: "Website api recovered. \"ok\"".into(),
            rendered: None,
        };
        assert_eq!(
            alert_line(&a),
            r#"alert,site=api,url=http://a/,kind=recovered availability=0.9,message="Website api recovered. \"ok\"",down_for_s=60 100000000000"#
        );
    }
}
