-- Incidents: what people say of an outage on the status page (Statuspage's model): a title, the
-- sites it concerns, and a timeline of updates, each with a status; resolved by the last one.
CREATE TABLE IF NOT EXISTS incidents (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    -- JSON list of site names.
    sites       TEXT NOT NULL,
    status      TEXT NOT NULL,
    opened_us   INTEGER NOT NULL,
    resolved_us INTEGER
);
CREATE TABLE IF NOT EXISTS incident_updates (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    time_us     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_updates_by_incident ON incident_updates (incident_id, id);
