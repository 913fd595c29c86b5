//! Configuration of payments (`[payments]`): the Stripe account and its
//! webhook. Without a secret key, Stripe payments answer 503 and the free
//! and manual methods still work.

use crate::config::Secret;
use serde::{Deserialize, Serialize};

/// Payment provider settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Stripe API base URL (a Stripe-compatible server in tests).
    pub stripe_api_base: String,
    /// Stripe secret key (`sk_...`); empty: Stripe payments are off.
    pub stripe_secret_key: Secret,
    /// Signing secret of the webhook endpoint (`whsec_...`); empty: the
    /// webhook answers 503.
    pub webhook_secret: Secret,
    /// Largest accepted age (and clock skew) of a webhook signature.
    pub webhook_tolerance_secs: u64,
    /// Per-attempt timeout of a Stripe API call.
    pub stripe_timeout_ms: u64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            stripe_api_base: "https://api.stripe.com/".into(),
            stripe_secret_key: Secret::default(),
            webhook_secret: Secret::default(),
            webhook_tolerance_secs: 300,
            stripe_timeout_ms: 8_000,
        }
    }
}

impl PaymentsConfig {
    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let base = &self.stripe_api_base;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err("payments.stripe_api_base must be an http(s) URL".into());
        }
        if !(1..=3_600).contains(&self.webhook_tolerance_secs) {
            return Err("payments.webhook_tolerance_secs must be between 1 and 3600".into());
        }
        if self.stripe_timeout_ms < 100 {
            return Err("payments.stripe_timeout_ms must be at least 100".into());
        }
        Ok(())
    }

    /// Whether Stripe payments are configured.
    pub fn stripe_enabled(&self) -> bool {
        !self.stripe_secret_key.expose().is_empty()
    }
}
