//! Who may do what: the server's tokens and their scopes, what is public, and the access log.
//!
//! - No token configured: reads are answered when addressed (`Host`) to this server's own names
//!   (DNS rebinding), and writes are refused: a write API without a credential would be open
//!   to every local process and to any web page's form posting to loopback.
//! - Tokens configured (`server.tokens`, `auth_token_env`): every request needs one, in
//!   `Authorization: Bearer` or `?access_token=` (a browser's EventSource); a `read` token may
//!   GET, a `write` token may also change things. What `server.public` opens (the status page,
//!   badges, the feed) is readable without one.
//! - Every request is logged (target `sitewatch::access`) with the token's name, never its
//!   value: writes and refusals at info, reads at debug.

use crate::config::{ApiToken, Public, Scope, ServerConfig};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The tokens and public parts in force; replaced whole on a reload.
#[derive(Debug, Default)]
pub struct Access {
    tokens: Vec<ApiToken>,
    public: Public,
}

/// Who made a request: the token's name and scope, or no one (a public or tokenless read). Put
/// in the request's extensions for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) token: Option<String>,
    pub(crate) scope: Scope,
}

impl Caller {
    /// How the log names the caller.
    pub(crate) fn name(&self) -> &str {
        self.token.as_deref().unwrap_or("-")
    }
}

/// A part of the server `server.public` can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Page,
    Badges,
    Feed,
    Other,
}

fn part_of(path: &str) -> Part {
    if path == "/" {
        Part::Page
    } else if path.starts_with("/badge/") {
        Part::Badges
    } else if path == "/feed.atom" {
        Part::Feed
    } else {
        Part::Other
    }
}

/// What a request is, for the decision.
pub(crate) struct Asked<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    /// The bearer token or `access_token` given, if any.
    pub(crate) given: Option<&'a str>,
}

/// Why a request is refused: its status and message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) message: &'static str,
    /// The name of the token given, when it was one (a read token on a change).
    pub(crate) token: Option<String>,
}

impl Refused {
    pub(crate) fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Whether a method changes something (the write API).
pub(crate) fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Access {
    pub fn new(cfg: &ServerConfig) -> Self {
        Self {
            tokens: cfg.tokens.clone(),
            public: cfg.public,
        }
    }

    /// Whether any token is set (then the `Host` check gives way to the tokens).
    pub(crate) fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Whether a request opened with a token of the old set may go on under this one (its
    /// token is still here with the same scope); event streams whose token went are closed.
    pub(crate) fn same_tokens(&self, other: &Self) -> bool {
        self.tokens.len() == other.tokens.len()
            && self.tokens.iter().zip(&other.tokens).all(|(a, b)| {
                a.name == b.name && a.scope == b.scope && a.value.expose() == b.value.expose()
            })
    }

    /// Who may make this request, or why not.
    pub(crate) fn decide(&self, asked: &Asked<'_>) -> Result<Caller, Refused> {
        let write = is_write(asked.method);
        let token = asked.given.and_then(|g| {
            // Every token is compared, so the time taken says nothing of which matched.
            self.tokens
                .iter()
                .filter(|t| constant_time_eq(g.as_bytes(), t.value.expose().as_bytes()))
                .fold(None, |found, t| found.or(Some(t)))
        });
        if let Some(t) = token {
            if write && t.scope < Scope::Write {
                return Err(Refused {
                    status: StatusCode::FORBIDDEN,
                    message: "this token may only read: changes need a token of scope write (server.tokens)",
                    token: Some(t.name.clone()),
                });
            }
            return Ok(Caller {
                token: Some(t.name.clone()),
                scope: t.scope,
            });
        }
        if write {
            return Err(if self.has_tokens() {
                Refused {
                    status: StatusCode::UNAUTHORIZED,
                    message: "changes need a token of scope write: Authorization: Bearer <token>",
                    token: None,
                }
            } else {
                Refused {
                    status: StatusCode::FORBIDDEN,
                    message: "changes need a token of scope write, and this server has none: set server.tokens",
                    token: None,
                }
            });
        }
        let public = match part_of(asked.path) {
            Part::Page => self.public.page,
            Part::Badges => self.public.badges,
            Part::Feed => self.public.feed,
            Part::Other => false,
        };
        if !self.has_tokens() || public {
            return Ok(Caller {
                token: None,
                scope: Scope::Read,
            });
        }
        Err(Refused {
            status: StatusCode::UNAUTHORIZED,
            message: "this server needs a token: Authorization: Bearer <token>",
            token: None,
        })
    }
}

/// Logs one request: who (the token's name), what, and the answer's status. The query is left
/// out (it may carry `access_token`).
pub(crate) fn log(method: &Method, path: &str, caller: &str, status: StatusCode) {
    let path = crate::config::printable(path);
    if is_write(method) || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        tracing::info!(target: "sitewatch::access", token = caller, %method, path = %path, status = status.as_u16(), "request");
    } else {
        tracing::debug!(target: "sitewatch::access", token = caller, %method, path = %path, status = status.as_u16(), "request");
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER`), and spaces may follow it.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Compares in a time that depends on neither where the inputs differ nor their lengths: both
/// are hashed (SHA-256) and the digests compared without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn token(name: &str, scope: Scope, value: &str) -> ApiToken {
        ApiToken {
            name: name.into(),
            scope,
            value: Secret::new(value.into()),
        }
    }

    fn access(tokens: Vec<ApiToken>, public: Public) -> Access {
        Access { tokens, public }
    }

    fn ask<'a>(method: &'a Method, path: &'a str, given: Option<&'a str>) -> Asked<'a> {
        Asked {
            method,
            path,
            given,
        }
    }

    #[test]
    fn scopes_decide_reads_and_writes() {
        let a = access(
            vec![
                token("grafana", Scope::Read, "r-secret"),
                token("ci", Scope::Write, "w-secret"),
            ],
            Public {
                page: true,
                ..Public::default()
            },
        );
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        let read = a
            .decide(&ask(&get, "/api/v1/sites", Some("r-secret")))
            .unwrap();
        assert_eq!(read.name(), "grafana");
        assert_eq!(
            a.decide(&ask(&post, "/api/v1/sites", Some("r-secret")))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let write = a
            .decide(&ask(&delete, "/api/v1/sites/x", Some("w-secret")))
            .unwrap();
        assert_eq!((write.name(), write.scope), ("ci", Scope::Write));
        // Write implies read.
        assert!(a.decide(&ask(&get, "/metrics", Some("w-secret"))).is_ok());
        // No token, a wrong one: 401; the public page opens without one, not the API.
        for given in [None, Some("nope"), Some("r-secre")] {
            assert_eq!(
                a.decide(&ask(&get, "/api/v1/sites", given))
                    .unwrap_err()
                    .status,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(a.decide(&ask(&get, "/", None)).unwrap().name(), "-");
        assert!(a.decide(&ask(&get, "/badge/x/status.svg", None)).is_err());
        assert!(a.decide(&ask(&get, "/feed.atom", None)).is_err());
        // A public page is not a public write.
        assert_eq!(
            a.decide(&ask(&post, "/", None)).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn without_tokens_reads_pass_and_writes_are_refused() {
        let a = access(Vec::new(), Public::default());
        assert!(a.decide(&ask(&Method::GET, "/api/v1/sites", None)).is_ok());
        let refused = a
            .decide(&ask(&Method::PUT, "/api/v1/sites/x", Some("anything")))
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("server.tokens"));
    }

    #[test]
    fn bearer_values_are_parsed_leniently() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn tokens_compare_by_content_whatever_their_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
