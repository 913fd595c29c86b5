//! Transfers and the resale market: `POST /tickets/{id}/transfer`, the
//! chain of owners, resale listings capped by the organizer's sales policy,
//! buying a listing (an order like any other: Stripe, manual or free), and
//! the sellers' ledger.
//!
//! A ticket that changes hands keeps its id and gets a new credential
//! generation; the manifest carries the new generation, so gates refuse the
//! old QR code as superseded.

pub mod dto;

use crate::auth::extract::{AuthUser, ManagedEvent};
use crate::commerce::ListingStatus;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{ListingId, OrderId, TicketId, UserId};
use crate::orders::dto::OrderView;
use crate::orders::service;
use crate::state::AppState;
use crate::store::{
    ListingFilter, ListingRecord, NewResaleOrder, SalesPolicy, StoreError, TransferChange,
};
use crate::tickets::issue;
use axum::extract::State;
use axum::http::StatusCode;
use dto::{
    Balance, CreateListing, LedgerLineView, LedgerView, ListingQuery, ListingView, SalesPolicyBody,
    TransferRequest, TransferView,
};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Transfer, market and sales-policy routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfer))
        .routes(routes!(ticket_transfers))
        .routes(routes!(my_transfers))
        .routes(routes!(get_policy, set_policy))
        .routes(routes!(create_listing, list_listings))
        .routes(routes!(get_listing, cancel_listing))
        .routes(routes!(buy_listing))
        .routes(routes!(ledger))
}

/// Gives the caller's ticket to another account (by id or email). The old
/// credential is superseded in the next manifest version; the recipient
/// finds the ticket, with its new credential, in `GET /tickets`.
#[utoipa::path(post, path = "/tickets/{id}/transfer", tag = "market", security(("bearer" = [])), request_body = TransferRequest,
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = TransferView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "not transferable now"), (status = 422, body = ErrorBody)))]
async fn transfer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
    Json(req): Json<TransferRequest>,
) -> ApiResult<Json<TransferView>> {
    let recipient = match (req.to_user_id, &req.to_email) {
        (Some(uid), None) => state.store.user(uid).await,
        (None, Some(email)) => {
            state
                .store
                .user_by_email(&crate::auth::normalize_email(email)?)
                .await
        }
        _ => {
            return Err(ApiError::Validation(
                "name the recipient with exactly one of to_user_id and to_email".into(),
            ));
        }
    }
    .map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::Validation("the recipient has no account".into()),
        other => other.into(),
    })?;
    let ticket = state.store.ticket(id).await?;
    if ticket.owner_id != Some(user.id) {
        return Err(ApiError::Forbidden(
            "only the ticket's owner may transfer it".into(),
        ));
    }
    if recipient.id == user.id {
        return Err(ApiError::Validation("the ticket is already yours".into()));
    }
    let event = state.store.event(ticket.event_id).await?;
    let generation = ticket
        .generation
        .checked_add(1)
        .ok_or_else(|| ApiError::Conflict("this ticket has changed hands too often".into()))?;
    let signer = issue::signer(&state, &event).await?;
    let credential = issue::credential(
        &signer,
        &event,
        ticket.id,
        ticket.tier,
        ticket.zone_mask,
        generation,
    )?;
    let change = TransferChange {
        ticket_id: id,
        from: user.id,
        to: recipient.id,
        holder_name: recipient.display_name.clone(),
        from_generation: ticket.generation,
        credential,
    };
    state.store.transfer_ticket(&change, state.now_ms()).await?;
    let chain = state.store.ticket_transfers(id).await?;
    let last = chain
        .last()
        .ok_or_else(|| ApiError::Internal("transfer not recorded".into()))?;
    Ok(Json(TransferView::from(last)))
}

/// A ticket's chain of owners, oldest first (its owner, anyone who held it,
/// its event's organizer, admin).
#[utoipa::path(get, path = "/tickets/{id}/transfers", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "ticket id")),
    responses((status = 200, body = Vec<TransferView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn ticket_transfers(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TicketId>,
) -> ApiResult<Json<Vec<TransferView>>> {
    let ticket = state.store.ticket(id).await?;
    let chain = state.store.ticket_transfers(id).await?;
    let held = chain
        .iter()
        .any(|t| t.from_owner == Some(user.id) || t.to_owner == user.id);
    let manages = user.manages(&state.store.event(ticket.event_id).await?);
    if !(manages || held || ticket.owner_id == Some(user.id)) {
        return Err(ApiError::Forbidden(
            "this ticket belongs to someone else".into(),
        ));
    }
    Ok(Json(chain.iter().map(TransferView::from).collect()))
}

/// Tickets the caller gave or received, newest first (at most 100).
#[utoipa::path(get, path = "/transfers", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = Vec<TransferView>)))]
async fn my_transfers(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<TransferView>>> {
    let list = state.store.user_transfers(user.id, 100).await?;
    Ok(Json(list.iter().map(TransferView::from).collect()))
}

/// The event's sales rules (its organizer, admin).
#[utoipa::path(get, path = "/events/{id}/sales-policy", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = SalesPolicyBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    m: ManagedEvent,
) -> ApiResult<Json<SalesPolicyBody>> {
    Ok(Json(service::policy(&state, &m.event).await?.into()))
}

/// Sets the event's sales rules: purchase limit per customer, whether
/// tickets may be resold, and the resale price cap (percent of face value).
#[utoipa::path(put, path = "/events/{id}/sales-policy", tag = "market", security(("bearer" = [])), request_body = SalesPolicyBody,
    params(("id" = String, Path, format = Uuid, description = "event id")),
    responses((status = 200, body = SalesPolicyBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_policy(
    State(state): State<AppState>,
    m: ManagedEvent,
    Json(req): Json<SalesPolicyBody>,
) -> ApiResult<Json<SalesPolicyBody>> {
    if !(1..=1_000_000).contains(&req.max_tickets_per_customer) {
        return Err(ApiError::Validation(
            "max_tickets_per_customer must be between 1 and 1000000".into(),
        ));
    }
    if !(0..=1_000).contains(&req.resale_max_percent) {
        return Err(ApiError::Validation(
            "resale_max_percent must be between 0 and 1000".into(),
        ));
    }
    let policy = SalesPolicy {
        max_tickets_per_customer: req.max_tickets_per_customer,
        resale_enabled: req.resale_enabled,
        resale_max_percent: req.resale_max_percent,
    };
    state
        .store
        .set_sales_policy(m.event.id, &policy, state.now_ms())
        .await?;
    Ok(Json(policy.into()))
}

/// Lists the caller's ticket for resale at no more than the event's cap.
#[utoipa::path(post, path = "/market/listings", tag = "market", security(("bearer" = [])), request_body = CreateListing,
    responses((status = 201, body = ListingView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "already listed, not resellable now"), (status = 422, body = ErrorBody, description = "over the price cap")))]
async fn create_listing(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateListing>,
) -> ApiResult<(StatusCode, Json<ListingView>)> {
    let ticket = state.store.ticket(req.ticket_id).await?;
    if ticket.owner_id != Some(user.id) {
        return Err(ApiError::Forbidden(
            "only the ticket's owner may sell it".into(),
        ));
    }
    let event = state.store.event(ticket.event_id).await?;
    let policy = service::policy(&state, &event).await?;
    if !policy.resale_enabled {
        return Err(ApiError::Conflict(
            "the organizer does not allow resale for this event".into(),
        ));
    }
    let tier = event
        .tiers
        .iter()
        .find(|t| t.id == ticket.tier_id)
        .ok_or_else(|| ApiError::Internal("ticket of a lost tier".into()))?;
    let cap =
        i64::try_from(i128::from(tier.price_minor) * i128::from(policy.resale_max_percent) / 100)
            .unwrap_or(i64::MAX);
    if !(0..=cap).contains(&req.price_minor) {
        return Err(ApiError::Validation(format!(
            "price_minor must be between 0 and {cap} (the organizer's cap)"
        )));
    }
    let now = state.now_ms();
    let listing = ListingRecord {
        id: ListingId::new(),
        ticket_id: ticket.id,
        event_id: event.id,
        seller_id: user.id,
        price_minor: req.price_minor,
        currency: tier.currency.clone(),
        status: ListingStatus::Active,
        order_id: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_listing(&listing).await?;
    Ok((StatusCode::CREATED, Json(ListingView::from(&listing))))
}

/// Listings, ascending by id (active ones unless a status is given).
#[utoipa::path(get, path = "/market/listings", tag = "market", security(("bearer" = [])), params(ListingQuery),
    responses((status = 200, body = Page<ListingView>), (status = 400, body = ErrorBody)))]
async fn list_listings(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(q): Query<ListingQuery>,
) -> ApiResult<Json<Page<ListingView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let filter = ListingFilter {
        event_id: q.event_id.map(Into::into),
        seller_id: q.seller_id.map(UserId),
        status: Some(q.status.unwrap_or(ListingStatus::Active)),
        after: q.cursor.map(ListingId),
        limit,
    };
    let items = state.store.list_listings(&filter).await?;
    let views = items.iter().map(ListingView::from).collect();
    Ok(Json(Page::new(views, limit, |l: &ListingView| {
        l.id.to_string()
    })))
}

/// One listing.
#[utoipa::path(get, path = "/market/listings/{id}", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "listing id")),
    responses((status = 200, body = ListingView), (status = 404, body = ErrorBody)))]
async fn get_listing(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<ListingId>,
) -> ApiResult<Json<ListingView>> {
    Ok(Json(ListingView::from(&state.store.listing(id).await?)))
}

/// Withdraws an active listing (its seller, the event's organizer, admin).
#[utoipa::path(delete, path = "/market/listings/{id}", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "listing id")),
    responses((status = 200, body = ListingView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "held by a buyer, sold or cancelled")))]
async fn cancel_listing(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ListingId>,
) -> ApiResult<Json<ListingView>> {
    let listing = state.store.listing(id).await?;
    if listing.seller_id != user.id && !user.manages(&state.store.event(listing.event_id).await?) {
        return Err(ApiError::Forbidden(
            "only the seller may withdraw a listing".into(),
        ));
    }
    let listing = state.store.cancel_listing(id, state.now_ms()).await?;
    Ok(Json(ListingView::from(&listing)))
}

/// Buys a listing: a pending resale order holds it (of racing buyers exactly
/// one wins, the others get 409) until paid like any order; a free listing
/// is paid at once. On payment the ticket moves to the buyer as a transfer
/// and the seller is credited.
#[utoipa::path(post, path = "/market/listings/{id}/buy", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "listing id")),
    responses((status = 201, body = OrderView), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "no longer for sale, over the purchase limit"), (status = 422, body = ErrorBody)))]
async fn buy_listing(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ListingId>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let listing = state.store.listing(id).await?;
    if listing.seller_id == user.id {
        return Err(ApiError::Validation(
            "you cannot buy your own listing".into(),
        ));
    }
    let event = state.store.event(listing.event_id).await?;
    let policy = service::policy(&state, &event).await?;
    let now = state.now_ms();
    let hold_ms =
        i64::try_from(state.config.commerce.hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let new = NewResaleOrder {
        id: OrderId::new(),
        listing_id: id,
        buyer_id: user.id,
        expires_at: now.saturating_add(hold_ms),
        purchase_limit: policy.max_tickets_per_customer,
    };
    let order = state.store.create_resale_order(&new, now).await?;
    let order = if order.total_minor == 0 {
        service::settle_free(&state, order).await?
    } else {
        order
    };
    Ok((StatusCode::CREATED, Json(OrderView::from(&order))))
}

/// The caller's resale ledger: a credit per sold listing, a reversal per
/// refunded resale, and the balance per currency.
#[utoipa::path(get, path = "/market/ledger", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = LedgerView)))]
async fn ledger(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<LedgerView>> {
    let lines = state.store.ledger(user.id).await?;
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for l in &lines {
        let sum = sums.entry(l.currency.clone()).or_default();
        *sum = sum.saturating_add(l.amount_minor);
    }
    Ok(Json(LedgerView {
        balances: sums
            .into_iter()
            .map(|(currency, amount_minor)| Balance {
                currency,
                amount_minor,
            })
            .collect(),
        entries: lines.iter().map(LedgerLineView::from).collect(),
    }))
}
