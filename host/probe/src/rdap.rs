//! Domain registration expiry from RDAP (RFC 9083), for the sites with `domain_expiry`: the
//! registrable domain of the site's host (by the Public Suffix List: `www.shop.example.co.uk`
//! is `example.co.uk`), its registry's RDAP server from IANA's bootstrap file (RFC 9224; or
//! one configured server for every domain), and the `expiration` event of the domain's record.
//! A lookup runs beside the probes, never in their way: a probe reads what the last lookup
//! found, and starts one when none was made for the domain today (at most once a day per
//! domain; an hour after a failure, the last answer kept meanwhile). The bootstrap file is read
//! once a day too.

use crate::config::RdapConfig;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// How long an answer is used before the domain is looked up again.
const FRESH: Duration = Duration::from_secs(24 * 3600);
/// How long after a failed lookup the next is tried.
const RETRY: Duration = Duration::from_secs(3600);
/// The most of an RDAP answer read.
const ANSWER_MAX: usize = 1 << 20;

/// The lookups and what they found.
pub struct Rdap {
    client: reqwest::Client,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    config: Option<RdapConfig>,
    domains: HashMap<String, Entry>,
    /// The bootstrap's servers by top-level domain, and when they were read.
    servers: Option<(Instant, Arc<HashMap<String, Url>>)>,
}

struct Entry {
    expiry: Option<DateTime<Utc>>,
    /// When to look it up again.
    next: Instant,
    asking: bool,
}

impl Rdap {
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where lookups go (at start and at each reload); a change forgets what was found.
    pub fn configure(&self, config: &RdapConfig) {
        let mut s = self.lock();
        if s.config.as_ref() != Some(config) {
            *s = State {
                config: Some(config.clone()),
                ..State::default()
            };
        }
    }

    /// The registration expiry of `host`'s registrable domain as last looked up; starts a
    /// lookup in the background when it is due. `None` for an address, or before the first
    /// answer.
    pub fn expiry(self: &Arc<Self>, host: &str) -> Option<DateTime<Utc>> {
        let domain = registrable(host)?;
        let mut s = self.lock();
        let now = Instant::now();
        let entry = s.domains.entry(domain.clone()).or_insert(Entry {
            expiry: None,
            next: now,
            asking: false,
        });
        if entry.next <= now && !entry.asking {
            entry.asking = true;
            let rdap = Arc::clone(self);
            tokio::spawn(async move {
                let found = rdap.lookup(&domain).await;
                let mut s = rdap.lock();
                if let Some(e) = s.domains.get_mut(&domain) {
                    e.asking = false;
                    match found {
                        Ok(expiry) => {
                            e.expiry = expiry;
                            e.next = Instant::now() + FRESH;
                        }
                        Err(why) => {
                            tracing::warn!("RDAP lookup of {domain} failed: {why}");
                            e.next = Instant::now() + RETRY;
                        }
                    }
                }
            });
        }
        entry.expiry
    }

    async fn lookup(&self, domain: &str) -> Result<Option<DateTime<Utc>>, String> {
        let Some(config) = self.lock().config.clone() else {
            return Err("no RDAP settings".into());
        };
        let base = match &config.base {
            Some(b) => b.clone(),
            None => {
                let tld = domain.rsplit('.').next().unwrap_or(domain);
                self.servers(&config)
                    .await?
                    .get(tld)
                    .cloned()
                    .ok_or_else(|| format!("the RDAP bootstrap names no server for .{tld}"))?
            }
        };
        let url = base
            .join(&format!("domain/{domain}"))
            .map_err(|e| e.to_string())?;
        let (status, body) = self.get(url).await?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(format!("the RDAP server answered {status}"));
        }
        Ok(expiration(&body))
    }

    /// The bootstrap's servers by top-level domain (read at most once a day).
    async fn servers(&self, config: &RdapConfig) -> Result<Arc<HashMap<String, Url>>, String> {
        if let Some((read, servers)) = &self.lock().servers
            && read.elapsed() < FRESH
        {
            return Ok(Arc::clone(servers));
        }
        let (status, body) = self.get(config.bootstrap.clone()).await?;
        if !(200..300).contains(&status) {
            return Err(format!("the RDAP bootstrap answered {status}"));
        }
        let servers = Arc::new(bootstrap(&body)?);
        self.lock().servers = Some((Instant::now(), Arc::clone(&servers)));
        Ok(servers)
    }

    async fn get(&self, url: Url) -> Result<(u16, serde_json::Value), String> {
        let response = self
            .client
            .get(url)
            .header("Accept", "application/rdap+json, application/json")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| crate::error_chain(&e.without_url()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::error_chain(&e.without_url()))?;
        if bytes.len() > ANSWER_MAX {
            return Err("the RDAP answer is too large".into());
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }
}

/// The registrable domain of `host`, lower case; `None` for an address or a bare suffix.
pub(crate) fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.trim_matches(['[', ']']).contains(':') {
        return None;
    }
    psl::domain_str(&host).map(str::to_owned)
}

/// RFC 9224's `services`: `[[["com", "net"], ["https://rdap.example/"]], ...]`, the https URL
/// of each preferred.
fn bootstrap(body: &serde_json::Value) -> Result<HashMap<String, Url>, String> {
    let services = body
        .get("services")
        .and_then(|s| s.as_array())
        .ok_or("the RDAP bootstrap has no services")?;
    let mut out = HashMap::new();
    for service in services {
        let (Some(tlds), Some(urls)) = (
            service.get(0).and_then(|t| t.as_array()),
            service.get(1).and_then(|u| u.as_array()),
        ) else {
            continue;
        };
        let mut urls: Vec<Url> = urls
            .iter()
            .filter_map(|u| Url::parse(u.as_str()?).ok())
            .collect();
        urls.sort_by_key(|u| u.scheme() != "https");
        let Some(mut url) = urls.into_iter().next() else {
            continue;
        };
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        for tld in tlds.iter().filter_map(|t| t.as_str()) {
            out.insert(tld.to_ascii_lowercase(), url.clone());
        }
    }
    Ok(out)
}

/// The `expiration` event's date of a domain record.
fn expiration(body: &serde_json::Value) -> Option<DateTime<Utc>> {
    body.get("events")?
        .as_array()?
        .iter()
        .find(|e| e.get("eventAction").and_then(|a| a.as_str()) == Some("expiration"))?
        .get("eventDate")?
        .as_str()
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_registrable_domain_the_server_and_the_expiry_are_read_as_rdap_says() {
        assert_eq!(
            registrable("www.shop.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable("API.Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(registrable("192.0.2.1"), None);
        assert_eq!(registrable("::1"), None);
        let servers = bootstrap(&json!({"services": [
            [["com", "net"], ["http://rdap.example/com/", "https://rdap.example/com/v1"]],
            [["test"], ["http://127.0.0.1:9/rdap"]]
        ]}))
        .unwrap();
        assert_eq!(servers["net"].as_str(), "https://rdap.example/com/v1/");
        assert_eq!(servers["test"].as_str(), "http://127.0.0.1:9/rdap/");
        let record = json!({"objectClassName": "domain", "events": [
            {"eventAction": "registration", "eventDate": "2001-01-01T00:00:00Z"},
            {"eventAction": "expiration", "eventDate": "2027-03-04T05:06:07Z"}
        ]});
        assert_eq!(
            expiration(&record).map(|d| d.to_rfc3339()),
            Some("2027-03-04T05:06:07+00:00".into())
        );
        assert_eq!(expiration(&json!({"events": []})), None);
    }
}
