//! `answer`: a check for sites that are not HTTP (WIT 0.3.0's `observed`): what a `tcp` server
//! answered, the records a `dns` query got, the message a `websocket` server sent.
//!
//! Config: `{"starts_with": "220 "}` (a TCP banner or a WebSocket message begins so),
//! `{"contains": "ESMTP"}`, `{"min_answers": 2}` and `{"all_in": "192.0.2."}` (every DNS answer
//! begins with it: the records stay in one network). An HTTP site fails the check: it is not
//! meant for one.

wit_bindgen::generate!({ path: "../../wit/0.3.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Metric, Observed, Response, Verdict};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    starts_with: Option<String>,
    contains: Option<String>,
    min_answers: Option<usize>,
    all_in: Option<String>,
}

/// The verdict on what was observed, and the number of answers (DNS) or bytes (TCP, WebSocket).
pub fn judge(config: &str, observed: &Observed) -> Result<(Verdict, f64), String> {
    let c: Config = if config.trim().is_empty() {
        Config::default()
    } else {
        serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?
    };
    let (texts, size): (Vec<String>, f64) = match observed {
        Observed::Http => {
            return Ok((
                Verdict::Fail("answer judges tcp, dns and websocket sites, not http".into()),
                0.0,
            ));
        }
        Observed::Tcp(bytes) => (
            vec![String::from_utf8_lossy(bytes).into_owned()],
            bytes.len() as f64,
        ),
        Observed::Websocket(text) => (vec![text.clone()], text.len() as f64),
        Observed::Dns(answers) => (answers.clone(), answers.len() as f64),
    };
    let shown = |t: &str| {
        t.chars()
            .take(80)
            .collect::<String>()
            .escape_default()
            .to_string()
    };
    if let Some(prefix) = &c.starts_with
        && !texts.iter().any(|t| t.starts_with(prefix.as_str()))
    {
        let got = texts.first().map(|t| shown(t)).unwrap_or_default();
        return Ok((
            Verdict::Fail(format!(
                "the answer does not start with \"{prefix}\": \"{got}\""
            )),
            size,
        ));
    }
    if let Some(part) = &c.contains
        && !texts.iter().any(|t| t.contains(part.as_str()))
    {
        return Ok((
            Verdict::Fail(format!("the answer does not contain \"{part}\"")),
            size,
        ));
    }
    if let Some(min) = c.min_answers
        && texts.len() < min
    {
        return Ok((
            Verdict::Fail(format!("{} answers, at least {min} expected", texts.len())),
            size,
        ));
    }
    if let Some(prefix) = &c.all_in
        && let Some(stray) = texts.iter().find(|t| !t.starts_with(prefix.as_str()))
    {
        return Ok((
            Verdict::Fail(format!(
                "the answer \"{}\" is not in {prefix}",
                shown(stray)
            )),
            size,
        ));
    }
    Ok((Verdict::Pass, size))
}

struct AnswerCheck;

impl Guest for AnswerCheck {
    fn check(config: String, response: Response) -> Result<CheckResult, String> {
        let (verdict, size) = judge(&config, &response.observed)?;
        Ok(CheckResult {
            verdict,
            metrics: vec![Metric {
                name: format!("answer.{}", response.kind),
                value: size,
            }],
        })
    }
}

export!(AnswerCheck);

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Pass => None,
            Verdict::Fail(why) => Some(why),
        }
    }

    #[test]
    fn banners_messages_and_records_are_judged_by_kind() {
        let banner = Observed::Tcp(b"220 mail.example ESMTP ready\r\n".to_vec());
        assert_eq!(
            fails(&judge(r#"{"starts_with": "220 "}"#, &banner).unwrap().0),
            None
        );
        assert!(
            fails(&judge(r#"{"contains": "LMTP"}"#, &banner).unwrap().0)
                .unwrap()
                .contains("LMTP")
        );
        let records = Observed::Dns(vec!["192.0.2.10".into(), "198.51.100.7".into()]);
        let (v, n) = judge(r#"{"min_answers": 2, "all_in": "192.0.2."}"#, &records).unwrap();
        assert_eq!(n, 2.0);
        assert!(fails(&v).unwrap().contains("198.51.100.7"));
        assert!(fails(&judge("{}", &Observed::Http).unwrap().0).is_some());
        assert!(judge("{\"nope\": 1}", &records).is_err());
    }
}
