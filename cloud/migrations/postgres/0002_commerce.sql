-- Commerce: online orders with held inventory, payments, transfers and the
-- resale market. Same column types as the SQLite schema (ids TEXT, times
-- BIGINT unix ms, money BIGINT minor units + ISO 4217 code).

-- Online orders extend the box-office `orders` table. `quantity` is what the
-- order counts against the buyer's per-event purchase limit.
ALTER TABLE orders ADD COLUMN kind TEXT NOT NULL DEFAULT 'primary' CHECK (kind IN ('primary', 'resale'));
ALTER TABLE orders ADD COLUMN quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
ALTER TABLE orders ADD COLUMN idempotency_key TEXT;
ALTER TABLE orders ADD COLUMN request_hash TEXT;
ALTER TABLE orders ADD COLUMN listing_id TEXT;
CREATE UNIQUE INDEX orders_idempotency ON orders (buyer_id, idempotency_key);
CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'pending';

CREATE TABLE order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    tier_id          TEXT NOT NULL REFERENCES tiers (id),
    tier             BIGINT NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, tier_id)
);

-- Inventory: one row per unit of tier capacity. A slot is free (no order,
-- no ticket), held by a pending order (order_id), or taken by a ticket
-- (ticket_id). Claims lock only the rows they take (FOR UPDATE SKIP LOCKED),
-- so concurrent buyers of one tier do not queue on a single counter row.
-- `tiers.allocated` still counts the tickets holding capacity; holds are the
-- slots with an order and no ticket, counted in `tier_holds`.
CREATE TABLE tier_slots (
    tier_id   TEXT NOT NULL REFERENCES tiers (id),
    slot      BIGINT NOT NULL,
    order_id  TEXT,
    ticket_id TEXT,
    PRIMARY KEY (tier_id, slot)
);
CREATE INDEX tier_slots_free ON tier_slots (tier_id, slot) WHERE order_id IS NULL AND ticket_id IS NULL;
CREATE INDEX tier_slots_order ON tier_slots (order_id) WHERE order_id IS NOT NULL;
CREATE UNIQUE INDEX tier_slots_ticket ON tier_slots (ticket_id) WHERE ticket_id IS NOT NULL;

INSERT INTO tier_slots (tier_id, slot)
SELECT t.id, g FROM tiers t, generate_series(0, t.capacity - 1) AS g;

-- Tickets sold before this migration take the first slots of their tier.
WITH live AS (
    SELECT id, tier_id, order_id, ROW_NUMBER() OVER (PARTITION BY tier_id ORDER BY id) - 1 AS n
    FROM tickets WHERE status IN ('reserved', 'issued', 'transferred', 'checked_in')
)
UPDATE tier_slots s SET ticket_id = live.id, order_id = live.order_id
FROM live WHERE s.tier_id = live.tier_id AND s.slot = live.n;

-- Held slots per tier, split over shard rows so that concurrent holds do not
-- queue on one row; a tier's holds are the sum of its shards.
CREATE TABLE tier_holds (
    tier_id TEXT NOT NULL REFERENCES tiers (id),
    shard   BIGINT NOT NULL,
    held    BIGINT NOT NULL,
    PRIMARY KEY (tier_id, shard)
);

-- Tickets each buyer holds or is paying for, per event (purchase limits).
CREATE TABLE purchase_counts (
    event_id TEXT NOT NULL REFERENCES events (id),
    buyer_id TEXT NOT NULL REFERENCES users (id),
    quantity BIGINT NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (event_id, buyer_id)
);

-- Per-event sales rules set by the organizer (defaults from configuration).
CREATE TABLE sales_policies (
    event_id                 TEXT PRIMARY KEY REFERENCES events (id),
    max_tickets_per_customer BIGINT NOT NULL CHECK (max_tickets_per_customer > 0),
    resale_enabled           BIGINT NOT NULL,
    resale_max_percent       BIGINT NOT NULL CHECK (resale_max_percent >= 0),
    updated_at               BIGINT NOT NULL
);

-- Payments of an order. One Stripe PaymentIntent per order comes from the
-- idempotency key of its creation; a reference is recorded once.
CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    provider       TEXT NOT NULL CHECK (provider IN ('stripe', 'manual', 'free')),
    provider_ref   TEXT,
    client_secret  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refund_due', 'refunded', 'cancelled')),
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    failure_reason TEXT,
    refund_ref     TEXT,
    -- Last attempt at a due refund: one caller at a time talks to the provider.
    refund_attempt_at BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX payments_order ON payments (order_id, id);
CREATE UNIQUE INDEX payments_provider_ref ON payments (provider, provider_ref);
CREATE INDEX payments_refund_due ON payments (updated_at) WHERE status = 'refund_due';

-- Provider webhook events already applied (exactly-once in effect).
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- The chain of owners of a ticket.
CREATE TABLE ticket_transfers (
    id         TEXT PRIMARY KEY,
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    from_owner TEXT REFERENCES users (id),
    to_owner   TEXT NOT NULL REFERENCES users (id),
    generation BIGINT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('gift', 'resale')),
    order_id   TEXT REFERENCES orders (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX ticket_transfers_ticket ON ticket_transfers (ticket_id, id);
CREATE INDEX ticket_transfers_from ON ticket_transfers (from_owner, id);
CREATE INDEX ticket_transfers_to ON ticket_transfers (to_owner, id);

-- Resale listings. At most one open (active or held) listing per ticket.
CREATE TABLE resale_listings (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    event_id    TEXT NOT NULL REFERENCES events (id),
    seller_id   TEXT NOT NULL REFERENCES users (id),
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'held', 'sold', 'cancelled')),
    order_id    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX resale_listings_open ON resale_listings (ticket_id) WHERE status IN ('active', 'held');
CREATE INDEX resale_listings_event ON resale_listings (event_id, status, id);

-- Sellers' ledger: a credit per resale sale, a reversal per refunded resale.
CREATE TABLE ledger_entries (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    order_id     TEXT NOT NULL REFERENCES orders (id),
    listing_id   TEXT REFERENCES resale_listings (id),
    kind         TEXT NOT NULL CHECK (kind IN ('resale_credit', 'resale_reversal')),
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX ledger_entries_user ON ledger_entries (user_id, id);
