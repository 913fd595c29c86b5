-- Schema version 2: what each sync partner (the cloud, each peer) was last
-- known to hold, and when each record reached this node. Additive only, so a
-- version-1 build still reads this database.
CREATE TABLE sync_cursors (
    peer          TEXT PRIMARY KEY,
    summary       BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE checkins ADD COLUMN stored_at_ms INTEGER;
