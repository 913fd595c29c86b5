-- Core schema: identity, events, tickets, manifest log, reports.
-- Same tables and column meanings as the PostgreSQL schema; ids TEXT,
-- times and money INTEGER.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'organizer', 'staff', 'admin')),
    country       TEXT,
    birth_year    INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE organizer_keys (
    organizer_id TEXT PRIMARY KEY REFERENCES users (id),
    key_id       TEXT NOT NULL,
    public_key   BLOB NOT NULL,
    sealed_seed  BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    organizer_id     TEXT NOT NULL REFERENCES users (id),
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    venue            TEXT NOT NULL,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('draft', 'active', 'live', 'ended', 'cancelled')),
    view_count       INTEGER NOT NULL DEFAULT 0,
    manifest_version INTEGER NOT NULL DEFAULT 0,
    manifest_digest  BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX events_organizer ON events (organizer_id, id);
CREATE INDEX events_status ON events (status, id);

CREATE TABLE event_keys (
    key_id      TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    public_key  BLOB NOT NULL,
    sealed_seed BLOB NOT NULL,
    certificate BLOB NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX event_keys_event ON event_keys (event_id, created_at);

CREATE TABLE tiers (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    tier        INTEGER NOT NULL CHECK (tier BETWEEN 0 AND 65535),
    name        TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    capacity    INTEGER NOT NULL CHECK (capacity >= 0),
    allocated   INTEGER NOT NULL DEFAULT 0 CHECK (allocated >= 0 AND allocated <= capacity),
    zone_mask   INTEGER NOT NULL,
    zone        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
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
    total_minor    INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    paid_at        INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX orders_event ON orders (event_id, id);
CREATE INDEX orders_buyer ON orders (buyer_id, id);

CREATE TABLE tickets (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    tier_id     TEXT NOT NULL REFERENCES tiers (id),
    tier        INTEGER NOT NULL,
    zone_mask   INTEGER NOT NULL,
    owner_id    TEXT REFERENCES users (id),
    order_id    TEXT REFERENCES orders (id),
    holder_name TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('reserved', 'issued', 'transferred', 'checked_in', 'cancelled', 'refunded')),
    generation  INTEGER NOT NULL DEFAULT 0,
    credential  TEXT,
    price_minor INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
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
    created_at  INTEGER NOT NULL
);
CREATE INDEX ticket_audit_ticket ON ticket_audit (ticket_id, id);

-- Scans reported by gate nodes (filled by the device-sync module).
CREATE TABLE checkins (
    scan_id     TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    ticket_id   TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    generation  INTEGER NOT NULL,
    direction   TEXT NOT NULL,
    outcome     INTEGER NOT NULL,
    hlc         INTEGER NOT NULL,
    zone        INTEGER,
    gate        TEXT NOT NULL,
    operator    TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX checkins_event_ticket ON checkins (event_id, ticket_id);

-- Manifest log: one row per version with its chain digest, and the entries
-- that version changed. Rows are immutable once written.
CREATE TABLE manifest_versions (
    event_id   TEXT NOT NULL REFERENCES events (id),
    version    INTEGER NOT NULL,
    digest     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, version)
);

CREATE TABLE manifest_changes (
    event_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    ticket_id    TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    tier         INTEGER NOT NULL,
    zones        INTEGER NOT NULL,
    revoked      INTEGER NOT NULL,
    reentry      INTEGER NOT NULL,
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
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX reports_event ON reports (event_id, id);
