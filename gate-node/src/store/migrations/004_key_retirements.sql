-- Schema version 4: event keys the organizer's root retired (rotated out or
-- compromised), as the root-signed 107-byte `KeyRetirement`s the cloud sends
-- with manifest answers (`X-Key-Retirements`). Each is verified against the
-- root before insert; the key ring refuses a retired key from then on.
-- Additive only: a version-3 build still reads this database (and, not
-- knowing this table, would trust a retired key again until its
-- certificate ends).
CREATE TABLE key_retirements (
    retirement BLOB PRIMARY KEY
) WITHOUT ROWID;
