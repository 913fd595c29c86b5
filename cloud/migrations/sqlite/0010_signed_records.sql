-- Signed scan records and the device roster (issue #17). Every record
-- carries its device's ed25519 signature; the roster (which devices may
-- record for an event, with their keys and revocation times) is published
-- in versions that chain like the manifest's; records refused but kept as
-- evidence (a conflicting second copy, or a revoked device's record made
-- after revocation) live apart from the check-in set. Additive only.

-- NULL for rows stored before signed records (never sent to devices).
ALTER TABLE checkins ADD COLUMN signature BLOB;

-- One row per published roster version: its chain digest and the LAN
-- gossip key of that version (sealed like signing keys).
CREATE TABLE device_roster_versions (
    event_id          TEXT NOT NULL REFERENCES events (id),
    version           INTEGER NOT NULL,
    digest            BLOB NOT NULL,
    sealed_gossip_key BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (event_id, version)
);

-- The state of each device as published at the version where it changed.
CREATE TABLE device_roster_entries (
    event_id    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    public_key  BLOB NOT NULL,
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER,
    PRIMARY KEY (event_id, version, node_id)
);
CREATE INDEX device_roster_entries_node ON device_roster_entries (event_id, node_id, version);

-- Refused records kept as evidence; never counted, never sent on.
CREATE TABLE checkin_evidence (
    event_id    TEXT NOT NULL,
    scan_id     TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('conflict', 'revoked')),
    record_hash TEXT NOT NULL,
    record      BLOB NOT NULL,
    signature   BLOB NOT NULL,
    from_device TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, scan_id, kind, record_hash)
);
