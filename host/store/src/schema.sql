-- sitewatch embedded store, schema version 9 (2 added measurements.duration_us, 3 the notifications,
-- 4 measurements.maintenance and cert_id, the certs table and alerts.detail, 5 the rollups, 6 the
-- cluster outbox mark, 7 alerts.remote and the cluster outbox's alert mark, 8
-- notifications.after_cluster, 9 measurements.steps). Times are microseconds since the Unix
-- epoch (UTC).
CREATE TABLE IF NOT EXISTS sites (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    url  TEXT NOT NULL,
    UNIQUE (name, url)
);

CREATE TABLE IF NOT EXISTS measurements (
    site_id       INTEGER NOT NULL REFERENCES sites (id),
    time_us       INTEGER NOT NULL,
    ok            INTEGER NOT NULL,
    status        INTEGER,
    ttfb_us       INTEGER,
    response_us   INTEGER,
    dns_us        INTEGER,
    connect_us    INTEGER,
    tls_us        INTEGER,
    body_bytes    INTEGER NOT NULL,
    truncated     INTEGER NOT NULL,
    error_kind    TEXT,
    error_message TEXT,
    lag_us        INTEGER NOT NULL,
    -- Plugin metrics as a JSON object of name to number, or NULL.
    metrics       TEXT,
    -- Request start to the probe's end (failures too); NULL in rows from schema 1.
    duration_us   INTEGER,
    -- 1 when the probe ran in a maintenance window of its site.
    maintenance   INTEGER NOT NULL DEFAULT 0,
    -- The TLS session and chain the probe saw (certs.id), NULL for plain HTTP.
    cert_id       INTEGER REFERENCES certs (id),
    -- A script site's steps, in order, as a JSON array of {"name", "us", "requests", "failed"};
    -- NULL for other kinds and in rows from before schema 9.
    steps         TEXT
);
CREATE INDEX IF NOT EXISTS measurements_by_site_time ON measurements (site_id, time_us);

-- Each distinct TLS session summary and served chain once (JSON: version, cipher, chain), so a
-- probe row holds only its id.
CREATE TABLE IF NOT EXISTS certs (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    details     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY,
    site          TEXT NOT NULL,
    url           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    availability  REAL NOT NULL,
    time_us       INTEGER NOT NULL,
    down_since_us INTEGER,
    message       TEXT NOT NULL,
    -- The formatter plugin's rendering, when one is configured.
    rendered      TEXT,
    -- Degraded and certificate alerts: JSON {"latency": {...}} or {"cert_expiry_us": ...}.
    detail        TEXT,
    -- 1 for another cluster node's alert, kept from the cluster's alert stream.
    remote        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (time_us);
-- A site's newest alert (restoring alert states, reminders).
CREATE INDEX IF NOT EXISTS alerts_by_site ON alerts (site, id);

-- Line-protocol lines waiting for InfluxDB, in order. Deleted once the server has them.
CREATE TABLE IF NOT EXISTS outbox (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL
);

-- Lines InfluxDB refused for good (a bad line answered 400/422, a line too large even alone
-- answered 413), with the server's answer. `sitewatch outbox --resend-parked` moves them back.
CREATE TABLE IF NOT EXISTS outbox_parked (
    id        INTEGER PRIMARY KEY,
    line      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    parked_us INTEGER NOT NULL
);

-- The running count of outbox lines dropped (oldest first) beyond storage.influxdb.max_outbox_lines.
-- One row, id 1, once anything was dropped.
CREATE TABLE IF NOT EXISTS outbox_dropped (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    lines   INTEGER NOT NULL,
    last_us INTEGER NOT NULL
);

-- Each notifier's durable outbox, and the record of what became of every notification. Rows are
-- written in the same transaction as their alert (reminders by the notifier itself); a notifier
-- sends its pending rows in id order and marks each delivered or failed with the service's answer.
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier   TEXT NOT NULL,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    -- down, recovered, or reminder (the site of alert_id is still down)
    kind       TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    -- The notifier's formatter rendering, when it has a formatter.
    body       TEXT,
    -- pending, delivered, failed, or superseded (a cluster leader's alert that another node
    -- delivered after this one died before the cluster's alert stream had it)
    state      TEXT NOT NULL DEFAULT 'pending',
    attempts   INTEGER NOT NULL DEFAULT 0,
    -- When it was delivered or given up, or when the last attempt was.
    updated_us INTEGER,
    -- The service's answer, or why it is not delivered yet or failed. Never holds a secret.
    result     TEXT,
    -- 1: a cluster leader's notification, sent only once the cluster's alert stream has its alert
    -- (alerts.id <= cluster_outbox.published_alert), so that a new leader can tell whether it
    -- went out.
    after_cluster INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_queue ON notifications (notifier, state, id);
CREATE INDEX IF NOT EXISTS notifications_by_alert ON notifications (alert_id);

-- Rollups (see host/store/src/history and host/core/src/history): per site, a row of cells per tier. A minute row holds the 60
-- minutes of one hour, an hour row the 24 hours of a day, a day row 32 days. `key` is the site
-- id times 2^32 plus the row's number since the Unix epoch: one integer key, so a row lives in
-- the table's own b-tree (a WITHOUT ROWID table would push rows of a few KB to overflow pages).
-- `data` is the cells, postcard-encoded and deflated.
CREATE TABLE IF NOT EXISTS rollup_minute (
    key  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_hour (
    key  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_day (
    key  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- The rollups hold exactly the measurements up to rowid `raw_rowid`; `tail_from_us` is the
-- earliest probe time of the measurements after it (NULL: none), so reports add that tail.
CREATE TABLE IF NOT EXISTS rollup_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    raw_rowid    INTEGER NOT NULL,
    tail_from_us INTEGER
);

-- A cluster node's measurements and its own alerts are its outbox for the cluster's streams:
-- `published_rowid` is the newest measurement the stream has acknowledged, `published_alert` the
-- newest alert (alerts.id) the alert stream has (see host/store/src/cluster_outbox.rs).
CREATE TABLE IF NOT EXISTS cluster_outbox (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    published_rowid INTEGER NOT NULL,
    published_alert INTEGER
);
