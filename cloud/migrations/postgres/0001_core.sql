-- Core schema: identity, events, tickets, manifest log, reports.
-- Ids are UUIDv7 text, times BIGINT unix milliseconds (UTC), money BIGINT
-- minor units + ISO 4217 code: the same column types as the SQLite schema so
-- one set of queries serves both backends.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'organizer', 'staff', 'admin')),
    country       TEXT,
    birth_year    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE organizer_keys (
    organizer_id TEXT PRIMARY KEY REFERENCES users (id),
    key_id       TEXT NOT NULL,
    public_key   BYTEA NOT NULL,
    sealed_seed  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    organizer_id     TEXT NOT NULL REFERENCES users (id),
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    venue            TEXT NOT NULL,
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('draft', 'active', 'live', 'ended', 'cancelled')),
    view_count       BIGINT NOT NULL DEFAULT 0,
    manifest_version BIGINT NOT NULL DEFAULT 0,
    manifest_digest  BYTEA NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX events_organizer ON events (organizer_id, id);
CREATE INDEX events_status ON events (status, id);

CREATE TABLE event_keys (
    key_id      TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    public_key  BYTEA NOT NULL,
    sealed_seed BYTEA NOT NULL,
    certificate BYTEA NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX event_keys_event ON event_keys (event_id, created_at);

CREATE TABLE tiers (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    tier        BIGINT NOT NULL CHECK (tier BETWEEN 0 AND 65535),
    name        TEXT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    capacity    BIGINT NOT NULL CHECK (capacity >= 0),
    allocated   BIGINT NOT NULL DEFAULT 0 CHECK (allocated >= 0 AND allocated <= capacity),
    zone_mask   BIGINT NOT NULL,
    zone        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (event_id, tier),
    UNIQUE (event_id, name)
);

-- Orders: box-office sales now; the commerce module extends this table.
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL REFERENCES events (id),
    buyer_id       TEXT REFERENCES users (id),
    channel        TEXT NOT NULL,
    status         TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    total_minor    BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    paid_at        BIGINT,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX orders_event ON orders (event_id, id);
CREATE INDEX orders_buyer ON orders (buyer_id, id);

CREATE TABLE tickets (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    tier_id     TEXT NOT NULL REFERENCES tiers (id),
    tier        BIGINT NOT NULL,
    zone_mask   BIGINT NOT NULL,
    owner_id    TEXT REFERENCES users (id),
    order_id    TEXT REFERENCES orders (id),
    holder_name TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('reserved', 'issued', 'transferred', 'checked_in', 'cancelled', 'refunded')),
    generation  BIGINT NOT NULL DEFAULT 0,
    credential  TEXT,
    price_minor BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX tickets_event ON tickets (event_id, id);
CREATE INDEX tickets_owner ON tickets (owner_id, id);
CREATE INDEX tickets_order ON tickets (order_id);

CREATE TABLE ticket_audit (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor_id    TEXT,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ticket_audit_ticket ON ticket_audit (ticket_id, id);

-- Scans reported by gate nodes (filled by the device-sync module).
CREATE TABLE checkins (
    scan_id     TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    ticket_id   TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    generation  BIGINT NOT NULL,
    direction   TEXT NOT NULL,
    outcome     BIGINT NOT NULL,
    hlc         BIGINT NOT NULL,
    zone        BIGINT,
    gate        TEXT NOT NULL,
    operator    TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX checkins_event_ticket ON checkins (event_id, ticket_id);

-- Manifest log: one row per version with its chain digest, and the entries
-- that version changed. Rows are immutable once written.
CREATE TABLE manifest_versions (
    event_id   TEXT NOT NULL REFERENCES events (id),
    version    BIGINT NOT NULL,
    digest     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (event_id, version)
);

CREATE TABLE manifest_changes (
    event_id     TEXT NOT NULL,
    version      BIGINT NOT NULL,
    ticket_id    TEXT NOT NULL,
    generation   BIGINT NOT NULL,
    tier         BIGINT NOT NULL,
    zones        BIGINT NOT NULL,
    revoked      BIGINT NOT NULL,
    reentry      BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    PRIMARY KEY (event_id, version, ticket_id),
    FOREIGN KEY (event_id, version) REFERENCES manifest_versions (event_id, version)
);
CREATE INDEX manifest_changes_ticket ON manifest_changes (event_id, ticket_id, version);

CREATE TABLE reports (
    id         TEXT PRIMARY KEY,
    event_id   TEXT NOT NULL REFERENCES events (id),
    kind       TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX reports_event ON reports (event_id, id);
