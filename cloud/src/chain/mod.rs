//! NFT tickets on an EVM chain: one ERC-721 contract per event
//! ([`contract`]), minted by a worker ([`worker`]) from the `chain_jobs`
//! outbox with nonces allocated in the database, and an indexer
//! ([`indexer`]) that records what the chain says for the wallets.
//!
//! The database says what each ticket's token should be (minted to the
//! holder's custodial wallet, moved after a transfer, burned after a
//! refund, withdrawn to the holder's own address); the worker reads what the
//! contract says (`statusOf`) and sends only the difference, so a job that
//! runs twice, or after a crash, changes nothing the second time.

pub mod client;
pub mod config;
pub mod contract;
pub mod http;
pub mod indexer;
pub mod worker;
