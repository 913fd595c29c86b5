-- Devices and check-in sync: enrollment codes, enrolled gate devices, the
-- per-event gossip key, and the cloud's replica of each event's check-in
-- CRDT (its own node id, sequence and HLC, and an exact summary kept in the
-- same transaction as the records). Touches no table of 0002.

CREATE TABLE event_gossip_keys (
    event_id   TEXT PRIMARY KEY REFERENCES events (id),
    sealed_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Codes are stored as SHA-256 only; a code enrolls one device, once.
CREATE TABLE enrollment_codes (
    code_hash      TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL REFERENCES events (id),
    gate           TEXT NOT NULL,
    zone           INTEGER CHECK (zone IS NULL OR zone BETWEEN 0 AND 31),
    direction      TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
    grace_secs     INTEGER NOT NULL,
    require_listed INTEGER NOT NULL,
    created_by     TEXT NOT NULL REFERENCES users (id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    device_id      TEXT
);
CREATE INDEX enrollment_codes_event ON enrollment_codes (event_id);

-- A device's id is its node id in the check-in CRDT. Tokens: SHA-256 only.
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL REFERENCES events (id),
    name           TEXT NOT NULL,
    gate           TEXT NOT NULL,
    zone           INTEGER,
    direction      TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
    grace_secs     INTEGER NOT NULL,
    require_listed INTEGER NOT NULL,
    public_key     BLOB NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    enrolled_at    INTEGER NOT NULL,
    last_seen_at   INTEGER,
    revoked_at     INTEGER
);
CREATE INDEX devices_event ON devices (event_id, id);

-- The cloud's own replica of an event's check-ins: writes to one event's
-- CRDT lock this row, so batches and online check-ins are serialised.
CREATE TABLE checkin_replicas (
    event_id TEXT PRIMARY KEY REFERENCES events (id),
    node_id  TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL,
    last_hlc INTEGER NOT NULL
);

-- Exact summary: per node the contiguous prefix held, plus seqs beyond a gap.
CREATE TABLE checkin_prefix (
    event_id TEXT NOT NULL,
    node_id  TEXT NOT NULL,
    prefix   INTEGER NOT NULL,
    PRIMARY KEY (event_id, node_id)
);
CREATE TABLE checkin_extras (
    event_id TEXT NOT NULL,
    node_id  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (event_id, node_id, seq)
);

-- The record's wire bytes: the truth the columns project (idempotency
-- compares them; replies to nodes carry them).
ALTER TABLE checkins ADD COLUMN record BLOB;
CREATE UNIQUE INDEX checkins_event_node_seq ON checkins (event_id, node_id, seq);
CREATE INDEX checkins_event_hlc ON checkins (event_id, hlc, node_id, seq);
CREATE INDEX checkins_ticket ON checkins (ticket_id);
