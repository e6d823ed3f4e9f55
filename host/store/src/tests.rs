use super::writer::{Record, WriterOptions};
use super::*;
use crate::clock::SystemClock;
use crate::event::Bus;
use crate::measurement::{ErrorKind, Phases, ProbeError};

fn measurement(site: &str, secs: i64, ok: bool) -> Measurement {
    Measurement {
        domain_expiry: None,
        redirect: None,
        probe_id: 0,
        steps: Vec::new(),
        location: None,
        site: site.into(),
        url: format!("http://{site}.test/").into(),
        time: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
        ok,
        status: ok.then_some(200),
        ttfb: Some(Duration::from_micros(1234)),
        response_time: ok.then(|| Duration::from_micros(2345)),
        body_bytes: 10,
        body_truncated: false,
        phases: Phases {
            dns: None,
            connect: Some(Duration::from_micros(50)),
            tls: Some(Duration::from_micros(70)),
        },
        error: (!ok).then(|| ProbeError {
            kind: ErrorKind::Timeout,
            message: "slow".into(),
        }),
        duration: Duration::from_micros(if ok { 2345 } else { 5_000_000 }),
        ended_us: 0,
        generation: 0,
        schedule_lag: Duration::from_micros(3),
        metrics: vec![("m.one".into(), 1.5)],
        tls: None,
        maintenance: false,
    }
    .placed_at_its_end()
}

trait PlacedAtItsEnd {
    /// Sets the timeline position to the wall-clock end, as rows read back from the store have.
    fn placed_at_its_end(self) -> Self;
}

impl PlacedAtItsEnd for Measurement {
    fn placed_at_its_end(mut self) -> Self {
        self.ended_us = self.finished_at().timestamp_micros();
        self
    }
}

/// Stores `records` through a writer of its own (also for other modules' tests).
use super::testing::write_all;

#[test]
fn measurements_and_alerts_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(&dir.path().join("data")).unwrap();
    assert!(report.set_aside.is_none());
    let ms: Vec<_> = (0..10).map(|i| measurement("a", i, i % 3 != 0)).collect();
    let alert = crate::alert::Transition::Down {
        availability: 0.5,
        time: ms[4].time,
    }
    .into_alert(&ms[0].site, &ms[0].url);
    let mut records: Vec<Record> = ms.iter().cloned().map(Record::Measurement).collect();
    records.push(Record::Measurement(measurement("b", 0, true)));
    records.push(Record::Alert(alert.clone(), Vec::new()));
    write_all(&store, records);

    let conn = store.connect().unwrap();
    let back = store
        .measurements(&conn, "a", "http://a.test/", ms[0].time)
        .unwrap();
    assert_eq!(back, ms);
    let later = store
        .measurements(&conn, "a", "http://a.test/", ms[5].time)
        .unwrap();
    assert_eq!(later.len(), 5);
    assert!(
        store
            .measurements(&conn, "a", "http://other/", ms[0].time)
            .unwrap()
            .is_empty()
    );
    let sites = store.sites_since(&conn, ms[0].time).unwrap();
    assert_eq!(
        sites,
        [
            ("a".to_string(), "http://a.test/".to_string()),
            ("b".into(), "http://b.test/".into())
        ]
    );
    assert_eq!(
        store.alerts_since(&conn, ms[0].time).unwrap(),
        std::slice::from_ref(&alert)
    );
    let last = store.last_alerts(&conn).unwrap();
    assert_eq!(
        last.get(&("a".into(), "http://a.test/".into())),
        Some(&vec![alert.clone()])
    );
    assert_eq!(
        store.outbox_len(&conn).unwrap(),
        12,
        "every record also waits in the outbox"
    );
}

#[cfg(unix)]
#[test]
fn a_burst_larger_than_the_outage_queue_is_written_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("data")).unwrap();
    // Sent all at once, faster than the store writes: nothing may be dropped while it is healthy.
    let n = writer::MAX_PENDING as i64 * 3;
    write_all(
        &store,
        (0..n)
            .map(|i| Record::Measurement(measurement("burst", i, true)))
            .collect(),
    );
    let conn = store.connect().unwrap();
    let kept = store
        .measurements(
            &conn,
            "burst",
            "http://burst.test/",
            DateTime::from_timestamp(0, 0).unwrap(),
        )
        .unwrap();
    assert_eq!(kept.len() as i64, n);
}

#[test]
fn the_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    Store::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn stores_set_aside_at_once_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut kept = Vec::new();
    for i in 0..5 {
        let garbage = format!("not a database, number {i} ").repeat(100);
        std::fs::write(dir.path().join(DB_FILE), &garbage).unwrap();
        let (_, report) = Store::open(dir.path()).unwrap();
        kept.push((report.set_aside.expect("set aside"), garbage));
        std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("{DB_FILE}{side}")));
        }
    }
    for (path, garbage) in &kept {
        assert_eq!(&std::fs::read_to_string(path).unwrap(), garbage, "{path:?}");
    }
    let names: std::collections::HashSet<_> = kept.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names.len(), 5);
}

#[test]
fn a_corrupt_file_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is not a database, just bytes that happen to be here.".repeat(100);
    std::fs::write(dir.path().join(DB_FILE), &garbage).unwrap();
    let (store, report) = Store::open(dir.path()).unwrap();
    let aside = report.set_aside.expect("set aside");
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        garbage,
        "the old bytes are kept"
    );
    write_all(&store, vec![Record::Measurement(measurement("a", 0, true))]);
    let conn = store.connect().unwrap();
    assert_eq!(
        store
            .sites_since(&conn, DateTime::from_timestamp(0, 0).unwrap())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn retention_prunes_old_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let now = from_us(Utc::now().timestamp_micros());
    let mut old = measurement("a", 0, true);
    old.time = now - chrono::TimeDelta::hours(2);
    let old = old.placed_at_its_end();
    let mut fresh = measurement("a", 0, true);
    fresh.time = now - chrono::TimeDelta::minutes(10);
    let fresh = fresh.placed_at_its_end();
    let tx = Bus::new(Arc::new(SystemClock::new()));
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(20),
            retention: crate::history::Retention {
                raw: Duration::from_secs(3600),
                ..Default::default()
            },
            rollup_every: crate::history::DEFAULT_ROLLUP_EVERY,
            rollups: true,
            outbox: false,
            location: "test".into(),
        },
        Arc::new(SystemClock::new()),
        tx,
    );
    handle.send(Record::Measurement(old.clone()));
    handle.send(Record::Measurement(fresh.clone()));
    drop(handle);
    thread.join().unwrap().expect("every record stored");
    // The writer prunes at its first flush; open a fresh writer to prune what was just written.
    write_all_with_retention(&store, Duration::from_secs(3600));
    let conn = store.connect().unwrap();
    let left = store
        .measurements(
            &conn,
            "a",
            "http://a.test/",
            old.time - chrono::TimeDelta::hours(1),
        )
        .unwrap();
    assert_eq!(left, [fresh]);
}

fn write_all_with_retention(store: &Store, retention: Duration) {
    prune_with(
        store,
        crate::history::Retention {
            raw: retention,
            ..Default::default()
        },
    );
}

#[test]
fn a_failing_store_is_reported_and_nothing_is_lost_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    // Make the database path unusable: a directory where the file should be.
    std::fs::remove_file(store.path()).unwrap();
    std::fs::create_dir(store.path()).unwrap();
    let tx = Bus::new(Arc::new(SystemClock::new()));
    let mut events = tx.subscribe();
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(20),
            retention: crate::history::Retention {
                raw: Duration::from_secs(1_000_000_000),
                ..Default::default()
            },
            rollup_every: crate::history::DEFAULT_ROLLUP_EVERY,
            rollups: true,
            outbox: false,
            location: "test".into(),
        },
        Arc::new(SystemClock::new()),
        tx,
    );
    let ms: Vec<_> = (0..100).map(|i| measurement("a", i, true)).collect();
    for m in &ms {
        handle.send(Record::Measurement(m.clone()));
    }
    let mut next = || -> Arc<crate::event::Event> {
        match events.recv_blocking() {
            Some(crate::event::Received::Event(e)) => e,
            other => panic!("{other:?}"),
        }
    };
    let first = next();
    let crate::event::Event::Error(e) = &*first else {
        panic!("{first:?}")
    };
    assert!(
        e.message.contains("cannot write to the store")
            && e.message.contains("keeping 100 records"),
        "{}",
        e.message
    );
    let failing = next();
    let crate::event::Event::Sink(s) = &*failing else {
        panic!("{failing:?}")
    };
    assert!(!s.healthy && s.backlog == 100, "{s:?}");
    // The disk comes back.
    std::fs::remove_dir(store.path()).unwrap();
    let second = next();
    let crate::event::Event::Error(e) = &*second else {
        panic!("{second:?}")
    };
    assert!(e.message.contains("again"), "{}", e.message);
    let healthy = next();
    assert!(
        matches!(&*healthy, crate::event::Event::Sink(s) if s.healthy),
        "{healthy:?}"
    );
    drop(handle);
    thread.join().unwrap().expect("every record stored");
    let conn = store.connect().unwrap();
    assert_eq!(
        store
            .measurements(&conn, "a", "http://a.test/", ms[0].time)
            .unwrap(),
        ms
    );
}

#[test]
fn names_and_urls_with_quotes_commas_spaces_and_unicode_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let mut m = measurement("x", 0, true);
    m.site = "shop, \"EU\" — café".into();
    m.url = "https://xn--caf-dma.example/a%20b?q=\"x\",y".into();
    write_all(&store, vec![Record::Measurement(m.clone())]);
    let conn = store.connect().unwrap();
    assert_eq!(
        store.measurements(&conn, &m.site, &m.url, m.time).unwrap(),
        [m.clone()]
    );
    let line = super::lines::probe_line(&m, "test");
    let parsed: Vec<_> = influxdb_line_protocol::parse_lines(&line)
        .collect::<Result<_, _>>()
        .unwrap();
    let tags: Vec<_> = parsed[0]
        .series
        .tag_set
        .as_ref()
        .unwrap()
        .iter()
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(
        tags,
        [
            "http".to_owned(),
            "test".to_owned(),
            m.site.to_string(),
            m.url.to_string()
        ]
    );
}

#[test]
fn a_schema_1_store_is_upgraded_in_place_and_its_rows_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE sites (id INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL, UNIQUE (name, url));
             CREATE TABLE measurements (site_id INTEGER NOT NULL, time_us INTEGER NOT NULL, ok INTEGER NOT NULL,
                 status INTEGER, ttfb_us INTEGER, response_us INTEGER, dns_us INTEGER, connect_us INTEGER,
                 tls_us INTEGER, body_bytes INTEGER NOT NULL, truncated INTEGER NOT NULL, error_kind TEXT,
                 error_message TEXT, lag_us INTEGER NOT NULL, metrics TEXT);
             INSERT INTO sites VALUES (1, 'a', 'http://a.test/');
             INSERT INTO measurements VALUES (1, 1000000, 1, 200, 1000, 2500, NULL, NULL, NULL, 5, 0, NULL, NULL, 0, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    let conn = store.connect().unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::SCHEMA_VERSION);
    let ms = store
        .measurements(&conn, "a", "http://a.test/", from_us(0))
        .unwrap();
    assert_eq!(ms.len(), 1);
    // A row without a duration ends at its response time.
    assert_eq!(ms[0].duration, Duration::from_micros(2500));
    assert_eq!(ms[0].ended_us, 1_002_500);
}

#[test]
fn an_unknown_alert_kind_in_the_store_is_an_error_not_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let conn = store.connect().unwrap();
    conn.execute(
        "INSERT INTO alerts (site, url, kind, availability, time_us, message) VALUES ('a', 'u', 'sideways', 1.0, 0, 'm')",
        [],
    )
    .unwrap();
    let err = store.alerts_since(&conn, from_us(0)).unwrap_err();
    assert!(err.to_string().contains("sideways"), "{err}");
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Column `i` of every row `sql` returns.
fn column<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str, i: usize) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(i))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The outbox's lines, in order.
fn outbox_lines(conn: &Connection) -> Vec<String> {
    column(conn, "SELECT line FROM outbox ORDER BY id", 0)
}

#[test]
fn the_outbox_length_comes_from_the_id_b_tree_not_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let conn = store.connect().unwrap();
    // The plan's steps are in its fourth column.
    let plan: Vec<String> = column(
        &conn,
        "EXPLAIN QUERY PLAN SELECT (SELECT MIN(id) FROM outbox), (SELECT MAX(id) FROM outbox)",
        3,
    );
    assert!(
        plan.iter().all(|step| !step.starts_with("SCAN outbox")),
        "each bound is one b-tree descent: {plan:?}"
    );
    let pair: Vec<String> = column(
        &conn,
        "EXPLAIN QUERY PLAN SELECT MIN(id), MAX(id) FROM outbox",
        3,
    );
    assert!(
        pair.iter().any(|step| step.starts_with("SCAN outbox")),
        "why the bounds are two subqueries: {pair:?}"
    );
}

#[test]
fn the_writer_holds_the_outbox_to_its_limit_dropping_the_oldest_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    store.set_outbox_limit(100);
    let tx = Bus::new(Arc::new(SystemClock::new()));
    let mut events = tx.subscribe();
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(10),
            retention: crate::history::Retention {
                raw: Duration::from_secs(1_000_000_000),
                ..Default::default()
            },
            rollup_every: crate::history::DEFAULT_ROLLUP_EVERY,
            rollups: true,
            outbox: true,
            location: "test".into(),
        },
        Arc::new(SystemClock::new()),
        tx,
    );
    let conn = store.connect().unwrap();
    let mut sent = 0;
    let mut send = |n: i64| {
        for i in sent..sent + n {
            handle.send(Record::Measurement(measurement("a", i, true)));
        }
        sent += n;
        while count(&conn, "SELECT COUNT(*) FROM measurements") < sent {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(250);
    send(10);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 100);
    assert_eq!(store.outbox_len(&conn).unwrap(), 100);
    let newest = outbox_lines(&conn);
    let expected: Vec<String> = (160..260)
        .map(|i| super::lines::probe_line(&measurement("a", i, true), "test"))
        .collect();
    assert_eq!(newest, expected, "the oldest lines went first");
    // The sender delivers everything; new lines fit again.
    conn.execute("DELETE FROM outbox", []).unwrap();
    send(10);
    drop(handle);
    thread.join().unwrap().expect("every record stored");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 10);

    let mut messages = Vec::new();
    while let Some(crate::event::Received::Event(e)) = events.try_recv() {
        let crate::event::Event::Error(e) = &*e else {
            panic!("{e:?}")
        };
        assert_eq!(e.source, "influxdb");
        messages.push(e.message.clone());
    }
    assert_eq!(
        messages.len(),
        2,
        "one when it fills, one when it has room: {messages:?}"
    );
    assert!(
        messages[0].contains("oldest lines to make room")
            && messages[0].contains("storage.influxdb.max_outbox_lines"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("160 lines were dropped"),
        "{messages:?}"
    );
    let summary = store.outbox_summary(&conn).unwrap();
    assert_eq!(
        summary.dropped, 160,
        "the running count is kept in the store"
    );
    assert!(summary.last_dropped.is_some());
    assert_eq!(summary.waiting, 10);
}

#[test]
fn the_outbox_summary_lists_waiting_and_parked_lines_which_can_be_resent_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let mut conn = store.connect().unwrap();
    assert_eq!(
        store.outbox_summary(&conn).unwrap(),
        OutboxSummary {
            waiting: 0,
            first_time: None,
            last_time: None,
            parked: 0,
            reasons: Vec::new(),
            dropped: 0,
            last_dropped: None,
        }
    );
    write_all(
        &store,
        (0..5)
            .map(|i| Record::Measurement(measurement("a", i, true)))
            .collect(),
    );
    for (line, reason) in [
        ("p1", "400 Bad Request: type conflict"),
        ("p2", "413 Payload Too Large"),
        ("p3", "400 Bad Request: type conflict"),
    ] {
        conn.execute(
            "INSERT INTO outbox_parked (line, reason, parked_us) VALUES (?1, ?2, 0)",
            [line, reason],
        )
        .unwrap();
    }
    let s = store.outbox_summary(&conn).unwrap();
    assert_eq!(s.waiting, 5);
    assert_eq!(s.first_time, Some(measurement("a", 0, true).time));
    assert_eq!(s.last_time, Some(measurement("a", 4, true).time));
    assert_eq!(s.parked, 3);
    assert_eq!(
        s.reasons,
        [
            ("400 Bad Request: type conflict".to_owned(), 2),
            ("413 Payload Too Large".to_owned(), 1)
        ]
    );
    assert_eq!(store.resend_parked(&mut conn).unwrap(), 3);
    let tail: Vec<String> = column(&conn, "SELECT line FROM outbox ORDER BY id DESC LIMIT 3", 0);
    assert_eq!(
        tail,
        ["p3", "p2", "p1"],
        "resent at the end, in parked order"
    );
    let s = store.outbox_summary(&conn).unwrap();
    assert_eq!((s.waiting, s.parked), (8, 0));
    conn.execute(
        "INSERT INTO outbox_parked (line, reason, parked_us) VALUES ('p4', 'x', 0)",
        [],
    )
    .unwrap();
    assert_eq!(store.drop_parked(&conn).unwrap(), 1);
    let s = store.outbox_summary(&conn).unwrap();
    assert_eq!((s.waiting, s.parked), (8, 0));
}

/// What `sitewatch alerts` says of each notification of `alert_id`.
fn said(conn: &Connection, alert_id: i64) -> Vec<String> {
    crate::notices::deliveries(conn, alert_id)
        .unwrap()
        .iter()
        .map(|d| d.describe())
        .collect()
}

#[test]
fn a_cluster_leaders_notifications_wait_until_the_alert_stream_has_their_alert() {
    use crate::cluster_outbox::Alerts;
    use crate::notices::{self as outbox};
    use crate::outbox::{Outbox, Queue, Settled};
    use crate::writer::Queued;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("data")).unwrap();
    // The node runs as a cluster node from the start: every alert after this is published.
    let published = Queue::new(&store, Alerts::new(&store));
    published.call(|_, _| Ok(())).unwrap();
    let now = chrono::Utc::now();
    let settle = |id: i64, how: Settled<'_>| {
        published
            .call(|o, c| o.settle(c, id, id, how, now))
            .unwrap()
    };
    let m = measurement("a", 0, false);
    let alert = |secs: i64, site: &str| {
        crate::alert::Transition::Down {
            availability: 0.5,
            time: m.time + chrono::TimeDelta::seconds(secs),
        }
        .into_alert(&site.into(), &m.url)
    };
    let to_hook = |after_cluster: bool| {
        vec![Queued {
            notifier: "hook".into(),
            body: None,
            after_cluster,
        }]
    };
    write_all(
        &store,
        vec![
            Record::Alert(alert(1, "a"), to_hook(true)),
            Record::Alert(alert(2, "b"), to_hook(false)),
        ],
    );
    let conn = store.connect().unwrap();
    assert!(
        outbox::pending(&conn, "hook", 10).unwrap().is_empty(),
        "the leader's notification waits, and the one behind it keeps its place"
    );
    let waiting = published.call(|o, c| o.waiting(c, 10)).unwrap();
    assert_eq!(
        waiting
            .iter()
            .map(|(_, (a, gated))| (&*a.site, *gated))
            .collect::<Vec<_>>(),
        [("a", true), ("b", false)]
    );
    let mut rang = store.watch_notifications();
    rang.mark_unchanged();
    settle(waiting[0].0, Settled::Delivered(""));
    assert!(rang.has_changed().unwrap(), "the notifiers are told");
    let sites: Vec<String> = outbox::pending(&conn, "hook", 10)
        .unwrap()
        .iter()
        .map(|n| n.alert.site.to_string())
        .collect();
    assert_eq!(sites, ["a", "b"], "in order, once the stream has the first");

    // Another node delivered the next one: it is superseded, never sent, and says so.
    write_all(&store, vec![Record::Alert(alert(3, "c"), to_hook(true))]);
    let (id, (_, gated)) = published
        .call(|o, c| o.waiting(c, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert!(gated);
    settle(
        id,
        Settled::Refused("not sent: node n2 led after this node and delivered this alert"),
    );
    assert_eq!(outbox::pending(&conn, "hook", 10).unwrap().len(), 2);
    assert_eq!(
        said(&conn, id),
        ["hook superseded: not sent: node n2 led after this node and delivered this alert"]
    );
    let s = outbox::summaries(&conn).unwrap();
    assert_eq!((s["hook"].pending, s["hook"].failed), (2, 0));

    // The node runs without a cluster now: what waited for the stream goes out.
    write_all(&store, vec![Record::Alert(alert(4, "d"), to_hook(true))]);
    assert_eq!(outbox::pending(&conn, "hook", 10).unwrap().len(), 2);
    assert_eq!(
        outbox::release_cluster_waits(&store.connect_for_writing().unwrap()).unwrap(),
        2,
        "the first alert's notification (still pending) and the new one"
    );
    assert_eq!(outbox::pending(&conn, "hook", 10).unwrap().len(), 3);
}

#[test]
fn an_alert_and_its_notifications_are_committed_together_and_queue_in_order() {
    use crate::notices::{self as outbox, Mark, NoticeKind};
    use crate::writer::Queued;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("data")).unwrap();
    let rang = store.watch_notifications();
    let m = measurement("a", 0, false);
    let down = crate::alert::Transition::Down {
        availability: 0.5,
        time: m.time,
    }
    .into_alert(&m.site, &m.url);
    let queued = |name: &str, body: Option<&str>| Queued {
        notifier: name.into(),
        body: body.map(str::to_owned),
        after_cluster: false,
    };
    write_all(
        &store,
        vec![
            Record::Alert(
                down.clone(),
                vec![queued("slack", None), queued("hook", Some("{}"))],
            ),
            Record::Alert(down.clone(), vec![queued("slack", None)]),
        ],
    );
    assert!(rang.has_changed().unwrap(), "the notifiers are told");
    let mut conn = store.connect().unwrap();
    let slack = outbox::pending(&conn, "slack", 10).unwrap();
    assert_eq!(slack.len(), 2);
    assert!(slack[0].id < slack[1].id && slack[0].alert_id < slack[1].alert_id);
    assert_eq!((slack[0].kind, &slack[0].alert), (NoticeKind::DOWN, &down));
    let hook = outbox::pending(&conn, "hook", 10).unwrap();
    assert_eq!(hook[0].alert_id, slack[0].alert_id, "the same alert row");
    assert_eq!(hook[0].body.as_deref(), Some("{}"));

    outbox::mark(&mut conn, &[slack[0].id], Mark::Attempted, m.time, "503").unwrap();
    outbox::mark(&mut conn, &[slack[0].id], Mark::Delivered, m.time, "200 OK").unwrap();
    outbox::mark(
        &mut conn,
        &[hook[0].id],
        Mark::Failed,
        m.time,
        "400 Bad Request: no",
    )
    .unwrap();
    let left = outbox::pending(&conn, "slack", 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, slack[1].id);
    assert_eq!(
        said(&conn, slack[0].alert_id),
        [
            format!(
                "delivered to slack at {}",
                crate::clock::rfc3339_seconds(m.time)
            ),
            "hook failed: 400 Bad Request: no".to_owned()
        ]
    );
    let s = outbox::summaries(&conn).unwrap();
    assert_eq!((s["slack"].pending, s["slack"].delivered), (1, 1));
    assert_eq!(s["slack"].last.as_ref().unwrap().2, "200 OK");
    assert_eq!(s["hook"].failed, 1);
    // The newest down alert waits to be sent: no reminder of it yet.
    assert!(outbox::still_down(&conn, "slack").unwrap().is_empty());
    outbox::mark(&mut conn, &[slack[1].id], Mark::Delivered, m.time, "200 OK").unwrap();
    let still = outbox::still_down(&conn, "slack").unwrap();
    assert_eq!(
        still.len(),
        1,
        "the site's newest alert is down: it is still down"
    );
    assert_eq!(still[0].alert_id, slack[1].alert_id);
    assert!(outbox::add_reminder(&mut conn, "slack", still[0].alert_id, m.time).unwrap());
    assert!(
        !outbox::add_reminder(&mut conn, "slack", still[0].alert_id, m.time).unwrap(),
        "one reminder waits at a time"
    );
    assert!(
        !outbox::add_reminder(&mut conn, "slack", slack[0].alert_id, m.time).unwrap(),
        "not of an alert that is not the site's newest"
    );
    assert_eq!(
        outbox::pending(&conn, "slack", 10).unwrap()[0].kind,
        NoticeKind::Reminder
    );
}

#[test]
fn tls_details_are_stored_once_per_chain_and_maintenance_and_alert_details_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let not_after = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let tls = |serial: &str| {
        Arc::new(crate::measurement::TlsDetails {
            version: Some("TLS 1.3".into()),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            chain: vec![crate::measurement::CertInfo {
                subject: "CN=a.test".into(),
                issuer: "CN=CA".into(),
                sans: vec!["a.test".into(), "127.0.0.1".into()],
                not_before: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                not_after,
                serial: serial.into(),
                fingerprint_sha256: serial.repeat(32),
            }],
        })
    };
    let ms: Vec<_> = (0..6)
        .map(|i| {
            let mut m = measurement("a", i, true);
            // Two distinct chains: the first three probes saw one, the rest its renewal.
            m.tls = Some(tls(if i < 3 { "01" } else { "02" }));
            m.maintenance = i % 2 == 0;
            m
        })
        .collect();
    let degraded = crate::alert::Transition::Degraded {
        availability: 1.0,
        time: ms[1].time,
        breach: crate::alert::LatencyBreach {
            metric: crate::alert::LatencyMetric::ResponseP95,
            value_ms: 1240.0,
            limit: Duration::from_millis(800),
        },
    }
    .into_alert(&ms[0].site, &ms[0].url);
    let cert = crate::alert::Transition::CertExpiring {
        availability: 1.0,
        time: ms[2].time,
        expiry: not_after,
    }
    .into_alert(&ms[0].site, &ms[0].url);
    let mut records: Vec<Record> = ms.iter().cloned().map(Record::Measurement).collect();
    records.push(Record::Alert(degraded.clone(), Vec::new()));
    records.push(Record::Alert(cert.clone(), Vec::new()));
    write_all(&store, records);

    let conn = store.connect().unwrap();
    assert_eq!(
        store
            .measurements(&conn, "a", "http://a.test/", ms[0].time)
            .unwrap(),
        ms
    );
    let chains: i64 = conn
        .query_row("SELECT COUNT(*) FROM certs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chains, 2, "one row per distinct chain, not per probe");
    let mut back = store.alerts_since(&conn, ms[0].time).unwrap();
    back.reverse();
    assert_eq!(back, [degraded.clone(), cert.clone()]);
    // Each condition's newest alert, for restoring states.
    let last = &store.last_alerts(&conn).unwrap()[&("a".to_owned(), "http://a.test/".to_owned())];
    assert_eq!(last.len(), 2);
    assert!(last.contains(&degraded) && last.contains(&cert));
}

#[test]
fn a_schema_3_store_gains_the_schema_4_columns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        let conn = store.connect().unwrap();
        // Back to what schema 3 had.
        conn.execute_batch(
            "ALTER TABLE measurements DROP COLUMN maintenance;
             ALTER TABLE measurements DROP COLUMN cert_id;
             ALTER TABLE alerts DROP COLUMN detail;
             DROP TABLE certs;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    let mut m = measurement("a", 0, true);
    m.maintenance = true;
    write_all(&store, vec![Record::Measurement(m.clone())]);
    let conn = store.connect().unwrap();
    assert_eq!(
        store
            .measurements(&conn, "a", "http://a.test/", m.time)
            .unwrap(),
        [m]
    );
}

/// A writer with `retention` that runs one flush (in which it prunes) and stops.
fn prune_with(store: &Store, retention: crate::history::Retention) {
    let tx = Bus::new(Arc::new(SystemClock::new()));
    let (handle, thread) = writer::spawn(
        store.clone(),
        WriterOptions {
            flush_every: Duration::from_millis(20),
            retention,
            rollup_every: crate::history::DEFAULT_ROLLUP_EVERY,
            rollups: true,
            outbox: false,
            location: "test".into(),
        },
        Arc::new(SystemClock::new()),
        tx,
    );
    std::thread::sleep(Duration::from_millis(80));
    drop(handle);
    thread.join().unwrap().expect("every record stored");
}

#[test]
fn alerts_are_kept_unless_they_have_a_retention_and_then_the_newest_of_each_condition_stays() {
    use crate::alert::Transition;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let now = Utc::now();
    let at = |days: i64| now - chrono::TimeDelta::days(days);
    let m = measurement("a", 0, false);
    let down = |t| {
        Transition::Down {
            availability: 0.5,
            time: t,
        }
        .into_alert(&m.site, &m.url)
    };
    let recovered = |t| {
        Transition::Recovered {
            availability: 1.0,
            time: t,
            down_since: t - chrono::TimeDelta::hours(1),
        }
        .into_alert(&m.site, &m.url)
    };
    let queued = vec![writer::Queued {
        notifier: "hook".into(),
        body: None,
        after_cluster: false,
    }];
    write_all(
        &store,
        vec![
            Record::Alert(down(at(40)), queued.clone()),
            Record::Alert(recovered(at(39)), queued.clone()),
            Record::Alert(down(at(30)), queued.clone()),
            Record::Alert(down(at(1)), queued),
        ],
    );
    let count = |sql: &str| -> i64 {
        store
            .connect()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    prune_with(&store, crate::history::Retention::default());
    assert_eq!(
        count("SELECT COUNT(*) FROM alerts"),
        4,
        "never pruned by default"
    );
    prune_with(
        &store,
        crate::history::Retention {
            alerts: Some(Duration::from_secs(35 * 86_400)),
            ..Default::default()
        },
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM alerts"),
        2,
        "the two older than 35 days went"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM notifications"),
        2,
        "with their notifications"
    );
    prune_with(
        &store,
        crate::history::Retention {
            alerts: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM alerts WHERE time_us > 0"),
        1,
        "the newest down alert stays: an open incident is restored from it"
    );
}

#[test]
fn raw_rows_and_rollups_are_pruned_by_their_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let now = Utc::now();
    let ms: Vec<Measurement> = [40i64, 20, 10, 3]
        .iter()
        .map(|days| {
            let mut m = measurement("a", 0, true);
            m.time = now - chrono::TimeDelta::days(*days);
            m.placed_at_its_end()
        })
        .collect();
    write_all(&store, ms.into_iter().map(Record::Measurement).collect());
    let count = |sql: &str| -> i64 {
        store
            .connect()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("SELECT COUNT(*) FROM rollup_minute"), 4);
    let day_rows = count("SELECT COUNT(*) FROM rollup_day");
    prune_with(
        &store,
        crate::history::Retention {
            raw: Duration::from_secs(86_400),
            minute: Duration::from_secs(15 * 86_400),
            ..Default::default()
        },
    );
    // Raw rows: all are older than a day, but the newest row of the table stays (rowids never
    // repeat, which the rollups' checkpoint mark relies on).
    assert_eq!(count("SELECT COUNT(*) FROM measurements"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM rollup_minute"),
        2,
        "10 and 3 days old"
    );
    assert_eq!(count("SELECT COUNT(*) FROM rollup_hour"), 4);
    assert_eq!(count("SELECT COUNT(*) FROM rollup_day"), day_rows);
}

/// Overwrites some leaf pages of the measurements table with garbage (after the WAL is moved
/// into the file); returns how many.
fn damage_some_measurement_pages(path: &Path, every: usize) -> usize {
    use std::io::{Seek, SeekFrom, Write};
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let pages: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = 'measurements' AND pagetype = 'leaf' ORDER BY pageno")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut n = 0;
    for p in pages.iter().skip(1).step_by(every) {
        file.seek(SeekFrom::Start((*p as u64 - 1) * page_size as u64))
            .unwrap();
        file.write_all(&vec![0x5A; page_size as usize]).unwrap();
        n += 1;
    }
    n
}

#[test]
fn a_salvage_keeps_every_readable_row_with_its_rowid_and_lowers_the_marks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let ms: Vec<_> = (0..4000).map(|i| measurement("a", i, i % 7 != 0)).collect();
    let alert = crate::alert::Transition::Down {
        availability: 0.5,
        time: ms[10].time,
    }
    .into_alert(&ms[0].site, &ms[0].url);
    let mut records: Vec<Record> = ms.iter().cloned().map(Record::Measurement).collect();
    records.push(Record::Alert(
        alert,
        vec![writer::Queued {
            notifier: "hook".into(),
            body: None,
            after_cluster: false,
        }],
    ));
    write_all(&store, records);
    let incident = {
        let mut conn = store.connect_for_writing().unwrap();
        let id = crate::incidents::open(
            &mut conn,
            "Database failover",
            &["a".into()],
            crate::incidents::Status::Investigating,
            None,
            ms[10].time,
        )
        .unwrap();
        crate::incidents::get(&conn, id).unwrap().unwrap()
    };
    let damaged = damage_some_measurement_pages(store.path(), 3);
    assert!(damaged > 0);
    // The rollups' mark says every row is rolled up; the cluster mark too.
    {
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT OR REPLACE INTO cluster_outbox (id, published_rowid) VALUES (1, 4000);
             UPDATE rollup_state SET raw_rowid = 4000;",
        )
        .unwrap();
    }
    let (aside, mut fresh) = store.replace_damaged().unwrap();
    let salvaged = salvage::salvage(&aside, &mut fresh).unwrap();
    let kept = salvaged
        .copied
        .iter()
        .find(|(t, _)| *t == "measurements")
        .map_or(0, |(_, n)| *n);
    assert!(kept > 1000 && kept < 4000, "{salvaged:?}");
    assert!(!salvaged.lost.is_empty(), "{salvaged:?}");
    assert!(
        salvaged.lost.iter().all(|l| l.starts_with("measurements")),
        "{salvaged:?}"
    );
    assert!(
        salvaged.check.iter().any(|l| l != "ok"),
        "the check names the damage: {salvaged:?}"
    );
    // Every kept row is the row it was, under its rowid.
    let conn = store.connect().unwrap();
    let rows: Vec<(i64, i64)> = conn
        .prepare("SELECT rowid, time_us FROM measurements ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len() as u64, kept);
    for (rowid, time_us) in &rows {
        assert_eq!(*time_us, ms[*rowid as usize - 1].time.timestamp_micros());
    }
    let (alerts, pending): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM alerts), (SELECT COUNT(*) FROM notifications WHERE state = 'pending')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((alerts, pending), (1, 1));
    // The incidents people posted are kept, their timelines too.
    assert_eq!(
        crate::incidents::get(&conn, incident.id).unwrap(),
        Some(incident)
    );
    let newest = rows.last().unwrap().0;
    let marks: (i64, i64) = conn
        .query_row(
            "SELECT (SELECT raw_rowid FROM rollup_state), (SELECT published_rowid FROM cluster_outbox)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(marks, (newest.min(4000), newest.min(4000)));
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert!(salvaged.describe().contains("rows kept"));
}

/// A store of schema 8 (no steps) gains the steps column in place: its rows and rollups read
/// back as they were, and a script site's steps are kept from then on.
#[test]
fn a_schema_8_store_gains_steps_and_keeps_its_rows_and_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let old = measurement("a", 0, true);
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        write_all(&store, vec![Record::Measurement(old.clone())]);
        let conn = store.connect().unwrap();
        // Back to what schema 8 had: the measurements table without `steps` (rebuilt by hand:
        // SQLite's DROP COLUMN trips over the schema's comments).
        let columns = "site_id, time_us, ok, status, ttfb_us, response_us, dns_us, connect_us, tls_us, \
                       body_bytes, truncated, error_kind, error_message, lag_us, metrics, duration_us, \
                       maintenance, cert_id";
        conn.execute_batch(&format!(
            "CREATE TABLE old AS SELECT rowid AS id, {columns} FROM measurements;
             DROP TABLE measurements;
             CREATE TABLE measurements (site_id INTEGER NOT NULL, time_us INTEGER NOT NULL,
                 ok INTEGER NOT NULL, status INTEGER, ttfb_us INTEGER, response_us INTEGER,
                 dns_us INTEGER, connect_us INTEGER, tls_us INTEGER, body_bytes INTEGER NOT NULL,
                 truncated INTEGER NOT NULL, error_kind TEXT, error_message TEXT,
                 lag_us INTEGER NOT NULL, metrics TEXT, duration_us INTEGER,
                 maintenance INTEGER NOT NULL DEFAULT 0, cert_id INTEGER);
             INSERT INTO measurements (rowid, {columns}) SELECT id, {columns} FROM old;
             DROP TABLE old;
             PRAGMA user_version = 8;"
        ))
        .unwrap();
        assert!(!super::has_column(&conn, "measurements", "steps").unwrap());
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    let conn = store.connect().unwrap();
    assert_eq!(
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .unwrap(),
        super::SCHEMA_VERSION
    );
    let mut m = measurement("a", 1, false);
    m.steps = vec![
        crate::measurement::Step {
            name: "log\"in\n".into(),
            duration: Duration::from_micros(12_345),
            requests: 2,
            failed: false,
        },
        crate::measurement::Step {
            name: "order".into(),
            duration: Duration::from_micros(700),
            requests: 1,
            failed: true,
        },
    ];
    write_all(&store, vec![Record::Measurement(m.clone())]);
    assert_eq!(
        store
            .measurements(&conn, "a", "http://a.test/", old.time)
            .unwrap(),
        [old, m]
    );
    // The rollups agree with the raw rows, old and new.
    let found = crate::history::rebuild(&mut store.connect().unwrap(), true).unwrap();
    assert_eq!(found.differing, 0, "{found:?}");
}

#[test]
fn a_damaged_steps_value_costs_the_steps_not_the_row() {
    assert_eq!(crate::steps_json(&[]), None);
    assert!(crate::parse_steps(Some("{not json")).is_empty());
    assert!(crate::parse_steps(Some(r#"[{"name": 3}]"#)).is_empty());
    assert!(crate::parse_steps(None).is_empty());
}

#[test]
fn a_salvage_of_a_store_from_before_incidents_loses_nothing_it_never_had() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    write_all(
        &store,
        (0..10)
            .map(|i| Record::Measurement(measurement("a", i, true)))
            .collect(),
    );
    store
        .connect()
        .unwrap()
        .execute_batch("DROP TABLE incident_updates; DROP TABLE incidents;")
        .unwrap();
    let (aside, mut fresh) = store.replace_damaged().unwrap();
    let salvaged = salvage::salvage(&aside, &mut fresh).unwrap();
    assert!(salvaged.lost.is_empty(), "{salvaged:?}");
    assert!(
        salvaged.copied.contains(&("measurements", 10)),
        "{salvaged:?}"
    );
}
