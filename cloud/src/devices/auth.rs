//! Device credentials: enrollment codes and device tokens (random, stored
//! as SHA-256 only), the [`Device`] and [`EventDevice`] extractors, and the
//! `X-Gatehouse-Time` header every device answer carries.
//!
//! Tokens are checked against the database on every call (no cache), so a
//! revoked device is refused from its next request on. Neither tokens nor
//! codes are ever logged.

use crate::crypto::random_bytes;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::Path;
use crate::model::EventId;
use crate::state::AppState;
use crate::store::{DeviceRecord, StoreError};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// The header with the cloud's clock (unix milliseconds).
pub const TIME_HEADER: HeaderName = HeaderName::from_static(sync_protocol::device_api::TIME_HEADER);
/// How stale `last_seen_at` may get before a call updates it.
const TOUCH_EVERY_MS: i64 = 60_000;
/// Enrollment-code alphabet: no 0/O, 1/I/L, U (read aloud and typed by hand).
const CODE_ALPHABET: &[u8; 30] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";

/// SHA-256, hex.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A fresh enrollment code `XXXX-XXXX-XXXX` (12 symbols of 30: 58.9 bits).
pub fn new_code() -> ApiResult<String> {
    let mut symbols = Vec::with_capacity(12);
    while symbols.len() < 12 {
        let bytes = random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
        // Rejection sampling: 240 = 8 * 30, so every symbol is equally likely.
        symbols.extend(
            bytes
                .iter()
                .filter(|b| **b < 240)
                .map(|b| CODE_ALPHABET[usize::from(*b % 30)]),
        );
    }
    symbols.truncate(12);
    let text: Vec<String> = symbols
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    Ok(text.join("-"))
}

/// The hash a code is stored under (case and surrounding space ignored).
pub fn code_hash(code: &str) -> String {
    sha256_hex(&code.trim().to_ascii_uppercase())
}

/// A fresh device token: 256 random bits, 64 hex digits.
pub fn new_token() -> ApiResult<String> {
    Ok(hex::encode(
        random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// The enrolled device calling, from its bearer token.
#[derive(Debug, Clone)]
pub struct Device(pub DeviceRecord);

impl FromRequestParts<AppState> for Device {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "an `Authorization: Bearer` device token is required",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_token", "the device token is malformed")
            })?;
        let device = match state
            .store
            .device_by_token(&sha256_hex(&token.to_ascii_lowercase()))
            .await
        {
            Ok(d) => d,
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::unauthorized(
                    "invalid_token",
                    "unknown device token",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if device.revoked_at.is_some() {
            return Err(ApiError::unauthorized(
                "device_revoked",
                "this device has been revoked; enroll it again with a new code",
            ));
        }
        let now = state.now_ms();
        if device
            .last_seen_at
            .is_none_or(|seen| now - seen >= TOUCH_EVERY_MS)
        {
            state.store.touch_device(device.id, now).await?;
        }
        Ok(Self(device))
    }
}

/// An enrolled device calling about the event in the path, which must be
/// its own.
#[derive(Debug, Clone)]
pub struct EventDevice {
    /// The device.
    pub device: DeviceRecord,
    /// Its event (the path's).
    pub event_id: EventId,
}

impl FromRequestParts<AppState> for EventDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Device(device) = Device::from_request_parts(parts, state).await?;
        let Path(event_id) = Path::<EventId>::from_request_parts(parts, state).await?;
        if device.setup.event_id != event_id {
            return Err(ApiError::coded(
                StatusCode::FORBIDDEN,
                "wrong_event",
                "this device is enrolled for another event",
            ));
        }
        Ok(Self { device, event_id })
    }
}

/// Adds `X-Gatehouse-Time` (the cloud's clock, unix ms) to every answer.
pub async fn time_header(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&state.now_ms().to_string()) {
        response.headers_mut().insert(TIME_HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_shape_and_hash_case_insensitively() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), 14, "{code}");
        assert!(
            code.split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| CODE_ALPHABET.contains(&b))),
            "{code}"
        );
        assert_eq!(
            code_hash(&code),
            code_hash(&format!(" {} ", code.to_lowercase()))
        );
        assert_ne!(new_code().unwrap(), code, "codes are random");
    }
}
