//! Minting endpoints (the seed's Payments Orders `POST /orders/{id}/mint-nft`
//! and `GET /orders/{id}/mint-transactions`), an event's chain terms
//! (`GET|PUT /events/{id}/chain`) and the public token metadata that every
//! `tokenURI` points at (`GET /nft/{contract}/{token_id}`).

use super::contract;
use crate::auth::extract::{AuthUser, ManagedEvent};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::model::{EventId, OrderId, TicketId, from_millis};
use crate::state::AppState;
use crate::store::chain::{ChainJobRecord, ChainSettings, ChainTxRecord, TicketJobState};
use alloy::primitives::{Address, U256};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mint_nft))
        .routes(routes!(mint_transactions))
        .routes(routes!(get_chain, put_chain))
        .routes(routes!(unlock_event))
        .routes(routes!(metadata))
}

/// One stored transaction of a mint job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TxView {
    /// Hash, 0x.
    pub hash: String,
    /// Nonce.
    pub nonce: i64,
    /// `signed`, `sent`, `confirmed`, `reverted`, `replaced`, `dropped`.
    pub status: String,
    /// Block, once mined.
    pub block_number: Option<i64>,
    /// Gas used, once mined.
    pub gas_used: Option<i64>,
    /// Gas price, wei.
    pub gas_price: String,
    /// What it does.
    pub kind: String,
    /// The contract.
    pub contract: Option<String>,
    /// The last error the node gave.
    pub error: Option<String>,
}

/// A ticket's chain job and every attempt at it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MintJobView {
    /// The ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Token id (decimal).
    pub token_id: String,
    /// `mint`, `transfer`, `burn`, `withdraw`.
    pub kind: String,
    /// `pending`, `sent`, `done`, `failed` (failed: needs `POST .../mint-nft`).
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// Why the last try did not finish it.
    pub last_error: Option<String>,
    /// Transactions, oldest first.
    pub transactions: Vec<TxView>,
    /// Enqueued (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// An order's minting state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MintState {
    /// The order.
    pub order_id: OrderId,
    /// `minted` (every job done), `pending`, `failed` (some job failed for
    /// good; retry with `POST /orders/{id}/mint-nft`), `none` (no jobs).
    pub status: String,
    /// Jobs.
    pub jobs: Vec<MintJobView>,
}

/// A ticket's token as its order shows it: where the chain jobs of the
/// ticket stand (mint, and any transfer, burn, withdrawal or unlock after).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketMintView {
    /// The ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Token id (decimal).
    pub token_id: String,
    /// `failed` (some job failed for good: retry with `POST
    /// /orders/{id}/mint-nft`), `sent` (a transaction is on its way),
    /// `pending` (waiting: no chain configured, the node unreachable, or a
    /// retry after an error), `done` (the chain says what the cloud says).
    pub status: String,
    /// The job that decides `status` (`mint`, `transfer`, `burn`,
    /// `withdraw`, `unlock`): the failed one, else the open one, else the last.
    pub kind: String,
    /// Hash of that job's latest transaction, once one was signed.
    pub tx_hash: Option<String>,
    /// Why that job is not done yet (a revert, the node's error, ...).
    pub error: Option<String>,
}

/// Per ticket of each order, where its token stands (tickets without chain
/// jobs are left out: an unpaid order has none). One query for all orders.
pub(crate) async fn attach_mint<'a>(
    state: &AppState,
    orders: impl IntoIterator<Item = &'a mut crate::orders::dto::OrderView>,
) -> ApiResult<()> {
    let mut orders: Vec<&mut crate::orders::dto::OrderView> = orders.into_iter().collect();
    let ids: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    // By order, then ticket (in ticket id order, like `ticket_ids`).
    let mut by_order: std::collections::HashMap<OrderId, Vec<(TicketId, Vec<TicketJobState>)>> =
        Default::default();
    for j in state.store.orders_chain_state(&ids).await? {
        let tickets = by_order.entry(j.order_id).or_default();
        match tickets.last_mut() {
            Some((t, jobs)) if *t == j.ticket_id => jobs.push(j),
            _ => tickets.push((j.ticket_id, vec![j])),
        }
    }
    for o in &mut orders {
        o.mint = by_order
            .remove(&o.id)
            .unwrap_or_default()
            .iter()
            .map(|(t, jobs)| ticket_mint(*t, jobs))
            .collect();
    }
    Ok(())
}

fn ticket_mint(ticket: TicketId, jobs: &[TicketJobState]) -> TicketMintView {
    let decisive = jobs
        .iter()
        .find(|j| j.status == "failed")
        .or_else(|| jobs.iter().find(|j| j.status == "sent"))
        .or_else(|| jobs.iter().find(|j| j.status == "pending"))
        .or(jobs.last());
    TicketMintView {
        ticket_id: ticket,
        token_id: contract::token_id(ticket).to_string(),
        status: decisive.map_or("done", |j| j.status.as_str()).into(),
        kind: decisive.map_or("mint", |j| j.kind.as_str()).into(),
        tx_hash: decisive.and_then(|j| j.tx_hash.clone()),
        error: decisive
            .filter(|j| j.status != "done")
            .and_then(|j| j.last_error.clone()),
    }
}

fn tx_view(t: &ChainTxRecord) -> TxView {
    TxView {
        hash: t.hash.clone(),
        nonce: t.nonce,
        status: t.status.clone(),
        block_number: t.block_number,
        gas_used: t.gas_used,
        gas_price: t.gas_price.clone(),
        kind: t.kind.clone(),
        contract: t.contract.clone(),
        error: t.error.clone(),
    }
}

fn mint_state(order: OrderId, jobs: Vec<(ChainJobRecord, Vec<ChainTxRecord>)>) -> MintState {
    let status = if jobs.is_empty() {
        "none"
    } else if jobs.iter().any(|(j, _)| j.status == "failed") {
        "failed"
    } else if jobs.iter().all(|(j, _)| j.status == "done") {
        "minted"
    } else {
        "pending"
    };
    MintState {
        order_id: order,
        status: status.into(),
        jobs: jobs
            .into_iter()
            .map(|(j, txs)| MintJobView {
                ticket_id: j.ticket_id,
                token_id: contract::token_id(j.ticket_id).to_string(),
                kind: j.kind,
                status: j.status,
                attempts: j.attempts,
                last_error: j.last_error,
                transactions: txs.iter().map(tx_view).collect(),
                created_at: from_millis(j.created_at),
            })
            .collect(),
    }
}

/// Mints (or retries) now: failed jobs of the order's tickets become due,
/// and a live ticket without a mint job gets one (the organizer of the
/// event or an admin).
#[utoipa::path(post, path = "/orders/{id}/mint-nft", tag = "chain", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 202, body = MintState), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the order is not paid")))]
async fn mint_nft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
) -> ApiResult<(StatusCode, Json<MintState>)> {
    let (order, _, manages) = crate::orders::service::visible_order(&state, &user, id).await?;
    if !manages {
        return Err(ApiError::Forbidden(
            "only the event's organizer or an admin may mint".into(),
        ));
    }
    if !matches!(
        order.status,
        crate::commerce::OrderStatus::Paid | crate::commerce::OrderStatus::Fulfilled
    ) {
        return Err(ApiError::Conflict(format!(
            "a {} order has no tickets to mint",
            order.status.as_str()
        )));
    }
    state
        .store
        .retry_order_chain_jobs(id, state.now_ms())
        .await?;
    let jobs = state.store.order_chain_jobs(id).await?;
    Ok((StatusCode::ACCEPTED, Json(mint_state(id, jobs))))
}

/// Every chain job of the order's tickets with every transaction tried:
/// hash, nonce, status, block (the buyer, the organizer, admins).
#[utoipa::path(get, path = "/orders/{id}/mint-transactions", tag = "chain", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = MintState), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mint_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
) -> ApiResult<Json<MintState>> {
    crate::orders::service::visible_order(&state, &user, id).await?;
    let jobs = state.store.order_chain_jobs(id).await?;
    Ok(Json(mint_state(id, jobs)))
}

/// An event's chain terms and contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventChainView {
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// EIP-2981 royalty of resales, basis points (fixed at deploy).
    pub royalty_bps: i64,
    /// Holders may withdraw their token to their own address.
    pub withdrawals_allowed: bool,
    /// The event's contract, once deployed.
    pub contract: Option<String>,
    /// `deploying` or `ready`.
    pub contract_status: Option<String>,
    /// The organizer's early unlock (`POST /events/{id}/chain/unlock`):
    /// `none` (not asked; tokens unlock when the event ends), `pending`
    /// (on its way to the chain), `done` (holders may transfer now),
    /// `failed` (retry the request).
    pub unlock_status: String,
}

/// `PUT /events/{id}/chain`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChainUpdate {
    /// 0 to 10000 basis points; applies to a contract not yet deployed.
    pub royalty_bps: i64,
    /// Allow withdrawals to holders' own addresses.
    pub withdrawals_allowed: bool,
}

async fn chain_view(state: &AppState, event: EventId) -> ApiResult<EventChainView> {
    let s = state.store.chain_settings(event).await?;
    let c = state.store.chain_contract(event).await?;
    Ok(EventChainView {
        event_id: event,
        royalty_bps: s.map_or(i64::from(state.config.chain.default_royalty_bps), |s| {
            s.royalty_bps
        }),
        withdrawals_allowed: s.is_some_and(|s| s.withdrawals_allowed),
        contract: c.as_ref().map(|c| c.address.clone()),
        contract_status: c.map(|c| c.status),
        unlock_status: unlock_status(&state.store.unlock_job_counts(event).await?).into(),
    })
}

fn unlock_status(counts: &[(String, i64)]) -> &'static str {
    let has = |s: &str| counts.iter().any(|(k, n)| k == s && *n > 0);
    if counts.iter().all(|(_, n)| *n == 0) {
        "none"
    } else if has("failed") {
        "failed"
    } else if has("pending") || has("sent") {
        "pending"
    } else {
        "done"
    }
}

/// Opens holder transfers before the event ends (its organizer or an
/// admin): every live ticket of the event gets an `unlock` chain job in
/// one transaction, and the worker sends the contract's `unlock`, after
/// which `locked(tokenId)` is false for every token (EIP-5192 `Unlocked`
/// for those minted). Asking again is harmless: it adds jobs only for
/// tickets sold since, and a failed unlock is retried. Follow it in
/// `unlock_status` of `GET /events/{id}/chain`.
#[utoipa::path(post, path = "/events/{id}/chain/unlock", tag = "chain", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 202, body = EventChainView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the event is over, cancelled, or has no tickets yet")))]
async fn unlock_event(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<(StatusCode, Json<EventChainView>)> {
    use crate::model::EventStatus;
    match m.event.status {
        EventStatus::Ended => {
            return Err(ApiError::Conflict(
                "the event has ended: its tokens are already unlocked".into(),
            ));
        }
        EventStatus::Cancelled => {
            return Err(ApiError::Conflict(
                "the event is cancelled: its tokens are invalidated, not unlocked".into(),
            ));
        }
        EventStatus::Draft | EventStatus::Active | EventStatus::Live => {}
    }
    let now = state.now_ms();
    let (_, total) = state.store.request_unlock(m.event.id, now).await?;
    if total == 0 {
        return Err(ApiError::Conflict(
            "the event has no tickets yet, so nothing is locked; ask again once tickets are sold"
                .into(),
        ));
    }
    // A failed unlock becomes due again, like a mint retry.
    state.store.retry_unlock(m.event.id, now).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(chain_view(&state, m.event.id).await?),
    ))
}

/// The event's chain terms and contract (its organizer or an admin).
#[utoipa::path(get, path = "/events/{id}/chain", tag = "chain", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventChainView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_chain(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<Json<EventChainView>> {
    Ok(Json(chain_view(&state, m.event.id).await?))
}

/// Sets the event's royalty and withdrawal rule (its organizer or an admin).
/// The royalty is written into the contract when it is deployed, so it
/// cannot change after the first mint.
#[utoipa::path(put, path = "/events/{id}/chain", tag = "chain", security(("bearer" = [])), request_body = EventChainUpdate,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = EventChainView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "royalty change after deployment"), (status = 422, body = ErrorBody)))]
async fn put_chain(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<EventChainUpdate>,
) -> ApiResult<Json<EventChainView>> {
    if !(0..=10_000).contains(&req.royalty_bps) {
        return Err(ApiError::Validation(
            "royalty_bps must be 0 to 10000".into(),
        ));
    }
    let current = chain_view(&state, m.event.id).await?;
    if current.contract.is_some() && current.royalty_bps != req.royalty_bps {
        return Err(ApiError::Conflict(
            "the event's contract is deployed with its royalty; it cannot change now".into(),
        ));
    }
    let s = ChainSettings {
        royalty_bps: req.royalty_bps,
        withdrawals_allowed: req.withdrawals_allowed,
    };
    state
        .store
        .set_chain_settings(m.event.id, &s, state.now_ms())
        .await?;
    Ok(Json(chain_view(&state, m.event.id).await?))
}

/// ERC-721 metadata JSON (what wallets and markets read).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenMetadata {
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Image URL.
    pub image: String,
    /// Event, tier, zone, start.
    pub attributes: Vec<Attribute>,
}

/// One metadata attribute.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attribute {
    /// Name.
    pub trait_type: String,
    /// Value.
    pub value: String,
}

/// Public metadata of a ticket token: event, tier, zone, start (no holder).
#[utoipa::path(get, path = "/nft/{contract}/{token_id}", tag = "chain",
    params(("contract" = String, Path, description = "contract address"), ("token_id" = String, Path, description = "token id, decimal")),
    responses((status = 200, body = TokenMetadata), (status = 404, body = ErrorBody)))]
async fn metadata(
    State(state): State<AppState>,
    Path((contract_addr, token)): Path<(String, String)>,
) -> ApiResult<Json<TokenMetadata>> {
    let not_found = || ApiError::NotFound("no such ticket token".into());
    let addr: Address = contract_addr.parse().map_err(|_| not_found())?;
    let token: U256 = token.parse().map_err(|_| not_found())?;
    let c = state
        .store
        .chain_contract_at(&format!("{addr:#x}"))
        .await?
        .ok_or_else(not_found)?;
    let ticket_id = contract::ticket_of(token).ok_or_else(not_found)?;
    let ticket = match state.store.ticket(ticket_id).await {
        Ok(t) if t.event_id == c.event_id => t,
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let event = state.store.event(c.event_id).await?;
    let tier = event.tiers.iter().find(|t| t.id == ticket.tier_id);
    let start = from_millis(event.starts_at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let attr = |k: &str, v: String| Attribute {
        trait_type: k.into(),
        value: v,
    };
    Ok(Json(TokenMetadata {
        name: format!(
            "{} · {}",
            event.name,
            tier.map_or("Ticket", |t| t.name.as_str())
        ),
        description: format!("A ticket for {} at {}.", event.name, event.venue),
        image: image_uri(&event.name, tier.map_or("Ticket", |t| t.name.as_str())),
        attributes: vec![
            attr("Event", event.name.clone()),
            attr("Venue", event.venue.clone()),
            attr("Starts", start),
            attr(
                "Tier",
                tier.map_or(ticket.tier.to_string(), |t| t.name.clone()),
            ),
            attr("Zone", tier.map_or(String::new(), |t| t.zone.clone())),
            attr("Status", ticket.status.as_str().into()),
        ],
    }))
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A self-contained SVG ticket image (a data URI: nothing to host).
fn image_uri(event: &str, tier: &str) -> String {
    use base64::Engine as _;
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='600' height='300'><rect width='600' height='300' rx='24' fill='#1d3557'/>\
         <text x='40' y='120' font-size='36' fill='#f1faee' font-family='sans-serif'>{}</text>\
         <text x='40' y='190' font-size='28' fill='#a8dadc' font-family='sans-serif'>{}</text></svg>",
        xml_escape(event),
        xml_escape(tier)
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}
