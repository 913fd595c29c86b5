//! Request and response bodies of the device endpoints
//! (`docs/device-api.md`), and their validation. The wire types the
//! devices share live in `sync_protocol::device_api`; the organizer's
//! device list stays here.

use crate::error::{ApiError, ApiResult};
use crate::model::{EventId, UserId, from_millis};
use crate::store::{DeviceRecord, GateSetup, ZoneRecord};
use serde::{Deserialize, Serialize};
use sync_protocol::NodeId;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

pub use sync_protocol::device_api::{
    CreateEnrollmentCode, EnrollRequest, EnrollResponse, EnrollmentCodeView, GateDirection,
    PolicyView,
};

/// The policy a device enrolled with `s` enforces; `zone_name` is its
/// zone's name in the event, if any.
pub fn policy_view(s: &GateSetup, zone_name: Option<String>) -> PolicyView {
    PolicyView {
        event_id: s.event_id,
        zone: s.zone,
        direction: s.direction.into(),
        grace_secs: u64::from(s.grace_secs),
        require_listed: s.require_listed,
        default_reentry: false,
        zone_name,
    }
}

/// `GET /devices?event_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// The event whose devices to list.
    #[param(value_type = String, format = Uuid)]
    pub event_id: EventId,
}

/// An enrolled device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// Id (its node id).
    #[schema(value_type = String, format = Uuid)]
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Gate label.
    pub gate: String,
    /// Zone.
    pub zone: Option<u8>,
    /// The zone's name in the event, if it has one.
    pub zone_name: Option<String>,
    /// Direction.
    pub direction: GateDirection,
    /// ed25519 public key, hex.
    pub public_key: String,
    /// Enrolled.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: OffsetDateTime,
    /// Last authenticated call (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<OffsetDateTime>,
    /// Whether its token is revoked.
    pub revoked: bool,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// Who put it on the event: the creator of the enrollment code it
    /// used, or the account (a staff member on the roster) that enrolled
    /// it directly with `POST /devices/staff-enroll`.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub enrolled_by: Option<UserId>,
}

impl DeviceView {
    /// The view of `d`, its zone named from the event's `zones`.
    pub fn new(d: &DeviceRecord, zones: &[ZoneRecord]) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            event_id: d.setup.event_id,
            gate: d.setup.gate.clone(),
            zone: d.setup.zone,
            zone_name: crate::events::zones::name_of(zones, d.setup.zone),
            direction: d.setup.direction.into(),
            public_key: hex::encode(&d.public_key),
            enrolled_at: from_millis(d.enrolled_at),
            last_seen_at: d.last_seen_at.map(from_millis),
            revoked: d.revoked_at.is_some(),
            revoked_at: d.revoked_at.map(from_millis),
            enrolled_by: d.enrolled_by,
        }
    }
}

/// A gate label: 1 to 64 bytes of UTF-8 (the scan record's limit).
pub fn check_gate(gate: &str) -> ApiResult<String> {
    let gate = gate.trim();
    if gate.is_empty() || gate.len() > sync_protocol::checkin::MAX_LABEL {
        return Err(ApiError::Validation(
            "gate must be 1 to 64 bytes of text".into(),
        ));
    }
    Ok(gate.to_string())
}

/// A zone number (0 to 31).
pub fn check_zone(zone: Option<u8>) -> ApiResult<Option<u8>> {
    match zone {
        Some(z) if z >= 32 => Err(ApiError::Validation("zone must be 0 to 31".into())),
        z => Ok(z),
    }
}

/// The zone a gate guards, by number or by its name among the event's
/// `zones` (`422 unknown_zone`), not both; neither: any zone.
pub fn gate_zone(
    zones: &[ZoneRecord],
    zone: Option<u8>,
    zone_name: Option<&str>,
) -> ApiResult<Option<u8>> {
    match zone_name {
        Some(_) if zone.is_some() => Err(ApiError::Validation(
            "give zone or zone_name, not both".into(),
        )),
        Some(name) => crate::events::zones::number_of(zones, name).map(Some),
        None => check_zone(zone),
    }
}

/// Decodes exactly `N` bytes of hex.
pub fn hex_bytes<const N: usize>(field: &str, s: &str) -> ApiResult<[u8; N]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| ApiError::Validation(format!("{field} must be {} hex digits", N * 2)))
}
