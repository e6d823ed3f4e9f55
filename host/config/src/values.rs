//! Parsers for the small value languages of the config file: durations, byte sizes and
//! expected statuses. Each returns a plain message; the caller adds the field path.

use super::raw::{RawDuration, RawSize, RawStatus};
use std::time::Duration;

/// Parses a duration that must be greater than zero.
pub(crate) fn positive_duration(raw: &RawDuration) -> Result<Duration, String> {
    // Far-future durations overflow timer arithmetic; nobody watches a site once a century.
    positive_duration_up_to(raw, Duration::from_secs(366 * 24 * 3600), "a year")
}

/// A plugin call's time limit typed on the command line (`plugin test --time-limit`): what
/// `time_limit` takes in a config.
pub fn plugin_time_limit(text: &str) -> Result<Duration, String> {
    positive_duration(&RawDuration::Text(text.to_owned()))
}

/// A retention: years are fine (nothing waits on it), a century is the sanity limit.
pub fn retention(raw: &RawDuration) -> Result<Duration, String> {
    positive_duration_up_to(raw, Duration::from_secs(100 * 366 * 24 * 3600), "a century")
}

fn positive_duration_up_to(
    raw: &RawDuration,
    max: Duration,
    max_name: &str,
) -> Result<Duration, String> {
    let d = match raw {
        RawDuration::Seconds(s) => {
            if !s.is_finite() || *s <= 0.0 {
                return Err(format!("must be greater than zero, got {s}"));
            }
            Duration::try_from_secs_f64(*s).map_err(|_| format!("{s} seconds is too large"))?
        }
        RawDuration::Text(t) => {
            let t = t.trim();
            if t.starts_with('-') {
                return Err(format!("must be greater than zero, got \"{t}\""));
            }
            humantime::parse_duration(t).map_err(|e| {
                format!("\"{t}\" is not a duration ({e}); use e.g. \"250ms\", \"10s\", \"2m\", \"1h\" or a number of seconds")
            })?
        }
    };
    if d.is_zero() {
        return Err(format!("must be greater than zero, got {}", show(raw)));
    }
    if d > max {
        return Err(format!("{} is longer than {max_name}", show(raw)));
    }
    Ok(d)
}

fn show(raw: &RawDuration) -> String {
    match raw {
        RawDuration::Seconds(s) => s.to_string(),
        RawDuration::Text(t) => format!("\"{t}\""),
    }
}

/// Parses a byte size: a number of bytes, or a number with a unit (B, KB, KiB, MB, MiB, GB, GiB).
pub(crate) fn byte_size(raw: &RawSize) -> Result<u64, String> {
    let text = match raw {
        RawSize::Bytes(b) => return Ok(*b),
        RawSize::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!("\"{text}\" is not a size; use e.g. \"512KiB\", \"1MiB\" or a number of bytes")
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" in \"{text}\"; use B, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("\"{text}\" is too large"));
    }
    Ok(bytes as u64)
}

/// Which HTTP statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMatcher {
    patterns: Vec<StatusPattern>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusPattern {
    Code(u16),
    /// `2xx` is `Class(2)`.
    Class(u16),
}

impl StatusMatcher {
    /// The default: any 2xx (after redirects have been followed).
    pub fn success() -> Self {
        Self {
            patterns: vec![StatusPattern::Class(2)],
        }
    }

    pub fn parse(raw: &[RawStatus]) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must list at least one status, e.g. [\"2xx\"]".into());
        }
        let patterns = raw
            .iter()
            .map(|r| match r {
                RawStatus::Code(c) => code(&c.to_string()),
                RawStatus::Text(t) => {
                    let t = t.trim();
                    let lower = t.to_ascii_lowercase();
                    match lower.strip_suffix("xx") {
                        Some(d) if d.len() == 1 && matches!(d.as_bytes()[0], b'1'..=b'5') => {
                            Ok(StatusPattern::Class(u16::from(d.as_bytes()[0] - b'0')))
                        }
                        _ => code(t),
                    }
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.patterns.iter().any(|p| match *p {
            StatusPattern::Code(c) => c == status,
            StatusPattern::Class(k) => status / 100 == k,
        })
    }
}

impl std::fmt::Display for StatusMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match p {
                StatusPattern::Code(c) => write!(f, "{c}")?,
                StatusPattern::Class(k) => write!(f, "{k}xx")?,
            }
        }
        Ok(())
    }
}

fn code(text: &str) -> Result<StatusPattern, String> {
    match text.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(StatusPattern::Code(c)),
        _ => Err(format!(
            "\"{text}\" is not an HTTP status; use a code from 100 to 599 or a class such as \"2xx\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dur(t: &str) -> Result<Duration, String> {
        positive_duration(&RawDuration::Text(t.into()))
    }

    #[test]
    fn durations() {
        assert_eq!(dur("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(dur("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(dur("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(dur("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            positive_duration(&RawDuration::Seconds(1.5)).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(dur("0s").unwrap_err().contains("greater than zero"));
        assert!(dur("-5s").unwrap_err().contains("greater than zero"));
        assert!(positive_duration(&RawDuration::Seconds(-1.0)).is_err());
        assert!(positive_duration(&RawDuration::Seconds(f64::NAN)).is_err());
        assert!(positive_duration(&RawDuration::Seconds(1e300)).is_err());
        assert!(dur("soon").unwrap_err().contains("not a duration"));
        assert!(dur("100000d").unwrap_err().contains("longer than a year"));
    }

    #[test]
    fn sizes() {
        assert_eq!(byte_size(&RawSize::Bytes(10)).unwrap(), 10);
        assert_eq!(byte_size(&RawSize::Text("1MiB".into())).unwrap(), 1 << 20);
        assert_eq!(
            byte_size(&RawSize::Text("512 KiB".into())).unwrap(),
            512 * 1024
        );
        assert_eq!(byte_size(&RawSize::Text("2MB".into())).unwrap(), 2_000_000);
        assert!(byte_size(&RawSize::Text("1 parsec".into())).is_err());
        assert!(byte_size(&RawSize::Text("lots".into())).is_err());
    }

    #[test]
    fn statuses() {
        let m =
            StatusMatcher::parse(&[RawStatus::Text("2xx".into()), RawStatus::Code(301)]).unwrap();
        assert!(m.matches(200) && m.matches(204) && m.matches(301));
        assert!(!m.matches(302) && !m.matches(500));
        assert_eq!(m.to_string(), "2xx, 301");
        let m = StatusMatcher::parse(&[RawStatus::Text("404".into())]).unwrap();
        assert!(m.matches(404) && !m.matches(200));
        assert!(StatusMatcher::parse(&[RawStatus::Text("9xx".into())]).is_err());
        assert!(StatusMatcher::parse(&[RawStatus::Code(42)]).is_err());
        assert!(StatusMatcher::parse(&[]).is_err());
        assert!(StatusMatcher::success().matches(299));
    }
}

/// `url` as outputs may show it: the password of its userinfo, if any, as `***`. With
/// `user_is_secret` (a NATS URL's `token@`), a user without a password is a secret too.
pub fn masked_url(url: &url::Url, user_is_secret: bool) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    } else if user_is_secret && !shown.username().is_empty() {
        let _ = shown.set_username("***");
    }
    shown.to_string()
}

/// A URL's user or password as sent: percent-decoded.
pub fn userinfo_part(encoded: &str) -> String {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether `c` may not appear in a name or label: control characters, bidirectional overrides
/// and isolates, and zero-width or invisible format characters (each can make two names look
/// alike, or make a line read differently than it is).
pub(crate) fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                   // soft hyphen
            | '\u{034F}'                 // combining grapheme joiner
            | '\u{061C}'                 // Arabic letter mark
            | '\u{115F}' | '\u{1160}'    // Hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'    // Mongolian selectors and vowel separator
            | '\u{200B}'..='\u{200F}'    // zero-width space, joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}'    // line/paragraph separators, bidi embeddings, overrides
            | '\u{2060}'..='\u{206F}'    // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                 // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'    // variation selectors
            | '\u{FEFF}'                 // zero-width no-break space (BOM)
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'    // interlinear annotations
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'  // tags
        )
}

/// `text` safe to print: every hidden character (`is_hidden_char`) written as `\u{…}`, so a
/// message never carries raw control bytes or a bidi override to a terminal or a log.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hidden_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The bytes a URL component keeps as they are (RFC 3986's unreserved: letters, digits and
/// `-._~`); every other is percent-encoded.
pub const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` in double quotes for a message, printable.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", printable(text))
}

/// Why `name` is not a valid name or label (`what`, e.g. "a tag"), or `None`: 1 to `max`
/// characters (counted as characters, not bytes), none of them hidden.
pub(crate) fn name_problem(name: &str, max: usize) -> Option<String> {
    let len = name.chars().count();
    if len == 0 {
        return Some("must not be empty".into());
    }
    if len > max {
        return Some(format!(
            "is {len} characters long; at most {max} are allowed"
        ));
    }
    let hidden = name.chars().find(|c| is_hidden_char(*c))?;
    Some(format!(
        "contains the invisible or control character U+{:04X}; names may not hold control characters, bidirectional overrides or zero-width characters",
        hidden as u32
    ))
}

/// The form two names are compared in for duplicates: Unicode NFC, so `é` typed as one code
/// point and as `e` + a combining accent are the same name.
pub(crate) fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfc().collect()
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_are_measured_in_characters_and_hidden_characters_refused() {
        assert_eq!(name_problem(&"é".repeat(64), 64), None);
        assert!(
            name_problem(&"é".repeat(65), 64)
                .unwrap()
                .contains("65 characters")
        );
        assert!(name_problem("", 64).is_some());
        for bad in [
            "a\u{202E}b",
            "a\u{200B}b",
            "a\u{1b}[31mb",
            "a\u{2066}b",
            "a\u{FEFF}",
        ] {
            assert!(name_problem(bad, 64).unwrap().contains("U+"), "{bad:?}");
        }
        assert_eq!(name_problem("café ☕ 東京", 64), None);
    }

    #[test]
    fn printable_escapes_every_hidden_character() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{1b}[2Jb\u{202E}c"), "a\\u{1b}[2Jb\\u{202e}c");
        assert_eq!(quote("x\ny"), "\"x\\u{a}y\"");
    }

    #[test]
    fn names_equal_after_nfc_share_a_key() {
        assert_eq!(name_key("caf\u{e9}"), name_key("cafe\u{301}"));
        assert_ne!(name_key("cafe"), name_key("café"));
    }
}
