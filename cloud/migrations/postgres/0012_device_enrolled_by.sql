-- Who put each device on its event (issue 11): the creator of the
-- enrollment code it used, or the account (a staff member on the event's
-- roster, its organizer, an admin) that enrolled it directly with
-- `POST /devices/staff-enroll`. Existing devices get their code's creator.
-- Touches only `devices`.
ALTER TABLE devices ADD COLUMN enrolled_by TEXT REFERENCES users (id);
UPDATE devices SET enrolled_by = (
    SELECT c.created_by FROM enrollment_codes c WHERE c.device_id = devices.id
);
