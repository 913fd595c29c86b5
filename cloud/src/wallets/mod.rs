//! Wallets (the seed's Wallet Assets service): `POST /wallets`,
//! `GET /wallets/challenge`, `GET /wallets/{id}`, `GET /wallets/user/{user_id}`,
//! `GET|POST /wallets/{id}/nfts`, `GET|POST /wallets/{id}/transactions`.
//!
//! Every buyer gets a custodial wallet when their first ticket is minted
//! (or when they ask); its private key is sealed by the [`KeyVault`]
//! (bound to the wallet's row) and never leaves the cloud. A user may also
//! register addresses they control, proved by an EIP-191 signature of
//! [`link_message`], as withdrawal targets.
//!
//! What a wallet holds and its history come from the chain index
//! (`crate::chain::indexer`); `POST .../nfts` only records a token after
//! `ownerOf` on the chain says this wallet holds it, and `POST
//! .../transactions` only requests a `send` (a withdrawal the minting worker
//! carries out), so neither can make the index disagree with the chain.
//! Only the owner and admins see a wallet; to anyone else it does not exist.
//!
//! [`KeyVault`]: crate::crypto::KeyVault

pub mod dto;

use crate::auth::extract::AuthUser;
use crate::chain::client::ChainClient;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::model::{TicketStatus, UserId, WalletId, from_millis};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::wallets::{HoldingRecord, WalletRecord, ZERO_ADDRESS};
use alloy::primitives::{Address, B256, Signature, U256};
use alloy::signers::local::PrivateKeySigner;
use axum::extract::State;
use axum::http::StatusCode;
use dto::*;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes under `/wallets`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_wallet))
        .routes(routes!(challenge))
        .routes(routes!(get_wallet))
        .routes(routes!(user_wallets))
        .routes(routes!(list_nfts, record_nft))
        .routes(routes!(list_transactions, create_transaction))
}

/// The text a user signs to link `address` to their account.
pub fn link_message(user: UserId, address: &str) -> String {
    format!(
        "Gatehouse: link wallet {} to account {user}",
        address.to_ascii_lowercase()
    )
}

fn vault_aad(id: WalletId) -> String {
    format!("wallet-key/{id}")
}

/// The user's custodial wallet, created (key generated and sealed) if missing.
pub async fn ensure_custodial(state: &AppState, user: UserId) -> ApiResult<WalletRecord> {
    if let Some(w) = state.store.custodial_wallet(user).await? {
        return Ok(w);
    }
    let id = WalletId::new();
    let (seed, signer) = loop {
        let seed =
            crate::crypto::random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Ok(s) = PrivateKeySigner::from_bytes(&B256::from(seed)) {
            break (seed, s);
        }
    };
    let sealed = state
        .vault
        .seal(&seed, &vault_aad(id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let w = WalletRecord {
        id,
        user_id: user,
        address: format!("{:#x}", signer.address()),
        kind: "custodial".into(),
        sealed_key: Some(sealed),
        created_at: state.now_ms(),
    };
    Ok(state.store.insert_wallet(&w).await?)
}

/// Opens a custodial wallet's signer (for the platform's own use only).
pub fn custodial_signer(state: &AppState, w: &WalletRecord) -> ApiResult<PrivateKeySigner> {
    let sealed = w
        .sealed_key
        .as_deref()
        .ok_or_else(|| ApiError::Conflict("an external wallet has no key here".into()))?;
    let seed = state
        .vault
        .open(sealed, &vault_aad(w.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    PrivateKeySigner::from_bytes(&B256::from(seed)).map_err(|e| ApiError::Internal(e.to_string()))
}

fn parse_address(s: &str) -> ApiResult<Address> {
    s.trim()
        .parse::<Address>()
        .map_err(|_| ApiError::Validation("address must be 0x and 40 hex digits".into()))
}

fn chain_client(state: &AppState) -> Option<ChainClient> {
    let c = &state.config.chain;
    c.enabled()
        .then(|| ChainClient::new(&c.rpc_url, c.chain_id, &c.minter_key).ok())
        .flatten()
}

/// Loads a wallet the caller may see (owner or admin); 404 otherwise.
async fn visible(state: &AppState, user: &AuthUser, id: WalletId) -> ApiResult<WalletRecord> {
    match state.store.wallet(id).await {
        Ok(w) if w.user_id == user.id || user.is_admin() => Ok(w),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(ApiError::NotFound("wallet not found".into())),
        Err(e) => Err(e.into()),
    }
}

async fn view(state: &AppState, w: &WalletRecord) -> ApiResult<WalletView> {
    let tickets = state.store.holdings_of(&w.address).await?.len() as i64;
    let native_wei = match (chain_client(state), w.address.parse::<Address>()) {
        (Some(c), Ok(a)) => c.balance(a).await.ok().map(|b| b.to_string()),
        _ => None,
    };
    Ok(WalletView {
        id: w.id,
        user_id: w.user_id,
        address: w.address.clone(),
        kind: w.kind.clone(),
        balances: Balances {
            tickets,
            native_wei,
        },
        created_at: from_millis(w.created_at),
    })
}

/// Creates the caller's custodial wallet (201; 200 with the existing one),
/// or registers an external address proved by an EIP-191 signature of the
/// challenge message.
#[utoipa::path(post, path = "/wallets", tag = "wallets", security(("bearer" = [])), request_body = CreateWallet,
    responses((status = 201, body = WalletView), (status = 200, body = WalletView, description = "the existing custodial wallet"),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "address already registered"),
              (status = 422, body = ErrorBody, description = "bad address or signature")))]
async fn create_wallet(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateWallet>,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    match req {
        CreateWallet::Custodial { user_id } => {
            let owner = user_id.unwrap_or(user.id);
            if owner != user.id && !user.is_admin() {
                return Err(ApiError::Forbidden(
                    "only admins create wallets for other users".into(),
                ));
            }
            let existed = state.store.custodial_wallet(owner).await?.is_some();
            let w = ensure_custodial(&state, owner).await?;
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(view(&state, &w).await?)))
        }
        CreateWallet::External { address, signature } => {
            let addr = parse_address(&address)?;
            let sig: Signature = signature
                .trim()
                .parse()
                .map_err(|_| ApiError::Validation("signature must be 65 bytes, 0x hex".into()))?;
            let message = link_message(user.id, &format!("{addr:#x}"));
            let signer = sig
                .recover_address_from_msg(message.as_bytes())
                .map_err(|_| ApiError::Validation("the signature does not recover".into()))?;
            if signer != addr {
                return Err(ApiError::coded(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_proof",
                    "the signature is not by this address over the challenge message; sign exactly the text of GET /wallets/challenge",
                ));
            }
            let w = WalletRecord {
                id: WalletId::new(),
                user_id: user.id,
                address: format!("{addr:#x}"),
                kind: "external".into(),
                sealed_key: None,
                created_at: state.now_ms(),
            };
            let w = state.store.insert_wallet(&w).await?;
            Ok((StatusCode::CREATED, Json(view(&state, &w).await?)))
        }
    }
}

/// The message to sign (EIP-191) to link `address` to the caller's account.
#[utoipa::path(get, path = "/wallets/challenge", tag = "wallets", security(("bearer" = [])), params(ChallengeQuery),
    responses((status = 200, body = Challenge), (status = 422, body = ErrorBody)))]
async fn challenge(user: AuthUser, Query(q): Query<ChallengeQuery>) -> ApiResult<Json<Challenge>> {
    let addr = parse_address(&q.address)?;
    Ok(Json(Challenge {
        message: link_message(user.id, &format!("{addr:#x}")),
    }))
}

/// A wallet with its balances (owner or admin).
#[utoipa::path(get, path = "/wallets/{id}", tag = "wallets", security(("bearer" = [])),
    params(("id" = WalletId, Path, description = "wallet id")),
    responses((status = 200, body = WalletView), (status = 404, body = ErrorBody)))]
async fn get_wallet(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<WalletId>,
) -> ApiResult<Json<WalletView>> {
    let w = visible(&state, &user, id).await?;
    Ok(Json(view(&state, &w).await?))
}

/// A user's wallets, custodial first (the user or an admin).
#[utoipa::path(get, path = "/wallets/user/{user_id}", tag = "wallets", security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "user id")),
    responses((status = 200, body = [WalletView]), (status = 403, body = ErrorBody)))]
async fn user_wallets(
    State(state): State<AppState>,
    user: AuthUser,
    Path(owner): Path<UserId>,
) -> ApiResult<Json<Vec<WalletView>>> {
    if owner != user.id && !user.is_admin() {
        return Err(ApiError::Forbidden(
            "only the user and admins see their wallets".into(),
        ));
    }
    let mut out = Vec::new();
    for w in state.store.wallets_of(owner).await? {
        out.push(view(&state, &w).await?);
    }
    Ok(Json(out))
}

fn nft_view(state: &AppState, h: &HoldingRecord) -> NftView {
    let ticket_id = h
        .token_id
        .parse::<U256>()
        .ok()
        .and_then(crate::chain::contract::ticket_of);
    NftView {
        contract: h.contract.clone(),
        token_id: h.token_id.clone(),
        ticket_id,
        token_uri: format!(
            "{}{}/{}",
            state.config.chain.metadata_base_url, h.contract, h.token_id
        ),
        block_number: h.block_number,
    }
}

/// The ticket tokens the chain says this wallet holds.
#[utoipa::path(get, path = "/wallets/{id}/nfts", tag = "wallets", security(("bearer" = [])),
    params(("id" = WalletId, Path, description = "wallet id")),
    responses((status = 200, body = [NftView]), (status = 404, body = ErrorBody)))]
async fn list_nfts(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<WalletId>,
) -> ApiResult<Json<Vec<NftView>>> {
    let w = visible(&state, &user, id).await?;
    let list = state.store.holdings_of(&w.address).await?;
    Ok(Json(list.iter().map(|h| nft_view(&state, h)).collect()))
}

/// Records a token of a Gatehouse contract in this wallet ahead of the
/// indexer, after `ownerOf` on the chain confirms the wallet holds it.
#[utoipa::path(post, path = "/wallets/{id}/nfts", tag = "wallets", security(("bearer" = [])), request_body = RecordNft,
    params(("id" = WalletId, Path, description = "wallet id")),
    responses((status = 201, body = NftView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the chain says another address holds it"),
              (status = 503, body = ErrorBody, description = "no chain configured or reachable")))]
async fn record_nft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<WalletId>,
    Json(req): Json<RecordNft>,
) -> ApiResult<(StatusCode, Json<NftView>)> {
    let w = visible(&state, &user, id).await?;
    let contract = parse_address(&req.contract)?;
    let token: U256 = req
        .token_id
        .trim()
        .parse()
        .map_err(|_| ApiError::Validation("token_id must be a decimal integer".into()))?;
    let contract_hex = format!("{contract:#x}");
    if state
        .store
        .chain_contract_at(&contract_hex)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("not a Gatehouse ticket contract".into()));
    }
    let client = chain_client(&state)
        .ok_or_else(|| ApiError::Unavailable("no chain is configured".into()))?;
    let owner = client
        .owner_of(contract, token)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the chain cannot be read now: {e}")))?;
    let block = client
        .block_number()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the chain cannot be read now: {e}")))?;
    let owner_hex = owner.map_or(ZERO_ADDRESS.to_string(), |o| format!("{o:#x}"));
    if owner_hex != w.address {
        return Err(ApiError::Conflict(format!(
            "the chain says {owner_hex} holds this token, not this wallet"
        )));
    }
    let h = HoldingRecord {
        contract: contract_hex,
        token_id: token.to_string(),
        owner: owner_hex,
        block_number: block as i64,
    };
    state.store.put_holding(&h).await?;
    Ok((StatusCode::CREATED, Json(nft_view(&state, &h))))
}

/// The wallet's history from the chain: mints, burns, sends and receipts.
#[utoipa::path(get, path = "/wallets/{id}/transactions", tag = "wallets", security(("bearer" = [])),
    params(("id" = WalletId, Path, description = "wallet id")),
    responses((status = 200, body = [WalletTxView]), (status = 404, body = ErrorBody)))]
async fn list_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<WalletId>,
) -> ApiResult<Json<Vec<WalletTxView>>> {
    let w = visible(&state, &user, id).await?;
    let logs = state.store.transfers_of(&w.address, 500).await?;
    Ok(Json(
        logs.into_iter()
            .map(|l| {
                let kind = if l.from == ZERO_ADDRESS {
                    "mint"
                } else if l.to == ZERO_ADDRESS {
                    "burn"
                } else if l.from == w.address {
                    "send"
                } else {
                    "receive"
                };
                WalletTxView {
                    kind: kind.into(),
                    contract: l.contract,
                    token_id: l.token_id,
                    from: l.from,
                    to: l.to,
                    tx_hash: l.tx_hash,
                    block_number: l.block_number,
                }
            })
            .collect(),
    ))
}

/// Requests a `send`: withdraws a ticket's token from this custodial wallet
/// to one of the caller's external wallets, if the event allows it. The
/// credential stays valid at the gates.
#[utoipa::path(post, path = "/wallets/{id}/transactions", tag = "wallets", security(("bearer" = [])), request_body = NewWalletTx,
    params(("id" = WalletId, Path, description = "wallet id")),
    responses((status = 202, body = SendAccepted), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not allowed for this event, already withdrawn, not held"),
              (status = 422, body = ErrorBody, description = "a type other than send")))]
async fn create_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<WalletId>,
    Json(req): Json<NewWalletTx>,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let w = visible(&state, &user, id).await?;
    if req.kind != "send" {
        return Err(ApiError::Validation(
            "only `send` can be requested; mint, burn and receive are recorded from the chain"
                .into(),
        ));
    }
    if w.kind != "custodial" {
        return Err(ApiError::Conflict(
            "tokens in an external wallet are moved by their holder, not by Gatehouse".into(),
        ));
    }
    let target = visible(&state, &user, req.to_wallet_id).await?;
    if target.kind != "external" || target.user_id != w.user_id {
        return Err(ApiError::Conflict(
            "the destination must be one of the holder's external wallets".into(),
        ));
    }
    let ticket = match state.store.ticket(req.ticket_id).await {
        Ok(t) if t.owner_id == Some(w.user_id) => t,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Err(ApiError::NotFound("ticket not found".into()));
        }
        Err(e) => return Err(e.into()),
    };
    if !matches!(
        ticket.status,
        TicketStatus::Issued | TicketStatus::Transferred
    ) {
        return Err(ApiError::Conflict(format!(
            "a {} ticket cannot be withdrawn",
            ticket.status.as_str()
        )));
    }
    let allowed = state
        .store
        .chain_settings(ticket.event_id)
        .await?
        .is_some_and(|s| s.withdrawals_allowed);
    if !allowed {
        return Err(ApiError::Conflict(
            "this event does not allow withdrawing tickets to your own wallet".into(),
        ));
    }
    state
        .store
        .request_withdrawal(ticket.id, target.id, &target.address, state.now_ms())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SendAccepted {
            ticket_id: ticket.id,
            to: target.address,
            status: "pending".into(),
        }),
    ))
}
