//! Configuration of the web console (`[console]`): what the buyer's
//! browser needs to take a card payment (Stripe's publishable key and
//! Stripe.js; neither is a secret) and when a gate counts as offline.

use serde::{Deserialize, Serialize};

/// Web console settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Stripe publishable key (`pk_...`); empty: the shop offers no card payment.
    pub stripe_publishable_key: String,
    /// Where the page loads Stripe.js from (allowed by the CSP); localstripe's
    /// mock in tests (`http://127.0.0.1:PORT/js.stripe.com/v3/`).
    pub stripe_js_url: String,
    /// A gate whose last sync is older than this shows offline.
    pub device_offline_after_ms: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            stripe_publishable_key: String::new(),
            stripe_js_url: "https://js.stripe.com/v3/".into(),
            device_offline_after_ms: 15_000,
        }
    }
}

impl ConsoleConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if origin(&self.stripe_js_url).is_none() {
            return Err("console.stripe_js_url must be an http(s) URL".into());
        }
        if !(1_000..=3_600_000).contains(&self.device_offline_after_ms) {
            return Err("console.device_offline_after_ms must be between 1000 and 3600000".into());
        }
        let pk = &self.stripe_publishable_key;
        if !pk.is_empty() && !pk.starts_with("pk_") {
            return Err(
                "console.stripe_publishable_key must start with pk_ (never a secret key)".into(),
            );
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of an http(s) URL, for the CSP.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_host_only() {
        assert_eq!(
            origin("http://127.0.0.1:8420/js.stripe.com/v3/").as_deref(),
            Some("http://127.0.0.1:8420")
        );
        assert_eq!(
            origin("https://js.stripe.com/v3/").as_deref(),
            Some("https://js.stripe.com")
        );
        assert_eq!(origin("javascript:alert(1)"), None);
        assert_eq!(
            origin("https://a.b'; script-src *"),
            None,
            "nothing can be smuggled into the CSP"
        );
    }

    #[test]
    fn a_secret_key_is_refused_as_the_publishable_key() {
        let c = ConsoleConfig {
            stripe_publishable_key: "sk_live_x".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
