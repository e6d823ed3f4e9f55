//! The compact encoding of a measurement on the cluster stream (postcard: a probe in a few
//! dozen bytes), and the subject token of a site.

use crate::measurement::{ErrorKind, Measurement, Phases, ProbeError, Step};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// One probe as it travels between nodes: what the windows, alerts and displays use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub node: String,
    pub location: String,
    pub site: String,
    /// When the request started, microseconds since the Unix epoch.
    pub time_us: i64,
    pub duration_us: u64,
    pub ok: bool,
    pub status: Option<u16>,
    pub ttfb_us: Option<u64>,
    pub response_us: Option<u64>,
    pub dns_us: Option<u64>,
    pub connect_us: Option<u64>,
    pub tls_us: Option<u64>,
    pub body_bytes: u64,
    /// The error kind (its name) and message.
    pub error: Option<(String, String)>,
    /// The earliest certificate expiry of a chain whose TLS was good, for certificate alerts.
    pub cert_expiry_us: Option<i64>,
    /// A `script` site's steps. Encoded after the fields above, and only when there are some
    /// ([`Sample::encode`]), so a node of a version without steps reads the sample, and a
    /// sample from such a node reads back without steps.
    #[serde(skip)]
    pub steps: Vec<SampleStep>,
}

/// One step of a script run, on the cluster stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleStep {
    pub name: String,
    pub duration_us: u64,
    pub requests: u32,
    pub failed: bool,
}

impl From<&Step> for SampleStep {
    fn from(s: &Step) -> Self {
        Self {
            name: s.name.to_string(),
            duration_us: us(Some(s.duration)).unwrap_or_default(),
            requests: s.requests,
            failed: s.failed,
        }
    }
}

impl From<SampleStep> for Step {
    fn from(s: SampleStep) -> Self {
        Self {
            name: s.name.into(),
            duration: Duration::from_micros(s.duration_us),
            requests: s.requests,
            failed: s.failed,
        }
    }
}

fn us(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn dur(us: Option<u64>) -> Option<Duration> {
    us.map(Duration::from_micros)
}

impl Sample {
    pub fn of(m: &Measurement, node: &str, location: &str) -> Self {
        let good_tls = m.error.as_ref().is_none_or(|e| e.kind != ErrorKind::Tls);
        Self {
            node: node.to_owned(),
            location: location.to_owned(),
            site: m.site.to_string(),
            time_us: m.time.timestamp_micros(),
            duration_us: us(Some(m.duration)).unwrap_or_default(),
            ok: m.ok,
            status: m.status,
            ttfb_us: us(m.ttfb),
            response_us: us(m.response_time),
            dns_us: us(m.phases.dns),
            connect_us: us(m.phases.connect),
            tls_us: us(m.phases.tls),
            body_bytes: m.body_bytes,
            error: m
                .error
                .as_ref()
                .map(|e| (e.kind.as_str().to_owned(), e.message.clone())),
            cert_expiry_us: m
                .tls
                .as_ref()
                .and_then(|t| t.earliest_expiry())
                .filter(|_| good_tls)
                .map(|e| e.timestamp_micros()),
            steps: m.steps.iter().map(SampleStep::from).collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = postcard::to_allocvec(self).expect("a sample always encodes");
        if !self.steps.is_empty() {
            bytes.extend(postcard::to_allocvec(&self.steps).expect("steps always encode"));
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let (mut sample, rest): (Self, _) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            sample.steps = postcard::from_bytes(rest)?;
        }
        Ok(sample)
    }

    /// The measurement this sample stands for, of the site at `url`. Remote probes sit at their
    /// wall-clock end on the timeline, as stored ones do.
    pub fn into_measurement(self, site: Arc<str>, url: Arc<str>) -> Measurement {
        let time = chrono::DateTime::from_timestamp_micros(self.time_us).unwrap_or_default();
        let duration = Duration::from_micros(self.duration_us);
        let error = self.error.map(|(kind, message)| ProbeError {
            kind: ErrorKind::parse(&kind).unwrap_or(ErrorKind::Http),
            message,
        });
        Measurement {
            domain_expiry: None,
            redirect: None,
            probe_id: 0,
            steps: self.steps.into_iter().map(Step::from).collect(),
            location: Some(Arc::from(self.location.as_str())),
            site,
            url,
            time,
            ok: self.ok,
            status: self.status,
            ttfb: dur(self.ttfb_us),
            response_time: dur(self.response_us),
            body_bytes: self.body_bytes,
            body_truncated: false,
            phases: Phases {
                dns: dur(self.dns_us),
                connect: dur(self.connect_us),
                tls: dur(self.tls_us),
            },
            error,
            duration,
            ended_us: self
                .time_us
                .saturating_add(i64::try_from(self.duration_us).unwrap_or(i64::MAX)),
            generation: 0,
            schedule_lag: Duration::ZERO,
            metrics: Vec::new(),
            tls: None,
            maintenance: false,
        }
    }
}

/// A site's subject token and KV key part: 16 hex digits of a SHA-256 of its name (names may
/// hold any character; subjects may not).
pub fn site_token(site: &str) -> String {
    let d = Sha256::digest(site.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_round_trips_and_is_compact() {
        let mut m = crate::measurement::testing::sample("shop", false);
        m.error = Some(ProbeError {
            kind: ErrorKind::Timeout,
            message: "no answer".into(),
        });
        let s = Sample::of(&m, "n1", "eu-west");
        let bytes = s.encode();
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        let back = Sample::decode(&bytes).unwrap();
        assert_eq!(back, s);
        let m2 = back.into_measurement("shop".into(), m.url.clone());
        assert_eq!(m2.error, m.error);
        assert_eq!(m2.time, m.time);
        assert_eq!(m2.duration, m.duration);
        assert_eq!(m2.location.as_deref(), Some("eu-west"));
        assert!(Sample::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    /// A script run's steps travel with the sample; a sample without steps is encoded as
    /// before steps existed (an older node reads it, and reads a newer one's first fields).
    #[test]
    fn steps_travel_and_samples_without_them_keep_the_old_form() {
        let mut m = crate::measurement::testing::sample("shop", true);
        let plain = Sample::of(&m, "n1", "eu").encode();
        m.steps = vec![
            Step {
                name: "login".into(),
                duration: Duration::from_micros(1500),
                requests: 2,
                failed: false,
            },
            Step {
                name: "ord\"er".into(),
                duration: Duration::from_micros(20),
                requests: 1,
                failed: true,
            },
        ];
        let s = Sample::of(&m, "n1", "eu");
        let bytes = s.encode();
        assert_eq!(
            &bytes[..plain.len()],
            &plain[..],
            "the old fields come first, unchanged"
        );
        let back = Sample::decode(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.into_measurement("shop".into(), m.url.clone()).steps,
            m.steps
        );
        // What a node without steps reads: the fields it knows.
        let old: Sample = postcard::from_bytes(&bytes).unwrap();
        assert!(old.steps.is_empty());
        assert!(Sample::decode(&plain).unwrap().steps.is_empty());
        assert!(Sample::decode(&bytes[..bytes.len() - 2]).is_err());
    }

    #[test]
    fn site_tokens_are_subject_safe_and_stable() {
        let t = site_token("a.b c>*");
        assert_eq!(t.len(), 16);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(t, site_token("a.b c>*"));
        assert_ne!(t, site_token("a.b c>"));
    }
}
