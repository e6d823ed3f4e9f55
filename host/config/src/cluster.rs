//! The `cluster` section: this node's place in a sitewatch cluster on NATS JetStream.

use super::FieldError;
use super::raw::RawCluster;
use super::values;
use std::time::Duration;

pub(crate) const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_BUFFER: u64 = 1_000_000;
pub(crate) const DEFAULT_ALONE_AFTER: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A node's cluster settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub nats: Vec<String>,
    /// This node's location (a subject token: letters, digits, `-` and `_`).
    pub location: String,
    /// This node's name, unique in the cluster (same alphabet).
    pub node: String,
    /// Locations that must see a site down for it to be down.
    pub confirm: usize,
    pub heartbeat_ttl: Duration,
    pub lease_ttl: Duration,
    pub replicas: usize,
    /// Stored measurements that may wait for the stream; beyond, the oldest are skipped.
    pub buffer: usize,
    pub stream_max_age: Duration,
    /// How long NATS must be unreachable before this node alerts on its own probes.
    pub alone_after: Duration,
    /// Prefix of subjects (`<prefix>.m.…`), the stream and the buckets.
    pub prefix: String,
    /// How this node proves who it is to NATS.
    pub auth: NatsAuth,
    /// TLS to NATS, when configured.
    pub tls: Option<NatsTls>,
}

/// How a node authenticates to NATS. Secrets come from the environment; a `.creds` file holds
/// its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NatsAuth {
    #[default]
    None,
    Token(super::secret::Secret<String>),
    UserPassword {
        user: String,
        password: super::secret::Secret<String>,
    },
    /// An NKey seed (`SU...`).
    NKey(super::secret::Secret<String>),
    /// A `.creds` file: a user JWT and the NKey seed that signs with it.
    Credentials(std::path::PathBuf),
}

impl NatsAuth {
    /// What it is, for `check-config --print` (no secret).
    pub fn describe(&self) -> String {
        match self {
            NatsAuth::None => "none".into(),
            NatsAuth::Token(_) => "token".into(),
            NatsAuth::UserPassword { user, .. } => format!("user {user}"),
            NatsAuth::NKey(_) => "nkey".into(),
            NatsAuth::Credentials(p) => format!("credentials {}", p.display()),
        }
    }
}

/// TLS settings of the connection to NATS (files resolved against the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct NatsTls {
    pub ca: Option<std::path::PathBuf>,
    /// The client certificate and its key, for servers that verify clients.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl ClusterConfig {
    /// The stream of measurements.
    pub fn stream(&self) -> String {
        format!("{}_measurements", self.prefix.to_uppercase())
    }

    /// The subject of one measurement: per location and site.
    pub fn subject(&self, location: &str, site_token: &str) -> String {
        format!("{}.m.{location}.{site_token}", self.prefix)
    }

    /// The subjects of every measurement.
    pub fn subjects(&self) -> String {
        format!("{}.m.>", self.prefix)
    }

    /// A key-value bucket's name.
    pub fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }
}

/// A name usable as a subject token and a KV key: 1 to 64 of `A-Z a-z 0-9 - _`.
pub(super) fn token(field: &str, what: &str, value: &str) -> Result<String, FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err((
            field,
            format!("\"{value}\" is not a {what}: 1 to 64 letters, digits, '-' or '_'"),
        )
            .into())
    }
}

/// Checks the section. `location` is the top-level one (or the host name), `overrides` what the
/// command line says (`--location`, `--node`).
pub(super) fn resolve(
    raw: &RawCluster,
    location: &str,
    overrides: &Overrides,
    base: &std::path::Path,
    env: super::secret::Env<'_>,
) -> Result<ClusterConfig, FieldError> {
    if raw.nats.is_empty() {
        return Err((
            "nats",
            "list at least one NATS server URL, e.g. \"nats://127.0.0.1:4222\"",
        )
            .into());
    }
    for (i, url) in raw.nats.iter().enumerate() {
        let parsed = url::Url::parse(url).ok().filter(|u| {
            matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if parsed.is_none() {
            return Err((
                format!("nats[{i}]"),
                format!("\"{url}\" is not a NATS URL such as \"nats://127.0.0.1:4222\""),
            )
                .into());
        }
    }
    let location = match (&overrides.location, &raw.location) {
        (Some(l), _) => token("location (--location)", "location", l)?,
        (None, Some(l)) => token("location", "location", l)?,
        (None, None) => token("location", "location (set cluster.location)", location)?,
    };
    let node = match (&overrides.node, &raw.node) {
        (Some(n), _) => token("node (--node)", "node name", n)?,
        (None, Some(n)) => token("node", "node name", n)?,
        (None, None) => {
            let host: String = super::default_location()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(40)
                .collect();
            format!("{host}-{location}")
        }
    };
    let confirm = match raw.confirm {
        Some(0) => return Err(("confirm", "must be at least 1").into()),
        Some(n) => n as usize,
        None => 1,
    };
    let ttl = |field: &str, v: &Option<super::raw::RawDuration>, default: Duration| {
        let d = match v {
            Some(v) => values::positive_duration(v).map_err(|m| FieldError::from((field, m)))?,
            None => default,
        };
        if d < Duration::from_secs(1) {
            return Err(FieldError::from((field, "must be at least 1s")));
        }
        Ok(d)
    };
    let heartbeat_ttl = ttl("heartbeat_ttl", &raw.heartbeat_ttl, DEFAULT_HEARTBEAT_TTL)?;
    let lease_ttl = ttl("lease_ttl", &raw.lease_ttl, DEFAULT_LEASE_TTL)?;
    let stream_max_age = ttl(
        "stream_max_age",
        &raw.stream_max_age,
        DEFAULT_STREAM_MAX_AGE,
    )?;
    let alone_after = ttl("alone_after", &raw.alone_after, DEFAULT_ALONE_AFTER)?;
    let replicas = match raw.replicas {
        Some(n) if !(1..=5).contains(&n) => {
            return Err(("replicas", format!("must be 1 to 5, got {n}")).into());
        }
        Some(n) => n as usize,
        None => raw.nats.len().clamp(1, 3),
    };
    let buffer = match raw.buffer {
        Some(0) => return Err(("buffer", "must be at least 1").into()),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => DEFAULT_BUFFER as usize,
    };
    let prefix = match &raw.prefix {
        Some(p) => token("prefix", "prefix", p)?,
        None => "sitewatch".into(),
    };
    let (auth, tls) = auth(raw, base, env)?;
    Ok(ClusterConfig {
        auth,
        tls,
        nats: raw.nats.clone(),
        location,
        node,
        confirm,
        heartbeat_ttl,
        lease_ttl,
        replicas,
        buffer,
        stream_max_age,
        alone_after,
        prefix,
    })
}

/// The authentication and TLS settings: at most one way to authenticate; secrets from the
/// environment; files resolved against the config file.
fn auth(
    raw: &RawCluster,
    base: &std::path::Path,
    env: super::secret::Env<'_>,
) -> Result<(NatsAuth, Option<NatsTls>), FieldError> {
    use super::secret::{Secret, env_secret};
    let given: Vec<&str> = [
        ("token_env", raw.token_env.is_some()),
        ("user", raw.user.is_some()),
        ("nkey_seed_env", raw.nkey_seed_env.is_some()),
        ("credentials", raw.credentials.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    if given.len() > 1 {
        return Err((
            given[1],
            format!(
                "give one way to authenticate to NATS, not {}",
                given.join(" and ")
            ),
        )
            .into());
    }
    if raw.password_env.is_some() && raw.user.is_none() {
        return Err(("password_env", "goes with user").into());
    }
    let auth = if let Some(var) = &raw.token_env {
        NatsAuth::Token(Secret::new(env_secret(env, "token_env", var)?))
    } else if let Some(user) = &raw.user {
        let Some(var) = &raw.password_env else {
            return Err((
                "password_env",
                "the environment variable holding the password of user is missing",
            )
                .into());
        };
        NatsAuth::UserPassword {
            user: user.clone(),
            password: Secret::new(env_secret(env, "password_env", var)?),
        }
    } else if let Some(var) = &raw.nkey_seed_env {
        let seed = env_secret(env, "nkey_seed_env", var)?;
        if !seed.starts_with("SU") {
            return Err((
                "nkey_seed_env",
                format!("{var} does not hold a user NKey seed (one starts with SU)"),
            )
                .into());
        }
        NatsAuth::NKey(Secret::new(seed))
    } else if let Some(file) = &raw.credentials {
        NatsAuth::Credentials(base.join(file))
    } else {
        NatsAuth::None
    };
    let file = |f: &Option<String>| f.as_ref().map(|f| base.join(f));
    let client = match (file(&raw.tls_cert), file(&raw.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err(("tls_key", "tls_cert needs its key (tls_key)").into()),
        (None, Some(_)) => return Err(("tls_cert", "tls_key goes with tls_cert").into()),
    };
    let tls = (raw.tls_ca.is_some() || client.is_some()).then(|| NatsTls {
        ca: file(&raw.tls_ca),
        client,
    });
    for (field, path) in [("credentials", file(&raw.credentials))]
        .into_iter()
        .chain([
            ("tls_ca", file(&raw.tls_ca)),
            ("tls_cert", file(&raw.tls_cert)),
            ("tls_key", file(&raw.tls_key)),
        ])
    {
        if let Some(p) = path
            && !p.is_file()
        {
            return Err((field, format!("{} does not exist", p.display())).into());
        }
    }
    Ok((auth, tls))
}

/// What the command line says about this node (`sitewatch run --location --node
/// --source-address`): an argument of every read of the config ([`super::Config::load_with`]),
/// a reload's too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub location: Option<String>,
    pub node: Option<String>,
    pub source_address: Option<std::net::IpAddr>,
}
