//! Whether sitewatch itself reaches the network. With canaries (`probing.canaries`: sites, or
//! `host:port` targets the canary task connects to) it is offline when every canary's newest
//! answer is a failure, and online again when one answers. Without canaries, a rule over all
//! sites guesses it ([`LocalOutageRule`]). While offline every site's down alert is held.

use crate::config::{Canaries, Canary};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The guess without canaries: at least [`Self::MIN_SITES`] sites have been probed, and at
/// least [`Self::ENTER`] of them failed their newest probe at the network level (DNS or
/// connect: what a cut cable or a dead resolver does to every site at once); it ends when fewer
/// than [`Self::LEAVE`] do. A real outage of many sites behind one DNS provider looks the same,
/// which is why its alert says "possible".
pub struct LocalOutageRule;

impl LocalOutageRule {
    /// Fewer sites failing together say too little (and a handful of dead test targets must
    /// still alert one by one).
    pub const MIN_SITES: usize = 10;
    /// 80%.
    pub const ENTER: f64 = 0.8;
    /// 50%.
    pub const LEAVE: f64 = 0.5;
}

/// A change of sitewatch's reach: the monitor alert to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Offline {
        reason: String,
    },
    Online {
        reason: String,
        since: DateTime<Utc>,
    },
}

#[derive(Default)]
pub struct Reach {
    /// The canaries' names (a site's name, or `host:port`), in config order.
    canaries: Vec<String>,
    /// Each canary's newest answer: `None` it answered, `Some(why)` it failed.
    answers: HashMap<String, Option<String>>,
    /// Sites whose newest probe failed at the network level, and sites probed at all.
    net_failing: usize,
    probed: usize,
    /// Offline since then.
    offline: Option<DateTime<Utc>>,
}

impl Reach {
    pub fn new(canaries: &Canaries) -> Self {
        let mut r = Self::default();
        r.configure(canaries);
        r
    }

    /// A reloaded canary list: answers of canaries still listed are kept.
    pub fn configure(&mut self, canaries: &Canaries) {
        self.canaries = canaries.targets.iter().map(Canary::name).collect();
        let keep = &self.canaries;
        self.answers.retain(|name, _| keep.contains(name));
    }

    /// Whether `site` is a canary.
    pub fn is_canary(&self, site: &str) -> bool {
        self.canaries.iter().any(|c| c == site)
    }

    /// Why a site's down alert is held now, if sitewatch is offline.
    pub fn hold_reason(&self) -> Option<&'static str> {
        self.offline.map(|_| "sitewatch offline")
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    /// A canary's newest answer: `Err(why)` when it failed.
    pub fn answer(&mut self, name: &str, answer: Result<(), String>) {
        if self.is_canary(name) {
            self.answers.insert(name.to_owned(), answer.err());
        }
    }

    /// The sites' counts for the rule without canaries, kept by the recorder as probes arrive:
    /// a site's newest probe went from `was` to `now` (`None`: not probed; `Some(true)`: failed
    /// at the network level).
    pub fn site_changed(&mut self, was: Option<bool>, now: Option<bool>) {
        if was.is_some() {
            self.probed -= 1;
        }
        if was == Some(true) {
            self.net_failing -= 1;
        }
        if now.is_some() {
            self.probed += 1;
        }
        if now == Some(true) {
            self.net_failing += 1;
        }
    }

    /// The sites' counts afresh, from each site's newest probe (after a reload).
    pub fn recount(&mut self, sites: impl Iterator<Item = Option<bool>>) {
        (self.net_failing, self.probed) = (0, 0);
        for s in sites {
            self.site_changed(None, s);
        }
    }

    /// The change the newest answers make at `time`, if any.
    pub fn evaluate(&mut self, time: DateTime<Utc>) -> Option<Change> {
        let (offline, reason) = if self.canaries.is_empty() {
            self.by_sites()
        } else {
            self.by_canaries()
        };
        match (self.offline, offline) {
            (None, Some(true)) => {
                self.offline = Some(time);
                Some(Change::Offline { reason })
            }
            (Some(since), Some(false)) => {
                self.offline = None;
                Some(Change::Online { reason, since })
            }
            _ => None,
        }
    }

    /// Offline when every canary failed its newest answer; online when one answers. Unknown
    /// until each has answered once.
    fn by_canaries(&self) -> (Option<bool>, String) {
        if let Some(up) = self
            .canaries
            .iter()
            .find(|c| matches!(self.answers.get(*c), Some(None)))
        {
            return (Some(false), format!("canary {up} answers"));
        }
        if self.canaries.iter().all(|c| self.answers.contains_key(c)) {
            let failures: Vec<String> = self
                .canaries
                .iter()
                .map(|c| match self.answers.get(c) {
                    Some(Some(why)) => format!("{c} ({why})"),
                    _ => c.clone(),
                })
                .collect();
            return (
                Some(true),
                format!("every canary fails: {}", failures.join(", ")),
            );
        }
        (None, String::new())
    }

    /// [`LocalOutageRule`].
    fn by_sites(&self) -> (Option<bool>, String) {
        let (failing, probed) = (self.net_failing, self.probed);
        if probed < LocalOutageRule::MIN_SITES {
            return (
                self.offline.map(|_| false),
                format!("{probed} sites probed"),
            );
        }
        let share = failing as f64 / probed as f64;
        let text = format!("{failing} of {probed} sites fail at DNS or connect");
        if share >= LocalOutageRule::ENTER {
            (Some(true), format!("possible local outage: {text}"))
        } else if share < LocalOutageRule::LEAVE {
            (Some(false), text)
        } else {
            (None, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn canaries(names: &[&str]) -> Canaries {
        Canaries {
            targets: names.iter().map(|n| Canary::Site((*n).into())).collect(),
            interval: Duration::from_secs(10),
            probes: Vec::new(),
        }
    }

    #[test]
    fn offline_once_every_canary_fails_and_online_when_one_answers() {
        let mut r = Reach::new(&canaries(&["a", "b"]));
        r.answer("a", Err("connect: refused".into()));
        assert_eq!(r.evaluate(t(0)), None, "b has not answered yet");
        r.answer("b", Err("dns: no such host".into()));
        assert_eq!(
            r.evaluate(t(1)),
            Some(Change::Offline {
                reason: "every canary fails: a (connect: refused), b (dns: no such host)".into()
            })
        );
        assert_eq!(r.hold_reason(), Some("sitewatch offline"));
        r.answer("a", Err("connect: refused".into()));
        assert_eq!(r.evaluate(t(2)), None, "said once");
        r.answer("unknown", Ok(()));
        assert_eq!(r.evaluate(t(3)), None, "not a canary");
        r.answer("b", Ok(()));
        assert_eq!(
            r.evaluate(t(4)),
            Some(Change::Online {
                reason: "canary b answers".into(),
                since: t(1)
            })
        );
        assert_eq!(r.hold_reason(), None);
    }

    #[test]
    fn without_canaries_most_sites_failing_at_the_network_level_is_a_possible_local_outage() {
        let mut r = Reach::new(&Canaries::default());
        // Eight sites, all failing: too few to say.
        for _ in 0..8 {
            r.site_changed(None, Some(true));
        }
        assert_eq!(r.evaluate(t(0)), None);
        r.site_changed(None, Some(false));
        r.site_changed(None, Some(false));
        // 8 of 10 = 80%.
        assert!(matches!(r.evaluate(t(1)), Some(Change::Offline { reason })
            if reason == "possible local outage: 8 of 10 sites fail at DNS or connect"));
        // 5 of 10 = 50%: still offline (it leaves below 50%).
        for _ in 0..3 {
            r.site_changed(Some(true), Some(false));
        }
        assert_eq!(r.evaluate(t(2)), None);
        r.site_changed(Some(true), Some(false));
        assert!(matches!(r.evaluate(t(3)), Some(Change::Online { since, .. }) if since == t(1)));
    }

    #[test]
    fn a_reload_keeps_the_answers_of_canaries_still_listed() {
        let mut r = Reach::new(&canaries(&["a", "b"]));
        r.answer("a", Err("x".into()));
        r.answer("b", Err("y".into()));
        r.configure(&canaries(&["a"]));
        assert!(matches!(r.evaluate(t(0)), Some(Change::Offline { reason })
            if reason == "every canary fails: a (x)"));
    }
}
