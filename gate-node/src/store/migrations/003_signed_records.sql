-- Schema version 3: signed scan records, the event's device roster, the
-- gossip key of each roster version, and evidence of refused records.
-- Additive only: a version-2 build still reads this database (`record`
-- keeps the unsigned layout-1 body; the signature sits beside it).
ALTER TABLE checkins ADD COLUMN signature BLOB;

-- The signed roster as last applied: every device of the event with the
-- key it enrolled with, and when it was revoked (NULL: not revoked).
CREATE TABLE roster_devices (
    node          BLOB PRIMARY KEY,
    public_key    BLOB NOT NULL,
    enrolled_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
) WITHOUT ROWID;

-- The LAN gossip key of each roster version (the latest two are used).
CREATE TABLE gossip_keys (
    version INTEGER PRIMARY KEY,
    key     BLOB NOT NULL
);

-- Records that were refused but kept as evidence: a second copy of a held
-- scan id with other content (`conflict`), or a record a revoked device
-- made after its revocation (`revoked`). Never part of the check-in state.
CREATE TABLE checkin_evidence (
    node           BLOB NOT NULL,
    seq            INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('conflict', 'revoked')),
    record         BLOB NOT NULL,
    signature      BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (node, seq, record)
) WITHOUT ROWID;
