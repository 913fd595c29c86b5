//! Gate devices: enrollment codes (organizer of the event, or admin),
//! enrollment with proof of possession of the device's ed25519 key, listing
//! and revocation. Contract: `docs/device-api.md`.
//!
//! Enrollment hands the device everything it needs to admit offline: the
//! organizer root key, the event key certificates, the event's signed device
//! roster (which now lists it) with the gossip key of that roster version
//! (sealed at rest like signing keys, AAD `gossip-key/<event>`), its gate
//! policy and a device token (stored as SHA-256 only). The code is spent
//! last, in the same transaction that inserts the device. Revocation
//! publishes the roster's next version at once.

pub mod auth;
pub mod dto;
pub mod staff;

use crate::auth::extract::Organizer;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::model::{EventStatus, UnixMillis, UserId};
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

/// `POST /devices/enroll` (the code is the credential) and
/// `POST /devices/staff-enroll` (the staff member's JWT); answers carry
/// `X-Gatehouse-Time` like every device call.
pub fn enroll_router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(staff::staff_enroll))
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
    let (name, key_bytes) = check_device(&req.name, &req.device_public_key, &req.proof, &req.code)?;
    let event = state.store.event(code.setup.event_id).await?;
    let response = admit_device(
        &state,
        &event,
        code.setup,
        name,
        key_bytes,
        code.created_by,
        Admission::Code(&hash),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// Checks a device's name, key and proof of possession of that key: an
/// ed25519 signature over `"gatehouse-enroll:" + subject` (the code, or
/// the staff enrollment subject). Answers the trimmed name and the key.
pub(crate) fn check_device(
    name: &str,
    public_key: &str,
    proof: &str,
    subject: &str,
) -> ApiResult<(String, [u8; 32])> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::Validation(
            "name must be 1 to 64 characters".into(),
        ));
    }
    let key_bytes = hex_bytes::<32>("device_public_key", public_key)?;
    let proof = hex_bytes::<64>("proof", proof)?;
    let invalid = |m: &str| ApiError::coded(StatusCode::UNPROCESSABLE_ENTITY, "invalid_proof", m);
    let key = PublicKey::from_bytes(&key_bytes)
        .map_err(|_| invalid("device_public_key is not a usable ed25519 public key"))?;
    sync_protocol::device_api::verify_enrollment(&key, subject, &proof).map_err(|_| {
        invalid("proof is not the device key's signature over the enrollment message")
    })?;
    Ok((name.to_string(), key_bytes))
}

/// What lets a device in: an enrollment code (spent in the same
/// transaction), or a signed-in account (staff self-enrollment; with
/// `roster_member`, only while that account is on the event's roster).
pub(crate) enum Admission<'a> {
    /// The code's hash.
    Code(&'a str),
    /// Enrolled directly by the caller.
    Direct {
        /// The staff account whose roster place must still hold.
        roster_member: Option<UserId>,
    },
}

/// Refused when the staff member left the roster before the device was stored.
pub(crate) const NOT_ON_ROSTER: &str = "you are not on this event's staff roster (any more): ask its organizer to add you, or enroll with a code";

/// Stores the device and answers what it needs to admit offline: the one
/// place an [`EnrollResponse`] is built, for both enrollment paths.
pub(crate) async fn admit_device(
    state: &AppState,
    event: &EventRecord,
    setup: GateSetup,
    name: String,
    key_bytes: [u8; 32],
    enrolled_by: UserId,
    admission: Admission<'_>,
) -> ApiResult<EnrollResponse> {
    let now = state.now_ms();
    let root = state.store.organizer_key(event.organizer_id).await?;
    let trust = crate::crypto::signing::event_trust(state.store.as_ref(), event.id).await?;
    let token = new_token()?;
    let device = DeviceRecord {
        id: NodeId(uuid::Uuid::now_v7()),
        name,
        setup,
        public_key: key_bytes.to_vec(),
        token_hash: sha256_hex(&token),
        enrolled_at: now,
        last_seen_at: None,
        revoked_at: None,
        enrolled_by: Some(enrolled_by),
    };
    let stored = match admission {
        Admission::Code(hash) => state.store.enroll_device(hash, &device, now).await,
        Admission::Direct { roster_member } => {
            state
                .store
                .enroll_device_directly(&device, roster_member)
                .await
        }
    };
    match (stored, &admission) {
        (Err(StoreError::Gone(_)), Admission::Code(_)) => {
            return Err(gone("this enrollment code has already been used"));
        }
        (Err(StoreError::NotFound(_)), Admission::Direct { .. }) => {
            return Err(ApiError::Forbidden(NOT_ON_ROSTER.into()));
        }
        (other, _) => other?,
    }
    tracing::info!(device = %device.id, event = %event.id, gate = %device.setup.gate, by = %enrolled_by, "device enrolled");
    // The roster's next version lists the device; its gossip key is the
    // device's LAN key until the next version.
    let roster = crate::device_sync::current_roster(state, event.id, 0)
        .await?
        .ok_or_else(|| ApiError::Internal("a fresh roster is never current at version 0".into()))?;
    Ok(EnrollResponse {
        node_id: device.id,
        device_token: token,
        event_id: event.id,
        root_public_key: hex::encode(root.public_key),
        key_certificates: trust
            .certs
            .iter()
            .map(|c| hex::encode(c.encode()))
            .collect(),
        gossip_key: roster.gossip_key.key,
        gossip_key_version: roster.gossip_key.version,
        roster: roster.roster,
        policy: policy_view(
            &device.setup,
            crate::events::zones::name_of(&event.zones, device.setup.zone),
        ),
        gate: device.setup.gate,
    })
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
    // The roster's next version says so (with a new gossip key): every
    // device learns it on its next sync, and refuses what the revoked one
    // records from now on.
    crate::device_sync::current_roster(&state, event.id, 0).await?;
    tracing::info!(device = %device.id, event = %event.id, "device revoked");
    Ok(Json(DeviceView::new(&device, &event.zones)))
}
