-- Gate node store, schema version 1. Shipped: never edit, add a new file.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Event-key certificates, each verified against the root key before insert.
CREATE TABLE key_certs (
    cert BLOB PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE manifest_entries (
    ticket_id    BLOB PRIMARY KEY,
    generation   INTEGER NOT NULL,
    tier         INTEGER NOT NULL,
    zones        INTEGER NOT NULL,
    revoked      INTEGER NOT NULL,
    reentry      INTEGER NOT NULL,
    display_name TEXT NOT NULL
) WITHOUT ROWID;

-- The check-in CRDT: immutable scan records keyed by (node, seq). `record`
-- is the protocol wire form; the other columns are indexes into it.
CREATE TABLE checkins (
    node      BLOB NOT NULL,
    seq       INTEGER NOT NULL,
    ticket_id BLOB NOT NULL,
    hlc       INTEGER NOT NULL,
    outcome   INTEGER NOT NULL,
    direction INTEGER NOT NULL,
    record    BLOB NOT NULL,
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;
CREATE INDEX checkins_ticket ON checkins (ticket_id);
CREATE INDEX checkins_hlc ON checkins (hlc);

-- Exactly which records are held: contiguous prefix per node, plus the
-- sequence numbers held beyond a gap.
CREATE TABLE summary_prefix (
    node   BLOB PRIMARY KEY,
    prefix INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE summary_extra (
    node BLOB NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;
