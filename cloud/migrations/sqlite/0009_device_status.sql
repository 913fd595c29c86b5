-- What each gate last reported in its check-in sync (the optional
-- `X-Gate-Status` header): the fleet view of the doors page. One row per
-- device, replaced on every sync; a gate that sends no header still gets
-- its `reported_at` (columns stay NULL). Touches no earlier table.
CREATE TABLE device_status (
    device_id        TEXT PRIMARY KEY REFERENCES devices (id),
    event_id         TEXT NOT NULL REFERENCES events (id),
    reported_at      INTEGER NOT NULL,
    scans_waiting    INTEGER,
    manifest_version INTEGER,
    clock            TEXT,
    clock_trusted    INTEGER,
    software         TEXT
);
CREATE INDEX device_status_event ON device_status (event_id);
