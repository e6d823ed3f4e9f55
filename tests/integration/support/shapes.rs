//! Validators of notification requests against each service's DOCUMENTED shape (field names,
//! JSON types, required fields, enumerated values, size limits), so a test that captured what
//! the product sent (see `receiver`) can tell whether the real service would have taken it.
//! The facts come from each service's documentation (summarised in `/work/shared/NOTIFIERS.md`);
//! where a check is stricter than the service, its doc comment says so.
//!
//! Every validator returns `Err` with a message naming the field that is wrong.

use crate::support::receiver::Received;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// Slack

/// A Slack incoming webhook (api.slack.com/messaging/webhooks): POST, JSON, `text` and/or
/// `blocks` (≤ 50, each with a `type`). In `text` and in every `mrkdwn` text object, `&`, `<`
/// and `>` must be escaped as `&amp;`, `&lt;`, `&gt;` unless they form a Slack control sequence
/// (`<https://...|label>`, `<mailto:...>`, `<!channel>`, `<@U123>`, `<#C123>`). Stricter than
/// Slack: a line-leading `>` (a block quote) counts as unescaped, since sitewatch never quotes.
/// Limits: `text` ≤ 40000 chars, a section's text ≤ 3000, a header's ≤ 150, ≤ 10 section fields
/// of ≤ 2000 chars each.
pub fn slack(r: &Received) -> Result<(), String> {
    post(r)?;
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    let text = opt_str(o, "text")?;
    let blocks = opt_array(o, "blocks")?;
    if text.is_none_or(str::is_empty) && blocks.is_none_or(Vec::is_empty) {
        return Err("`text` or `blocks`: one of them is required (and not empty)".into());
    }
    if let Some(t) = text {
        max_chars("text", t, 40_000)?;
        slack_escaped("text", t)?;
    }
    if let Some(blocks) = blocks {
        if blocks.len() > 50 {
            return Err(format!("`blocks`: {} blocks, at most 50", blocks.len()));
        }
        for (i, b) in blocks.iter().enumerate() {
            let at = format!("blocks[{i}]");
            let b = as_object(&at, b)?;
            let kind = req_str(b, "type", &at)?;
            match kind {
                "section" => {
                    if let Some(t) = b.get("text") {
                        let s = text_object(&format!("{at}.text"), t)?;
                        max_chars(&format!("{at}.text.text"), s, 3000)?;
                    }
                    if let Some(fields) = b.get("fields") {
                        let fields = as_array(&format!("{at}.fields"), fields)?;
                        if fields.len() > 10 {
                            return Err(format!(
                                "`{at}.fields`: {} fields, at most 10",
                                fields.len()
                            ));
                        }
                        for (j, f) in fields.iter().enumerate() {
                            let s = text_object(&format!("{at}.fields[{j}]"), f)?;
                            max_chars(&format!("{at}.fields[{j}].text"), s, 2000)?;
                        }
                    }
                }
                "header" => {
                    let t = b
                        .get("text")
                        .ok_or_else(|| format!("`{at}.text` is required in a header block"))?;
                    let s = text_object(&format!("{at}.text"), t)?;
                    max_chars(&format!("{at}.text.text"), s, 150)?;
                }
                _ => {}
            }
            check_mrkdwn(&at, &blocks[i])?;
        }
    }
    Ok(())
}

/// A Slack text object: `{"type": "mrkdwn"|"plain_text", "text": "..."}`; its text.
fn text_object<'a>(at: &str, v: &'a Value) -> Result<&'a str, String> {
    let o = as_object(at, v)?;
    let kind = req_str(o, "type", at)?;
    if kind != "mrkdwn" && kind != "plain_text" {
        return Err(format!(
            "`{at}.type` is {kind:?}, not \"mrkdwn\" or \"plain_text\""
        ));
    }
    req_str(o, "text", at)
}

/// Checks the escaping of every `mrkdwn` text object under `v`.
fn check_mrkdwn(at: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("mrkdwn")
                && let Some(t) = o.get("text").and_then(Value::as_str)
            {
                slack_escaped(&format!("{at}.text"), t)?;
            }
            for (k, v) in o {
                check_mrkdwn(&format!("{at}.{k}"), v)?;
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_mrkdwn(&format!("{at}[{i}]"), v)),
        _ => Ok(()),
    }
}

/// Slack's escaping rule for `&`, `<`, `>` (see `slack`).
pub fn slack_escaped(field: &str, s: &str) -> Result<(), String> {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap();
        match c {
            '&' if !["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| rest.starts_with(e)) =>
            {
                return Err(format!(
                    "`{field}` has an unescaped `&` at byte {i} (write `&amp;`): {}",
                    around(s, i)
                ));
            }
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!(
                        "`{field}` has an unescaped `<` at byte {i} (write `&lt;`): {}",
                        around(s, i)
                    ));
                };
                let inner = &rest[1..end];
                let control = ["http://", "https://", "mailto:", "!", "@", "#"]
                    .iter()
                    .any(|p| inner.starts_with(p))
                    && !inner.contains('<')
                    && !inner.trim().is_empty();
                if !control {
                    return Err(format!(
                        "`{field}` has an unescaped `<` at byte {i} that is not a Slack link or \
                         mention (write `&lt;`): {}",
                        around(s, i)
                    ));
                }
                // `&` inside a link must be escaped too: check it, then skip past the `>`.
                slack_escaped(field, &inner.replace(['<', '>'], ""))?;
                i += end + 1;
                continue;
            }
            '>' => {
                return Err(format!(
                    "`{field}` has an unescaped `>` at byte {i} (write `&gt;`): {}",
                    around(s, i)
                ));
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Discord

/// A Discord execute-webhook body (discord.com/developers/docs/resources/webhook#execute-webhook):
/// POST, JSON, `content` (≤ 2000 chars) and/or `embeds` (≤ 10). Each embed: `title` ≤ 256,
/// `description` ≤ 4096, `color` an integer 0..=0xFFFFFF (not a string), `timestamp` ISO 8601,
/// ≤ 25 `fields` with non-empty `name` (≤ 256) and `value` (≤ 1024), `footer.text` ≤ 2048,
/// `author.name` ≤ 256; all embeds' title, description, field names and values, footer and
/// author texts together ≤ 6000 chars. Unknown top-level or embed keys are rejected.
pub fn discord(r: &Received) -> Result<(), String> {
    post(r)?;
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    known_keys(
        o,
        "the body",
        &[
            "content",
            "username",
            "avatar_url",
            "tts",
            "embeds",
            "allowed_mentions",
            "components",
            "attachments",
            "flags",
            "thread_name",
            "applied_tags",
            "poll",
        ],
    )?;
    let content = opt_str(o, "content")?;
    if let Some(c) = content {
        max_chars("content", c, 2000)?;
    }
    if let Some(u) = opt_str(o, "username")? {
        if u.is_empty() {
            return Err("`username` is empty".into());
        }
        max_chars("username", u, 80)?;
    }
    opt_str(o, "avatar_url")?;
    opt_bool(o, "tts")?;
    let embeds = opt_array(o, "embeds")?;
    if content.is_none_or(str::is_empty) && embeds.is_none_or(Vec::is_empty) {
        return Err("`content` or `embeds`: one of them is required (and not empty)".into());
    }
    let Some(embeds) = embeds else { return Ok(()) };
    if embeds.len() > 10 {
        return Err(format!("`embeds`: {} embeds, at most 10", embeds.len()));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let at = format!("embeds[{i}]");
        let e = as_object(&at, e)?;
        known_keys(
            e,
            &at,
            &[
                "title",
                "type",
                "description",
                "url",
                "timestamp",
                "color",
                "footer",
                "image",
                "thumbnail",
                "video",
                "provider",
                "author",
                "fields",
            ],
        )?;
        let mut counted = |field: &str, s: &str, max: usize| -> Result<(), String> {
            max_chars(field, s, max)?;
            total += s.chars().count();
            Ok(())
        };
        if let Some(t) = opt_str_at(e, "title", &at)? {
            counted(&format!("{at}.title"), t, 256)?;
        }
        if let Some(d) = opt_str_at(e, "description", &at)? {
            counted(&format!("{at}.description"), d, 4096)?;
        }
        opt_str_at(e, "url", &at)?;
        if let Some(ts) = opt_str_at(e, "timestamp", &at)? {
            rfc3339(&format!("{at}.timestamp"), ts)?;
        }
        if let Some(c) = e.get("color") {
            match c.as_u64() {
                Some(n) if n <= 0xFF_FFFF => {}
                _ => {
                    return Err(format!(
                        "`{at}.color` must be an integer 0..=16777215 (decimal RGB), got {c}"
                    ));
                }
            }
        }
        if let Some(f) = e.get("footer") {
            let f = as_object(&format!("{at}.footer"), f)?;
            let t = req_str(f, "text", &format!("{at}.footer"))?;
            counted(&format!("{at}.footer.text"), t, 2048)?;
        }
        if let Some(a) = e.get("author") {
            let a = as_object(&format!("{at}.author"), a)?;
            let n = req_str(a, "name", &format!("{at}.author"))?;
            counted(&format!("{at}.author.name"), n, 256)?;
        }
        if let Some(fields) = e.get("fields") {
            let fields = as_array(&format!("{at}.fields"), fields)?;
            if fields.len() > 25 {
                return Err(format!(
                    "`{at}.fields`: {} fields, at most 25",
                    fields.len()
                ));
            }
            for (j, f) in fields.iter().enumerate() {
                let fat = format!("{at}.fields[{j}]");
                let f = as_object(&fat, f)?;
                for (key, max) in [("name", 256), ("value", 1024)] {
                    let s = req_str(f, key, &fat)?;
                    if s.trim().is_empty() {
                        return Err(format!("`{fat}.{key}` is empty (Discord rejects it)"));
                    }
                    counted(&format!("{fat}.{key}"), s, max)?;
                }
                if let Some(v) = f.get("inline")
                    && !v.is_boolean()
                {
                    return Err(format!("`{fat}.inline` must be a boolean, got {v}"));
                }
            }
        }
    }
    if total > 6000 {
        return Err(format!(
            "`embeds`: {total} characters across all embeds, at most 6000"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Microsoft Teams

/// A Teams Workflows webhook body: POST, JSON,
/// `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
/// "content":{"type":"AdaptiveCard","version":"1.x","body":[...]}}]}` (`$schema` optional); every
/// body element and action has a `type`; no legacy MessageCard (`@type`/`@context`), no
/// `Action.Submit` anywhere; the whole body ≤ 28 KB.
pub fn teams(r: &Received) -> Result<(), String> {
    post(r)?;
    content_type_json(r)?;
    if r.body.len() > 28 * 1024 {
        return Err(format!(
            "the body is {} bytes; Teams takes at most 28 KB",
            r.body.len()
        ));
    }
    let body = json_value(r)?;
    let o = top_object(&body)?;
    for legacy in ["@type", "@context"] {
        if o.contains_key(legacy) {
            return Err(format!(
                "`{legacy}`: a legacy MessageCard; Workflows take only Adaptive Cards"
            ));
        }
    }
    let kind = req_str(o, "type", "the body")?;
    if kind != "message" {
        return Err(format!("`type` is {kind:?}, not \"message\""));
    }
    let attachments = req_array(o, "attachments", "the body")?;
    if attachments.is_empty() {
        return Err("`attachments` is empty".into());
    }
    for (i, a) in attachments.iter().enumerate() {
        let at = format!("attachments[{i}]");
        let a = as_object(&at, a)?;
        let ct = req_str(a, "contentType", &at)?;
        if ct != "application/vnd.microsoft.card.adaptive" {
            return Err(format!(
                "`{at}.contentType` is {ct:?}, not \"application/vnd.microsoft.card.adaptive\""
            ));
        }
        let cat = format!("{at}.content");
        let c = as_object(
            &cat,
            a.get("content")
                .ok_or_else(|| format!("`{cat}` is required"))?,
        )?;
        if c.contains_key("@type") {
            return Err(format!("`{cat}.@type`: a legacy MessageCard"));
        }
        let t = req_str(c, "type", &cat)?;
        if t != "AdaptiveCard" {
            return Err(format!("`{cat}.type` is {t:?}, not \"AdaptiveCard\""));
        }
        let v = req_str(c, "version", &cat)?;
        let minor = v.strip_prefix("1.").unwrap_or("");
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{cat}.version` is {v:?}, not \"1.x\""));
        }
        opt_str_at(c, "$schema", &cat)?;
        let body = req_array(c, "body", &cat)?;
        for (j, e) in body.iter().enumerate() {
            let eat = format!("{cat}.body[{j}]");
            req_str(as_object(&eat, e)?, "type", &eat)?;
        }
        if let Some(actions) = c.get("actions") {
            for (j, e) in as_array(&format!("{cat}.actions"), actions)?
                .iter()
                .enumerate()
            {
                let eat = format!("{cat}.actions[{j}]");
                req_str(as_object(&eat, e)?, "type", &eat)?;
            }
        }
        no_action_submit(&cat, &Value::Object(c.clone()))?;
    }
    Ok(())
}

fn no_action_submit(at: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("Action.Submit") {
                return Err(format!(
                    "`{at}` is an Action.Submit, which Teams webhooks do not support"
                ));
            }
            o.iter()
                .try_for_each(|(k, v)| no_action_submit(&format!("{at}.{k}"), v))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| no_action_submit(&format!("{at}[{i}]"), v)),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Mattermost

/// A Mattermost incoming webhook (developers.mattermost.com/integrate/webhooks/incoming/): POST,
/// JSON, `text` a string, required unless `attachments` (a non-empty array of objects) is
/// there; optional strings `username`, `icon_url`, `icon_emoji`, `channel`; `props` an object;
/// a `type`, if present, starts with `custom_`.
pub fn mattermost(r: &Received) -> Result<(), String> {
    post(r)?;
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    let text = opt_str(o, "text")?;
    let attachments = opt_array(o, "attachments")?;
    if text.is_none_or(str::is_empty) && attachments.is_none_or(Vec::is_empty) {
        return Err("`text` is required (unless `attachments` is given)".into());
    }
    if let Some(a) = attachments {
        for (i, x) in a.iter().enumerate() {
            as_object(&format!("attachments[{i}]"), x)?;
        }
    }
    for key in ["username", "icon_url", "icon_emoji", "channel"] {
        opt_str(o, key)?;
    }
    if let Some(p) = o.get("props") {
        as_object("props", p)?;
    }
    if let Some(t) = opt_str(o, "type")?
        && !t.starts_with("custom_")
    {
        return Err(format!(
            "`type` is {t:?}; a custom post type must start with `custom_`"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PagerDuty

/// A PagerDuty Events API v2 event (developer.pagerduty.com/docs/events-api-v2/trigger-events/):
/// POST, JSON; `routing_key` a 32-char string; `event_action` trigger/acknowledge/resolve;
/// `dedup_key` a non-empty string ≤ 255 chars (required here: sitewatch always sends one, or a
/// resolve could not find the incident). On trigger, `payload` with `summary` (≤ 1024),
/// `source`, `severity` (critical/error/warning/info), and optional `timestamp` (RFC 3339),
/// `component`, `group`, `class` (strings), `custom_details` (an object). Unknown keys, at the
/// top or in `payload`, are rejected.
pub fn pagerduty(r: &Received) -> Result<(), String> {
    post(r)?;
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    known_keys(
        o,
        "the body",
        &[
            "routing_key",
            "event_action",
            "dedup_key",
            "payload",
            "images",
            "links",
            "client",
            "client_url",
        ],
    )?;
    let key = req_str(o, "routing_key", "the body")?;
    if key.chars().count() != 32 {
        return Err(format!(
            "`routing_key` is {} chars, not 32: {key:?}",
            key.chars().count()
        ));
    }
    let action = req_str(o, "event_action", "the body")?;
    one_of(
        "event_action",
        action,
        &["trigger", "acknowledge", "resolve"],
    )?;
    let dedup = req_str(o, "dedup_key", "the body")?;
    if dedup.is_empty() {
        return Err("`dedup_key` is empty".into());
    }
    max_chars("dedup_key", dedup, 255)?;
    for k in ["client", "client_url"] {
        opt_str(o, k)?;
    }
    for k in ["images", "links"] {
        opt_array(o, k)?;
    }
    if action != "trigger" {
        return Ok(());
    }
    let p = as_object(
        "payload",
        o.get("payload")
            .ok_or("`payload` is required on a trigger")?,
    )?;
    known_keys(
        p,
        "payload",
        &[
            "summary",
            "source",
            "severity",
            "timestamp",
            "component",
            "group",
            "class",
            "custom_details",
        ],
    )?;
    let summary = req_str(p, "summary", "payload")?;
    if summary.is_empty() {
        return Err("`payload.summary` is empty".into());
    }
    max_chars("payload.summary", summary, 1024)?;
    if req_str(p, "source", "payload")?.is_empty() {
        return Err("`payload.source` is empty".into());
    }
    one_of(
        "payload.severity",
        req_str(p, "severity", "payload")?,
        &["critical", "error", "warning", "info"],
    )?;
    if let Some(ts) = opt_str_at(p, "timestamp", "payload")? {
        rfc3339("payload.timestamp", ts)?;
    }
    for k in ["component", "group", "class"] {
        opt_str_at(p, k, "payload")?;
    }
    if let Some(d) = p.get("custom_details") {
        as_object("payload.custom_details", d)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Opsgenie

/// An Opsgenie Alert API request (docs.opsgenie.com/docs/alert-api), `Authorization: GenieKey
/// <key>`, POST. Create (path ending `/v2/alerts`): `message` required (≤ 130 chars), `alias`
/// ≤ 512, `description` ≤ 15000, `priority` P1..P5, `tags` strings (≤ 20, each ≤ 50), `details`
/// an object of string values, `entity` ≤ 512, `source` ≤ 100, `user` ≤ 100, `note` ≤ 25000,
/// `actions` strings (≤ 10, each ≤ 50); unknown keys rejected. Close (`/v2/alerts/{alias}/close`):
/// the query must say `identifierType=alias` (else Opsgenie takes the alias for an alert id);
/// the body, if any, a JSON object of `user`, `source`, `note`.
pub fn opsgenie(r: &Received) -> Result<(), String> {
    post(r)?;
    match r.header("authorization") {
        Some(a)
            if a.strip_prefix("GenieKey ")
                .is_some_and(|k| !k.trim().is_empty()) => {}
        other => {
            return Err(format!(
                "header `Authorization` must be `GenieKey <key>`, got {other:?}"
            ));
        }
    }
    if r.path.ends_with("/v2/alerts") {
        content_type_json(r)?;
        let body = json_value(r)?;
        let o = top_object(&body)?;
        known_keys(
            o,
            "the body",
            &[
                "message",
                "alias",
                "description",
                "responders",
                "visibleTo",
                "actions",
                "tags",
                "details",
                "entity",
                "source",
                "priority",
                "user",
                "note",
            ],
        )?;
        let m = req_str(o, "message", "the body")?;
        if m.trim().is_empty() {
            return Err("`message` is empty".into());
        }
        max_chars("message", m, 130)?;
        for (k, max) in [
            ("alias", 512),
            ("description", 15000),
            ("entity", 512),
            ("source", 100),
            ("user", 100),
            ("note", 25000),
        ] {
            if let Some(s) = opt_str(o, k)? {
                max_chars(k, s, max)?;
            }
        }
        if let Some(p) = opt_str(o, "priority")? {
            one_of("priority", p, &["P1", "P2", "P3", "P4", "P5"])?;
        }
        for (k, count, len) in [("tags", 20, 50), ("actions", 10, 50)] {
            if let Some(a) = opt_array(o, k)? {
                if a.len() > count {
                    return Err(format!("`{k}`: {} entries, at most {count}", a.len()));
                }
                for (i, t) in a.iter().enumerate() {
                    let s = t
                        .as_str()
                        .ok_or_else(|| format!("`{k}[{i}]` must be a string, got {t}"))?;
                    max_chars(&format!("{k}[{i}]"), s, len)?;
                }
            }
        }
        if let Some(d) = o.get("details") {
            string_map("details", d)?;
        }
        for k in ["responders", "visibleTo"] {
            opt_array(o, k)?;
        }
        return Ok(());
    }
    let close = r
        .path
        .rsplit_once("/v2/alerts/")
        .and_then(|(_, rest)| rest.strip_suffix("/close"))
        .filter(|id| !id.is_empty() && !id.contains('/'));
    if close.is_none() {
        return Err(format!(
            "path {:?} is neither an alert create (`/v2/alerts`) nor a close \
             (`/v2/alerts/{{alias}}/close`)",
            r.path
        ));
    }
    if r.query_param("identifierType").as_deref() != Some("alias") {
        return Err(format!(
            "query `identifierType` must be `alias` on a close by alias (query: {:?}); without \
             it Opsgenie takes the alias for an alert id",
            r.query
        ));
    }
    if !r.body.iter().all(u8::is_ascii_whitespace) {
        let body = json_value(r)?;
        let o = top_object(&body)?;
        known_keys(o, "the body", &["user", "source", "note"])?;
        for (k, max) in [("user", 100), ("source", 100), ("note", 25000)] {
            if let Some(s) = opt_str(o, k)? {
                max_chars(k, s, max)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ntfy

/// An ntfy publish (docs.ntfy.sh/publish/): POST or PUT to a topic URL (its last path segment
/// a topic name, `[-_A-Za-z0-9]{1,64}`), the message as a plain UTF-8 body, not empty and
/// ≤ 4096 bytes (a larger one becomes an attachment). A body that parses as a JSON object is
/// rejected: posted to a topic URL it shows as raw text. Optional headers (or their aliases
/// `X-Title`/`t`, `X-Priority`/`prio`/`p`, `X-Tags`/`tag`/`ta`): `Title`, `Priority` (1-5 or
/// min/low/default/high/max/urgent), `Tags` (a comma list with no empty entry).
pub fn ntfy(r: &Received) -> Result<(), String> {
    if r.method != "POST" && r.method != "PUT" {
        return Err(format!("method is {}, not POST or PUT", r.method));
    }
    let topic = r.path.rsplit('/').next().unwrap_or("");
    if topic.is_empty()
        || topic.len() > 64
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "path {:?}: its last segment is not a topic name ([-_A-Za-z0-9]{{1,64}})",
            r.path
        ));
    }
    let Ok(text) = std::str::from_utf8(&r.body) else {
        return Err("the body is not UTF-8 (ntfy would make it an attachment)".into());
    };
    if text.trim().is_empty() {
        return Err("the body (the message) is empty".into());
    }
    if r.body.len() > 4096 {
        return Err(format!(
            "the body is {} bytes; ntfy makes a message over 4096 bytes an attachment",
            r.body.len()
        ));
    }
    if let Ok(Value::Object(_)) = serde_json::from_str::<Value>(text) {
        return Err(
            "the body is a JSON object: posted to a topic URL it shows as raw text (JSON \
             publishing goes to the root URL with a `topic` field)"
                .into(),
        );
    }
    let header = |names: &[&str]| names.iter().find_map(|n| r.header(n));
    if let Some(t) = header(&["x-title", "title", "ti", "t"])
        && t.trim().is_empty()
    {
        return Err("header `Title` is empty".into());
    }
    if let Some(p) = header(&["x-priority", "priority", "prio", "p"]) {
        one_of(
            "header Priority",
            p.trim(),
            &[
                "1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent",
            ],
        )?;
    }
    if let Some(t) = header(&["x-tags", "tags", "tag", "ta"])
        && t.split(',').any(|x| x.trim().is_empty())
    {
        return Err(format!("header `Tags` {t:?} has an empty entry"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Gotify

/// A Gotify push (gotify.net/docs/pushmsg): POST to a path ending `/message`; the app token in
/// header `X-Gotify-Key`, query `token`, or `Authorization: Bearer`; JSON with `message` a
/// non-empty string (required), `title` a string, `priority` an integer, `extras` an object;
/// unknown keys rejected.
pub fn gotify(r: &Received) -> Result<(), String> {
    post(r)?;
    if !r.path.ends_with("/message") {
        return Err(format!("path {:?} does not end with `/message`", r.path));
    }
    let header_key = r.header("x-gotify-key").filter(|k| !k.trim().is_empty());
    let bearer = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .filter(|k| !k.trim().is_empty());
    let query = r.query_param("token").filter(|k| !k.is_empty());
    if header_key.is_none() && bearer.is_none() && query.is_none() {
        return Err(
            "no app token: header `X-Gotify-Key`, query `token` or `Authorization: Bearer`".into(),
        );
    }
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    known_keys(o, "the body", &["message", "title", "priority", "extras"])?;
    if req_str(o, "message", "the body")?.is_empty() {
        return Err("`message` is empty".into());
    }
    opt_str(o, "title")?;
    if let Some(p) = o.get("priority")
        && !(p.is_i64() || p.is_u64())
    {
        return Err(format!("`priority` must be an integer, got {p}"));
    }
    if let Some(e) = o.get("extras") {
        as_object("extras", e)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Telegram

/// A Telegram Bot API sendMessage (core.telegram.org/bots/api#sendmessage): POST to
/// `/bot<token>/sendMessage`, JSON with `chat_id` (an integer or a non-empty string) and `text`
/// (1..4096 chars after entity parsing). `parse_mode`, if present, is MarkdownV2, HTML or
/// Markdown. With MarkdownV2 every `_ * [ ] ( ) ~ \` > # + - = | { } . !` must be escaped with
/// `\` (stricter than Telegram: formatting markup such as `*bold*` counts as unescaped too,
/// since sitewatch sends text, not markup). With HTML, `<` must open a supported tag and `&`
/// start an entity. Optional flags are checked for type.
pub fn telegram(r: &Received) -> Result<(), String> {
    post(r)?;
    let token = r
        .path
        .strip_suffix("/sendMessage")
        .and_then(|p| p.rsplit('/').next())
        .and_then(|seg| seg.strip_prefix("bot"));
    if token.is_none_or(str::is_empty) {
        return Err(format!(
            "path {:?} is not `/bot<token>/sendMessage`",
            r.path
        ));
    }
    content_type_json(r)?;
    let body = json_value(r)?;
    let o = top_object(&body)?;
    match o.get("chat_id") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(other) => {
            return Err(format!(
                "`chat_id` must be an integer or a non-empty string, got {other}"
            ));
        }
        None => return Err("`chat_id` is required".into()),
    }
    let text = req_str(o, "text", "the body")?;
    let mode = opt_str(o, "parse_mode")?;
    let shown = match mode {
        None => text.to_owned(),
        Some("MarkdownV2") => markdown_v2_escaped(text)?,
        Some("HTML") => telegram_html(text)?,
        Some("Markdown") => text.to_owned(),
        Some(other) => {
            return Err(format!(
                "`parse_mode` is {other:?}, not MarkdownV2, HTML or Markdown"
            ));
        }
    };
    let n = shown.chars().count();
    if n == 0 || n > 4096 {
        return Err(format!(
            "`text` is {n} chars after parsing; 1..=4096 allowed"
        ));
    }
    for k in [
        "disable_notification",
        "protect_content",
        "disable_web_page_preview",
        "allow_sending_without_reply",
    ] {
        opt_bool(o, k)?;
    }
    if let Some(t) = o.get("message_thread_id")
        && !t.is_i64()
    {
        return Err(format!("`message_thread_id` must be an integer, got {t}"));
    }
    for k in ["link_preview_options", "reply_markup", "reply_parameters"] {
        if let Some(v) = o.get(k) {
            as_object(k, v)?;
        }
    }
    Ok(())
}

/// The text MarkdownV2 `text` shows, or an error naming the first unescaped special character.
pub fn markdown_v2_escaped(text: &str) -> Result<String, String> {
    const SPECIAL: &str = "_*[]()~`>#+-=|{}.!";
    let mut shown = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, e)) if (1..=126).contains(&(e as u32)) => shown.push(e),
                _ => {
                    return Err(format!(
                        "`text` (MarkdownV2) has a `\\` at byte {i} that escapes nothing: {}",
                        around(text, i)
                    ));
                }
            }
        } else if SPECIAL.contains(c) {
            return Err(format!(
                "`text` (MarkdownV2) has an unescaped `{c}` at byte {i} (write `\\{c}`): {}",
                around(text, i)
            ));
        } else {
            shown.push(c);
        }
    }
    Ok(shown)
}

/// The text HTML `text` shows, or an error naming an unsupported tag or a bare `<`/`&`.
fn telegram_html(text: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ];
    let mut shown = String::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap();
        if c == '<' {
            let end = rest.find('>').ok_or_else(|| {
                format!(
                    "`text` (HTML) has a bare `<` at byte {i} (write `&lt;`): {}",
                    around(text, i)
                )
            })?;
            let inner = rest[1..end].trim_start_matches('/');
            let name = inner
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("");
            if !TAGS.contains(&name) {
                return Err(format!(
                    "`text` (HTML) has an unsupported tag <{name}> at byte {i} (a literal `<` is \
                     `&lt;`): {}",
                    around(text, i)
                ));
            }
            i += end + 1;
            continue;
        }
        if c == '&' {
            let end = rest.find(';').filter(|&e| e <= 10);
            let entity = end.map(|e| &rest[1..e]);
            let ok = entity.is_some_and(|e| {
                ["lt", "gt", "amp", "quot"].contains(&e)
                    || e.strip_prefix('#').is_some_and(|n| {
                        !n.is_empty()
                            && (n.bytes().all(|b| b.is_ascii_digit())
                                || n.strip_prefix('x').is_some_and(|h| {
                                    !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit())
                                }))
                    })
            });
            if !ok {
                return Err(format!(
                    "`text` (HTML) has a bare `&` at byte {i} (write `&amp;`): {}",
                    around(text, i)
                ));
            }
            shown.push('&');
            i += end.unwrap() + 1;
            continue;
        }
        shown.push(c);
        i += c.len_utf8();
    }
    Ok(shown)
}

// ---------------------------------------------------------------------------------------------
// Alertmanager

/// An Alertmanager API v2 post (prometheus.io/docs/alerting/latest/clients/, the `postableAlert`
/// of its OpenAPI spec): POST to a path ending `/api/v2/alerts`, JSON, a non-empty array of
/// alerts, each with only `labels` (required: an object of string values, including a non-empty
/// `alertname`; label names `[a-zA-Z_][a-zA-Z0-9_]*`), `annotations` (string values),
/// `startsAt`/`endsAt` (RFC 3339; `endsAt` not before `startsAt`), `generatorURL` (an absolute
/// URL).
pub fn alertmanager(r: &Received) -> Result<(), String> {
    post(r)?;
    if !r.path.ends_with("/api/v2/alerts") {
        return Err(format!(
            "path {:?} does not end with `/api/v2/alerts`",
            r.path
        ));
    }
    content_type_json(r)?;
    let v = json_value(r)?;
    let alerts = as_array("the body", &v)?;
    if alerts.is_empty() {
        return Err("the body is an empty array".into());
    }
    for (i, a) in alerts.iter().enumerate() {
        let at = format!("[{i}]");
        let a = as_object(&at, a)?;
        known_keys(
            a,
            &at,
            &[
                "labels",
                "annotations",
                "startsAt",
                "endsAt",
                "generatorURL",
            ],
        )?;
        let labels = a
            .get("labels")
            .ok_or_else(|| format!("`{at}.labels` is required"))?;
        let labels = string_map(&format!("{at}.labels"), labels)?;
        match labels.get("alertname").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => {}
            _ => {
                return Err(format!(
                    "`{at}.labels.alertname` is required (and not empty)"
                ));
            }
        }
        for name in labels.keys() {
            label_name(&format!("{at}.labels"), name)?;
        }
        if let Some(an) = a.get("annotations") {
            let an = string_map(&format!("{at}.annotations"), an)?;
            for name in an.keys() {
                label_name(&format!("{at}.annotations"), name)?;
            }
        }
        let mut times = [None, None];
        for (slot, k) in times.iter_mut().zip(["startsAt", "endsAt"]) {
            if let Some(s) = opt_str_at(a, k, &at)? {
                *slot = Some(rfc3339(&format!("{at}.{k}"), s)?);
            }
        }
        if let [Some(start), Some(end)] = times
            && end < start
        {
            return Err(format!("`{at}.endsAt` is before `{at}.startsAt`"));
        }
        if let Some(u) = opt_str_at(a, "generatorURL", &at)? {
            match url::Url::parse(u) {
                Ok(url) if url.has_host() => {}
                _ => return Err(format!("`{at}.generatorURL` is not an absolute URL: {u:?}")),
            }
        }
    }
    Ok(())
}

fn label_name(at: &str, name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{at}`: {name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Generic webhook

/// A generic JSON webhook: `Content-Type: application/json` and a JSON object body.
pub fn webhook(r: &Received) -> Result<(), String> {
    content_type_json(r)?;
    top_object(&json_value(r)?).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn post(r: &Received) -> Result<(), String> {
    if r.method == "POST" {
        Ok(())
    } else {
        Err(format!("method is {}, not POST", r.method))
    }
}

fn content_type_json(r: &Received) -> Result<(), String> {
    let ct = r.header("content-type").unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!(
            "header `Content-Type` is {ct:?}, not application/json"
        ))
    }
}

fn json_value(r: &Received) -> Result<Value, String> {
    serde_json::from_slice(&r.body).map_err(|e| {
        format!(
            "the body is not JSON ({e}): {:?}",
            r.text().chars().take(300).collect::<String>()
        )
    })
}

/// The body's JSON as an object.
fn top_object(v: &Value) -> Result<&Obj, String> {
    v.as_object()
        .ok_or_else(|| format!("the body must be a JSON object, got {}", kind(v)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object<'a>(at: &str, v: &'a Value) -> Result<&'a Obj, String> {
    v.as_object()
        .ok_or_else(|| format!("`{at}` must be an object, got {}", kind(v)))
}

fn as_array<'a>(at: &str, v: &'a Value) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{at}` must be an array, got {}", kind(v)))
}

/// `o[key]` as a string, if present (`at` names `o` in the message; "the body" for the top).
fn opt_str_at<'a>(o: &'a Obj, key: &str, at: &str) -> Result<Option<&'a str>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!(
            "`{}` must be a string, got {}",
            path(at, key),
            kind(v)
        )),
    }
}

fn opt_str<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a str>, String> {
    opt_str_at(o, key, "the body")
}

fn req_str<'a>(o: &'a Obj, key: &str, at: &str) -> Result<&'a str, String> {
    opt_str_at(o, key, at)?.ok_or_else(|| format!("`{}` is required", path(at, key)))
}

fn opt_array<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a Vec<Value>>, String> {
    o.get(key).map(|v| as_array(key, v)).transpose()
}

fn req_array<'a>(o: &'a Obj, key: &str, at: &str) -> Result<&'a Vec<Value>, String> {
    let v = o
        .get(key)
        .ok_or_else(|| format!("`{}` is required", path(at, key)))?;
    as_array(&path(at, key), v)
}

fn opt_bool(o: &Obj, key: &str) -> Result<(), String> {
    match o.get(key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(v) => Err(format!("`{key}` must be a boolean, got {}", kind(v))),
    }
}

/// An object whose every value is a string.
fn string_map<'a>(at: &str, v: &'a Value) -> Result<&'a Obj, String> {
    let o = as_object(at, v)?;
    for (k, v) in o {
        if !v.is_string() {
            return Err(format!("`{at}.{k}` must be a string, got {}", kind(v)));
        }
    }
    Ok(o)
}

fn known_keys(o: &Obj, at: &str, allowed: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(format!(
            "`{}` is not a documented field (documented: {})",
            path(at, k),
            allowed.join(", ")
        )),
    }
}

fn path(at: &str, key: &str) -> String {
    if at == "the body" {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn max_chars(field: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        Err(format!("`{field}` is {n} chars, at most {max}"))
    } else {
        Ok(())
    }
}

fn one_of(field: &str, v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "`{field}` is {v:?}, not one of {}",
            allowed.join(", ")
        ))
    }
}

fn rfc3339(field: &str, s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("`{field}` is not an RFC 3339 time ({e}): {s:?}"))
}

/// Up to 20 chars either side of byte `i` of `s`, for error messages.
fn around(s: &str, i: usize) -> String {
    let start = s[..i].char_indices().rev().nth(19).map_or(0, |(j, _)| j);
    let end = s[i..]
        .char_indices()
        .nth(21)
        .map_or(s.len(), |(j, _)| i + j);
    format!("{:?}", &s[start..end])
}
