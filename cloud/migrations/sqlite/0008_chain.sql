-- The chain (issue #9): the mint outbox, the minter's nonces and signed
-- transactions, one ticket contract per event, custodial and external
-- wallets, and the index of what the chain says. Same column types on both
-- backends (ids and addresses TEXT, lower-case 0x hex; times INTEGER unix ms;
-- token ids as decimal TEXT: they are 128-bit).

-- Outbox: one row per change that the chain must mirror, written in the
-- transaction of its cause (payment, transfer, refund, withdrawal). A worker
-- brings the ticket's token to the state the database says (minted to the
-- holder's wallet, moved, burned); `kind` is the cause, for people.
CREATE TABLE chain_jobs (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    kind        TEXT NOT NULL CHECK (kind IN ('mint', 'transfer', 'burn', 'withdraw')),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    reverts     INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    tx_id       TEXT,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX chain_jobs_one_mint ON chain_jobs (ticket_id) WHERE kind = 'mint';
CREATE INDEX chain_jobs_due ON chain_jobs (next_at) WHERE status = 'pending';
CREATE INDEX chain_jobs_ticket ON chain_jobs (ticket_id);
CREATE INDEX chain_jobs_in_flight ON chain_jobs (ticket_id) WHERE status = 'sent';

-- The next nonce of each minter address: allocated under this row's lock
-- in the transaction that stores the signed transaction.
CREATE TABLE chain_nonces (
    minter     TEXT PRIMARY KEY,
    next_nonce INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every signed transaction, stored (raw bytes and hash) before broadcast.
-- Several rows share a nonce when a stuck one was replaced with a higher fee.
CREATE TABLE chain_txs (
    id           TEXT PRIMARY KEY,
    minter       TEXT NOT NULL,
    nonce        INTEGER NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    raw          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('deploy', 'mint', 'transfer', 'burn', 'withdraw')),
    contract     TEXT,
    event_id     TEXT,
    gas_price    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('signed', 'sent', 'confirmed', 'reverted', 'replaced', 'dropped')),
    block_number INTEGER,
    gas_used     INTEGER,
    error        TEXT,
    replaces     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX chain_txs_open ON chain_txs (minter, nonce) WHERE status IN ('signed', 'sent');

-- Which jobs (tokens) a transaction carries.
CREATE TABLE chain_tx_jobs (
    tx_id    TEXT NOT NULL REFERENCES chain_txs (id),
    job_id   TEXT NOT NULL REFERENCES chain_jobs (id),
    token_id TEXT NOT NULL,
    PRIMARY KEY (tx_id, job_id)
);
CREATE INDEX chain_tx_jobs_job ON chain_tx_jobs (job_id);

-- One ticket contract per event; its address follows from the minter and the
-- deploy nonce, so it is known before the deploy is broadcast.
CREATE TABLE chain_contracts (
    event_id   TEXT PRIMARY KEY REFERENCES events (id),
    address    TEXT NOT NULL UNIQUE,
    chain_id   INTEGER NOT NULL,
    deploy_tx  TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('deploying', 'ready')),
    created_at INTEGER NOT NULL
);

-- Per-event chain terms set by the organizer (defaults from configuration).
CREATE TABLE event_chain_settings (
    event_id            TEXT PRIMARY KEY REFERENCES events (id),
    royalty_bps         INTEGER NOT NULL CHECK (royalty_bps >= 0 AND royalty_bps <= 10000),
    withdrawals_allowed INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Wallets: one custodial wallet per user (key sealed by the KeyVault), and
-- external addresses proved by an EIP-191 signature.
CREATE TABLE wallets (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    address    TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('custodial', 'external')),
    sealed_key BLOB,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX wallets_one_custodial ON wallets (user_id) WHERE kind = 'custodial';
CREATE INDEX wallets_user ON wallets (user_id, id);

-- Tickets withdrawn to their holder's own address.
CREATE TABLE chain_withdrawals (
    ticket_id  TEXT PRIMARY KEY REFERENCES tickets (id),
    wallet_id  TEXT NOT NULL REFERENCES wallets (id),
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The index: Transfer logs of every ticket contract as the chain reports
-- them, the holdings they imply, and how far (and on which block) the
-- indexer got, so a restart resumes and a re-org is noticed.
CREATE TABLE chain_index_cursor (
    name         TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL,
    block_hash   TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE chain_transfers (
    contract     TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    block_hash   TEXT NOT NULL,
    tx_hash      TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    from_address TEXT NOT NULL,
    to_address   TEXT NOT NULL,
    PRIMARY KEY (contract, block_number, log_index)
);
CREATE INDEX chain_transfers_from ON chain_transfers (from_address, block_number);
CREATE INDEX chain_transfers_to ON chain_transfers (to_address, block_number);
CREATE INDEX chain_transfers_token ON chain_transfers (contract, token_id);
CREATE TABLE nft_holdings (
    contract     TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    owner        TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    PRIMARY KEY (contract, token_id)
);
CREATE INDEX nft_holdings_owner ON nft_holdings (owner);
