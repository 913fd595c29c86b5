//! The chain outbox: mint jobs, the minter's nonces and its signed
//! transactions (see `crate::chain` for the worker that drives them).
//!
//! Invariants: a job is enqueued in the transaction of its cause
//! ([`enqueue`]); a nonce is taken under its row's lock in the same
//! transaction that stores the signed bytes, so two workers never sign two
//! transactions with one nonce and no nonce is handed out without its
//! transaction; a job is `sent` only with the transaction that carries it.

use super::sql::{col, map_err, parsed, parsed_opt};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, OrderId, TicketId, TicketStatus, UnixMillis, UserId};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

type Tx = Transaction<'static, Any>;

/// Why the chain must change for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Paid: mint to the holder's wallet.
    Mint,
    /// Changed hands in the cloud: move the token.
    Transfer,
    /// Refunded: invalidate the token.
    Burn,
    /// Withdrawn to the holder's own address.
    Withdraw,
    /// The organizer opened holder transfers before the event ends.
    Unlock,
}

impl JobKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mint => "mint",
            Self::Transfer => "transfer",
            Self::Burn => "burn",
            Self::Withdraw => "withdraw",
            Self::Unlock => "unlock",
        }
    }
}

/// Writes a chain job for `ticket` inside the caller's transaction. A
/// second mint job of one ticket is a no-op (one mint per ticket).
pub(super) async fn enqueue(
    tx: &mut Tx,
    ticket: TicketId,
    kind: JobKind,
    now: UnixMillis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chain_jobs (id, ticket_id, kind, status, next_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', $4, $4, $4) ON CONFLICT DO NOTHING",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(ticket.to_string())
    .bind(kind.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// After an event is cancelled (inside that transaction): a burn job for
/// each of its cancelled tickets that has a token or may get one (it has a
/// mint job), so the chain invalidates them like refunded ones.
pub(super) async fn enqueue_burns_of_cancelled(
    tx: &mut Tx,
    event: EventId,
    now: UnixMillis,
) -> StoreResult<usize> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT t.id FROM tickets t WHERE t.event_id = $1 AND t.status = 'cancelled' \
         AND EXISTS (SELECT 1 FROM chain_jobs m WHERE m.ticket_id = t.id AND m.kind = 'mint') \
         AND NOT EXISTS (SELECT 1 FROM chain_jobs b WHERE b.ticket_id = t.id AND b.kind = 'burn' \
         AND b.status IN ('pending', 'sent'))",
    )
    .bind(event.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    for id in &ids {
        let ticket = id
            .parse()
            .map_err(|e| StoreError::Other(format!("ticket id: {e}")))?;
        enqueue(tx, ticket, JobKind::Burn, now).await?;
    }
    Ok(ids.len())
}

/// A job row.
#[derive(Debug, Clone)]
pub struct ChainJobRecord {
    /// Id.
    pub id: String,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Cause (`mint`, `transfer`, `burn`, `withdraw`).
    pub kind: String,
    /// `pending`, `sent`, `done` or `failed`.
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// Reverted transactions so far.
    pub reverts: i64,
    /// Not before.
    pub next_at: UnixMillis,
    /// The transaction carrying it (latest).
    pub tx_id: Option<String>,
    /// Why the last try did not finish it.
    pub last_error: Option<String>,
    /// Enqueued.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// One chain job of a ticket as an order shows it: the job and the hash of
/// the transaction that carries it (the latest, after a replacement).
#[derive(Debug, Clone)]
pub struct TicketJobState {
    /// The ticket's order.
    pub order_id: OrderId,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Cause (`mint`, `transfer`, `burn`, `withdraw`, `unlock`).
    pub kind: String,
    /// `pending`, `sent`, `done` or `failed`.
    pub status: String,
    /// Why the last try did not finish it.
    pub last_error: Option<String>,
    /// The carrying transaction's hash.
    pub tx_hash: Option<String>,
    /// The carrying transaction's status.
    pub tx_status: Option<String>,
    /// Enqueued.
    pub created_at: UnixMillis,
}

/// A claimed job with what the worker needs to know about its ticket.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job.
    pub job: ChainJobRecord,
    /// The ticket's event.
    pub event_id: EventId,
    /// Its holder now.
    pub owner_id: Option<UserId>,
    /// Its status now.
    pub ticket_status: TicketStatus,
    /// The address it was withdrawn to, if it was.
    pub withdraw_to: Option<String>,
}

/// A stored transaction.
#[derive(Debug, Clone)]
pub struct ChainTxRecord {
    /// Id.
    pub id: String,
    /// Sender.
    pub minter: String,
    /// Nonce.
    pub nonce: i64,
    /// Hash, 0x hex.
    pub hash: String,
    /// Signed bytes, 0x hex.
    pub raw: String,
    /// `deploy`, `mint`, `transfer`, `burn`, `withdraw`.
    pub kind: String,
    /// The contract (for a deploy: the one it creates).
    pub contract: Option<String>,
    /// The event.
    pub event_id: Option<EventId>,
    /// Gas price, wei (decimal).
    pub gas_price: String,
    /// `signed`, `sent`, `confirmed`, `reverted`, `replaced`, `dropped`.
    pub status: String,
    /// Block, once mined.
    pub block_number: Option<i64>,
    /// Gas used, once mined.
    pub gas_used: Option<i64>,
    /// Last broadcast or mining error.
    pub error: Option<String>,
    /// The transaction it replaced (same nonce, lower fee).
    pub replaces: Option<String>,
    /// Stored.
    pub created_at: UnixMillis,
    /// Last changed.
    pub updated_at: UnixMillis,
}

/// A transaction to store: the signer is called with the allocated nonce.
#[derive(Debug, Clone)]
pub struct NewChainTx {
    /// Sender.
    pub minter: String,
    /// Kind.
    pub kind: String,
    /// Target contract (for a deploy: None; the address comes from signing).
    pub contract: Option<String>,
    /// The event.
    pub event_id: Option<EventId>,
    /// Gas price, wei.
    pub gas_price: u128,
    /// `(job id, token id)` carried.
    pub jobs: Vec<(String, String)>,
    /// The chain, for a deploy's contract row.
    pub chain_id: u64,
    /// Lowest acceptable nonce (the chain's mined count).
    pub floor: u64,
}

/// What signing at a nonce produced.
#[derive(Debug, Clone)]
pub struct SignedForStore {
    /// 0x hash.
    pub hash: String,
    /// 0x raw bytes.
    pub raw: String,
    /// For a deploy: the contract it creates.
    pub creates: Option<String>,
}

/// Signs at a nonce (synchronous: local keys only, while the nonce row is locked).
pub type SignAt<'a> = &'a (dyn Fn(u64) -> Result<SignedForStore, String> + Send + Sync);

/// How a stored transaction ended up on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinedTx {
    /// Block.
    pub block: i64,
    /// Gas used.
    pub gas_used: i64,
    /// Succeeded (false: reverted).
    pub success: bool,
}

/// An event's ticket contract.
#[derive(Debug, Clone)]
pub struct ContractRecord {
    /// Event.
    pub event_id: EventId,
    /// Address, 0x lower-case.
    pub address: String,
    /// Chain.
    pub chain_id: i64,
    /// Deploy transaction id.
    pub deploy_tx: String,
    /// `deploying` or `ready`.
    pub status: String,
}

/// An event's chain terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSettings {
    /// EIP-2981 royalty, basis points.
    pub royalty_bps: i64,
    /// Holders may withdraw to their own address.
    pub withdrawals_allowed: bool,
}

/// The outbox, transactions and contracts.
#[async_trait]
pub trait ChainStore: Send + Sync {
    /// Leases up to `limit` due pending jobs of tickets with nothing in flight.
    async fn chain_claim(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedJob>>;
    /// Gives leased jobs back, due at `next_at`; `attempt` counts a try.
    async fn chain_release(
        &self,
        ids: &[String],
        owner: &str,
        next_at: UnixMillis,
        error: Option<&str>,
        attempt: bool,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Marks leased jobs done (the chain already says what they want).
    async fn chain_finish(
        &self,
        ids: &[String],
        owner: &str,
        note: Option<&str>,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Allocates the next nonce, signs, stores the transaction, and marks its
    /// (leased) jobs `sent`, in one transaction. For a deploy, also the
    /// event's contract row (`deploying`).
    async fn chain_store_signed(
        &self,
        new: &NewChainTx,
        owner: &str,
        sign: SignAt<'_>,
        now: UnixMillis,
    ) -> StoreResult<ChainTxRecord>;
    /// Every stored transaction of `minter` at a nonce that is still open
    /// (some row `signed` or `sent`), by nonce then age.
    async fn chain_open_txs(&self, minter: &str) -> StoreResult<Vec<ChainTxRecord>>;
    /// Broadcast accepted.
    async fn chain_tx_sent(&self, id: &str, now: UnixMillis) -> StoreResult<()>;
    /// Notes a broadcast error.
    async fn chain_tx_error(&self, id: &str, error: &str, now: UnixMillis) -> StoreResult<()>;
    /// `id` was mined (deep enough): settles its nonce, its jobs and (deploy)
    /// its contract. A revert sends the jobs back (or fails them after
    /// `max_reverts`).
    async fn chain_tx_mined(
        &self,
        id: &str,
        mined: MinedTx,
        max_reverts: i64,
        retry_at: UnixMillis,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// No transaction at `id`'s nonce made it: all are dropped and their jobs
    /// go back to pending (the next claim reconciles with the chain).
    async fn chain_tx_dropped(&self, id: &str, now: UnixMillis) -> StoreResult<()>;
    /// Replaces `old` (still the newest at its nonce) with a higher fee.
    async fn chain_replace(
        &self,
        old: &ChainTxRecord,
        gas_price: u128,
        sign: SignAt<'_>,
        now: UnixMillis,
    ) -> StoreResult<Option<ChainTxRecord>>;
    /// Stored transactions by id.
    async fn chain_tx(&self, id: &str) -> StoreResult<ChainTxRecord>;
    /// The event's contract.
    async fn chain_contract(&self, event: EventId) -> StoreResult<Option<ContractRecord>>;
    /// The contract at `address`.
    async fn chain_contract_at(&self, address: &str) -> StoreResult<Option<ContractRecord>>;
    /// Every contract.
    async fn chain_contracts(&self) -> StoreResult<Vec<ContractRecord>>;
    /// The event's chain terms, if set.
    async fn chain_settings(&self, event: EventId) -> StoreResult<Option<ChainSettings>>;
    /// Sets the event's chain terms.
    async fn set_chain_settings(
        &self,
        event: EventId,
        s: &ChainSettings,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// A ticket's jobs, oldest first, each with its transactions.
    async fn ticket_chain_jobs(
        &self,
        ticket: TicketId,
    ) -> StoreResult<Vec<(ChainJobRecord, Vec<ChainTxRecord>)>>;
    /// Jobs of an order's tickets, each with its transactions.
    async fn order_chain_jobs(
        &self,
        order: OrderId,
    ) -> StoreResult<Vec<(ChainJobRecord, Vec<ChainTxRecord>)>>;
    /// Makes an order's failed jobs due now and enqueues a mint for each of
    /// its live tickets that has none; returns the jobs touched.
    async fn retry_order_chain_jobs(&self, order: OrderId, now: UnixMillis) -> StoreResult<u64>;
    /// Records a withdrawal and enqueues its job; `Conflict` if the ticket
    /// was already withdrawn.
    async fn request_withdrawal(
        &self,
        ticket: TicketId,
        wallet: crate::model::WalletId,
        address: &str,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Jobs per status.
    async fn chain_job_counts(&self) -> StoreResult<Vec<(String, i64)>>;
    /// The organizer's early unlock: an `unlock` job for each live ticket
    /// of the event (one per ticket: asking again adds only tickets sold
    /// since), in one transaction. Returns (jobs added, unlock jobs of the
    /// event in all).
    async fn request_unlock(&self, event: EventId, now: UnixMillis) -> StoreResult<(u64, u64)>;
    /// Makes the event's failed unlock jobs due now.
    async fn retry_unlock(&self, event: EventId, now: UnixMillis) -> StoreResult<u64>;
    /// The event's unlock jobs per status.
    async fn unlock_job_counts(&self, event: EventId) -> StoreResult<Vec<(String, i64)>>;
    /// Every chain job of the tickets of these orders, by ticket id then
    /// age, with its carrying transaction's hash (one query per 500 orders:
    /// for order lists).
    async fn orders_chain_state(&self, orders: &[OrderId]) -> StoreResult<Vec<TicketJobState>>;
}

const JOB_COLS: &str = "j.id, j.ticket_id, j.kind, j.status, j.attempts, j.reverts, j.next_at, j.tx_id, \
    j.last_error, j.created_at, j.updated_at";
const TX_COLS: &str = "id, minter, nonce, hash, raw, kind, contract, event_id, gas_price, status, \
    block_number, gas_used, error, replaces, created_at, updated_at";

fn job_from_row(r: &AnyRow) -> StoreResult<ChainJobRecord> {
    Ok(ChainJobRecord {
        id: col(r, "id")?,
        ticket_id: parsed(r, "ticket_id")?,
        kind: col(r, "kind")?,
        status: col(r, "status")?,
        attempts: col(r, "attempts")?,
        reverts: col(r, "reverts")?,
        next_at: col(r, "next_at")?,
        tx_id: col(r, "tx_id")?,
        last_error: col(r, "last_error")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

fn tx_from_row(r: &AnyRow) -> StoreResult<ChainTxRecord> {
    Ok(ChainTxRecord {
        id: col(r, "id")?,
        minter: col(r, "minter")?,
        nonce: col(r, "nonce")?,
        hash: col(r, "hash")?,
        raw: col(r, "raw")?,
        kind: col(r, "kind")?,
        contract: col(r, "contract")?,
        event_id: parsed_opt(r, "event_id")?,
        gas_price: col(r, "gas_price")?,
        status: col(r, "status")?,
        block_number: col(r, "block_number")?,
        gas_used: col(r, "gas_used")?,
        error: col(r, "error")?,
        replaces: col(r, "replaces")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

fn contract_from_row(r: &AnyRow) -> StoreResult<ContractRecord> {
    Ok(ContractRecord {
        event_id: parsed(r, "event_id")?,
        address: col(r, "address")?,
        chain_id: col(r, "chain_id")?,
        deploy_tx: col(r, "deploy_tx")?,
        status: col(r, "status")?,
    })
}

/// `$from, $from+1, ...` for `n` values.
fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lock_suffix<D: Dialect>(skip_locked: bool) -> &'static str {
    match (D::NAME, skip_locked) {
        ("postgres", true) => " FOR UPDATE SKIP LOCKED",
        ("postgres", false) => " FOR UPDATE",
        _ => "",
    }
}

async fn insert_tx(tx: &mut Tx, t: &ChainTxRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chain_txs (id, minter, nonce, hash, raw, kind, contract, event_id, gas_price, status, replaces, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(t.id.clone())
    .bind(t.minter.clone())
    .bind(t.nonce)
    .bind(t.hash.clone())
    .bind(t.raw.clone())
    .bind(t.kind.clone())
    .bind(t.contract.clone())
    .bind(t.event_id.map(|e| e.to_string()))
    .bind(t.gas_price.clone())
    .bind(t.status.clone())
    .bind(t.replaces.clone())
    .bind(t.created_at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Jobs carried by `tx_id` that are still `sent` go back to pending.
async fn requeue_jobs_of(
    tx: &mut Tx,
    tx_id: &str,
    next_at: UnixMillis,
    now: UnixMillis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE chain_jobs SET status = 'pending', next_at = $1, lease_owner = NULL, lease_until = NULL, updated_at = $2 \
         WHERE status = 'sent' AND id IN (SELECT job_id FROM chain_tx_jobs WHERE tx_id = $3)",
    )
    .bind(next_at)
    .bind(now)
    .bind(tx_id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

impl<D: Dialect> SqlStore<D> {
    async fn jobs_with_txs(
        &self,
        where_clause: &str,
        bind: String,
    ) -> StoreResult<Vec<(ChainJobRecord, Vec<ChainTxRecord>)>> {
        let sql = format!(
            "SELECT {JOB_COLS} FROM chain_jobs j {where_clause} ORDER BY j.created_at, j.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(bind)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let job = job_from_row(r)?;
            let sql = format!(
                "SELECT {TX_COLS} FROM chain_txs WHERE id IN (SELECT tx_id FROM chain_tx_jobs WHERE job_id = $1) \
                 ORDER BY nonce, created_at"
            );
            let txs = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(job.id.clone())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(tx_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            out.push((job, txs));
        }
        Ok(out)
    }

    /// Locks the minter's nonce row (creating it at `floor`) and returns the
    /// next nonce, at least `floor`.
    async fn lock_nonce(
        tx: &mut Tx,
        minter: &str,
        floor: u64,
        now: UnixMillis,
    ) -> StoreResult<i64> {
        let floor =
            i64::try_from(floor).map_err(|_| StoreError::Other("nonce out of range".into()))?;
        sqlx::query(
            "INSERT INTO chain_nonces (minter, next_nonce, updated_at) VALUES ($1, $2, $3) ON CONFLICT (minter) DO NOTHING",
        )
        .bind(minter.to_string())
        .bind(floor)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        let sql = format!(
            "SELECT next_nonce FROM chain_nonces WHERE minter = $1{}",
            lock_suffix::<D>(false)
        );
        let next: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(minter.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(next.max(floor))
    }
}

#[async_trait]
impl<D: Dialect> ChainStore for SqlStore<D> {
    async fn chain_claim(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT j.id FROM chain_jobs j WHERE j.status = 'pending' AND j.next_at <= $1 \
             AND (j.lease_until IS NULL OR j.lease_until < $1) \
             AND j.ticket_id NOT IN (SELECT s.ticket_id FROM chain_jobs s WHERE s.status = 'sent') \
             ORDER BY j.next_at, j.id LIMIT $2{}",
            lock_suffix::<D>(true)
        );
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE chain_jobs SET lease_owner = $1, lease_until = $2 WHERE id IN ({})",
            params(3, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner.to_string())
            .bind(now.saturating_add(lease_ms));
        for id in &ids {
            q = q.bind(id.clone());
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
        let sql = format!(
            "SELECT {JOB_COLS}, t.event_id, t.owner_id, t.status AS ticket_status, w.address AS withdraw_to \
             FROM chain_jobs j JOIN tickets t ON t.id = j.ticket_id \
             LEFT JOIN chain_withdrawals w ON w.ticket_id = j.ticket_id WHERE j.id IN ({}) ORDER BY j.next_at, j.id",
            params(1, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedJob {
                    job: job_from_row(r)?,
                    event_id: parsed(r, "event_id")?,
                    owner_id: parsed_opt(r, "owner_id")?,
                    ticket_status: parsed(r, "ticket_status")?,
                    withdraw_to: col(r, "withdraw_to")?,
                })
            })
            .collect()
    }

    async fn chain_release(
        &self,
        ids: &[String],
        owner: &str,
        next_at: UnixMillis,
        error: Option<&str>,
        attempt: bool,
        now: UnixMillis,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE chain_jobs SET lease_owner = NULL, lease_until = NULL, next_at = $1, \
             last_error = COALESCE($2, last_error), attempts = attempts + $3, updated_at = $4 \
             WHERE status = 'pending' AND lease_owner = $5 AND id IN ({})",
            params(6, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(next_at)
            .bind(error.map(str::to_string))
            .bind(i64::from(attempt))
            .bind(now)
            .bind(owner.to_string());
        for id in ids {
            q = q.bind(id.clone());
        }
        q.execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn chain_finish(
        &self,
        ids: &[String],
        owner: &str,
        note: Option<&str>,
        now: UnixMillis,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE chain_jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, \
             last_error = $1, updated_at = $2 WHERE status = 'pending' AND lease_owner = $3 AND id IN ({})",
            params(4, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(note.map(str::to_string))
            .bind(now)
            .bind(owner.to_string());
        for id in ids {
            q = q.bind(id.clone());
        }
        q.execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn chain_store_signed(
        &self,
        new: &NewChainTx,
        owner: &str,
        sign: SignAt<'_>,
        now: UnixMillis,
    ) -> StoreResult<ChainTxRecord> {
        let mut tx = self.begin_write().await?;
        let nonce = Self::lock_nonce(&mut tx, &new.minter, new.floor, now).await?;
        let signed = sign(nonce as u64).map_err(StoreError::Other)?;
        let record = ChainTxRecord {
            id: uuid::Uuid::now_v7().to_string(),
            minter: new.minter.clone(),
            nonce,
            hash: signed.hash,
            raw: signed.raw,
            kind: new.kind.clone(),
            contract: new.contract.clone().or(signed.creates.clone()),
            event_id: new.event_id,
            gas_price: new.gas_price.to_string(),
            status: "signed".into(),
            block_number: None,
            gas_used: None,
            error: None,
            replaces: None,
            created_at: now,
            updated_at: now,
        };
        insert_tx(&mut tx, &record).await?;
        sqlx::query("UPDATE chain_nonces SET next_nonce = $1, updated_at = $2 WHERE minter = $3")
            .bind(nonce + 1)
            .bind(now)
            .bind(new.minter.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for chunk in new.jobs.chunks(500) {
            let sql = format!(
                "UPDATE chain_jobs SET status = 'sent', tx_id = $1, attempts = attempts + 1, updated_at = $2 \
                 WHERE status = 'pending' AND lease_owner = $3 AND id IN ({})",
                params(4, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(record.id.clone())
                .bind(now)
                .bind(owner.to_string());
            for (job, _) in chunk {
                q = q.bind(job.clone());
            }
            let n = q.execute(&mut *tx).await.map_err(map_err)?.rows_affected();
            if n != chunk.len() as u64 {
                return Err(StoreError::Retryable(
                    "a chain job changed hands while it was being signed".into(),
                ));
            }
            let values = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("INSERT INTO chain_tx_jobs (tx_id, job_id, token_id) VALUES {values}");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(record.id.clone());
            for (job, token) in chunk {
                q = q.bind(job.clone()).bind(token.clone());
            }
            q.execute(&mut *tx).await.map_err(map_err)?;
        }
        if new.kind == "deploy" {
            let event = new
                .event_id
                .ok_or(StoreError::Other("a deploy without its event".into()))?;
            let address = signed
                .creates
                .ok_or(StoreError::Other("a deploy without its address".into()))?;
            sqlx::query(
                "INSERT INTO chain_contracts (event_id, address, chain_id, deploy_tx, status, created_at) \
                 VALUES ($1, $2, $3, $4, 'deploying', $5)",
            )
            .bind(event.to_string())
            .bind(address)
            .bind(new.chain_id as i64)
            .bind(record.id.clone())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn chain_open_txs(&self, minter: &str) -> StoreResult<Vec<ChainTxRecord>> {
        let sql = format!(
            "SELECT {TX_COLS} FROM chain_txs WHERE minter = $1 AND status IN ('signed', 'sent', 'replaced') \
             AND nonce IN (SELECT nonce FROM chain_txs WHERE minter = $1 AND status IN ('signed', 'sent')) \
             ORDER BY nonce, created_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(minter.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(tx_from_row)
            .collect()
    }

    async fn chain_tx_sent(&self, id: &str, now: UnixMillis) -> StoreResult<()> {
        sqlx::query("UPDATE chain_txs SET status = 'sent', error = NULL, updated_at = $1 WHERE id = $2 AND status = 'signed'")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn chain_tx_error(&self, id: &str, error: &str, now: UnixMillis) -> StoreResult<()> {
        sqlx::query("UPDATE chain_txs SET error = $1, updated_at = $2 WHERE id = $3")
            .bind(error.to_string())
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn chain_tx_mined(
        &self,
        id: &str,
        mined: MinedTx,
        max_reverts: i64,
        retry_at: UnixMillis,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let MinedTx {
            block,
            gas_used,
            success,
        } = mined;
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {TX_COLS} FROM chain_txs WHERE id = $1");
        let t = tx_from_row(
            &sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?,
        )?;
        if matches!(t.status.as_str(), "confirmed" | "reverted") {
            return Ok(());
        }
        sqlx::query(
            "UPDATE chain_txs SET status = $1, block_number = $2, gas_used = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(if success { "confirmed" } else { "reverted" })
        .bind(block)
        .bind(gas_used)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "UPDATE chain_txs SET status = 'dropped', updated_at = $1 WHERE minter = $2 AND nonce = $3 AND id <> $4 \
             AND status IN ('signed', 'sent', 'replaced')",
        )
        .bind(now)
        .bind(t.minter.clone())
        .bind(t.nonce)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if success {
            sqlx::query(
                "UPDATE chain_jobs SET status = 'done', last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                 WHERE status = 'sent' AND id IN (SELECT job_id FROM chain_tx_jobs WHERE tx_id = $2)",
            )
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if t.kind == "deploy" {
                sqlx::query("UPDATE chain_contracts SET status = 'ready' WHERE address = $1")
                    .bind(t.contract.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
        } else {
            let why = format!("transaction {} reverted in block {block}", t.hash);
            sqlx::query(
                "UPDATE chain_jobs SET reverts = reverts + 1, last_error = $1, lease_owner = NULL, lease_until = NULL, \
                 status = CASE WHEN reverts + 1 >= $2 THEN 'failed' ELSE 'pending' END, next_at = $3, updated_at = $4 \
                 WHERE status = 'sent' AND id IN (SELECT job_id FROM chain_tx_jobs WHERE tx_id = $5)",
            )
            .bind(why)
            .bind(max_reverts)
            .bind(retry_at)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if t.kind == "deploy" {
                sqlx::query(
                    "DELETE FROM chain_contracts WHERE address = $1 AND status = 'deploying'",
                )
                .bind(t.contract.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)
    }

    async fn chain_tx_dropped(&self, id: &str, now: UnixMillis) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {TX_COLS} FROM chain_txs WHERE id = $1");
        let t = tx_from_row(
            &sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?,
        )?;
        let siblings: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM chain_txs WHERE minter = $1 AND nonce = $2 AND status IN ('signed', 'sent', 'replaced')",
        )
        .bind(t.minter.clone())
        .bind(t.nonce)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for s in &siblings {
            sqlx::query("UPDATE chain_txs SET status = 'dropped', updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(s.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            requeue_jobs_of(&mut tx, s, now, now).await?;
        }
        if t.kind == "deploy" {
            sqlx::query("DELETE FROM chain_contracts WHERE address = $1 AND status = 'deploying'")
                .bind(t.contract.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn chain_replace(
        &self,
        old: &ChainTxRecord,
        gas_price: u128,
        sign: SignAt<'_>,
        now: UnixMillis,
    ) -> StoreResult<Option<ChainTxRecord>> {
        let mut tx = self.begin_write().await?;
        // The nonce row's lock serialises replacements with allocations.
        Self::lock_nonce(&mut tx, &old.minter, 0, now).await?;
        let newest: Option<String> = sqlx::query_scalar(
            "SELECT id FROM chain_txs WHERE minter = $1 AND nonce = $2 AND status IN ('signed', 'sent') \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(old.minter.clone())
        .bind(old.nonce)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if newest.as_deref() != Some(old.id.as_str()) {
            return Ok(None);
        }
        let signed = sign(old.nonce as u64).map_err(StoreError::Other)?;
        let record = ChainTxRecord {
            id: uuid::Uuid::now_v7().to_string(),
            hash: signed.hash,
            raw: signed.raw,
            gas_price: gas_price.to_string(),
            status: "signed".into(),
            replaces: Some(old.id.clone()),
            error: None,
            created_at: now,
            updated_at: now,
            ..old.clone()
        };
        insert_tx(&mut tx, &record).await?;
        sqlx::query("UPDATE chain_txs SET status = 'replaced', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(old.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO chain_tx_jobs (tx_id, job_id, token_id) SELECT $1, job_id, token_id FROM chain_tx_jobs WHERE tx_id = $2",
        )
        .bind(record.id.clone())
        .bind(old.id.clone())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("UPDATE chain_jobs SET tx_id = $1, updated_at = $2 WHERE tx_id = $3 AND status = 'sent'")
            .bind(record.id.clone())
            .bind(now)
            .bind(old.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(record))
    }

    async fn chain_tx(&self, id: &str) -> StoreResult<ChainTxRecord> {
        let sql = format!("SELECT {TX_COLS} FROM chain_txs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("chain transaction"))?;
        tx_from_row(&row)
    }

    async fn chain_contract(&self, event: EventId) -> StoreResult<Option<ContractRecord>> {
        sqlx::query("SELECT event_id, address, chain_id, deploy_tx, status FROM chain_contracts WHERE event_id = $1")
            .bind(event.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(contract_from_row)
            .transpose()
    }

    async fn chain_contract_at(&self, address: &str) -> StoreResult<Option<ContractRecord>> {
        sqlx::query("SELECT event_id, address, chain_id, deploy_tx, status FROM chain_contracts WHERE address = $1")
            .bind(address.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(contract_from_row)
            .transpose()
    }

    async fn chain_contracts(&self) -> StoreResult<Vec<ContractRecord>> {
        sqlx::query("SELECT event_id, address, chain_id, deploy_tx, status FROM chain_contracts ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(contract_from_row)
            .collect()
    }

    async fn chain_settings(&self, event: EventId) -> StoreResult<Option<ChainSettings>> {
        let row = sqlx::query(
            "SELECT royalty_bps, withdrawals_allowed FROM event_chain_settings WHERE event_id = $1",
        )
        .bind(event.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(ChainSettings {
                royalty_bps: col(&r, "royalty_bps")?,
                withdrawals_allowed: col::<i64>(&r, "withdrawals_allowed")? != 0,
            })
        })
        .transpose()
    }

    async fn set_chain_settings(
        &self,
        event: EventId,
        s: &ChainSettings,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO event_chain_settings (event_id, royalty_bps, withdrawals_allowed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO UPDATE SET royalty_bps = $2, withdrawals_allowed = $3, updated_at = $4",
        )
        .bind(event.to_string())
        .bind(s.royalty_bps)
        .bind(i64::from(s.withdrawals_allowed))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn ticket_chain_jobs(
        &self,
        ticket: TicketId,
    ) -> StoreResult<Vec<(ChainJobRecord, Vec<ChainTxRecord>)>> {
        self.jobs_with_txs("WHERE j.ticket_id = $1", ticket.to_string())
            .await
    }

    async fn order_chain_jobs(
        &self,
        order: OrderId,
    ) -> StoreResult<Vec<(ChainJobRecord, Vec<ChainTxRecord>)>> {
        self.jobs_with_txs(
            "WHERE j.ticket_id IN (SELECT id FROM tickets WHERE order_id = $1)",
            order.to_string(),
        )
        .await
    }

    async fn retry_order_chain_jobs(&self, order: OrderId, now: UnixMillis) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let retried = sqlx::query(
            "UPDATE chain_jobs SET status = 'pending', attempts = 0, reverts = 0, next_at = $1, lease_owner = NULL, \
             lease_until = NULL, updated_at = $1 WHERE ticket_id IN (SELECT id FROM tickets WHERE order_id = $2) \
             AND (status = 'failed' OR (status = 'pending' AND next_at > $1))",
        )
        .bind(now)
        .bind(order.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        let unminted: Vec<String> = sqlx::query_scalar(
            "SELECT t.id FROM tickets t WHERE t.order_id = $1 AND t.status IN ('issued', 'transferred', 'checked_in') \
             AND NOT EXISTS (SELECT 1 FROM chain_jobs j WHERE j.ticket_id = t.id AND j.kind = 'mint')",
        )
        .bind(order.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for t in &unminted {
            let id = t
                .parse()
                .map_err(|e| StoreError::Other(format!("ticket id: {e}")))?;
            enqueue(&mut tx, id, JobKind::Mint, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(retried + unminted.len() as u64)
    }

    async fn request_withdrawal(
        &self,
        ticket: TicketId,
        wallet: crate::model::WalletId,
        address: &str,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "INSERT INTO chain_withdrawals (ticket_id, wallet_id, address, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(ticket.to_string())
        .bind(wallet.to_string())
        .bind(address.to_ascii_lowercase())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Gone("the ticket was already withdrawn".into()));
        }
        enqueue(&mut tx, ticket, JobKind::Withdraw, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn chain_job_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM chain_jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
            .collect()
    }

    async fn orders_chain_state(&self, orders: &[OrderId]) -> StoreResult<Vec<TicketJobState>> {
        let mut out = Vec::new();
        for chunk in orders.chunks(500) {
            let sql = format!(
                "SELECT t.order_id, j.ticket_id, j.kind, j.status, j.last_error, j.created_at, x.hash, x.status AS tx_status \
                 FROM tickets t JOIN chain_jobs j ON j.ticket_id = t.id LEFT JOIN chain_txs x ON x.id = j.tx_id \
                 WHERE t.order_id IN ({}) ORDER BY t.id, j.created_at, j.id",
                params(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for o in chunk {
                q = q.bind(o.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(map_err)? {
                out.push(TicketJobState {
                    order_id: parsed(&r, "order_id")?,
                    ticket_id: parsed(&r, "ticket_id")?,
                    kind: col(&r, "kind")?,
                    status: col(&r, "status")?,
                    last_error: col(&r, "last_error")?,
                    tx_hash: col(&r, "hash")?,
                    tx_status: col(&r, "tx_status")?,
                    created_at: col(&r, "created_at")?,
                });
            }
        }
        Ok(out)
    }

    async fn request_unlock(&self, event: EventId, now: UnixMillis) -> StoreResult<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT t.id FROM tickets t WHERE t.event_id = $1 AND t.status IN ('issued', 'transferred', 'checked_in') \
             AND NOT EXISTS (SELECT 1 FROM chain_jobs j WHERE j.ticket_id = t.id AND j.kind = 'unlock')",
        )
        .bind(event.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for t in &live {
            let id = t
                .parse()
                .map_err(|e| StoreError::Other(format!("ticket id: {e}")))?;
            enqueue(&mut tx, id, JobKind::Unlock, now).await?;
        }
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM chain_jobs j JOIN tickets t ON t.id = j.ticket_id \
             WHERE t.event_id = $1 AND j.kind = 'unlock'",
        )
        .bind(event.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((live.len() as u64, total.max(0) as u64))
    }

    async fn unlock_job_counts(&self, event: EventId) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT j.status, COUNT(*) AS n FROM chain_jobs j JOIN tickets t ON t.id = j.ticket_id \
             WHERE t.event_id = $1 AND j.kind = 'unlock' GROUP BY j.status",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
            .collect()
    }

    async fn retry_unlock(&self, event: EventId, now: UnixMillis) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE chain_jobs SET status = 'pending', attempts = 0, reverts = 0, next_at = $1, lease_owner = NULL, \
             lease_until = NULL, updated_at = $1 WHERE kind = 'unlock' AND status = 'failed' \
             AND ticket_id IN (SELECT id FROM tickets WHERE event_id = $2)",
        )
        .bind(now)
        .bind(event.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected())
    }
}
