//! The minting worker: claims chain jobs (leases, `SKIP LOCKED` on
//! PostgreSQL, so any number of replicas can run one), reconciles each
//! ticket with the contract (`statusOf`), and sends only what differs, in
//! batches of up to `chain.batch_size` tokens per transaction.
//!
//! Crash safety: a transaction is signed with a nonce taken from the
//! database and stored (raw bytes and hash) in the same database transaction
//! before it is broadcast. [`Minter::track`] then drives every stored
//! transaction to an end: it re-broadcasts the same bytes (same hash) when
//! the node does not know them, reads receipts (of every transaction at the
//! nonce, when a stuck one was replaced with a higher fee), waits for
//! `chain.confirmations`, and sends the jobs of a nonce that something else
//! used back to pending, where the next claim reconciles with the chain.

use super::client::{Broadcast, ChainClient, ChainError, SignedTx};
use super::contract::{self, ContractTerms, GatehouseTicket};
use crate::model::{EventId, TicketStatus, UnixMillis, UserId};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::chain::{ChainTxRecord, ClaimedJob, MinedTx, NewChainTx, SignedForStore};
use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest a worker step (track, dispatch, index) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Noted on a stored transaction whose nonce the chain shows used while none
/// of the transactions at that nonce has a receipt yet.
const NONCE_USED: &str = "nonce used on chain, no receipt yet";

/// How long that may last before the transactions at the nonce are given
/// up and their jobs reconciled with the chain.
const NONCE_USED_GRACE_MS: i64 = 5_000;

/// A worker step that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The chain.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one `dispatch` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// Jobs claimed.
    pub claimed: usize,
    /// Transactions signed and stored.
    pub signed: usize,
    /// Jobs found already done on chain.
    pub already: usize,
}

/// One worker (one lease owner).
#[derive(Debug, Clone)]
pub struct Minter {
    state: AppState,
    client: ChainClient,
    owner: String,
    minter: String,
}

enum Action {
    Mint(Address),
    Move(Address),
    Burn,
    Withdraw(Address),
}

fn hex_addr(a: Address) -> String {
    format!("{a:#x}")
}

impl Minter {
    /// A worker for the configured chain, or None without one.
    pub fn new(state: &AppState) -> Result<Option<Self>, String> {
        let c = &state.config.chain;
        if !c.enabled() {
            return Ok(None);
        }
        let client = ChainClient::new(&c.rpc_url, c.chain_id, &c.minter_key)?;
        Ok(Some(Self {
            state: state.clone(),
            minter: hex_addr(client.minter()),
            client,
            owner: uuid::Uuid::now_v7().to_string(),
        }))
    }

    /// The chain client.
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// Runs until aborted: track, dispatch, index, every `chain.poll_ms`.
    pub async fn run(self) {
        let poll = Duration::from_millis(self.state.config.chain.poll_ms.max(10));
        let mut indexer = super::indexer::Indexer::new(self.state.clone(), self.client.clone());
        let mut chain_checked = false;
        loop {
            if !chain_checked {
                match self.client.check_chain_id().await {
                    Ok(()) => chain_checked = true,
                    Err(e) => tracing::warn!(error = %e, "chain not usable yet; mint jobs wait"),
                }
            }
            if chain_checked {
                // A call the node never answers must not stop the worker:
                // every step is bounded, and all its state is in the database.
                match tokio::time::timeout(STEP_TIMEOUT, self.track()).await {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "tracking chain transactions failed; will retry")
                    }
                    Err(_) => tracing::warn!("tracking chain transactions timed out; will retry"),
                    Ok(Ok(_)) => {}
                }
                match tokio::time::timeout(STEP_TIMEOUT, self.dispatch(true)).await {
                    Ok(Ok(d)) if d.claimed > 0 => {
                        tracing::debug!(
                            claimed = d.claimed,
                            signed = d.signed,
                            "chain jobs dispatched"
                        );
                        continue;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "dispatching chain jobs failed; will retry")
                    }
                    Err(_) => tracing::warn!("dispatching chain jobs timed out; will retry"),
                }
                match tokio::time::timeout(STEP_TIMEOUT, indexer.step()).await {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "chain indexer step failed; will retry")
                    }
                    Err(_) => tracing::warn!("chain indexer step timed out; will retry"),
                    Ok(Ok(_)) => {}
                }
            }
            self.publish_metrics().await;
            tokio::time::sleep(poll).await;
        }
    }

    async fn publish_metrics(&self) {
        if let Ok(counts) = self.state.store.chain_job_counts().await {
            for (status, n) in counts {
                metrics::gauge!("chain_jobs", "status" => status).set(n as f64);
            }
        }
    }

    fn now(&self) -> UnixMillis {
        self.state.now_ms()
    }

    fn backoff(&self, attempts: i64) -> i64 {
        let c = &self.state.config.chain;
        let base = c.poll_ms.max(10) as i64;
        let max = (c.max_backoff_secs.max(1) * 1000) as i64;
        base.saturating_mul(1i64 << attempts.clamp(0, 20)).min(max)
    }

    /// Claims due jobs, reconciles them with the chain and stores one signed
    /// transaction per batch; broadcasts them when `broadcast` (tests stop
    /// here to play a crash between signing and broadcasting).
    pub async fn dispatch(&self, broadcast: bool) -> Result<Dispatched, WorkerError> {
        let c = &self.state.config.chain;
        let now = self.now();
        let lease_ms = (c.lease_secs.max(1) * 1000) as i64;
        let jobs = self
            .state
            .store
            .chain_claim(&self.owner, now, lease_ms, (c.batch_size * 4) as i64)
            .await?;
        let mut out = Dispatched {
            claimed: jobs.len(),
            ..Default::default()
        };
        let mut by_event: BTreeMap<EventId, Vec<ClaimedJob>> = BTreeMap::new();
        for j in jobs {
            by_event.entry(j.event_id).or_default().push(j);
        }
        for (event, jobs) in by_event {
            match self.dispatch_event(event, &jobs, broadcast, &mut out).await {
                Ok(()) => {}
                Err(e) => {
                    let ids: Vec<String> = jobs.iter().map(|j| j.job.id.clone()).collect();
                    let attempts = jobs.iter().map(|j| j.job.attempts).max().unwrap_or(0);
                    let msg = e.to_string();
                    tracing::warn!(%event, error = %msg, "chain jobs wait");
                    self.state
                        .store
                        .chain_release(
                            &ids,
                            &self.owner,
                            now + self.backoff(attempts),
                            Some(&msg),
                            true,
                            self.now(),
                        )
                        .await?;
                }
            }
        }
        Ok(out)
    }

    async fn dispatch_event(
        &self,
        event: EventId,
        jobs: &[ClaimedJob],
        broadcast: bool,
        out: &mut Dispatched,
    ) -> Result<(), WorkerError> {
        let store = &self.state.store;
        let ids: Vec<String> = jobs.iter().map(|j| j.job.id.clone()).collect();
        let wait = self.now() + self.state.config.chain.poll_ms.max(10) as i64;
        let contract = match store.chain_contract(event).await? {
            Some(c) if c.status == "ready" => c,
            Some(_) => {
                store
                    .chain_release(&ids, &self.owner, wait, None, false, self.now())
                    .await?;
                return Ok(());
            }
            None if jobs.iter().all(|j| {
                matches!(
                    j.ticket_status,
                    TicketStatus::Refunded | TicketStatus::Cancelled
                )
            }) =>
            {
                // Nothing was ever minted (no contract): nothing to burn,
                // and no contract to deploy for it.
                out.already += ids.len();
                store
                    .chain_finish(
                        &ids,
                        &self.owner,
                        Some("the event has no contract: nothing was minted"),
                        self.now(),
                    )
                    .await?;
                return Ok(());
            }
            None => {
                if self.state.config.chain.deploy_contracts {
                    self.deploy(event, broadcast).await?;
                    out.signed += 1;
                }
                let why = (!self.state.config.chain.deploy_contracts)
                    .then_some("the event has no contract and chain.deploy_contracts is off");
                store
                    .chain_release(&ids, &self.owner, wait, why, false, self.now())
                    .await?;
                return Ok(());
            }
        };
        let address: Address = contract
            .address
            .parse()
            .map_err(|_| StoreError::Other("stored contract address".into()))?;
        let (unlocks, jobs): (Vec<&ClaimedJob>, Vec<&ClaimedJob>) =
            jobs.iter().partition(|j| j.job.kind == "unlock");
        let tokens: Vec<U256> = jobs
            .iter()
            .map(|j| contract::token_id(j.job.ticket_id))
            .collect();
        let states = self.client.status_of(address, &tokens).await?;
        let mut done = Vec::new();
        let mut wallets: std::collections::HashMap<UserId, Address> = Default::default();
        let mut plan: Vec<(Action, &ClaimedJob, U256)> = Vec::new();
        for ((&j, s), token) in jobs.iter().zip(states).zip(&tokens) {
            let action = if matches!(
                j.ticket_status,
                TicketStatus::Refunded | TicketStatus::Cancelled
            ) {
                (!s.burned).then_some(Action::Burn)
            } else if s.burned {
                None
            } else {
                let target = match (&j.withdraw_to, j.owner_id) {
                    (Some(w), _) => w.parse::<Address>().ok(),
                    (None, Some(user)) => Some(match wallets.get(&user) {
                        Some(a) => *a,
                        None => {
                            let a = self.custodial_address(user).await?;
                            wallets.insert(user, a);
                            a
                        }
                    }),
                    (None, None) => None,
                };
                match target {
                    None => None,
                    Some(t) if s.owner.is_zero() => Some(Action::Mint(t)),
                    Some(t) if s.owner == t || s.released => None,
                    Some(t) if j.withdraw_to.is_some() => Some(Action::Withdraw(t)),
                    Some(t) => Some(Action::Move(t)),
                }
            };
            match action {
                Some(a) => plan.push((a, j, *token)),
                None => done.push(j.job.id.clone()),
            }
        }
        out.already += done.len();
        store
            .chain_finish(
                &done,
                &self.owner,
                Some("the chain already matches"),
                self.now(),
            )
            .await?;
        self.send_plan(event, address, plan, broadcast, out).await?;
        self.unlock(event, address, &unlocks, broadcast, out).await
    }

    /// The organizer's early unlock: one `unlock` transaction (listing the
    /// minted tokens, for their EIP-5192 `Unlocked` events) carries up to
    /// `chain.batch_size` unlock jobs; once the contract says `unlocked`,
    /// every other unlock job is done without a transaction.
    async fn unlock(
        &self,
        event: EventId,
        address: Address,
        unlocks: &[&ClaimedJob],
        broadcast: bool,
        out: &mut Dispatched,
    ) -> Result<(), WorkerError> {
        if unlocks.is_empty() {
            return Ok(());
        }
        let store = &self.state.store;
        let ids: Vec<String> = unlocks.iter().map(|j| j.job.id.clone()).collect();
        if self.client.unlocked(address).await? {
            out.already += ids.len();
            return store
                .chain_finish(
                    &ids,
                    &self.owner,
                    Some("the contract is already unlocked"),
                    self.now(),
                )
                .await
                .map_err(Into::into);
        }
        let size = self.state.config.chain.batch_size.max(1).min(unlocks.len());
        let (now, later) = unlocks.split_at(size);
        let later: Vec<String> = later.iter().map(|j| j.job.id.clone()).collect();
        // One unlock opens the whole contract: the rest wait for it.
        let wait = self.now() + self.state.config.chain.poll_ms.max(10) as i64;
        store
            .chain_release(&later, &self.owner, wait, None, false, self.now())
            .await?;
        let tokens: Vec<U256> = now
            .iter()
            .map(|j| contract::token_id(j.job.ticket_id))
            .collect();
        let states = self.client.status_of(address, &tokens).await?;
        let minted = tokens
            .iter()
            .zip(&states)
            .filter(|(_, s)| !s.owner.is_zero())
            .map(|(t, _)| *t)
            .collect();
        let call = GatehouseTicket::unlockCall { tokenIds: minted };
        let carried = now
            .iter()
            .zip(&tokens)
            .map(|(j, t)| (j.job.id.clone(), t.to_string()))
            .collect();
        self.send(
            event,
            address,
            "unlock",
            call.abi_encode().into(),
            carried,
            broadcast,
        )
        .await?;
        out.signed += 1;
        Ok(())
    }

    async fn send_plan(
        &self,
        event: EventId,
        contract: Address,
        plan: Vec<(Action, &ClaimedJob, U256)>,
        broadcast: bool,
        out: &mut Dispatched,
    ) -> Result<(), WorkerError> {
        let mut mints: BTreeMap<U256, (Address, Vec<String>)> = BTreeMap::new();
        let mut moves: BTreeMap<U256, (Address, Vec<String>)> = BTreeMap::new();
        let mut burns: BTreeMap<U256, Vec<String>> = BTreeMap::new();
        let mut single = Vec::new();
        for (a, j, token) in plan {
            let id = j.job.id.clone();
            match a {
                Action::Mint(to) => mints.entry(token).or_insert((to, Vec::new())).1.push(id),
                Action::Move(to) => moves.entry(token).or_insert((to, Vec::new())).1.push(id),
                Action::Burn => burns.entry(token).or_default().push(id),
                Action::Withdraw(to) => single.push((token, to, id)),
            }
        }
        let size = self.state.config.chain.batch_size.max(1);
        let mints: Vec<_> = mints.into_iter().collect();
        for chunk in mints.chunks(size) {
            let call = GatehouseTicket::mintBatchCall {
                to: chunk.iter().map(|(_, (to, _))| *to).collect(),
                tokenIds: chunk.iter().map(|(t, _)| *t).collect(),
            };
            let jobs = chunk
                .iter()
                .flat_map(|(t, (_, js))| js.iter().map(move |j| (j.clone(), t.to_string())))
                .collect();
            self.send(
                event,
                contract,
                "mint",
                call.abi_encode().into(),
                jobs,
                broadcast,
            )
            .await?;
            out.signed += 1;
        }
        let moves: Vec<_> = moves.into_iter().collect();
        for chunk in moves.chunks(size) {
            let call = GatehouseTicket::custodianTransferBatchCall {
                to: chunk.iter().map(|(_, (to, _))| *to).collect(),
                tokenIds: chunk.iter().map(|(t, _)| *t).collect(),
            };
            let jobs = chunk
                .iter()
                .flat_map(|(t, (_, js))| js.iter().map(move |j| (j.clone(), t.to_string())))
                .collect();
            self.send(
                event,
                contract,
                "transfer",
                call.abi_encode().into(),
                jobs,
                broadcast,
            )
            .await?;
            out.signed += 1;
        }
        let burns: Vec<_> = burns.into_iter().collect();
        for chunk in burns.chunks(size) {
            let call = GatehouseTicket::invalidateBatchCall {
                tokenIds: chunk.iter().map(|(t, _)| *t).collect(),
            };
            let jobs = chunk
                .iter()
                .flat_map(|(t, js)| js.iter().map(move |j| (j.clone(), t.to_string())))
                .collect();
            self.send(
                event,
                contract,
                "burn",
                call.abi_encode().into(),
                jobs,
                broadcast,
            )
            .await?;
            out.signed += 1;
        }
        for (token, to, job) in single {
            let call = GatehouseTicket::withdrawCall { to, tokenId: token };
            self.send(
                event,
                contract,
                "withdraw",
                call.abi_encode().into(),
                vec![(job, token.to_string())],
                broadcast,
            )
            .await?;
            out.signed += 1;
        }
        Ok(())
    }

    /// The user's custodial wallet address, creating the wallet (its key
    /// sealed by the vault) on first use.
    async fn custodial_address(&self, user: UserId) -> Result<Address, WorkerError> {
        let w = crate::wallets::ensure_custodial(&self.state, user)
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?;
        w.address
            .parse()
            .map_err(|_| WorkerError::Store(StoreError::Other("stored wallet address".into())))
    }

    async fn send(
        &self,
        event: EventId,
        to: Address,
        kind: &str,
        input: Bytes,
        jobs: Vec<(String, String)>,
        broadcast: bool,
    ) -> Result<ChainTxRecord, WorkerError> {
        let gas = self.client.estimate_gas(Some(to), input.clone()).await?;
        let gas_limit = gas + gas / 5 + 10_000;
        // Twice the node's price: room for the base fee to rise while
        // the transaction waits in a busy pool.
        let gas_price = self.client.gas_price().await?.saturating_mul(2);
        let floor = self.client.mined_nonce().await?;
        let new = NewChainTx {
            minter: self.minter.clone(),
            kind: kind.into(),
            contract: Some(hex_addr(to)),
            event_id: Some(event),
            gas_price,
            jobs,
            chain_id: self.client.chain_id(),
            floor,
        };
        let client = self.client.clone();
        let sign = move |nonce: u64| {
            client
                .sign(nonce, Some(to), input.clone(), gas_limit, gas_price)
                .map(|s| stored(&s, None))
                .map_err(|e| e.to_string())
        };
        let record = self
            .state
            .store
            .chain_store_signed(&new, &self.owner, &sign, self.now())
            .await?;
        if broadcast {
            self.broadcast(&record).await?;
        }
        Ok(record)
    }

    async fn deploy(&self, event: EventId, broadcast: bool) -> Result<(), WorkerError> {
        let c = &self.state.config.chain;
        let ev = self.state.store.event(event).await?;
        let settings = self.state.store.chain_settings(event).await?;
        let bps = settings.map_or(i64::from(c.default_royalty_bps), |s| s.royalty_bps);
        let receiver = self.custodial_address(ev.organizer_id).await?;
        let admin = if c.admin_address.is_empty() {
            self.client.minter()
        } else {
            c.admin_address
                .parse()
                .map_err(|_| ChainError::Other("chain.admin_address".into()))?
        };
        let terms = ContractTerms {
            name: ev.name.chars().take(64).collect(),
            symbol: "GHT".into(),
            metadata_base: c.metadata_base_url.clone(),
            admin,
            minter: self.client.minter(),
            royalty_receiver: receiver,
            royalty_bps: u16::try_from(bps.clamp(0, 10_000)).unwrap_or(0),
            locked_until: u64::try_from(ev.ends_at / 1000).unwrap_or(0),
        };
        let code = contract::deploy_code(&terms).map_err(ChainError::Other)?;
        let gas = self.client.estimate_gas(None, code.clone()).await?;
        let gas_limit = gas + gas / 5 + 50_000;
        // Twice the node's price: room for the base fee to rise while
        // the transaction waits in a busy pool.
        let gas_price = self.client.gas_price().await?.saturating_mul(2);
        let floor = self.client.mined_nonce().await?;
        let minter = self.client.minter();
        let new = NewChainTx {
            minter: self.minter.clone(),
            kind: "deploy".into(),
            contract: None,
            event_id: Some(event),
            gas_price,
            jobs: Vec::new(),
            chain_id: self.client.chain_id(),
            floor,
        };
        let client = self.client.clone();
        let sign = move |nonce: u64| {
            client
                .sign(nonce, None, code.clone(), gas_limit, gas_price)
                .map(|s| stored(&s, Some(minter.create(nonce))))
                .map_err(|e| e.to_string())
        };
        match self
            .state
            .store
            .chain_store_signed(&new, &self.owner, &sign, self.now())
            .await
        {
            Ok(record) => {
                tracing::info!(%event, contract = record.contract.as_deref().unwrap_or(""), "deploying the event's ticket contract");
                if broadcast {
                    self.broadcast(&record).await?;
                }
                Ok(())
            }
            // Another worker is deploying it.
            Err(StoreError::Duplicate(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn broadcast(&self, t: &ChainTxRecord) -> Result<(), WorkerError> {
        let raw = alloy::hex::decode(&t.raw)
            .map_err(|e| StoreError::Other(format!("stored raw tx: {e}")))?;
        match self.client.broadcast(&raw).await? {
            Broadcast::Accepted => self.state.store.chain_tx_sent(&t.id, self.now()).await?,
            Broadcast::NonceUsed => {
                self.state
                    .store
                    .chain_tx_error(&t.id, "nonce too low: checking receipts", self.now())
                    .await?
            }
            Broadcast::Refused(m) => {
                tracing::warn!(tx = %t.hash, error = %m, "the node refused a transaction");
                self.state
                    .store
                    .chain_tx_error(&t.id, &m, self.now())
                    .await?
            }
        }
        Ok(())
    }

    /// Drives every stored open transaction towards an end (see the module
    /// docs); returns how many were settled.
    pub async fn track(&self) -> Result<usize, WorkerError> {
        let c = &self.state.config.chain;
        let open = self.state.store.chain_open_txs(&self.minter).await?;
        if open.is_empty() {
            return Ok(0);
        }
        let head = self.client.block_number().await?;
        let mined_nonce = self.client.mined_nonce().await?;
        let mut by_nonce: BTreeMap<i64, Vec<ChainTxRecord>> = BTreeMap::new();
        for t in open {
            by_nonce.entry(t.nonce).or_default().push(t);
        }
        let mut settled = 0;
        for (nonce, group) in by_nonce {
            let mut mined = None;
            for t in &group {
                let hash = t
                    .hash
                    .parse()
                    .map_err(|_| StoreError::Other("stored tx hash".into()))?;
                if let Some(m) = self.client.receipt(hash).await? {
                    mined = Some((t, m));
                    break;
                }
            }
            let now = self.now();
            if let Some((t, m)) = mined {
                if head + 1 >= m.block + c.confirmations {
                    let retry_at = now + self.backoff(1);
                    self.state
                        .store
                        .chain_tx_mined(
                            &t.id,
                            MinedTx {
                                block: m.block as i64,
                                gas_used: m.gas_used as i64,
                                success: m.success,
                            },
                            c.max_reverts,
                            retry_at,
                            now,
                        )
                        .await?;
                    if m.success {
                        metrics::counter!("chain_transactions_confirmed_total", "kind" => t.kind.clone()).increment(1);
                    } else {
                        metrics::counter!("chain_transactions_reverted_total", "kind" => t.kind.clone()).increment(1);
                    }
                    settled += 1;
                }
                continue;
            }
            let Some(newest) = group
                .iter()
                .rev()
                .find(|t| t.status == "signed" || t.status == "sent")
            else {
                continue;
            };
            if (nonce as u64) < mined_nonce {
                // The nonce is used and none of ours has a receipt. A node can
                // count a mined transaction before it serves its receipt, so
                // the wait starts when this is first seen (noted on the
                // transaction), not when the transaction was last touched:
                // giving up on a mined transaction marked it dropped, and its
                // jobs were done by reconciliation with no confirmed record.
                if newest.error.as_deref() != Some(NONCE_USED) {
                    self.state
                        .store
                        .chain_tx_error(&newest.id, NONCE_USED, now)
                        .await?;
                } else if now - newest.updated_at
                    > NONCE_USED_GRACE_MS.max(3 * c.poll_ms.max(10) as i64)
                {
                    tracing::warn!(
                        nonce,
                        "a stored transaction's nonce was used by another transaction"
                    );
                    self.state.store.chain_tx_dropped(&newest.id, now).await?;
                    settled += 1;
                }
                continue;
            }
            let hash = newest
                .hash
                .parse()
                .map_err(|_| StoreError::Other("stored tx hash".into()))?;
            if newest.status == "signed" || !self.client.knows(hash).await? {
                self.broadcast(newest).await?;
            } else if now - newest.created_at > (c.stuck_after_secs * 1000) as i64
                || newest.gas_price.parse::<u128>().unwrap_or(0) < self.client.gas_price().await?
            {
                // Stuck, or priced below what the node now asks (a rising
                // base fee): it cannot be mined as it is.
                self.replace(newest).await?;
            }
        }
        Ok(settled)
    }

    /// Re-signs `old` at its nonce with a higher gas price and sends it.
    pub async fn replace(&self, old: &ChainTxRecord) -> Result<(), WorkerError> {
        let c = &self.state.config.chain;
        let raw = alloy::hex::decode(&old.raw)
            .map_err(|e| StoreError::Other(format!("stored raw tx: {e}")))?;
        let envelope = TxEnvelope::decode_2718(&mut raw.as_slice())
            .map_err(|e| StoreError::Other(format!("stored raw tx: {e}")))?;
        let legacy = envelope
            .as_legacy()
            .ok_or(StoreError::Other("stored tx is not legacy".into()))?
            .tx()
            .clone();
        let bumped = legacy.gas_price * u128::from(100 + c.fee_bump_percent) / 100 + 1;
        let gas_price = bumped.max(self.client.gas_price().await?);
        let to = legacy.to.to().copied();
        let client = self.client.clone();
        let creates = old.contract.clone().filter(|_| old.kind == "deploy");
        let sign = move |nonce: u64| {
            client
                .sign(nonce, to, legacy.input.clone(), legacy.gas_limit, gas_price)
                .map(|s| SignedForStore {
                    creates: creates.clone(),
                    ..stored(&s, None)
                })
                .map_err(|e| e.to_string())
        };
        if let Some(new) = self
            .state
            .store
            .chain_replace(old, gas_price, &sign, self.now())
            .await?
        {
            tracing::info!(old = %old.hash, new = %new.hash, nonce = old.nonce, "replaced a stuck transaction");
            self.broadcast(&new).await?;
        }
        Ok(())
    }
}

fn stored(s: &SignedTx, creates: Option<Address>) -> SignedForStore {
    SignedForStore {
        hash: format!("{:#x}", s.hash),
        raw: alloy::hex::encode_prefixed(&s.raw),
        creates: creates.map(hex_addr),
    }
}
