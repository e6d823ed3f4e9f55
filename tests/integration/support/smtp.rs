//! A real SMTP server (Debian's `python3-aiosmtpd`, run by `smtpd.py`) on a free loopback port:
//! it accepts every message (optionally only after AUTH) and saves it with its envelope, which
//! the test reads back as `Mail`s. Stopped when dropped.
//!
//! `/usr/bin/python3` is used, not the `python3` on PATH: that may be a pyenv shim without
//! Debian's modules.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = include_str!("smtpd.py");
const REMEDY: &str = "install it with `apt-get install python3-aiosmtpd`";

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`), without the angle brackets.
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub rcpt_to: Vec<String>,
    /// The message as received (CRLF line ends, dot-stuffing removed), as UTF-8 (lossy).
    pub raw: String,
    /// The user the session authenticated as, when it did.
    pub login: Option<String>,
}

/// One AUTH attempt (only with `Smtp::start_with_auth`).
#[derive(Debug, Clone)]
pub struct Login {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub user: String,
    /// Whether the user and password were the ones the server accepts.
    pub ok: bool,
}

pub struct Smtp {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Whether `/usr/bin/python3` can import aiosmtpd; if not, the test is skipped (fails on CI).
fn available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd.controller"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        crate::support::skip("python3-aiosmtpd (aiosmtpd for /usr/bin/python3)", REMEDY);
    }
    ok
}

impl Smtp {
    /// A server that accepts every message, without AUTH. `None` (after `support::skip`) when
    /// aiosmtpd is not installed.
    pub async fn start() -> Option<Self> {
        Self::launch(None).await
    }

    /// A server that offers AUTH PLAIN and LOGIN without TLS, requires it before `MAIL`
    /// (`530` otherwise), and accepts only `user`/`password` (`535` otherwise). Every attempt is
    /// in `logins()`; each mail says who sent it in `Mail::login`.
    pub async fn start_with_auth(user: &str, password: &str) -> Option<Self> {
        Self::launch(Some((user, password))).await
    }

    async fn launch(auth: Option<(&str, &str)>) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        // The port is chosen here and bound by Python: retry if someone took it in between.
        for _attempt in 0..5 {
            let port = crate::support::closed_port();
            let log = dir.path().join(format!("smtpd-{port}.log"));
            let output = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(PYTHON);
            command
                .arg(&script)
                .arg(&out)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output);
            if let Some((user, password)) = auth {
                command.arg(user).arg(password);
            }
            let mut child = command.spawn().expect("starting aiosmtpd");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if out.join("ready").exists() {
                    return Some(Self {
                        port,
                        dir,
                        child: Some(child),
                    });
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("Address already in use") {
                        break;
                    }
                    panic!("aiosmtpd exited ({status}) before it was ready:\n{text}");
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("aiosmtpd was not ready within 20 s:\n{text}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("aiosmtpd found no free port in 5 attempts");
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        let out = self.dir.path().join("mail");
        numbered(&out, "mail-", ".json")
            .into_iter()
            .map(|meta_path| {
                let meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
                let raw = std::fs::read(meta_path.with_extension("eml")).unwrap();
                Mail {
                    mail_from: meta["mail_from"].as_str().unwrap_or("").to_owned(),
                    rcpt_to: meta["rcpt_tos"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|r| r.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                    login: meta["login"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }

    /// Every AUTH attempt so far, in order.
    pub fn logins(&self) -> Vec<Login> {
        numbered(&self.dir.path().join("mail"), "login-", ".json")
            .into_iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                Login {
                    mechanism: v["mechanism"].as_str().unwrap_or("").to_owned(),
                    user: v["user"].as_str().unwrap_or("").to_owned(),
                    ok: v["ok"].as_bool().unwrap_or(false),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived and returns all of them; on timeout panics
    /// listing what did arrive (and the server's log).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            if tokio::time::Instant::now() >= deadline {
                let listing: Vec<String> = mails
                    .iter()
                    .map(|m| {
                        format!(
                            "  from {} to {:?}: {:?}",
                            m.mail_from,
                            m.rcpt_to,
                            m.header("subject")
                        )
                    })
                    .collect();
                let logins = self.logins();
                panic!(
                    "waited {timeout:?} for {n} mail(s) on port {}, got {}:\n{}\nAUTH attempts: \
                     {logins:?}\nserver log:\n{}",
                    self.port,
                    mails.len(),
                    listing.join("\n"),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's output (every start attempt's log).
    pub fn log(&self) -> String {
        crate::support::read_logs(self.dir.path(), "smtpd-")
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}

/// The files `prefix*suffix` in `dir` (complete ones: those being written have a dot-name),
/// sorted (their numbers are zero-padded).
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// Reading a message (RFC 5322 headers, MIME parts)

impl Mail {
    /// The first header called `name` (case-insensitive), unfolded (the line breaks of a
    /// folded header removed, RFC 5322 §2.2.3), trimmed; encoded words are left as they are.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&headers(split(&self.raw).0), name)
    }

    /// Every header called `name`, unfolded (e.g. to check there is exactly one `Date`).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        headers(split(&self.raw).0)
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every header of the message, unfolded, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        headers(split(&self.raw).0)
    }

    /// `header(name)` with its RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?UTF-8?Q?...?=`)
    /// decoded, as a mail client shows it.
    pub fn header_decoded(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| decode_words(&v))
    }

    /// The plain-text body, decoded (quoted-printable or base64; UTF-8, ISO-8859-1 or ASCII),
    /// with LF line ends. In a multipart message (alternative, mixed, nested) the first
    /// `text/plain` part. Panics, showing the message, when there is no text/plain part.
    pub fn body(&self) -> String {
        find_part(&self.raw, "text/plain").unwrap_or_else(|| {
            panic!(
                "the mail has no text/plain part:\n{}",
                self.raw.chars().take(3000).collect::<String>()
            )
        })
    }

    /// The first `text/html` part, decoded like `body`, if there is one.
    pub fn html(&self) -> Option<String> {
        find_part(&self.raw, "text/html")
    }
}

/// A message or part split into its header block and its body.
fn split(raw: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = raw.find(sep) {
            return (&raw[..i], &raw[i + sep.len()..]);
        }
    }
    (raw, "")
}

/// The header block's fields, unfolded.
fn headers(head: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            fields.push((n.trim().to_owned(), v.to_owned()));
        }
    }
    fields
        .into_iter()
        .map(|(n, v)| (n, v.trim().to_owned()))
        .collect()
}

fn header_in(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A `Content-Type` value as (lower-case type/subtype, parameter lookup).
fn content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = value.split(';');
    let mime = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    (mime, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The first part of type `want` in `raw` (a message or part), decoded.
fn find_part(raw: &str, want: &str) -> Option<String> {
    let (head, body) = split(raw);
    let fields = headers(head);
    let (mime, params) =
        content_type(&header_in(&fields, "content-type").unwrap_or_else(|| "text/plain".into()));
    if mime.starts_with("multipart/") {
        let boundary = param(&params, "boundary")?;
        return multipart(body, boundary)
            .into_iter()
            .find_map(|part| find_part(&part, want));
    }
    if mime != want {
        return None;
    }
    let encoding = header_in(&fields, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => base64(body),
        _ => body.as_bytes().to_vec(),
    };
    let text = charset(&bytes, param(&params, "charset").unwrap_or("utf-8"));
    Some(text.replace("\r\n", "\n"))
}

/// The parts of a multipart body (between `--boundary` lines, up to `--boundary--`).
fn multipart(body: &str, boundary: &str) -> Vec<String> {
    let (open, close) = (format!("--{boundary}"), format!("--{boundary}--"));
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bare = line.trim_end();
        if bare == close {
            if let Some(p) = current.take() {
                parts.push(p.join("\r\n"));
            }
            break;
        }
        if bare == open {
            if let Some(p) = current.take() {
                parts.push(p.join("\r\n"));
            }
            current = Some(Vec::new());
        } else if let Some(p) = current.as_mut() {
            p.push(line);
        }
    }
    if let Some(p) = current {
        parts.push(p.join("\r\n"));
    }
    parts
}

/// Decodes quoted-printable (RFC 2045 §6.7): `=XX` bytes, `=` at a line end a soft break.
fn quoted_printable(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let lines: Vec<&str> = s.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line
            .strip_suffix('\r')
            .unwrap_or(line)
            .trim_end_matches([' ', '\t']);
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let b = line.as_bytes();
        let mut j = 0;
        while j < b.len() {
            if b[j] == b'='
                && let Some(byte) = b
                    .get(j + 1..j + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                j += 3;
                continue;
            }
            out.push(b[j]);
            j += 1;
        }
        if !soft && i + 1 < lines.len() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes base64 (standard alphabet), ignoring whitespace and stopping at padding.
fn base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn charset(bytes: &[u8], name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" => {
            bytes.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes RFC 2047 encoded words; whitespace between two encoded words is dropped.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let word = rest[start + 2..].splitn(3, '?').collect::<Vec<_>>();
        let decoded = (word.len() == 3)
            .then(|| {
                let (cs, enc, tail) = (word[0], word[1], word[2]);
                let end = tail.find("?=")?;
                let text = &tail[..end];
                let bytes = match enc {
                    "B" | "b" => base64(text),
                    "Q" | "q" => quoted_printable(&text.replace('_', " ")),
                    _ => return None,
                };
                let len = 2 + cs.len() + 1 + enc.len() + 1 + end + 2;
                Some((charset(&bytes, cs.split('*').next().unwrap_or(cs)), len))
            })
            .flatten();
        match decoded {
            Some((text, len)) => {
                let between = &rest[..start];
                if !(last_was_word && between.trim().is_empty()) {
                    out.push_str(between);
                }
                out.push_str(&text);
                rest = &rest[start + len..];
                last_was_word = true;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}
