//! Staff self-enrollment: `POST /devices/staff-enroll`. A staff member on
//! the event's roster, signed in with their own account, enrolls a scanner
//! for that event without an enrollment code, choosing its gate label,
//! zone and direction. The device proves possession of its key as with a
//! code, over `sync_protocol::device_api::staff_enrollment_subject` (the
//! event and the caller's id), and gets the same `EnrollResponse`, built by
//! [`super::admit_device`]. The device is recorded as enrolled by the
//! caller; the organizer lists and revokes it like any device.
//!
//! Who may: staff on the event's roster, its organizer, admins (the door
//! roles of `checkin::access`). The roster place is checked again in the
//! statement that stores the device, so a removal that committed first
//! stops the enrollment (`403`).

use super::dto::{EnrollResponse, check_gate, check_zone};
use super::{Admission, DEFAULT_GRACE_SECS, admit_device, check_device};
use crate::auth::extract::AuthUser;
use crate::checkin::access::require_door;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::model::{EventStatus, Role};
use crate::state::AppState;
use crate::store::GateSetup;
use axum::extract::State;
use axum::http::StatusCode;
use sync_protocol::device_api::{StaffEnrollRequest, staff_enrollment_subject};

/// Enrolls a scanner for an event whose staff roster the caller is on.
#[utoipa::path(post, path = "/devices/staff-enroll", tag = "devices", security(("bearer" = [])),
    request_body = StaffEnrollRequest,
    responses((status = 201, body = EnrollResponse, description = "enrolled; the token is shown once"),
               (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody, description = "not on the event's staff roster (nor its organizer or an admin)"),
               (status = 404, body = ErrorBody, description = "no such event (or a draft the caller may not see)"),
               (status = 409, body = ErrorBody, description = "event cancelled or ended, or this key already enrolled for it"),
               (status = 422, body = ErrorBody, description = "bad gate, zone, name or key; proof that does not verify (`invalid_proof`)")))]
pub async fn staff_enroll(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<StaffEnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let event = state.store.event(req.event_id).await?;
    require_door(&state, &user, &event).await?;
    if matches!(event.status, EventStatus::Cancelled | EventStatus::Ended) {
        return Err(ApiError::Conflict(format!(
            "devices cannot be enrolled for a {} event",
            event.status.as_str()
        )));
    }
    let setup = GateSetup {
        event_id: event.id,
        gate: check_gate(&req.gate)?,
        zone: check_zone(req.zone)?,
        direction: req.direction.into(),
        grace_secs: DEFAULT_GRACE_SECS,
        require_listed: false,
    };
    let subject = staff_enrollment_subject(event.id, user.id.0);
    let (name, key) = check_device(&req.name, &req.device_public_key, &req.proof, &subject)?;
    // A second request with the same proof would give the same key a second
    // token: refuse it while the first device is live.
    let devices = state.store.list_devices(event.id).await?;
    if devices
        .iter()
        .any(|d| d.revoked_at.is_none() && d.public_key == key)
    {
        return Err(ApiError::Conflict(
            "this device key is already enrolled for the event: use that enrollment, or have the organizer revoke it first".into(),
        ));
    }
    let roster_member = (user.role == Role::Staff).then_some(user.id);
    let response = admit_device(
        &state,
        &event,
        setup,
        name,
        key,
        user.id,
        Admission::Direct { roster_member },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response)))
}
