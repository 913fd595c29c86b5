-- Issued tickets not yet in a manifest version. Issuing a ticket writes its
-- entry here in its own transaction, without locking the event row; the
-- event's sequencer (`store::sequencer`) then moves every committed entry
-- into one new version under the event lock, and counts the tickets into
-- `tiers.allocated`. An entry is a new ticket's first state, so no two rows
-- of one ticket exist and the order inside a batch does not matter.
CREATE TABLE manifest_pending (
    event_id     TEXT NOT NULL REFERENCES events (id),
    ticket_id    TEXT NOT NULL,
    tier_id      TEXT NOT NULL,
    generation   BIGINT NOT NULL,
    tier         BIGINT NOT NULL,
    zones        BIGINT NOT NULL,
    revoked      BIGINT NOT NULL,
    reentry      BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    PRIMARY KEY (event_id, ticket_id)
);
CREATE INDEX manifest_pending_tier ON manifest_pending (tier_id);
