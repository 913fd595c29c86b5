//! Wallets and the chain index.
//!
//! The index holds the contracts' Transfer logs exactly as the chain reports
//! them (with their block hashes) and the holdings they imply; it is written
//! only from the chain, so a wallet shows what the chain says. A re-org is
//! undone by [`WalletStore::index_rewind`]: the logs above the fork go, and
//! the holdings of the tokens they touched are recomputed from what is left.

use super::sql::{col, map_err, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{UnixMillis, UserId, WalletId};
use async_trait::async_trait;
use sqlx::any::AnyRow;

/// A wallet.
#[derive(Debug, Clone)]
pub struct WalletRecord {
    /// Id.
    pub id: WalletId,
    /// Owner.
    pub user_id: UserId,
    /// 0x address, lower-case.
    pub address: String,
    /// `custodial` or `external`.
    pub kind: String,
    /// The custodial key, sealed by the KeyVault (never leaves the cloud).
    pub sealed_key: Option<Vec<u8>>,
    /// Created.
    pub created_at: UnixMillis,
}

/// One Transfer log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferLogRecord {
    /// Contract, 0x lower-case.
    pub contract: String,
    /// Block.
    pub block_number: i64,
    /// Position in the block.
    pub log_index: i64,
    /// Block hash.
    pub block_hash: String,
    /// Transaction hash.
    pub tx_hash: String,
    /// Token id, decimal.
    pub token_id: String,
    /// From (zero address: a mint).
    pub from: String,
    /// To (zero address: a burn).
    pub to: String,
}

/// A token and its owner, as the index says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingRecord {
    /// Contract.
    pub contract: String,
    /// Token id, decimal.
    pub token_id: String,
    /// Owner, 0x lower-case.
    pub owner: String,
    /// Block of the transfer that gave it.
    pub block_number: i64,
}

/// The zero address, lower-case.
pub const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// Wallets and what the chain says they hold.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Inserts a wallet; a second custodial wallet of one user returns the
    /// first; an address already registered is `Conflict`.
    async fn insert_wallet(&self, w: &WalletRecord) -> StoreResult<WalletRecord>;
    /// By id.
    async fn wallet(&self, id: WalletId) -> StoreResult<WalletRecord>;
    /// A user's wallets, custodial first.
    async fn wallets_of(&self, user: UserId) -> StoreResult<Vec<WalletRecord>>;
    /// A user's custodial wallet.
    async fn custodial_wallet(&self, user: UserId) -> StoreResult<Option<WalletRecord>>;
    /// The indexer's position: `(block, hash)`.
    async fn index_cursor(&self, name: &str) -> StoreResult<Option<(i64, String)>>;
    /// Stores logs (in chain order) and moves the cursor, in one transaction.
    async fn index_store(
        &self,
        name: &str,
        logs: &[TransferLogRecord],
        block: i64,
        hash: &str,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Forgets everything above `block` and recomputes the holdings it touched.
    async fn index_rewind(
        &self,
        name: &str,
        block: i64,
        hash: &str,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Tokens held by `address`.
    async fn holdings_of(&self, address: &str) -> StoreResult<Vec<HoldingRecord>>;
    /// The holding of one token.
    async fn holding(&self, contract: &str, token_id: &str) -> StoreResult<Option<HoldingRecord>>;
    /// Transfers from or to `address`, newest first.
    async fn transfers_of(&self, address: &str, limit: i64) -> StoreResult<Vec<TransferLogRecord>>;
    /// Writes a holding read from the chain (`ownerOf`) for a token the
    /// indexer has not reached yet; the indexer's later logs win.
    async fn put_holding(&self, h: &HoldingRecord) -> StoreResult<()>;
}

fn wallet_from_row(r: &AnyRow) -> StoreResult<WalletRecord> {
    Ok(WalletRecord {
        id: parsed(r, "id")?,
        user_id: parsed(r, "user_id")?,
        address: col(r, "address")?,
        kind: col(r, "kind")?,
        sealed_key: col(r, "sealed_key")?,
        created_at: col(r, "created_at")?,
    })
}

fn log_from_row(r: &AnyRow) -> StoreResult<TransferLogRecord> {
    Ok(TransferLogRecord {
        contract: col(r, "contract")?,
        block_number: col(r, "block_number")?,
        log_index: col(r, "log_index")?,
        block_hash: col(r, "block_hash")?,
        tx_hash: col(r, "tx_hash")?,
        token_id: col(r, "token_id")?,
        from: col(r, "from_address")?,
        to: col(r, "to_address")?,
    })
}

fn holding_from_row(r: &AnyRow) -> StoreResult<HoldingRecord> {
    Ok(HoldingRecord {
        contract: col(r, "contract")?,
        token_id: col(r, "token_id")?,
        owner: col(r, "owner")?,
        block_number: col(r, "block_number")?,
    })
}

const WALLET_COLS: &str = "id, user_id, address, kind, sealed_key, created_at";
const LOG_COLS: &str =
    "contract, block_number, log_index, block_hash, tx_hash, token_id, from_address, to_address";

async fn set_holding(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    contract: &str,
    token: &str,
    owner: &str,
    block: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM nft_holdings WHERE contract = $1 AND token_id = $2")
        .bind(contract.to_string())
        .bind(token.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    if owner != ZERO_ADDRESS {
        sqlx::query(
            "INSERT INTO nft_holdings (contract, token_id, owner, block_number) VALUES ($1, $2, $3, $4)",
        )
        .bind(contract.to_string())
        .bind(token.to_string())
        .bind(owner.to_string())
        .bind(block)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

async fn set_cursor(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    name: &str,
    block: i64,
    hash: &str,
    now: UnixMillis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chain_index_cursor (name, block_number, block_hash, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET block_number = $2, block_hash = $3, updated_at = $4",
    )
    .bind(name.to_string())
    .bind(block)
    .bind(hash.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl<D: Dialect> WalletStore for SqlStore<D> {
    async fn insert_wallet(&self, w: &WalletRecord) -> StoreResult<WalletRecord> {
        let inserted = sqlx::query(
            "INSERT INTO wallets (id, user_id, address, kind, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(w.id.to_string())
        .bind(w.user_id.to_string())
        .bind(w.address.to_ascii_lowercase())
        .bind(w.kind.clone())
        .bind(w.sealed_key.clone())
        .bind(w.created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => self.wallet(w.id).await,
            Err(e) => {
                let err = map_err(e);
                if w.kind == "custodial"
                    && matches!(err, StoreError::Duplicate(_))
                    && let Some(existing) = self.custodial_wallet(w.user_id).await?
                {
                    return Ok(existing);
                }
                match err {
                    StoreError::Duplicate(_) => Err(StoreError::Duplicate(
                        "this address is already registered".into(),
                    )),
                    other => Err(other),
                }
            }
        }
    }

    async fn wallet(&self, id: WalletId) -> StoreResult<WalletRecord> {
        let sql = format!("SELECT {WALLET_COLS} FROM wallets WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("wallet"))?;
        wallet_from_row(&row)
    }

    async fn wallets_of(&self, user: UserId) -> StoreResult<Vec<WalletRecord>> {
        let sql = format!(
            "SELECT {WALLET_COLS} FROM wallets WHERE user_id = $1 ORDER BY CASE kind WHEN 'custodial' THEN 0 ELSE 1 END, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(wallet_from_row)
            .collect()
    }

    async fn custodial_wallet(&self, user: UserId) -> StoreResult<Option<WalletRecord>> {
        let sql =
            format!("SELECT {WALLET_COLS} FROM wallets WHERE user_id = $1 AND kind = 'custodial'");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(wallet_from_row)
            .transpose()
    }

    async fn index_cursor(&self, name: &str) -> StoreResult<Option<(i64, String)>> {
        let row =
            sqlx::query("SELECT block_number, block_hash FROM chain_index_cursor WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| Ok((col(&r, "block_number")?, col(&r, "block_hash")?)))
            .transpose()
    }

    async fn index_store(
        &self,
        name: &str,
        logs: &[TransferLogRecord],
        block: i64,
        hash: &str,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for l in logs {
            let n = sqlx::query(
                "INSERT INTO chain_transfers (contract, block_number, log_index, block_hash, tx_hash, token_id, from_address, to_address) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(l.contract.clone())
            .bind(l.block_number)
            .bind(l.log_index)
            .bind(l.block_hash.clone())
            .bind(l.tx_hash.clone())
            .bind(l.token_id.clone())
            .bind(l.from.clone())
            .bind(l.to.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if n == 1 {
                set_holding(&mut tx, &l.contract, &l.token_id, &l.to, l.block_number).await?;
            }
        }
        set_cursor(&mut tx, name, block, hash, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn index_rewind(
        &self,
        name: &str,
        block: i64,
        hash: &str,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let touched = sqlx::query(
            "SELECT DISTINCT contract, token_id FROM chain_transfers WHERE block_number > $1",
        )
        .bind(block)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM chain_transfers WHERE block_number > $1")
            .bind(block)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for r in &touched {
            let contract: String = col(r, "contract")?;
            let token: String = col(r, "token_id")?;
            let last = sqlx::query(
                "SELECT to_address, block_number FROM chain_transfers WHERE contract = $1 AND token_id = $2 \
                 ORDER BY block_number DESC, log_index DESC LIMIT 1",
            )
            .bind(contract.clone())
            .bind(token.clone())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            match last {
                Some(l) => {
                    let to: String = col(&l, "to_address")?;
                    let b: i64 = col(&l, "block_number")?;
                    set_holding(&mut tx, &contract, &token, &to, b).await?;
                }
                None => set_holding(&mut tx, &contract, &token, ZERO_ADDRESS, 0).await?,
            }
        }
        set_cursor(&mut tx, name, block, hash, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn holdings_of(&self, address: &str) -> StoreResult<Vec<HoldingRecord>> {
        sqlx::query(
            "SELECT contract, token_id, owner, block_number FROM nft_holdings WHERE owner = $1 ORDER BY contract, token_id",
        )
        .bind(address.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(holding_from_row)
        .collect()
    }

    async fn holding(&self, contract: &str, token_id: &str) -> StoreResult<Option<HoldingRecord>> {
        sqlx::query(
            "SELECT contract, token_id, owner, block_number FROM nft_holdings WHERE contract = $1 AND token_id = $2",
        )
        .bind(contract.to_ascii_lowercase())
        .bind(token_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(holding_from_row)
        .transpose()
    }

    async fn transfers_of(&self, address: &str, limit: i64) -> StoreResult<Vec<TransferLogRecord>> {
        let sql = format!(
            "SELECT {LOG_COLS} FROM chain_transfers WHERE from_address = $1 OR to_address = $1 \
             ORDER BY block_number DESC, log_index DESC LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(address.to_ascii_lowercase())
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(log_from_row)
            .collect()
    }

    async fn put_holding(&self, h: &HoldingRecord) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let newer: Option<i64> = sqlx::query_scalar(
            "SELECT block_number FROM nft_holdings WHERE contract = $1 AND token_id = $2",
        )
        .bind(h.contract.clone())
        .bind(h.token_id.clone())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if newer.is_none_or(|b| b <= h.block_number) {
            set_holding(&mut tx, &h.contract, &h.token_id, &h.owner, h.block_number).await?;
        }
        tx.commit().await.map_err(map_err)
    }
}
