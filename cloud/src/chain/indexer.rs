//! The chain indexer: reads the Transfer logs of every ticket contract in
//! block ranges, stores them with their block hashes and moves a cursor
//! (block number and hash) in the same database transaction, so a restart
//! resumes where it stopped. Before each step it checks that the cursor's
//! block still has the stored hash; if not, the chain re-organised, and the
//! index rewinds `chain.reorg_depth` blocks and reads them again.

use super::client::ChainClient;
use super::contract::GatehouseTicket;
use super::worker::WorkerError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::wallets::TransferLogRecord;
use alloy::primitives::Address;
use alloy::sol_types::SolEvent;

const CURSOR: &str = "transfers";
const MAX_RANGE: u64 = 2_000;

/// The indexer's state (nothing but what the database holds).
#[derive(Debug, Clone)]
pub struct Indexer {
    state: AppState,
    client: ChainClient,
}

impl Indexer {
    /// An indexer over `client`'s chain.
    pub fn new(state: AppState, client: ChainClient) -> Self {
        Self { state, client }
    }

    /// Indexes up to `MAX_RANGE` new blocks; returns the logs stored.
    pub async fn step(&mut self) -> Result<usize, WorkerError> {
        let store = &self.state.store;
        let contracts = store.chain_contracts().await?;
        if contracts.is_empty() {
            return Ok(0);
        }
        let addresses: Vec<Address> = contracts
            .iter()
            .filter_map(|c| c.address.parse().ok())
            .collect();
        let head = self.client.block_number().await?;
        let from = match store.index_cursor(CURSOR).await? {
            Some((block, hash)) => {
                let block = block as u64;
                let now_hash = self.client.block_hash(block).await?;
                if now_hash.map(|h| format!("{h:#x}")) != Some(hash) {
                    let back = block.saturating_sub(self.state.config.chain.reorg_depth.max(1));
                    let back_hash = self
                        .client
                        .block_hash(back)
                        .await?
                        .map(|h| format!("{h:#x}"))
                        .unwrap_or_default();
                    tracing::warn!(
                        block,
                        back,
                        "the chain re-organised under the index; rewinding"
                    );
                    store
                        .index_rewind(CURSOR, back as i64, &back_hash, self.state.now_ms())
                        .await?;
                    back + 1
                } else {
                    block + 1
                }
            }
            None => match self.first_block(&contracts).await? {
                Some(b) => b,
                None => return Ok(0),
            },
        };
        if from > head {
            return Ok(0);
        }
        let to = head.min(from + MAX_RANGE - 1);
        let logs = self.client.logs(&addresses, from, to).await?;
        let mut records = Vec::new();
        for log in logs {
            if log.topic0() != Some(&GatehouseTicket::Transfer::SIGNATURE_HASH) {
                continue;
            }
            let Ok(decoded) = log.log_decode::<GatehouseTicket::Transfer>() else {
                continue;
            };
            let t = decoded.inner.data;
            records.push(TransferLogRecord {
                contract: format!("{:#x}", log.address()),
                block_number: log.block_number.unwrap_or_default() as i64,
                log_index: log.log_index.unwrap_or_default() as i64,
                block_hash: log
                    .block_hash
                    .map(|h| format!("{h:#x}"))
                    .unwrap_or_default(),
                tx_hash: log
                    .transaction_hash
                    .map(|h| format!("{h:#x}"))
                    .unwrap_or_default(),
                token_id: t.tokenId.to_string(),
                from: format!("{:#x}", t.from),
                to: format!("{:#x}", t.to),
            });
        }
        let to_hash = self
            .client
            .block_hash(to)
            .await?
            .map(|h| format!("{h:#x}"))
            .ok_or(StoreError::Other(format!("block {to} vanished")))?;
        let n = records.len();
        store
            .index_store(CURSOR, &records, to as i64, &to_hash, self.state.now_ms())
            .await?;
        Ok(n)
    }

    /// Where a fresh index starts: the first mined deploy's block (None
    /// before any deploy is mined).
    async fn first_block(
        &self,
        contracts: &[crate::store::chain::ContractRecord],
    ) -> Result<Option<u64>, WorkerError> {
        let mut first: Option<u64> = None;
        for c in contracts {
            let t = self.state.store.chain_tx(&c.deploy_tx).await?;
            if let Some(b) = t.block_number {
                first = Some(first.map_or(b as u64, |f| f.min(b as u64)));
            }
        }
        Ok(first)
    }
}
