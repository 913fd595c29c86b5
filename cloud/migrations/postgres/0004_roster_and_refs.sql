-- Correctness fixes (issue 16): a per-event staff roster, and manual
-- payment references unique per organizer instead of across all of them.
-- Touches no table of 0003.

-- Who may scan and enroll devices for an event: the organizer adds staff
-- accounts to their own event; a staff account sees only its events.
CREATE TABLE event_staff (
    event_id   TEXT NOT NULL REFERENCES events (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    added_by   TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX event_staff_user ON event_staff (user_id, event_id);

-- A reference is unique within its scope: the organizer for a manual
-- payment (their bank or cash book), '' for Stripe (intent ids are global).
ALTER TABLE payments ADD COLUMN ref_scope TEXT NOT NULL DEFAULT '';
UPDATE payments SET ref_scope = (
    SELECT e.organizer_id FROM orders o JOIN events e ON e.id = o.event_id WHERE o.id = payments.order_id
) WHERE provider = 'manual';
DROP INDEX payments_provider_ref;
CREATE UNIQUE INDEX payments_provider_ref ON payments (provider, ref_scope, provider_ref);
