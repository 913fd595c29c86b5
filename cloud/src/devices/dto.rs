//! Request and response bodies of the device endpoints
//! (`docs/device-api.md`), and their validation.

use crate::error::{ApiError, ApiResult};
use crate::model::{EventId, from_millis};
use crate::store::{DeviceRecord, GateSetup};
use serde::{Deserialize, Serialize};
use sync_protocol::{Direction, NodeId};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Entry or exit gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateDirection {
    /// Into the venue (or zone).
    Entry,
    /// Out of it.
    Exit,
}

impl From<GateDirection> for Direction {
    fn from(d: GateDirection) -> Self {
        match d {
            GateDirection::Entry => Direction::Entry,
            GateDirection::Exit => Direction::Exit,
        }
    }
}

impl From<Direction> for GateDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Entry => GateDirection::Entry,
            Direction::Exit => GateDirection::Exit,
        }
    }
}

/// `POST /devices/enrollment-codes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentCode {
    /// The event the device will admit to.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Gate label, 1 to 64 bytes, e.g. "North 2".
    pub gate: String,
    /// Zone the gate guards (0 to 31); null admits tickets of any zone.
    #[schema(maximum = 31)]
    pub zone: Option<u8>,
    /// `entry` or `exit`.
    pub direction: GateDirection,
    /// How long the code can be used (60 s to 30 days; default 1 day).
    pub ttl_secs: Option<u64>,
    /// Tolerance at both ends of a credential's validity window (default 60, at most 86400).
    pub grace_secs: Option<u32>,
    /// Refuse tickets missing from the gate's manifest (default false: a
    /// correctly signed ticket sold after the last sync is admitted).
    pub require_listed: Option<bool>,
}

/// A new enrollment code: shown once, stored only as a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentCodeView {
    /// `XXXX-XXXX-XXXX`; give it to `gate-node enroll --code`.
    pub code: String,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Gate label.
    pub gate: String,
    /// Zone.
    pub zone: Option<u8>,
    /// Direction.
    pub direction: GateDirection,
}

/// `POST /devices/enroll`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment code.
    pub code: String,
    /// Device name shown to the organizer (1 to 64 characters).
    pub name: String,
    /// The device's ed25519 public key, 64 hex digits.
    pub device_public_key: String,
    /// 128 hex digits: ed25519 signature by the device key over the UTF-8
    /// bytes of `"gatehouse-enroll:" + code` (the code exactly as sent;
    /// `sync_protocol::enrollment_message`).
    pub proof: String,
}

/// The gate policy a device enforces (sync-protocol `GatePolicy`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Zone guarded (null: any).
    pub zone: Option<u8>,
    /// Entry or exit.
    pub direction: GateDirection,
    /// Validity-window tolerance, seconds.
    pub grace_secs: u64,
    /// Refuse tickets missing from the manifest.
    pub require_listed: bool,
    /// Re-entry rule for tickets the manifest does not list.
    pub default_reentry: bool,
}

impl From<&GateSetup> for PolicyView {
    fn from(s: &GateSetup) -> Self {
        Self {
            event_id: s.event_id,
            zone: s.zone,
            direction: s.direction.into(),
            grace_secs: u64::from(s.grace_secs),
            require_listed: s.require_listed,
            default_reentry: false,
        }
    }
}

/// What an enrolled device needs to admit offline and to sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResponse {
    /// The device's node id (its id in the check-in CRDT).
    #[schema(value_type = String, format = Uuid)]
    pub node_id: NodeId,
    /// 64 hex digits; `Authorization: Bearer` on every device call. Shown once.
    pub device_token: String,
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// The organizer root public key (the device's trust anchor), hex.
    pub root_public_key: String,
    /// Hex of each 139-byte key certificate of the event's signing keys.
    pub key_certificates: Vec<String>,
    /// 64 hex digits: the HMAC key the event's devices seal LAN sync with,
    /// for roster version `gossip_key_version` (later versions bring new keys).
    pub gossip_key: String,
    /// The roster version the gossip key belongs to.
    pub gossip_key_version: u64,
    /// Hex of the event's signed full device roster (`docs/protocol.md`).
    pub roster: String,
    /// The gate policy.
    pub policy: PolicyView,
    /// Gate label.
    pub gate: String,
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
}

impl From<&DeviceRecord> for DeviceView {
    fn from(d: &DeviceRecord) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            event_id: d.setup.event_id,
            gate: d.setup.gate.clone(),
            zone: d.setup.zone,
            direction: d.setup.direction.into(),
            public_key: hex::encode(&d.public_key),
            enrolled_at: from_millis(d.enrolled_at),
            last_seen_at: d.last_seen_at.map(from_millis),
            revoked: d.revoked_at.is_some(),
            revoked_at: d.revoked_at.map(from_millis),
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

/// Decodes exactly `N` bytes of hex.
pub fn hex_bytes<const N: usize>(field: &str, s: &str) -> ApiResult<[u8; N]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| ApiError::Validation(format!("{field} must be {} hex digits", N * 2)))
}
