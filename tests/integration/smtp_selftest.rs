//! The real SMTP fixture (aiosmtpd) with a tiny hand-written SMTP client: the envelope, the
//! unfolded and decoded headers and the decoded text/plain part of a multipart/alternative
//! message come back as sent; with AUTH, only the right login is let through.

use crate::support::smtp::Smtp;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

struct Client {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn connect(port: u16) -> Self {
        let (r, w) = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
            .into_split();
        let mut c = Self {
            read: BufReader::new(r),
            write: w,
        };
        c.expect(220).await;
        c
    }

    /// Reads one (possibly multi-line) reply; returns its code and text.
    async fn reply(&mut self) -> (u16, String) {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.read.read_line(&mut line).await.unwrap();
            assert!(
                line.len() >= 4,
                "short SMTP reply line {line:?} after {all:?}"
            );
            all.push_str(&line);
            if line.as_bytes()[3] == b' ' {
                return (line[..3].parse().unwrap(), all);
            }
        }
    }

    async fn expect(&mut self, code: u16) -> String {
        let (got, text) = self.reply().await;
        assert_eq!(got, code, "SMTP reply: {text}");
        text
    }

    /// Sends `line` and returns the reply's code.
    async fn command(&mut self, line: &str) -> u16 {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await.0
    }

    /// DATA with `message` (CRLF lines, dot-stuffed here).
    async fn data(&mut self, message: &str) -> u16 {
        assert_eq!(self.command("DATA").await, 354);
        let mut wire = String::new();
        for line in message
            .strip_suffix("\r\n")
            .unwrap_or(message)
            .split("\r\n")
        {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.write.write_all(wire.as_bytes()).await.unwrap();
        self.reply().await.0
    }
}

/// A multipart/alternative message: a quoted-printable text part with a soft line break and
/// UTF-8, a base64 HTML part, an encoded-word Subject and a folded header.
const MESSAGE: &str = "From: sitewatch <alerts@sitewatch.test>\r\n\
To: ops@example.test, oncall@example.test\r\n\
Subject: =?UTF-8?B?c2l0ZXdhdGNoOiDinJcgc2hvcCBpcyBkb3du?=\r\n\
X-Folded: first part\r\n\
\x20second part\r\n\
Date: Wed, 01 May 2024 12:00:00 +0000\r\n\
Message-ID: <1@sitewatch.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
shop is down =E2=9C=97: status 500, a very long line that is wrapped with a so=\r\n\
ft break\r\n\
.a line starting with a dot\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+c2hvcCBpcyBkb3duPC9wPg==\r\n\
--b1--\r\n";

#[tokio::test]
async fn smtp_fixture_captures_envelope_headers_and_decoded_body() {
    let Some(smtp) = Smtp::start().await else {
        return;
    };
    assert_eq!(smtp.url(), format!("smtp://127.0.0.1:{}", smtp.port));
    let mut c = Client::connect(smtp.port).await;
    assert_eq!(c.command("EHLO client.test").await, 250);
    assert_eq!(c.command("MAIL FROM:<alerts@sitewatch.test>").await, 250);
    assert_eq!(c.command("RCPT TO:<ops@example.test>").await, 250);
    assert_eq!(c.command("RCPT TO:<oncall@example.test>").await, 250);
    assert_eq!(c.data(MESSAGE).await, 250);
    assert_eq!(c.command("QUIT").await, 221);

    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.mail_from, "alerts@sitewatch.test");
    assert_eq!(m.rcpt_to, ["ops@example.test", "oncall@example.test"]);
    assert_eq!(m.login, None);
    assert_eq!(
        m.header("x-folded").as_deref(),
        Some("first part second part")
    );
    assert_eq!(
        m.header("message-id").as_deref(),
        Some("<1@sitewatch.test>")
    );
    assert_eq!(m.header_all("Date").len(), 1);
    assert_eq!(
        m.header_decoded("Subject").as_deref(),
        Some("sitewatch: ✗ shop is down")
    );
    // The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1).
    assert_eq!(
        m.body(),
        "shop is down ✗: status 500, a very long line that is wrapped with a soft break\n\
         .a line starting with a dot"
    );
    assert_eq!(m.html().as_deref(), Some("<p>shop is down</p>"));
}

#[tokio::test]
async fn smtp_fixture_with_auth_takes_only_the_right_login() {
    let Some(smtp) = Smtp::start_with_auth("alice", "s3cret").await else {
        return;
    };
    let plain = |user: &str, pass: &str| {
        // base64 of "\0user\0pass", by hand (no base64 crate among the dev-dependencies).
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let raw = format!("\0{user}\0{pass}").into_bytes();
        let mut out = String::new();
        for chunk in raw.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let message = "Subject: hi\r\n\r\nhello\r\n";

    let mut c = Client::connect(smtp.port).await;
    let ehlo = {
        c.write.write_all(b"EHLO client.test\r\n").await.unwrap();
        c.expect(250).await
    };
    assert!(ehlo.contains("AUTH"), "no AUTH offered: {ehlo}");
    assert_eq!(
        c.command("MAIL FROM:<a@sitewatch.test>").await,
        530,
        "MAIL without AUTH"
    );
    assert_eq!(
        c.command(&format!("AUTH PLAIN {}", plain("alice", "wrong")))
            .await,
        535
    );
    assert_eq!(
        c.command(&format!("AUTH PLAIN {}", plain("alice", "s3cret")))
            .await,
        235
    );
    assert_eq!(c.command("MAIL FROM:<a@sitewatch.test>").await, 250);
    assert_eq!(c.command("RCPT TO:<b@example.test>").await, 250);
    assert_eq!(c.data(message).await, 250);
    assert_eq!(c.command("QUIT").await, 221);

    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].login.as_deref(), Some("alice"));
    assert_eq!(mails[0].body(), "hello\n");
    let logins = smtp.logins();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(!logins[0].ok && logins[1].ok, "{logins:?}");
    assert_eq!(logins[1].user, "alice");
    assert_eq!(logins[1].mechanism, "PLAIN");
}
