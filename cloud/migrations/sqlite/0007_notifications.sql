-- Notifications (issue #10): one durable outbox for every message the cloud
-- sends (email, SMS, organizer webhooks), written in the same transaction as
-- the change that causes it, and claimed by workers with leases. Also the
-- organizers' webhook endpoints, buyers' preferences, per-event branding (reminders are deduplicated
-- per event and holder by the outbox's dedupe_key). Touches no earlier table.

CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'undeliverable')),
    event_id         TEXT,
    endpoint_id      TEXT,
    user_id          TEXT,
    recipient        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    created_by       TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_error       TEXT,
    last_status_code INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_endpoint ON notifications (endpoint_id, id);
CREATE INDEX notifications_event ON notifications (event_id, id);

CREATE TABLE notification_attempts (
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    attempt         INTEGER NOT NULL,
    worker          TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    status_code     INTEGER,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt, started_at)
);

-- Secrets are sealed with the master key (AAD: endpoint id and slot);
-- `secrets` is a JSON list of {sealed (hex), expires_at (ms or null)}.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users (id),
    event_id        TEXT REFERENCES events (id),
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,
    secrets         TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_id);

CREATE TABLE notification_prefs (
    user_id           TEXT PRIMARY KEY REFERENCES users (id),
    reminders         INTEGER NOT NULL,
    phone             TEXT,
    sms               INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE event_branding (
    event_id      TEXT PRIMARY KEY REFERENCES events (id),
    primary_color TEXT NOT NULL,
    accent_color  TEXT NOT NULL,
    logo_url      TEXT,
    updated_at    INTEGER NOT NULL
);
