//! Gate devices: enrollment codes (organizer of the event, or admin),
//! enrollment with proof of possession of the device's ed25519 key, listing
//! and revocation. Contract: `docs/device-api.md`.
//!
//! Enrollment hands the device everything it needs to admit offline: the
//! organizer root key, the event key certificates, the event's gossip key
//! (sealed at rest like signing keys, AAD `gossip-key/<event>`), its gate
//! policy and a device token (stored as SHA-256 only). The code is spent
//! last, in the same transaction that inserts the device.

pub mod auth;
pub mod dto;

use crate::auth::extract::Organizer;
use crate::crypto::random_bytes;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::model::{EventStatus, UnixMillis};
use crate::state::AppState;
use crate::store::{DeviceRecord, EnrollmentCodeRecord, EventRecord, GateSetup, StoreError};
use auth::{code_hash, new_code, new_token, sha256_hex};
use axum::extract::State;
use axum::http::StatusCode;
use dto::{
    CreateEnrollmentCode, DeviceQuery, DeviceView, EnrollRequest, EnrollResponse,
    EnrollmentCodeView, check_gate, gate_zone, hex_bytes, policy_view,
};
use sync_protocol::{NodeId, PublicKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_TTL_SECS: u64 = 86_400;
const MAX_TTL_SECS: u64 = 30 * 86_400;
const DEFAULT_GRACE_SECS: u32 = 60;

/// Organizer routes under `/devices` (JWT).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_code))
        .routes(routes!(list_devices))
        .routes(routes!(revoke))
}

/// `POST /devices/enroll` (the code is the credential); answers carry
/// `X-Gatehouse-Time` like every device call.
pub fn enroll_router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::time_header,
        ))
}

/// Refused to callers who do not manage the event.
const NOT_MANAGER: &str = "only the event's organizer or an admin may manage its devices";

/// Creates a one-time enrollment code for a gate of the event.
#[utoipa::path(post, path = "/devices/enrollment-codes", tag = "devices", security(("bearer" = [])),
    request_body = CreateEnrollmentCode,
    responses((status = 201, body = EnrollmentCodeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 409, body = ErrorBody, description = "event cancelled or ended"), (status = 422, body = ErrorBody)))]
async fn create_code(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Json(req): Json<CreateEnrollmentCode>,
) -> ApiResult<(StatusCode, Json<EnrollmentCodeView>)> {
    let event = state.store.event(req.event_id).await?;
    user.require_manager(&event, NOT_MANAGER)?;
    if matches!(event.status, EventStatus::Cancelled | EventStatus::Ended) {
        return Err(ApiError::Conflict(format!(
            "devices cannot be enrolled for a {} event",
            event.status.as_str()
        )));
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if !(60..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::Validation(
            "ttl_secs must be between 60 and 2592000".into(),
        ));
    }
    let grace = req.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
    if grace > 86_400 {
        return Err(ApiError::Validation(
            "grace_secs must be at most 86400".into(),
        ));
    }
    let setup = GateSetup {
        event_id: event.id,
        gate: check_gate(&req.gate)?,
        zone: gate_zone(&event.zones, req.zone, req.zone_name.as_deref())?,
        direction: req.direction.into(),
        grace_secs: grace,
        require_listed: req.require_listed.unwrap_or(false),
    };
    let code = new_code()?;
    let now = state.now_ms();
    let expires_at = now + (ttl as UnixMillis) * 1000;
    state
        .store
        .create_enrollment_code(&EnrollmentCodeRecord {
            code_hash: code_hash(&code),
            setup: setup.clone(),
            created_by: user.id,
            created_at: now,
            expires_at,
            used_at: None,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentCodeView {
            code,
            expires_at: expires_at / 1000,
            event_id: setup.event_id,
            gate: setup.gate,
            zone: setup.zone,
            zone_name: crate::events::zones::name_of(&event.zones, setup.zone),
            direction: req.direction,
        }),
    ))
}

fn gone(message: &str) -> ApiError {
    ApiError::coded(StatusCode::GONE, "enrollment_code_spent", message)
}

/// Enrolls a device with a code and a proof of possession of its key.
#[utoipa::path(post, path = "/devices/enroll", tag = "devices", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse, description = "enrolled; the token is shown once"),
               (status = 404, body = ErrorBody, description = "unknown code"),
               (status = 410, body = ErrorBody, description = "code used or expired (`enrollment_code_spent`)"),
               (status = 422, body = ErrorBody, description = "bad key or proof (`invalid_proof`)")))]
async fn enroll(
    State(state): State<AppState>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let hash = code_hash(&req.code);
    let code = match state.store.enrollment_code(&hash).await {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::NotFound("unknown enrollment code".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let now = state.now_ms();
    if code.used_at.is_some() {
        return Err(gone("this enrollment code has already been used"));
    }
    if code.expires_at <= now {
        return Err(gone("this enrollment code has expired"));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::Validation(
            "name must be 1 to 64 characters".into(),
        ));
    }
    let key_bytes = hex_bytes::<32>("device_public_key", &req.device_public_key)?;
    let proof = hex_bytes::<64>("proof", &req.proof)?;
    let invalid = |m: &str| ApiError::coded(StatusCode::UNPROCESSABLE_ENTITY, "invalid_proof", m);
    let key = PublicKey::from_bytes(&key_bytes)
        .map_err(|_| invalid("device_public_key is not a usable ed25519 public key"))?;
    sync_protocol::device_api::verify_enrollment(&key, &req.code, &proof)
        .map_err(|_| invalid("proof is not the device key's signature over the code"))?;

    let event = state.store.event(code.setup.event_id).await?;
    let gossip_key = gossip_key(&state, &event, now).await?;
    let root = state.store.organizer_key(event.organizer_id).await?;
    let cert = state.store.event_key(event.id).await?.certificate;
    let token = new_token()?;
    let device = DeviceRecord {
        id: NodeId(uuid::Uuid::now_v7()),
        name: name.to_string(),
        setup: code.setup.clone(),
        public_key: key_bytes.to_vec(),
        token_hash: sha256_hex(&token),
        enrolled_at: now,
        last_seen_at: None,
        revoked_at: None,
    };
    match state.store.enroll_device(&hash, &device, now).await {
        Err(StoreError::Gone(_)) => {
            return Err(gone("this enrollment code has already been used"));
        }
        other => other?,
    }
    tracing::info!(device = %device.id, event = %event.id, gate = %device.setup.gate, "device enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            node_id: device.id,
            device_token: token,
            event_id: event.id,
            root_public_key: hex::encode(root.public_key),
            key_certificates: vec![hex::encode(cert)],
            gossip_key: hex::encode(gossip_key),
            policy: policy_view(
                &code.setup,
                crate::events::zones::name_of(&event.zones, code.setup.zone),
            ),
            gate: code.setup.gate,
        }),
    ))
}

/// The event's gossip key, created (and sealed) on first use.
async fn gossip_key(state: &AppState, event: &EventRecord, now: UnixMillis) -> ApiResult<[u8; 32]> {
    let aad = format!("gossip-key/{}", event.id);
    let internal = |e: crate::crypto::CryptoError| ApiError::Internal(format!("gossip key: {e}"));
    let candidate = state
        .vault
        .seal(&random_bytes::<32>().map_err(internal)?, &aad)
        .map_err(internal)?;
    let sealed = state
        .store
        .ensure_gossip_key(event.id, &candidate, now)
        .await?;
    state.vault.open(&sealed, &aad).map_err(internal)
}

/// The event's devices (organizer of the event, admin).
#[utoipa::path(get, path = "/devices", tag = "devices", security(("bearer" = [])), params(DeviceQuery),
    responses((status = 200, body = Vec<DeviceView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_devices(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Query(q): Query<DeviceQuery>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let event = state.store.event(q.event_id).await?;
    user.require_manager(&event, NOT_MANAGER)?;
    let devices = state.store.list_devices(event.id).await?;
    Ok(Json(
        devices
            .iter()
            .map(|d| DeviceView::new(d, &event.zones))
            .collect(),
    ))
}

/// Revokes a device: its token is refused from the next call on
/// (`401 device_revoked`). Idempotent.
#[utoipa::path(post, path = "/devices/{id}/revoke", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "device (node) id")),
    responses((status = 200, body = DeviceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    Organizer(user): Organizer,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<DeviceView>> {
    let device = state.store.device(id).await?;
    let event = state.store.event(device.setup.event_id).await?;
    user.require_manager(&event, NOT_MANAGER)?;
    let device = state.store.revoke_device(id, state.now_ms()).await?;
    tracing::info!(device = %device.id, event = %event.id, "device revoked");
    Ok(Json(DeviceView::new(&device, &event.zones)))
}
