-- The organizer's early unlock (issue #9): a new chain job kind `unlock` and
-- a new transaction kind `unlock` (the contract's `unlock(tokenIds)`). CHECK
-- constraints cannot be altered in SQLite, so both backends rebuild the
-- three outbox tables with the same statements: copy into new tables, drop
-- the old ones (the job-to-transaction links first, so no foreign key ever
-- points at a dropped table), rename, and recreate the indexes. Columns,
-- data and index names are unchanged.
CREATE TABLE chain_jobs_new (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    kind        TEXT NOT NULL CHECK (kind IN ('mint', 'transfer', 'burn', 'withdraw', 'unlock')),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'done', 'failed')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    reverts     BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    tx_id       TEXT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO chain_jobs_new (id, ticket_id, kind, status, attempts, reverts, next_at, lease_owner, lease_until, tx_id, last_error, created_at, updated_at)
    SELECT id, ticket_id, kind, status, attempts, reverts, next_at, lease_owner, lease_until, tx_id, last_error, created_at, updated_at FROM chain_jobs;

CREATE TABLE chain_txs_new (
    id           TEXT PRIMARY KEY,
    minter       TEXT NOT NULL,
    nonce        BIGINT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    raw          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('deploy', 'mint', 'transfer', 'burn', 'withdraw', 'unlock')),
    contract     TEXT,
    event_id     TEXT,
    gas_price    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('signed', 'sent', 'confirmed', 'reverted', 'replaced', 'dropped')),
    block_number BIGINT,
    gas_used     BIGINT,
    error        TEXT,
    replaces     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
INSERT INTO chain_txs_new (id, minter, nonce, hash, raw, kind, contract, event_id, gas_price, status, block_number, gas_used, error, replaces, created_at, updated_at)
    SELECT id, minter, nonce, hash, raw, kind, contract, event_id, gas_price, status, block_number, gas_used, error, replaces, created_at, updated_at FROM chain_txs;

CREATE TABLE chain_tx_jobs_new (
    tx_id    TEXT NOT NULL REFERENCES chain_txs_new (id),
    job_id   TEXT NOT NULL REFERENCES chain_jobs_new (id),
    token_id TEXT NOT NULL,
    PRIMARY KEY (tx_id, job_id)
);
INSERT INTO chain_tx_jobs_new (tx_id, job_id, token_id) SELECT tx_id, job_id, token_id FROM chain_tx_jobs;

DROP TABLE chain_tx_jobs;
DROP TABLE chain_txs;
DROP TABLE chain_jobs;
ALTER TABLE chain_jobs_new RENAME TO chain_jobs;
ALTER TABLE chain_txs_new RENAME TO chain_txs;
ALTER TABLE chain_tx_jobs_new RENAME TO chain_tx_jobs;

CREATE UNIQUE INDEX chain_jobs_one_mint ON chain_jobs (ticket_id) WHERE kind = 'mint';
-- One unlock job per ticket: asking twice changes nothing.
CREATE UNIQUE INDEX chain_jobs_one_unlock ON chain_jobs (ticket_id) WHERE kind = 'unlock';
CREATE INDEX chain_jobs_due ON chain_jobs (next_at) WHERE status = 'pending';
CREATE INDEX chain_jobs_ticket ON chain_jobs (ticket_id);
CREATE INDEX chain_jobs_in_flight ON chain_jobs (ticket_id) WHERE status = 'sent';
CREATE INDEX chain_txs_open ON chain_txs (minter, nonce) WHERE status IN ('signed', 'sent');
CREATE INDEX chain_tx_jobs_job ON chain_tx_jobs (job_id);
