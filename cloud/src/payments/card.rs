//! `POST /orders/{id}/payments/{payment_id}/card`: the buyer's browser
//! tokenizes the card with Stripe.js (the card number never touches this
//! server) and hands over the token's card id; the server attaches it to
//! the order's PaymentIntent and confirms. The order is paid by the
//! `payment_intent.succeeded` webhook, exactly as for a browser-confirmed
//! intent.

use super::PaymentView;
use crate::auth::extract::AuthUser;
use crate::commerce::{OrderStatus, PaymentProvider, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::model::{OrderId, PaymentId};
use crate::orders::service;
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pay_by_card))
}

/// A card tokenized by Stripe.js in the payer's browser.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardPayment {
    /// The token's card (`card_...`, from `stripe.createToken`) or a
    /// PaymentMethod (`pm_...`); 4 to 255 characters.
    #[schema(
        min_length = 4,
        max_length = 255,
        pattern = "^(card|pm|src)_[A-Za-z0-9_]+$"
    )]
    pub card: String,
}

/// What Stripe said.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardPaymentAnswer {
    /// The payment (it turns `succeeded` when Stripe's webhook arrives).
    pub payment: PaymentView,
    /// Stripe's PaymentIntent status (`succeeded`, `requires_action`, ...).
    pub stripe_status: String,
}

fn check_card(card: &str) -> ApiResult<()> {
    let ok_prefix = ["card_", "pm_", "src_"].iter().any(|p| card.starts_with(p));
    let ok_chars = card.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok_prefix && ok_chars && (4..=255).contains(&card.len()) {
        Ok(())
    } else {
        Err(ApiError::Validation(
            "card must be a Stripe card_, pm_ or src_ id from Stripe.js".into(),
        ))
    }
}

/// Pays a pending order's Stripe payment with a card from Stripe.js (its
/// buyer). A refused card answers 409 with Stripe's reason; try another.
#[utoipa::path(post, path = "/orders/{id}/payments/{payment_id}/card", tag = "payments", security(("bearer" = [])), request_body = CardPayment,
    params(("id" = String, Path, format = Uuid, description = "order id"), ("payment_id" = String, Path, format = Uuid, description = "the order's Stripe payment")),
    responses((status = 200, body = CardPaymentAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody, description = "not the buyer"), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "not pending, or the card was refused"),
               (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
               (status = 503, body = ErrorBody, description = "Stripe not configured or unreachable")))]
async fn pay_by_card(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, payment_id)): Path<(OrderId, PaymentId)>,
    Json(req): Json<CardPayment>,
) -> ApiResult<Json<CardPaymentAnswer>> {
    check_card(&req.card)?;
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
    let payment = state
        .store
        .payments_of(id)
        .await?
        .into_iter()
        .find(|p| p.id == payment_id && p.provider == PaymentProvider::Stripe)
        .ok_or_else(|| ApiError::NotFound("the order has no such Stripe payment".into()))?;
    if !matches!(
        payment.status,
        PaymentStatus::Pending | PaymentStatus::Failed
    ) {
        return Err(ApiError::Conflict(format!(
            "a {} payment cannot be paid again",
            payment.status.as_str()
        )));
    }
    let intent = payment
        .provider_ref
        .as_deref()
        .ok_or_else(|| ApiError::Conflict("the payment has no PaymentIntent yet".into()))?;
    let gateway = state.stripe.as_ref().ok_or_else(|| {
        ApiError::Unavailable("Stripe payments are not configured on this server".into())
    })?;
    let card_digest = hex::encode(&Sha256::digest(req.card.as_bytes())[..8]);
    let answer = gateway
        .confirm_with_card(
            intent,
            &req.card,
            &format!("gatehouse-pay-{payment_id}-{card_digest}"),
        )
        .await
        .map_err(service::stripe_error)?;
    tracing::info!(order = %id, intent = %answer.id, status = %answer.status, "card payment confirmed");
    Ok(Json(CardPaymentAnswer {
        payment: PaymentView::of(&payment, false),
        stripe_status: answer.status,
    }))
}

#[cfg(test)]
mod tests {
    use super::check_card;

    #[test]
    fn only_stripe_card_ids_are_accepted() {
        assert!(check_card("card_1AbC").is_ok());
        assert!(check_card("pm_123").is_ok());
        assert!(
            check_card("4242424242424242").is_err(),
            "never a card number"
        );
        assert!(check_card("card_../../v1/charges").is_err());
        assert!(check_card("tok_1").is_err());
    }
}
