//! Chain settings (`[chain]` in the TOML file, `CLOUD_CHAIN__*` variables).
//! With an empty `rpc_url` (the embedded default) no chain is used: mint
//! jobs wait as `pending` and everything else works.

use crate::config::Secret;
use serde::{Deserialize, Serialize};

/// How the cloud reaches its EVM chain and mints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (`http://127.0.0.1:8545`); empty: no chain.
    pub rpc_url: String,
    /// The chain id the node must report (EIP-155 replay protection).
    pub chain_id: u64,
    /// The minter's private key (64 hex digits, optional `0x`). Secret: it
    /// prints as `<redacted>` and is never logged.
    pub minter_key: Secret,
    /// Holder of each contract's admin role; empty: the minter.
    pub admin_address: String,
    /// Run the minting worker and indexer in this process (replicas that
    /// only serve HTTP set false; any number may run it).
    pub run_worker: bool,
    /// Deploy an event's ticket contract on its first mint. When false, an
    /// event without a contract keeps its jobs pending.
    pub deploy_contracts: bool,
    /// Prefix of every `tokenURI`: the cloud's public URL and `/nft/`.
    pub metadata_base_url: String,
    /// Blocks on top of a transaction's block before it counts (1 = mined).
    pub confirmations: u64,
    /// Worker and indexer poll interval, ms.
    pub poll_ms: u64,
    /// Most tokens per transaction (batch mint, move, burn).
    pub batch_size: usize,
    /// How long a claimed job stays with its worker, seconds.
    pub lease_secs: u64,
    /// Largest retry delay, seconds (delays double from `poll_ms`).
    pub max_backoff_secs: u64,
    /// A transaction not mined after this long is replaced (same nonce,
    /// higher fee), seconds.
    pub stuck_after_secs: u64,
    /// Fee increase of a replacement, percent (nodes require at least 10).
    pub fee_bump_percent: u64,
    /// Reverted transactions after which a job fails for good.
    pub max_reverts: i64,
    /// Royalty of an event that set none, basis points (EIP-2981).
    pub default_royalty_bps: u16,
    /// Blocks the indexer re-reads when the chain re-organised under it.
    pub reorg_depth: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: String::new(),
            chain_id: 31337,
            minter_key: Secret::default(),
            admin_address: String::new(),
            run_worker: true,
            deploy_contracts: true,
            metadata_base_url: "http://127.0.0.1:3000/nft/".into(),
            confirmations: 1,
            poll_ms: 1_000,
            batch_size: 200,
            lease_secs: 60,
            max_backoff_secs: 60,
            stuck_after_secs: 90,
            fee_bump_percent: 20,
            max_reverts: 3,
            default_royalty_bps: 500,
            reorg_depth: 12,
        }
    }
}

impl ChainConfig {
    /// Whether a chain is configured.
    pub fn enabled(&self) -> bool {
        !self.rpc_url.trim().is_empty()
    }

    /// Checks the settings that can be checked without the node.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        url::Url::parse(self.rpc_url.trim())
            .map_err(|e| format!("chain.rpc_url is not a URL: {e}"))?;
        super::client::signer_from(&self.minter_key)?;
        if !self.admin_address.is_empty() {
            self.admin_address
                .parse::<alloy::primitives::Address>()
                .map_err(|_| "chain.admin_address must be a 0x address".to_string())?;
        }
        if self.batch_size == 0 || self.batch_size > 1000 {
            return Err("chain.batch_size must be 1 to 1000".into());
        }
        if self.confirmations == 0 {
            return Err("chain.confirmations must be at least 1".into());
        }
        if self.fee_bump_percent < 10 {
            return Err("chain.fee_bump_percent must be at least 10 (nodes refuse less)".into());
        }
        if self.default_royalty_bps > 10_000 {
            return Err("chain.default_royalty_bps must be at most 10000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Secret};

    #[test]
    fn the_minter_key_is_redacted_and_checked() {
        let mut c = Config::default();
        c.chain.rpc_url = "http://127.0.0.1:8545".into();
        c.chain.minter_key =
            Secret::new("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
        let printed = format!("{c:?}{}", c.to_redacted_toml());
        assert!(!printed.contains("ac0974bec39a"), "{printed}");
        assert!(c.validate().is_ok());
        c.chain.minter_key = Secret::new("not a key");
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("chain.minter_key"), "{err}");
        assert!(
            !err.contains("not a key"),
            "the error does not echo the secret: {err}"
        );
        c.chain.rpc_url = String::new();
        assert!(c.validate().is_ok(), "no chain: the key is not needed");
    }
}
