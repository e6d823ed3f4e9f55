//! The scriptable receiver: requests are recorded (whole body) before they are answered, even
//! when never answered; `n` counts earlier requests to the same path; scripted statuses and
//! headers go out as given; `start_on` takes a given port.

use crate::support::receiver::{Answer, Receiver};
use std::time::Duration;

#[tokio::test]
async fn receiver_records_then_answers_as_scripted() {
    let rx = Receiver::start(|r, n| match (r.path.as_str(), n) {
        ("/flaky", 0) => Answer::retry_after(7),
        ("/flaky", _) => Answer::status(202, "accepted"),
        ("/hang", _) => Answer::Hang,
        _ => Answer::ok(),
    })
    .await;
    let client = crate::support::http_client();
    let first = client
        .post(rx.url("/flaky?x=1"))
        .header("X-Test", "a")
        .body("one")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    let second = client
        .post(rx.url("/flaky"))
        .body("{\"k\": 2}")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.text().await.unwrap(), "accepted");

    let hung = client
        .post(rx.url("/hang"))
        .body("held")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.is_err(), "a Hang answer must not answer: {hung:?}");

    let flaky = rx.wait_for("/flaky", 2, Duration::from_secs(5)).await;
    assert_eq!(flaky[0].query.as_deref(), Some("x=1"));
    assert_eq!(flaky[0].query_param("x").as_deref(), Some("1"));
    assert_eq!(flaky[0].header("x-test"), Some("a"));
    assert_eq!(flaky[0].text(), "one");
    assert_eq!(flaky[1].json()["k"], 2);
    assert!(flaky[0].at <= flaky[1].at);
    let hang = rx.on("/hang");
    assert_eq!(hang.len(), 1, "a hung request is recorded");
    assert_eq!(hang[0].body, b"held");
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test]
async fn receiver_starts_on_a_given_port_and_frees_it_when_dropped() {
    let port = crate::support::closed_port();
    let rx = Receiver::start_on(port, |_, _| Answer::ok()).await;
    assert_eq!(rx.port(), port);
    assert_eq!(rx.url("/p"), format!("http://127.0.0.1:{port}/p"));
    let client = crate::support::http_client();
    let r = client.get(rx.url("/p")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    drop(rx);
    // The same port again, as a test does after the product it configured was restarted.
    let again = Receiver::start_on(port, |_, _| Answer::status(204, "")).await;
    let r = client.get(again.url("/p")).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn receiver_wait_for_names_what_arrived() {
    let rx = Receiver::accepting().await;
    crate::support::http_client()
        .post(rx.url("/other"))
        .body("something else")
        .send()
        .await
        .unwrap();
    let waited = tokio::spawn(async move {
        rx.wait_for("/wanted", 1, Duration::from_millis(200)).await;
    })
    .await;
    let panic = waited
        .expect_err("wait_for must panic on timeout")
        .into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("POST /other") && message.contains("something else"),
        "{message}"
    );
}
