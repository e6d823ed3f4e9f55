//! Host bindings generated from each WIT version the host speaks (`wit/<version>/plugin.wit`):
//! per version, one module per world, sharing that version's `types` and `host` interfaces.
//!
//! The host itself works with the newest version's types ([`types`], 0.3.0); a call to a plugin built
//! against an older version converts its input down and its answer up here (an older version's
//! records are the newer ones less the fields added since).

use crate::measurement::{CertInfo, TlsDetails};

/// `sitewatch:plugin@0.1.0`: the response without the TLS session.
pub mod v0_1 {
    pub mod checker {
        wasmtime::component::bindgen!({
            path: "../../wit/0.1.0",
            world: "checker",
            imports: { default: trappable },
            exports: { default: async },
        });
    }

    pub mod formatter {
        wasmtime::component::bindgen!({
            path: "../../wit/0.1.0",
            world: "alert-formatter",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": super::checker::sitewatch::plugin::types,
                "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
            },
        });
    }

    pub use checker::sitewatch::plugin::host;
    pub use checker::sitewatch::plugin::types;
}

/// `sitewatch:plugin@0.2.0`: the response carries the TLS session and the served chain.
pub mod v0_2 {
    pub mod checker {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "checker",
            imports: { default: trappable },
            exports: { default: async },
        });
    }

    pub mod formatter {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "alert-formatter",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": super::checker::sitewatch::plugin::types,
                "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
            },
        });
    }

    pub use checker::sitewatch::plugin::host;
    pub use checker::sitewatch::plugin::types;
}

/// `sitewatch:plugin@0.3.0`: checks on every kind of site; the response says what was seen.
pub mod v0_3 {
    pub mod checker {
        wasmtime::component::bindgen!({
            path: "../../wit/0.3.0",
            world: "checker",
            imports: { default: trappable },
            exports: { default: async },
        });
    }

    pub mod formatter {
        wasmtime::component::bindgen!({
            path: "../../wit/0.3.0",
            world: "alert-formatter",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": super::checker::sitewatch::plugin::types,
                "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
            },
        });
    }

    pub use checker::sitewatch::plugin::host;
    pub use checker::sitewatch::plugin::types;
}

/// `sitewatch:plugin@0.4.0`: scenarios. Its `types` are 0.3.0's, unchanged, so its checks and
/// formatters take the very same Rust types (a component's types are checked by structure).
pub mod v0_4 {
    pub mod checker {
        wasmtime::component::bindgen!({
            path: "../../wit/0.4.0",
            world: "checker",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": crate::bindings::v0_3::types,
            },
        });
    }

    pub mod formatter {
        wasmtime::component::bindgen!({
            path: "../../wit/0.4.0",
            world: "alert-formatter",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": crate::bindings::v0_3::types,
                "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
            },
        });
    }

    pub mod scenario {
        wasmtime::component::bindgen!({
            path: "../../wit/0.4.0",
            world: "scenario",
            imports: {
                "sitewatch:plugin/scenario-host.send": async | trappable,
                "sitewatch:plugin/scenario-host.sleep": async | trappable,
                default: trappable,
            },
            exports: { default: async },
            with: {
                "sitewatch:plugin/types": crate::bindings::v0_3::types,
                "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
            },
        });
    }

    pub use checker::sitewatch::plugin::host;
    pub use scenario::exports::sitewatch::plugin::script;
    pub use scenario::sitewatch::plugin::scenario_host;
}

/// The newest version's `host` log level.
pub use v0_3::host::Level;
/// The newest version's types: what the host builds and reads.
pub use v0_3::types;

/// The WIT alert a formatter is given for `alert`.
pub fn alert_input(alert: &crate::alert::Alert, recent_errors: Vec<String>) -> types::Alert {
    types::Alert {
        // Formatters of WIT 0.1 know two kinds; the alert stage gives them only alerts of the
        // down condition (the others keep the built-in message).
        kind: if alert.kind.is_firing() {
            types::AlertKind::Down
        } else {
            types::AlertKind::Recovered
        },
        site: alert.site.to_string(),
        url: alert.url.to_string(),
        availability: alert.availability,
        time: crate::clock::rfc3339_seconds(alert.time),
        down_since: alert.down_since.map(crate::clock::rfc3339_seconds),
        down_for_seconds: alert.down_for.map(|d| d.as_secs_f64()),
        recent_errors,
        message: alert.message.clone(),
    }
}

/// What a probe of a site of `kind` observed, from its answer as bytes (a `dns` site's answers
/// are one per line).
pub fn observed(kind: &str, answer: &[u8]) -> types::Observed {
    match kind {
        "tcp" => types::Observed::Tcp(answer.to_vec()),
        "dns" => types::Observed::Dns(
            String::from_utf8_lossy(answer)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        "websocket" => types::Observed::Websocket(String::from_utf8_lossy(answer).into_owned()),
        _ => types::Observed::Http,
    }
}

/// The WIT TLS session of a probe's TLS details.
pub fn tls_info(tls: &TlsDetails) -> types::TlsInfo {
    types::TlsInfo {
        version: tls.version.clone(),
        cipher: tls.cipher.clone(),
        chain: tls.chain.iter().map(certificate).collect(),
        earliest_expiry: tls.earliest_expiry().map(|t| t.timestamp()),
    }
}

fn certificate(c: &CertInfo) -> types::Certificate {
    types::Certificate {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        sans: c.sans.clone(),
        not_before: c.not_before.timestamp(),
        not_after: c.not_after.timestamp(),
        serial: c.serial.clone(),
    }
}

/// A response as a 0.1.0 plugin sees it: everything but the TLS session.
pub(crate) fn response_v0_1(r: &types::Response) -> v0_1::types::Response {
    v0_1::types::Response {
        url: r.url.clone(),
        method: r.method.clone(),
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|h| v0_1::types::Header {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
        body: r.body.clone(),
        body_truncated: r.body_truncated,
        timings: v0_1::types::Timings {
            ttfb_ms: r.timings.ttfb_ms,
            response_ms: r.timings.response_ms,
            dns_ms: r.timings.dns_ms,
            connect_ms: r.timings.connect_ms,
            tls_ms: r.timings.tls_ms,
        },
    }
}

/// A 0.1.0 plugin's check result in the newest types (they are the same record).
pub(crate) fn check_result_from_v0_1(r: v0_1::types::CheckResult) -> types::CheckResult {
    types::CheckResult {
        verdict: match r.verdict {
            v0_1::types::Verdict::Pass => types::Verdict::Pass,
            v0_1::types::Verdict::Fail(why) => types::Verdict::Fail(why),
        },
        metrics: r
            .metrics
            .into_iter()
            .map(|m| types::Metric {
                name: m.name,
                value: m.value,
            })
            .collect(),
    }
}

/// An alert as a 0.1.0 formatter sees it (the same record).
pub(crate) fn alert_v0_1(a: &types::Alert) -> v0_1::types::Alert {
    v0_1::types::Alert {
        kind: match a.kind {
            types::AlertKind::Down => v0_1::types::AlertKind::Down,
            types::AlertKind::Recovered => v0_1::types::AlertKind::Recovered,
        },
        site: a.site.clone(),
        url: a.url.clone(),
        availability: a.availability,
        time: a.time.clone(),
        down_since: a.down_since.clone(),
        down_for_seconds: a.down_for_seconds,
        recent_errors: a.recent_errors.clone(),
        message: a.message.clone(),
    }
}

/// A response as a 0.2.0 plugin sees it: everything but what 0.3.0 added (the kind and what
/// was observed, which its body carries too).
pub(crate) fn response_v0_2(r: &types::Response) -> v0_2::types::Response {
    use v0_2::types as old;
    old::Response {
        url: r.url.clone(),
        method: r.method.clone(),
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|h| old::Header {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
        body: r.body.clone(),
        body_truncated: r.body_truncated,
        timings: old::Timings {
            ttfb_ms: r.timings.ttfb_ms,
            response_ms: r.timings.response_ms,
            dns_ms: r.timings.dns_ms,
            connect_ms: r.timings.connect_ms,
            tls_ms: r.timings.tls_ms,
        },
        tls: r.tls.as_ref().map(|t| old::TlsInfo {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            chain: t
                .chain
                .iter()
                .map(|c| old::Certificate {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    sans: c.sans.clone(),
                    not_before: c.not_before,
                    not_after: c.not_after,
                    serial: c.serial.clone(),
                })
                .collect(),
            earliest_expiry: t.earliest_expiry,
        }),
    }
}

/// A 0.2.0 plugin's check result in the newest types (the same record).
pub(crate) fn check_result_from_v0_2(r: v0_2::types::CheckResult) -> types::CheckResult {
    types::CheckResult {
        verdict: match r.verdict {
            v0_2::types::Verdict::Pass => types::Verdict::Pass,
            v0_2::types::Verdict::Fail(why) => types::Verdict::Fail(why),
        },
        metrics: r
            .metrics
            .into_iter()
            .map(|m| types::Metric {
                name: m.name,
                value: m.value,
            })
            .collect(),
    }
}

/// An alert as a 0.2.0 formatter sees it (the same record).
pub(crate) fn alert_v0_2(a: &types::Alert) -> v0_2::types::Alert {
    v0_2::types::Alert {
        kind: match a.kind {
            types::AlertKind::Down => v0_2::types::AlertKind::Down,
            types::AlertKind::Recovered => v0_2::types::AlertKind::Recovered,
        },
        site: a.site.clone(),
        url: a.url.clone(),
        availability: a.availability,
        time: a.time.clone(),
        down_since: a.down_since.clone(),
        down_for_seconds: a.down_for_seconds,
        recent_errors: a.recent_errors.clone(),
        message: a.message.clone(),
    }
}

/// A 0.2.0 plugin's log level in the newest types.
pub(crate) fn level_from_v0_4(level: v0_4::host::Level) -> Level {
    match level {
        v0_4::host::Level::Debug => Level::Debug,
        v0_4::host::Level::Info => Level::Info,
        v0_4::host::Level::Warn => Level::Warn,
        v0_4::host::Level::Error => Level::Error,
    }
}

pub(crate) fn level_from_v0_2(level: v0_2::host::Level) -> Level {
    match level {
        v0_2::host::Level::Debug => Level::Debug,
        v0_2::host::Level::Info => Level::Info,
        v0_2::host::Level::Warn => Level::Warn,
        v0_2::host::Level::Error => Level::Error,
    }
}

/// A 0.1.0 plugin's log level in the newest types.
pub(crate) fn level_from_v0_1(level: v0_1::host::Level) -> Level {
    match level {
        v0_1::host::Level::Debug => Level::Debug,
        v0_1::host::Level::Info => Level::Info,
        v0_1::host::Level::Warn => Level::Warn,
        v0_1::host::Level::Error => Level::Error,
    }
}
