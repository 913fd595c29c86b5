-- Named zones per event: "Balcony" = zone 2. A tier's zone_mask, an
-- enrollment code's and a device's zone stay numbers (the credential and
-- the gate policy carry bits); this table gives them names for the API,
-- the console and the gate's status. Touches no earlier table.
CREATE TABLE event_zones (
    event_id   TEXT NOT NULL REFERENCES events (id),
    zone       BIGINT NOT NULL CHECK (zone BETWEEN 0 AND 31),
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (event_id, zone),
    UNIQUE (event_id, name)
);
