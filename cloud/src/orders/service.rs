//! What the orders, payments and market handlers share: sales policies,
//! visibility, and turning a payment into a settlement (new tickets with
//! signed credentials, or a resale ticket re-issued to its buyer), refunds.

use crate::auth::extract::AuthUser;
use crate::commerce::{OrderKind, OrderStatus, PaymentProvider, PaymentStatus};
use crate::error::{ApiError, ApiResult};
use crate::model::{OrderId, TicketStatus, UserId, new_ticket_id};
use crate::payments::stripe::StripeFailure;
use crate::state::AppState;
use crate::store::{
    EventRecord, EventSigner, OrderRecord, RefundChange, RefundOutcome, ResaleHandover,
    SalesPolicy, SettleOutcome, SettlePayment, Settlement, TicketRecord, WebhookEventRef,
};
use crate::tickets::issue;

/// The event's sales rules: its own, or the configured defaults.
pub async fn policy(state: &AppState, event: &EventRecord) -> ApiResult<SalesPolicy> {
    let c = &state.config.commerce;
    Ok(state
        .store
        .sales_policy(event.id)
        .await?
        .unwrap_or(SalesPolicy {
            max_tickets_per_customer: c.max_tickets_per_customer,
            resale_enabled: c.resale_enabled,
            resale_max_percent: c.resale_max_percent,
        }))
}

/// Loads an order the caller may see (its buyer, its event's organizer, an
/// admin); returns it and whether the caller manages its event.
pub async fn visible_order(
    state: &AppState,
    user: &AuthUser,
    id: OrderId,
) -> ApiResult<(OrderRecord, EventRecord, bool)> {
    let order = state.store.order(id).await?;
    let event = state.store.event(order.event_id).await?;
    let manages = user.manages(&event);
    if manages || order.buyer_id == Some(user.id) {
        Ok((order, event, manages))
    } else {
        Err(ApiError::Forbidden(
            "this order belongs to someone else".into(),
        ))
    }
}

/// Ends a pending order whose hold has run out (lazy expiry on read; the
/// sweeper does the same in the background).
pub async fn expire_if_due(state: &AppState, order: OrderRecord) -> ApiResult<OrderRecord> {
    let now = state.now_ms();
    if order.status == OrderStatus::Pending && order.expires_at.is_some_and(|e| e <= now) {
        state
            .store
            .close_order(order.id, OrderStatus::Expired, None, true, now)
            .await?;
        return Ok(state.store.order(order.id).await?);
    }
    Ok(order)
}

/// A primary order's new tickets, each with its signed credential, owned
/// by `owner` under `holder_name` (the one-order path and group commit
/// build them alike).
pub(crate) fn primary_tickets(
    signer: &EventSigner,
    ev: &EventRecord,
    order: &OrderRecord,
    owner: Option<UserId>,
    holder_name: &str,
    now: i64,
) -> ApiResult<Vec<TicketRecord>> {
    let mut tickets = Vec::new();
    for item in &order.items {
        let tier = ev
            .tiers
            .iter()
            .find(|t| t.id == item.tier_id)
            .ok_or_else(|| ApiError::Internal(format!("order {} names a lost tier", order.id)))?;
        for _ in 0..item.quantity {
            let id = new_ticket_id();
            let credential = issue::credential(signer, ev, id, tier.tier, tier.zone_mask, 0)?;
            tickets.push(TicketRecord {
                id,
                event_id: ev.id,
                tier_id: tier.id,
                tier: tier.tier,
                zone_mask: tier.zone_mask,
                owner_id: owner,
                order_id: Some(order.id),
                holder_name: holder_name.to_string(),
                status: TicketStatus::Issued,
                generation: 0,
                credential: Some(credential),
                price_minor: item.unit_price_minor,
                currency: tier.currency.clone(),
                created_at: now,
                updated_at: now,
            });
        }
    }
    Ok(tickets)
}

/// Builds and applies the settlement of `order` by `payment`.
pub async fn settle(
    state: &AppState,
    order: &OrderRecord,
    payment: SettlePayment,
    event: Option<WebhookEventRef>,
    actor: Option<UserId>,
) -> ApiResult<SettleOutcome> {
    let ev = state.store.event(order.event_id).await?;
    let signer = issue::signer(state, &ev).await?;
    let buyer = order
        .buyer_id
        .ok_or_else(|| ApiError::Conflict("this order has no buyer to issue tickets to".into()))?;
    let holder_name = state.store.user(buyer).await?.display_name;
    let now = state.now_ms();
    let mut tickets = Vec::new();
    let mut handover = None;
    match order.kind {
        OrderKind::Primary => {
            tickets = primary_tickets(&signer, &ev, order, Some(buyer), &holder_name, now)?;
        }
        OrderKind::Resale => {
            let listing_id = order.listing_id.ok_or_else(|| {
                ApiError::Internal(format!("resale order {} has no listing", order.id))
            })?;
            let listing = state.store.listing(listing_id).await?;
            let ticket = state.store.ticket(listing.ticket_id).await?;
            let generation = ticket.generation.checked_add(1).ok_or_else(|| {
                ApiError::Conflict("this ticket has changed hands too often".into())
            })?;
            let credential = issue::credential(
                &signer,
                &ev,
                ticket.id,
                ticket.tier,
                ticket.zone_mask,
                generation,
            )?;
            handover = Some(ResaleHandover {
                ticket_id: ticket.id,
                from_generation: ticket.generation,
                credential,
                holder_name,
            });
        }
    }
    let s = Settlement {
        order_id: order.id,
        tickets,
        handover,
        payment,
        event,
        actor,
    };
    Ok(state.store.settle_order(&s, now).await?)
}

/// Pays an order that costs nothing.
pub async fn settle_free(state: &AppState, order: OrderRecord) -> ApiResult<OrderRecord> {
    let payment = SettlePayment {
        provider: PaymentProvider::Free,
        provider_ref: None,
        amount_minor: 0,
        currency: order.currency.clone(),
    };
    match settle(state, &order, payment, None, order.buyer_id).await? {
        SettleOutcome::Paid(_) | SettleOutcome::Unchanged(_) => {
            Ok(state.store.order(order.id).await?)
        }
        SettleOutcome::NotPayable(_, why) => Err(ApiError::Conflict(why)),
    }
}

/// Confirms a manual payment (organizer or admin).
pub async fn settle_manual(
    state: &AppState,
    order: &OrderRecord,
    reference: &str,
    actor: UserId,
) -> ApiResult<OrderRecord> {
    let payment = SettlePayment {
        provider: PaymentProvider::Manual,
        provider_ref: (!reference.is_empty()).then(|| reference.to_string()),
        amount_minor: order.total_minor,
        currency: order.currency.clone(),
    };
    match settle(state, order, payment, None, Some(actor)).await? {
        SettleOutcome::Paid(_) => Ok(state.store.order(order.id).await?),
        SettleOutcome::Unchanged(_) => Err(ApiError::Conflict(
            "this payment reference was already used".into(),
        )),
        SettleOutcome::NotPayable(o, why) => Err(ApiError::Conflict(format!(
            "an order cannot go from {} to paid: {why}",
            o.status.as_str()
        ))),
    }
}

/// Refunds a paid order in full: through Stripe when Stripe paid it (the
/// refund call carries an idempotency key, so a retry refunds once), then
/// revokes its tickets.
pub async fn refund(
    state: &AppState,
    order: &OrderRecord,
    actor: UserId,
    reason: &str,
) -> ApiResult<OrderRecord> {
    if order.status != OrderStatus::Paid {
        return Err(
            crate::store::StoreError::illegal("order", order.status.as_str(), "refunded").into(),
        );
    }
    let held = order.ticket_ids.len() as i64;
    if order.channel != "box_office" && held < order.quantity {
        return Err(ApiError::Conflict(format!(
            "{} of this order's tickets were resold; refund their resale orders instead",
            order.quantity - held
        )));
    }
    let payments = state.store.payments_of(order.id).await?;
    let stripe = payments
        .iter()
        .find(|p| p.provider == PaymentProvider::Stripe && p.status == PaymentStatus::Succeeded);
    let mut refund_ref = None;
    let mut payment_ref = None;
    if let Some(p) = stripe {
        let gateway = state.stripe.as_ref().ok_or_else(|| {
            ApiError::Unavailable("Stripe is not configured; cannot refund a Stripe payment".into())
        })?;
        let intent = p
            .provider_ref
            .clone()
            .ok_or_else(|| ApiError::Internal(format!("stripe payment {} has no intent", p.id)))?;
        let key = format!("gatehouse-order-{}-refund", order.id);
        let r = gateway.refund(&intent, &key).await.map_err(stripe_error)?;
        refund_ref = Some(r.id);
        payment_ref = Some(intent);
    }
    let change = RefundChange {
        order_id: order.id,
        refund_ref,
        payment_ref,
        event: None,
        actor: Some(actor),
        reason: if reason.is_empty() {
            "order refunded".into()
        } else {
            reason.to_string()
        },
    };
    match state.store.refund_order(&change, state.now_ms()).await? {
        RefundOutcome::Refunded(_) | RefundOutcome::Unchanged(_) => {
            Ok(state.store.order(order.id).await?)
        }
    }
}

/// How long one attempt at a due refund keeps others off it.
const REFUND_LEASE_MS: i64 = 30_000;

/// Returns money that arrived for an order that could not take it. The
/// webhook and every replica's sweeper may try at once: a lease in the
/// database lets one of them call the provider (the idempotency key covers
/// a retry after a lease ran out).
pub async fn refund_due(state: &AppState, payment: &crate::store::PaymentRecord) -> ApiResult<()> {
    let (Some(gateway), Some(intent)) = (state.stripe.as_ref(), payment.provider_ref.as_deref())
    else {
        return Err(ApiError::Unavailable("Stripe is not configured".into()));
    };
    if !state
        .store
        .lease_refund(payment.id, state.now_ms(), REFUND_LEASE_MS)
        .await?
    {
        return Ok(());
    }
    let key = format!("gatehouse-payment-{}-refund", payment.id);
    let r = gateway.refund(intent, &key).await.map_err(stripe_error)?;
    match state
        .store
        .payment_refunded(payment.id, &r.id, state.now_ms())
        .await
    {
        Ok(()) | Err(crate::store::StoreError::InvalidState(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stripe failures in the API's terms.
pub fn stripe_error(e: StripeFailure) -> ApiError {
    match e {
        StripeFailure::Rejected(why) => ApiError::Conflict(format!("Stripe refused: {why}")),
        StripeFailure::Unavailable(why) => {
            tracing::warn!(error = %why, "Stripe call failed");
            ApiError::Unavailable("the payment provider is unavailable; try again".into())
        }
    }
}
