//! Stripe through async-stripe: its typed request builders (form encoding,
//! `Idempotency-Key` on every call, the configured API base), with responses
//! read into the few fields used here. The generated response types require
//! every field of the current Stripe API, which Stripe-compatible servers
//! (localstripe in the tests) do not all send.

use super::config::PaymentsConfig;
use crate::store::OrderRecord;
use std::collections::HashMap;
use std::time::Duration;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::payment_intent::{ConfirmPaymentIntent, CreatePaymentIntent, UpdatePaymentIntent};
use stripe_core::refund::CreateRefund;

/// The Stripe account, ready to call.
#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeGateway")
    }
}

/// The fields of a PaymentIntent used here.
#[derive(Debug, miniserde::Deserialize)]
pub struct Intent {
    /// `pi_...`.
    pub id: String,
    /// For Stripe.js in the payer's browser.
    pub client_secret: Option<String>,
    /// Stripe's status, e.g. `requires_payment_method`.
    pub status: String,
}

/// The fields of a Refund used here.
#[derive(Debug, miniserde::Deserialize)]
pub struct Refund {
    /// `re_...`.
    pub id: String,
}

/// Why a Stripe call failed.
#[derive(Debug)]
pub enum StripeFailure {
    /// Stripe answered with an error (4xx): the request was refused.
    Rejected(String),
    /// Stripe could not be reached or answered 5xx.
    Unavailable(String),
}

fn failure(e: StripeError) -> StripeFailure {
    match e {
        StripeError::Stripe(err, status) if status < 500 => {
            StripeFailure::Rejected(err.message.unwrap_or_else(|| format!("status {status}")))
        }
        other => StripeFailure::Unavailable(other.to_string()),
    }
}

fn key(k: &str) -> Result<RequestStrategy, StripeFailure> {
    IdempotencyKey::new(k)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeFailure::Rejected(e.to_string()))
}

impl StripeGateway {
    /// The gateway, or `None` when no secret key is configured.
    pub fn from_config(c: &PaymentsConfig) -> Result<Option<Self>, String> {
        if !c.stripe_enabled() {
            return Ok(None);
        }
        let mut base = c.stripe_api_base.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let client = ClientBuilder::new(c.stripe_secret_key.expose())
            .url(base)
            .timeout(Duration::from_millis(c.stripe_timeout_ms))
            .build()
            .map_err(|e| format!("Stripe client: {e}"))?;
        Ok(Some(Self { client }))
    }

    /// The order's PaymentIntent: amount and currency from the order, its id
    /// in the metadata. The idempotency key is the order's, so retries and
    /// concurrent requests get the same intent from Stripe.
    pub async fn create_intent(&self, order: &OrderRecord) -> Result<Intent, StripeFailure> {
        let currency = match order
            .currency
            .to_ascii_lowercase()
            .parse::<stripe_types::Currency>()
        {
            Ok(c) => c,
            Err(never) => match never {},
        };
        let metadata = HashMap::from([
            ("order_id".to_string(), order.id.to_string()),
            ("event_id".to_string(), order.event_id.to_string()),
        ]);
        CreatePaymentIntent::new(order.total_minor, currency)
            .metadata(metadata)
            .build()
            .customize::<Intent>()
            .request_strategy(key(&format!("gatehouse-order-{}-intent", order.id))?)
            .send(&self.client)
            .await
            .map_err(failure)
    }

    /// Attaches the payer's card (`card_...` from Stripe.js `createToken`,
    /// or `pm_...`) to the intent and confirms it: server-side confirmation,
    /// the one flow both Stripe and localstripe's Stripe.js mock support.
    /// Idempotent per `(key, card)`.
    pub async fn confirm_with_card(
        &self,
        intent: &str,
        card: &str,
        key_base: &str,
    ) -> Result<Intent, StripeFailure> {
        UpdatePaymentIntent::new(intent)
            .payment_method(card)
            .build()
            .customize::<Intent>()
            .request_strategy(key(&format!("{key_base}-attach"))?)
            .send(&self.client)
            .await
            .map_err(failure)?;
        ConfirmPaymentIntent::new(intent)
            .build()
            .customize::<Intent>()
            .request_strategy(key(&format!("{key_base}-confirm"))?)
            .send(&self.client)
            .await
            .map_err(failure)
    }

    /// A full refund of a PaymentIntent, once per `idempotency_key`.
    pub async fn refund(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> Result<Refund, StripeFailure> {
        CreateRefund::new()
            .payment_intent(intent)
            .build()
            .customize::<Refund>()
            .request_strategy(key(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(failure)
    }
}
