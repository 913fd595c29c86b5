//! Stripe webhook input: the `Stripe-Signature` check and a lenient reading
//! of the event body. Pure functions, no I/O.
//!
//! Signature scheme (Stripe "v1"): the header is `t=<unix secs>,v1=<hex>`
//! (more `v1` entries during secret rotation, other schemes ignored); the
//! signature is HMAC-SHA256 keyed by the endpoint secret over
//! `"<t>.<raw body>"`. A timestamp further than the tolerance from now is
//! refused, so a captured delivery cannot be replayed later; comparison is
//! constant-time.
//!
//! The body is read as JSON values, not Stripe's generated types: only the
//! fields used here are required, so payloads of Stripe-compatible servers
//! and newer API versions parse alike.

use crate::model::OrderId;
use crate::store::WebhookEventRef;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `t=` or no `v1=` entry, or not parseable.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches.
    #[error("no Stripe-Signature matches the payload")]
    Mismatch,
}

/// Checks `header` against `payload` signed with `secret` at about `now`.
pub fn verify(
    header: &str,
    payload: &[u8],
    secret: &str,
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                if let Ok(sig) = hex::decode(v) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_secs.abs_diff(t) > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    if signatures
        .iter()
        .any(|sig| mac.clone().verify_slice(sig).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A header value signing `payload` at `t` (for tests and tools).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    // HMAC takes keys of any length: this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an event means for payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// `payment_intent.succeeded`.
    Succeeded {
        /// The intent.
        intent: String,
        /// `metadata.order_id`.
        order: Option<OrderId>,
        /// Amount received, minor units.
        amount: i64,
        /// ISO 4217, any case.
        currency: String,
    },
    /// `payment_intent.payment_failed`.
    Failed {
        /// The intent.
        intent: String,
        /// Stripe's message.
        reason: String,
    },
    /// `charge.refunded`.
    Refunded {
        /// The charge's intent.
        intent: String,
        /// Whether the whole charge was refunded.
        full: bool,
        /// The latest refund's id.
        refund: Option<String>,
    },
    /// Any other type (acknowledged, recorded, ignored).
    Other,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A string id, or the `id` of an expanded object.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        obj @ Value::Object(_) => text(obj, "id"),
        _ => None,
    }
}

/// Reads an event body.
pub fn parse(body: &[u8]) -> Result<(WebhookEventRef, PaymentEvent), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let id = text(&v, "id").ok_or("no event id")?;
    let kind = text(&v, "type").ok_or("no event type")?;
    if id.is_empty() || id.len() > 255 || kind.len() > 255 {
        return Err("event id or type out of range".into());
    }
    let object = v
        .get("data")
        .and_then(|d| d.get("object"))
        .filter(|o| o.is_object())
        .ok_or("no data.object")?;
    let missing = |what: &str| format!("{kind}: no {what}");
    let event = match kind.as_str() {
        "payment_intent.succeeded" => PaymentEvent::Succeeded {
            intent: text(object, "id").ok_or_else(|| missing("id"))?,
            order: object
                .get("metadata")
                .and_then(|m| m.get("order_id"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok()),
            amount: object
                .get("amount_received")
                .or_else(|| object.get("amount"))
                .and_then(Value::as_i64)
                .ok_or_else(|| missing("amount"))?,
            currency: text(object, "currency").ok_or_else(|| missing("currency"))?,
        },
        "payment_intent.payment_failed" => PaymentEvent::Failed {
            intent: text(object, "id").ok_or_else(|| missing("id"))?,
            reason: object
                .get("last_payment_error")
                .and_then(|e| text(e, "message"))
                .unwrap_or_else(|| "payment failed".into())
                .chars()
                .take(500)
                .collect(),
        },
        "charge.refunded" => {
            let amount = object.get("amount").and_then(Value::as_i64);
            let refunded = object.get("amount_refunded").and_then(Value::as_i64);
            PaymentEvent::Refunded {
                intent: id_of(object.get("payment_intent"))
                    .ok_or_else(|| missing("payment_intent"))?,
                full: object.get("refunded").and_then(Value::as_bool) == Some(true)
                    || matches!((amount, refunded), (Some(a), Some(r)) if r >= a),
                refund: object
                    .get("refunds")
                    .and_then(|r| r.get("data"))
                    .and_then(Value::as_array)
                    .and_then(|d| d.first())
                    .and_then(|r| text(r, "id")),
            }
        }
        _ => PaymentEvent::Other,
    };
    Ok((WebhookEventRef { id, kind }, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_nothing_else_does() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, SECRET, 1_000);
        assert_eq!(verify(&header, body, SECRET, 1_010, 300), Ok(()));
        assert_eq!(
            verify(&header, br#"{"id":"evt_2"}"#, SECRET, 1_010, 300),
            Err(SignatureError::Mismatch),
            "a changed body"
        );
        assert_eq!(
            verify(&header, body, "whsec_other", 1_010, 300),
            Err(SignatureError::Mismatch),
            "another secret"
        );
        assert_eq!(
            verify(&header, body, SECRET, 1_301, 300),
            Err(SignatureError::Stale),
            "a replay after the tolerance"
        );
        assert_eq!(
            verify(&header, body, SECRET, 699, 300),
            Err(SignatureError::Stale)
        );
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(
            verify(&rotated, body, SECRET, 1_000, 300),
            Ok(()),
            "any v1 may match"
        );
        for bad in ["", "t=1000", "v1=abcd", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify(bad, body, SECRET, 1_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(
            verify(&v0_only, body, SECRET, 1_000, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn events_are_read_leniently_and_refused_when_fields_are_missing() {
        let order = OrderId::new();
        let body = format!(
            r#"{{"id":"evt_a","type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_1","amount":2500,"currency":"eur","metadata":{{"order_id":"{order}"}},"latest_charge":{{"id":"ch_1"}}}}}}}}"#
        );
        let (r, e) = parse(body.as_bytes()).unwrap();
        assert_eq!(
            (r.id.as_str(), r.kind.as_str()),
            ("evt_a", "payment_intent.succeeded")
        );
        assert_eq!(
            e,
            PaymentEvent::Succeeded {
                intent: "pi_1".into(),
                order: Some(order),
                amount: 2500,
                currency: "eur".into()
            }
        );
        let refund = br#"{"id":"evt_b","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":"pi_1","amount":2500,"amount_refunded":2500,"refunds":{"data":[{"id":"re_1"}]}}}}"#;
        assert_eq!(
            parse(refund).unwrap().1,
            PaymentEvent::Refunded {
                intent: "pi_1".into(),
                full: true,
                refund: Some("re_1".into())
            }
        );
        let partial = br#"{"id":"evt_c","type":"charge.refunded","data":{"object":{"payment_intent":{"id":"pi_1"},"amount":2500,"amount_refunded":100,"refunded":false}}}"#;
        assert!(matches!(
            parse(partial).unwrap().1,
            PaymentEvent::Refunded { full: false, .. }
        ));
        let other = br#"{"id":"evt_d","type":"customer.created","data":{"object":{}}}"#;
        assert_eq!(parse(other).unwrap().1, PaymentEvent::Other);
        for bad in [
            &b"not json"[..],
            br#"{"type":"x","data":{"object":{}}}"#,
            br#"{"id":"evt","type":"payment_intent.succeeded","data":{"object":{"id":"pi"}}}"#,
            br#"{"id":"evt","type":"x","data":{"object":[]}}"#,
            br#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
