//! Orders: `POST /orders` (holds inventory; `Idempotency-Key` makes a retry
//! return the same order), `GET /orders/{id}`, `GET /orders/user/{user_id}`,
//! `PUT /orders/{id}/status` (organizer or admin: legal steps only) and
//! `POST /orders/{id}/cancel` (the buyer, while pending).
//!
//! Visibility: an order is visible to its buyer, to its event's organizer
//! and to admins. Inventory design and the lifecycle: `docs/cloud.md`.

pub mod config;
pub mod dto;
pub mod group;
pub mod search;
pub mod service;
pub mod sweeper;

use crate::auth::extract::AuthUser;
use crate::commerce::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Page, PageParams, Path, Query};
use crate::model::{OrderId, Role, UserId};
use crate::state::AppState;
use crate::store::{
    IdempotencyRecord, NewOnlineOrder, OrderCreated, OrderFilter, OrderItemRecord, StoreError,
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use dto::{CreateOrder, OrderQuery, OrderStatusUpdate, OrderView};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Routes under `/orders`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(get_order))
        .routes(routes!(user_orders))
        .routes(routes!(set_status))
        .routes(routes!(cancel_order))
        .merge(search::router())
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_string()))
        }
        _ => Err(ApiError::bad_request(
            "invalid_header",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// SHA-256 of the order request in a canonical form (lines sorted by tier).
fn request_hash(req: &CreateOrder) -> String {
    let mut lines: Vec<(u16, u32)> = req.items.iter().map(|i| (i.tier, i.quantity)).collect();
    lines.sort_unstable();
    let mut h = Sha256::new();
    h.update(req.event_id.to_string());
    for (tier, quantity) in lines {
        h.update(format!("|{tier}:{quantity}"));
    }
    hex::encode(h.finalize())
}

/// Reserves tickets: the order holds its inventory until it is paid or its
/// hold ends (`commerce.hold_secs`). A free order is paid at once. With an
/// `Idempotency-Key` already used by the caller, answers that order (200,
/// `Idempotent-Replayed: true`); with the same key and another body, 422.
#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "makes a retried request return the same order: 1 to 255 visible ASCII characters")),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "replayed"),
               (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "sold out, over the purchase limit, not on sale"),
               (status = 422, body = ErrorBody)))]
async fn create_order(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(req): Json<CreateOrder>,
) -> ApiResult<(StatusCode, HeaderMap, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    if !(1..=10).contains(&req.items.len()) {
        return Err(ApiError::Validation("an order has 1 to 10 lines".into()));
    }
    let event = state.store.event(req.event_id).await?;
    if !user.sees(&event) {
        return Err(ApiError::NotFound("event not found".into()));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(req.items.len());
    for line in &req.items {
        if !(1..=50).contains(&line.quantity) {
            return Err(ApiError::Validation(
                "quantity must be between 1 and 50".into(),
            ));
        }
        if !seen.insert(line.tier) {
            return Err(ApiError::Validation(format!(
                "tier {} appears twice",
                line.tier
            )));
        }
        let tier = event
            .tiers
            .iter()
            .find(|t| t.tier == line.tier)
            .ok_or_else(|| ApiError::Validation(format!("the event has no tier {}", line.tier)))?;
        items.push(OrderItemRecord {
            tier_id: tier.id,
            tier: tier.tier,
            quantity: i64::from(line.quantity),
            unit_price_minor: tier.price_minor,
        });
    }
    let total_minor = items
        .iter()
        .try_fold(0i64, |sum, i| {
            sum.checked_add(i.unit_price_minor.checked_mul(i.quantity)?)
        })
        .ok_or_else(|| ApiError::Validation("the order total is too large".into()))?;
    let policy = service::policy(&state, &event).await?;
    let now = state.now_ms();
    let hold_ms =
        i64::try_from(state.config.commerce.hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let new = NewOnlineOrder {
        id: OrderId::new(),
        event_id: event.id,
        buyer_id: user.id,
        items,
        total_minor,
        currency: event.currency.clone(),
        expires_at: now.saturating_add(hold_ms),
        idempotency: key.map(|key| IdempotencyRecord {
            key,
            request_hash: request_hash(&req),
        }),
        purchase_limit: policy.max_tickets_per_customer,
    };
    if total_minor == 0
        && state.store.group_commit()
        && let Some(order) = group::issue_free(&state, &new).await?
    {
        return Ok((
            StatusCode::CREATED,
            HeaderMap::new(),
            Json(OrderView::from(&order)),
        ));
    }
    let created = match state.store.create_order(&new, now).await {
        // Sold out (or over the limit) may only mean that holds ran out and
        // the sweeper has not returned them yet: return them and retry once.
        Err(StoreError::SoldOut { .. } | StoreError::PurchaseLimit { .. })
            if sweeper::expire_due(&state).await > 0 =>
        {
            state.store.create_order(&new, state.now_ms()).await?
        }
        other => other?,
    };
    let (status, order) = match created {
        OrderCreated::New(o) => (StatusCode::CREATED, o),
        OrderCreated::Replayed(o) => (StatusCode::OK, o),
        OrderCreated::KeyReused => {
            return Err(ApiError::Validation(
                "this Idempotency-Key was already used with a different request".into(),
            ));
        }
    };
    let order = if status == StatusCode::CREATED && order.total_minor == 0 {
        service::settle_free(&state, order).await?
    } else {
        order
    };
    let mut headers = HeaderMap::new();
    if status == StatusCode::OK {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok((status, headers, Json(OrderView::from(&order))))
}

/// One order (its buyer, its event's organizer, admin). A pending order
/// whose hold has ended is expired on the spot.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
) -> ApiResult<Json<OrderView>> {
    let (order, _, _) = service::visible_order(&state, &user, id).await?;
    let order = service::expire_if_due(&state, order).await?;
    let mut view = OrderView::from(&order);
    crate::chain::http::attach_mint(&state, [&mut view]).await?;
    Ok(Json(view))
}

/// A user's orders, ascending by id: the user themself and admins see all
/// of them; an organizer sees those for their own events.
#[utoipa::path(get, path = "/orders/user/{user_id}", tag = "orders", security(("bearer" = [])),
    params(("user_id" = String, Path, format = Uuid, description = "buyer's user id"), OrderQuery),
    responses((status = 200, body = Page<OrderView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn user_orders(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
    Query(q): Query<OrderQuery>,
) -> ApiResult<Json<Page<OrderView>>> {
    let limit = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let mut filter = OrderFilter {
        buyer_id: Some(user_id),
        event_id: q.event_id.map(Into::into),
        status: q.status,
        after: q.cursor.map(OrderId),
        limit,
        organizer_id: None,
    };
    if user.id != user_id && !user.is_admin() {
        if user.role != Role::Organizer {
            return Err(ApiError::Forbidden(
                "you may only list your own orders".into(),
            ));
        }
        filter.organizer_id = Some(user.id);
    }
    let orders = state.store.list_orders(&filter).await?;
    let mut views: Vec<OrderView> = orders.iter().map(OrderView::from).collect();
    crate::chain::http::attach_mint(&state, &mut views).await?;
    Ok(Json(Page::new(views, limit, |o: &OrderView| {
        o.id.to_string()
    })))
}

/// Moves an order (the event's organizer or an admin): `paid` confirms a
/// manual payment and issues the tickets; `refunded` returns the money
/// (through Stripe when Stripe paid it) and revokes the tickets; `expired`
/// and `cancelled` end a pending order; `fulfilled` follows `paid`. Any
/// other step is 409.
#[utoipa::path(put, path = "/orders/{id}/status", tag = "orders", security(("bearer" = [])), request_body = OrderStatusUpdate,
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "illegal transition"), (status = 503, body = ErrorBody)))]
async fn set_status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
    Json(req): Json<OrderStatusUpdate>,
) -> ApiResult<Json<OrderView>> {
    let (order, _, manages) = service::visible_order(&state, &user, id).await?;
    if !manages {
        return Err(ApiError::Forbidden(
            "only the event's organizer or an admin may change an order".into(),
        ));
    }
    if req.reason.chars().count() > 500 {
        return Err(ApiError::Validation(
            "reason must be at most 500 characters".into(),
        ));
    }
    if !order.status.can_become(req.status) {
        return Err(
            StoreError::illegal("order", order.status.as_str(), req.status.as_str()).into(),
        );
    }
    let now = state.now_ms();
    let order = match req.status {
        OrderStatus::Paid => service::settle_manual(&state, &order, &req.reason, user.id).await?,
        OrderStatus::Fulfilled => state.store.fulfil_order(id, user.id, now).await?,
        OrderStatus::Refunded => service::refund(&state, &order, user.id, &req.reason).await?,
        to @ (OrderStatus::Expired | OrderStatus::Cancelled) => {
            state
                .store
                .close_order(id, to, Some(user.id), false, now)
                .await?
        }
        OrderStatus::Pending => {
            return Err(StoreError::illegal("order", order.status.as_str(), "pending").into());
        }
    };
    let mut view = OrderView::from(&state.store.order(order.id).await?);
    crate::chain::http::attach_mint(&state, [&mut view]).await?;
    Ok(Json(view))
}

/// Cancels the caller's own pending order, returning its inventory.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "not pending")))]
async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
) -> ApiResult<Json<OrderView>> {
    let (order, _, _) = service::visible_order(&state, &user, id).await?;
    if order.buyer_id != Some(user.id) {
        return Err(ApiError::Forbidden(
            "only the buyer may cancel an order".into(),
        ));
    }
    let order = state
        .store
        .close_order(
            id,
            OrderStatus::Cancelled,
            Some(user.id),
            false,
            state.now_ms(),
        )
        .await?;
    Ok(Json(OrderView::from(&order)))
}
