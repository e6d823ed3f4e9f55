//! Email over SMTP: one plain-text message per group, with a Message-ID derived from the
//! notifications (a resent mail is recognisably the same), STARTTLS by default, TLS from the
//! first byte for `smtps://`, and credentials from the environment.

use crate::notice::Notice;
use crate::request::{EmailMessage, Outgoing, Request};
use crate::send::Outcome;
use crate::text::{Digest, idempotency_key};
use crate::{About, Endpoint, FieldError, Fields, HIDDEN, Secret, Secrets, UrlRule};
use serde_json::{Value, json};
use std::time::Duration;
use url::Url;

pub(crate) const ABOUT: About = About {
    name: "email",
    url: UrlRule::None,
    fields: &["smtp", "tls", "from", "to", "username_env", "password_env"],
    min_interval: Duration::ZERO,
};

/// How mail is handed to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (the default; port 587).
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// No encryption (a relay on the same host).
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "starttls",
            Self::Implicit => "tls",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<Secret<String>>,
    pub password: Option<Secret<String>>,
}

impl Email {
    pub(crate) fn resolve(f: &Fields, secrets: &mut dyn Secrets) -> Result<Self, FieldError> {
        let text = f.smtp.as_deref().ok_or_else(|| {
            FieldError::from((
                "smtp",
                "an email notifier needs smtp, e.g. \"smtp://mail.example.com:587\"",
            ))
        })?;
        let url = Url::parse(text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "smtp" | "smtps") && u.has_host())
            .ok_or_else(|| {
                FieldError::from((
                    "smtp",
                    format!("\"{text}\" is not an smtp:// or smtps:// URL"),
                ))
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err((
                "smtp",
                "must not hold a user or password: name their variables in username_env and password_env",
            )
                .into());
        }
        let implicit = url.scheme() == "smtps";
        let tls = match f.tls.as_deref() {
            None if implicit => SmtpTls::Implicit,
            None => SmtpTls::StartTls,
            Some("starttls") if !implicit => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Implicit,
            Some("none") if !implicit => SmtpTls::None,
            Some("starttls" | "none") => {
                return Err((
                    "tls",
                    "an smtps:// server speaks TLS from the start: leave tls out",
                )
                    .into());
            }
            Some(_) => return Err(("tls", "must be starttls, tls or none").into()),
        };
        let port = url
            .port()
            .unwrap_or(if tls == SmtpTls::Implicit { 465 } else { 587 });
        let mailbox = |field: &str, text: &str| -> Result<String, FieldError> {
            text.parse::<lettre::message::Mailbox>()
                .map(|_| text.to_owned())
                .map_err(|e| (field, format!("\"{text}\" is not an email address ({e})")).into())
        };
        let from = mailbox(
            "from",
            f.from
                .as_deref()
                .ok_or_else(|| FieldError::from(("from", "an email notifier needs from")))?,
        )?;
        let to = match &f.to {
            Some(to) if !to.is_empty() => to
                .iter()
                .enumerate()
                .map(|(j, t)| mailbox(&format!("to[{j}]"), t))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(("to", "an email notifier needs at least one address in to").into()),
        };
        let username = match &f.username_env {
            Some(var) => Some(Secret::new(secrets.read("username_env", var)?)),
            None => None,
        };
        let password = match &f.password_env {
            Some(var) => Some(Secret::new(secrets.read("password_env", var)?)),
            None => None,
        };
        if username.is_some() != password.is_some() {
            return Err(("password_env", "username_env and password_env go together").into());
        }
        Ok(Self {
            host: url.host_str().unwrap_or_default().to_owned(),
            port,
            tls,
            from,
            to,
            username,
            password,
        })
    }

    pub(crate) fn requests(&self, to: Endpoint<'_>, group: &[Notice]) -> Vec<Outgoing> {
        let d = Digest::of(group, 100_000);
        let domain = self
            .from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>'))
            .unwrap_or("sitewatch");
        Outgoing::whole(
            group.len(),
            Request::Email(EmailMessage {
                subject: format!("[sitewatch] {}", d.title),
                body: format!(
                    "{}\n\n{}\n\n-- \nsitewatch, notifier {}\n",
                    d.title,
                    d.text(),
                    to.name
                ),
                message_id: format!("<{}@{domain}>", idempotency_key(group)),
            }),
        )
    }

    pub(crate) fn printed(&self) -> Value {
        json!({
            "smtp": format!("{}:{}", self.host, self.port),
            "tls": self.tls.as_str(),
            "from": self.from,
            "to": self.to,
            "username": self.username.as_ref().map(|_| HIDDEN),
            "password": self.password.as_ref().map(|_| HIDDEN),
        })
    }

    pub(crate) async fn send(&self, m: &EmailMessage, timeout: Duration) -> Outcome {
        let target = self;
        use lettre::message::{Mailbox, header::ContentType};
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let mailbox = |s: &str| s.parse::<Mailbox>();
        let mut builder = Message::builder()
            .subject(m.subject.clone())
            .message_id(Some(m.message_id.clone()))
            .header(ContentType::TEXT_PLAIN);
        match mailbox(&target.from) {
            Ok(f) => builder = builder.from(f),
            Err(e) => return Outcome::Failed(format!("from: {e}")),
        }
        for to in &target.to {
            match mailbox(to) {
                Ok(t) => builder = builder.to(t),
                Err(e) => return Outcome::Failed(format!("to: {e}")),
            }
        }
        let message = match builder.body(m.body.clone()) {
            Ok(message) => message,
            Err(e) => return Outcome::Failed(format!("cannot build the message: {e}")),
        };
        let transport = match target.tls {
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&target.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &target.host,
            )),
        };
        let mut transport = match transport {
            Ok(t) => t.port(target.port).timeout(Some(timeout)),
            Err(e) => return Outcome::Failed(format!("cannot use {}: {e}", target.host)),
        };
        if let (Some(user), Some(pass)) = (&target.username, &target.password) {
            transport =
                transport.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.expose().clone(),
                    pass.expose().clone(),
                ));
        }
        match transport.build().send(message).await {
            Ok(reply) => Outcome::Delivered(format!(
                "{} {}",
                reply.code(),
                reply.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) if e.is_permanent() => Outcome::Failed(crate::error_chain(&e)),
            // The server and the config do not fit (no AUTH mechanism the credentials can use, no
            // STARTTLS, no encryption where the config wants it): retrying cannot help.
            Err(e) if e.is_client() => Outcome::Failed(format!(
                "the SMTP server and this notifier's settings do not fit (smtp, tls, username_env, password_env): {}",
                crate::error_chain(&e)
            )),
            Err(e) => Outcome::Retry {
                after: None,
                why: crate::error_chain(&e),
            },
        }
    }
}
