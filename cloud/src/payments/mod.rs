//! Payments: `POST /orders/{id}/payments` (start paying: a Stripe
//! PaymentIntent, or a manual payment the organizer confirms),
//! `GET /orders/{id}/payments`, and the Stripe webhook
//! `POST /payments/webhook`.
//!
//! The webhook answers 2xx only after the change it reports is committed,
//! so Stripe retries anything not applied; it is applied at most once (the
//! event id is stored with the change).

pub mod card;
pub mod config;
pub mod stripe;
pub mod webhook;

use crate::auth::extract::AuthUser;
use crate::commerce::{OrderStatus, PaymentProvider, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::model::{OrderId, PaymentId, from_millis};
use crate::orders::service;
use crate::state::AppState;
use crate::store::{
    PaymentRecord, RefundChange, SettleOutcome, SettlePayment, StoreError, WebhookEventRef,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use webhook::PaymentEvent;

/// `/orders/{id}/payments` (rate-limited with orders and tickets).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_payment, list_payments))
        .merge(card::router())
}

/// `/payments/webhook`: outside the per-client rate limits (Stripe delivers
/// from few addresses); every request is authenticated by its signature.
pub fn webhook_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

/// How to pay.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A Stripe PaymentIntent, confirmed by the payer's browser (Stripe.js).
    Stripe,
    /// Cash or bank transfer: the organizer confirms receipt.
    Manual,
}

/// Starts paying an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPayment {
    /// `stripe` or `manual`.
    pub method: PaymentMethod,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// Id.
    pub id: PaymentId,
    /// Order.
    pub order_id: OrderId,
    /// `stripe`, `manual` or `free`.
    pub provider: PaymentProvider,
    /// pending, succeeded, failed, refund_due, refunded, cancelled.
    pub status: PaymentStatus,
    /// PaymentIntent id (Stripe) or the organizer's reference.
    pub provider_ref: Option<String>,
    /// For Stripe.js (`stripe.confirmPayment`); shown to the buyer only.
    pub client_secret: Option<String>,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Why the last attempt failed.
    pub failure_reason: Option<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl PaymentView {
    fn of(p: &PaymentRecord, show_secret: bool) -> Self {
        Self {
            id: p.id,
            order_id: p.order_id,
            provider: p.provider,
            status: p.status,
            provider_ref: p.provider_ref.clone(),
            client_secret: p.client_secret.clone().filter(|_| show_secret),
            amount_minor: p.amount_minor,
            currency: p.currency.clone(),
            failure_reason: p.failure_reason.clone(),
            created_at: from_millis(p.created_at),
            updated_at: from_millis(p.updated_at),
        }
    }
}

/// Starts paying a pending order (its buyer): `stripe` creates (once per
/// order) a PaymentIntent for the order's amount and returns its client
/// secret; `manual` records a payment the organizer confirms with
/// `PUT /orders/{id}/status {"status": "paid"}`. Stripe unconfigured: 503.
#[utoipa::path(post, path = "/orders/{id}/payments", tag = "payments", security(("bearer" = [])), request_body = StartPayment,
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 201, body = PaymentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "not pending"), (status = 503, body = ErrorBody, description = "Stripe not configured or unreachable")))]
async fn start_payment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
    Json(req): Json<StartPayment>,
) -> ApiResult<(StatusCode, Json<PaymentView>)> {
    let (order, _, _) = service::visible_order(&state, &user, id).await?;
    if order.buyer_id != Some(user.id) {
        return Err(ApiError::Forbidden(
            "only the buyer may pay an order".into(),
        ));
    }
    let order = service::expire_if_due(&state, order).await?;
    if order.status != OrderStatus::Pending {
        return Err(ApiError::Conflict(format!(
            "a {} order cannot be paid",
            order.status.as_str()
        )));
    }
    let existing = state.store.payments_of(id).await?;
    let provider = match req.method {
        PaymentMethod::Stripe => PaymentProvider::Stripe,
        PaymentMethod::Manual => PaymentProvider::Manual,
    };
    if let Some(p) = existing.iter().find(|p| {
        p.provider == provider && matches!(p.status, PaymentStatus::Pending | PaymentStatus::Failed)
    }) {
        return Ok((StatusCode::OK, Json(PaymentView::of(p, true))));
    }
    let now = state.now_ms();
    let mut payment = PaymentRecord {
        id: PaymentId::new(),
        order_id: id,
        provider,
        provider_ref: None,
        client_secret: None,
        status: PaymentStatus::Pending,
        amount_minor: order.total_minor,
        currency: order.currency.clone(),
        failure_reason: None,
        refund_ref: None,
        created_at: now,
        updated_at: now,
    };
    if provider == PaymentProvider::Stripe {
        let gateway = state.stripe.as_ref().ok_or_else(|| {
            ApiError::Unavailable("Stripe payments are not configured on this server".into())
        })?;
        let intent = gateway
            .create_intent(&order)
            .await
            .map_err(service::stripe_error)?;
        tracing::info!(order = %id, intent = %intent.id, status = %intent.status, "payment intent ready");
        payment.provider_ref = Some(intent.id);
        payment.client_secret = intent.client_secret;
    }
    let stored = state.store.insert_payment(&payment).await?;
    Ok((StatusCode::CREATED, Json(PaymentView::of(&stored, true))))
}

/// An order's payments, oldest first (its buyer, its event's organizer, admin).
#[utoipa::path(get, path = "/orders/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses((status = 200, body = Vec<PaymentView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_payments(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OrderId>,
) -> ApiResult<Json<Vec<PaymentView>>> {
    let (order, _, _) = service::visible_order(&state, &user, id).await?;
    let buyer = order.buyer_id == Some(user.id);
    let payments = state.store.payments_of(id).await?;
    Ok(Json(
        payments.iter().map(|p| PaymentView::of(p, buyer)).collect(),
    ))
}

/// Acknowledgement of a webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always true.
    pub received: bool,
    /// `applied`, `duplicate` or `ignored`.
    pub outcome: &'static str,
}

/// Stripe webhook: `payment_intent.succeeded` pays the order and issues its
/// tickets, `payment_intent.payment_failed` records the failure,
/// `charge.refunded` (full) refunds the order and revokes its tickets.
/// Verified with `Stripe-Signature` (HMAC-SHA256, 5-minute tolerance);
/// forged, stale or malformed deliveries get 400 and change nothing;
/// replays answer 200 and change nothing.
#[utoipa::path(post, path = "/payments/webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix secs>,v1=<hex HMAC-SHA256>")),
    request_body(content = String, content_type = "application/json", description = "a Stripe event"),
    responses((status = 200, body = WebhookAck), (status = 400, body = ErrorBody, description = "bad signature or body"),
               (status = 413, body = ErrorBody), (status = 503, body = ErrorBody, description = "webhook not configured")))]
async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<WebhookAck>> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("invalid_body", r.body_text())
        }
    })?;
    // The header is required by the document: a delivery without it is the
    // sender's error (400) whether or not this cloud has a webhook secret.
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("invalid_signature", "Stripe-Signature is missing"))?;
    let secret = state.config.payments.webhook_secret.expose();
    if secret.is_empty() {
        return Err(ApiError::Unavailable(
            "the payments webhook is not configured".into(),
        ));
    }
    let now = i64::try_from(state.now_secs()).unwrap_or(i64::MAX);
    webhook::verify(
        signature,
        &body,
        secret,
        now,
        state.config.payments.webhook_tolerance_secs,
    )
    .map_err(|e| ApiError::bad_request("invalid_signature", e.to_string()))?;
    let (event, payment) =
        webhook::parse(&body).map_err(|e| ApiError::bad_request("invalid_event", e))?;
    let outcome = apply(&state, &event, payment).await?;
    tracing::info!(event = %event.id, kind = %event.kind, outcome, "stripe webhook");
    Ok(Json(WebhookAck {
        received: true,
        outcome,
    }))
}

/// Applies a verified event; the answer is sent only after this commits.
async fn apply(
    state: &AppState,
    event: &WebhookEventRef,
    payment: PaymentEvent,
) -> ApiResult<&'static str> {
    if state.store.webhook_seen(&event.id).await? {
        return Ok("duplicate");
    }
    let now = state.now_ms();
    let ignore = |why: &'static str| async move {
        tracing::info!(event = %event.id, why, "webhook event ignored");
        state.store.record_webhook_event(event, why, now).await?;
        Ok::<_, ApiError>("ignored")
    };
    match payment {
        PaymentEvent::Succeeded {
            intent,
            order,
            amount,
            currency,
        } => {
            let order_id = match order {
                Some(o) => o,
                None => match state
                    .store
                    .payment_by_ref(PaymentProvider::Stripe, &intent)
                    .await
                {
                    Ok(p) => p.order_id,
                    Err(StoreError::NotFound(_)) => return ignore("unknown payment intent").await,
                    Err(e) => return Err(e.into()),
                },
            };
            let order = match state.store.order(order_id).await {
                Ok(o) => o,
                Err(StoreError::NotFound(_)) => return ignore("unknown order").await,
                Err(e) => return Err(e.into()),
            };
            if state.store.group_commit()
                && crate::orders::group::batchable(&order, amount, &currency)
                && crate::orders::group::settle_stripe(state, &order, &intent, event).await?
            {
                return Ok("applied");
            }
            let paid = SettlePayment {
                provider: PaymentProvider::Stripe,
                provider_ref: Some(intent.clone()),
                amount_minor: amount,
                currency,
            };
            match service::settle(state, &order, paid, Some(event.clone()), None).await? {
                SettleOutcome::Paid(_) => Ok("applied"),
                SettleOutcome::Unchanged(_) => Ok("duplicate"),
                SettleOutcome::NotPayable(o, why) => {
                    tracing::warn!(order = %o.id, intent = %intent, why, "payment for an order that cannot take it: refunding");
                    let p = state
                        .store
                        .payment_by_ref(PaymentProvider::Stripe, &intent)
                        .await?;
                    if let Err(e) = service::refund_due(state, &p).await {
                        tracing::warn!(payment = %p.id, error = %e, "refund deferred to the sweeper");
                    }
                    Ok("applied")
                }
            }
        }
        PaymentEvent::Failed { intent, reason } => {
            state
                .store
                .payment_failed(&intent, &reason, event, now)
                .await?;
            Ok("applied")
        }
        PaymentEvent::Refunded {
            intent,
            full,
            refund,
        } => {
            if !full {
                return ignore("partial refund").await;
            }
            let p = match state
                .store
                .payment_by_ref(PaymentProvider::Stripe, &intent)
                .await
            {
                Ok(p) => p,
                Err(StoreError::NotFound(_)) => return ignore("unknown payment intent").await,
                Err(e) => return Err(e.into()),
            };
            let change = RefundChange {
                order_id: p.order_id,
                refund_ref: refund,
                payment_ref: Some(intent),
                event: Some(event.clone()),
                actor: None,
                reason: "refunded through Stripe".into(),
            };
            state.store.refund_order(&change, now).await?;
            Ok("applied")
        }
        PaymentEvent::Other => ignore("event type not handled").await,
    }
}
