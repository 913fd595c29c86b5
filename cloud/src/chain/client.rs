//! The minter's view of the chain: a JSON-RPC provider and the local signer.
//! Transactions are signed here and broadcast as raw bytes, so the worker
//! can store exactly what it sends before it sends it.

use super::contract::GatehouseTicket;
use crate::config::Secret;
use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::BlockNumberOrTag;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{ReceiptResponse, TxSignerSync};
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log, TransactionInput, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::{RpcError, TransportErrorKind};
use std::sync::Arc;

/// A chain call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node cannot be reached (retry later).
    #[error("chain node unreachable: {0}")]
    Unreachable(String),
    /// The node answered with an error (a revert, a refused transaction).
    #[error("chain node refused: {0}")]
    Refused(String),
    /// Something else (bad key, encoding).
    #[error("{0}")]
    Other(String),
}

fn rpc_err(e: RpcError<TransportErrorKind>) -> ChainError {
    match e.as_error_resp() {
        Some(p) => ChainError::Refused(p.message.to_string()),
        None => ChainError::Unreachable(e.to_string()),
    }
}

/// What the node said to a raw transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    /// In the pool (or already there: the same bytes again).
    Accepted,
    /// The nonce is used: the stored transaction (or a sibling) was mined,
    /// or something else took the nonce. Check the receipts.
    NonceUsed,
    /// Refused for another reason.
    Refused(String),
}

/// A signed transaction ready to store and send.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// Its hash.
    pub hash: B256,
    /// EIP-2718 bytes.
    pub raw: Vec<u8>,
}

/// A mined transaction.
#[derive(Debug, Clone, Copy)]
pub struct Mined {
    /// Block number.
    pub block: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Whether it succeeded (false: reverted).
    pub success: bool,
}

/// A token as the contract reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    /// Current owner (zero: none).
    pub owner: Address,
    /// Invalidated (burned, never mintable again).
    pub burned: bool,
    /// Withdrawn to its holder's own address.
    pub released: bool,
}

/// Parses the minter key.
pub fn signer_from(key: &Secret) -> Result<PrivateKeySigner, String> {
    let k = key.expose().trim();
    let k = k.strip_prefix("0x").unwrap_or(k);
    k.parse::<PrivateKeySigner>()
        .map_err(|_| "chain.minter_key must be 64 hex digits (a secp256k1 private key)".into())
}

/// Provider and signer.
#[derive(Clone)]
pub struct ChainClient {
    provider: RootProvider,
    signer: Arc<PrivateKeySigner>,
    chain_id: u64,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("minter", &self.signer.address())
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl ChainClient {
    /// A client of `rpc_url` signing with `key` for `chain_id`.
    pub fn new(rpc_url: &str, chain_id: u64, key: &Secret) -> Result<Self, String> {
        let url = rpc_url
            .trim()
            .parse()
            .map_err(|e| format!("chain.rpc_url: {e}"))?;
        Ok(Self {
            provider: RootProvider::new_http(url),
            signer: Arc::new(signer_from(key)?),
            chain_id,
        })
    }

    /// The minter's address.
    pub fn minter(&self) -> Address {
        self.signer.address()
    }

    /// The configured chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The provider, for reads.
    pub fn provider(&self) -> &RootProvider {
        &self.provider
    }

    /// Refuses a node on another chain than configured.
    pub async fn check_chain_id(&self) -> Result<(), ChainError> {
        let id = self.provider.get_chain_id().await.map_err(rpc_err)?;
        if id == self.chain_id {
            Ok(())
        } else {
            Err(ChainError::Other(format!(
                "the node is on chain {id}, chain.chain_id says {}",
                self.chain_id
            )))
        }
    }

    /// Signs a legacy (EIP-155) transaction locally.
    pub fn sign(
        &self,
        nonce: u64,
        to: Option<Address>,
        input: Bytes,
        gas_limit: u64,
        gas_price: u128,
    ) -> Result<SignedTx, ChainError> {
        let mut tx = TxLegacy {
            chain_id: Some(self.chain_id),
            nonce,
            gas_price,
            gas_limit,
            to: to.map_or(TxKind::Create, TxKind::Call),
            value: U256::ZERO,
            input,
        };
        let sig = self
            .signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| ChainError::Other(format!("signing: {e}")))?;
        let envelope = TxEnvelope::from(tx.into_signed(sig));
        Ok(SignedTx {
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718(),
        })
    }

    /// Sends raw bytes; the same bytes twice are one transaction.
    pub async fn broadcast(&self, raw: &[u8]) -> Result<Broadcast, ChainError> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(e) => match rpc_err(e) {
                ChainError::Refused(m) => {
                    let l = m.to_ascii_lowercase();
                    if l.contains("already known") || l.contains("already imported") {
                        Ok(Broadcast::Accepted)
                    } else if l.contains("nonce too low")
                        || l.contains("nonce has already been used")
                    {
                        Ok(Broadcast::NonceUsed)
                    } else {
                        Ok(Broadcast::Refused(m))
                    }
                }
                other => Err(other),
            },
        }
    }

    /// The receipt of `hash`, if mined.
    pub async fn receipt(&self, hash: B256) -> Result<Option<Mined>, ChainError> {
        let r = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(rpc_err)?;
        Ok(r.and_then(|r| {
            Some(Mined {
                block: r.block_number()?,
                gas_used: r.gas_used(),
                success: r.status(),
            })
        }))
    }

    /// Whether the node knows `hash` (pending or mined).
    pub async fn knows(&self, hash: B256) -> Result<bool, ChainError> {
        let t = self
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(rpc_err)?;
        Ok(t.is_some())
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(rpc_err)
    }

    /// The hash of block `n`, if it exists.
    pub async fn block_hash(&self, n: u64) -> Result<Option<B256>, ChainError> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(rpc_err)?;
        Ok(b.map(|b| b.header.hash))
    }

    /// The minter's mined transaction count (its next unused nonce).
    pub async fn mined_nonce(&self) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(self.minter())
            .latest()
            .await
            .map_err(rpc_err)
    }

    /// The node's gas price, wei.
    pub async fn gas_price(&self) -> Result<u128, ChainError> {
        self.provider.get_gas_price().await.map_err(rpc_err)
    }

    fn request(&self, to: Option<Address>, input: Bytes) -> TransactionRequest {
        TransactionRequest {
            from: Some(self.minter()),
            to: Some(to.map_or(TxKind::Create, TxKind::Call)),
            input: TransactionInput::new(input),
            ..Default::default()
        }
    }

    /// Gas the call would use (a revert is `Refused`).
    pub async fn estimate_gas(&self, to: Option<Address>, input: Bytes) -> Result<u64, ChainError> {
        self.provider
            .estimate_gas(self.request(to, input))
            .await
            .map_err(rpc_err)
    }

    /// Owner, burned and released of each token.
    pub async fn status_of(
        &self,
        contract: Address,
        ids: &[U256],
    ) -> Result<Vec<TokenState>, ChainError> {
        let c = GatehouseTicket::new(contract, &self.provider);
        let r = c
            .statusOf(ids.to_vec())
            .call()
            .await
            .map_err(contract_err)?;
        Ok(r.owners
            .into_iter()
            .zip(r.burned)
            .zip(r.withdrawn)
            .map(|((owner, burned), released)| TokenState {
                owner,
                burned,
                released,
            })
            .collect())
    }

    /// Whether the organizer's `unlock` already opened the contract.
    pub async fn unlocked(&self, contract: Address) -> Result<bool, ChainError> {
        GatehouseTicket::new(contract, &self.provider)
            .unlocked()
            .call()
            .await
            .map_err(contract_err)
    }

    /// EIP-5192 `locked(tokenId)` (an error for a token that does not exist).
    pub async fn locked(&self, contract: Address, id: U256) -> Result<bool, ChainError> {
        GatehouseTicket::new(contract, &self.provider)
            .locked(id)
            .call()
            .await
            .map_err(contract_err)
    }

    /// `ownerOf`, or None for a token that does not exist.
    pub async fn owner_of(
        &self,
        contract: Address,
        id: U256,
    ) -> Result<Option<Address>, ChainError> {
        let s = self.status_of(contract, &[id]).await?;
        Ok(s.first().map(|s| s.owner).filter(|o| !o.is_zero()))
    }

    /// Logs of `contracts` in blocks `from..=to`.
    pub async fn logs(
        &self,
        contracts: &[Address],
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, ChainError> {
        let filter = Filter::new()
            .address(contracts.to_vec())
            .from_block(from)
            .to_block(to);
        self.provider.get_logs(&filter).await.map_err(rpc_err)
    }

    /// The native balance of `who`, wei.
    pub async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        self.provider.get_balance(who).await.map_err(rpc_err)
    }
}

fn contract_err(e: alloy::contract::Error) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(t) => rpc_err(t),
        other => ChainError::Other(other.to_string()),
    }
}
