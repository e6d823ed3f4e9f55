//! The payload validators of `support::shapes` against documented-valid examples and a few
//! invalid ones each (wrong type, missing required field, over a limit), so a validator that
//! accepts everything (or nothing) is caught before a notifier test relies on it.

use crate::support::receiver::Received;
use crate::support::shapes;
use serde_json::{Value, json};
use std::time::Instant;

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Received {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Received {
        method: method.into(),
        path,
        query,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    }
}

/// A JSON POST to `target`, with `headers` besides the Content-Type.
fn post(target: &str, headers: &[(&str, &str)], body: &Value) -> Received {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", target, &all, body.to_string().as_bytes())
}

#[track_caller]
fn ok(result: Result<(), String>) {
    if let Err(e) = result {
        panic!("expected Ok, got Err({e})");
    }
}

/// Expects an error whose message mentions `mentions` (the wrong field).
#[track_caller]
fn err(result: Result<(), String>, mentions: &str) {
    match result {
        Ok(()) => panic!("expected an error mentioning {mentions:?}, got Ok"),
        Err(e) => assert!(
            e.contains(mentions),
            "expected an error mentioning {mentions:?}, got {e:?}"
        ),
    }
}

/// `v` with `edit` applied.
fn with(v: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = v.clone();
    edit(&mut v);
    v
}

#[test]
fn slack() {
    let check = |v: &Value| shapes::slack(&post("/slack/T0/B0/x", &[], v));
    let valid = json!({
        "text": "Site *shop* is down: <https://shop.example/health?a=1&amp;b=2|health> &lt;500&gt; <!channel>",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "shop is down"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "status 500 &amp; timeout"}},
            {"type": "divider"}
        ]
    });
    ok(check(&valid));
    ok(check(&json!({"text": "only text"})));
    err(check(&json!({"text": "a & b"})), "`text`");
    err(check(&json!({"text": "1 < 2"})), "`text`");
    err(
        check(&json!({"text": "<https://x.example/?a=1&b=2|x>"})),
        "`&`",
    );
    err(check(&json!({"text": "x -> y"})), "`>`");
    err(check(&json!({"text": 5})), "`text`");
    err(check(&json!({})), "`text` or `blocks`");
    err(
        check(&json!({"blocks": [{"text": "no type"}]})),
        "blocks[0].type",
    );
    err(
        check(
            &json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "a < b"}}]}),
        ),
        "blocks[0].text",
    );
    err(check(&json!({"text": "x".repeat(40_001)})), "`text`");
    err(
        check(
            &json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
        ),
        "blocks[0].text.text",
    );
    let not_json = request("POST", "/slack", &[("Content-Type", "text/plain")], b"{}");
    err(shapes::slack(&not_json), "Content-Type");
}

#[test]
fn discord() {
    let check = |v: &Value| shapes::discord(&post("/api/webhooks/1/tok", &[], v));
    let valid = json!({
        "content": "shop is down",
        "username": "sitewatch",
        "embeds": [{
            "title": "shop is down",
            "description": "status 500",
            "url": "https://shop.example/",
            "color": 15158332,
            "timestamp": "2024-05-01T12:00:00Z",
            "fields": [{"name": "status", "value": "500", "inline": true}],
            "footer": {"text": "sitewatch"}
        }]
    });
    ok(check(&valid));
    ok(check(&json!({"content": "only content"})));
    err(
        check(&with(&valid, |v| {
            v["embeds"][0]["color"] = json!("#ff0000")
        })),
        "embeds[0].color",
    );
    err(
        check(&with(&valid, |v| {
            v["embeds"][0]["title"] = json!("t".repeat(257))
        })),
        "embeds[0].title",
    );
    err(
        check(&with(&valid, |v| {
            v["embeds"][0]["fields"][0]["value"] = json!("")
        })),
        "embeds[0].fields[0].value",
    );
    err(
        check(&with(&valid, |v| {
            v["embeds"][0]["fields"][0]["name"] = json!(null)
        })),
        "embeds[0].fields[0].name",
    );
    err(check(&json!({"content": "c".repeat(2001)})), "`content`");
    err(check(&json!({})), "`content` or `embeds`");
    err(
        check(&json!({"embeds": vec![json!({"title": "x"}); 11]})),
        "`embeds`",
    );
    let big = json!({"description": "d".repeat(4000)});
    err(check(&json!({"embeds": [big.clone(), big]})), "6000");
    err(check(&with(&valid, |v| v["embed"] = json!({}))), "`embed`");
}

#[test]
fn teams() {
    let check = |v: &Value| shapes::teams(&post("/workflows/x", &[], v));
    let valid = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "shop is down", "weight": "Bolder"},
                    {"type": "FactSet", "facts": [{"title": "status", "value": "500"}]}
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": "https://shop.example/"}]
            }
        }]
    });
    ok(check(&valid));
    let legacy =
        json!({"@type": "MessageCard", "@context": "http://schema.org/extensions", "text": "down"});
    err(check(&legacy), "MessageCard");
    err(
        check(&with(&valid, |v| v["type"] = json!("card"))),
        "`type`",
    );
    err(
        check(&with(&valid, |v| {
            v["attachments"][0]["contentType"] = json!("application/json")
        })),
        "attachments[0].contentType",
    );
    err(
        check(&with(&valid, |v| {
            v["attachments"][0]["content"]["version"] = json!("2.0")
        })),
        "attachments[0].content.version",
    );
    err(
        check(&with(&valid, |v| {
            v["attachments"][0]["content"]["body"][1] = json!({"text": "x"})
        })),
        "attachments[0].content.body[1].type",
    );
    err(
        check(&with(&valid, |v| {
            v["attachments"][0]["content"]["actions"][0]["type"] = json!("Action.Submit")
        })),
        "Action.Submit",
    );
    err(
        check(&with(&valid, |v| {
            v["attachments"][0]["content"]["body"][0]["text"] = json!("x".repeat(29 * 1024))
        })),
        "28 KB",
    );
    err(
        check(&with(&valid, |v| v["attachments"] = json!([]))),
        "`attachments`",
    );
}

#[test]
fn mattermost() {
    let check = |v: &Value| shapes::mattermost(&post("/hooks/xyz", &[], v));
    ok(check(
        &json!({"text": "shop is down", "username": "sitewatch", "icon_url": "https://x.example/i.png", "channel": "ops"}),
    ));
    ok(check(
        &json!({"attachments": [{"fallback": "down", "text": "down"}]}),
    ));
    ok(check(&json!({"text": "x", "type": "custom_sitewatch"})));
    err(check(&json!({"username": "sitewatch"})), "`text`");
    err(check(&json!({"text": ["x"]})), "`text`");
    err(check(&json!({"text": "x", "type": "sitewatch"})), "`type`");
    err(check(&json!({"text": "x", "channel": 5})), "`channel`");
}

#[test]
fn pagerduty() {
    let check = |v: &Value| shapes::pagerduty(&post("/v2/enqueue", &[], v));
    let key = "R0123456789ABCDEF0123456789ABCDE";
    assert_eq!(key.len(), 32);
    let trigger = json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "sitewatch/shop",
        "payload": {
            "summary": "shop is down: status 500",
            "source": "https://shop.example/",
            "severity": "critical",
            "timestamp": "2024-05-01T12:00:00.000+00:00",
            "component": "shop",
            "group": "web",
            "class": "http",
            "custom_details": {"status": 500}
        },
        "client": "sitewatch"
    });
    ok(check(&trigger));
    ok(check(
        &json!({"routing_key": key, "event_action": "resolve", "dedup_key": "sitewatch/shop"}),
    ));
    err(
        check(&with(&trigger, |v| v["routing_key"] = json!("short"))),
        "`routing_key`",
    );
    err(
        check(&with(&trigger, |v| v["event_action"] = json!("fire"))),
        "`event_action`",
    );
    err(
        check(&with(&trigger, |v| {
            v.as_object_mut().unwrap().remove("dedup_key");
        })),
        "`dedup_key`",
    );
    err(
        check(&with(&trigger, |v| v["dedup_key"] = json!("k".repeat(256)))),
        "`dedup_key`",
    );
    err(
        check(&with(&trigger, |v| {
            v["payload"]["severity"] = json!("high")
        })),
        "payload.severity",
    );
    err(
        check(&with(&trigger, |v| {
            v["payload"]["summary"] = json!("s".repeat(1025))
        })),
        "payload.summary",
    );
    err(
        check(&with(&trigger, |v| {
            v["payload"]["timestamp"] = json!("yesterday")
        })),
        "payload.timestamp",
    );
    err(
        check(&with(&trigger, |v| {
            v["payload"]["custom_details"] = json!("x")
        })),
        "payload.custom_details",
    );
    err(
        check(&with(&trigger, |v| {
            v["payload"].as_object_mut().unwrap().remove("source");
        })),
        "payload.source",
    );
    err(
        check(&with(&trigger, |v| v["dedupKey"] = json!("x"))),
        "`dedupKey`",
    );
    err(
        check(&json!({"routing_key": key, "event_action": "trigger", "dedup_key": "k"})),
        "`payload`",
    );
}

#[test]
fn opsgenie() {
    let auth = [(
        "Authorization",
        "GenieKey eb243592-faa2-4ba2-a551q-1afdf565c889",
    )];
    let create = |v: &Value| shapes::opsgenie(&post("/v2/alerts", &auth, v));
    let valid = json!({
        "message": "shop is down",
        "alias": "sitewatch-shop",
        "description": "status 500 from https://shop.example/",
        "priority": "P1",
        "tags": ["sitewatch", "shop"],
        "details": {"status": "500"},
        "entity": "shop",
        "source": "sitewatch"
    });
    ok(create(&valid));
    err(
        create(&with(&valid, |v| v["message"] = json!("m".repeat(131)))),
        "`message`",
    );
    err(create(&json!({"alias": "a"})), "`message`");
    err(
        create(&with(&valid, |v| v["priority"] = json!("P6"))),
        "`priority`",
    );
    err(
        create(&with(&valid, |v| v["tags"] = json!("sitewatch"))),
        "`tags`",
    );
    err(
        create(&with(&valid, |v| v["details"] = json!({"status": 500}))),
        "details.status",
    );
    err(
        create(&with(&valid, |v| v["alias"] = json!("a".repeat(513)))),
        "`alias`",
    );
    err(
        create(&with(&valid, |v| {
            v["description"] = json!("d".repeat(15001))
        })),
        "`description`",
    );
    err(
        shapes::opsgenie(&post(
            "/v2/alerts",
            &[("Authorization", "Bearer x")],
            &valid,
        )),
        "GenieKey",
    );

    let close = json!({"source": "sitewatch", "note": "recovered"});
    ok(shapes::opsgenie(&post(
        "/v2/alerts/sitewatch-shop/close?identifierType=alias",
        &auth,
        &close,
    )));
    ok(shapes::opsgenie(&request(
        "POST",
        "/v2/alerts/sitewatch-shop/close?identifierType=alias",
        &auth,
        b"",
    )));
    err(
        shapes::opsgenie(&post("/v2/alerts/sitewatch-shop/close", &auth, &close)),
        "identifierType",
    );
    err(
        shapes::opsgenie(&post(
            "/v2/alerts/sitewatch-shop/close?identifierType=id",
            &auth,
            &close,
        )),
        "identifierType",
    );
    err(shapes::opsgenie(&post("/v2/alert", &auth, &valid)), "path");
}

#[test]
fn ntfy() {
    let check = |headers: &[(&str, &str)], body: &str| {
        shapes::ntfy(&request(
            "POST",
            "/sitewatch-alerts",
            headers,
            body.as_bytes(),
        ))
    };
    ok(check(
        &[
            ("Title", "shop is down"),
            ("Priority", "urgent"),
            ("Tags", "warning,skull"),
        ],
        "status 500",
    ));
    ok(check(&[("X-Priority", "5")], "plain"));
    ok(check(&[], "[not an object]"));
    err(
        check(&[], r#"{"topic": "x", "message": "down"}"#),
        "JSON object",
    );
    err(check(&[("Priority", "6")], "x"), "Priority");
    err(check(&[("Priority", "critical")], "x"), "Priority");
    err(check(&[("Tags", "a,,b")], "x"), "Tags");
    err(check(&[], ""), "empty");
    err(check(&[], &"x".repeat(4097)), "4096");
    err(shapes::ntfy(&request("POST", "/", &[], b"down")), "topic");
    err(
        shapes::ntfy(&request("GET", "/topic", &[], b"down")),
        "method",
    );
}

#[test]
fn gotify() {
    let valid = json!({"title": "shop is down", "message": "status 500", "priority": 8, "extras": {"client::display": {"contentType": "text/markdown"}}});
    ok(shapes::gotify(&post(
        "/message",
        &[("X-Gotify-Key", "AbCd")],
        &valid,
    )));
    ok(shapes::gotify(&post("/message?token=AbCd", &[], &valid)));
    err(shapes::gotify(&post("/message", &[], &valid)), "token");
    let check = |v: &Value| shapes::gotify(&post("/message", &[("X-Gotify-Key", "AbCd")], v));
    err(check(&json!({"title": "t"})), "`message`");
    err(
        check(&with(&valid, |v| v["priority"] = json!("high"))),
        "`priority`",
    );
    err(
        check(&with(&valid, |v| v["priority"] = json!(2.5))),
        "`priority`",
    );
    err(check(&with(&valid, |v| v["title"] = json!(1))), "`title`");
    err(
        shapes::gotify(&post("/messages", &[("X-Gotify-Key", "AbCd")], &valid)),
        "/message",
    );
}

#[test]
fn telegram() {
    let path = "/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendMessage";
    let check = |v: &Value| shapes::telegram(&post(path, &[], v));
    ok(check(
        &json!({"chat_id": -1001234567890i64, "text": "shop is down (500)!"}),
    ));
    ok(check(&json!({"chat_id": "@sitewatch", "text": "x"})));
    ok(check(
        &json!({"chat_id": 1, "text": r"shop\.example is down \(500\)\! \- see \#ops", "parse_mode": "MarkdownV2"}),
    ));
    ok(check(
        &json!({"chat_id": 1, "text": "<b>shop</b> is down &lt;500&gt; <a href=\"https://x.example/\">link</a>", "parse_mode": "HTML"}),
    ));
    err(
        check(&json!({"chat_id": 1, "text": "shop.example is down", "parse_mode": "MarkdownV2"})),
        "`.`",
    );
    err(
        check(&json!({"chat_id": 1, "text": "status (500)", "parse_mode": "MarkdownV2"})),
        "`(`",
    );
    err(
        check(&json!({"chat_id": 1, "text": "a & b", "parse_mode": "HTML"})),
        "`&`",
    );
    err(
        check(&json!({"chat_id": 1, "text": "a <x> b", "parse_mode": "HTML"})),
        "unsupported tag",
    );
    err(
        check(&json!({"chat_id": 1, "text": "1 < 2", "parse_mode": "HTML"})),
        "bare `<`",
    );
    err(check(&json!({"chat_id": 1.5, "text": "x"})), "`chat_id`");
    err(check(&json!({"text": "x"})), "`chat_id`");
    err(check(&json!({"chat_id": 1})), "`text`");
    err(check(&json!({"chat_id": 1, "text": ""})), "`text`");
    err(
        check(&json!({"chat_id": 1, "text": "x".repeat(4097)})),
        "`text`",
    );
    err(
        check(&json!({"chat_id": 1, "text": "x", "parse_mode": "markdown"})),
        "`parse_mode`",
    );
    err(
        shapes::telegram(&post(
            "/sendMessage",
            &[],
            &json!({"chat_id": 1, "text": "x"}),
        )),
        "path",
    );
}

#[test]
fn alertmanager() {
    let check = |v: &Value| shapes::alertmanager(&post("/api/v2/alerts", &[], v));
    let valid = json!([{
        "labels": {"alertname": "SiteDown", "site": "shop", "severity": "critical"},
        "annotations": {"summary": "shop is down", "description": "status 500"},
        "startsAt": "2024-05-01T12:00:00Z",
        "endsAt": "2024-05-01T14:05:00.5+02:00",
        "generatorURL": "http://127.0.0.1:9000/sites/shop"
    }]);
    ok(check(&valid));
    ok(check(&json!([{"labels": {"alertname": "SiteDown"}}])));
    err(check(&valid[0]), "array");
    err(check(&json!([])), "empty");
    err(check(&json!([{"labels": {"site": "shop"}}])), "alertname");
    err(check(&json!([{"annotations": {"summary": "x"}}])), "labels");
    err(
        check(&with(&valid, |v| v[0]["labels"]["code"] = json!(500))),
        "[0].labels.code",
    );
    err(
        check(&with(&valid, |v| v[0]["labels"]["bad-name"] = json!("x"))),
        "bad-name",
    );
    err(
        check(&with(&valid, |v| v[0]["annotations"]["n"] = json!(1))),
        "[0].annotations.n",
    );
    err(
        check(&with(&valid, |v| {
            v[0]["startsAt"] = json!("2024-05-01 12:00")
        })),
        "[0].startsAt",
    );
    err(
        check(&with(&valid, |v| v[0]["status"] = json!("resolved"))),
        "[0].status",
    );
    err(
        check(&with(&valid, |v| v[0]["generatorURL"] = json!("not a url"))),
        "generatorURL",
    );
    err(
        check(&with(&valid, |v| {
            v[0]["endsAt"] = json!("2024-05-01T11:00:00Z")
        })),
        "endsAt",
    );
    err(
        shapes::alertmanager(&post("/api/v1/alerts", &[], &valid)),
        "path",
    );
}

#[test]
fn webhook() {
    ok(shapes::webhook(&post(
        "/hook",
        &[],
        &json!({"event": "down"}),
    )));
    ok(shapes::webhook(&request(
        "POST",
        "/hook",
        &[("content-type", "application/json; charset=utf-8")],
        b"{}",
    )));
    err(shapes::webhook(&post("/hook", &[], &json!([1]))), "object");
    err(
        shapes::webhook(&request(
            "POST",
            "/hook",
            &[("Content-Type", "text/plain")],
            b"{}",
        )),
        "Content-Type",
    );
    err(
        shapes::webhook(&request(
            "POST",
            "/hook",
            &[("Content-Type", "application/json")],
            b"{nope",
        )),
        "not JSON",
    );
}
