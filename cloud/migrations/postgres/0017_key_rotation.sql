-- Rotation of event signing keys. An event may hold several keys; the
-- newest one not retired signs new credentials and manifests, every key
-- not retired is carried to the gates, and a retired key keeps its row
-- with the root-signed retirement statement (sync-protocol
-- `KeyRetirement`, 107 bytes) that gates learn through their sync.
-- Additive only: NULL in both columns means in service.
ALTER TABLE event_keys ADD COLUMN retired_at BIGINT;
ALTER TABLE event_keys ADD COLUMN retirement BYTEA;
